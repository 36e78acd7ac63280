//! The virtual clock: [`SimTime`], nanoseconds since the simulation started.
//!
//! Integer nanoseconds keep the simulation exact and reproducible: two runs of the
//! same input produce the same times, bit for bit. Floating-point seconds appear only
//! at the edges (printing, exporting).

use serde::{Deserialize, Serialize};

/// A point on the virtual clock, in nanoseconds since the simulation started.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct SimTime(pub u64);

impl SimTime {
    /// The start of the simulation.
    pub const ZERO: SimTime = SimTime(0);

    /// A time from nanoseconds.
    pub const fn from_ns(ns: u64) -> Self {
        SimTime(ns)
    }

    /// A time from milliseconds.
    pub const fn from_ms(ms: u64) -> Self {
        SimTime(ms * 1_000_000)
    }

    /// Nanoseconds since the start.
    pub const fn as_ns(self) -> u64 {
        self.0
    }

    /// Seconds since the start, for printing only.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// This time plus `ns` nanoseconds (saturating: the clock never wraps).
    pub const fn plus_ns(self, ns: u64) -> Self {
        SimTime(self.0.saturating_add(ns))
    }

    /// Nanoseconds from `earlier` to `self` (0 if `earlier` is later).
    pub const fn ns_since(self, earlier: SimTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::fmt::Display for SimTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.6}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_orders() {
        let t = SimTime::from_ms(2);
        assert_eq!(t.as_ns(), 2_000_000);
        assert_eq!(t.plus_ns(5).ns_since(t), 5);
        assert_eq!(SimTime::ZERO.ns_since(t), 0);
        assert_eq!(SimTime(u64::MAX).plus_ns(1), SimTime(u64::MAX));
        assert!(SimTime::ZERO < t);
        assert_eq!(t.to_string(), "0.002000s");
    }
}
