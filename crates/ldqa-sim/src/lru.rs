//! An intrusive doubly linked list over slot indices: O(1) push, pop and unlink.
//!
//! The LMCache CPU tier keeps its LRU order in one (the GPU block pool keeps its free
//! queue inside its block records).

const NIL: u32 = u32::MAX;

/// A list of slot indices `0..capacity`, each in the list at most once.
#[derive(Debug, Clone)]
pub struct LruList {
    prev: Vec<u32>,
    next: Vec<u32>,
    linked: Vec<bool>,
    head: u32,
    tail: u32,
    len: usize,
}

impl LruList {
    /// An empty list able to hold slots `0..capacity`.
    pub fn new(capacity: usize) -> Self {
        LruList {
            prev: vec![NIL; capacity],
            next: vec![NIL; capacity],
            linked: vec![false; capacity],
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    /// Largest slot index + 1 the list can hold.
    pub fn capacity(&self) -> usize {
        self.linked.len()
    }

    /// Makes room for slots `0..new_capacity` (never shrinks).
    pub fn grow(&mut self, new_capacity: usize) {
        if new_capacity > self.linked.len() {
            self.prev.resize(new_capacity, NIL);
            self.next.resize(new_capacity, NIL);
            self.linked.resize(new_capacity, false);
        }
    }

    /// Number of slots in the list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no slot is in the list.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `slot` is in the list.
    pub fn contains(&self, slot: u32) -> bool {
        self.linked[slot as usize]
    }

    /// Appends `slot` at the tail (most recently used end).
    pub fn push_back(&mut self, slot: u32) {
        debug_assert!(!self.linked[slot as usize], "invariant: slot linked twice");
        let s = slot as usize;
        self.prev[s] = self.tail;
        self.next[s] = NIL;
        if self.tail == NIL {
            self.head = slot;
        } else {
            self.next[self.tail as usize] = slot;
        }
        self.tail = slot;
        self.linked[s] = true;
        self.len += 1;
    }

    /// Removes and returns the head (least recently used end).
    pub fn pop_front(&mut self) -> Option<u32> {
        if self.head == NIL {
            return None;
        }
        let slot = self.head;
        self.unlink(slot);
        Some(slot)
    }

    /// The head without removing it.
    #[cfg(test)]
    pub fn front(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// Removes `slot` if it is in the list; returns whether it was.
    pub fn unlink(&mut self, slot: u32) -> bool {
        let s = slot as usize;
        if !self.linked[s] {
            return false;
        }
        let (p, n) = (self.prev[s], self.next[s]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[s] = NIL;
        self.next[s] = NIL;
        self.linked[s] = false;
        self.len -= 1;
        true
    }

    /// Slots from head to tail (for tests and diagnostics).
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let out = cur;
            cur = self.next[cur as usize];
            Some(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pop_unlink() {
        let mut l = LruList::new(5);
        for s in [3, 1, 4] {
            l.push_back(s);
        }
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![3, 1, 4]);
        assert!(l.unlink(1));
        assert!(!l.unlink(1));
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(l.pop_front(), Some(3));
        assert_eq!(l.front(), Some(4));
        assert_eq!(l.pop_front(), Some(4));
        assert_eq!(l.pop_front(), None);
        assert!(l.is_empty());
        l.push_back(0);
        assert!(l.contains(0));
        assert_eq!(l.len(), 1);
        l.push_back(2);
        l.unlink(0);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![2]);
    }
}
