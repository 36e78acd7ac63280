//! Many engines behind a router, in virtual time: N instances of one deployment, each with
//! its own front end, GPU prefix cache and LMCache CPU tier, and a router that picks the
//! instance of every request when the client sends it.
//!
//! The routing policies are those of vLLM's `vllm-router` and production-stack's router
//! (docs/cluster.md says what each looks at, from their public source, and where this model
//! of them stops): a router sees requests and its own count of requests in flight per
//! instance, never the engines' caches, except the KV-aware policy, which the engines' KV
//! events tell exactly what each GPU holds.

use std::collections::{HashMap, VecDeque};

use crate::remote_tier::{RemoteTier, RemoteTierConfig};
use crate::round::{
    slot_of, Backend, ClientIds, Deliveries, EngineSlots, Frontend, FrontendQueue, Placement,
};
use crate::{Engine, EngineConfig, Event, EventKind, ReqId, SimError, SimRequest, SimTime};

/// How the router picks an instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RoutingPolicy {
    /// In turn, whatever the load (`vllm-router --policy round_robin`, production-stack's
    /// `roundrobin`).
    RoundRobin,
    /// The instance with the fewest requests in flight at the router, the first on ties.
    LeastLoaded,
    /// `vllm-router --policy random`: any instance, uniformly. The draws are a fixed
    /// pseudo-random sequence (the request's number, hashed), so a run repeats; the real
    /// router's draws differ run to run.
    Random,
    /// `vllm-router --policy power_of_two`: two different instances drawn uniformly (as
    /// `Random` draws), the one with fewer requests in flight at the router, the first drawn
    /// on ties. (The real router adds loads it polls from the workers when they report
    /// them; neither vLLM nor `ldqa serve` does.)
    PowerOfTwo,
    /// `vllm-router --policy cache_aware` (0.1.17): the instance whose tree of the prompts
    /// it was sent shares the longest prefix with this one (the least loaded among equals),
    /// when that share of the prompt's tokens is over `cache_threshold`; otherwise, or
    /// whenever the loads are out of balance (the gap over `balance_abs` and the largest
    /// over `balance_rel` times the smallest), the least loaded.
    CacheAware(CacheAwareParams),
    /// `vllm-router --policy kv_aware` (0.1.17, temperature 0): the instance of least
    /// cost, `(new prefill + prefill in flight) × (requests in flight + 1)`, the first among
    /// equals, where the new prefill is the prompt less the prefix its GPU prefix cache holds
    /// (as the engines' KV events report it) and the prefill in flight is that of the
    /// requests the router sent it that have not produced a token yet; no balance check.
    KvAware,
    /// production-stack's `--routing-logic session` (`routing_logic.py`): a request of a
    /// session (a conversation) goes to the instance its session id hashes to, so a
    /// conversation stays on one instance; one without a session to the instance with the
    /// fewest requests sent to it in the last minute (its router-observed QPS), an instance
    /// never sent one first. The hash is not production-stack's ring placement of the URLs,
    /// only the same kind of fixed, even spread.
    Session,
}

/// The seed of `random`'s and `power_of_two`'s draws.
const RANDOM_SEED: u64 = 0x6c64_7161_5f72_6e67;

/// How far back `session`'s fallback counts an instance's requests (production-stack's
/// `--request-stats-window`, 60 s by default).
const QPS_WINDOW_NS: u64 = 60_000_000_000;

/// A cluster: how many instances, how requests are routed, and the KV tier they share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterSpec {
    /// Instances of the deployment (1: the engine alone).
    pub instances: usize,
    /// How the router picks an instance.
    pub policy: RoutingPolicy,
    /// A remote KV tier all instances' LMCache share; none: each has only its own tiers.
    pub remote: Option<RemoteTierConfig>,
    /// The client sends prompts as text (chat messages, a string), not token ids. A
    /// prefix-aware router (`cache-aware`, `kv-aware`) then asks every instance for the
    /// prompt's tokens (`/tokenize`) before it routes: each instance's front end prepares
    /// it once more, and the router decides when the last has answered (or after
    /// [`TOKENIZE_BUDGET_NS`], without the late ones).
    pub text_prompts: bool,
}

