//! Records to summaries: quantiles, rounds, gains, confidence intervals.
