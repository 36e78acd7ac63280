//! Writing results to stdout, and what a closed stdout means: the reader (`| head -3`) has
//! what it wanted, so the command stops there and `ldqa` exits 0 without a word, as ripgrep
//! does.
//!
//! Why not restore SIGPIPE's default disposition at start instead, as many C tools do: the
//! process would die by the signal (status 141 in a shell, a failure under
//! `set -o pipefail`) instead of exiting 0, and without unwinding, so `ab`'s `Server::drop`
//! would not stop the server under test and temporary document files would stay behind.
//! Rust ignores SIGPIPE, so a write to a closed pipe is an `EPIPE` error that we can handle.

use std::io::{ErrorKind, Write};

/// The error of a write to a stdout whose reader has gone. `main` maps it to a silent exit 0.
/// A marker type rather than any `BrokenPipe` in the error chain: a broken pipe elsewhere
/// (a socket, a child's pipe) is a real error and must still be reported.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `text` to stdout and flushes it. ANSI colours are stripped when stdout is not a
/// terminal (`anstream`). Use this, not `print!`, which panics when the reader has gone.
pub fn write(text: &str) -> anyhow::Result<()> {
    let mut out = anstream::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
            _ => anyhow::Error::new(e).context("writing to stdout"),
        })
}

/// Whether `err` is (or wraps) [`StdoutClosed`].
pub fn is_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<StdoutClosed>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stdouts_broken_pipe_is_quiet() {
        let closed = anyhow::Error::new(StdoutClosed).context("printing the report");
        assert!(is_closed(&closed));
        let socket = anyhow::Error::new(std::io::Error::from(ErrorKind::BrokenPipe));
        assert!(!is_closed(&socket));
    }
}
