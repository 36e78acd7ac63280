//! One measured request.

use serde::{Deserialize, Serialize};

/// What happened to one request, measured by the client or computed by the simulator.
///
/// Every `*_ns` field is an offset in nanoseconds from the start of the request's round
/// (a monotonic clock on the real path, the virtual clock in the simulator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Position of the request in its round: upstream's `prompt_id`.
    pub prompt_id: usize,
    /// Which document the prompt was built from.
    pub document_id: usize,
    /// A deliberate cache miss (a unique prefix was prepended). Every warmup request is a miss.
    pub is_miss: bool,
    /// When the request was handed to the runner (queued behind the in-flight cap).
    pub queued_ns: u64,
    /// When it took an in-flight slot and was sent: upstream's `request_start`.
    pub sent_ns: u64,
    /// When the response headers arrived.
    pub first_byte_ns: Option<u64>,
    /// When the first non-empty content (text, reasoning or tool call) arrived.
    pub first_token_ns: Option<u64>,
    /// When the last content event arrived.
    pub last_token_ns: Option<u64>,
    /// When the request ended (stream finished, failed or was cancelled).
    pub end_ns: u64,
    /// Number of SSE events that carried content.
    pub content_events: u32,
    /// Longest gap between two consecutive content events.
    pub max_itl_ns: Option<u64>,
    /// Token counts the server reported in `usage`, when it did.
    pub usage: Option<Usage>,
    /// Why the request failed; `None` when it succeeded.
    pub failure: Option<Failure>,
    /// Where the prompt's KV cache came from (known to the simulator only).
    pub prefix: Option<PrefixSource>,
}

impl RequestRecord {
    /// A record with no timings yet.
    pub fn new(prompt_id: usize, document_id: usize, is_miss: bool) -> Self {
        Self {
            prompt_id,
            document_id,
            is_miss,
            queued_ns: 0,
            sent_ns: 0,
            first_byte_ns: None,
            first_token_ns: None,
            last_token_ns: None,
            end_ns: 0,
            content_events: 0,
            max_itl_ns: None,
            usage: None,
            failure: None,
            prefix: None,
        }
    }

    /// Records one content event that arrived at `at_ns`: the first sets
    /// `first_token_ns`; each later one widens `max_itl_ns` by its gap from the one before.
    pub fn on_content(&mut self, at_ns: u64) {
        if let Some(prev) = self.last_token_ns {
            let gap = at_ns.saturating_sub(prev);
            self.max_itl_ns = Some(self.max_itl_ns.map_or(gap, |m| m.max(gap)));
        }
        self.first_token_ns.get_or_insert(at_ns);
        self.last_token_ns = Some(at_ns);
        self.content_events += 1;
    }

    /// Every time stretched by `factor`: wall times of a server running `factor` times
    /// faster than real time become its simulated times.
    pub fn scale_time(&mut self, factor: f64) {
        let s = |ns: u64| (ns as f64 * factor).round() as u64;
        self.queued_ns = s(self.queued_ns);
        self.sent_ns = s(self.sent_ns);
        self.end_ns = s(self.end_ns);
        for t in [
            &mut self.first_byte_ns,
            &mut self.first_token_ns,
            &mut self.last_token_ns,
            &mut self.max_itl_ns,
        ] {
            *t = t.map(s);
        }
    }

    /// Succeeded: no failure recorded.
    pub fn is_success(&self) -> bool {
        self.failure.is_none()
    }

    /// Time to first token measured from when the request was sent (upstream's `ttft`).
    pub fn ttft_ns(&self) -> Option<u64> {
        self.first_token_ns.map(|t| t.saturating_sub(self.sent_ns))
    }

    /// Time to first token measured from when the request was queued (client queueing included).
    pub fn ttft_queued_ns(&self) -> Option<u64> {
        self.first_token_ns
            .map(|t| t.saturating_sub(self.queued_ns))
    }

    /// End-to-end latency from send to end.
    pub fn latency_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.sent_ns)
    }

    /// Time per output token after the first: (last − first) / (tokens − 1).
    ///
    /// Uses `usage.completion_tokens` when reported, else the number of content events.
    pub fn tpot_ns(&self) -> Option<u64> {
        let (first, last) = (self.first_token_ns?, self.last_token_ns?);
        let tokens = self
            .usage
            .as_ref()
            .and_then(|u| u.completion_tokens)
            .unwrap_or(u64::from(self.content_events));
        (tokens > 1).then(|| last.saturating_sub(first) / (tokens - 1))
    }

    /// Mean gap between content events: (last − first) / (events − 1).
    pub fn mean_itl_ns(&self) -> Option<u64> {
        let (first, last) = (self.first_token_ns?, self.last_token_ns?);
        let events = u64::from(self.content_events);
        (events > 1).then(|| last.saturating_sub(first) / (events - 1))
    }
}

