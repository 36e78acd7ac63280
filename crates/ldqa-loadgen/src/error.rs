//! The one error type of this crate, and the helpers that put other errors and response
//! bodies into its messages (and into [`ldqa_model::Failure`] reasons) on one line.

/// Errors that stop a command before or between rounds (never a single failed request).
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// `--base-url` (or a URL derived from it) is not a usable `http(s)://` URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection to the server (refused, DNS, TLS, timeout).
    #[error("cannot reach {url}: {reason}. Is the server running, and are the host, port and scheme right (try `curl {url}`)?")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The transport's error chain, on one line.
        reason: String,
    },
    /// A control-plane answer (`/models`, `/metrics`) longer than anything a server sends.
    #[error(
        "{url} sent more than {limit_bytes} bytes; stopped reading it (is it a metrics endpoint?)"
    )]
    BodyTooLarge {
        /// The URL requested.
        url: String,
        /// The most read.
        limit_bytes: usize,
    },
    /// A control-plane request (`/models`, `/metrics`) answered a non-2xx status.
    #[error("{url} answered HTTP {status}: {body}")]
    BadStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, on one line.
        body: String,
    },
    /// A control-plane response that could not be read or parsed.
    #[error("{url} returned an unexpected body: {reason}")]
    BadBody {
        /// The URL requested.
        url: String,
        /// Why the body was refused.
        reason: String,
    },
    /// reqwest could not build its client (TLS backend, proxy settings).
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// The error and its sources, one line (reqwest's top-level message alone says little).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// At most 300 characters of a body, on one line.
pub(crate) fn snippet(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let head = one_line.get(..64).unwrap_or(&one_line).to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") {
        // A web page, not an API's error: its markup says nothing useful on one line.
        return "an HTML page (not an OpenAI-compatible API's answer)".to_string();
    }
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
