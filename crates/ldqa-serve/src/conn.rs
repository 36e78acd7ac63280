//! Accepted connections: `TCP_NODELAY`, and a [`KillSwitch`] per connection so that a
//! handler can close its connection without writing a byte (the `drop` fault).
//!
//! A normal axum handler cannot refuse to answer: hyper writes whatever response it
//! returns. So every accepted socket is wrapped in [`FaultIo`], and its switch is handed
//! to handlers as connect info (`ConnectInfo<KillSwitch>`). Once tripped, every read
//! and write on the socket fails; hyper then gives up on the connection, before the
//! response head is written, and the socket is closed. The client has sent its whole
//! request and sees the connection close with no response at all.
//!
//! [`serve`] is the accept loop: axum's own (`axum::serve`) gives hyper no timer, so a
//! client that trickles its header lines keeps a connection open forever (reliability
//! review B10). Here each connection is served by hyper's HTTP/1 server with a timer and
//! a header-read deadline.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use std::future::Future;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::ConnectInfo;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt as _;

/// Closes one connection from inside a handler.
#[derive(Debug, Clone, Default)]
pub struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    /// From now on the connection's reads and writes fail, so it is dropped unanswered.
    pub fn trip(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn tripped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A TCP stream that fails every operation once its [`KillSwitch`] is tripped.
#[derive(Debug)]
pub struct FaultIo {
    stream: TcpStream,
    kill: KillSwitch,
}

fn killed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped (injected fault)",
    )
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.kill.tripped() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.tripped() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.kill.tripped() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.kill.tripped() {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A TCP listener whose connections are [`FaultIo`]s with `TCP_NODELAY` set (without it
/// Nagle's algorithm delays small SSE writes by up to ~40 ms on loopback).
#[derive(Debug)]
pub struct FaultListener(pub TcpListener);

impl Listener for FaultListener {
    type Io = FaultIo;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (FaultIo, std::net::SocketAddr) {
        // axum's own accept loop (it retries and backs off on accept errors).
        let (stream, addr) = Listener::accept(&mut self.0).await;
        let _ = stream.set_nodelay(true);
        let io = FaultIo {
            stream,
            kill: KillSwitch::default(),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, FaultListener>> for KillSwitch {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        stream.io().kill.clone()
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then asks every open connection
/// to finish its request in flight and close, and returns when all have. A connection
/// that has not sent a whole request head within `header_read_timeout` of the server
/// starting to wait for it (an idle keep-alive connection too, as hyper counts it) is
/// closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut listener = FaultListener(listener);
    // `stop`: flips to true at shutdown. `open`: every connection holds a receiver; the
    // sender's `closed()` resolves once they are all gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let io = tokio::select! {
            (io, _addr) = listener.accept() => io,
            () = &mut shutdown => break,
        };
        let kill = io.kill.clone();
        let service = app.clone().map_request(move |req: axum::http::Request<_>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(kill.clone()));
            req
        });
        let service = TowerToHyperService::new(service);
        let (mut stop, open) = (stop_rx.clone(), open_rx.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = stop.wait_for(|&s| s), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open);
        });
    }
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
}
