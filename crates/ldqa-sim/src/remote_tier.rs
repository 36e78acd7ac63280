//! A KV tier shared by every instance of a cluster, as LMCache's remote backends (an
//! LMCache server, Redis or Valkey, a Mooncake store): whole 256-token chunks by hash,
//! least recently used out when full, reached over one network link.
//!
//! What LMCache does with it (`lmcache/v1/storage_backend/`): a lookup asks the local CPU
//! tier first and the remote for the chunks after its contiguous hit; a retrieve from the
//! remote waits for the bytes to arrive before the forward pass; every chunk stored to
//! the CPU tier is also put to the remote (asynchronously: the step does not wait). The
//! link is one queue: loads that overlap share its bandwidth, so simultaneous loads from
//! several instances wait for each other (its contention).

use std::sync::{Arc, Mutex};

use crate::cpu_tier::CpuTier;
use crate::SimTime;

/// The shared tier's size and link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteTierConfig {
    /// Chunks it holds.
    pub capacity_chunks: u64,
    /// KV bytes of one token (all layers, all ranks).
    pub bytes_per_token: u64,
    /// The link's bandwidth, bytes per second.
    pub bytes_per_s: f64,
    /// Time from asking to the first byte, per retrieve.
    pub latency_ns: u64,
}

/// The shared tier: its chunks, its link's queue and its counters.
#[derive(Debug)]
pub struct RemoteTier {
    config: RemoteTierConfig,
    chunks: CpuTier,
    link_free_at: SimTime,
    /// Tokens retrieved from it.
    pub hit_tokens: u64,
    /// Chunks put to it.
    pub stored_chunks: u64,
}

/// The tier as the engines hold it: one, shared.
pub type SharedRemoteTier = Arc<Mutex<RemoteTier>>;

impl RemoteTier {
    /// An empty tier.
    pub fn new(config: RemoteTierConfig) -> Self {
        RemoteTier {
            config,
            chunks: CpuTier::new(config.capacity_chunks),
            link_free_at: SimTime::ZERO,
            hit_tokens: 0,
            stored_chunks: 0,
        }
    }

    /// An empty tier, to be shared.
    pub fn shared(config: RemoteTierConfig) -> SharedRemoteTier {
        Arc::new(Mutex::new(RemoteTier::new(config)))
    }

    /// Counts the contiguous prefix of `hashes` held, touching those as most recently used.
    pub fn lookup_and_touch(&mut self, hashes: impl Iterator<Item = u64>) -> u64 {
        self.chunks.lookup_and_touch(hashes)
    }

    /// Puts a chunk (no wait for the caller).
    pub fn store(&mut self, hash: u64) {
        if self.chunks.store(hash) {
            self.stored_chunks += 1;
        }
    }

    /// Retrieves `tokens` asked for at `at`: nanoseconds until they have all arrived,
    /// queueing behind the loads already on the link.
    pub fn retrieve(&mut self, at: SimTime, tokens: u64) -> u64 {
        let bytes = tokens.saturating_mul(self.config.bytes_per_token) as f64;
        let transfer_ns = (bytes / self.config.bytes_per_s * 1e9).round() as u64;
        let start = at.max(self.link_free_at);
        self.link_free_at = start.plus_ns(transfer_ns);
        self.hit_tokens += tokens;
        self.link_free_at.ns_since(at) + self.config.latency_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier() -> RemoteTier {
        RemoteTier::new(RemoteTierConfig {
            capacity_chunks: 2,
            bytes_per_token: 1000,
            bytes_per_s: 1e9, // 1 µs a token
            latency_ns: 500,
        })
    }

    /// Loads that overlap queue on the link: the second waits for the first.
    #[test]
    fn overlapping_loads_share_the_link() {
        let mut t = tier();
        assert_eq!(t.retrieve(SimTime::ZERO, 100), 100_000 + 500);
        assert_eq!(
            t.retrieve(SimTime::ZERO.plus_ns(50_000), 100),
            150_000 + 500
        );
        // After the link is free again, no wait.
        assert_eq!(t.retrieve(SimTime::ZERO.plus_ns(1_000_000), 1), 1_000 + 500);
        assert_eq!(t.hit_tokens, 201);
    }

    #[test]
    fn holds_whole_chunks_least_recently_used_out() {
        let mut t = tier();
        for h in [1, 2, 3] {
            t.store(h);
        }
        assert_eq!(t.stored_chunks, 3);
        assert_eq!(t.lookup_and_touch([1].into_iter()), 0, "evicted first");
        assert_eq!(t.lookup_and_touch([2, 3].into_iter()), 2);
    }
}
