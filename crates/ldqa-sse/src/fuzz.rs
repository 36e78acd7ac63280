//! Entry points for fuzzers and property tests: whole-input decoding into owned values,
//! and a differential check that chunking never changes the result.

use crate::decoder::{Decoder, Event, OwnedEvent};
use crate::openai::parse_event;
use crate::SseError;

/// Everything a decoder produced for one input, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Dispatched events and per-event errors, in order.
    pub events: Vec<Result<OwnedEvent, SseError>>,
    /// [`crate::StreamEnd::mid_event`] at the end of the input.
    pub mid_event: bool,
    /// [`crate::StreamEnd::unterminated`], owned.
    pub unterminated: Option<Result<OwnedEvent, SseError>>,
    /// The last valid `retry:` value, in milliseconds.
    pub retry_ms: Option<u64>,
}

/// Decodes `chunks` in order with a fresh decoder limited to `max_event_bytes`.
pub fn decode_chunks<'a>(
    max_event_bytes: usize,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Transcript {
    let mut decoder = Decoder::with_max_event_bytes(max_event_bytes);
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, |event| events.push(event.map(Event::into_owned)));
    }
    let retry_ms = decoder.retry_ms();
    let end = decoder.finish();
    Transcript {
        events,
        mid_event: end.mid_event,
        unterminated: end.unterminated.map(|e| e.map(Event::into_owned)),
        retry_ms,
    }
}

/// Fuzz target: decodes `input` in one piece and again in chunks whose sizes come from
/// the input itself, with a size limit also taken from the input (small limits exercise
/// [`SseError::TooLarge`]), and interprets every event as an OpenAI chunk.
///
/// Never panics on any input unless the decoder's result depends on how the input was
/// chunked, which would be a bug.
pub fn fuzz_decode(input: &[u8]) -> Transcript {
    let (&selector, body) = match input.split_first() {
        Some(split) => split,
        None => (&0, input),
    };
    let max_event_bytes = if selector & 0x80 == 0 {
        1 + usize::from(selector & 0x3F)
    } else {
        1 << 20
    };
    let whole = decode_chunks(max_event_bytes, [body]);
    let sizes = body.iter().map(|&b| 1 + usize::from(b % 7)).cycle();
    let mut chunks = Vec::new();
    let mut rest = body;
    for size in sizes {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    let chunked = decode_chunks(max_event_bytes, chunks);
    assert_eq!(
        whole, chunked,
        "decoding must not depend on chunk boundaries"
    );
    for event in whole.events.iter().flatten() {
        let _ = parse_event(&event.as_event());
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_handles_edge_inputs() {
        for input in [
            &b""[..],
            b"\x00",
            b"\x80data: x\n\n",
            b"\x01data: too long\n\n",
            b"\x80\xEF\xBB",
            b"\x80\r\n\r",
        ] {
            fuzz_decode(input);
        }
        let t = fuzz_decode(b"\x80data: [DONE]\n\n");
        assert_eq!(t.events.len(), 1);
        let t = fuzz_decode(b"\x03data: four\n\n");
        assert_eq!(t.events, vec![Err(SseError::TooLarge { limit_bytes: 4 })]);
    }
}
