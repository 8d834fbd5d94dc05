//! A partner backend for the webhook tests, on a loopback port: it verifies every signature with
//! its own HMAC (the `hmac` crate, not the server's ring), records every request, answers as the
//! test scripts it (500s, a 429 with `Retry-After`, a 410, slow answers), can be taken down
//! (listener and connections closed) and brought back on the same port, and counts how many
//! deliveries are in flight at once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::{JoinHandle, JoinSet};

/// The Standard Webhooks secret the tests configure.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status, empty body.
    Status(u16),
    /// This status with `Retry-After: <value>`.
    RetryAfter(u16, &'static str),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: i64,
    /// `webhook-signature` as sent.
    pub signature: String,
    /// Whether the signature verified (and the timestamp was within 5 minutes).
    pub verified: bool,
    /// The body.
    pub body: Value,
    /// The status answered.
    pub status: u16,
    /// Whether the answer was sent (false: the sender went away first).
    pub answered: bool,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The body's `position`.
    pub fn position(&self) -> u64 {
        self.body["position"].as_u64().expect("a position")
    }

    /// The body's `type`.
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().expect("a type")
    }
}

struct Shared {
    key: Vec<u8>,
    log: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The receiver; dropped, it stops.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Receiver {
    /// A receiver on a free loopback port, answering 200 until scripted otherwise.
    pub async fn start() -> Self {
        let key = STANDARD
            .decode(WEBHOOK_SECRET.trim_start_matches("whsec_"))
            .expect("the secret is base64");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let shared = Arc::new(Shared {
            key,
            log: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            delay: Mutex::new(Duration::ZERO),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let server = Some(tokio::spawn(serve(listener, Arc::clone(&shared))));
        Receiver {
            addr,
            shared,
            server,
        }
    }

    /// The URL to configure as `WEBHOOK_URL` (its path carries a token that must never be logged).
    pub fn url(&self) -> String {
        format!("http://{}/hooks/tok-5e3c2e7", self.addr)
    }

    /// The next requests are answered with `answers`, in order; then 200 again.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    /// Every answer waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// Closes the listener and every connection: deliveries are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.server = Some(tokio::spawn(serve(listener, Arc::clone(&self.shared))));
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The requests answered with a 2xx, in order: what the partner took.
    pub fn taken(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered && (200..300).contains(&r.status))
            .collect()
    }

    /// The most deliveries that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Deliveries in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Waits (at most `within`) until `count` requests were taken; returns them.
    pub async fn wait_taken(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let taken = self.taken();
            if taken.len() >= count {
                return taken;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} of {count} webhooks taken within {within:?}; received: {:#?}",
                    taken.len(),
                    self.received()
                        .iter()
                        .map(|r| (r.position(), r.kind().to_string(), r.status, r.answered))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts that every request carried a valid signature.
    pub fn assert_all_verified(&self) {
        for r in self.received() {
            assert!(r.verified, "a webhook failed verification: {r:?}");
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    // Held here so aborting this task closes every connection too.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(answer(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Counts a delivery in flight for as long as it lives (also when the sender goes away).
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(shared);
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let verified = verify(&shared.key, &id, &timestamp, &signature, &body);
    let scripted = shared.script.lock().unwrap().pop_front();
    let (status, retry_after) = match scripted {
        None => (200, None),
        Some(Answer::Status(status)) => (status, None),
        Some(Answer::RetryAfter(status, after)) => (status, Some(after)),
    };
    let index = {
        let mut log = shared.log.lock().unwrap();
        log.push(Received {
            id,
            timestamp: timestamp.parse().unwrap_or(0),
            signature,
            verified,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            status,
            answered: false,
            at: Instant::now(),
        });
        log.len() - 1
    };
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    shared.log.lock().unwrap()[index].answered = true;
    let mut response = Response::builder().status(status);
    if let Some(after) = retry_after {
        response = response.header("retry-after", after);
    }
    response
        .body(Full::new(Bytes::from_static(b"")))
        .expect("a response")
}

/// Standard Webhooks verification, written independently of the server: any `v1,` signature
/// in the header must be the HMAC of `id.timestamp.body`, and the timestamp recent.
fn verify(key: &[u8], id: &str, timestamp: &str, header: &str, body: &[u8]) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts).abs() > 300 || id.is_empty() {
        return false;
    }
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| sig == expected)
}
