//! vLLM's GPU KV block pool with its prefix cache.
//!
//! Follows vLLM V1's `BlockPool` (`vllm/v1/core/block_pool.py`): a fixed number of
//! blocks; a block whose reference count drops to 0 goes to the tail of a free queue
//! and keeps its hash, so a later request can still hit it; allocation pops the head
//! of the free queue and evicts its hash. A finished request's blocks are freed in
//! reverse order (tail block first), so the tail of a prompt is evicted before its head.
//! Block 0 is vLLM's null block (a placeholder for skipped blocks, taken out of the free
//! queue when the pool is built), so `N` blocks hold `N − 1` blocks of KV.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::kv_events::KvEvent;

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

/// One block's state, in one record so that allocating, touching or freeing a block
/// reads one cache line (the pool is the simulator's hottest memory).
#[derive(Debug, Clone, Copy)]
struct Block {
    /// The full block hash it holds, valid when `cached`.
    hash: u64,
    /// Free-queue neighbours (`NIL` at the ends), valid when `ref_cnt` is 0.
    prev: u32,
    next: u32,
    ref_cnt: u32,
    cached: bool,
}

const NIL: u32 = u32::MAX;

/// The GPU block pool.
#[derive(Debug, Clone)]
pub struct BlockPool {
    blocks: Vec<Block>,
    /// The free queue: blocks with reference count 0, least recently freed first.
    head: u32,
    tail: u32,
    num_free: u32,
    cached: HashIndex<u32>,
    /// vLLM ≥ 0.32: freed blocks without a hash go to the front of the free queue.
    uncached_first: bool,
    scratch_front: Vec<u32>,
    /// KV events since they were last taken, when recorded.
    events: Option<Vec<KvEvent>>,
}

impl BlockPool {
    /// A pool of `num_blocks` blocks: the null block, then `num_blocks − 1` free, uncached
    /// blocks (free queue in id order).
    pub fn new(num_blocks: u32) -> Self {
        let num_blocks = num_blocks.clamp(1, NIL - 1);
        let n = num_blocks as usize;
        let empty = Block {
            hash: 0,
            prev: NIL,
            next: NIL,
            ref_cnt: 0,
            cached: false,
        };
        let mut pool = BlockPool {
            blocks: vec![empty; n],
            head: NIL,
            tail: NIL,
            num_free: 0,
            cached: HashIndex::default(),
            uncached_first: false,
            scratch_front: Vec::new(),
            events: None,
        };
        pool.blocks[NULL_BLOCK as usize].ref_cnt = 1;
        for b in 1..num_blocks {
            pool.push_back(b);
        }
        pool
    }

    /// From now on, freed blocks without a hash go to the front of the free queue
    /// (reused first), cached ones to the back (vLLM ≥ 0.32's `free_blocks`).
    pub fn reuse_uncached_first(&mut self, on: bool) {
        self.uncached_first = on;
    }

    /// Records KV events from now on (or stops, dropping those not taken).
    pub fn record_events(&mut self, on: bool) {
        self.events = on.then(Vec::new);
    }

    /// Whether KV events are recorded.
    pub fn records_events(&self) -> bool {
        self.events.is_some()
    }

    /// Records `event` when events are recorded.
    pub fn note(&mut self, event: KvEvent) {
        if let Some(events) = &mut self.events {
            events.push(event);
        }
    }

    /// Moves the events recorded since the last call to `out`.
    pub fn take_events(&mut self, out: &mut Vec<KvEvent>) {
        if let Some(events) = &mut self.events {
            out.append(events);
        }
    }

    /// Blocks that can hold KV: all but the null block.
    pub fn num_usable(&self) -> u32 {
        self.blocks.len() as u32 - 1
    }

    /// Blocks in the free queue (cached or not).
    pub fn num_free(&self) -> u32 {
        self.num_free
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
        self.blocks[block as usize].ref_cnt == 0
    }

    /// Takes a reference to a cached block (a prefix hit), removing it from the free queue.
    pub fn touch(&mut self, block: u32) {
        if self.is_free(block) {
            self.unlink(block);
        }
        self.blocks[block as usize].ref_cnt += 1;
    }

    /// Pops the LRU free block, evicting its hash; `None` when no block is free.
    pub fn allocate(&mut self) -> Option<u32> {
        if self.head == NIL {
            return None;
        }
        let b = self.head;
        self.unlink(b);
        let block = &mut self.blocks[b as usize];
        block.ref_cnt = 1;
        if block.cached {
            block.cached = false;
            let hash = block.hash;
            // One probe: this runs for every block a request fills.
            if let Entry::Occupied(e) = self.cached.entry(hash) {
                if *e.get() == b {
                    e.remove();
                    if let Some(events) = &mut self.events {
                        events.push(KvEvent::Removed { hash });
                    }
                }
            }
        }
        Some(b)
    }

