//! LMCache's local CPU backend: 256-token chunks, hash-chained, LRU.
//!
//! Reference B.3 and B.6 (`lmcache/v1/storage_backend/local_cpu_backend.py`): a lookup
//! counts the contiguous prefix of chunks present; hits are touched as most recently
//! used in suffix-to-prefix order (so the prefix ends up the most recent); a store
//! evicts least recently used chunks to make room; only whole chunks are stored.

use crate::block_pool::HashIndex;
use crate::lru::LruList;

/// The CPU tier of one replica (all TP ranks hold symmetric shards).
#[derive(Debug, Clone)]
pub struct CpuTier {
    capacity: u32,
    slot_of: HashIndex<u32>,
    hash_of: Vec<u64>,
    lru: LruList,
    free_slots: Vec<u32>,
}

impl CpuTier {
    /// A tier holding at most `capacity_chunks` chunks.
    pub fn new(capacity_chunks: u64) -> Self {
        let cap = capacity_chunks.min(u64::from(u32::MAX - 1)) as u32;
        CpuTier {
            capacity: cap,
            slot_of: HashIndex::default(),
            hash_of: Vec::new(),
            lru: LruList::new(0),
            free_slots: Vec::new(),
        }
    }

    /// Maximum chunks held.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Chunks held.
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    /// True when nothing is stored.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    /// Whether `hash` is stored.
    #[cfg(test)]
    pub fn contains(&self, hash: u64) -> bool {
        self.slot_of.contains_key(&hash)
    }

    /// Counts the contiguous prefix of `hashes` present, and touches those hits as
    /// most recently used (suffix first, so the first chunk is the most recent).
    pub fn lookup_and_touch(&mut self, hashes: impl Iterator<Item = u64>) -> u64 {
        let mut hits: Vec<u32> = Vec::new();
        for h in hashes {
            match self.slot_of.get(&h) {
                Some(&s) => hits.push(s),
                None => break,
            }
        }
        for &s in hits.iter().rev() {
            self.lru.unlink(s);
            self.lru.push_back(s);
        }
        hits.len() as u64
    }

    /// Stores `hash` unless present; evicts the LRU chunk when full. Returns true when
    /// the chunk was written (and so costs a transfer).
    pub fn store(&mut self, hash: u64) -> bool {
        if self.capacity == 0 || self.slot_of.contains_key(&hash) {
            return false;
        }
        let slot = if self.slot_of.len() as u32 >= self.capacity {
            let Some(victim) = self.lru.pop_front() else {
                return false;
            };
            self.slot_of.remove(&self.hash_of[victim as usize]);
            victim
        } else if let Some(s) = self.free_slots.pop() {
            s
        } else {
            let s = self.hash_of.len() as u32;
            self.hash_of.push(0);
            self.grow_list(s as usize + 1);
            s
        };
        self.hash_of[slot as usize] = hash;
        self.slot_of.insert(hash, slot);
        self.lru.push_back(slot);
        true
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        while let Some(s) = self.lru.pop_front() {
            self.free_slots.push(s);
        }
        self.slot_of.clear();
    }

    fn grow_list(&mut self, needed: usize) {
        if needed > self.lru.capacity() {
            let new_cap = (needed * 2).min(self.capacity as usize).max(needed);
            self.lru.grow(new_cap);
        }
    }

    /// Checks internal consistency; returns a description of the first violation.
    pub fn check(&self) -> Result<(), String> {
        if self.slot_of.len() > self.capacity as usize {
            return Err(format!(
                "{} chunks stored, capacity {}",
                self.slot_of.len(),
                self.capacity
            ));
        }
        if self.lru.len() != self.slot_of.len() {
            return Err("LRU length differs from the index".into());
        }
        for (h, &s) in &self.slot_of {
            if self.hash_of[s as usize] != *h || !self.lru.contains(s) {
                return Err(format!("slot {s} inconsistent"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lookup_stops_at_first_miss() {
        let mut t = CpuTier::new(10);
        for h in [1, 2, 4] {
            assert!(t.store(h));
        }
        assert!(!t.store(2));
        assert_eq!(t.lookup_and_touch([1, 2, 3, 4].into_iter()), 2);
        assert_eq!(t.lookup_and_touch([9, 1].into_iter()), 0);
        t.check().unwrap();
    }

    #[test]
    fn lru_eviction_after_touch() {
        let mut t = CpuTier::new(3);
        for h in [1, 2, 3] {
            t.store(h);
        }
        // Touch 1 and 2: order becomes 3, 2, 1 (1 most recent).
        assert_eq!(t.lookup_and_touch([1, 2].into_iter()), 2);
        t.store(4); // evicts 3
        assert!(!t.contains(3));
        t.store(5); // evicts 2
        assert!(!t.contains(2));
        assert!(t.contains(1) && t.contains(4) && t.contains(5));
        assert_eq!(t.len(), 3);
        t.check().unwrap();
        t.clear();
        assert!(t.is_empty());
        assert!(t.store(6));
        t.check().unwrap();
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut t = CpuTier::new(0);
        assert!(!t.store(1));
        assert_eq!(t.capacity(), 0);
    }
}
