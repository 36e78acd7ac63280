//! Reading a trace file: one JSON object per line, in either public format, detected from
//! the first line's fields unless named.

use std::fmt;
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Why a trace could not be read. Line numbers count from 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be opened or read (the caller names it).
    #[error("cannot be read")]
    Io {
        #[source]
        source: std::io::Error,
    },
    /// A line is not a request of the format.
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    /// No request at all.
    #[error("no request in the trace")]
    Empty,
    /// The format could not be told from the first line.
    #[error("line {line}: neither Mooncake's fields (timestamp, input_length, output_length, hash_ids) nor Bailian's (chat_id, parent_chat_id, turn, …): name the format with --format")]
    UnknownFormat { line: usize },
}

/// A trace's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceFormat {
    /// Mooncake (FAST'25): `timestamp` ms, `input_length`, `output_length`, `hash_ids` of
    /// 512-token blocks.
    Mooncake,
    /// Qwen Bailian: `chat_id`, `parent_chat_id`, `timestamp` s, `input_length`,
    /// `output_length`, `turn`, `hash_ids` of 16-token blocks.
    Bailian,
}

impl TraceFormat {
    /// Tokens per hash id.
    pub fn block_tokens(self) -> u64 {
        match self {
            TraceFormat::Mooncake => 512,
            TraceFormat::Bailian => 16,
        }
    }

    /// Its name, as `--format` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceFormat::Mooncake => "mooncake",
            TraceFormat::Bailian => "bailian",
        }
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TraceFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mooncake" => Ok(TraceFormat::Mooncake),
            "bailian" => Ok(TraceFormat::Bailian),
            _ => Err(format!(
                "unknown trace format {s:?}; expected mooncake or bailian"
            )),
        }
    }
}

/// One request of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRequest {
    /// Arrival, milliseconds from the trace's start.
    pub arrival_ms: f64,
    /// Prompt tokens.
    pub input_length: u64,
    /// Output tokens.
    pub output_length: u64,
    /// The prompt's blocks: equal ids are equal blocks (the last may be partial).
    pub hash_ids: Vec<u64>,
    /// Bailian: the conversation and the request this one follows (none for Mooncake).
    pub chat: Option<ChatLink>,
}

/// Where a Bailian request sits in its conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLink {
    pub chat_id: i64,
    /// The request this one continues; none for a conversation's first.
    pub parent_chat_id: Option<i64>,
    pub turn: u32,
}

/// A whole trace, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub format: TraceFormat,
    pub requests: Vec<TraceRequest>,
}

#[derive(Deserialize)]
struct MooncakeLine {
    timestamp: f64,
    input_length: u64,
    output_length: u64,
    hash_ids: Vec<u64>,
}

#[derive(Deserialize)]
struct BailianLine {
    chat_id: i64,
    #[serde(default)]
    parent_chat_id: Option<i64>,
    timestamp: f64,
    input_length: u64,
    output_length: u64,
    #[serde(default)]
    turn: u32,
    hash_ids: Vec<u64>,
}

impl Trace {
    /// Reads `path` (`format`, or detected from the first request's fields).
    pub fn read(path: &Path, format: Option<TraceFormat>) -> Result<Trace, TraceError> {
        let file = std::fs::File::open(path).map_err(|source| TraceError::Io { source })?;
        Trace::from_reader(std::io::BufReader::new(file), format)
    }

    /// Reads a trace from `reader`, one request per non-empty line. Requests out of
    /// arrival order are put in order (stably: equal times keep the file's order).
    pub fn from_reader(
        reader: impl BufRead,
        format: Option<TraceFormat>,
    ) -> Result<Trace, TraceError> {
        let mut lines = TraceLines::new(reader, format);
        let mut requests = Vec::new();
        for request in lines.by_ref() {
            requests.push(request?);
        }
        let format = lines.format().ok_or(TraceError::Empty)?;
        if requests.is_empty() {
            return Err(TraceError::Empty);
        }
        requests.sort_by(|a, b| a.arrival_ms.total_cmp(&b.arrival_ms));
        Ok(Trace { format, requests })
    }

    /// Tokens per hash id.
    pub fn block_tokens(&self) -> u64 {
        self.format.block_tokens()
    }

    /// The requests a replay sends, each with its send time in ns from the first: the
    /// first `max_requests`, those arriving within `time_window_s` of the first, their
    /// arrivals divided by `speedup` (positive).
    pub fn schedule(
        &self,
        speedup: f64,
        max_requests: Option<usize>,
        time_window_s: Option<f64>,
    ) -> Vec<(&TraceRequest, u64)> {
        let mut cut = ScheduleCut::new(speedup, max_requests, time_window_s);
        self.requests
            .iter()
            .map_while(|r| Some((r, cut.send_at_ns(r)?)))
            .collect()
    }
}

