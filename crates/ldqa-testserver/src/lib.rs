//! A scripted OpenAI-compatible server on loopback, for tests and benchmarks.
//!
//! Each request is answered by a user-supplied *behaviour*: a function from the parsed
//! request to a [`Reply`]. Streaming replies are scripts of [`Step`]s: sleep, write an
//! event, mark the first token, cut the connection, stall. The server records what it
//! served, including the moment it wrote each request's first token, so a test can
//! compare the client's TTFT with the server's own clock.
//!
//! HTTP/1.1 is written by hand here on purpose: tests need faults no framework lets a
//! handler produce (dropping the connection before the status line, cutting a chunked
//! body in the middle, stalling with the socket open). Accepted sockets get
//! `TCP_NODELAY`: without it Nagle's algorithm adds ~20 ms to loopback TTFT.
//!
//! Time comes from `tokio::time`, so tests that run in a paused-clock runtime see the
//! scripted delays exactly, with no sleeping and no tolerance.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ldqa_testserver::{chat_stream, Reply, ScriptedServer};
//! let server = ScriptedServer::start(|req| {
//!     if req.path.ends_with("/chat/completions") {
//!         Reply::Stream(chat_stream(std::time::Duration::from_millis(200), &["Hello", " world"], 10))
//!     } else {
//!         ldqa_testserver::default_reply(req)
//!     }
//! })
//! .await?;
//! println!("{}", server.base_url());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod arrival;
mod http;
mod script;

pub use arrival::{monotonic_now_ns, monotonic_ns};
pub use http::{ScriptedServer, Served};
pub use script::{
    chat_stream, completion_stream, content_chunk, default_reply, done, reasoning_chunk,
    role_chunk, usage_chunk, Reply, RequestInfo, Step,
};