/// How long `vllm-router` 0.1.17 waits for the instances' tokens of a text prompt
/// (`prepare_http_kv_inputs`' budget); an instance that has not answered by then is
/// routed to as if it held nothing (`kv_aware`), or the request goes to the least loaded
/// instance (`cache_aware`).
pub const TOKENIZE_BUDGET_NS: u64 = 1_000_000_000;

impl ClusterSpec {
    /// One engine, no router, no remote tier.
    pub fn single() -> Self {
        ClusterSpec {
            instances: 1,
            policy: RoutingPolicy::RoundRobin,
            remote: None,
            text_prompts: false,
        }
    }
}

/// `cache_aware`'s knobs, with the defaults of `vllm-router` 0.1.17's command line
/// (`--cache-threshold 0.3 --balance-abs-threshold 64 --balance-rel-threshold 1.5
/// --max-tree-size 33554432`; the library's own defaults differ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheAwareParams {
    /// Share of the prompt that must match an instance's tree to go there.
    pub cache_threshold: f64,
    /// Loads are out of balance when the largest exceeds the smallest by more than this...
    pub balance_abs: u32,
    /// ...and is more than this many times the smallest.
    pub balance_rel: f64,
    /// Tokens each instance's tree keeps after an eviction (least recently routed prompts
    /// forgotten first).
    pub max_tree_tokens: u64,
    /// How often the trees are cut back to `max_tree_tokens` (`--eviction-interval-secs`).
    pub eviction_interval_ns: u64,
}

impl Default for CacheAwareParams {
    fn default() -> Self {
        CacheAwareParams {
            cache_threshold: 0.3,
            balance_abs: 64,
            balance_rel: 1.5,
            // 2^25 characters per instance; the router keys a prompt by its token ids (a
            // token-id prompt as sent, a text prompt as the worker's /tokenize gives it),
            // 8 hex characters a token.
            max_tree_tokens: 1 << 22,
            eviction_interval_ns: 120_000_000_000,
        }
    }
}

impl RoutingPolicy {
    /// The name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            RoutingPolicy::RoundRobin => "round-robin",
            RoutingPolicy::LeastLoaded => "least-loaded",
            RoutingPolicy::Random => "random",
            RoutingPolicy::PowerOfTwo => "power-of-two",
            RoutingPolicy::CacheAware(_) => "cache-aware",
            RoutingPolicy::KvAware => "kv-aware",
            RoutingPolicy::Session => "session",
        }
    }

    /// Whether it reads the prompt's tokens (from every instance, for a text prompt).
    fn reads_prompt_tokens(&self) -> bool {
        matches!(self, RoutingPolicy::CacheAware(_) | RoutingPolicy::KvAware)
    }
}

/// The prompts the router sent to one instance, as its approximate tree: the prompt's
/// blocks by hash (the router's tree holds token ids; a block is the simulator's unit), with
/// when each was last sent.
#[derive(Debug, Clone, Default)]
struct RoutedTree {
    last_routed: HashMap<u64, u64>,
    tokens: u64,
}

impl RoutedTree {
    /// How many leading blocks of `hashes` the tree holds.
    fn matched(&self, hashes: &[u64]) -> usize {
        hashes
            .iter()
            .take_while(|h| self.last_routed.contains_key(h))
            .count()
    }

    fn insert(&mut self, hashes: &[u64], block_tokens: u64, now: u64) {
        for &h in hashes {
            if self.last_routed.insert(h, now).is_none() {
                self.tokens += block_tokens;
            }
        }
    }

    /// Forgets the least recently sent blocks until it holds at most `max_tokens`, as the
    /// router's periodic eviction does (a prompt's later blocks are never sent before its
    /// earlier ones, so the oldest block is a leaf).
    fn evict_to(&mut self, max_tokens: u64, block_tokens: u64) {
        if self.tokens <= max_tokens {
            return;
        }
        let excess = (self.tokens - max_tokens).div_ceil(block_tokens.max(1)) as usize;
        let mut by_age: Vec<(u64, u64)> = self.last_routed.iter().map(|(&h, &t)| (t, h)).collect();
        // The `excess` oldest, in linear time: every 120 s on a large tree, a sort would
        // dominate a long trace's simulation.
        by_age.select_nth_unstable(excess - 1);
        for &(_, h) in &by_age[..excess] {
            self.last_routed.remove(&h);
            self.tokens -= block_tokens;
        }
    }
}

