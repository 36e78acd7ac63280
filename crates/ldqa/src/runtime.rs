//! The async runtime of the commands that send requests (`run`, `ab`).

use std::future::Future;

use anyhow::Context;

/// Runs `work` to completion on a two-worker Tokio runtime, as a task on a worker thread.
///
/// Not `block_on(work)` directly: that polls `work` on the calling thread while the I/O
/// driver runs on the workers, so every socket event would cross threads (a wake-up of
/// the blocked main thread) before the round's worker sees it. The request path owns its
/// connections ([`ldqa_loadgen::Slot`]), so as a task its socket events wake it where it
/// runs: measured, this halved the client's median TTFT overhead at 4 in flight
/// (docs/benchmarks.md).
pub fn run<T: Send + 'static>(
    work: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match tokio::spawn(work).await {
            Ok(result) => result,
            // Keep a panic a panic (with its message), as if `work` ran here.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(anyhow::anyhow!("the run was cancelled: {e}")),
        }
    })
}
