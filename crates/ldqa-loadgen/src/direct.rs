//! Generation requests over a connection that the round's worker owns and drives itself
//! (plain `http://` without a proxy: every local benchmark).
//!
//! Why not reqwest on this path: its pool runs every connection as a task of its own. A
//! request stamped "sent" by the worker then waits in a channel until that task runs and
//! writes it, and every response chunk crosses back through another channel, in a
//! multi-threaded runtime often to another thread. When a round starts, 512 requests are
//! stamped together and the last of them left the client milliseconds after its stamp,
//! which `ldqa run` would have reported as the server's TTFT. Here the worker polls
//! hyper's connection itself: the request is written in the same poll that stamped it,
//! and the socket's readiness wakes the worker, not a go-between. hyper still does the
//! HTTP/1.1 (chunked bodies, keep-alive); TLS and proxies stay with reqwest.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, Response, Uri};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::error_chain;

/// Where generation requests go, when they can go there directly.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port` to connect to.
    connect_to: (String, u16),
    /// The `Host` header.
    host: HeaderValue,
    /// Origin-form request target (`/v1/chat/completions`).
    path: Uri,
    /// `Bearer …`, marked sensitive.
    authorization: Option<HeaderValue>,
}

impl Target {
    /// `Some` for an `http://` URL that no proxy variable (`HTTP_PROXY`, `ALL_PROXY`,
    /// minus `NO_PROXY`) sends elsewhere, decided exactly as reqwest decides it.
    pub(crate) fn for_url(url: &str, api_key: Option<&str>) -> Option<Self> {
        Self::for_url_with(url, api_key, &Matcher::from_env())
    }

    fn for_url_with(url: &str, api_key: Option<&str>, proxies: &Matcher) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") || proxies.intercept(&uri).is_some() {
            return None;
        }
        let authority = uri.authority()?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let connect_to = (host.to_owned(), authority.port_u16().unwrap_or(80));
        let authorization = match api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).ok()?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Some(Self {
            connect_to,
            host: HeaderValue::from_str(authority.as_str()).ok()?,
            path: uri.path_and_query()?.as_str().parse().ok()?,
            authorization,
        })
    }

    fn request(&self, body: Bytes, extra: Option<&ExtraHeader>) -> Request<Full<Bytes>> {
        let mut req = Request::post(self.path.clone())
            .body(Full::new(body))
            .expect("invariant: a POST with a parsed path builds");
        let headers = req.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(auth) = &self.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        if let Some((name, value)) = extra {
            headers.insert(name.clone(), value.clone());
        }
        req
    }
}

/// A header a slot adds to each of its requests (multi-round QA's `x-user-id`).
pub(crate) type ExtraHeader = (hyper::header::HeaderName, HeaderValue);

/// hyper's HTTP/1.1 connection over a TCP socket, with in-memory request bodies.
type Driver = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One HTTP/1.1 connection, driven by whoever awaits on it.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// hyper's connection state machine; `None` once it ended. Dropping it is what makes
    /// hyper answer a request still queued on it (`is_canceled`): kept, it would leave
    /// that request pending forever.
    driver: Option<Pin<Box<Driver>>>,
    /// Why the connection ended (closed by the server, or an error).
    ended: Option<String>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// How long a stream may take, after `[DONE]`, to end its body. A connection whose body
/// did not end is closed rather than reused.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

