//! The accept loop. `axum::serve` has no header, body or idle time-out and takes every
//! connection offered, so slow or idle clients could hold connections for ever and one address
//! could take every open file (issue 18). Here each connection is admitted against a cap per
//! client address and a total that keeps descriptors back for the store ([`admission`],
//! [`files`]), served by hyper's HTTP/1 with the header and keep-alive time-outs of
//! [`deadline`], and finished gracefully on shutdown. The body time-out is a middleware of the
//! router (`crate::http::body_timeout`), where it can answer in the JSON envelope.

pub mod admission;
pub mod deadline;
pub mod files;

use crate::config::ConnectionLimits;
use admission::{Admission, Refusal};
use axum::Router;
use axum::extract::ConnectInfo;
use deadline::Counted;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// How long the loop pauses when accept() fails for want of descriptors (EMFILE, ENFILE) or
/// memory: retrying at once would spin on the same error, and a connection closing meanwhile
/// frees what the next accept needs.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Repeated refusals and accept failures are logged once per this interval, with a count.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets every
/// connection finish its request in flight and returns. WebSockets have left hyper by then;
/// their owner closes them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let admission = Admission::new(
        limits.per_address,
        files::client_slots(limits.reserved_files),
    );
    info!(
        connections = admission.slots(),
        per_address = admission.per_address().unwrap_or(0),
        "accepting connections"
    );
    let refused = Refused::new();
    // Dropping `stop_rx` asks every connection to finish; each one holds a `done_rx`, so
    // `done_tx.closed()` resolves when the last one has.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    let mut refusals = Throttle::default();
    let mut accept_failures = Throttle::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // The client gave up between its SYN and our accept: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if let Some(more) = accept_failures.note() {
                    warn!(
                        "cannot accept connections ({e}); pausing briefly ({more} more since the last warning)"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                if let Some(more) = refusals.note() {
                    let why = match refusal {
                        Refusal::Address => "its address holds MAX_CONNECTIONS_PER_IP connections",
                        Refusal::Full => {
                            "every connection slot the open-file limit allows is taken"
                        }
                    };
                    warn!(client = %peer.ip(), "connection refused: {why} ({more} more refused since the last warning)");
                }
                refused.answer(stream, refusal);
                continue;
            }
        };
        let io = Counted::new(stream, slot);
        let (router, stop, done) = (router.clone(), stop_tx.clone(), done_rx.clone());
        tokio::spawn(async move {
            // hyper's connection allocates an 8 KiB write buffer when made and an 8 KiB read
            // buffer when it first reads; it is made, boxed (a task is allocated at the size of
            // its whole future), only once the client sends something, so an idle new
            // connection costs about 1 KiB (ADR 0015).
            if first_byte(&io, limits.header_timeout, &stop).await {
                Box::pin(serve_http(io, peer, router, limits, stop)).await;
            }
            drop(done);
        });
    }
    drop(listener);
    drop(stop_rx);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// Waits for a new connection's first byte, within the header time-out; false when the client
/// sent nothing (or closed), or the server is stopping.
async fn first_byte(io: &Counted, within: Duration, stop: &watch::Sender<()>) -> bool {
    tokio::select! {
        sent = tokio::time::timeout(within, io.sent_something()) => matches!(sent, Ok(Ok(true))),
        () = stop.closed() => false,
    }
}

/// Serves one connection with hyper until it closes, is upgraded, or the server stops (then it
/// finishes the request in flight).
async fn serve_http(
    io: Counted,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    stop: watch::Sender<()>,
) {
    let timer = io.timer(limits.header_timeout, limits.keepalive_timeout);
    // What `into_make_service_with_connect_info` did: handlers, rate limits and the socket
    // layer read the client address from the request.
    let service = TowerToHyperService::new(router.map_request(
        move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        },
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(timer)
        .header_read_timeout(limits.header_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    debug!(client = %peer, "connection ended: {e}");
                }
                return;
            }
            () = stop.closed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Errors of one connection that never reached us; the listener itself is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The answers to a refused connection: a 503 in the JSON envelope, written without waiting.
struct Refused {
    address: Vec<u8>,
    full: Vec<u8>,
}

impl Refused {
    fn new() -> Self {
        Refused {
            address: refusal_response("Too many connections from your address; retry later"),
            full: refusal_response("The server has no connection to spare; retry later"),
        }
    }

    /// Reads what already arrived (closing on unread data would reset the connection and
    /// could lose the answer), writes the answer if the socket takes it at once, and closes.
    fn answer(&self, stream: TcpStream, refusal: Refusal) {
        let mut request = [0u8; 2048];
        let _ = stream.try_read(&mut request);
        let answer = match refusal {
            Refusal::Address => &self.address,
            Refusal::Full => &self.full,
        };
        let _ = stream.try_write(answer);
    }
}

fn refusal_response(message: &str) -> Vec<u8> {
    let body = serde_json::json!({"error": "SERVICE_UNAVAILABLE", "message": message}).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 10\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Logs the first of a burst of events and then at most once per [`WARN_INTERVAL`], with the
/// number left unlogged, so a flood of refusals does not become a flood of log lines.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    /// `Some(unlogged)` when this event should be logged.
    fn note(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < WARN_INTERVAL)
        {
            self.unlogged += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}
