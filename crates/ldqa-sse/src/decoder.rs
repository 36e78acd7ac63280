//! The incremental event-stream decoder.
//!
//! Follows the "Interpreting an event stream" rules of the WHATWG HTML standard
//! (§9.2.6, <https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>):
//!
//! - lines end with CRLF, LF or a lone CR; a CRLF split across two [`Decoder::push`]es is one
//!   line end, not two;
//! - one leading U+FEFF byte order mark is skipped;
//! - a line starting with `:` is a comment (keep-alives) and is ignored;
//! - `field:value` (one space after the colon is dropped), or a bare `field` with an empty value;
//! - `data` lines are joined with `\n`; `event` sets the type (empty means `message`); `id`
//!   sets the last event ID unless the value contains NUL, and the ID persists across events;
//!   `retry` is kept only when it is all ASCII digits; other fields are ignored;
//! - an empty line dispatches the event, unless no `data` line was seen;
//! - at end of input an unterminated event is not dispatched ([`Decoder::finish`] reports it).
//!
//! Two deliberate differences from the browser algorithm, both for a measuring client:
//! invalid UTF-8 is not replaced by U+FFFD but turns the event that contains it into
//! [`SseError::InvalidUtf8`], and a line or event longer than the configured limit turns
//! into [`SseError::TooLarge`] instead of growing memory without bound. Decoding goes on
//! after either error.
//!
//! Bytes are buffered and UTF-8 is validated only once a line is complete, so chunk
//! boundaries may fall anywhere, including inside a multi-byte character. Events borrow
//! from buffers the decoder owns and reuses: once the buffers have grown to the stream's
//! largest line and event, decoding allocates nothing.

use crate::SseError;

/// Default limit on one line and on one event's joined `data`: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Buffers grown past this size by a large event are shrunk back after it, so that one
/// outlier does not pin megabytes for the rest of a long-lived decoder.
const RETAINED_CAPACITY_BYTES: usize = 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event, borrowed from the decoder's buffers.
///
/// Valid until the next call on the decoder; [`Event::into_owned`] keeps a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The event type: the last `event:` field, or `"message"` when there was none.
    pub event: &'a str,
    /// The `data:` lines joined with `\n` (no trailing newline).
    pub data: &'a str,
    /// The last event ID of the stream (it persists across events, as in the standard);
    /// `None` when no `id:` was seen or the last one was empty.
    pub id: Option<&'a str>,
}

impl Event<'_> {
    /// An owned copy (allocates; not for the hot path).
    pub fn into_owned(self) -> OwnedEvent {
        OwnedEvent {
            event: self.event.to_owned(),
            data: self.data.to_owned(),
            id: self.id.map(str::to_owned),
        }
    }
}

/// An owned [`Event`], for tests, fixtures and anything that outlives the decoder's buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEvent {
    /// See [`Event::event`].
    pub event: String,
    /// See [`Event::data`].
    pub data: String,
    /// See [`Event::id`].
    pub id: Option<String>,
}

impl OwnedEvent {
    /// Borrow as an [`Event`].
    pub fn as_event(&self) -> Event<'_> {
        Event {
            event: &self.event,
            data: &self.data,
            id: self.id.as_deref(),
        }
    }
}

/// How the input ended, from [`Decoder::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd<'a> {
    /// The input stopped inside an event: after a field line or part of a line, without
    /// the empty line that dispatches it. A well-formed stream ends with `false`.
    pub mid_event: bool,
    /// The event an empty line at the end would have dispatched. The standard discards it,
    /// and so does [`Decoder::next_event`]; it is offered for lenient callers (a server that
    /// ends with `data: [DONE]` and no blank line). `None` when it had no `data` line.
    pub unterminated: Option<Result<Event<'a>, SseError>>,
}

/// Why the current event is already lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poison {
    InvalidUtf8,
    TooLarge,
}

impl Poison {
    fn into_error(self, limit_bytes: usize) -> SseError {
        match self {
            Poison::InvalidUtf8 => SseError::InvalidUtf8,
            Poison::TooLarge => SseError::TooLarge { limit_bytes },
        }
    }
}

/// What a caller-visible borrow left behind, cleaned up on the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cleanup {
    Nothing,
    /// An event was handed out: clear its data and type before going on.
    Event,
    /// [`Decoder::finish`] ran: reset everything for a new stream.
    Stream,
}

