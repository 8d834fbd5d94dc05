//! Socket.IO fan-out benchmark: the issue asks for figures, not timed assertions in tests, so
//! this is a program that prints them. For each socket count it starts the release `ticketd`
//! (`RATE_LIMITS=off`, `MAX_CONNECTIONS_PER_IP=0`, a fresh temporary `DATA_DIR`, a free port of
//! 127.0.0.1), then:
//!
//! 1. opens `--tickets` tickets (100), one per customer, over REST;
//! 2. reads the server's VmRSS, connects N customer sockets plus `--agents` (10) AGENT sockets
//!    (at most `--connect-concurrency` handshakes at a time), each authorized by a token in the
//!    Socket.IO handshake, waits 2 s and reads VmRSS again: the difference over the sockets
//!    connected is the server memory per idle socket;
//! 3. posts messages at a steady `--rate` (200/s) for `--duration` (10 s) over a few keep-alive
//!    HTTP/1.1 connections, each as the owner of the ticket it posts to (tickets in turn), with a
//!    sequence number in the content;
//! 4. on every socket `message` event, takes the time from the POST being sent to the event
//!    arriving, and counts the deliveries: each acknowledged post must reach its owner's socket
//!    and every agent socket exactly once, and no other customer.
//!
//! The client speaks Socket.IO v4 over a raw WebSocket (Engine.IO v4, no polling), which is all
//! a server-side fan-out needs: `0{…}` open, `40{"token":…}` connect with auth, `40{"sid":…}`
//! answer, `2`/`3` ping/pong, `42[name, payload]` events.
//!
//! Targets on the 2-core machine: p99 under 50 ms at 10,000 sockets, and no more than 15 KiB of
//! server memory per idle socket. The load generator runs on the same machine and shares its
//! cores with the server.
//!
//! With `--heap` the server is `examples/ticketd_heap.rs` instead, the same server with a counting
//! allocator, and the live heap per idle socket (bytes allocated and not freed) is shown beside
//! the VmRSS figure: the difference is the allocator's own overhead. `--server PATH` measures
//! another build of ticketd instead (to compare two builds).
//!
//! Run through `scripts/bench-sockets [--sockets 1000,10000] [--rate 200] [--duration 10]
//! [--agents 10] [--tickets 100] [--connect-concurrency 200] [--post-connections 8] [--heap]
//! [--server PATH]`.
//! Every run is
//! bounded in time; the server is killed and the data directory removed at the end, on error and
//! on Ctrl-C.

#[path = "support/mod.rs"]
mod support;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode, Uri};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    Sender, answers_ok, connect, exchange, free_port, machine, mint, ms, release_dir, request, tail,
};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The HS256 key the server and this client share (≥ 32 bytes).
const SECRET: &str = "ticketd-socket-fanout-benchmark-secret-0123456789";
/// How long the server gets to answer its first request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// One socket's TCP connect, WebSocket upgrade and Socket.IO connect.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// All sockets of a run must be connected (or have failed) within this.
const CONNECT_PHASE_TIMEOUT: Duration = Duration::from_secs(300);
/// Pause after the last socket connects, before the idle memory is read.
const SETTLE: Duration = Duration::from_secs(2);
/// How long deliveries may trail the last acknowledged post before they count as missing.
const DRAIN: Duration = Duration::from_secs(5);
/// A single POST taking longer than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The content of message `n` is this prefix followed by `n`.
const CONTENT_PREFIX: &str = "fanout ";

type Error = String;

struct Options {
    sockets: Vec<usize>,
    rate: f64,
    duration: Duration,
    agents: usize,
    tickets: usize,
    connect_concurrency: usize,
    post_connections: usize,
    /// Run the counting-allocator build and report the live heap per socket too.
    heap: bool,
    /// Another server binary to measure (to compare builds); the default is the release build.
    server: Option<PathBuf>,
}

const USAGE: &str = "usage: cargo bench --bench socket_fanout -- [--sockets 1000,10000] [--rate 200] \
                     [--duration 10] [--agents 10] [--tickets 100] [--connect-concurrency 200] \
                     [--post-connections 8] [--heap] [--server PATH]";

