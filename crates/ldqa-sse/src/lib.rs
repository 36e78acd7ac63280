//! Incremental Server-Sent Events decoder: bytes in, events out. No I/O, no async.
//!
//! Layout:
//! - [`decoder`]: the WHATWG event-stream parser ([`Decoder`], [`Event`]).
//! - [`openai`]: what one event of an OpenAI-compatible stream says ([`parse_event`] →
//!   [`StreamData`]: `[DONE]`, a [`Chunk`] with content/usage, or a [`ServerError`]).
//! - [`error`]: [`SseError`], one value per lost event.
//! - [`fuzz`]: whole-input decoding into owned values and the fuzz entry point
//!   ([`fuzz::fuzz_decode`]), for fuzzers and property tests.
//!
//! The decoder owns and reuses its buffers; events borrow from them, so the hot loop of a
//! streaming client allocates nothing per event.

pub mod decoder;
pub mod error;
pub mod fuzz;
pub mod openai;

pub use decoder::{Decoder, Event, OwnedEvent, StreamEnd, DEFAULT_MAX_EVENT_BYTES};
pub use error::SseError;
pub use openai::{parse_data, parse_event, Chunk, ServerError, StreamData};