/// N engines behind a router.
#[derive(Debug)]
pub struct Cluster {
    engines: Vec<Engine>,
    fronts: Vec<FrontendQueue>,
    /// Per instance, the engine's events its front end has not delivered yet.
    held: Vec<Deliveries>,
    policy: RoutingPolicy,
    /// Requests in flight per instance, as the router counts them.
    in_flight: Vec<u32>,
    /// `kv_aware`: the new prefill tokens of requests sent to each instance that have
    /// not produced a token yet, and each such request's share (by cluster id).
    prefilling: Vec<u64>,
    prefill_of: HashMap<ReqId, (usize, u64)>,
    /// `session`'s fallback: when each instance was sent its requests of the last minute,
    /// and whether it was ever sent one.
    recent: Vec<std::collections::VecDeque<SimTime>>,
    ever_sent: Vec<bool>,
    trees: Vec<RoutedTree>,
    /// `cache_aware`: when the trees are next cut back (the first request's time plus the
    /// interval, then every interval).
    next_eviction: Option<SimTime>,
    /// Requests routed so far: the round robin's turn and the trees' clock.
    routed: u64,
    /// Whether prompts are text, which a prefix-aware router has every instance tokenize.
    text_prompts: bool,
    /// For the request being routed: which instances gave its tokens in time (all, unless
    /// the router tokenized a text prompt and some answered late).
    answered: Vec<bool>,
    /// Text prompts under a prefix-aware router: requests whose tokens the router is still
    /// waiting for, in the order it will decide them.
    waiting: VecDeque<Waiting>,
    /// The client's ids (a slot per request, reused once it has ended), where each went.
    ids: ClientIds,
    /// Per instance, the engine's request slots → the client's.
    engine_slots: Vec<EngineSlots>,
    scratch: Vec<Event>,
}

/// A request the router has not placed yet: it decides at `decided`.
#[derive(Debug)]
struct Waiting {
    decided: SimTime,
    slot: u32,
    req: SimRequest,
    session: Option<u64>,
    answered: Vec<bool>,
}

impl Cluster {
    /// `spec.instances` copies of `engine` (idle), each behind its own `frontend`, sharing
    /// `spec.remote` when given.
    pub fn new(engine: &Engine, spec: &ClusterSpec, frontend: &Frontend) -> Result<Self, SimError> {
        let (instances, policy) = (spec.instances, spec.policy);
        if instances == 0 || instances > 1024 {
            return Err(SimError::InvalidConfig {
                field: "instances",
                reason: format!("must be 1 to 1024, not {instances}"),
            });
        }
        let mut engines = vec![engine.clone(); instances];
        if let Some(r) = spec.remote.map(RemoteTier::shared) {
            for e in &mut engines {
                e.attach_remote_tier(r.clone());
            }
        }
        Ok(Cluster {
            engines,
            fronts: vec![FrontendQueue::new(*frontend); instances],
            held: (0..instances).map(|_| Deliveries::default()).collect(),
            policy,
            in_flight: vec![0; instances],
            prefilling: vec![0; instances],
            prefill_of: HashMap::new(),
            recent: vec![std::collections::VecDeque::new(); instances],
            ever_sent: vec![false; instances],
            trees: vec![RoutedTree::default(); instances],
            next_eviction: None,
            routed: 0,
            text_prompts: spec.text_prompts,
            answered: vec![true; instances],
            waiting: VecDeque::new(),
            ids: ClientIds::default(),
            engine_slots: vec![EngineSlots::default(); instances],
            scratch: Vec::new(),
        })
    }

    /// The instance with the fewest requests in flight at the router, the first on ties.
    fn least_loaded(&self) -> usize {
        (0..self.in_flight.len())
            .min_by_key(|&k| (self.in_flight[k], k))
            .expect("invariant: at least one instance")
    }

