//! vLLM's GPU KV block pool with its prefix cache.
//!
//! Follows vLLM V1's `BlockPool` (`vllm/v1/core/block_pool.py`): a fixed number of
//! blocks; a block whose reference count drops to 0 goes to the tail of a free queue
//! and keeps its hash, so a later request can still hit it; allocation pops the head
//! of the free queue and evicts its hash. A finished request's blocks are freed in
//! reverse order (tail block first), so the tail of a prompt is evicted before its head.
//! Block 0 is vLLM's null block (a placeholder for skipped blocks, taken out of the free
//! queue when the pool is built), so `N` blocks hold `N − 1` blocks of KV.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::lru::LruList;

/// A hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
pub struct PremixedHasher(u64);

impl Hasher for PremixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by premixed hashes.
pub type HashIndex<V> = HashMap<u64, V, BuildHasherDefault<PremixedHasher>>;

/// The GPU block pool.
#[derive(Debug, Clone)]
pub struct BlockPool {
    ref_cnt: Vec<u32>,
    hash: Vec<Option<u64>>,
    free: LruList,
    cached: HashIndex<u32>,
    /// vLLM ≥ 0.32: freed blocks without a hash go to the front of the free queue.
    uncached_first: bool,
}

impl BlockPool {
    /// A pool of `num_blocks` blocks: the null block, then `num_blocks − 1` free, uncached
    /// blocks (free queue in id order).
    pub fn new(num_blocks: u32) -> Self {
        let num_blocks = num_blocks.max(1);
        let n = num_blocks as usize;
        let mut free = LruList::new(n);
        for b in 1..num_blocks {
            free.push_back(b);
        }
        let mut ref_cnt = vec![0; n];
        ref_cnt[NULL_BLOCK as usize] = 1;
        BlockPool {
            ref_cnt,
            hash: vec![None; n],
            free,
            cached: HashIndex::default(),
            uncached_first: false,
        }
    }

    /// From now on, freed blocks without a hash go to the front of the free queue
    /// (reused first), cached ones to the back (vLLM ≥ 0.32's `free_blocks`).
    pub fn reuse_uncached_first(&mut self, on: bool) {
        self.uncached_first = on;
    }

    /// Blocks that can hold KV: all but the null block.
    pub fn num_usable(&self) -> u32 {
        self.ref_cnt.len() as u32 - 1
    }

    /// Blocks in the free queue (cached or not).
    pub fn num_free(&self) -> u32 {
        self.free.len() as u32
    }

    /// Blocks holding a hash (in use or free).
    #[cfg(test)]
    pub fn num_cached(&self) -> usize {
        self.cached.len()
    }

    /// The block holding `hash`, if cached.
    pub fn lookup(&self, hash: u64) -> Option<u32> {
        self.cached.get(&hash).copied()
    }

    /// Whether `block` is in the free queue (reference count 0).
    pub fn is_free(&self, block: u32) -> bool {
        self.free.contains(block)
    }

    /// Takes a reference to a cached block (a prefix hit), removing it from the free queue.
    pub fn touch(&mut self, block: u32) {
        self.free.unlink(block);
        self.ref_cnt[block as usize] += 1;
    }

    /// Pops the LRU free block, evicting its hash; `None` when no block is free.
    pub fn allocate(&mut self) -> Option<u32> {
        let b = self.free.pop_front()?;
        if let Some(h) = self.hash[b as usize].take() {
            // One probe: this runs for every block a request fills.
            if let std::collections::hash_map::Entry::Occupied(e) = self.cached.entry(h) {
                if *e.get() == b {
                    e.remove();
                }
            }
        }
        self.ref_cnt[b as usize] = 1;
        Some(b)
    }

