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
//!
//! ```
//! use ldqa_sse::{parse_event, Decoder, StreamData};
//!
//! // Bytes as they come off the socket: chunk boundaries fall anywhere.
//! let reads: [&[u8]; 3] = [
//!     b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\nda",
//!     b"ta: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n: keep-alive\n\n",
//!     b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n",
//! ];
//! let mut decoder = Decoder::new(); // one per connection, reused across requests
//! let (mut first_content, mut done, mut usage) = (None, false, None);
//! for read in reads {
//!     decoder.push(read);
//!     while let Some(event) = decoder.next_event() {
//!         let event = event?; // SseError::InvalidUtf8 / TooLarge: one lost event
//!         match parse_event(&event)? {
//!             StreamData::Done => done = true,
//!             StreamData::Chunk(chunk) => {
//!                 if chunk.has_content() && first_content.is_none() {
//!                     first_content = Some(chunk.text().to_owned()); // TTFT timestamp here
//!                 }
//!                 usage = chunk.usage.or(usage);
//!             }
//!             StreamData::Error(e) => panic!("server error: {}", e.message),
//!         }
//!     }
//! }
//! assert!(!decoder.finish().mid_event); // true would mean a truncated stream
//! assert_eq!(first_content.as_deref(), Some("Hi"));
//! assert!(done);
//! assert_eq!(usage.unwrap().prompt_tokens, Some(7));
//! # Ok::<(), ldqa_sse::SseError>(())
//! ```

#![warn(missing_docs)]

pub mod decoder;
pub mod error;
pub mod fuzz;
pub mod openai;

pub use decoder::{Decoder, Event, OwnedEvent, StreamEnd, DEFAULT_MAX_EVENT_BYTES};
pub use error::SseError;
pub use openai::{parse_data, parse_event, Chunk, ServerError, StreamData};
