//! The one quantile function of ldqa and the descriptive statistics built on it.
//!
//! Quantiles use linear interpolation between closest ranks: numpy's default
//! (`numpy.quantile(..., method="linear")`), Hyndman & Fan (1996) definition 7, also the
//! default of R's `quantile()` and of pandas' `Series.quantile`. For sorted samples
//! `x[0..n]` and a probability `q`, `h = (n − 1)·q` and the quantile is
//! `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋ + 1] − x[⌊h⌋])`.
//!
//! Reference: R. J. Hyndman and Y. Fan, "Sample Quantiles in Statistical Packages",
//! The American Statistician 50(4), 1996; numpy documentation of `numpy.quantile`.

use serde::{Deserialize, Serialize};

use crate::units::ns_to_s;

/// The name of the quantile method, for outputs that state it.
pub const QUANTILE_METHOD: &str =
    "linear interpolation between closest ranks (numpy default, Hyndman-Fan 7)";

/// The `q`-quantile (0 ≤ q ≤ 1) of already sorted samples, numpy's `method="linear"`.
///
/// Returns `None` for no samples or a `q` outside `[0, 1]` (or NaN).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = h - lo as f64;
    Some(sorted[lo] + frac * (sorted[hi] - sorted[lo]))
}

/// Descriptive statistics over nanosecond samples.
///
/// Inside the code everything is in nanoseconds; serialized (JSON) as seconds with the unit
/// in each key: `{"n": 51, "mean_s": 0.751, "p50_s": …, "p90_s": …, "p99_s": …, "min_s": …, "max_s": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "StatsJson", from = "StatsJson")]
pub struct Stats {
    /// Number of samples (always ≥ 1).
    pub n: usize,
    /// Arithmetic mean, in nanoseconds.
    pub mean_ns: f64,
    /// Median (linear-interpolated), in nanoseconds.
    pub p50_ns: f64,
    /// 90th percentile, in nanoseconds.
    pub p90_ns: f64,
    /// 99th percentile, in nanoseconds.
    pub p99_ns: f64,
    /// Smallest sample, in nanoseconds.
    pub min_ns: u64,
    /// Largest sample, in nanoseconds.
    pub max_ns: u64,
}

impl Stats {
    /// Statistics of `samples_ns`; `None` when there are none.
    pub fn from_ns(samples_ns: &[u64]) -> Option<Stats> {
        if samples_ns.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = samples_ns.iter().map(|&v| v as f64).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        // Sum in u128 so that the mean of large counts is exact before the division.
        let sum: u128 = samples_ns.iter().map(|&v| u128::from(v)).sum();
        let q = |p: f64| quantile_sorted(&sorted, p).expect("invariant: non-empty, p in [0,1]");
        Some(Stats {
            n,
            mean_ns: sum as f64 / n as f64,
            p50_ns: q(0.50),
            p90_ns: q(0.90),
            p99_ns: q(0.99),
            min_ns: *samples_ns.iter().min().expect("invariant: non-empty"),
            max_ns: *samples_ns.iter().max().expect("invariant: non-empty"),
        })
    }

    /// Mean in seconds (for printing).
    pub fn mean_s(&self) -> f64 {
        self.mean_ns / crate::units::NS_PER_S
    }
    /// Median in seconds (for printing).
    pub fn p50_s(&self) -> f64 {
        self.p50_ns / crate::units::NS_PER_S
    }
    /// 90th percentile in seconds (for printing).
    pub fn p90_s(&self) -> f64 {
        self.p90_ns / crate::units::NS_PER_S
    }
    /// 99th percentile in seconds (for printing).
    pub fn p99_s(&self) -> f64 {
        self.p99_ns / crate::units::NS_PER_S
    }
    /// Minimum in seconds (for printing).
    pub fn min_s(&self) -> f64 {
        ns_to_s(self.min_ns)
    }
    /// Maximum in seconds (for printing).
    pub fn max_s(&self) -> f64 {
        ns_to_s(self.max_ns)
    }
}

