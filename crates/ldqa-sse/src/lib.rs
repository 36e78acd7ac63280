//! Incremental Server-Sent Events decoder: bytes in, events out. No I/O, no async.
//!
//! Layout:
//! - [`decoder`]: the WHATWG event-stream parser ([`Decoder`], [`Event`]).
//! - [`error`]: [`SseError`], one value per lost event.

pub mod decoder;
pub mod error;

pub use decoder::{Decoder, Event, OwnedEvent, StreamEnd, DEFAULT_MAX_EVENT_BYTES};
pub use error::SseError;
