//! The engine: requests in, events out, on a virtual clock.
//!
//! One step function ([`Engine::advance_to`] → `start_step` in `scheduler.rs`) serves
//! both drivers: the batch round driver ([`crate::run_round`]) and an incremental
//! caller such as an HTTP server, which submits requests at their arrival times,
//! advances the clock and forwards the events.
//!
//! Timing model: a step is decided at its start time `s` from the requests that
//! arrived by `s`; it lasts its cost; its events (tokens, finishes) carry its end
//! time. A request submitted while a step runs waits for the next step. State is
//! updated when the step is decided, events are released when the clock reaches its end.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use ldqa_model::PrefixSource;

use crate::block_pool::BlockPool;
use crate::cost::CostModel;
use crate::cpu_tier::CpuTier;
use crate::remote_tier::SharedRemoteTier;
use crate::{Efficiencies, EngineConfig, Event, EventKind, ReqId, SimError, SimRequest, SimTime};

/// Counters and gauges, named after the vLLM / LMCache metrics they stand for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Engine steps run.
    pub steps: u64,
    /// Virtual time spent in steps.
    pub busy_ns: u64,
    /// `vllm:prefix_cache_queries`: prompt tokens looked up in the GPU prefix cache.
    pub prefix_cache_queries_tokens: u64,
    /// `vllm:prefix_cache_hits`: of those, tokens found.
    pub prefix_cache_hits_tokens: u64,
    /// Tokens loaded from the LMCache CPU tier.
    pub lmcache_hit_tokens: u64,
    /// Tokens stored to the LMCache CPU tier.
    pub lmcache_stored_tokens: u64,
    /// Prompt tokens computed by prefill.
    pub prompt_tokens_computed: u64,
    /// Output tokens generated.
    pub generation_tokens: u64,
    /// Requests preempted (recompute) for lack of KV blocks.
    pub preemptions: u64,
    /// Requests finished.
    pub finished: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Waiting,
    Running,
}

#[derive(Debug, Clone)]
pub(crate) struct ReqState {
    pub id: ReqId,
    pub req: SimRequest,
    pub status: Status,
    pub num_computed: u64,
    pub num_output: u32,
    pub num_hashed_blocks: u64,
    pub saved_chunks: u64,
    pub blocks: Vec<u32>,
    pub prefix: Option<PrefixSource>,
    /// Start of the step that first scheduled it.
    pub first_scheduled: Option<SimTime>,
    /// The hashes of the prompt's full blocks, computed at the first admission attempt:
    /// they are looked up at every attempt (again after a preemption) and cached as the
    /// prompt is computed, so one computation saves two or more.
    pub prompt_block_hashes: Vec<u64>,
}

impl ReqState {
    pub fn total_tokens(&self) -> u64 {
        self.req.prompt_tokens + u64::from(self.num_output)
    }

    /// The hash of block `idx` (blocks of `block_tokens`), the prompt's from the memo.
    #[inline]
    pub fn block_hash(&mut self, idx: u64, block_tokens: u32) -> u64 {
        match usize::try_from(idx)
            .ok()
            .and_then(|i| self.prompt_block_hashes.get(i))
        {
            Some(&h) => h,
            None => self.block_hash_unmemoised(idx, block_tokens),
        }
    }

    /// Fills the memo on first use; past the prompt's full blocks, computes the hash.
    fn block_hash_unmemoised(&mut self, idx: u64, block_tokens: u32) -> u64 {
        if self.prompt_block_hashes.is_empty() {
            let full = self.req.prompt_tokens / u64::from(block_tokens);
            self.req
                .key
                .block_hashes(full, block_tokens, &mut self.prompt_block_hashes);
            if let Some(&h) = usize::try_from(idx)
                .ok()
                .and_then(|i| self.prompt_block_hashes.get(i))
            {
                return h;
            }
        }
        self.req.key.block_hash(idx, block_tokens)
    }
}

