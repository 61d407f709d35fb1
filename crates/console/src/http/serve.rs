//! The console's HTTP/1 server loop, with limits against clients that hold connections
//! open: a time for a request's head, an idle time for bodies and answers, and a cap on
//! connections.
//!
//! `axum::serve` has none of these, so connections are served here with hyper's own
//! builder:
//!
//! - hyper's `header_read_timeout` runs from the moment it waits for a request head, on a
//!   new connection and between requests of a kept-alive one: a client dripping its
//!   headers, or keeping a connection without using it, is disconnected after it.
//! - A request body that brings nothing for the idle time ends in an error for the
//!   handler, and an answer the client does not read for the idle time closes the
//!   connection. Time the server itself spends (a long build step with no output) does
//!   not count: only a client that stalls.
//! - Past the cap, the loop stops accepting; new connections wait in the kernel's listen
//!   queue until one ends, so the ones being served keep their resources.
//!
//! With TLS (`WM_TLS_CERT`/`WM_TLS_KEY`) each connection's handshake runs in its own task,
//! holding its connection slot, bounded by the head's time: a client that stalls its
//! handshake holds up nobody else.
//!
//! Graceful shutdown: the listener closes, idle connections close at once, and the loop
//! returns when the last request in flight is answered.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServeLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ServeLimits {
    pub(crate) fn from_config(h: &crate::config::HttpSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(h.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(h.idle_timeout_secs),
            max_connections: h.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then until the requests in
/// flight are answered. Requests carry `ConnectInfo<SocketAddr>` with the peer.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let max = limits.max_connections.min(Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: the condition passes as connections
                    // end; retrying at once would spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stop = stop_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, router, limits, stop).await,
                Some(tls) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, tls.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, peer, router, limits, stop).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends.
    let _all = slots.acquire_many(max as u32).await;
    Ok(())
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let idle = limits.idle_timeout;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let req = req.map(|b| Body::new(tower_http::timeout::TimeoutBody::new(idle, b)));
        router.clone().oneshot(req)
    });
    let io = StallTimeout::new(TokioIo::new(stream), idle);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

/// A connection whose writes fail once the peer has read nothing for `limit`: an answer
/// nobody reads does not hold the connection for ever.
struct StallTimeout<I> {
    inner: I,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> StallTimeout<I> {
    fn new(inner: I, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes `poll` through; while it stays pending, counts towards the limit.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing of the answer for the idle time",
        )))
    }
}

impl<I: hyper::rt::Read + Unpin> hyper::rt::Read for StallTimeout<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: hyper::rt::Write + Unpin> hyper::rt::Write for StallTimeout<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }
}