/// The fields of the event being assembled, and the state that outlives events.
#[derive(Debug, Default)]
struct EventState {
    data: String,
    /// At least one `data` line was seen (`data:` with an empty value counts).
    has_data: bool,
    event_type: String,
    last_id: String,
    retry_ms: Option<u64>,
    /// A field line (or an error) was seen since the last dispatch.
    started: bool,
    poison: Option<Poison>,
}

impl EventState {
    fn clear_event(&mut self) {
        self.data.clear();
        self.event_type.clear();
        self.has_data = false;
        self.started = false;
        self.poison = None;
        if self.data.capacity() > RETAINED_CAPACITY_BYTES {
            self.data.shrink_to(RETAINED_CAPACITY_BYTES);
        }
    }

    fn event(&self) -> Event<'_> {
        Event {
            event: if self.event_type.is_empty() {
                "message"
            } else {
                &self.event_type
            },
            data: &self.data,
            id: (!self.last_id.is_empty()).then_some(self.last_id.as_str()),
        }
    }

    fn poison(&mut self, why: Poison) {
        self.started = true;
        if self.poison.is_none() {
            self.poison = Some(why);
        }
        self.data.clear();
        self.has_data = false;
    }

    /// Interprets one complete, non-empty line (without its terminator).
    fn field_line(&mut self, line: &[u8], max_bytes: usize) {
        // The length is checked before anything else, comments included, so that the
        // outcome does not depend on whether the line arrived in one piece or in many
        // (`Decoder::wait_for_line_end` rejects it as soon as its known part is too long).
        if line.len() > max_bytes {
            return self.poison(Poison::TooLarge);
        }
        if line[0] == b':' {
            return; // comment
        }
        self.started = true;
        if self.poison.is_some() {
            return; // the event is already lost; skip the work
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return self.poison(Poison::InvalidUtf8);
        };
        let (name, value) = match line.find(':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match name {
            "data" => {
                let separator = usize::from(self.has_data);
                if self.data.len() + separator + value.len() > max_bytes {
                    return self.poison(Poison::TooLarge);
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            "id" if !value.contains('\0') => {
                self.last_id.clear();
                self.last_id.push_str(value);
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // All digits: only overflow can fail, and a huge delay saturates.
                self.retry_ms = Some(value.parse().unwrap_or(u64::MAX));
            }
            _ => {}
        }
    }
}

/// Incremental SSE decoder: [`push`](Decoder::push) bytes, then take events with
/// [`next_event`](Decoder::next_event) until it returns `None` (or use [`feed`](Decoder::feed)
/// for both). One decoder per connection; [`reset`](Decoder::reset) (or `finish`) makes it
/// ready for the next stream while keeping its buffers.
#[derive(Debug)]
pub struct Decoder {
    /// Input not yet consumed starts at `pos`.
    buf: Vec<u8>,
    pos: usize,
    /// Bytes after `pos` already searched for a line end without finding one.
    scanned: usize,
    /// The last line ended with CR: an LF that comes next belongs to it.
    skip_lf: bool,
    /// No byte has been consumed yet, so a BOM may still come.
    at_start: bool,
    /// Inside a line longer than the limit: drop bytes up to its end.
    discarding: bool,
    state: EventState,
    cleanup: Cleanup,
    max_event_bytes: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with the [`DEFAULT_MAX_EVENT_BYTES`] limit.
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that rejects any line, and any event's joined `data`, longer than
    /// `max_event_bytes` (at least 1).
    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            skip_lf: false,
            at_start: true,
            discarding: false,
            state: EventState::default(),
            cleanup: Cleanup::Nothing,
            max_event_bytes: max_event_bytes.max(1),
        }
    }

    /// The limit on one line and one event, in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// The last valid `retry:` value, in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.state.retry_ms
    }

    /// Bytes pushed but not yet consumed (a partial line, or lines not yet taken).
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Forgets the current stream (partial lines, the event being built, the last event
    /// ID, `retry`), keeping the buffers' capacity and the limit.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.scanned = 0;
        self.skip_lf = false;
        self.at_start = true;
        self.discarding = false;
        self.state.clear_event();
        self.state.last_id.clear();
        self.state.retry_ms = None;
        self.cleanup = Cleanup::Nothing;
        if self.buf.capacity() > RETAINED_CAPACITY_BYTES {
            self.buf.shrink_to(RETAINED_CAPACITY_BYTES);
        }
    }

    /// Appends input. Take the events it completes with [`next_event`](Decoder::next_event).
    pub fn push(&mut self, bytes: &[u8]) {
        self.run_cleanup();
        if self.pos > 0 {
            // Keep only the unconsumed tail: at most a partial line once events are drained.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event in the pushed input, `None` when more input is needed.
    ///
    /// An `Err` stands for one lost event ([`SseError::InvalidUtf8`] or
    /// [`SseError::TooLarge`]); decoding goes on with the next call.
    pub fn next_event(&mut self) -> Option<Result<Event<'_>, SseError>> {
        self.run_cleanup();
        loop {
            if self.at_start {
                let rest = &self.buf[self.pos..];
                if rest.len() < BOM.len() && BOM.starts_with(rest) {
                    return None; // maybe a BOM: wait for its other bytes
                }
                if rest.starts_with(BOM) {
                    self.pos += BOM.len();
                }
                self.at_start = false;
            }
            if self.skip_lf {
                match self.buf.get(self.pos) {
                    None => return None,
                    Some(b'\n') => self.pos += 1,
                    Some(_) => {}
                }
                self.skip_lf = false;
            }
            let from = self.pos + self.scanned;
            let Some(offset) = find_line_end(&self.buf[from..]) else {
                self.wait_for_line_end();
                return None;
            };
            let (start, end) = (self.pos, from + offset);
            self.skip_lf = self.buf[end] == b'\r';
            self.pos = end + 1;
            self.scanned = 0;
            if self.discarding {
                self.discarding = false; // the end of the over-long line
                continue;
            }
            if start < end {
                self.state
                    .field_line(&self.buf[start..end], self.max_event_bytes);
                continue;
            }
            // An empty line: dispatch.
            if let Some(poison) = self.state.poison {
                self.state.clear_event();
                return Some(Err(poison.into_error(self.max_event_bytes)));
            }
            if !self.state.has_data {
                self.state.clear_event();
                continue;
            }
            self.cleanup = Cleanup::Event;
            return Some(Ok(self.state.event()));
        }
    }

    /// [`push`](Decoder::push) then hand every completed event to `on_event`.
    pub fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(Result<Event<'_>, SseError>)) {
        self.push(bytes);
        while let Some(event) = self.next_event() {
            on_event(event);
        }
    }

    /// Ends the input: reports whether it stopped mid-event, and offers the unterminated
    /// event (see [`StreamEnd`]). Call it after [`next_event`](Decoder::next_event) has
    /// returned `None`; complete lines still unread are treated as part of the
    /// unterminated event. The next call of any method starts a new stream.
    pub fn finish(&mut self) -> StreamEnd<'_> {
        self.run_cleanup();
        let partial = self.buf.len() > self.pos;
        if !self.discarding {
            // Interpret what is left as if a line end and an empty line followed.
            let mut rest = self.pos;
            while rest < self.buf.len() {
                if self.skip_lf && self.buf[rest] == b'\n' {
                    rest += 1;
                }
                self.skip_lf = false;
                let end = find_line_end(&self.buf[rest..]).map_or(self.buf.len(), |i| rest + i);
                let line = &self.buf[rest..end];
                let line = match (self.at_start, line.strip_prefix(BOM)) {
                    (true, Some(stripped)) => stripped,
                    _ => line,
                };
                self.at_start = false;
                if !line.is_empty() {
                    self.state.field_line(line, self.max_event_bytes);
                }
                rest = end + 1;
                self.skip_lf = end < self.buf.len() && self.buf[end] == b'\r';
            }
        }
        self.pos = self.buf.len();
        let mid_event = partial || self.state.started;
        self.cleanup = Cleanup::Stream;
        let unterminated = match self.state.poison {
            Some(poison) => Some(Err(poison.into_error(self.max_event_bytes))),
            None if self.state.has_data => Some(Ok(self.state.event())),
            None => None,
        };
        StreamEnd {
            mid_event,
            unterminated,
        }
    }

    fn run_cleanup(&mut self) {
        match std::mem::replace(&mut self.cleanup, Cleanup::Nothing) {
            Cleanup::Nothing => {}
            Cleanup::Event => self.state.clear_event(),
            Cleanup::Stream => self.reset(),
        }
    }

    /// No line end in the buffered bytes: remember how far we looked, or give up on a line
    /// that is already over the limit.
    fn wait_for_line_end(&mut self) {
        let pending = self.buf.len() - self.pos;
        if self.discarding {
            self.pos = self.buf.len();
            self.scanned = 0;
        } else if pending > self.max_event_bytes {
            self.state.poison(Poison::TooLarge);
            self.discarding = true;
            self.pos = self.buf.len();
            self.scanned = 0;
        } else {
            self.scanned = pending;
        }
    }
}