/// Token counts from the server's `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// `usage.prompt_tokens`: the prompt's length in tokens, as the server counted it.
    pub prompt_tokens: Option<u64>,
    /// `usage.completion_tokens`: tokens generated.
    pub completion_tokens: Option<u64>,
    /// `usage.prompt_tokens_details.cached_tokens`, when the server reports it.
    pub cached_tokens: Option<u64>,
}

/// A failed request: a measurement, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The class of failure, counted by kind in summaries.
    pub kind: FailureKind,
    /// What the client saw, for people (never contains the API key).
    pub message: String,
    /// The HTTP status, when the failure has one.
    pub http_status: Option<u16>,
}

impl Failure {
    /// A failure without an HTTP status.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            http_status: None,
        }
    }
}

/// Why a request failed. Counted by kind in every summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Could not connect, or the connection was refused or reset before a response.
    Connect,
    /// The server answered with a non-success HTTP status.
    HttpStatus,
    /// `--request-timeout` passed before the request ended.
    Timeout,
    /// The stream ended (or the connection dropped) before `[DONE]`.
    TruncatedStream,
    /// An event whose data was not the JSON we expect.
    MalformedEvent,
    /// The server sent an error object inside the stream.
    ErrorEvent,
    /// The stream completed but carried no content at all.
    NoContent,
    /// The run was interrupted (Ctrl-C) while the request was in flight.
    Cancelled,
}

impl FailureKind {
    /// Every kind, in the order summaries list them.
    pub const ALL: [FailureKind; 8] = [
        FailureKind::Connect,
        FailureKind::HttpStatus,
        FailureKind::Timeout,
        FailureKind::TruncatedStream,
        FailureKind::MalformedEvent,
        FailureKind::ErrorEvent,
        FailureKind::NoContent,
        FailureKind::Cancelled,
    ];

    /// The snake_case name used in CSV, JSON and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::HttpStatus => "http_status",
            FailureKind::Timeout => "timeout",
            FailureKind::TruncatedStream => "truncated_stream",
            FailureKind::MalformedEvent => "malformed_event",
            FailureKind::ErrorEvent => "error_event",
            FailureKind::NoContent => "no_content",
            FailureKind::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the tokens of a prompt came from (the simulator knows; a real client does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrefixSource {
    /// Tokens found in the GPU prefix cache.
    pub gpu_hit_tokens: u64,
    /// Tokens loaded from the LMCache CPU tier.
    pub cpu_hit_tokens: u64,
    /// Tokens computed by prefill.
    pub computed_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_times() {
        let mut r = RequestRecord::new(3, 1, true);
        r.queued_ns = 0;
        r.sent_ns = 100;
        r.first_token_ns = Some(600);
        r.last_token_ns = Some(1_600);
        r.content_events = 11;
        r.end_ns = 1_700;
        assert_eq!(r.ttft_ns(), Some(500));
        assert_eq!(r.ttft_queued_ns(), Some(600));
        assert_eq!(r.latency_ns(), 1_600);
        assert_eq!(r.mean_itl_ns(), Some(100));
        assert_eq!(r.tpot_ns(), Some(100));
        r.usage = Some(Usage {
            completion_tokens: Some(21),
            ..Usage::default()
        });
        assert_eq!(r.tpot_ns(), Some(50));
    }

    #[test]
    fn content_events_set_first_last_and_the_widest_gap() {
        let mut r = RequestRecord::new(0, 0, false);
        for at_ns in [100, 130, 200, 210] {
            r.on_content(at_ns);
        }
        assert_eq!(r.first_token_ns, Some(100));
        assert_eq!(r.last_token_ns, Some(210));
        assert_eq!(r.content_events, 4);
        assert_eq!(r.max_itl_ns, Some(70));
        let mut one = RequestRecord::new(0, 0, false);
        one.on_content(5);
        assert_eq!((one.first_token_ns, one.max_itl_ns), (Some(5), None));
    }

    #[test]
    fn no_first_token_means_no_ttft() {
        let r = RequestRecord::new(0, 0, false);
        assert_eq!(r.ttft_ns(), None);
        assert_eq!(r.tpot_ns(), None);
    }

    #[test]
    fn failure_kinds_round_trip_in_json() {
        for kind in FailureKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: FailureKind = serde_json::from_str(&json).unwrap();
            assert_eq!(back, kind);
        }
    }
}
