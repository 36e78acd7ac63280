//! What a trace implies without any engine: its size, and how much of its prompts a prefix
//! cache could serve, unbounded or LRU of a given size.
//!
//! A request hits the leading run of its blocks found in the cache (a prefix cache stops at
//! the first block it lacks); those blocks' tokens are its hit tokens (all of a block's,
//! the last one's partial count included). The LRU cache then takes every block of the
//! request, its last block first and its first block last, as vLLM frees a finished
//! request's blocks (so a prompt's tail is evicted before its head). Requests run one after
//! the other here: a server's cache also holds the running requests' blocks, which this
//! does not model.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::format::{Trace, TraceFormat, TraceRequest};

/// What a cache served of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CacheHits {
    /// The cache's size in tokens (whole blocks of the trace's); none for unbounded.
    pub capacity_tokens: Option<u64>,
    /// Prompt tokens served from it.
    pub hit_tokens: u64,
    /// `hit_tokens` over every prompt token.
    pub hit_rate: f64,
    /// Requests that hit at least one block.
    pub requests_with_hits: usize,
}

/// A trace's size and what caches would serve of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStats {
    pub format: TraceFormat,
    /// Tokens per hash id.
    pub block_tokens: u64,
    pub requests: usize,
    /// From the first arrival to the last, seconds.
    pub duration_s: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Mean prompt tokens per request.
    pub mean_input_tokens: f64,
    /// The longest prompt.
    pub max_input_tokens: u64,
    /// Distinct blocks: what an unbounded cache ends up holding, in tokens (whole blocks).
    pub distinct_block_tokens: u64,
    /// An unbounded prefix cache.
    pub unbounded: CacheHits,
    /// LRU caches, one per capacity asked for.
    pub lru: Vec<CacheHits>,
}

impl TraceStats {
    /// The statistics of `trace`, with LRU caches of `capacities_tokens`.
    pub fn of(trace: &Trace, capacities_tokens: &[u64]) -> TraceStats {
        let block = trace.block_tokens();
        let requests = &trace.requests;
        let input_tokens: u64 = requests.iter().map(|r| r.input_length).sum();
        let first = requests.first().map_or(0.0, |r| r.arrival_ms);
        let last = requests.last().map_or(0.0, |r| r.arrival_ms);
        let mut seen: HashSet<u64> = HashSet::new();
        let mut unbounded = Tally::default();
        let mut lrus: Vec<(LruCache, Tally)> = capacities_tokens
            .iter()
            .map(|&c| (LruCache::new(c / block), Tally::default()))
            .collect();
        for r in requests {
            let hits = r.hash_ids.iter().take_while(|id| seen.contains(id)).count();
            unbounded.add(r, hits, block);
            seen.extend(r.hash_ids.iter().copied());
            for (cache, tally) in &mut lrus {
                let hits = cache.serve(&r.hash_ids);
                tally.add(r, hits, block);
            }
        }
        let hits = |t: &Tally, capacity_tokens| CacheHits {
            capacity_tokens,
            hit_tokens: t.hit_tokens,
            hit_rate: t.hit_tokens as f64 / input_tokens.max(1) as f64,
            requests_with_hits: t.requests_with_hits,
        };
        TraceStats {
            format: trace.format,
            block_tokens: block,
            requests: requests.len(),
            duration_s: (last - first) / 1000.0,
            input_tokens,
            output_tokens: requests.iter().map(|r| r.output_length).sum(),
            mean_input_tokens: input_tokens as f64 / requests.len().max(1) as f64,
            max_input_tokens: requests.iter().map(|r| r.input_length).max().unwrap_or(0),
            distinct_block_tokens: seen.len() as u64 * block,
            unbounded: hits(&unbounded, None),
            lru: lrus
                .iter()
                .map(|(cache, t)| hits(t, Some(cache.capacity_blocks * block)))
                .collect(),
        }
    }
}

#[derive(Default)]
struct Tally {
    hit_tokens: u64,
    requests_with_hits: usize,
}

impl Tally {
    fn add(&mut self, r: &TraceRequest, hit_blocks: usize, block: u64) {
        self.hit_tokens += hit_tokens(r, hit_blocks, block);
        self.requests_with_hits += usize::from(hit_blocks > 0);
    }
}

/// The tokens of `r`'s first `hit_blocks` blocks (the last block holds what is left).
fn hit_tokens(r: &TraceRequest, hit_blocks: usize, block: u64) -> u64 {
    (hit_blocks as u64 * block).min(r.input_length)
}

/// A cache of whole blocks, least recently used first out.
#[derive(Debug, Clone)]
pub struct LruCache {
    capacity_blocks: u64,
    /// Block id → when it was last used.
    used_at: HashMap<u64, u64>,
    /// When → block id: the oldest first.
    by_age: BTreeMap<u64, u64>,
    clock: u64,
}

