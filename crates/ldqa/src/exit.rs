//! How a command ended, as the process exit status. The table is in `main.rs`'s doc and in
//! README.md ("Exit codes"); `main` alone turns it into a `std::process::ExitCode`.

/// The outcome of a command. Errors that carry a message are `Err` values, which `main`
/// prints once and maps to [`ExitStatus::Error`]; a command returns `Error` itself only when
/// it has already said what went wrong (a round where every request failed, an A/B run
/// with a failed engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Everything asked for was done.
    Success = 0,
    /// The run finished but a gate (`--expected-ttft-gain`, …) failed.
    GateFailed = 1,
    /// Usage, I/O or target error, an undeployable plan, or a round with no successful request.
    Error = 2,
    /// Ctrl-C: what was measured was written.
    Interrupted = 130,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}
