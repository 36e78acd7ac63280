//! The planned workload: three rounds of [`RequestSpec`]s and the texts behind them.

use ldqa_model::{Arrival, Plan, PlannedRound, PromptSource, RequestSpec, RoundKind};

use crate::approx::{approx_token_count, number_tokens};

use crate::documents::{pre_warmup_into, Documents, PRE_WARMUP_PROMPTS, PRE_WARMUP_WORDS};
use crate::pyrandom::PyRandom;
use crate::tokenized::{self, Tok};
use crate::{RepeatMode, TextSource, WorkloadConfig, WorkloadError};

/// Bounds of upstream's miss prefix, `random.randint(-10_000_000, 10_000_000)`.
pub const MISS_PREFIX_RANGE: (i64, i64) = (-10_000_000, 10_000_000);

/// A planned Long Doc QA run. Prompts are rendered on demand through [`PromptSource`].
///
/// Document ids `0..num_documents()` are the documents; the pre-warmup prompts use ids
/// `num_documents()..num_documents() + 5`, so that every spec of every round renders
/// through the same [`PromptSource::write_prompt`].
#[derive(Debug, Clone)]
pub struct Workload {
    /// Untimed prompts sent first (upstream's 5 `"{i}xx hi…"` prompts of 1000 words).
    pub pre_warmup: Vec<RequestSpec>,
    /// Each document once, in order; all counted as misses (upstream's CSV says so).
    pub warmup: Vec<RequestSpec>,
    /// The measured round: documents repeated by mode, misses placed by the ratio.
    pub query: Vec<RequestSpec>,
    documents: Documents,
}

/// Document ids of the query round, in upstream's `repeat_prompts` order. Consumes the
/// generator only in random mode (one `shuffle`), as upstream does.
pub fn repeat_order(
    num_documents: usize,
    repeat_count: usize,
    mode: RepeatMode,
    rng: &mut PyRandom,
) -> Vec<usize> {
    let tiled = || (0..repeat_count).flat_map(|_| 0..num_documents);
    match mode {
        RepeatMode::Tile => tiled().collect(),
        RepeatMode::Interleave => (0..num_documents)
            .flat_map(|d| std::iter::repeat_n(d, repeat_count))
            .collect(),
        RepeatMode::Random => {
            let mut order: Vec<usize> = tiled().collect();
            rng.shuffle(&mut order);
            order
        }
    }
}

impl Workload {
    /// Plans the run: validates `config`, loads the tokenizer if one is named and builds
    /// exact-length documents with it, then orders the query round and draws the miss
    /// prefixes with Python's `random` seeded by `shuffle_seed`, exactly as upstream.
    pub fn build(config: &WorkloadConfig) -> Result<Workload, WorkloadError> {
        config.validate()?;
        let n = config.num_documents;
        let target = config.document_length;
        let tok = config
            .tokenizer
            .as_deref()
            .map(tokenized::load)
            .transpose()?;
        let documents = match (config.text, &tok) {
            (TextSource::Hi, None) => Documents::Hi(vec![target; n]),
            (TextSource::Hi, Some(t)) => Documents::Hi(tokenized::exact_hi_words(t, n, target)?),
            (TextSource::Random, Some(t)) => Documents::Spooled(std::sync::Arc::new(
                tokenized::random_documents(t, n, target, config.shuffle_seed)?,
            )),
            (TextSource::Random, None) => return Err(WorkloadError::RandomTextNeedsTokenizer),
        };

        // Upstream: random.seed(shuffle_seed); repeat_prompts(...); add_cache_misses(...).
        let mut rng = PyRandom::new(config.shuffle_seed);
        let order = repeat_order(n, config.repeat_count, config.repeat_mode, &mut rng);
        let mut query = Vec::with_capacity(order.len());
        for (prompt_id, document_id) in order.into_iter().enumerate() {
            let is_miss = config.hit_miss.is_some_and(|r| r.is_miss(prompt_id));
            let miss_prefix = is_miss.then(|| {
                let (lo, hi) = MISS_PREFIX_RANGE;
                format!("{} ", rng.randint(lo, hi))
            });
            query.push(RequestSpec {
                prompt_id,
                document_id,
                is_miss,
                miss_prefix,
                prompt_tokens: 0,
            });
        }
        let warmup = (0..n).map(|d| spec(d, d, true)).collect();
        let pre_warmup = (0..PRE_WARMUP_PROMPTS)
            .map(|i| spec(i, n + i, true))
            .collect();

        let mut workload = Workload {
            pre_warmup,
            warmup,
            query,
            documents,
        };
        match &tok {
            Some(tok) => workload.count_tokens(tok, target)?,
            None => workload.approximate_tokens(),
        }
        Ok(workload)
    }