impl LruCache {
    /// An empty cache of `capacity_blocks` blocks.
    pub fn new(capacity_blocks: u64) -> LruCache {
        LruCache {
            capacity_blocks,
            used_at: HashMap::new(),
            by_age: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Serves a prompt of `hash_ids`: returns its leading blocks found, then holds all of
    /// them (last block first, first block last), evicting the least recently used.
    pub fn serve(&mut self, hash_ids: &[u64]) -> usize {
        let hits = hash_ids
            .iter()
            .take_while(|id| self.used_at.contains_key(id))
            .count();
        for &id in hash_ids.iter().rev() {
            self.touch(id);
        }
        hits
    }

    fn touch(&mut self, id: u64) {
        if self.capacity_blocks == 0 {
            return;
        }
        self.clock += 1;
        if let Some(old) = self.used_at.insert(id, self.clock) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(self.clock, id);
        while self.used_at.len() as u64 > self.capacity_blocks {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.used_at.remove(&oldest);
        }
    }

    /// Blocks held now.
    pub fn len(&self) -> usize {
        self.used_at.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.used_at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(at: f64, input: u64, ids: &[u64]) -> TraceRequest {
        TraceRequest {
            arrival_ms: at,
            input_length: input,
            output_length: 1,
            hash_ids: ids.to_vec(),
            chat: None,
        }
    }

    /// Worked by hand, blocks of 512 tokens:
    /// 1. `[1 2 3]`, 1,300 tokens: nothing seen, 0 hit.
    /// 2. `[1 2 4]`, 1,200 tokens: 1 2 seen, then 4 not: 1,024 hit.
    /// 3. `[1 5]`, 600 tokens: 1 seen: 512.
    /// 4. `[2 3]`, 1,000 tokens: 2 seen (as a second block, but ids are what a cache keys
    ///    on), 3 seen: both, 1,000 (the partial last block counts its 488).
    /// 5. `[6]`, 100 tokens: 0.
    ///
    /// Hits 2,536 of 4,200 tokens; 3 requests hit.
    #[test]
    fn the_unbounded_hit_rate_is_the_hand_count() {
        let trace = Trace {
            format: TraceFormat::Mooncake,
            requests: vec![
                request(0.0, 1300, &[1, 2, 3]),
                request(10.0, 1200, &[1, 2, 4]),
                request(20.0, 600, &[1, 5]),
                request(30.0, 1000, &[2, 3]),
                request(2030.0, 100, &[6]),
            ],
        };
        let s = TraceStats::of(&trace, &[]);
        assert_eq!(s.input_tokens, 4200);
        assert_eq!(s.unbounded.hit_tokens, 2536);
        assert_eq!(s.unbounded.requests_with_hits, 3);
        assert!((s.unbounded.hit_rate - 2536.0 / 4200.0).abs() < 1e-12);
        assert_eq!(s.duration_s, 2.03);
        assert_eq!(s.distinct_block_tokens, 6 * 512);
    }

    /// An LRU of 3 blocks on the same trace, by hand (cache listed oldest first):
    /// 1. `[1 2 3]`: 0 hit; holds 3 2 1.
    /// 2. `[1 2 4]`: 1 2 hit (1,024); touches 4 2 1: 3 is evicted; holds 4 2 1.
    /// 3. `[1 5]`: 1 hit (512); touches 5 1: 4 evicted; holds 2 5 1.
    /// 4. `[2 3]`: 2 hit, 3 not: 512; touching 3 evicts 2, touching 2 again evicts 5;
    ///    holds 1 3 2.
    /// 5. `[6]`: 0.
    ///
    /// Hits 2,048 tokens. Unbounded it is 2,536: request 4's 3 was evicted.
    #[test]
    fn lru_evicts_the_least_recently_used_tail_first() {
        let trace = Trace {
            format: TraceFormat::Mooncake,
            requests: vec![
                request(0.0, 1300, &[1, 2, 3]),
                request(10.0, 1200, &[1, 2, 4]),
                request(20.0, 600, &[1, 5]),
                request(30.0, 1000, &[2, 3]),
                request(40.0, 100, &[6]),
            ],
        };
        let s = TraceStats::of(&trace, &[3 * 512, 0, 1_000_000]);
        assert_eq!(s.lru[0].hit_tokens, 2048);
        assert_eq!(s.lru[0].capacity_tokens, Some(1536));
        assert_eq!(s.lru[1].hit_tokens, 0, "an empty cache serves nothing");
        assert_eq!(
            s.lru[2].hit_tokens, s.unbounded.hit_tokens,
            "a large one is unbounded"
        );
    }

    proptest::proptest! {
        /// No LRU cache serves more than an unbounded one: a block it holds was seen.
        #[test]
        fn lru_never_beats_unbounded(ids in proptest::collection::vec(proptest::collection::vec(0u64..20, 1..6), 1..40), cap in 0u64..30) {
            let trace = Trace {
                format: TraceFormat::Mooncake,
                requests: ids.iter().enumerate().map(|(i, ids)| request(i as f64, ids.len() as u64 * 512, ids)).collect(),
            };
            let s = TraceStats::of(&trace, &[cap * 512]);
            proptest::prop_assert!(s.lru[0].hit_tokens <= s.unbounded.hit_tokens);
        }
    }
}
