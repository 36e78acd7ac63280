//! LMCache's multi-round QA workload (`benchmarks/multi-round-qa/multi-round-qa.py`
//! upstream, also in vLLM production-stack): users in conversations whose history grows
//! every round, joining at a steady rate.
//!
//! Upstream's semantics, reproduced here as a clock-free state machine ([`Sessions`]) that
//! the live client steps on the wall clock and the simulator on its virtual clock:
//! - Each user asks a question every `G = num_users / qps` seconds, but only once its
//!   previous answer is back (no catch-up: a late answer delays the rest).
//! - A new user joins every `U = (num_rounds - 1) / qps` seconds, whoever has finished;
//!   about `num_users` are active at a time.
//! - The first message of a conversation carries the "system prompt": `Hi, here's some
//!   system prompt: hi hi … hi.For user N, here are some other context: hi … hi.` (shared
//!   by every user up to the user id), then the question. Nothing goes in the `system` role.
//! - The history (every question and the model's own answers) is sent with each question.
//! - Ramp-up (unless disabled): the first step creates `num_users` users staggered as if
//!   they had started earlier; their first question is `#k+1` with no earlier history.
//! - Time advances in steps of [`STEP_S`]; every comparison is strict, as upstream's.

use std::fmt::Write as _;

/// The client's step: users join and ask only on these boundaries (upstream sleeps 0.1 s).
pub const STEP_S: f64 = 0.1;

/// How often a user that cannot keep up says so.
const UNFINISHED_WARNING_S: f64 = 10.0;

/// The workload's parameters (upstream's flags).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiRoundConfig {
    /// Users active at a time (`--num-users`).
    pub num_users: u32,
    /// Questions per user (`--num-rounds`).
    pub num_rounds: u32,
    /// Offered requests per second over all users (`--qps`).
    pub qps: f64,
    /// Words (about tokens) of the shared system prompt (`--shared-system-prompt`).
    pub shared_system_prompt: u32,
    /// Words of each user's own context (`--user-history-prompt`).
    pub user_history_prompt: u32,
    /// `max_tokens` of every question (`--answer-len`).
    pub answer_len: u32,
    /// User ids start after this (`--init-user-id`).
    pub init_user_id: u64,
    /// Start with `num_users` staggered users (upstream's default).
    pub ramp_up: bool,
    /// No user joins while `num_users` are active (`--enforce-strict-concurrent-users`).
    pub strict_concurrent_users: bool,
}

impl MultiRoundConfig {
    /// Seconds between a user's questions (`G`).
    pub fn gap_between_requests_s(&self) -> f64 {
        f64::from(self.num_users) / self.qps
    }

    /// Expected length of a conversation (`S`).
    pub fn session_alive_s(&self) -> f64 {
        self.gap_between_requests_s() * f64::from(self.num_rounds.saturating_sub(1))
    }

    /// Seconds between users joining (`U`).
    pub fn gap_between_users_s(&self) -> f64 {
        self.session_alive_s() / f64::from(self.num_users)
    }

    /// Checks the values; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_users == 0 {
            return Err("--num-users must be at least 1".into());
        }
        if self.num_rounds == 0 {
            return Err("--num-rounds must be at least 1".into());
        }
        if !(self.qps.is_finite() && self.qps > 0.0) {
            return Err(format!("--qps must be a positive number, not {}", self.qps));
        }
        if self.answer_len == 0 {
            return Err("--answer-len must be at least 1".into());
        }
        Ok(())
    }
}

/// `length` copies of `hi`, separated by spaces (about one token each).
pub fn dummy_text(length: u32, out: &mut String) {
    for i in 0..length {
        if i > 0 {
            out.push(' ');
        }
        out.push_str("hi");
    }
}

/// The text that opens user `user_id`'s first message.
pub fn system_prompt(config: &MultiRoundConfig, user_id: u64) -> String {
    let mut s = String::from("Hi, here's some system prompt: ");
    dummy_text(config.shared_system_prompt, &mut s);
    let _ = write!(s, ".For user {user_id}, here are some other context: ");
    dummy_text(config.user_history_prompt, &mut s);
    s.push('.');
    s
}

