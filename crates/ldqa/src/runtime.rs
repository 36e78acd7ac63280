//! The async runtime of the commands that send requests (`run`, `ab`), and their Ctrl-C.

use std::future::Future;

use anyhow::Context;
use ldqa_loadgen::Cancel;

use crate::exit::ExitStatus;

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

/// Watches for Ctrl-C and SIGTERM while a command runs. The first cancels `cancel` and says
/// so on stderr, so the command stops sending and writes what it measured; the second runs
/// `before_exit` (e.g. kill a server's process group) and exits 130 at once, for when the
/// orderly stop hangs. SIGTERM (`kill`, a CI job's timeout, systemd) is the same request as
/// Ctrl-C: it used to end `ab` at once and orphan its server (reliability review D4). Must be
/// called inside the runtime; the watcher ends with it.
pub fn on_interrupt(
    cancel: Cancel,
    stopping: &'static str,
    before_exit: impl FnOnce() + Send + 'static,
) {
    tokio::spawn(async move {
        let mut before_exit = Some(before_exit);
        let mut presses = 0;
        while stop_requested().await {
            presses += 1;
            if presses == 1 {
                eprintln!("\ninterrupted: {stopping} (Ctrl-C again to abort)");
                cancel.cancel();
            } else {
                if let Some(f) = before_exit.take() {
                    f();
                }
                std::process::exit(i32::from(ExitStatus::Interrupted.code()));
            }
        }
    });
}

/// The next Ctrl-C or SIGTERM; false when signals cannot be watched.
async fn stop_requested() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            r = term.recv() => r.is_some(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}
