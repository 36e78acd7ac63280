//! The one error type of this crate.

/// Why a recommendation cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    /// A flag value is out of range.
    #[error("invalid {what}: {problem}")]
    Invalid {
        /// The flag or knob.
        what: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The GPU is too small for upstream's TP rule (0.9 × memory − 10 GiB ≤ 0).
    #[error("a {gpu_gib:.1} GiB GPU leaves no room: upstream reserves 10 GiB of it for activations and KV")]
    GpuTooSmall {
        /// GPU memory in GiB.
        gpu_gib: f64,
    },
    /// vLLM would refuse to start this deployment, or the plan has nothing to show.
    #[error("{reason}: {fix}")]
    Undeployable {
        /// What does not fit, with the numbers.
        reason: String,
        /// What to change.
        fix: &'static str,
    },
    /// `--vllm-version` could not be parsed.
    #[error("cannot parse vLLM version `{0}` (expected e.g. 0.10.1)")]
    BadVersion(String),
    /// A spec could not be resolved.
    #[error(transparent)]
    Spec(#[from] ldqa_specs::SpecError),
}