    /// The `k`-th draw for the request being routed: a number below `n`, from the
    /// request's number hashed (a fixed sequence, so that a run repeats).
    fn draw(&self, k: u64, n: usize) -> usize {
        let z = crate::prompt::mix(self.routed.wrapping_mul(2).wrapping_add(k) ^ RANDOM_SEED);
        (z % n as u64) as usize
    }

    /// `power_of_two`: of two different instances drawn, the less loaded, the first on ties.
    fn power_of_two(&self) -> usize {
        let n = self.engines.len();
        if n == 1 {
            return 0;
        }
        let a = self.draw(0, n);
        let b = self.draw(1, n - 1);
        let b = if b >= a { b + 1 } else { b };
        if self.in_flight[b] < self.in_flight[a] {
            b
        } else {
            a
        }
    }

    /// The instance for `req` (of `session`, sent at `at`), and (`kv_aware`) the prefill it
    /// will have to compute there.
    fn route(
        &mut self,
        req: &SimRequest,
        session: Option<u64>,
        at: SimTime,
    ) -> (usize, Option<u64>) {
        self.routed += 1;
        let n = self.engines.len();
        match self.policy {
            RoutingPolicy::Session => (self.route_session(session, at), None),
            RoutingPolicy::RoundRobin => (((self.routed - 1) % n as u64) as usize, None),
            RoutingPolicy::LeastLoaded => (self.least_loaded(), None),
            RoutingPolicy::Random => (self.draw(0, n), None),
            RoutingPolicy::PowerOfTwo => (self.power_of_two(), None),
            RoutingPolicy::KvAware => {
                let (k, prefill) = self.route_kv_aware(req);
                (k, Some(prefill))
            }
            RoutingPolicy::CacheAware(p) => (self.route_cache_aware(req, &p, at), None),
        }
    }

    /// `session`: the session's hash, else the lowest router-observed QPS.
    fn route_session(&mut self, session: Option<u64>, at: SimTime) -> usize {
        let n = self.engines.len();
        let k = match session {
            Some(s) => (crate::prompt::mix(s) % n as u64) as usize,
            None => {
                let since = SimTime(at.0.saturating_sub(QPS_WINDOW_NS));
                for recent in &mut self.recent {
                    while recent.front().is_some_and(|&t| t < since) {
                        recent.pop_front();
                    }
                }
                match self.ever_sent.iter().position(|&sent| !sent) {
                    Some(fresh) => fresh,
                    None => (0..n)
                        .min_by_key(|&k| (self.recent[k].len(), k))
                        .expect("invariant: at least one instance"),
                }
            }
        };
        self.recent[k].push_back(at);
        self.ever_sent[k] = true;
        k
    }

    /// `kv_aware`'s least cost (see [`RoutingPolicy::KvAware`]), the first on ties.
    fn route_kv_aware(&self, req: &SimRequest) -> (usize, u64) {
        let hashes = self.prompt_block_hashes(req);
        (0..self.engines.len())
            .map(|k| {
                let cached = if self.answered[k] {
                    self.engines[k].gpu_prefix_hit_tokens(&hashes, req.prompt_tokens)
                } else {
                    0
                };
                let prefill = req.prompt_tokens - cached;
                let cost =
                    u128::from(prefill + self.prefilling[k]) * u128::from(self.in_flight[k] + 1);
                (cost, k, prefill)
            })
            .min()
            .map(|(_, k, prefill)| (k, prefill))
            .expect("invariant: at least one instance")
    }

    /// The hashes of the prompt's full engine blocks, as every instance names them.
    fn prompt_block_hashes(&self, req: &SimRequest) -> Vec<u64> {
        let bs = self.engines[0].config().block_size_tokens;
        let mut hashes = Vec::new();
        req.key
            .block_hashes(req.prompt_tokens / u64::from(bs), bs, &mut hashes);
        hashes
    }