/// [`Trace::schedule`] one request at a time, for a trace read as it is replayed.
#[derive(Debug, Clone)]
pub struct ScheduleCut {
    speedup: f64,
    left: usize,
    window_ms: f64,
    first_ms: Option<f64>,
}

impl ScheduleCut {
    /// The first `max_requests`, within `time_window_s` of the first, `speedup` times
    /// faster.
    pub fn new(speedup: f64, max_requests: Option<usize>, time_window_s: Option<f64>) -> Self {
        ScheduleCut {
            speedup,
            left: max_requests.unwrap_or(usize::MAX),
            window_ms: time_window_s.map_or(f64::INFINITY, |s| s * 1000.0),
            first_ms: None,
        }
    }

    /// When the next request, `r`, is sent (ns after the first); `None` once the count
    /// or the window is past (every later request too, the trace being in order).
    pub fn send_at_ns(&mut self, r: &TraceRequest) -> Option<u64> {
        let first_ms = *self.first_ms.get_or_insert(r.arrival_ms);
        if self.left == 0 || r.arrival_ms - first_ms >= self.window_ms {
            self.left = 0;
            return None;
        }
        self.left -= 1;
        let offset_ms = (r.arrival_ms - first_ms) / self.speedup;
        Some((offset_ms * 1e6).round() as u64)
    }
}

/// For each request of `schedule` (a [`Trace::schedule`]), the position of the request it
/// follows (Bailian's `parent_chat_id`) when that one is earlier in the schedule: a
/// conversation's next turn is asked only once the previous one is answered. Requests whose
/// parent is not replayed (outside the window) have none.
pub fn followed(schedule: &[(&TraceRequest, u64)]) -> Vec<Option<usize>> {
    let mut links = ChatLinks::default();
    schedule.iter().map(|(r, _)| links.parent(r)).collect()
}

/// [`followed`] one request at a time: each request's position and conversation (about 32
/// bytes per Bailian request; nothing for Mooncake).
#[derive(Debug, Clone, Default)]
pub struct ChatLinks {
    /// By `chat_id`: its position, and the `chat_id` its conversation started with.
    seen_chats: std::collections::HashMap<i64, (usize, i64)>,
    seen: usize,
}

impl ChatLinks {
    /// The position of the earlier request the next one, `r`, follows.
    pub fn parent(&mut self, r: &TraceRequest) -> Option<usize> {
        self.link(r).0
    }

    /// The position of the earlier request the next one, `r`, follows, and the
    /// conversation it belongs to (the `chat_id` of its first turn replayed).
    pub fn link(&mut self, r: &TraceRequest) -> (Option<usize>, Option<i64>) {
        let i = self.seen;
        self.seen += 1;
        let Some(chat) = r.chat else {
            return (None, None);
        };
        let parent = chat
            .parent_chat_id
            .and_then(|p| self.seen_chats.get(&p).copied());
        let root = parent.map_or(chat.chat_id, |(_, root)| root);
        self.seen_chats.insert(chat.chat_id, (i, root));
        (parent.map(|(position, _)| position), Some(root))
    }
}

/// A trace's requests as its lines are read, in the file's order (not sorted), the format
/// detected from the first unless named.
pub struct TraceLines<R> {
    lines: std::io::Lines<R>,
    line_no: usize,
    format: Option<TraceFormat>,
}

impl<R: BufRead> TraceLines<R> {
    /// The requests of `reader`, in `format` or the first line's.
    pub fn new(reader: R, format: Option<TraceFormat>) -> Self {
        TraceLines {
            lines: reader.lines(),
            line_no: 0,
            format,
        }
    }

    /// The format: named, or detected once a request has been read.
    pub fn format(&self) -> Option<TraceFormat> {
        self.format
    }

    fn request(
        &mut self,
        line: std::io::Result<String>,
    ) -> Option<Result<TraceRequest, TraceError>> {
        let line_no = self.line_no;
        let line = match line {
            Ok(line) => line,
            Err(source) if source.kind() == std::io::ErrorKind::InvalidData => {
                return Some(Err(TraceError::Line {
                    line: line_no,
                    message: "not UTF-8 text: a trace is JSON lines".into(),
                }))
            }
            Err(source) => return Some(Err(TraceError::Io { source })),
        };
        let text = line.trim();
        if text.is_empty() {
            return None;
        }
        let format = match self.format {
            Some(f) => f,
            None => match detect(text) {
                Some(f) => *self.format.insert(f),
                None => return Some(Err(TraceError::UnknownFormat { line: line_no })),
            },
        };
        Some(
            parse_line(text, format).map_err(|message| TraceError::Line {
                line: line_no,
                message,
            }),
        )
    }
}

