//! The crate's error type.

/// What went wrong while configuring or driving the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration value is out of range.
    #[error("invalid engine configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The efficiencies data file could not be parsed.
    #[error("efficiencies data: {0}")]
    EfficienciesData(#[from] serde_json::Error),
    /// No efficiencies are known for this GPU and no default was given.
    #[error("no efficiencies for GPU '{0}'")]
    UnknownGpu(String),
    /// A request was submitted at a time earlier than the engine's clock.
    #[error("request submitted at {at_ns} ns, before the engine clock ({now_ns} ns)")]
    SubmitInPast {
        /// The submission time.
        at_ns: u64,
        /// The engine clock.
        now_ns: u64,
    },
    /// The clock was asked to go backwards.
    #[error("cannot advance to {to_ns} ns: the engine clock is at {now_ns} ns")]
    TimeBackwards {
        /// The time asked for.
        to_ns: u64,
        /// The engine clock.
        now_ns: u64,
    },
    /// The GPU catalog entry lacks a peak the cost model needs.
    #[error("GPU '{gpu}' has no {what} in the catalog: the simulator needs its peaks (use a catalog GPU)")]
    GpuPeaksUnknown {
        /// The GPU's name.
        gpu: String,
        /// The missing figure.
        what: &'static str,
    },
    /// vLLM's KV sizing or the recommender's rules refused the inputs.
    #[error(transparent)]
    Sizing(#[from] ldqa_recommend::RecommendError),
}