fn parse_args() -> Result<Options, Error> {
    let mut options = Options {
        sockets: vec![1_000, 10_000],
        rate: 200.0,
        duration: Duration::from_secs(10),
        agents: 10,
        tickets: 100,
        connect_concurrency: 200,
        post_connections: 8,
        heap: false,
        server: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        // `cargo bench` appends `--bench` to every bench target's arguments.
        if name == "--bench" {
            continue;
        }
        if name == "--heap" {
            options.heap = true;
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value\n{USAGE}"))
        };
        let number = |v: String, range: std::ops::RangeInclusive<usize>| -> Result<usize, Error> {
            v.trim()
                .replace('_', "")
                .parse::<usize>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(format!(
                    "{name}: a whole number from {} to {} expected\n{USAGE}",
                    range.start(),
                    range.end()
                ))
        };
        match name.as_str() {
            "--sockets" => {
                options.sockets = value()?
                    .split(',')
                    .map(|n| number(n.to_string(), 1..=50_000))
                    .collect::<Result<_, _>>()?;
            }
            "--rate" => {
                let rate: f64 = value()?
                    .parse()
                    .map_err(|_| format!("--rate: posts per second expected\n{USAGE}"))?;
                if !(0.1..=100_000.0).contains(&rate) {
                    return Err(format!("--rate must be between 0.1 and 100000\n{USAGE}"));
                }
                options.rate = rate;
            }
            "--duration" => {
                let secs: f64 = value()?
                    .parse()
                    .map_err(|_| format!("--duration: seconds expected\n{USAGE}"))?;
                if !(0.1..=600.0).contains(&secs) {
                    return Err(format!(
                        "--duration must be between 0.1 and 600 seconds\n{USAGE}"
                    ));
                }
                options.duration = Duration::from_secs_f64(secs);
            }
            "--agents" => options.agents = number(value()?, 0..=1_000)?,
            "--tickets" => options.tickets = number(value()?, 1..=10_000)?,
            "--connect-concurrency" => options.connect_concurrency = number(value()?, 1..=5_000)?,
            "--post-connections" => options.post_connections = number(value()?, 1..=256)?,
            "--server" => options.server = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    Ok(options)
}

// ---------------------------------------------------------------------------------------------
// The server process

/// Owns the server and its temporary directory: dropping it (at the end, on error, on Ctrl-C)
/// kills the server and removes the directory.
struct Guard {
    dir: PathBuf,
    child: Option<Child>,
}

impl Guard {
    fn new() -> Result<Self, Error> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "ticketd-socket-fanout-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Guard { dir, child: None })
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("ticketd.log")
    }

    /// Where `examples/ticketd_heap.rs` writes its live heap.
    fn heap_path(&self) -> PathBuf {
        self.dir.join("heap-bytes")
    }

    /// The live heap of the counting build, in bytes, as it last wrote it (every 100 ms).
    fn heap_bytes(&self) -> Option<u64> {
        std::fs::read_to_string(self.heap_path())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn spawn(&mut self, bin: &Path, port: u16) -> Result<u32, Error> {
        let log = File::create(self.log_path()).map_err(|e| format!("ticketd log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("ticketd log: {e}"))?;
        let child = support::ticketd_command(bin, &self.dir.join("data"), port, SECRET)
            .env("TICKETD_HEAP_FILE", self.heap_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        self.child = Some(child);
        Ok(pid)
    }

    /// An error if the server has exited, with the end of its log.
    fn check_alive(&mut self) -> Result<(), Error> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(format!(
                "ticketd exited ({status}); its log:\n{}",
                tail(&self.log_path(), 30)
            ));
        }
        Ok(())
    }

    /// SIGTERM, then up to 5 s for a clean exit; says how it went.
    fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "not running".into();
        };
        if let Ok(Some(status)) = child.try_wait() {
            return format!("had already exited ({status})");
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return format!("stopped on SIGTERM ({status})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        "did not stop within 5 s of SIGTERM; killed".into()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `target/release/ticketd`, where `cargo build --release` put it, or with `heap` the counting
/// build `target/release/examples/ticketd_heap`.
fn ticketd_bin(heap: bool) -> PathBuf {
    let release = release_dir();
    if heap {
        release.join("examples").join("ticketd_heap")
    } else {
        release.join("ticketd")
    }
}

/// A `/proc/<pid>/status` value in KiB (`VmRSS:`, `VmHWM:`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// This process's soft limit on open files.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// One request on an open connection, bounded by [`REQUEST_TIMEOUT`].
async fn send(
    sender: &mut Sender,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), Error> {
    exchange(sender, req, REQUEST_TIMEOUT).await
}

fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut short: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        short.push('…');
    }
    short
}

fn bearer(token: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| format!("token: {e}"))
}

async fn wait_ready(guard: &mut Guard, addr: SocketAddr) -> Result<(), Error> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        guard.check_alive()?;
        let Err(last) = answers_ok(addr, "/healthz").await else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(format!(
                "ticketd did not answer GET /healthz within {STARTUP_TIMEOUT:?} (last: {last}); its log:\n{}",
                tail(&guard.log_path(), 30)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// What the sockets saw

/// A post's fate, per sequence number.
const POST_UNSENT: u8 = 0;
const POST_OK: u8 = 1;
const POST_FAILED: u8 = 2;

/// Who a socket is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Customer `i`; customers below `--tickets` own ticket `i`, the others have none.
    Customer(usize),
    /// Staff: receives every message.
    Agent,
}

/// State shared by the sockets, the posters and the report of one run.
struct Shared {
    epoch: Instant,
    tickets: usize,
    /// When post `n` was sent, µs since `epoch` plus one; 0 while unsent.
    sent_at: Vec<AtomicU64>,
    /// Post `n`'s answer: [`POST_UNSENT`], [`POST_OK`] or [`POST_FAILED`].
    status: Vec<AtomicU8>,
    /// `message` events received for post `n`, over all sockets.
    delivered: Vec<AtomicU32>,
    /// POST sent → socket event, µs.
    latency: Mutex<Histogram<u64>>,
    /// Matched `message` events.
    events: AtomicU64,
    /// When the last matched event arrived, µs since `epoch`.
    last_event_us: AtomicU64,
    /// Events at a customer socket that does not own the message's ticket.
    misrouted: AtomicU64,
    /// `message` events whose content is not one of this run's posts.
    unmatched: AtomicU64,
    /// Engine.IO pings answered.
    pings: AtomicU64,
    /// Other events and packets, by kind (`error` events say what the server refused).
    other: Mutex<BTreeMap<String, u64>>,
    /// Sockets that ended while the run was going, by reason.
    disconnects: Mutex<BTreeMap<String, u64>>,
    /// Set when the run tears the sockets down itself.
    stopping: AtomicBool,
}

impl Shared {
    fn new(tickets: usize, capacity: usize) -> Self {
        Shared {
            epoch: Instant::now(),
            tickets,
            sent_at: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            status: (0..capacity).map(|_| AtomicU8::new(POST_UNSENT)).collect(),
            delivered: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            latency: Mutex::new(histogram()),
            events: AtomicU64::new(0),
            last_event_us: AtomicU64::new(0),
            misrouted: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            other: Mutex::new(BTreeMap::new()),
            disconnects: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn note(map: &Mutex<BTreeMap<String, u64>>, kind: String) {
        if let Ok(mut map) = map.lock() {
            *map.entry(kind).or_default() += 1;
        }
    }

    /// One `42[name, payload]` packet (`body` is what follows `42`) received by a `kind` socket.
    fn on_event(&self, kind: Kind, body: &str) {
        let received = self.now_us();
        let Ok(packet) = serde_json::from_str::<Value>(body) else {
            Self::note(
                &self.other,
                format!("unparsable event packet 42{}", body_text(body.as_bytes())),
            );
            return;
        };
        let name = packet.get(0).and_then(Value::as_str).unwrap_or("?");
        if name != "message" {
            let payload = packet
                .get(1)
                .map(|p| body_text(p.to_string().as_bytes()))
                .unwrap_or_default();
            Self::note(&self.other, format!("event {name} {payload}"));
            return;
        }
        let seq = packet
            .get(1)
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .and_then(|c| c.strip_prefix(CONTENT_PREFIX))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < self.sent_at.len());
        let sent = seq.map_or(0, |n| self.sent_at[n].load(Ordering::Acquire));
        let (Some(seq), true) = (seq, sent > 0) else {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Kind::Customer(i) = kind
            && seq % self.tickets != i
        {
            self.misrouted.fetch_add(1, Ordering::Relaxed);
        }
        self.delivered[seq].fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed);
        self.last_event_us.fetch_max(received, Ordering::Relaxed);
        if let Ok(mut h) = self.latency.lock() {
            h.saturating_record(received.saturating_sub(sent - 1).max(1));
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

// ---------------------------------------------------------------------------------------------
// The Socket.IO client: Engine.IO v4 over a WebSocket, nothing else

type Ws = WebSocketStream<TcpStream>;

/// The next text frame; pings, pongs and binary frames are skipped (tungstenite answers
/// WebSocket pings itself).
async fn next_text(ws: &mut Ws) -> Result<String, Error> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                return Err(format!(
                    "websocket closed by the server ({})",
                    frame.map_or("no close frame".to_string(), |f| format!(
                        "{} {}",
                        f.code, f.reason
                    ))
                ));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("websocket: {e}")),
            None => return Err("connection closed".into()),
        }
    }
}

/// TCP connect, WebSocket upgrade, Engine.IO open, Socket.IO connect to "/" with the token.
async fn handshake(addr: SocketAddr, token: &str) -> Result<Ws, Error> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("tcp connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    // A small read buffer: 10,000 clients at the default 128 KiB would cost 1.3 GB here.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| format!("websocket upgrade: {e}"))?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!(
            "expected the Engine.IO open packet, got {}",
            body_text(open.as_bytes())
        ));
    }
    let connect = format!("40{}", json!({ "token": token }));
    ws.send(Message::text(connect))
        .await
        .map_err(|e| format!("send connect: {e}"))?;
    loop {
        let text = next_text(&mut ws).await?;
        if text == "2" {
            ws.send(Message::text("3"))
                .await
                .map_err(|e| format!("send pong: {e}"))?;
        } else if text.starts_with("40") {
            return Ok(ws);
        } else if text.starts_with("44") {
            return Err(format!("connect refused: {}", body_text(text.as_bytes())));
        } else {
            return Err(format!(
                "unexpected packet before connect: {}",
                body_text(text.as_bytes())
            ));
        }
    }
}

