//! CPython's `random` module (MT19937), reproduced bit for bit.
//!
//! Why hand-written: upstream `long_doc_qa.py` calls `random.seed(shuffle_seed)`, then
//! `random.shuffle` and `random.randint`. For `ldqa run --shuffle-seed N` to be a drop-in
//! replacement, the query order and the miss prefixes must be the very ones Python
//! produces, so we need CPython's exact algorithms, not just any Mersenne Twister crate:
//! seeding through `init_by_array` over the 32-bit words of `abs(seed)`
//! (`Modules/_randommodule.c: random_seed`), `getrandbits` filling little-endian words and
//! dropping low bits of the last one, `_randbelow` by rejection on `n.bit_length()` bits,
//! `shuffle` as Fisher–Yates from the end, `randint(a, b) = a + _randbelow(b - a + 1)`
//! (`Lib/random.py`, CPython 3.8–3.13). MT19937 constants are from Matsumoto & Nishimura
//! (1998). Checked against python3 by `tests/data/gen_fixtures.py`.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// A `random.Random` instance of CPython, restricted to what Long Doc QA uses.
#[derive(Clone)]
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl PyRandom {
    /// Same state as Python's `random.seed(seed)` (an `int` seed; negative seeds use `abs`).
    pub fn new(seed: i64) -> Self {
        let n = seed.unsigned_abs();
        let mut rng = PyRandom {
            mt: [0; N],
            index: N,
        };
        // The key is abs(seed) as 32-bit words, least significant first; zero is one word.
        if n >> 32 == 0 {
            rng.init_by_array(&[n as u32]);
        } else {
            rng.init_by_array(&[n as u32, (n >> 32) as u32]);
        }
        rng
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
        self.index = N;
    }

    fn twist(&mut self) {
        for k in 0..N {
            let y = (self.mt[k] & UPPER_MASK) | (self.mt[(k + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.mt[k] = self.mt[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// The next 32-bit output of the generator (`genrand_uint32`, tempered).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Python's `getrandbits(k)` for `k <= 128`.
    ///
    /// # Panics
    /// If `k > 128` (an invariant of the callers in this crate, never user input).
    pub fn getrandbits(&mut self, k: u32) -> u128 {
        assert!(
            k <= 128,
            "invariant: getrandbits supports k <= 128, got {k}"
        );
        if k <= 32 {
            // Python returns 0 for k == 0 without consuming; the shift would overflow.
            return if k == 0 {
                0
            } else {
                u128::from(self.next_u32() >> (32 - k))
            };
        }
        let (mut out, mut left, mut shift) = (0u128, k, 0u32);
        while left > 0 {
            let mut w = self.next_u32();
            if left < 32 {
                w >>= 32 - left;
            }
            out |= u128::from(w) << shift;
            shift += 32;
            left = left.saturating_sub(32);
        }
        out
    }

    /// Python's `_randbelow(n)`: uniform in `[0, n)`, by rejection. Returns 0 for `n == 0`
    /// without consuming anything (Python never calls it with 0).
    pub fn randbelow(&mut self, n: u128) -> u128 {
        if n == 0 {
            return 0;
        }
        let k = 128 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// Python's `randint(a, b)`: uniform in `[a, b]`.
    ///
    /// # Panics
    /// If `a > b` (Python raises `ValueError`); callers pass constants.
    pub fn randint(&mut self, a: i64, b: i64) -> i64 {
        assert!(a <= b, "invariant: randint needs a <= b");
        let width = (i128::from(b) - i128::from(a) + 1) as u128;
        (i128::from(a) + self.randbelow(width) as i128) as i64
    }

    /// Python's `shuffle(x)`: Fisher–Yates from the last element down.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.randbelow(i as u128 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_mt19937_init_by_array() {
        // Matsumoto & Nishimura's mt19937ar.c test vector: init_by_array({0x123, 0x234,
        // 0x345, 0x456}) gives 1067595299 955945823 477289528 4107218783 4228976476 first.
        let mut r = PyRandom {
            mt: [0; N],
            index: N,
        };
        r.init_by_array(&[0x123, 0x234, 0x345, 0x456]);
        let got: Vec<u32> = (0..5).map(|_| r.next_u32()).collect();
        assert_eq!(
            got,
            [
                1_067_595_299,
                955_945_823,
                477_289_528,
                4_107_218_783,
                4_228_976_476
            ]
        );
    }

    #[test]
    fn negative_seed_is_abs() {
        let mut a = PyRandom::new(-42);
        let mut b = PyRandom::new(42);
        assert_eq!(a.next_u32(), b.next_u32());
        let mut c = PyRandom::new(i64::MIN);
        let mut d = PyRandom::new(i64::MAX);
        assert_ne!(c.next_u32(), d.next_u32());
    }

    #[test]
    fn getrandbits_zero_consumes_nothing() {
        let mut a = PyRandom::new(7);
        let mut b = PyRandom::new(7);
        assert_eq!(a.getrandbits(0), 0);
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn randint_full_i64_range_does_not_overflow() {
        let mut r = PyRandom::new(3);
        for _ in 0..100 {
            let _ = r.randint(i64::MIN, i64::MAX);
        }
        assert_eq!(r.randint(5, 5), 5);
    }
}