/// The simulated engine (vLLM, or vLLM + LMCache).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) cost: CostModel,
    pub(crate) pool: BlockPool,
    pub(crate) cpu: Option<CpuTier>,
    /// The KV tier shared with the other instances of a cluster (LMCache only).
    pub(crate) remote: Option<SharedRemoteTier>,
    pub(crate) slots: Vec<Option<ReqState>>,
    free_slots: Vec<u32>,
    retired_slots: Vec<u32>,
    next_seq: u64,
    pending: BinaryHeap<Reverse<(SimTime, u64, u32)>>,
    pub(crate) waiting: VecDeque<u32>,
    pub(crate) running: Vec<u32>,
    now: SimTime,
    pub(crate) free_at: SimTime,
    in_flight_end: Option<SimTime>,
    pub(crate) step_events: Vec<Event>,
    ready: Vec<Event>,
    pub(crate) stats: EngineStats,
    pub(crate) scratch_hits: Vec<u32>,
    pub(crate) scheduled: Vec<(u32, u64)>,
}

impl Engine {
    /// A fresh engine with empty caches at time zero.
    pub fn new(config: EngineConfig, eff: &Efficiencies) -> Result<Self, SimError> {
        config.validate()?;
        eff.validate()?;
        let cost = CostModel::new(&config, eff);
        let mut pool = BlockPool::new(config.gpu_blocks());
        pool.reuse_uncached_first(config.uncached_blocks_reused_first);
        let cpu = match config.mode {
            crate::Mode::Vllm => None,
            crate::Mode::Lmcache { .. } => Some(CpuTier::new(config.cpu_chunks())),
        };
        Ok(Engine {
            config,
            cost,
            pool,
            cpu,
            remote: None,
            slots: Vec::new(),
            free_slots: Vec::new(),
            retired_slots: Vec::new(),
            next_seq: 0,
            pending: BinaryHeap::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            now: SimTime::ZERO,
            free_at: SimTime::ZERO,
            in_flight_end: None,
            step_events: Vec::new(),
            ready: Vec::new(),
            stats: EngineStats::default(),
            scratch_hits: Vec::new(),
            scheduled: Vec::new(),
        })
    }

