//! Recorded request traces: each request's arrival, prompt and output lengths, and its
//! prompt as a chain of block hash ids (equal ids are equal token blocks; a shared prefix
//! is a shared run of leading ids).
//!
//! - [`format`]: the two public formats, read line by line ([`Trace::read`]): Mooncake's
//!   (`timestamp` in ms, 512-token blocks) and Qwen Bailian's (`chat_id`, `parent_chat_id`,
//!   `turn`, `timestamp` in s, 16-token blocks).
//! - [`source`]: a trace file replayed as it is read ([`TraceSource`]), so a replay's
//!   memory does not grow with the trace's length.
//! - [`stats`]: what a trace implies without any engine ([`TraceStats`]): requests, tokens,
//!   the hit rate of an unbounded prefix cache, and of LRU caches of given sizes.

pub mod format;
pub mod source;
pub mod stats;

pub use format::{
    followed, ChatLinks, ScheduleCut, Trace, TraceError, TraceFormat, TraceLines, TraceRequest,
};
pub use source::TraceSource;
pub use stats::{CacheHits, LruCache, TraceStats};