impl Conn {
    pub(crate) async fn open(target: &Target, connect_timeout: Duration) -> Result<Self, String> {
        let (host, port) = &target.connect_to;
        let connecting = async {
            let tcp = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
            // Nagle would hold small writes back ~40 ms on loopback.
            tcp.set_nodelay(true)
                .map_err(|e| format!("setting TCP_NODELAY: {e}"))?;
            http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| format!("HTTP handshake with {host}:{port}: {e}"))
        };
        let (sender, driver) = tokio::time::timeout(connect_timeout, connecting)
            .await
            .map_err(|_| {
                format!(
                    "connecting to {host}:{port}: no answer within {} s",
                    connect_timeout.as_secs()
                )
            })??;
        Ok(Self {
            sender,
            driver: Some(Box::pin(driver)),
            ended: None,
        })
    }

    /// Whether a new request can be sent: notices, without waiting, a connection the
    /// server closed while it sat idle (uvicorn closes idle ones after 5 s).
    pub(crate) fn is_reusable(&mut self) -> bool {
        let waker = futures_util::task::noop_waker();
        self.poll_driver(&mut Context::from_waker(&waker));
        self.ended.is_none() && self.sender.is_ready()
    }

    fn poll_driver(&mut self, cx: &mut Context<'_>) {
        if let Some(driver) = self.driver.as_mut() {
            if let Poll::Ready(result) = driver.as_mut().poll(cx) {
                self.driver = None;
                self.ended = Some(match result {
                    Ok(()) => "the server closed the connection".to_owned(),
                    Err(e) => error_chain(&e),
                });
            }
        }
    }

    /// Sends one request and waits for the response head, driving the connection.
    ///
    /// `Err(Unsent)` when the connection turned out closed before the request was
    /// written: the server never saw it, and a fresh connection may send it.
    pub(crate) async fn send(
        &mut self,
        target: &Target,
        body: Bytes,
        extra: Option<&ExtraHeader>,
    ) -> Result<Response<Incoming>, SendError> {
        let response = self.sender.send_request(target.request(body, extra));
        let mut response = std::pin::pin!(response);
        std::future::poll_fn(|cx| {
            self.poll_driver(cx);
            match response.as_mut().poll(cx) {
                Poll::Ready(Ok(resp)) => Poll::Ready(Ok(resp)),
                Poll::Ready(Err(e)) if e.is_canceled() => Poll::Ready(Err(SendError::Unsent)),
                Poll::Ready(Err(e)) => Poll::Ready(Err(SendError::Failed(error_chain(&e)))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// The response body's data, as it arrives, driving the connection.
    pub(crate) fn chunks<'a>(
        &'a mut self,
        body: &'a mut Incoming,
    ) -> impl Stream<Item = Result<Bytes, String>> + Unpin + 'a {
        futures_util::stream::poll_fn(move |cx| {
            self.poll_driver(cx);
            loop {
                return match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => Poll::Ready(Some(Ok(data))),
                        Err(_trailers) => continue,
                    },
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(error_chain(&e)))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => match &self.ended {
                        // The connection is gone and the body will never end.
                        Some(why) => Poll::Ready(Some(Err(why.clone()))),
                        None => Poll::Pending,
                    },
                };
            }
        })
    }

    /// Reads what is left of a body after the stream finished (`[DONE]` is followed by the
    /// chunked terminator), so the connection can carry the next request. `false`: it did
    /// not end within [`DRAIN_GRACE`], or failed; the connection is then closed.
    pub(crate) async fn drain(&mut self, body: &mut Incoming) -> bool {
        use futures_util::StreamExt;
        let mut chunks = self.chunks(body);
        let ended = tokio::time::timeout(DRAIN_GRACE, async {
            loop {
                match chunks.next().await {
                    None => return true,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) => return false,
                }
            }
        })
        .await;
        matches!(ended, Ok(true))
    }
}

/// Why [`Conn::send`] got no response head.
pub(crate) enum SendError {
    /// The connection was found closed before the request was written.
    Unsent,
    /// Anything else (written, then reset; a malformed response head; …).
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_proxy() -> Matcher {
        Matcher::builder().build()
    }

    #[test]
    fn plain_http_goes_direct_with_an_origin_form_target() {
        let t = Target::for_url_with(
            "http://127.0.0.1:8000/v1/chat/completions",
            Some("sk-x"),
            &no_proxy(),
        )
        .unwrap();
        assert_eq!(t.connect_to, ("127.0.0.1".to_owned(), 8000));
        assert_eq!(t.host, "127.0.0.1:8000");
        assert_eq!(t.path, "/v1/chat/completions");
        let auth = t.authorization.as_ref().unwrap();
        assert_eq!(auth, "Bearer sk-x");
        assert!(auth.is_sensitive());
        let user = (
            hyper::header::HeaderName::from_static("x-user-id"),
            HeaderValue::from_static("7"),
        );
        let req = t.request(Bytes::from_static(b"{}"), Some(&user));
        assert_eq!(req.uri(), "/v1/chat/completions");
        assert_eq!(req.headers()[HOST], "127.0.0.1:8000");
        assert_eq!(req.headers()["x-user-id"], "7");
    }

    #[test]
    fn ipv6_hosts_connect_without_brackets_and_default_to_port_80() {
        let t = Target::for_url_with("http://[::1]/v1/completions", None, &no_proxy()).unwrap();
        assert_eq!(t.connect_to, ("::1".to_owned(), 80));
        assert_eq!(t.host, "[::1]");
        assert!(t.authorization.is_none());
    }

    #[test]
    fn https_and_proxied_targets_stay_with_reqwest() {
        assert!(Target::for_url_with("https://api.example/v1/x", None, &no_proxy()).is_none());
        let proxied = Matcher::builder().http("http://proxy.local:3128").build();
        assert!(Target::for_url_with("http://gpu-box:8000/v1/x", None, &proxied).is_none());
        let except_here = Matcher::builder()
            .http("http://proxy.local:3128")
            .no("gpu-box")
            .build();
        assert!(Target::for_url_with("http://gpu-box:8000/v1/x", None, &except_here).is_some());
    }
}