/// One socket: connects (holding a connect permit), reports, then reads events until the run
/// ends or the connection does.
async fn socket_task(
    addr: SocketAddr,
    index: usize,
    kind: Kind,
    token: String,
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<(usize, Result<(), Error>)>,
    permit: OwnedSemaphorePermit,
) {
    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(addr, &token))
        .await
        .unwrap_or_else(|_| Err("handshake timed out".into()));
    drop(permit);
    drop(token);
    let mut ws = match outcome {
        Ok(ws) => {
            let _ = ready.send((index, Ok(())));
            ws
        }
        Err(e) => {
            let _ = ready.send((index, Err(e)));
            return;
        }
    };
    drop(ready);
    let reason = loop {
        let text = match next_text(&mut ws).await {
            Ok(text) => text,
            Err(e) => break e,
        };
        if text == "2" {
            if let Err(e) = ws.send(Message::text("3")).await {
                break format!("send pong: {e}");
            }
            shared.pings.fetch_add(1, Ordering::Relaxed);
        } else if let Some(body) = text.strip_prefix("42") {
            shared.on_event(kind, body);
        } else if text.starts_with("41") {
            break "disconnected by the server (Socket.IO 41)".into();
        } else if text.starts_with('1') {
            break "closed by the server (Engine.IO 1)".into();
        } else {
            Shared::note(
                &shared.other,
                format!("packet {}", body_text(text.as_bytes())),
            );
        }
    };
    if !shared.stopping.load(Ordering::Relaxed) {
        Shared::note(&shared.disconnects, reason);
    }
}