/// Question number `n` (from 1).
pub fn question(n: u32) -> String {
    format!("Here's question #{n}: can you tell me a new long story with a happy ending?")
}

/// ShareGPT conversations as upstream's `data_preprocessing.py` leaves them: a JSON list
/// of `{"num_round": N, "conversations": [{"from": "human"|"gpt", "value": TEXT,
/// "num_tokens": N (on gpt turns)}, …]}`. With them each user asks the human turns of one
/// conversation (user `id` takes the `id`-th of those with more than `2 × num_rounds`
/// turns, wrapping round where upstream fails), each answer capped at the recorded
/// answer's tokens (and `--answer-len`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShareGpt {
    conversations: Vec<ShareGptConversation>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct ShareGptConversation {
    num_round: usize,
    conversations: Vec<ShareGptTurn>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct ShareGptTurn {
    value: String,
    #[serde(default)]
    num_tokens: Option<u32>,
}

impl ShareGpt {
    /// Reads `text` (the JSON list), keeping the conversations long enough for
    /// `num_rounds` questions; the error says what is wrong.
    pub fn parse(text: &str, num_rounds: u32) -> Result<ShareGpt, String> {
        let all: Vec<ShareGptConversation> = serde_json::from_str(text).map_err(|e| {
            format!("not upstream's preprocessed ShareGPT (a list of {{num_round, conversations}}): {e}")
        })?;
        let need = 2 * num_rounds as usize;
        let conversations: Vec<ShareGptConversation> = all
            .into_iter()
            .filter(|c| c.num_round > need && c.conversations.len() > need)
            .collect();
        if conversations.is_empty() {
            return Err(format!(
                "no conversation has more than {need} turns (2 × --num-rounds): reduce --num-rounds"
            ));
        }
        Ok(ShareGpt { conversations })
    }

    /// Conversations kept.
    pub fn len(&self) -> usize {
        self.conversations.len()
    }

    /// Whether none was kept (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.conversations.is_empty()
    }

    /// User `user_id`'s question after `asked` questions, and its `max_tokens` (at most
    /// `answer_len`), as upstream picks them.
    fn question(&self, user_id: u64, asked: u32, answer_len: u32) -> (String, u32) {
        let c = &self.conversations[(user_id % self.conversations.len() as u64) as usize];
        let start_with_gpt = !c.num_round.is_multiple_of(2);
        let q = asked as usize;
        let (prompt_at, answer_at) = if start_with_gpt {
            (2 * q + 1, 2 * (q + 1))
        } else {
            (2 * q, 2 * (q + 1) - 1)
        };
        let turn = |i: usize| c.conversations.get(i);
        let prompt = turn(prompt_at).map_or_else(String::new, |t| t.value.clone());
        let max_tokens = turn(answer_at)
            .and_then(|t| t.num_tokens)
            .map_or(answer_len, |n| n.clamp(1, answer_len));
        (prompt, max_tokens)
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user's question.
    User,
    /// The model's answer.
    Assistant,
}

impl Role {
    /// The OpenAI role name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: String,
}

/// A question to send now.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The user asking.
    pub user_id: u64,
    /// The number in the question's text (`#n`).
    pub question_no: u32,
    /// The whole conversation so far, ending with the question.
    pub messages: Vec<Message>,
    /// Its `max_tokens`.
    pub max_tokens: u32,
}

/// What happened in a step, for the log (upstream's INFO and WARNING lines).
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A user joined.
    Joined {
        /// Its id.
        user_id: u64,
        /// Users active now.
        active: usize,
    },
    /// Users finished and left.
    Removed {
        /// How many.
        count: usize,
        /// Users active now.
        active: usize,
    },
    /// A user's next question is due but its previous answer is not back.
    Behind {
        /// The user.
        user_id: u64,
    },
}

#[derive(Debug)]
struct Session {
    user_id: u64,
    /// Questions asked (or skipped by the ramp-up).
    question_id: u32,
    last_request_s: Option<f64>,
    waiting: bool,
    finished: bool,
    history: Vec<Message>,
    last_behind_log_s: f64,
}