    /// Records that `block` holds the full block `hash`; true when it was not cached
    /// before. A hash already cached in another block is left there (the duplicate stays
    /// uncached, as in vLLM).
    pub fn cache(&mut self, block: u32, hash: u64) -> bool {
        if self.blocks[block as usize].cached {
            return false;
        }
        match self.cached.entry(hash) {
            Entry::Occupied(_) => return false,
            Entry::Vacant(e) => e.insert(block),
        };
        let rec = &mut self.blocks[block as usize];
        rec.hash = hash;
        rec.cached = true;
        true
    }

    /// Releases a request's blocks, tail first, as vLLM's `free_blocks(reversed(...))`.
    /// With [`BlockPool::reuse_uncached_first`], the blocks without a hash are put at the
    /// front in that same order (the request's last block first in line).
    pub fn free_request(&mut self, blocks: &[u32]) {
        let mut front = std::mem::take(&mut self.scratch_front);
        front.clear();
        for &b in blocks.iter().rev() {
            let rec = &mut self.blocks[b as usize];
            debug_assert!(rec.ref_cnt > 0, "invariant: double free of block {b}");
            rec.ref_cnt = rec.ref_cnt.saturating_sub(1);
            if rec.ref_cnt == 0 {
                if self.uncached_first && !rec.cached {
                    front.push(b);
                } else {
                    self.push_back(b);
                }
            }
        }
        for &b in front.iter().rev() {
            self.push_front(b);
        }
        self.scratch_front = front;
    }

    /// Drops every cached hash of a free block (vLLM's `reset_prefix_cache`).
    /// Returns false (and does nothing) when some block is still in use.
    pub fn reset_prefix_cache(&mut self) -> bool {
        if self.num_free != self.num_usable() {
            return false;
        }
        self.cached.clear();
        self.blocks.iter_mut().for_each(|b| b.cached = false);
        self.note(KvEvent::Cleared);
        true
    }

    /// Checks internal consistency; returns a description of the first violation.
    pub fn check(&self) -> Result<(), String> {
        let mut queued = 0u32;
        let mut cur = self.head;
        let mut prev = NIL;
        while cur != NIL {
            let rec = &self.blocks[cur as usize];
            if rec.ref_cnt != 0 || rec.prev != prev {
                return Err(format!(
                    "block {cur}: in the free queue with ref_cnt {}",
                    rec.ref_cnt
                ));
            }
            queued += 1;
            if queued > self.num_free {
                return Err("free queue longer than its count".into());
            }
            prev = cur;
            cur = rec.next;
        }
        let zero = self.blocks.iter().filter(|b| b.ref_cnt == 0).count();
        if queued != self.num_free || zero != self.num_free as usize || prev != self.tail {
            return Err(format!(
                "free count {} but {queued} queued and {zero} unreferenced",
                self.num_free
            ));
        }
        let mut hashed = 0usize;
        for (b, rec) in self.blocks.iter().enumerate().filter(|(_, r)| r.cached) {
            hashed += 1;
            if self.lookup(rec.hash) != Some(b as u32) {
                return Err(format!("block {b}: hash not indexed"));
            }
        }
        if hashed != self.cached.len() {
            return Err(format!(
                "{} indexed hashes, {hashed} cached blocks",
                self.cached.len()
            ));
        }
        Ok(())
    }

    /// References held by requests (the null block's own is not counted).
    pub fn total_refs(&self) -> u64 {
        self.blocks
            .iter()
            .map(|b| u64::from(b.ref_cnt))
            .sum::<u64>()
            - 1
    }

    /// Appends a block whose count just reached 0 at the free queue's tail (evicted last).
    fn push_back(&mut self, b: u32) {
        let tail = self.tail;
        let rec = &mut self.blocks[b as usize];
        rec.prev = tail;
        rec.next = NIL;
        if tail == NIL {
            self.head = b;
        } else {
            self.blocks[tail as usize].next = b;
        }
        self.tail = b;
        self.num_free += 1;
    }

    /// Puts a block whose count just reached 0 at the free queue's head (evicted first).
    fn push_front(&mut self, b: u32) {
        let head = self.head;
        let rec = &mut self.blocks[b as usize];
        rec.prev = NIL;
        rec.next = head;
        if head == NIL {
            self.tail = b;
        } else {
            self.blocks[head as usize].prev = b;
        }
        self.head = b;
        self.num_free += 1;
    }

    /// Takes a block out of the free queue.
    fn unlink(&mut self, b: u32) {
        let Block { prev, next, .. } = self.blocks[b as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.blocks[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.blocks[next as usize].prev = prev;
        }
        self.num_free -= 1;
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