// ---------------------------------------------------------------------------------------------
// Posting

struct PostTally {
    latency: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

/// Takes due posts off the shared queue and sends them on one keep-alive connection.
async fn post_worker(
    addr: SocketAddr,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<usize>>>,
    targets: Arc<Vec<(Uri, HeaderValue)>>,
    shared: Arc<Shared>,
) -> PostTally {
    let mut tally = PostTally {
        latency: histogram(),
        ok: 0,
        errors: BTreeMap::new(),
    };
    let mut sender: Option<Sender> = None;
    loop {
        let Some(seq) = jobs.lock().await.recv().await else {
            return tally;
        };
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    shared.status[seq].store(POST_FAILED, Ordering::Release);
                    *tally.errors.entry(e).or_default() += 1;
                    continue;
                }
            },
        };
        let (uri, auth) = &targets[seq % targets.len()];
        let body = Bytes::from(format!(r#"{{"content":"{CONTENT_PREFIX}{seq}"}}"#));
        let req = request(Method::POST, uri.clone(), Some(auth), Some(body));
        let started = Instant::now();
        shared.sent_at[seq].store(shared.now_us() + 1, Ordering::Release);
        match send(s, req).await {
            Ok((StatusCode::OK, _)) => {
                shared.status[seq].store(POST_OK, Ordering::Release);
                tally.ok += 1;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally.latency.saturating_record(micros.max(1));
            }
            Ok((status, body)) => {
                shared.status[seq].store(POST_FAILED, Ordering::Release);
                *tally
                    .errors
                    .entry(format!("HTTP {}: {}", status.as_u16(), body_text(&body)))
                    .or_default() += 1;
            }
            Err(e) => {
                shared.status[seq].store(POST_FAILED, Ordering::Release);
                sender = None;
                *tally.errors.entry(e).or_default() += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One run

struct RunResult {
    sockets: usize,
    agents: usize,
    connected: usize,
    connect_secs: f64,
    connect_failures: BTreeMap<String, u64>,
    rss_before_kib: Option<u64>,
    rss_idle_kib: Option<u64>,
    rss_end_kib: Option<u64>,
    /// Live heap bytes of the counting build (`--heap`) before connecting and when idle.
    heap_before: Option<u64>,
    heap_idle: Option<u64>,
    hwm_kib: Option<u64>,
    posts_scheduled: usize,
    posts_ok: u64,
    posts_skipped: u64,
    post_errors: BTreeMap<String, u64>,
    post_latency: Histogram<u64>,
    post_seconds: f64,
    delivery_seconds: f64,
    events: u64,
    expected: u64,
    missing: u64,
    duplicates: u64,
    misrouted: u64,
    unmatched: u64,
    pings: u64,
    latency: Histogram<u64>,
    other: BTreeMap<String, u64>,
    disconnects: BTreeMap<String, u64>,
    load_before: String,
    server_stop: String,
    server_log: String,
}

impl RunResult {
    fn idle_kib_per_socket(&self) -> Option<f64> {
        let (before, after) = (self.rss_before_kib?, self.rss_idle_kib?);
        (self.connected > 0).then(|| (after as f64 - before as f64) / self.connected as f64)
    }

    /// Live heap growth per connected socket, KiB (`--heap` only).
    fn heap_kib_per_socket(&self) -> Option<f64> {
        let (before, after) = (self.heap_before?, self.heap_idle?);
        (self.connected > 0)
            .then(|| (after as f64 - before as f64) / 1024.0 / self.connected as f64)
    }
}

async fn run_once(options: &Options, sockets: usize) -> Result<RunResult, Error> {
    let bin = options
        .server
        .clone()
        .unwrap_or_else(|| ticketd_bin(options.heap));
    if !bin.is_file() {
        return Err(format!(
            "{} is missing: run scripts/bench-sockets, or `cargo build --release --bin ticketd{}` first",
            bin.display(),
            if options.heap {
                " --example ticketd_heap"
            } else {
                ""
            }
        ));
    }
    let agents = options.agents;
    let tickets = options.tickets.min(sockets);
    let needed_fds = (sockets + agents + options.post_connections + 64) as u64;
    if let Some(limit) = open_files_limit()
        && limit < needed_fds
    {
        return Err(format!(
            "{sockets} sockets need about {needed_fds} open files but the limit is {limit}: raise it (`ulimit -n`; scripts/bench-sockets does)"
        ));
    }

    let load_before = load_average();
    let mut guard = Guard::new()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let pid = guard.spawn(&bin, addr.port())?;
    eprintln!(
        "socket_fanout: {sockets} customer sockets + {agents} agent sockets, ticketd pid {pid} on {addr}"
    );

    let customer_tokens = (0..sockets)
        .map(|i| mint(SECRET, &format!("fanout-customer-{i}"), "CUSTOMER"))
        .collect::<Result<Vec<_>, _>>()?;
    let agent_tokens = (0..agents)
        .map(|i| mint(SECRET, &format!("fanout-agent-{i}"), "AGENT"))
        .collect::<Result<Vec<_>, _>>()?;
    wait_ready(&mut guard, addr).await?;

    // One ticket per customer of the first `tickets`, each posted to by its owner.
    let mut targets = Vec::with_capacity(tickets);
    let mut sender = connect(addr).await?;
    for (i, token) in customer_tokens.iter().take(tickets).enumerate() {
        let body = format!(
            r#"{{"topic":"Fan-out ticket {i}","description":"Opened by benches/socket_fanout.rs; its owner posts to it."}}"#
        );
        let auth = bearer(token)?;
        let req = request(
            Method::POST,
            Uri::from_static("/api/v1/tickets"),
            Some(&auth),
            Some(Bytes::from(body)),
        );
        let (status, body) = send(&mut sender, req).await?;
        if status != StatusCode::OK {
            return Err(format!(
                "POST /api/v1/tickets: {status} {}",
                body_text(&body)
            ));
        }
        let ticket: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("POST /api/v1/tickets answer: {e}"))?;
        let id = ticket["id"]
            .as_str()
            .ok_or("POST /api/v1/tickets answered no id")?;
        let uri: Uri = format!("/api/v1/tickets/{id}/messages")
            .parse()
            .map_err(|e| format!("ticket id {id}: {e}"))?;
        targets.push((uri, auth));
    }
    drop(sender);
    eprintln!("  setup: {tickets} tickets");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Connect every socket, a bounded number of handshakes at a time.
    let capacity = (options.rate * options.duration.as_secs_f64()).ceil() as usize + 1;
    let shared = Arc::new(Shared::new(tickets, capacity));
    let rss_before_kib = status_kib(pid, "VmRSS:");
    let heap_before = guard.heap_bytes();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(options.connect_concurrency));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    let all = customer_tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| (Kind::Customer(i), t))
        .chain(agent_tokens.into_iter().map(|t| (Kind::Agent, t)));
    let total = sockets + agents;
    let mut connected_flags = vec![false; total];
    let mut connect_failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut reported = 0;
    let mut tally = |(index, outcome): (usize, Result<(), Error>), reported: &mut usize| {
        match outcome {
            Ok(()) => connected_flags[index] = true,
            Err(e) => *connect_failures.entry(e).or_default() += 1,
        }
        *reported += 1;
    };
    let deadline = tokio::time::Instant::now() + CONNECT_PHASE_TIMEOUT;
    let too_long = || format!("connecting {total} sockets took over {CONNECT_PHASE_TIMEOUT:?}");
    for (index, (kind, token)) in all.enumerate() {
        let permit = tokio::time::timeout_at(deadline, permits.clone().acquire_owned())
            .await
            .map_err(|_| too_long())?
            .map_err(|e| format!("connect permits: {e}"))?;
        tasks.spawn(socket_task(
            addr,
            index,
            kind,
            token,
            shared.clone(),
            ready_tx.clone(),
            permit,
        ));
        while let Ok(outcome) = ready_rx.try_recv() {
            tally(outcome, &mut reported);
        }
    }
    drop(ready_tx);
    while reported < total {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(outcome)) => tally(outcome, &mut reported),
            Ok(None) => break,
            Err(_) => return Err(too_long()),
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected = connected_flags.iter().filter(|&&c| c).count();
    guard.check_alive()?;
    eprintln!(
        "  connected {connected}/{total} sockets in {connect_secs:.1} s; settling {SETTLE:?} before reading memory"
    );
    tokio::time::sleep(SETTLE).await;
    let rss_idle_kib = status_kib(pid, "VmRSS:");
    let heap_idle = guard.heap_bytes();

    // Steady posting: post `n` is due at n / rate; any idle connection takes it.
    let posts_scheduled = (options.rate * options.duration.as_secs_f64()).floor() as usize;
    eprintln!(
        "  posting {posts_scheduled} messages at {}/s over {} connections …",
        options.rate, options.post_connections
    );
    let targets = Arc::new(targets);
    let (job_tx, job_rx) = mpsc::channel::<usize>(4096);
    let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
    let workers: Vec<_> = (0..options.post_connections)
        .map(|_| {
            tokio::spawn(post_worker(
                addr,
                job_rx.clone(),
                targets.clone(),
                shared.clone(),
            ))
        })
        .collect();
    let post_start = tokio::time::Instant::now();
    let first_post_us = shared.now_us();
    let mut posts_skipped = 0u64;
    for seq in 0..posts_scheduled {
        tokio::time::sleep_until(post_start + Duration::from_secs_f64(seq as f64 / options.rate))
            .await;
        if job_tx.try_send(seq).is_err() {
            posts_skipped += 1;
        }
    }
    drop(job_tx);
    let mut post_latency = histogram();
    let mut posts_ok = 0;
    let mut post_errors = BTreeMap::new();
    for worker in workers {
        match worker.await {
            Ok(t) => {
                let _ = post_latency.add(&t.latency);
                posts_ok += t.ok;
                for (kind, n) in t.errors {
                    *post_errors.entry(kind).or_default() += n;
                }
            }
            Err(e) => {
                *post_errors
                    .entry(format!("poster task failed: {e}"))
                    .or_default() += 1
            }
        }
    }
    let post_seconds = post_start.elapsed().as_secs_f64();

    // Deliveries may trail the last answer a little; then count what is missing.
    let agents_connected = connected_flags[sockets..].iter().filter(|&&c| c).count() as u64;
    let expected_for = |seq: usize| -> u64 {
        if shared.status[seq].load(Ordering::Acquire) != POST_OK {
            return 0;
        }
        u64::from(connected_flags[seq % tickets]) + agents_connected
    };
    let count = || {
        let (mut expected, mut missing, mut duplicates) = (0, 0, 0);
        for seq in 0..posts_scheduled {
            let want = expected_for(seq);
            let got = u64::from(shared.delivered[seq].load(Ordering::Relaxed));
            expected += want;
            missing += want.saturating_sub(got);
            if want > 0 {
                duplicates += got.saturating_sub(want);
            }
        }
        (expected, missing, duplicates)
    };
    let drain_until = Instant::now() + DRAIN;
    while count().1 > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (expected, missing, duplicates) = count();
    let rss_end_kib = status_kib(pid, "VmRSS:");
    let hwm_kib = status_kib(pid, "VmHWM:");
    guard.check_alive()?;

    shared.stopping.store(true, Ordering::Relaxed);
    tasks.shutdown().await;
    let server_stop = guard.stop();
    let server_log = tail(&guard.log_path(), 20);

    let events = shared.events.load(Ordering::Relaxed);
    let last_event_us = shared.last_event_us.load(Ordering::Relaxed);
    let delivery_seconds = last_event_us.saturating_sub(first_post_us) as f64 / 1e6;
    let latency = shared
        .latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    let other = shared.other.lock().map(|m| m.clone()).unwrap_or_default();
    let disconnects = shared
        .disconnects
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    Ok(RunResult {
        sockets,
        agents,
        connected,
        connect_secs,
        connect_failures,
        rss_before_kib,
        rss_idle_kib,
        rss_end_kib,
        heap_before,
        heap_idle,
        hwm_kib,
        posts_scheduled,
        posts_ok,
        posts_skipped,
        post_errors,
        post_latency,
        post_seconds,
        delivery_seconds,
        events,
        expected,
        missing,
        duplicates,
        misrouted: shared.misrouted.load(Ordering::Relaxed),
        unmatched: shared.unmatched.load(Ordering::Relaxed),
        pings: shared.pings.load(Ordering::Relaxed),
        latency,
        load_before,
        other,
        disconnects,
        server_stop,
        server_log,
    })
}

// ---------------------------------------------------------------------------------------------
// Report

/// `/proc/loadavg`'s 1, 5 and 15 minute figures: other work on the machine skews the latencies.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn print_table(results: &[RunResult], heap: bool) {
    // With `--heap`, the live heap per idle socket follows the VmRSS figure.
    let heap_column = |text: &str| {
        if heap {
            format!(" {text:>9}")
        } else {
            String::new()
        }
    };
    println!(
        "{:>8} {:>11}{} {:>8} {:>13} {:>8} {:>8} {:>9} {:>8} {:>8}",
        "sockets",
        "KiB/idle",
        heap_column("heap KiB"),
        "posts/s",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "missing"
    );
    for r in results {
        let h = &r.latency;
        let kib = r
            .idle_kib_per_socket()
            .map_or("?".to_string(), |k| format!("{k:.1}"));
        let heap_kib = r
            .heap_kib_per_socket()
            .map_or("?".to_string(), |k| format!("{k:.1}"));
        println!(
            "{:>8} {:>11}{} {:>8.0} {:>13.0} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>8}",
            r.sockets + r.agents,
            kib,
            heap_column(&heap_kib),
            r.posts_ok as f64 / r.post_seconds.max(f64::MIN_POSITIVE),
            r.events as f64 / r.delivery_seconds.max(f64::MIN_POSITIVE),
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            r.missing,
        );
    }
}