    /// `cache_aware` (see [`RoutingPolicy::CacheAware`]), as `vllm-router` 0.1.17's
    /// `select_prepared` decides: each instance's own matched share, the least loaded among
    /// the best (the first on ties) when the best is over the threshold and the loads are in
    /// balance, else the least loaded of all; the prompt joins the chosen one's tree.
    fn route_cache_aware(&mut self, req: &SimRequest, p: &CacheAwareParams, at: SimTime) -> usize {
        self.evict_trees_when_due(p, at);
        if self.answered.contains(&false) {
            return self.least_loaded(); // "missing_tokens": no tree, no insert
        }
        let bs = u64::from(self.engines[0].config().block_size_tokens);
        let hashes = self.prompt_block_hashes(req);
        let matched: Vec<usize> = self.trees.iter().map(|t| t.matched(&hashes)).collect();
        let best = matched.iter().copied().max().unwrap_or(0);
        let share = (best as u64 * bs) as f64 / req.prompt_tokens.max(1) as f64;
        let (max, min) = (
            *self.in_flight.iter().max().unwrap_or(&0),
            *self.in_flight.iter().min().unwrap_or(&0),
        );
        let imbalanced =
            max - min > p.balance_abs && f64::from(max) > f64::from(min) * p.balance_rel;
        let use_prefix = !imbalanced && share > p.cache_threshold;
        let k = (0..self.engines.len())
            .filter(|&k| !use_prefix || matched[k] == best)
            .min_by_key(|&k| (self.in_flight[k], k))
            .expect("invariant: at least one instance");
        self.trees[k].insert(&hashes, bs, self.routed);
        k
    }

    /// The router's eviction thread, in virtual time: every interval from the first request.
    fn evict_trees_when_due(&mut self, p: &CacheAwareParams, at: SimTime) {
        let interval = p.eviction_interval_ns.max(1);
        let due = *self
            .next_eviction
            .get_or_insert(SimTime(at.0.saturating_add(interval)));
        if at < due {
            return;
        }
        let bs = u64::from(self.engines[0].config().block_size_tokens);
        for tree in &mut self.trees {
            tree.evict_to(p.max_tree_tokens, bs);
        }
        let periods = (at.0 - due.0) / interval + 1;
        self.next_eviction = Some(SimTime(due.0.saturating_add(periods * interval)));
    }

    /// A prefix-aware router's `/tokenize` of a text prompt received at `received` on every
    /// instance: each front end prepares it in turn with its other work, and the router
    /// decides when the last answers, or when its budget ends (then without the late
    /// ones). When it decides, and which instances had answered. The front ends take jobs
    /// in the order they arrive: the request's own preparation waits for the decision
    /// ([`Cluster::advance_to`]).
    fn tokenize_everywhere(
        &mut self,
        received: SimTime,
        prompt_tokens: u64,
    ) -> (SimTime, Vec<bool>) {
        let deadline = received.plus_ns(TOKENIZE_BUDGET_NS);
        let mut decided = received;
        let answered = self
            .fronts
            .iter_mut()
            .map(|front| {
                let done = front.arrival(received, prompt_tokens);
                decided = decided.max(done.min(deadline));
                done <= deadline
            })
            .collect();
        (decided, answered)
    }

    /// Routes the request in `slot` at `at` and hands it to the chosen instance's front end.
    fn place(
        &mut self,
        slot: u32,
        req: SimRequest,
        session: Option<u64>,
        at: SimTime,
    ) -> Result<(), SimError> {
        let (k, prefill) = self.route(&req, session, at);
        let arrival = self.fronts[k].arrival(at, req.prompt_tokens);
        let engine_id = self.engines[k].submit(arrival, req)?;
        self.engine_slots[k].bind(engine_id, slot);
        self.ids.place(
            slot,
            Placement {
                instance: k as u32,
                arrival,
            },
        );
        self.in_flight[k] += 1;
        if let Some(prefill) = prefill {
            self.prefilling[k] += prefill;
            let id = self.ids.id_of(slot);
            self.prefill_of.insert(id, (k, prefill));
        }
        Ok(())
    }