    /// Fills `prompt_tokens` of every spec with the approximation of [`crate::approx`]
    /// (no tokenizer: the documents are `"{i} hi hi …"`).
    fn approximate_tokens(&mut self) {
        let mut buf = String::with_capacity(4 * PRE_WARMUP_WORDS);
        for s in &mut self.pre_warmup {
            buf.clear();
            pre_warmup_into(s.prompt_id, &mut buf);
            s.prompt_tokens = approx_token_count(&buf);
        }
        let Documents::Hi(words) = &self.documents else {
            unreachable!("invariant: random-text documents need a tokenizer (checked in build)")
        };
        let document = |id: usize| number_tokens(id) + words[id] as u64;
        for s in &mut self.warmup {
            s.prompt_tokens = document(s.document_id);
        }
        for s in &mut self.query {
            let prefix = s.miss_prefix.as_deref().map_or(0, approx_token_count);
            s.prompt_tokens = prefix + document(s.document_id);
        }
    }

    /// The run as a [`Plan`]: pre-warmup, warmup and query rounds, each in closed loop
    /// with at most `max_inflight` in flight, the query round after `pause_after_warmup_ns`.
    pub fn plan(&self, max_inflight: usize, pause_after_warmup_ns: u64) -> Plan {
        let round = |kind, requests: &[RequestSpec], pause_before_ns| PlannedRound {
            kind,
            requests: requests.to_vec(),
            arrival: Arrival::ClosedLoop { max_inflight },
            pause_before_ns,
            send_at_ns: Vec::new(),
        };
        Plan {
            rounds: vec![
                round(RoundKind::PreWarmup, &self.pre_warmup, 0),
                round(RoundKind::Warmup, &self.warmup, 0),
                round(RoundKind::Query, &self.query, pause_after_warmup_ns),
            ],
        }
    }

    /// [`Workload::plan`] with the warmup and query rounds open loop: each request sent
    /// at its time drawn from `open` (the pre-warmup stays closed loop).
    pub fn plan_open_loop(
        &self,
        max_inflight: usize,
        open: &crate::arrivals::OpenLoop,
        pause_after_warmup_ns: u64,
    ) -> Plan {
        let mut plan = self.plan(max_inflight, pause_after_warmup_ns);
        for (stream, round) in plan.rounds.iter_mut().enumerate() {
            if round.kind == RoundKind::PreWarmup {
                continue;
            }
            round.arrival = Arrival::OpenLoop {
                max_concurrency: open.max_concurrency,
            };
            round.send_at_ns = open.send_times_ns(round.requests.len(), stream as u64);
        }
        plan
    }

    /// Fills `prompt_tokens` of every spec (documents are exactly `target` tokens).
    fn count_tokens(&mut self, tok: &Tok, target: usize) -> Result<(), WorkloadError> {
        let mut buf = String::with_capacity(4 * PRE_WARMUP_WORDS);
        let mut doc = String::new();
        for s in &mut self.pre_warmup {
            buf.clear();
            pre_warmup_into(s.prompt_id, &mut buf);
            s.prompt_tokens = tok.count(&buf)? as u64;
        }
        for s in &mut self.warmup {
            s.prompt_tokens = target as u64;
        }
        for s in &mut self.query {
            let tokens = match (&s.miss_prefix, &self.documents) {
                (None, _) => target as u64,
                (Some(p), Documents::Hi(words)) => tokenized::prefixed_hi_tokens(
                    tok,
                    p,
                    s.document_id,
                    words[s.document_id],
                    target,
                )?,
                (Some(p), Documents::Spooled(spool)) => {
                    doc.clear();
                    spool
                        .read_into(s.document_id, &mut doc)
                        .map_err(WorkloadError::spool)?;
                    tokenized::prefixed_tokens(tok, p, &doc, target)?
                }
            };
            s.prompt_tokens = tokens;
        }
        Ok(())
    }

    /// Number of documents (not counting pre-warmup prompts).
    pub fn num_documents(&self) -> usize {
        self.documents.len()
    }

    /// Whether `document_id` names a pre-warmup prompt rather than a document.
    pub fn is_pre_warmup_id(&self, document_id: usize) -> bool {
        (self.num_documents()..self.num_documents() + PRE_WARMUP_PROMPTS).contains(&document_id)
    }

