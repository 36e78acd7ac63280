//! One engine step: vLLM V1's scheduler, LMCache's connector, the cost, the outputs.
//!
//! Follows `vllm/v1/core/sched/scheduler.py`: running requests first (decodes and
//! continuing prefills, in order, each taking up to the remaining token budget), then
//! waiting requests in arrival order while the budget and `max_num_seqs` allow. A
//! running request that cannot get a block preempts the last running request
//! (recompute: its blocks are freed and it goes back to the front of the queue), and
//! no waiting request is admitted in a step that preempted. A new request first hits
//! the GPU prefix cache (at most `tokens − 1`), then LMCache (reference B.3–B.4:
//! contiguous 256-token chunks, full hit minus one token; load = hit − GPU hit,
//! blocking, before the forward pass), and computes the rest. After the forward pass,
//! LMCache stores the new whole chunks of prompt tokens, synchronously (B.5).

use ldqa_model::PrefixSource;

use crate::cost::{context_sum, StepWork};
use crate::engine::{Engine, Status};
use crate::kv_events::KvEvent;
use crate::{Event, EventKind};

impl Engine {
    /// Decides the step starting at `s`, updates the state, buffers its events at its
    /// end, and returns its cost in nanoseconds.
    #[allow(
        clippy::too_many_lines,
        reason = "four numbered phases of vLLM's scheduler, commented in order; split per phase when it next changes"
    )]
    pub(crate) fn start_step(&mut self, s: crate::SimTime) -> u64 {
        let bs = u64::from(self.config.block_size_tokens);
        let mut budget = u64::from(self.config.max_num_batched_tokens);
        let mut work = StepWork::default();
        self.scheduled.clear();
        let mut preempted = false;

        // 1. Running requests.
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let slot = self.running[i];
            let st = self.slots[slot as usize]
                .as_ref()
                .expect("invariant: running slot");
            let n = (st.total_tokens() - st.num_computed).min(budget);
            let need = blocks_for(st.num_computed + n, bs).saturating_sub(st.blocks.len() as u64);
            let mut scheduled_self = true;
            while u64::from(self.pool.num_free()) < need {
                let victim = self.running.pop().expect("invariant: running not empty");
                self.preempt(victim);
                preempted = true;
                if victim == slot {
                    scheduled_self = false;
                    break;
                }
            }
            if !scheduled_self {
                break;
            }
            self.grow_blocks(slot, n);
            self.scheduled.push((slot, n));
            budget -= n;
            i += 1;
        }

        // 2. Waiting requests, in arrival order.
        while !preempted && budget > 0 && self.running.len() < self.config.max_num_seqs as usize {
            let Some(&slot) = self.waiting.front() else {
                break;
            };
            let Some(n) = self.try_schedule_new(s, slot, budget, &mut work) else {
                break;
            };
            self.waiting.pop_front();
            self.running.push(slot);
            self.scheduled.push((slot, n));
            budget -= n;
        }

        // 3. Work of the forward pass, and LMCache stores.
        let chunk = u64::from(self.config.lmcache_chunk_tokens);
        for k in 0..self.scheduled.len() {
            let (slot, n) = self.scheduled[k];
            let st = self.slots[slot as usize]
                .as_mut()
                .expect("invariant: scheduled slot");
            let c = st.num_computed;
            work.sequences += 1;
            work.tokens += n;
            work.attention_context_sum += context_sum(c, c + n);
            work.kv_read_tokens += c;
            if n > 1 {
                work.prefill_sequences += 1;
                work.prefill_context_sum += context_sum(c, c + n);
            } else {
                work.decode_context_tokens += c + n;
            }
            if c + n == st.total_tokens() {
                work.sampled += 1;
            }
            if c < st.req.prompt_tokens {
                let prompt_end = (c + n).min(st.req.prompt_tokens);
                self.stats.prompt_tokens_computed += prompt_end - c;
                if let Some(cpu) = self.cpu.as_mut() {
                    let full = prompt_end / chunk;
                    for j in st.saved_chunks..full {
                        let hash = st.req.key.chunk_hash(j, self.config.lmcache_chunk_tokens);
                        if cpu.store(hash) {
                            work.store_tokens += chunk;
                            work.store_chunks += 1;
                        }
                        if let Some(remote) = &self.remote {
                            remote.lock().unwrap_or_else(|e| e.into_inner()).store(hash);
                        }
                    }
                    st.saved_chunks = st.saved_chunks.max(full);
                }
            }
        }
        self.stats.lmcache_stored_tokens += work.store_tokens;
        self.stats.lmcache_hit_tokens += work.load_tokens;

        let cost_ns = self.cost.step_cost(&work).total_ns() + work.remote_wait_ns;
        let end = s.plus_ns(cost_ns);
        self.stats.steps += 1;
        self.stats.busy_ns += cost_ns;

        // 4. Outputs.
        let mut any_finished = false;
        for k in 0..self.scheduled.len() {
            let (slot, n) = self.scheduled[k];
            let st = self.slots[slot as usize]
                .as_mut()
                .expect("invariant: scheduled slot");
            st.num_computed += n;
            if st.num_computed < st.total_tokens() {
                continue;
            }
            let index = st.num_output;
            st.num_output += 1;
            self.stats.generation_tokens += 1;
            let id = st.id;
            self.step_events.push(Event {
                at: end,
                req: id,
                kind: EventKind::Token { index },
            });
            if st.num_output >= st.req.max_output_tokens {
                let prefix = st.prefix.unwrap_or_default();
                let scheduled_at = st.first_scheduled.unwrap_or(end);
                let output_tokens = st.num_output;
                let blocks = std::mem::take(&mut st.blocks);
                self.pool.free_request(&blocks);
                self.release_slot(slot);
                self.stats.finished += 1;
                any_finished = true;
                self.step_events.push(Event {
                    at: end,
                    req: id,
                    kind: EventKind::Finished {
                        prefix,
                        output_tokens,
                        scheduled_at,
                    },
                });
            }
        }
        if any_finished {
            let slots = &self.slots;
            self.running.retain(|&s| slots[s as usize].is_some());
        }
        cost_ns
    }

    /// Prefix lookups, block allocation and load accounting for a waiting request, in the
    /// step starting at `s`. Returns the tokens it computes this step, or `None` when it
    /// does not fit.
    fn try_schedule_new(
        &mut self,
        s: crate::SimTime,
        slot: u32,
        budget: u64,
        work: &mut StepWork,
    ) -> Option<u64> {
        let bs = u64::from(self.config.block_size_tokens);
        let chunk_tokens = self.config.lmcache_chunk_tokens;
        let chunk = u64::from(chunk_tokens);
        let st = self.slots[slot as usize]
            .as_mut()
            .expect("invariant: waiting slot");
        let prompt = st.req.prompt_tokens;
        let total = st.total_tokens();

        // GPU prefix cache: full blocks, at most total − 1 tokens (a request resumed after
        // preemption may hit the blocks its own output filled).
        let limit = (total - 1) / bs;
        self.scratch_hits.clear();
        for idx in 0..limit {
            match self
                .pool
                .lookup(st.block_hash(idx, self.config.block_size_tokens))
            {
                Some(b) => self.scratch_hits.push(b),
                None => break,
            }
        }
        let key = &st.req.key;
        let gpu_hit = self.scratch_hits.len() as u64 * bs;

        // LMCache: contiguous whole chunks; a full hit is reduced by one token.
        let (mut cpu_hit, mut ext, mut load_chunks) = (0u64, 0u64, 0u64);
        let mut remote_chunks = 0u64;
        if let Some(cpu) = self.cpu.as_mut() {
            let chunks = prompt / chunk;
            let mut hit_chunks =
                cpu.lookup_and_touch((0..chunks).map(|j| key.chunk_hash(j, chunk_tokens)));
            if let Some(remote) = &self.remote {
                let mut remote = remote.lock().unwrap_or_else(|e| e.into_inner());
                remote_chunks = remote.lookup_and_touch(
                    (hit_chunks..chunks).map(|j| key.chunk_hash(j, chunk_tokens)),
                );
                hit_chunks += remote_chunks;
            }
            cpu_hit = hit_chunks * chunk;
            if cpu_hit >= total {
                cpu_hit = total - 1;
            }
            ext = cpu_hit.saturating_sub(gpu_hit);
            if ext > 0 {
                load_chunks = cpu_hit.div_ceil(chunk) - gpu_hit / chunk;
            }
        }
        let computed = gpu_hit + ext;
        let n = (total - computed).min(budget);

        let hits = self.scratch_hits.len() as u64;
        // vLLM ≥ 0.32 asks room for the whole sequence so far, not the first chunk.
        let upto = if self.config.admit_whole_prompts_only {
            total.min(self.config.max_model_len_tokens)
        } else {
            computed + n
        };
        let need_new = blocks_for(upto, bs).saturating_sub(hits);
        let evictable_hits = self
            .scratch_hits
            .iter()
            .filter(|&&b| self.pool.is_free(b))
            .count() as u64;
        if need_new + evictable_hits > u64::from(self.pool.num_free()) {
            return None;
        }
        self.stats.prefix_cache_queries_tokens += prompt;
        self.stats.prefix_cache_hits_tokens += gpu_hit;
        for k in 0..self.scratch_hits.len() {
            self.pool.touch(self.scratch_hits[k]);
        }
        let st = self.slots[slot as usize]
            .as_mut()
            .expect("invariant: waiting slot");
        st.blocks.clear();
        st.blocks.extend_from_slice(&self.scratch_hits);
        st.num_hashed_blocks = hits;
        st.num_computed = computed;
        st.status = Status::Running;
        st.saved_chunks = st.saved_chunks.max(cpu_hit / chunk);
        if st.prefix.is_none() {
            st.first_scheduled = Some(s);
            st.prefix = Some(PrefixSource {
                gpu_hit_tokens: gpu_hit,
                cpu_hit_tokens: ext,
                computed_tokens: prompt - gpu_hit - ext,
            });
        }
        work.load_tokens += ext;
        work.load_chunks += load_chunks;
        if remote_chunks > 0 {
            // The chunks past the CPU tier's hit come over the network first, the last
            // one less the token a full hit gives back.
            let cpu_only = (cpu_hit / chunk).saturating_sub(remote_chunks) * chunk;
            let from_remote = cpu_hit.saturating_sub(cpu_only.max(gpu_hit));
            if let Some(remote) = self.remote.as_ref().filter(|_| from_remote > 0) {
                let mut remote = remote.lock().unwrap_or_else(|e| e.into_inner());
                let wait = remote.retrieve(s, from_remote);
                work.remote_wait_ns = work.remote_wait_ns.max(wait);
            }
        }
        // `computed` is already counted as cached; grow from there.
        self.grow_blocks_from(slot, computed, n);
        Some(n)
    }

    /// Allocates the blocks a running request needs for `n` more tokens and caches
    /// its full blocks. The caller checked that enough blocks are free.
    fn grow_blocks(&mut self, slot: u32, n: u64) {
        let c = self.slots[slot as usize]
            .as_ref()
            .expect("invariant")
            .num_computed;
        self.grow_blocks_from(slot, c, n);
    }

    fn grow_blocks_from(&mut self, slot: u32, computed: u64, n: u64) {
        let bs = u64::from(self.config.block_size_tokens);
        let st = self.slots[slot as usize].as_mut().expect("invariant: slot");
        let want = blocks_for(computed + n, bs);
        while (st.blocks.len() as u64) < want {
            let b = self
                .pool
                .allocate()
                .expect("invariant: free blocks checked");
            st.blocks.push(b);
        }
        // Every full block of computed tokens is named, the output's too, as vLLM's
        // `cache_blocks` does (up to the request's tokens so far).
        let full = (computed + n).min(st.total_tokens()) / bs;
        for idx in st.num_hashed_blocks..full {
            let h = st.block_hash(idx, self.config.block_size_tokens);
            if self.pool.cache(st.blocks[idx as usize], h) && self.pool.records_events() {
                let parent = idx
                    .checked_sub(1)
                    .map(|p| st.block_hash(p, self.config.block_size_tokens));
                self.pool.note(KvEvent::Stored {
                    req: st.id,
                    index: idx,
                    hash: h,
                    parent,
                });
            }
        }
        st.num_hashed_blocks = st.num_hashed_blocks.max(full);
    }

    /// Recompute preemption: frees the request's blocks and puts it at the front of the queue.
    fn preempt(&mut self, slot: u32) {
        let st = self.slots[slot as usize]
            .as_mut()
            .expect("invariant: preempted slot");
        let blocks = std::mem::take(&mut st.blocks);
        st.num_computed = 0;
        st.num_hashed_blocks = 0;
        st.status = Status::Waiting;
        self.pool.free_request(&blocks);
        self.waiting.push_front(slot);
        self.stats.preemptions += 1;
    }
}

