//! The one error type of this crate, and the helpers that put other errors and response
//! bodies into its messages (and into [`ldqa_model::Failure`] reasons) on one line.

/// Errors that stop a command before or between rounds (never a single failed request).
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach {url}: {reason}. Is the server running, and are the host, port and scheme right (try `curl {url}`)?")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}: {body}")]
    BadStatus {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} returned an unexpected body: {reason}")]
    BadBody { url: String, reason: String },
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
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