    /// Writes document `document_id` (no miss prefix) into `buf`, replacing its contents;
    /// returns false, leaving `buf` empty, for an unknown id.
    pub fn write_document(&self, document_id: usize, buf: &mut String) -> bool {
        buf.clear();
        self.documents.append(document_id, buf)
    }

    /// Length in bytes of document `document_id`, without rendering it.
    pub fn document_len_bytes(&self, document_id: usize) -> Option<usize> {
        self.documents.len_bytes(document_id)
    }
}

fn spec(prompt_id: usize, document_id: usize, is_miss: bool) -> RequestSpec {
    RequestSpec {
        prompt_id,
        document_id,
        is_miss,
        miss_prefix: None,
        prompt_tokens: 0,
    }
}

impl PromptSource for Workload {
    /// Miss prefix, then the document (or pre-warmup prompt). Specs not planned by this
    /// workload render as their miss prefix alone.
    fn write_prompt(&self, spec: &RequestSpec, buf: &mut String) {
        buf.clear();
        if let Some(p) = &spec.miss_prefix {
            buf.push_str(p);
        }
        if !self.documents.append(spec.document_id, buf) && self.is_pre_warmup_id(spec.document_id)
        {
            pre_warmup_into(spec.document_id - self.num_documents(), buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(mode: RepeatMode) -> WorkloadConfig {
        WorkloadConfig {
            num_documents: 3,
            document_length: 4,
            repeat_count: 2,
            repeat_mode: mode,
            hit_miss: Some("1:1".parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn tile_and_interleave_orders() {
        let w = Workload::build(&small(RepeatMode::Tile)).unwrap();
        let docs: Vec<usize> = w.query.iter().map(|s| s.document_id).collect();
        assert_eq!(docs, [0, 1, 2, 0, 1, 2]);
        let w = Workload::build(&small(RepeatMode::Interleave)).unwrap();
        let docs: Vec<usize> = w.query.iter().map(|s| s.document_id).collect();
        assert_eq!(docs, [0, 0, 1, 1, 2, 2]);
        let misses: Vec<bool> = w.query.iter().map(|s| s.is_miss).collect();
        assert_eq!(misses, [false, true, false, true, false, true]);
        assert!(w.query.iter().all(|s| s.is_miss == s.miss_prefix.is_some()));
    }

    #[test]
    fn renders_every_round() {
        let w = Workload::build(&small(RepeatMode::Tile)).unwrap();
        let mut buf = String::from("stale");
        w.write_prompt(&w.warmup[2], &mut buf);
        assert_eq!(buf, "2 hi hi hi hi");
        let miss = &w.query[1];
        w.write_prompt(miss, &mut buf);
        assert_eq!(
            buf,
            format!("{}1 hi hi hi hi", miss.miss_prefix.as_deref().unwrap())
        );
        w.write_prompt(&w.pre_warmup[1], &mut buf);
        assert!(buf.starts_with("1xxhi hi ") && buf.split(' ').count() == 1000);
        assert!(w
            .pre_warmup
            .iter()
            .all(|s| w.is_pre_warmup_id(s.document_id)));
        assert!(w.warmup.iter().all(|s| s.is_miss));
        let counted = |s: &RequestSpec| {
            let mut text = String::new();
            w.write_prompt(s, &mut text);
            approx_token_count(&text)
        };
        for s in w.pre_warmup.iter().chain(&w.warmup).chain(&w.query) {
            assert_eq!(s.prompt_tokens, counted(s), "{s:?}");
        }
        assert_eq!(w.warmup[1].prompt_tokens, 1 + 4);
        assert_eq!(w.pre_warmup[0].prompt_tokens, 1 + 1 + 999);
        let unknown = RequestSpec {
            document_id: 99,
            ..w.warmup[0].clone()
        };
        w.write_prompt(&unknown, &mut buf);
        assert_eq!(buf, "");
        assert!(!w.write_document(99, &mut buf));
        assert!(w.write_document(1, &mut buf) && buf == "1 hi hi hi hi");
        assert_eq!(w.document_len_bytes(1), Some(buf.len()));
    }

    #[test]
    fn build_rejects_invalid_config() {
        let cfg = WorkloadConfig {
            repeat_count: 0,
            ..Default::default()
        };
        assert_eq!(Workload::build(&cfg).unwrap_err().flag(), "--repeat-count");
        let cfg = WorkloadConfig {
            tokenizer: Some("/nonexistent/tok".into()),
            ..Default::default()
        };
        assert!(matches!(
            Workload::build(&cfg),
            Err(WorkloadError::TokenizerNotFound { .. })
        ));
    }
}