    /// Shares `tier` with this engine: LMCache looks up there the chunks its CPU tier
    /// lacks and puts there every chunk it stores. A vLLM engine (no LMCache) ignores it.
    pub fn attach_remote_tier(&mut self, tier: SharedRemoteTier) {
        if self.cpu.is_some() {
            self.remote = Some(tier);
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The engine clock: everything up to here has been decided.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Requests scheduled (running) now.
    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// Requests waiting: arrived but not scheduled, or submitted and not yet arrived.
    pub fn num_waiting(&self) -> usize {
        self.waiting.len() + self.pending.len()
    }

    /// Fraction of GPU KV blocks held by requests (vLLM's `gpu_cache_usage_perc`, 0..1).
    pub fn gpu_cache_usage(&self) -> f64 {
        let n = self.pool.num_usable();
        f64::from(n - self.pool.num_free()) / f64::from(n.max(1))
    }

    /// Capacity of the LMCache CPU tier in chunks (0 in vLLM mode).
    pub fn cpu_capacity_chunks(&self) -> u32 {
        self.cpu.as_ref().map_or(0, |c| c.capacity())
    }

    /// Chunks held by the LMCache CPU tier (0 in vLLM mode).
    pub fn cpu_chunks_used(&self) -> usize {
        self.cpu.as_ref().map_or(0, |c| c.len())
    }

    /// Submits `req`, arriving at the engine at `at` (≥ [`Engine::now`]).
    pub fn submit(&mut self, at: SimTime, req: SimRequest) -> Result<ReqId, SimError> {
        if at < self.now {
            return Err(SimError::SubmitInPast {
                at_ns: at.0,
                now_ns: self.now.0,
            });
        }
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = ReqId(((seq & 0xffff_ffff) << 32) | u64::from(slot));
        self.slots[slot as usize] = Some(ReqState {
            id,
            req,
            status: Status::Pending,
            num_computed: 0,
            num_output: 0,
            num_hashed_blocks: 0,
            saved_chunks: 0,
            blocks: Vec::new(),
            prefix: None,
            first_scheduled: None,
            prompt_block_hashes: Vec::new(),
        });
        self.pending.push(Reverse((at, seq, slot)));
        Ok(id)
    }

    /// Aborts a request (client gone): frees its blocks now; its `Aborted` event is
    /// emitted at [`Engine::now`] by the next [`Engine::advance_to`]. Returns false when
    /// the request already ended (its terminal event is then already decided).
    pub fn abort(&mut self, id: ReqId) -> bool {
        let slot = (id.0 & 0xffff_ffff) as u32;
        let Some(Some(state)) = self.slots.get(slot as usize) else {
            return false;
        };
        if state.id != id {
            return false;
        }
        match state.status {
            Status::Pending => {
                // Left in the heap; skipped at admission because the slot is empty or reused
                // (the sequence number does not match).
            }
            Status::Waiting => self.waiting.retain(|&s| s != slot),
            Status::Running => self.running.retain(|&s| s != slot),
        }
        let mut state = self.slots[slot as usize]
            .take()
            .expect("invariant: checked above");
        self.pool.free_request(&state.blocks);
        state.blocks.clear();
        self.free_slots.push(slot);
        self.step_events.retain(|e| e.req != id);
        self.ready.push(Event {
            at: self.now,
            req: id,
            kind: EventKind::Aborted,
        });
        true
    }

    /// Empties the GPU prefix cache (and the CPU tier) when no request holds blocks,
    /// like vLLM's `POST /reset_prefix_cache`. Returns whether it did.
    pub fn reset_prefix_cache(&mut self) -> bool {
        let ok = self.pool.reset_prefix_cache();
        if ok {
            if let Some(c) = self.cpu.as_mut() {
                c.clear();
            }
        }
        ok
    }

    /// Records the changes to the GPU prefix cache from now on, for
    /// [`Engine::take_kv_events`] (or stops).
    pub fn record_kv_events(&mut self, on: bool) {
        self.pool.record_events(on);
    }

    /// Moves the KV events recorded since the last call to `out`, in order.
    pub fn take_kv_events(&mut self, out: &mut Vec<crate::kv_events::KvEvent>) {
        self.pool.take_events(out);
    }

    /// Prompt tokens its GPU prefix cache holds now of a prompt of `prompt_tokens` whose
    /// full blocks hash to `block_hashes` (full blocks, at most the prompt less one token),
    /// without touching anything: what a KV-aware router learns from the engine's KV events.
    pub fn gpu_prefix_hit_tokens(&self, block_hashes: &[u64], prompt_tokens: u64) -> u64 {
        let bs = u64::from(self.config.block_size_tokens);
        let limit = usize::try_from(prompt_tokens.saturating_sub(1) / bs).unwrap_or(usize::MAX);
        let hits = block_hashes
            .iter()
            .take(limit)
            .take_while(|&&h| self.pool.lookup(h).is_some())
            .count() as u64;
        hits * bs
    }

    /// When something next happens: the end of the running step, the start of the next
    /// one, or `None` when the engine has nothing to do.
    pub fn next_event_time(&self) -> Option<SimTime> {
        if !self.ready.is_empty() {
            return Some(self.now);
        }
        if let Some(end) = self.in_flight_end {
            return Some(end);
        }
        self.next_start()
    }

    fn next_start(&self) -> Option<SimTime> {
        if !self.waiting.is_empty() || !self.running.is_empty() {
            Some(self.free_at.max(self.now))
        } else {
            self.pending
                .peek()
                .map(|Reverse((at, _, _))| (*at).max(self.free_at))
        }
    }

    /// Runs the engine up to `t`: steps that start at or before `t` are decided, and the
    /// events of steps that end at or before `t` are appended to `out` in time order.
    pub fn advance_to(&mut self, t: SimTime, out: &mut Vec<Event>) -> Result<(), SimError> {
        self.check_not_before_now(t)?;
        out.append(&mut self.ready);
        loop {
            if let Some(end) = self.in_flight_end {
                if end > t {
                    break;
                }
                self.complete_step(out);
                continue;
            }
            let Some(s) = self.next_start() else { break };
            if s > t {
                break;
            }
            self.admit(s, out);
            if self.waiting.is_empty() && self.running.is_empty() {
                self.free_at = s;
                continue;
            }
            let cost_ns = self.start_step(s);
            self.in_flight_end = Some(s.plus_ns(cost_ns));
        }
        self.now = t;
        Ok(())
    }

    /// The events due by `t` (those of the step in flight, if it ends by then), without
    /// deciding the next step; [`Engine::advance_to`]`(t)` does the rest.
    ///
    /// For a driver on the wall clock: the ending step's tokens should not wait while the
    /// next step is decided (13–50 µs with a thousand running requests).
    /// The engine's state is the same as if `advance_to(t)` had done it all.
    pub fn release_due(&mut self, t: SimTime, out: &mut Vec<Event>) -> Result<(), SimError> {
        self.check_not_before_now(t)?;
        out.append(&mut self.ready);
        if self.in_flight_end.is_some_and(|end| end <= t) {
            self.complete_step(out);
        }
        Ok(())
    }

    fn check_not_before_now(&self, t: SimTime) -> Result<(), SimError> {
        if t < self.now {
            return Err(SimError::TimeBackwards {
                to_ns: t.0,
                now_ns: self.now.0,
            });
        }
        Ok(())
    }

    /// Ends the step in flight: its events out, its finished requests' slots free.
    fn complete_step(&mut self, out: &mut Vec<Event>) {
        let Some(end) = self.in_flight_end.take() else {
            return;
        };
        out.append(&mut self.step_events);
        self.free_slots.append(&mut self.retired_slots);
        self.free_at = end;
    }

    /// Runs until nothing is left to do, appending every event to `out`.
    pub fn run_to_idle(&mut self, out: &mut Vec<Event>) -> Result<(), SimError> {
        while let Some(t) = self.next_event_time() {
            self.advance_to(t, out)?;
        }
        Ok(())
    }

    /// Moves requests that arrived by `s` into the waiting queue; rejects impossible ones.
    fn admit(&mut self, s: SimTime, out: &mut Vec<Event>) {
        let capacity_tokens =
            u64::from(self.pool.num_usable()) * u64::from(self.config.block_size_tokens);
        while let Some(Reverse((at, seq, slot))) = self.pending.peek().copied() {
            if at > s {
                break;
            }
            self.pending.pop();
            let Some(state) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            if (state.id.0 >> 32) != (seq & 0xffff_ffff) || state.status != Status::Pending {
                continue;
            }
            let r = &state.req;
            let needed = r.prompt_tokens + u64::from(r.max_output_tokens);
            if r.prompt_tokens == 0
                || r.max_output_tokens == 0
                || needed > capacity_tokens
                || needed > self.config.max_model_len_tokens
            {
                let id = state.id;
                self.slots[slot as usize] = None;
                self.free_slots.push(slot);
                out.push(Event {
                    at: s,
                    req: id,
                    kind: EventKind::Rejected,
                });
                continue;
            }
            state.status = Status::Waiting;
            self.waiting.push_back(slot);
        }
    }

    /// Frees the slot of a request that finished in the step being decided. The slot is
    /// reused only once the step's events are released, so that an id seen in an event
    /// never refers to a newer request.
    pub(crate) fn release_slot(&mut self, slot: u32) {
        self.slots[slot as usize] = None;
        self.retired_slots.push(slot);
    }

    /// Checks every invariant of the caches and queues (for tests).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.pool.check()?;
        if let Some(c) = &self.cpu {
            c.check()?;
        }
        let held: u64 = self
            .slots
            .iter()
            .flatten()
            .map(|s| s.blocks.len() as u64)
            .sum();
        if held != self.pool.total_refs() {
            return Err(format!(
                "requests hold {held} block refs, pool counts {}",
                self.pool.total_refs()
            ));
        }
        if self.running.len() > self.config.max_num_seqs as usize {
            return Err("more running requests than max_num_seqs".into());
        }
        for &s in &self.running {
            match &self.slots[s as usize] {
                Some(st) if st.status == Status::Running => {}
                _ => return Err(format!("running slot {s} is not a running request")),
            }
        }
        for &s in &self.waiting {
            match &self.slots[s as usize] {
                Some(st) if st.status == Status::Waiting && st.blocks.is_empty() => {}
                _ => return Err(format!("waiting slot {s} is not a waiting request")),
            }
        }
        Ok(())
    }
}