/// Blocks needed to hold `tokens`.
fn blocks_for(tokens: u64, block_size: u64) -> u64 {
    tokens.div_ceil(block_size)
}

#[cfg(test)]
mod tests {
    use crate::{seed, Efficiencies, Engine, EngineConfig, EventKind, Mode, PromptKey};
    use crate::{SimRequest, SimTime};
    use ldqa_model::PrefixSource;

    fn engine(kv_tokens: u64, mode: Mode) -> Engine {
        let mut cfg: EngineConfig = seed::llama8b_h100().vllm.config;
        cfg.gpu_kv_tokens = kv_tokens;
        cfg.mode = mode;
        Engine::new(cfg, &Efficiencies::for_gpu("h100-80gb").unwrap()).unwrap()
    }

    fn req(doc: u64, prompt: u64) -> SimRequest {
        SimRequest {
            key: PromptKey::for_document(doc, None, 0),
            prompt_tokens: prompt,
            max_output_tokens: 3,
        }
    }

    /// Runs one request to completion and returns where its prefix came from.
    fn run_one(e: &mut Engine, r: SimRequest) -> PrefixSource {
        let mut ev = Vec::new();
        let at = e.now();
        e.submit(at, r).unwrap();
        e.run_to_idle(&mut ev).unwrap();
        let tokens = ev
            .iter()
            .filter(|x| matches!(x.kind, EventKind::Token { .. }))
            .count();
        assert_eq!(tokens, 3);
        match ev.last().unwrap().kind {
            EventKind::Finished {
                prefix,
                output_tokens,
                ..
            } => {
                assert_eq!(output_tokens, 3);
                prefix
            }
            k => panic!("unexpected {k:?}"),
        }
    }

