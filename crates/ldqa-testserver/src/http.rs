//! Hand-written HTTP/1.1 over tokio: just enough for OpenAI-compatible clients.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{arrival, Reply, RequestInfo, Step};

/// What the server did with one request.
#[derive(Debug, Clone)]
pub struct Served {
    /// The request as the behaviour saw it.
    pub request: RequestInfo,
    /// When the request was fully read.
    pub received_at: Instant,
    /// When its first bytes reached the kernel (the socket's receive timestamp), as
    /// `CLOCK_MONOTONIC` ns: real time even in a paused-clock test; `None` off Linux.
    pub arrived_monotonic_ns: Option<u64>,
    /// When the first [`Step::Token`] was written and flushed.
    pub first_token_at: Option<Instant>,
    /// When the reply ended (finished, cut, or the client went away).
    pub finished_at: Option<Instant>,
}

type Behaviour = dyn Fn(&RequestInfo) -> Reply + Send + Sync;

struct State {
    behaviour: Box<Behaviour>,
    served: Mutex<Vec<Served>>,
    next_index: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    connections: AtomicUsize,
    /// Close a connection that sat idle this long after a reply (ms; 0: never).
    idle_timeout_ms: AtomicU64,
}

/// A running scripted server; stops when dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl ScriptedServer {
    /// Binds 127.0.0.1:0 and serves every request with `behaviour`.
    pub async fn start(
        behaviour: impl Fn(&RequestInfo) -> Reply + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            behaviour: Box::new(behaviour),
            served: Mutex::new(Vec::new()),
            next_index: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            idle_timeout_ms: AtomicU64::new(0),
        });
        let accept_state = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                arrival::enable(&socket);
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(socket, Arc::clone(&accept_state)));
            }
        });
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// The address the server listens on (`127.0.0.1`, an ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`, what `--base-url` takes.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Everything served so far, in arrival order.
    pub fn served(&self) -> Vec<Served> {
        let mut v = self
            .state
            .served
            .lock()
            .expect("invariant: lock not poisoned")
            .clone();
        v.sort_by_key(|s| s.request.index);
        v
    }

    /// The most generation requests that were being answered at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// From now on, close a connection that stays idle for `timeout` after a reply, as
    /// servers do with keep-alive connections (uvicorn after 5 s). Tokio time.
    pub fn set_idle_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.state.idle_timeout_ms.store(ms, Ordering::SeqCst);
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve_connection(socket: TcpStream, state: Arc<State>) {
    let mut reader = BufReader::new(socket);
    loop {
        // HTTP/1.1 clients wait for a reply before the next request, so an empty buffer
        // means the next request's first bytes are still in the kernel, stamped.
        let mut arrived_monotonic_ns = None;
        if reader.buffer().is_empty() {
            let next = arrival::first_unread_byte(reader.get_ref());
            let waited = match state.idle_timeout_ms.load(Ordering::SeqCst) {
                0 => next.await,
                ms => match tokio::time::timeout(Duration::from_millis(ms), next).await {
                    Ok(waited) => waited,
                    Err(_) => return, // idle too long: close
                },
            };
            match waited {
                Ok(stamp) => arrived_monotonic_ns = stamp,
                Err(_) => return,
            }
        }
        let request = match read_request(&mut reader, &state).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let received_at = Instant::now();
        let reply = (state.behaviour)(&request);
        let generating = matches!(reply, Reply::Stream(_));
        if generating {
            let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        }
        let slot = {
            let mut served = state.served.lock().expect("invariant: lock not poisoned");
            served.push(Served {
                request,
                received_at,
                arrived_monotonic_ns,
                first_token_at: None,
                finished_at: None,
            });
            served.len() - 1
        };
        let outcome = write_reply(reader.get_mut(), reply, &state, slot).await;
        if generating {
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        state.served.lock().expect("invariant: lock not poisoned")[slot].finished_at =
            Some(Instant::now());
        if outcome != Outcome::KeepAlive {
            return;
        }
    }
}

async fn read_request(
    reader: &mut BufReader<TcpStream>,
    state: &State,
) -> io::Result<Option<RequestInfo>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, path) = (
        method.to_owned(),
        target.split('?').next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                content_length = value.parse().unwrap_or(0);
            }
            headers.push((name, value));
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).await?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let index = state.next_index.fetch_add(1, Ordering::SeqCst);
    Ok(Some(RequestInfo {
        index,
        method,
        path,
        headers,
        body,
    }))
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    KeepAlive,
    Close,
}

async fn write_reply(socket: &mut TcpStream, reply: Reply, state: &State, slot: usize) -> Outcome {
    let result = match reply {
        Reply::DropConnection => return Outcome::Close,
        Reply::Wire(bytes) => {
            let _ = socket.write_all(&bytes).await;
            let _ = socket.flush().await;
            return Outcome::Close;
        }
        Reply::Json(status, body) => {
            write_full(
                socket,
                status,
                "application/json",
                body.to_string().as_bytes(),
            )
            .await
        }
        Reply::Text(status, body, ctype) => {
            write_full(socket, status, ctype, body.as_bytes()).await
        }
        Reply::Stream(steps) => return write_stream(socket, steps, state, slot).await,
    };
    if result.is_ok() {
        Outcome::KeepAlive
    } else {
        Outcome::Close
    }
}

async fn write_full(
    socket: &mut TcpStream,
    status: u16,
    ctype: &str,
    body: &[u8],
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
        reason(status),
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.flush().await
}

async fn write_stream(
    socket: &mut TcpStream,
    steps: Vec<Step>,
    state: &State,
    slot: usize,
) -> Outcome {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return Outcome::Close;
    }
    for step in steps {
        let (bytes, is_token) = match step {
            Step::Sleep(d) => {
                tokio::time::sleep(d).await;
                continue;
            }
            Step::Data(payload) => (format!("data: {payload}\n\n").into_bytes(), false),
            Step::Token(payload) => (format!("data: {payload}\n\n").into_bytes(), true),
            Step::Raw(bytes) => (bytes, false),
            Step::Cut => return Outcome::Close,
            Step::Stall => {
                // Wait until the client closes its side, then give up.
                let mut buf = [0u8; 64];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                return Outcome::Close;
            }
        };
        if write_chunk(socket, &bytes).await.is_err() {
            return Outcome::Close;
        }
        if is_token {
            let mut served = state.served.lock().expect("invariant: lock not poisoned");
            served[slot].first_token_at.get_or_insert_with(Instant::now);
        }
    }
    if socket.write_all(b"0\r\n\r\n").await.is_err() || socket.flush().await.is_err() {
        return Outcome::Close;
    }
    Outcome::KeepAlive
}

async fn write_chunk(socket: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    let mut frame = format!("{:x}\r\n", bytes.len()).into_bytes();
    frame.extend_from_slice(bytes);
    frame.extend_from_slice(b"\r\n");
    socket.write_all(&frame).await?;
    socket.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
