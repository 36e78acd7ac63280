//! Timestamps as nanosecond offsets from a round's start, on tokio's monotonic clock (which
//! is what makes paused-clock tests exact).

use tokio::time::Instant;

/// Nanoseconds from `start` to `t`: 0 if `t` is earlier, `u64::MAX` past 584 years.
pub(crate) fn ns_since(start: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX)
}