/// Every conversation of a run: step it with the time, send what it launches, and give it
/// each answer back ([`Sessions::answered`]).
#[derive(Debug)]
pub struct Sessions {
    config: MultiRoundConfig,
    sharegpt: Option<ShareGpt>,
    sessions: Vec<Session>,
    last_user_id: u64,
    last_join_s: Option<f64>,
    ramp_up_pending: bool,
}

impl Sessions {
    /// No user yet; the first [`Sessions::step`] starts them.
    pub fn new(config: MultiRoundConfig) -> Self {
        Self::with_questions(config, None)
    }

    /// As [`Sessions::new`], the questions ShareGPT's human turns when given.
    pub fn with_questions(config: MultiRoundConfig, sharegpt: Option<ShareGpt>) -> Self {
        Sessions {
            sharegpt,
            ramp_up_pending: config.ramp_up,
            last_user_id: config.init_user_id,
            config,
            sessions: Vec::new(),
            last_join_s: None,
        }
    }

    /// The parameters.
    pub fn config(&self) -> &MultiRoundConfig {
        &self.config
    }

    /// Users in a conversation now.
    pub fn active(&self) -> usize {
        self.sessions.len()
    }

    /// Users waiting for an answer.
    pub fn waiting(&self) -> usize {
        self.sessions.iter().filter(|s| s.waiting).count()
    }

    /// Advances to `now_s` (seconds from the start): users join, ask, finish. Returns the
    /// questions to send now, in user order, and writes what happened to `events`.
    pub fn step(&mut self, now_s: f64, events: &mut Vec<SessionEvent>) -> Vec<Launch> {
        if self.ramp_up_pending {
            self.ramp_up(now_s);
            self.ramp_up_pending = false;
        }
        let u = self.config.gap_between_users_s();
        let due = self.last_join_s.is_none_or(|t| now_s - t > u);
        let room = !self.config.strict_concurrent_users
            || self.sessions.len() < self.config.num_users as usize;
        if due && room {
            self.join(None);
            self.last_join_s = Some(now_s);
            events.push(SessionEvent::Joined {
                user_id: self.last_user_id,
                active: self.sessions.len(),
            });
        }
        let mut launches = Vec::new();
        for i in 0..self.sessions.len() {
            if let Some(l) = self.step_session(i, now_s, events) {
                launches.push(l);
            }
        }
        let before = self.sessions.len();
        self.sessions.retain(|s| !s.finished);
        let removed = before - self.sessions.len();
        if removed > 0 {
            events.push(SessionEvent::Removed {
                count: removed,
                active: self.sessions.len(),
            });
        }
        launches
    }

    /// User `user_id`'s answer arrived: it joins the history, and the user may ask again.
    pub fn answered(&mut self, user_id: u64, answer: String) {
        if let Some(s) = self.session_mut(user_id) {
            s.history.push(Message {
                role: Role::Assistant,
                content: answer,
            });
            s.waiting = false;
        }
    }

    /// User `user_id`'s question failed: the conversation cannot go on, so the user leaves
    /// at the next step (upstream's user would wait forever).
    pub fn failed(&mut self, user_id: u64) {
        if let Some(s) = self.session_mut(user_id) {
            s.waiting = false;
            s.finished = true;
        }
    }