    /// Runs every engine up to `t`; their events, under the client's ids, to `out`.
    fn advance_engines(&mut self, t: SimTime, out: &mut Vec<Event>) -> Result<(), SimError> {
        // Taken for the loop (the ids need `self`), put back after: its buffer is reused.
        let mut scratch = std::mem::take(&mut self.scratch);
        for k in 0..self.engines.len() {
            self.engines[k].advance_to(t, &mut scratch)?;
            // What the client (and the router) see is each front end's delivery.
            let (ids, slots) = (&self.ids, &self.engine_slots[k]);
            self.held[k].hold(&mut self.fronts[k], &mut scratch, |id| {
                ids.id_of(slots.client_slot(id))
            });
            self.held[k].release(t, &mut scratch);
            for ev in scratch.drain(..) {
                let first_token = matches!(ev.kind, EventKind::Token { index: 0 });
                if ev.kind.is_terminal() {
                    self.in_flight[k] = self.in_flight[k].saturating_sub(1);
                    // Its placement stays readable until the slot is taken again.
                    self.ids.free(slot_of(ev.req));
                }
                if first_token || ev.kind.is_terminal() {
                    if let Some((k, prefill)) = self.prefill_of.remove(&ev.req) {
                        self.prefilling[k] -= prefill;
                    }
                }
                out.push(ev);
            }
        }
        self.scratch = scratch;
        Ok(())
    }
}

impl Backend for Cluster {
    fn now(&self) -> SimTime {
        self.engines[0].now()
    }

    fn config(&self) -> &EngineConfig {
        self.engines[0].config()
    }

    fn send(
        &mut self,
        received: SimTime,
        req: SimRequest,
        session: Option<u64>,
    ) -> Result<ReqId, SimError> {
        let (slot, id) = self.ids.issue();
        if self.text_prompts && self.policy.reads_prompt_tokens() {
            // Decided when the instances have answered: by then requests sent meanwhile
            // have queued their own /tokenize ahead of this one's preparation.
            let (decided, answered) = self.tokenize_everywhere(received, req.prompt_tokens);
            self.waiting.push_back(Waiting {
                decided,
                slot,
                req,
                session,
                answered,
            });
        } else {
            self.place(slot, req, session, received)?;
        }
        Ok(id)
    }

    fn placement(&self, id: ReqId) -> Option<Placement> {
        self.ids.placement(id)
    }

    fn next_event_time(&self) -> Option<SimTime> {
        let decision = self.waiting.front().map(|w| w.decided);
        self.engines
            .iter()
            .filter_map(Engine::next_event_time)
            .chain(self.held.iter().filter_map(Deliveries::next_time))
            .chain(decision)
            .min()
    }

    fn advance_to(&mut self, t: SimTime, out: &mut Vec<Event>) -> Result<(), SimError> {
        let first = out.len();
        // A request's decision comes in time among the engines' events: they run up to it,
        // then the router places it (the loads it sees are those of that moment).
        while let Some(w) = self.waiting.pop_front() {
            if w.decided > t {
                self.waiting.push_front(w);
                break;
            }
            self.advance_engines(w.decided, out)?;
            self.answered = w.answered;
            self.place(w.slot, w.req, w.session, w.decided)?;
        }
        self.advance_engines(t, out)?;
        // One timeline: by time, instance order among equals (the sort is stable).
        out[first..].sort_by_key(|ev| ev.at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::RoutedTree;

    #[test]
    fn eviction_forgets_the_least_recently_sent_blocks_first() {
        let mut tree = RoutedTree::default();
        tree.insert(&[1, 2], 16, 1); // A
        tree.insert(&[7, 8], 16, 2); // B
        tree.insert(&[1, 2, 3], 16, 3); // A, and one block more
        assert_eq!((tree.matched(&[7, 8]), tree.tokens), (2, 80));
        tree.evict_to(80, 16);
        assert_eq!(tree.tokens, 80, "at the size: nothing to do");
        tree.evict_to(48, 16);
        assert_eq!(tree.matched(&[7, 8]), 0, "B, the oldest, is gone");
        assert_eq!(tree.matched(&[1, 2, 3, 4]), 3, "A is kept whole");
    }
}