/// The JSON shape of [`Stats`]: seconds, unit in the key.
#[derive(Serialize, Deserialize)]
struct StatsJson {
    n: usize,
    mean_s: f64,
    p50_s: f64,
    p90_s: f64,
    p99_s: f64,
    min_s: f64,
    max_s: f64,
}

impl From<Stats> for StatsJson {
    fn from(s: Stats) -> Self {
        StatsJson {
            n: s.n,
            mean_s: s.mean_s(),
            p50_s: s.p50_s(),
            p90_s: s.p90_s(),
            p99_s: s.p99_s(),
            min_s: s.min_s(),
            max_s: s.max_s(),
        }
    }
}

impl From<StatsJson> for Stats {
    fn from(j: StatsJson) -> Self {
        let ns = |s: f64| s * crate::units::NS_PER_S;
        Stats {
            n: j.n,
            mean_ns: ns(j.mean_s),
            p50_ns: ns(j.p50_s),
            p90_ns: ns(j.p90_s),
            p99_ns: ns(j.p99_s),
            min_ns: crate::units::s_to_ns_u64(j.min_s),
            max_ns: crate::units::s_to_ns_u64(j.max_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_linear() {
        // numpy.percentile([15, 20, 35, 40, 50], 40) == 29.0 (the Wikipedia/Hyndman-Fan example).
        let x = [15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(quantile_sorted(&x, 0.4), Some(29.0));
        // numpy.percentile([1, 2, 3, 4], 90) == 3.7
        let y = [1.0, 2.0, 3.0, 4.0];
        assert!((quantile_sorted(&y, 0.9).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(quantile_sorted(&y, 0.5), Some(2.5));
        assert_eq!(quantile_sorted(&y, 0.0), Some(1.0));
        assert_eq!(quantile_sorted(&y, 1.0), Some(4.0));
        assert_eq!(quantile_sorted(&[7.0], 0.99), Some(7.0));
    }

    #[test]
    fn rejects_empty_and_bad_q() {
        assert_eq!(quantile_sorted(&[], 0.5), None);
        assert_eq!(quantile_sorted(&[1.0], 1.5), None);
        assert_eq!(quantile_sorted(&[1.0], f64::NAN), None);
    }

    #[test]
    fn stats_of_unsorted_samples() {
        let s = Stats::from_ns(&[400, 100, 300, 200]).unwrap();
        assert_eq!(s.n, 4);
        assert_eq!(s.mean_ns, 250.0);
        assert_eq!(s.p50_ns, 250.0);
        assert!((s.p90_ns - 370.0).abs() < 1e-9);
        assert!((s.p99_ns - 397.0).abs() < 1e-9);
        assert_eq!((s.min_ns, s.max_ns), (100, 400));
        assert_eq!(Stats::from_ns(&[]), None);
    }

    #[test]
    fn json_is_in_seconds_and_round_trips() {
        let s = Stats::from_ns(&[1_500_000_000, 500_000_000]).unwrap();
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(v["mean_s"], 1.0);
        assert_eq!(v["min_s"], 0.5);
        assert_eq!(v["max_s"], 1.5);
        assert_eq!(v["n"], 2);
        let back: Stats = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    proptest::proptest! {
        #[test]
        fn quantiles_are_ordered_and_bounded(mut v in proptest::collection::vec(0u64..10_000_000_000, 1..60)) {
            let s = Stats::from_ns(&v).unwrap();
            v.sort_unstable();
            proptest::prop_assert_eq!(s.n, v.len());
            proptest::prop_assert!(s.min_ns as f64 <= s.p50_ns && s.p50_ns <= s.p90_ns);
            proptest::prop_assert!(s.p90_ns <= s.p99_ns && s.p99_ns <= s.max_ns as f64);
            proptest::prop_assert!(s.min_ns as f64 <= s.mean_ns && s.mean_ns <= s.max_ns as f64);
            proptest::prop_assert_eq!((s.min_ns, s.max_ns), (v[0], v[v.len() - 1]));
        }
    }
}