fn print_details(r: &RunResult) {
    let mib =
        |kib: Option<u64>| kib.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!();
    println!("{} customer + {} agent sockets:", r.sockets, r.agents);
    println!(
        "  connected {}/{} in {:.1} s ({:.0}/s)",
        r.connected,
        r.sockets + r.agents,
        r.connect_secs,
        r.connected as f64 / r.connect_secs.max(f64::MIN_POSITIVE)
    );
    println!(
        "  server RSS: {} before connecting, {} idle with all sockets, {} after the load; peak (VmHWM) {}",
        mib(r.rss_before_kib),
        mib(r.rss_idle_kib),
        mib(r.rss_end_kib),
        mib(r.hwm_kib)
    );
    if let (Some(before), Some(idle)) = (r.heap_before, r.heap_idle) {
        let per_socket = |k: Option<f64>| k.map_or("?".to_string(), |k| format!("{k:.1}"));
        println!(
            "  live heap (counting allocator): {} before connecting, {} idle: {} KiB per idle socket allocated, of {} KiB of VmRSS",
            mib(Some(before / 1024)),
            mib(Some(idle / 1024)),
            per_socket(r.heap_kib_per_socket()),
            per_socket(r.idle_kib_per_socket()),
        );
    }
    println!(
        "  posts: {} scheduled, {} acknowledged, {} failed, {} skipped (client queue full); POST p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        r.posts_scheduled,
        r.posts_ok,
        r.post_errors.values().sum::<u64>(),
        r.posts_skipped,
        ms(r.post_latency.value_at_quantile(0.5)),
        ms(r.post_latency.value_at_quantile(0.99)),
        ms(r.post_latency.max())
    );
    println!(
        "  deliveries: {} received of {} expected; missing {}, duplicates {}, at a customer who does not own the ticket {}, unmatched {}",
        r.events, r.expected, r.missing, r.duplicates, r.misrouted, r.unmatched
    );
    println!("  Engine.IO pings answered: {}", r.pings);
    println!("  load average before the run: {}", r.load_before);
    let sections = [
        ("connect failures", &r.connect_failures),
        ("post errors", &r.post_errors),
        ("disconnects during the run", &r.disconnects),
        ("other packets and events", &r.other),
    ];
    for (title, map) in sections {
        if !map.is_empty() {
            println!("  {title}:");
            for (kind, n) in map {
                println!("    {n:>8}  {kind}");
            }
        }
    }
    println!("  ticketd shutdown: {}", r.server_stop);
    if !r.server_log.trim().is_empty() {
        println!("  ticketd log (RUST_LOG=warn, last 20 lines):");
        for line in r.server_log.lines() {
            println!("    {line}");
        }
    }
}