    /// Records that `block` holds the full block `hash`. A hash already cached in
    /// another block is left there (the duplicate stays uncached, as in vLLM).
    pub fn cache(&mut self, block: u32, hash: u64) {
        if self.hash[block as usize].is_some() {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.cached.entry(hash) {
            e.insert(block);
            self.hash[block as usize] = Some(hash);
        }
    }

    /// Releases a request's blocks, tail first, as vLLM's `free_blocks(reversed(...))`.
    /// With [`BlockPool::reuse_uncached_first`], the blocks without a hash are put at the
    /// front in that same order (the request's last block first in line).
    pub fn free_request(&mut self, blocks: &[u32]) {
        let mut front = Vec::new();
        for &b in blocks.iter().rev() {
            let rc = &mut self.ref_cnt[b as usize];
            debug_assert!(*rc > 0, "invariant: double free of block {b}");
            *rc = rc.saturating_sub(1);
            if *rc == 0 {
                if self.uncached_first && self.hash[b as usize].is_none() {
                    front.push(b);
                } else {
                    self.free.push_back(b);
                }
            }
        }
        for &b in front.iter().rev() {
            self.free.push_front(b);
        }
    }

    /// Drops every cached hash of a free block (vLLM's `reset_prefix_cache`).
    /// Returns false (and does nothing) when some block is still in use.
    pub fn reset_prefix_cache(&mut self) -> bool {
        if self.free.len() != self.num_usable() as usize {
            return false;
        }
        self.cached.clear();
        self.hash.iter_mut().for_each(|h| *h = None);
        true
    }

    /// Checks internal consistency; returns a description of the first violation.
    pub fn check(&self) -> Result<(), String> {
        let mut free = 0usize;
        for b in 0..self.ref_cnt.len() {
            let in_free = self.free.contains(b as u32);
            if in_free != (self.ref_cnt[b] == 0) {
                return Err(format!(
                    "block {b}: ref_cnt {} but in_free {in_free}",
                    self.ref_cnt[b]
                ));
            }
            free += usize::from(in_free);
            if let Some(h) = self.hash[b] {
                if self.cached.get(&h) != Some(&(b as u32)) {
                    return Err(format!("block {b}: hash not indexed"));
                }
            }
        }
        if free != self.free.len() {
            return Err("free count mismatch".into());
        }
        if self.cached.len() > self.ref_cnt.len() {
            return Err("more cached hashes than blocks".into());
        }
        Ok(())
    }

    /// References held by requests (the null block's own is not counted).
    pub fn total_refs(&self) -> u64 {
        self.ref_cnt.iter().map(|&r| u64::from(r)).sum::<u64>() - 1
    }
}

/// vLLM's null block: never allocated, never freed.
const NULL_BLOCK: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_blocks_stay_cached_until_evicted_tail_first() {
        let mut p = BlockPool::new(5);
        let a: Vec<u32> = (0..3).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(a, [1, 2, 3], "block 0 is the null block");
        for (i, &b) in a.iter().enumerate() {
            p.cache(b, 100 + i as u64);
        }
        p.free_request(&a);
        assert_eq!(p.num_free(), 4);
        assert_eq!(p.lookup(100), Some(a[0]));
        // The never-used block 4 is evicted first, then the request's tail block.
        assert_eq!(p.allocate(), Some(4));
        assert_eq!(p.allocate(), Some(a[2]));
        assert_eq!(p.lookup(102), None);
        assert_eq!(p.lookup(100), Some(a[0]));
        p.touch(a[0]);
        assert!(!p.is_free(a[0]));
        p.check().unwrap();
        assert_eq!(p.total_refs(), 3);
    }

    /// vLLM ≥ 0.32: a request's uncached blocks (its partial tail) are reused before any
    /// cached block, so the cached ones live longer.
    #[test]
    fn uncached_blocks_are_reused_first_when_asked() {
        let mut p = BlockPool::new(6);
        p.reuse_uncached_first(true);
        let a: Vec<u32> = (0..3).map(|_| p.allocate().unwrap()).collect();
        p.cache(a[0], 10);
        p.cache(a[1], 11); // a[2]: a partial block, never hashed
        p.free_request(&a);
        // Free queue: a[2] (front), then the never-used 4 and 5, then a[1], a[0].
        assert_eq!(p.allocate(), Some(a[2]));
        assert_eq!(p.allocate(), Some(4));
        assert_eq!(p.allocate(), Some(5));
        assert_eq!(
            p.lookup(11),
            Some(a[1]),
            "cached blocks outlive the free ones"
        );
        assert_eq!(p.allocate(), Some(a[1]));
        assert_eq!(p.lookup(11), None);
        p.check().unwrap();
    }

    #[test]
    fn duplicate_hash_is_not_indexed_twice() {
        let mut p = BlockPool::new(3);
        let (x, y) = (p.allocate().unwrap(), p.allocate().unwrap());
        p.cache(x, 7);
        p.cache(y, 7);
        assert_eq!(p.lookup(7), Some(x));
        p.free_request(&[x, y]);
        p.check().unwrap();
        assert!(p.reset_prefix_cache());
        assert_eq!(p.num_cached(), 0);
    }
}