/// Index of the first CR or LF.
fn find_line_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n' || b == b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> (Vec<Result<OwnedEvent, SseError>>, bool) {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, |e| out.push(e.map(Event::into_owned)));
        }
        let end = decoder.finish();
        (out, end.mid_event)
    }

    fn msg(data: &str) -> Result<OwnedEvent, SseError> {
        Ok(OwnedEvent {
            event: "message".into(),
            data: data.into(),
            id: None,
        })
    }

    #[test]
    fn line_endings_lf_crlf_cr() {
        for input in [
            "data: a\n\ndata: b\n\n",
            "data: a\r\n\r\ndata: b\r\n\r\n",
            "data: a\r\rdata: b\r\r",
        ] {
            assert_eq!(
                decode(&[input.as_bytes()]),
                (vec![msg("a"), msg("b")], false),
                "{input:?}"
            );
        }
    }

    #[test]
    fn crlf_split_across_pushes_is_one_line_end() {
        // "data: a\r" | "\n" | "\r" | "\ndata: b\r\n\r\n": a wrong split would dispatch early
        // and lose nothing, so check with a multi-line event where an extra empty line
        // would cut the event in two.
        let chunks: [&[u8]; 4] = [b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"];
        assert_eq!(decode(&chunks), (vec![msg("a\nb")], false));
    }

    #[test]
    fn lone_cr_at_chunk_end_dispatches_without_waiting() {
        let mut d = Decoder::new();
        d.push(b"data: x\r\r");
        assert_eq!(d.next_event().unwrap().unwrap().data, "x");
        assert!(d.next_event().is_none());
    }

    #[test]
    fn fields_comments_and_defaults() {
        let input = b": keep-alive\nevent: delta\nid: 7\nretry: 1500\ndata\ndata:two\ndata:  three\nfoo: bar\n\n";
        let mut d = Decoder::new();
        let mut seen = Vec::new();
        d.feed(input, |e| seen.push(e.map(Event::into_owned)));
        let expected = OwnedEvent {
            event: "delta".into(),
            data: "\ntwo\n three".into(),
            id: Some("7".into()),
        };
        assert_eq!(seen, vec![Ok(expected)]);
        assert_eq!(d.retry_ms(), Some(1500));
    }

    #[test]
    fn id_persists_and_event_type_does_not() {
        let input = b"event: a\nid: 1\ndata: x\n\ndata: y\n\nid\ndata: z\n\n";
        let (events, _) = decode(&[input]);
        let got: Vec<_> = events
            .into_iter()
            .map(|e| e.unwrap())
            .map(|e| (e.event, e.id))
            .collect();
        let want = [("a", Some("1")), ("message", Some("1")), ("message", None)];
        let want: Vec<_> = want
            .iter()
            .map(|(t, i)| (t.to_string(), i.map(String::from)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn ignored_values() {
        let input = b"retry: 12a\nid: a\0b\ndata: x\n\n";
        let mut d = Decoder::new();
        let mut seen = Vec::new();
        d.feed(input, |e| seen.push(e.map(Event::into_owned)));
        assert_eq!(seen, vec![msg("x")]);
        assert_eq!(d.retry_ms(), None);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert_eq!(
            decode(&[b"event: ping\n\nid: 3\n\n: c\n\n"]),
            (vec![], false)
        );
    }

    #[test]
    fn bom_only_at_start_and_split() {
        let (events, _) = decode(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]);
        assert_eq!(events, vec![msg("a")]);
        // A second BOM is part of the field name, so the line is an unknown field.
        let (events, _) = decode(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n"]);
        assert_eq!(events, vec![msg("b")]);
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let text = "data: h\u{e9}\u{1F600}\n\n".as_bytes();
        for cut in 0..text.len() {
            let (events, mid) = decode(&[&text[..cut], &text[cut..]]);
            assert_eq!(
                (events, mid),
                (vec![msg("h\u{e9}\u{1F600}")], false),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn invalid_utf8_loses_one_event_only() {
        let (events, mid) = decode(&[b"data: a\xFFb\ndata: more\n\ndata: ok\n\n"]);
        assert_eq!(events, vec![Err(SseError::InvalidUtf8), msg("ok")]);
        assert!(!mid);
    }

    #[test]
    fn invalid_utf8_in_comment_is_ignored() {
        assert_eq!(decode(&[b": \xFF\ndata: ok\n\n"]).0, vec![msg("ok")]);
    }

    #[test]
    fn too_large_line_across_pushes_then_recovers() {
        let mut d = Decoder::with_max_event_bytes(16);
        let mut seen = Vec::new();
        d.feed(b"data: 0123456789", |e| seen.push(e.map(Event::into_owned)));
        d.feed(b"0123456789", |e| seen.push(e.map(Event::into_owned)));
        assert!(
            d.buffered_bytes() == 0,
            "over-long line must not stay buffered"
        );
        d.feed(b"abc\r", |e| seen.push(e.map(Event::into_owned)));
        d.feed(b"\n\r\ndata: ok\n\n", |e| {
            seen.push(e.map(Event::into_owned))
        });
        assert_eq!(
            seen,
            vec![Err(SseError::TooLarge { limit_bytes: 16 }), msg("ok")]
        );
    }

    #[test]
    fn too_large_event_from_many_lines() {
        let mut d = Decoder::with_max_event_bytes(8);
        let mut seen = Vec::new();
        d.feed(
            b"data: 1234\ndata: 5678\ndata: 9\n\ndata: 12\ndata: 34\n\n",
            |e| seen.push(e.map(Event::into_owned)),
        );
        assert_eq!(
            seen,
            vec![Err(SseError::TooLarge { limit_bytes: 8 }), msg("12\n34")]
        );
    }

    #[test]
    fn finish_reports_mid_event_and_offers_it() {
        let mut d = Decoder::new();
        d.feed(b"data: a\n\ndata: [DONE]", |_| {});
        let end = d.finish();
        assert!(end.mid_event);
        assert_eq!(end.unterminated.unwrap().unwrap().data, "[DONE]");
        // The decoder starts over.
        assert_eq!(
            d.finish(),
            StreamEnd {
                mid_event: false,
                unterminated: None
            }
        );

        d.feed(b"data: a\n", |_| panic!("no event yet"));
        let end = d.finish();
        assert!(end.mid_event);
        assert_eq!(end.unterminated.unwrap().unwrap().data, "a");

        d.feed(b": only a comment\n", |_| {});
        assert_eq!(
            d.finish(),
            StreamEnd {
                mid_event: false,
                unterminated: None
            }
        );
    }

    #[test]
    fn finish_after_trailing_cr_is_clean() {
        let mut d = Decoder::new();
        d.feed(b"data: a\r\r", |_| {});
        assert_eq!(
            d.finish(),
            StreamEnd {
                mid_event: false,
                unterminated: None
            }
        );
    }

    #[test]
    fn reset_keeps_working_and_clears_id() {
        let mut d = Decoder::new();
        d.feed(b"id: 9\ndata: a\n\ndata: partial", |_| {});
        d.reset();
        let mut seen = Vec::new();
        d.feed(b"data: b\n\n", |e| seen.push(e.map(Event::into_owned)));
        assert_eq!(seen, vec![msg("b")]);
    }

    #[test]
    fn no_reallocation_in_steady_state() {
        let mut d = Decoder::new();
        let chunk = b"data: {\"choices\":[{\"delta\":{\"content\":\"tok\"}}]}\n\n";
        d.feed(chunk, |_| {});
        let caps = (d.buf.capacity(), d.state.data.capacity());
        for _ in 0..1000 {
            d.feed(chunk, |e| assert!(e.is_ok()));
        }
        assert_eq!(caps, (d.buf.capacity(), d.state.data.capacity()));
    }
}