async fn run(options: Options) -> Result<(), Error> {
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for &sockets in &options.sockets {
        match run_once(&options, sockets).await {
            Ok(result) => results.push(result),
            Err(e) => {
                eprintln!("socket_fanout: the run with {sockets} sockets failed: {e}");
                failures.push(format!("{sockets} sockets: {e}"));
            }
        }
    }
    println!();
    println!(
        "ticketd Socket.IO fan-out ({} posts/s for {:.1} s over {} tickets, {} agent sockets; latency from POST sent to socket event; load generator on the same machine{})",
        options.rate,
        options.duration.as_secs_f64(),
        options.tickets,
        options.agents,
        match (&options.server, options.heap) {
            (Some(path), _) => format!("; server: {}", path.display()),
            (None, true) => "; server: examples/ticketd_heap (counting allocator)".to_string(),
            (None, false) => String::new(),
        }
    );
    println!("machine: {}", machine());
    println!();
    print_table(&results, options.heap);
    for r in &results {
        print_details(r);
    }
    println!();
    for r in results.iter().filter(|r| r.sockets >= 10_000) {
        let p99 = ms(r.latency.value_at_quantile(0.99));
        let kib = r.idle_kib_per_socket();
        println!(
            "targets at {} sockets: p99 {p99:.2} ms (< 50: {}), idle memory {} KiB/socket (≤ 15: {}), nothing missing: {}",
            r.sockets + r.agents,
            if p99 < 50.0 { "met" } else { "NOT met" },
            kib.map_or("?".into(), |k| format!("{k:.1}")),
            if kib.is_some_and(|k| k <= 15.0) {
                "met"
            } else {
                "NOT met"
            },
            if r.missing == 0 && r.posts_ok > 0 {
                "yes"
            } else {
                "NO"
            },
        );
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("socket_fanout: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Dropping `run` on Ctrl-C drops the guard, which kills the server.
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = run(options) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("socket_fanout: {e}");
            ExitCode::FAILURE
        }
    }
}
