//! Writing results to stdout, and what a closed stdout means: the reader (`| head -3`) has
//! what it wanted, so the command stops there and `ldqa` exits 0 without a word, as ripgrep
//! does.
//!
//! Why not restore SIGPIPE's default disposition at start instead, as many C tools do: the
//! process would die by the signal (status 141 in a shell, a failure under
//! `set -o pipefail`) instead of exiting 0, and without unwinding, so `ab`'s `Server::drop`
//! would not stop the server under test and temporary document files would stay behind.
//! Rust ignores SIGPIPE, so a write to a closed pipe is an `EPIPE` error that we can handle.

use std::any::Any;
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

/// The panic of `print!`/`println!` on a closed stdout, as std words it.
fn is_print_panic(message: &str) -> bool {
    let epipe = std::io::Error::from_raw_os_error(libc::EPIPE);
    message == format!("failed printing to stdout: {epipe}")
}

/// The message of a panic payload, when it is text.
fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Whether a panic payload is `print!` failing on a closed stdout.
pub fn is_closed_panic(payload: &(dyn Any + Send)) -> bool {
    panic_message(payload).is_some_and(is_print_panic)
}

/// A safety net for code that still prints with `print!` (`recommend`, `predict`'s
/// `Report::print`): their panic on a closed stdout is not reported, and `main`, which
/// catches it, exits 0. Other panics are reported as before.
pub fn quiet_print_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_closed_panic(info.payload()) {
            report(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_prints_panic_on_a_closed_stdout() {
        let panic = std::panic::catch_unwind(|| {
            let e = std::io::Error::from_raw_os_error(libc::EPIPE);
            panic!("failed printing to stdout: {e}")
        })
        .unwrap_err();
        assert!(is_closed_panic(&*panic));
        let other = std::panic::catch_unwind(|| panic!("failed printing to stdout: disk full"))
            .unwrap_err();
        assert!(!is_closed_panic(&*other));
    }

    #[test]
    fn only_stdouts_broken_pipe_is_quiet() {
        let closed = anyhow::Error::new(StdoutClosed).context("printing the report");
        assert!(is_closed(&closed));
        let socket = anyhow::Error::new(std::io::Error::from(ErrorKind::BrokenPipe));
        assert!(!is_closed(&socket));
    }
}