    #[test]
    fn repeat_hits_the_gpu_cache_up_to_the_last_full_block() {
        let mut e = engine(100_000, Mode::Vllm);
        let first = run_one(&mut e, req(1, 1000));
        assert_eq!(
            first,
            PrefixSource {
                gpu_hit_tokens: 0,
                cpu_hit_tokens: 0,
                computed_tokens: 1000
            }
        );
        let again = run_one(&mut e, req(1, 1000));
        assert_eq!(
            again,
            PrefixSource {
                gpu_hit_tokens: 992,
                cpu_hit_tokens: 0,
                computed_tokens: 8
            }
        );
        let other = run_one(&mut e, req(2, 1000));
        assert_eq!(other.gpu_hit_tokens, 0);
    }

    #[test]
    fn lmcache_serves_what_the_gpu_evicted() {
        let cpu = 100 * 256 * 131_072;
        let mut e = engine(
            2048,
            Mode::Lmcache {
                cpu_bytes_per_rank: cpu,
            },
        );
        run_one(&mut e, req(1, 1000));
        run_one(&mut e, req(2, 1000));
        run_one(&mut e, req(3, 1000)); // evicts document 1 from the 2,048-token GPU cache
        let p = run_one(&mut e, req(1, 1000));
        // 3 whole chunks (768 tokens) stored; the GPU may still hold a few head blocks.
        assert_eq!(p.gpu_hit_tokens + p.cpu_hit_tokens, 768);
        assert!(p.cpu_hit_tokens > 0);
        assert_eq!(p.computed_tokens, 232);
        assert_eq!(e.stats().lmcache_stored_tokens, 3 * 768);
    }