impl<R: BufRead> Iterator for TraceLines<R> {
    type Item = Result<TraceRequest, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self.lines.next()?;
            self.line_no += 1;
            if let Some(request) = self.request(line) {
                return Some(request);
            }
        }
    }
}

fn detect(text: &str) -> Option<TraceFormat> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let object = value.as_object()?;
    if object.contains_key("chat_id") {
        Some(TraceFormat::Bailian)
    } else if object.contains_key("hash_ids") && object.contains_key("timestamp") {
        Some(TraceFormat::Mooncake)
    } else {
        None
    }
}

fn parse_line(text: &str, format: TraceFormat) -> Result<TraceRequest, String> {
    let mut request = match format {
        TraceFormat::Mooncake => {
            let l: MooncakeLine = serde_json::from_str(text).map_err(|e| e.to_string())?;
            TraceRequest {
                arrival_ms: l.timestamp,
                input_length: l.input_length,
                output_length: l.output_length,
                hash_ids: l.hash_ids,
                chat: None,
            }
        }
        TraceFormat::Bailian => {
            let l: BailianLine = serde_json::from_str(text).map_err(|e| e.to_string())?;
            TraceRequest {
                arrival_ms: l.timestamp * 1000.0,
                input_length: l.input_length,
                output_length: l.output_length,
                hash_ids: l.hash_ids,
                chat: Some(ChatLink {
                    chat_id: l.chat_id,
                    parent_chat_id: l.parent_chat_id.filter(|&p| p >= 0),
                    turn: l.turn,
                }),
            }
        }
    };
    check(&request, format)?;
    // A trace may be held whole: no spare capacity per request (a third of it otherwise).
    request.hash_ids.shrink_to_fit();
    Ok(request)
}

/// A request whose numbers cannot be: negative or non-finite time, or as many blocks as
/// its prompt does not fill.
fn check(r: &TraceRequest, format: TraceFormat) -> Result<(), String> {
    if !(r.arrival_ms.is_finite() && r.arrival_ms >= 0.0) {
        return Err(format!(
            "timestamp must be a non-negative number, not {}",
            r.arrival_ms
        ));
    }
    let block = format.block_tokens();
    let blocks = r.input_length.div_ceil(block);
    if r.hash_ids.len() as u64 != blocks {
        return Err(format!(
            "{} hash_ids for input_length {} (blocks of {block} tokens: expected {blocks})",
            r.hash_ids.len(),
            r.input_length
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Trace, TraceError> {
        Trace::from_reader(text.as_bytes(), None)
    }

    #[test]
    fn both_formats_are_detected() {
        let m = read("{\"timestamp\": 5, \"input_length\": 600, \"output_length\": 2, \"hash_ids\": [1, 2]}\n").unwrap();
        assert_eq!(m.format, TraceFormat::Mooncake);
        assert_eq!(m.requests[0].arrival_ms, 5.0);
        let b = read("{\"chat_id\": 7, \"parent_chat_id\": -1, \"timestamp\": 1.5, \"input_length\": 20, \"output_length\": 3, \"turn\": 1, \"type\": \"text\", \"hash_ids\": [9, 10]}\n").unwrap();
        assert_eq!(b.format, TraceFormat::Bailian);
        assert_eq!(b.requests[0].arrival_ms, 1500.0);
        let chat = b.requests[0].chat.unwrap();
        assert_eq!((chat.chat_id, chat.parent_chat_id, chat.turn), (7, None, 1));
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, says) in [
            ("{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [1]}", "1 hash_ids for input_length 600"),
            ("{\"timestamp\": -1, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1]}", "non-negative"),
            ("{\"x\": 1}", "name the format with --format"),
            ("{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1]}\nnot json", "line 2"),
            ("\n\n", "no request"),
        ] {
            let e = read(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn requests_are_put_in_arrival_order() {
        let t = read("{\"timestamp\": 9, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1]}\n{\"timestamp\": 3, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [2]}\n").unwrap();
        let order: Vec<u64> = t.requests.iter().map(|r| r.hash_ids[0]).collect();
        assert_eq!(order, [2, 1]);
    }
}