    fn session_mut(&mut self, user_id: u64) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.user_id == user_id)
    }

    fn join(&mut self, started_ago: Option<(f64, f64)>) {
        self.last_user_id += 1;
        let mut s = Session {
            user_id: self.last_user_id,
            question_id: 0,
            last_request_s: None,
            waiting: false,
            finished: false,
            history: Vec::new(),
            last_behind_log_s: f64::NEG_INFINITY,
        };
        if let Some((offset, now_s)) = started_ago {
            // As if the conversation had started `offset` seconds ago, its history unsent.
            let g = self.config.gap_between_requests_s();
            let passed = (offset / g) as u32 + 1;
            s.question_id = passed;
            s.last_request_s = Some(now_s - offset + f64::from(passed - 1) * g);
        }
        self.sessions.push(s);
    }

    fn ramp_up(&mut self, now_s: f64) {
        let u = self.config.gap_between_users_s();
        let r = f64::from(self.config.num_users) * u;
        for i in 0..self.config.num_users {
            let offset = r - f64::from(i) * u;
            if offset < 0.0 {
                break;
            }
            self.join(Some((offset, now_s)));
        }
    }

    fn step_session(
        &mut self,
        i: usize,
        now_s: f64,
        events: &mut Vec<SessionEvent>,
    ) -> Option<Launch> {
        let g = self.config.gap_between_requests_s();
        let s = &mut self.sessions[i];
        if s.question_id >= self.config.num_rounds && !s.waiting {
            s.finished = true;
            return None;
        }
        if s.finished {
            return None;
        }
        if let Some(last) = s.last_request_s {
            if now_s - last <= g {
                return None;
            }
            if s.waiting {
                if now_s - s.last_behind_log_s > UNFINISHED_WARNING_S {
                    s.last_behind_log_s = now_s;
                    events.push(SessionEvent::Behind { user_id: s.user_id });
                }
                return None;
            }
        }
        let (mut content, max_tokens) = match &self.sharegpt {
            Some(data) => data.question(s.user_id, s.question_id, self.config.answer_len),
            None => (question(s.question_id + 1), self.config.answer_len),
        };
        s.question_id += 1;
        if s.history.is_empty() {
            content = system_prompt(&self.config, s.user_id) + &content;
        }
        s.history.push(Message {
            role: Role::User,
            content,
        });
        s.waiting = true;
        s.last_request_s = Some(now_s);
        Some(Launch {
            user_id: s.user_id,
            question_no: s.question_id,
            messages: s.history.clone(),
            max_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(users: u32, qps: f64, rounds: u32) -> MultiRoundConfig {
        MultiRoundConfig {
            num_users: users,
            num_rounds: rounds,
            qps,
            shared_system_prompt: 3,
            user_history_prompt: 2,
            answer_len: 5,
            init_user_id: 0,
            ramp_up: true,
            strict_concurrent_users: false,
        }
    }

    /// Steps every 0.1 s up to `until_s`, answering every question at once; returns each
    /// launch with its time.
    fn run(sessions: &mut Sessions, until_s: f64) -> Vec<(f64, Launch)> {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut k = 0u32;
        loop {
            let t = f64::from(k) * STEP_S;
            if t > until_s {
                break;
            }
            for l in sessions.step(t, &mut events) {
                sessions.answered(l.user_id, "ok".into());
                out.push((t, l));
            }
            k += 1;
        }
        out
    }

    #[test]
    fn texts_are_upstreams() {
        let c = config(1, 1.0, 2);
        assert_eq!(
            system_prompt(&c, 7),
            "Hi, here's some system prompt: hi hi hi.For user 7, here are some other context: hi hi."
        );
        assert_eq!(
            question(2),
            "Here's question #2: can you tell me a new long story with a happy ending?"
        );
    }

    /// The worked example: 10 users at 0.5 QPS, 5 rounds: G = 20 s, U = 8 s. User 1 is
    /// finished at once; user 2 asks #5 at about 8 s, user 4 asks #4 at about 4 s, and
    /// user 11 joins fresh at 0 s and asks #1 with the system prompt.
    #[test]
    fn ramp_up_staggers_users_as_upstream() {
        let mut s = Sessions::new(config(10, 0.5, 5));
        let launches = run(&mut s, 30.0);
        let first = |user: u64| {
            launches
                .iter()
                .find(|(_, l)| l.user_id == user)
                .map(|(t, l)| (*t, l.question_no, l.messages.len()))
        };
        assert_eq!(first(1), None);
        let (t, q, n) = first(2).unwrap();
        assert!((t - 8.1).abs() < 0.11, "{t}");
        assert_eq!((q, n), (5, 1));
        let (t, q, _) = first(4).unwrap();
        assert!((t - 4.1).abs() < 0.11, "{t}");
        assert_eq!(q, 4);
        assert_eq!(first(11).map(|(t, q, _)| (t, q)), Some((0.0, 1)));
        let l11 = &launches.iter().find(|(_, l)| l.user_id == 11).unwrap().1;
        assert!(l11.messages[0]
            .content
            .starts_with("Hi, here's some system prompt"));
        // User 11's second question comes G = 20 s after its first, with the history.
        let second: Vec<_> = launches.iter().filter(|(_, l)| l.user_id == 11).collect();
        assert!((second[1].0 - 20.1).abs() < 0.11, "{}", second[1].0);
        let roles: Vec<Role> = second[1].1.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
        // Users join every 8 s: user 12 at about 8 s.
        assert!(launches
            .iter()
            .any(|(t, l)| l.user_id == 12 && (t - 8.1).abs() < 0.11));
    }

    #[test]
    fn a_user_waits_for_its_answer() {
        let mut c = config(1, 10.0, 3);
        c.ramp_up = false;
        let mut s = Sessions::new(c);
        let mut events = Vec::new();
        assert_eq!(s.step(0.0, &mut events).len(), 1);
        // G = 0.1 s: due at 0.2, but the answer is not back.
        assert!(s.step(0.2, &mut events).is_empty());
        assert!(events
            .iter()
            .any(|e| matches!(e, SessionEvent::Behind { user_id: 1 })));
        s.answered(1, "a".into());
        let l = s.step(0.3, &mut events);
        assert_eq!(l[0].messages.len(), 3);
        assert_eq!(l[0].messages[1].content, "a");
    }

    #[test]
    fn a_failed_question_ends_the_conversation() {
        let mut c = config(1, 1.0, 5);
        c.ramp_up = false;
        let mut s = Sessions::new(c);
        let mut events = Vec::new();
        s.step(0.0, &mut events);
        s.failed(1);
        s.step(0.1, &mut events);
        assert_eq!(s.active(), 0);
    }

    #[test]
    fn strict_users_caps_the_active_count() {
        let mut c = config(2, 100.0, 50);
        c.ramp_up = false;
        c.strict_concurrent_users = true;
        let mut s = Sessions::new(c.clone());
        run(&mut s, 2.0);
        assert_eq!(s.active(), 2);
        // Without the cap a user joins every U = 0.245 s.
        c.strict_concurrent_users = false;
        let mut s = Sessions::new(c);
        run(&mut s, 2.0);
        assert!(s.active() > 2, "{}", s.active());
    }

    /// ShareGPT: user 1 takes the second conversation long enough (the first is too
    /// short for 2 rounds); it starts with a human turn, so the questions are turns 0 and
    /// 2, their answers capped at turns 1's and 3's recorded tokens.
    #[test]
    fn sharegpt_questions_are_the_human_turns() {
        let turns = |n: usize| {
            (0..n)
                .map(|i| {
                    format!(
                        "{{\"from\": \"x\", \"value\": \"t{i}\", \"num_tokens\": {}}}",
                        2 + i
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let text = format!(
            "[{{\"num_round\": 4, \"conversations\": [{}]}}, {{\"num_round\": 6, \"conversations\": [{}]}}, {{\"num_round\": 6, \"conversations\": [{}]}}]",
            turns(4),
            turns(6),
            turns(6)
        );
        let data = ShareGpt::parse(&text, 2).unwrap();
        assert_eq!(data.len(), 2);
        let mut c = config(1, 10.0, 2);
        c.ramp_up = false;
        let mut s = Sessions::with_questions(c, Some(data));
        let mut events = Vec::new();
        let first = s.step(0.0, &mut events);
        assert!(first[0].messages[0].content.ends_with(".t0"), "{first:?}");
        assert_eq!(first[0].max_tokens, 3);
        s.answered(1, "a".into());
        let second = s.step(0.2, &mut events);
        assert_eq!(second[0].messages[2].content, "t2");
        assert_eq!(second[0].max_tokens, 5);
        assert!(ShareGpt::parse("[]", 2)
            .unwrap_err()
            .contains("--num-rounds"));
        assert!(ShareGpt::parse("{", 2).is_err());
    }

    #[test]
    fn bad_values_name_their_flag() {
        let mut c = config(1, 0.0, 1);
        assert!(c.validate().unwrap_err().contains("--qps"));
        c.qps = 1.0;
        c.num_users = 0;
        assert!(c.validate().unwrap_err().contains("--num-users"));
    }
}