    #[test]
    fn vllm_mode_forgets_what_the_gpu_evicted() {
        let mut e = engine(2048, Mode::Vllm);
        for d in [1, 2, 3] {
            run_one(&mut e, req(d, 1000));
        }
        let p = run_one(&mut e, req(1, 1000));
        assert_eq!(p.cpu_hit_tokens, 0);
        assert!(p.computed_tokens > 900, "{p:?}");
    }

    #[test]
    fn abort_frees_blocks_and_ends_the_request_once() {
        let mut e = engine(100_000, Mode::Vllm);
        let mut ev = Vec::new();
        let id = e.submit(SimTime::ZERO, req(1, 20_000)).unwrap();
        e.advance_to(SimTime::from_ms(1), &mut ev).unwrap();
        assert!(e.gpu_cache_usage() > 0.0);
        assert!(e.abort(id));
        assert!(!e.abort(id));
        e.run_to_idle(&mut ev).unwrap();
        assert_eq!(e.gpu_cache_usage(), 0.0);
        let mine: Vec<_> = ev.iter().filter(|x| x.req == id).collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].kind, EventKind::Aborted);
    }

    #[test]
    fn impossible_requests_are_rejected() {
        let mut e = engine(1024, Mode::Vllm);
        let mut ev = Vec::new();
        e.submit(SimTime::ZERO, req(1, 5000)).unwrap();
        e.submit(SimTime::ZERO, req(2, 0)).unwrap();
        e.run_to_idle(&mut ev).unwrap();
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|x| x.kind == EventKind::Rejected));
    }

    #[test]
    fn submitting_in_the_past_is_an_error() {
        let mut e = engine(1024, Mode::Vllm);
        let mut ev = Vec::new();
        e.advance_to(SimTime::from_ms(5), &mut ev).unwrap();
        assert!(e.submit(SimTime::from_ms(1), req(1, 10)).is_err());
        assert!(e.advance_to(SimTime::from_ms(1), &mut ev).is_err());
    }
}
