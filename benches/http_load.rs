//! HTTP load benchmark: the issue asks for figures, not timed assertions in tests, so this is a
//! program that prints them. It starts the release `ticketd` (with `RATE_LIMITS=off`,
//! `MAX_CONNECTIONS_PER_IP=0`, a fresh temporary `DATA_DIR`) and the `ceiling` example (a bare
//! axum JSON route: same framework, no auth, no store), drives both from keep-alive HTTP/1.1
//! connections on 127.0.0.1, and prints throughput and p50/p99/p99.9/max latency per phase:
//!
//! - `ceiling`: `GET /ceiling`, the most this framework and machine can serve;
//! - `reads`: `GET /api/v1/tickets/{id}`, each connection reading its own user's ticket;
//! - `posts`: `POST /api/v1/tickets/{id}/messages`, durable (acknowledged after the commit),
//!   spread over one ticket per connection like real traffic.
//!
//! Each phase also reports what the busiest whole disk did in its measured window (from
//! /proc/diskstats): durable posts wait for it, and a virtual disk's speed varies by the hour.
//! Targets (2 cores, 64 connections, load generator on the same machine): ≥ 10,000 message
//! posts/s with p99 < 10 ms; ticket reads ≥ half the ceiling's throughput.
//!
//! With `--stores embedded,mongo` the reads and posts phases run once per store, the second time
//! with `MONGO_URI` set to `--mongo-uri` (or `TICKETD_BENCH_MONGO_URI`; `scripts/bench` starts
//! the SecantusDB test server for it), and one table shows both stores side by side with their
//! ratio. SecantusDB is a Python implementation of the MongoDB wire protocol, much slower than a
//! production `mongod`: its column is a floor, and the output says so.
//!
//! Run through `scripts/bench [--duration S] [--connections N] [--sync full|normal]
//! [--phase all|ceiling|reads|posts] [--stores embedded|mongo|embedded,mongo]`, which builds the
//! binaries first. Every phase is bounded in time; the child processes are killed, the data
//! directory removed and the benchmark's MongoDB database dropped at the end, on error and on
//! Ctrl-C (the database only when the run reaches its end or fails, not on Ctrl-C).

#[path = "support/mod.rs"]
mod support;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, LINK};
use hyper::{Method, Request, StatusCode, Uri};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use support::{
    Sender, answers_ok, connect, free_port, machine, mint, ms, release_dir, request, tail,
};

/// The HS256 key the server and the token command share (≥ 32 bytes).
const SECRET: &str = "ticketd-http-load-benchmark-secret-0123456789";
/// Unrecorded load before each phase: connections open, caches and the allocator settle.
const WARMUP: Duration = Duration::from_secs(1);
/// A single request taking longer than this counts as an error; it also bounds a phase's overrun.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the servers get to answer their first request.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// CPU taken by other processes during a phase above which its figures are flagged.
const NOISE_CORES: f64 = 0.15;

type Error = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ceiling,
    Reads,
    Posts,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Ceiling => "ceiling",
            Phase::Reads => "ticket reads",
            Phase::Posts => "message posts",
        }
    }
}

/// Which store a ticketd under test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    /// SQLite under a fresh `DATA_DIR`.
    Embedded,
    /// MongoDB: a fresh database on `--mongo-uri`.
    Mongo,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Embedded => "embedded",
            Store::Mongo => "mongo",
        }
    }

    /// The name of its server process in the guard and its log file.
    fn process(self) -> &'static str {
        match self {
            Store::Embedded => "ticketd",
            Store::Mongo => "ticketd-mongo",
        }
    }
}

struct Options {
    duration: Duration,
    connections: usize,
    sync_full: bool,
    phases: Vec<Phase>,
    /// The stores measured, in this order.
    stores: Vec<Store>,
    /// The MongoDB server for [`Store::Mongo`].
    mongo_uri: Option<String>,
    /// Its process, when it runs on this machine (`TICKETD_BENCH_MONGO_PID`), so that its CPU
    /// counts as the server's.
    mongo_pid: Option<u32>,
}

const USAGE: &str = "usage: cargo bench --bench http_load -- [--duration S] [--connections N] \
                     [--sync full|normal] [--phase all|ceiling|reads|posts] \
                     [--stores embedded|mongo|embedded,mongo] [--mongo-uri URI]";

fn parse_args() -> Result<Options, Error> {
    let mut options = Options {
        duration: Duration::from_secs(10),
        connections: 64,
        sync_full: true,
        phases: vec![Phase::Ceiling, Phase::Reads, Phase::Posts],
        stores: vec![Store::Embedded],
        mongo_uri: std::env::var("TICKETD_BENCH_MONGO_URI")
            .ok()
            .filter(|uri| !uri.trim().is_empty()),
        mongo_pid: std::env::var("TICKETD_BENCH_MONGO_PID")
            .ok()
            .and_then(|pid| pid.trim().parse().ok()),
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
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value\n{USAGE}"))
        };
        match name.as_str() {
            "--duration" => {
                let secs: f64 = value()?
                    .parse()
                    .map_err(|_| format!("--duration: seconds expected\n{USAGE}"))?;
                if !(0.1..=3600.0).contains(&secs) {
                    return Err(format!(
                        "--duration must be between 0.1 and 3600 seconds\n{USAGE}"
                    ));
                }
                options.duration = Duration::from_secs_f64(secs);
            }
            "--connections" => {
                let n: usize = value()?
                    .parse()
                    .map_err(|_| format!("--connections: a number expected\n{USAGE}"))?;
                if !(1..=4096).contains(&n) {
                    return Err(format!("--connections must be between 1 and 4096\n{USAGE}"));
                }
                options.connections = n;
            }
            "--sync" => {
                options.sync_full = match value()?.to_ascii_lowercase().as_str() {
                    "full" => true,
                    "normal" => false,
                    _ => return Err(format!("--sync: full or normal\n{USAGE}")),
                }
            }
            "--phase" => {
                options.phases = match value()?.to_ascii_lowercase().as_str() {
                    "all" => vec![Phase::Ceiling, Phase::Reads, Phase::Posts],
                    "ceiling" => vec![Phase::Ceiling],
                    "reads" => vec![Phase::Reads],
                    "posts" => vec![Phase::Posts],
                    _ => return Err(format!("--phase: all, ceiling, reads or posts\n{USAGE}")),
                }
            }
            "--stores" => {
                let mut stores = Vec::new();
                for name in value()?.split(',').map(str::trim) {
                    let store = match name.to_ascii_lowercase().as_str() {
                        "embedded" => Store::Embedded,
                        "mongo" | "mongodb" => Store::Mongo,
                        _ => return Err(format!("--stores: embedded and/or mongo\n{USAGE}")),
                    };
                    if !stores.contains(&store) {
                        stores.push(store);
                    }
                }
                options.stores = stores;
            }
            "--mongo-uri" => options.mongo_uri = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    if options.stores.contains(&Store::Mongo) && options.mongo_uri.is_none() {
        return Err(format!(
            "--stores mongo needs --mongo-uri or TICKETD_BENCH_MONGO_URI (scripts/bench \
             starts a test server)\n{USAGE}"
        ));
    }
    Ok(options)
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// Nanoseconds since the epoch: names unique to this run.
fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Owns the servers and the temporary directory: dropping it (at the end, on error, on Ctrl-C)
/// kills the children and removes the directory.
struct Guard {
    dir: PathBuf,
    children: Vec<(&'static str, Child)>,
}

impl Guard {
    fn new() -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!(
            "ticketd-http-load-{}-{}",
            std::process::id(),
            now_nanos()
        ));
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Guard {
            dir,
            children: Vec::new(),
        })
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    fn spawn(&mut self, name: &'static str, mut command: Command) -> Result<u32, Error> {
        let log = File::create(self.log_path(name)).map_err(|e| format!("{name} log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("{name} log: {e}"))?;
        let child = command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let pid = child.id();
        self.children.push((name, child));
        Ok(pid)
    }

    /// An error if `name` has already exited, with the end of its log.
    fn check_alive(&mut self, name: &str) -> Result<(), Error> {
        let log = self.log_path(name);
        if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| *n == name)
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(format!(
                "{name} exited ({status}); its log:\n{}",
                tail(&log, 30)
            ));
        }
        Ok(())
    }

    /// SIGTERM, then up to 5 s for a clean exit; says how it went.
    fn stop(&mut self, name: &str) -> String {
        let Some(index) = self.children.iter().position(|(n, _)| *n == name) else {
            return "not running".into();
        };
        let (_, mut child) = self.children.remove(index);
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
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where a ticketd under test keeps its events: nothing more than `DATA_DIR` for the embedded
/// store; a database of its own on a MongoDB server.
#[derive(Clone)]
enum Backing {
    Embedded,
    Mongo { uri: String, db: String },
}

fn ticketd_command(
    bin: &Path,
    data_dir: &Path,
    port: u16,
    sync_full: bool,
    backing: &Backing,
) -> Command {
    let mut command = support::ticketd_command(bin, data_dir, port, SECRET);
    command.env(
        "SQLITE_SYNCHRONOUS",
        if sync_full { "FULL" } else { "NORMAL" },
    );
    if let Backing::Mongo { uri, db } = backing {
        command.env("MONGO_URI", uri).env("DB_NAME", db);
    }
    command
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Answer {
    status: StatusCode,
    link: Option<String>,
    body: Bytes,
}

/// One request on an open connection, bounded by [`REQUEST_TIMEOUT`].
async fn send(sender: &mut Sender, req: Request<Full<Bytes>>) -> Result<Answer, Error> {
    let exchange = async {
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let link = resp
            .headers()
            .get(LINK)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Answer { status, link, body })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| "timeout".to_string())?
}

/// One request on a fresh connection, for setup and checks.
async fn once(
    addr: SocketAddr,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<String>,
) -> Result<Answer, Error> {
    let uri: Uri = path.parse().map_err(|e| format!("{path}: {e}"))?;
    let auth = auth
        .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
        .transpose()
        .map_err(|e| format!("token: {e}"))?;
    let mut sender = connect(addr).await?;
    send(
        &mut sender,
        request(method, uri, auth.as_ref(), body.map(Bytes::from)),
    )
    .await
}

fn body_text(body: &Bytes) -> String {
    let text = String::from_utf8_lossy(body);
    let mut text: String = text.chars().take(300).collect();
    if body.len() > 300 {
        text.push('…');
    }
    text
}

async fn wait_ready(
    guard: &mut Guard,
    name: &str,
    addr: SocketAddr,
    path: &str,
) -> Result<(), Error> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        guard.check_alive(name)?;
        let Err(last) = answers_ok(addr, path).await else {
            return Ok(());
        };
        if Instant::now() > deadline {
            return Err(format!(
                "{name} did not answer GET {path} within {STARTUP_TIMEOUT:?} (last: {last}); its log:\n{}",
                tail(&guard.log_path(name), 30)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Load

/// What one connection sends in a phase.
#[derive(Clone)]
enum Work {
    Ceiling,
    Read { uri: Uri, auth: HeaderValue },
    Post { uri: Uri, auth: HeaderValue },
}

struct Tally {
    histogram: Histogram<u64>,
    /// 2xx answers completed inside the measured window.
    ok: u64,
    /// Failures inside the measured window.
    errors: u64,
    /// 2xx answers over the whole phase, warm-up included: what the server acknowledged.
    acked: u64,
    /// Failures by kind over the whole phase.
    kinds: BTreeMap<String, u64>,
    /// A few error answers, to show what went wrong.
    samples: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            histogram: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
            ok: 0,
            errors: 0,
            acked: 0,
            kinds: BTreeMap::new(),
            samples: Vec::new(),
        }
    }

    fn fail(&mut self, measured: bool, kind: String, sample: Option<String>) {
        if measured {
            self.errors += 1;
        }
        *self.kinds.entry(kind).or_default() += 1;
        if let Some(sample) = sample
            && self.samples.len() < 5
        {
            self.samples.push(sample);
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.histogram.add(&other.histogram);
        self.ok += other.ok;
        self.errors += other.errors;
        self.acked += other.acked;
        for (kind, n) in other.kinds {
            *self.kinds.entry(kind).or_default() += n;
        }
        for sample in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(sample);
            }
        }
    }
}

/// One connection's loop: requests back to back until `end`; only answers completing after
/// `measure_from` are recorded. Never panics on a network result: every failure is counted and
/// the connection reopened.
async fn worker(addr: SocketAddr, work: Work, measure_from: Instant, end: Instant) -> Tally {
    let mut tally = Tally::new();
    let mut sender: Option<Sender> = None;
    let ceiling_uri = Uri::from_static("/ceiling");
    let mut n: u64 = 0;
    while Instant::now() < end {
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    tally.fail(Instant::now() >= measure_from, e, None);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        n += 1;
        let req = match &work {
            Work::Ceiling => request(Method::GET, ceiling_uri.clone(), None, None),
            Work::Read { uri, auth } => request(Method::GET, uri.clone(), Some(auth), None),
            Work::Post { uri, auth } => {
                let body = format!(r#"{{"content":"benchmark message {n}"}}"#);
                request(
                    Method::POST,
                    uri.clone(),
                    Some(auth),
                    Some(Bytes::from(body)),
                )
            }
        };
        let started = Instant::now();
        let result = send(s, req).await;
        let done = Instant::now();
        let measured = done >= measure_from && done <= end;
        match result {
            Ok(answer) if answer.status.is_success() => {
                tally.acked += 1;
                if measured {
                    tally.ok += 1;
                    let micros =
                        u64::try_from(done.duration_since(started).as_micros()).unwrap_or(u64::MAX);
                    tally.histogram.saturating_record(micros.max(1));
                }
            }
            Ok(answer) => {
                let sample = format!(
                    "HTTP {}: {}",
                    answer.status.as_u16(),
                    body_text(&answer.body)
                );
                tally.fail(
                    measured,
                    format!("HTTP {}", answer.status.as_u16()),
                    Some(sample),
                );
            }
            Err(e) => {
                sender = None;
                let kind = e.split(':').next().unwrap_or("error").to_string();
                tally.fail(measured, kind, Some(e));
            }
        }
    }
    tally
}

struct PhaseResult {
    phase: Phase,
    tally: Tally,
    /// Acknowledged answers per connection (warm-up included), in connection order.
    acked: Vec<u64>,
    seconds: f64,
    /// Cores used during the measured window, `None` without /proc.
    cpu: Option<Cores>,
    /// What the busiest disk did during the measured window, `None` without /proc.
    disk: Option<DiskUse>,
}

impl PhaseResult {
    fn throughput(&self) -> f64 {
        self.tally.ok as f64 / self.seconds
    }
}

/// Cores used during a phase's measured window.
#[derive(Clone, Copy)]
struct Cores {
    /// The server under test.
    server: f64,
    /// This load generator.
    generator: f64,
    /// Interrupts and kernel threads (loopback TCP, writeback, the journal).
    kernel: f64,
    /// Everything else on the machine: other processes.
    other: f64,
}

/// CPU counters in jiffies: all CPUs busy, total, in interrupts; the server; this process;
/// each kernel thread.
struct CpuSample {
    busy: u64,
    total: u64,
    irq: u64,
    server: u64,
    generator: u64,
    kernel_threads: HashMap<u32, u64>,
}

/// Whether a process is a kernel thread, and its user plus system jiffies (all its threads).
fn process_stat(pid: u32) -> Option<(bool, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime …
    let fields: Vec<&str> = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .take(13)
        .collect();
    let flags: u64 = fields.get(6)?.parse().ok()?;
    let jiffies = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    const PF_KTHREAD: u64 = 0x0020_0000;
    Some((flags & PF_KTHREAD != 0, jiffies))
}

fn process_jiffies(pid: u32) -> Option<u64> {
    process_stat(pid).map(|(_, jiffies)| jiffies)
}

/// Jiffies of every kernel thread (writeback, journal, softirq daemons): work the server's
/// I/O and the loopback traffic cause, not other load.
fn kernel_threads() -> HashMap<u32, u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| match process_stat(pid)? {
            (true, jiffies) => Some((pid, jiffies)),
            (false, _) => None,
        })
        .collect()
}

/// `server`: the processes under test (ticketd, and in MongoDB mode its database server when
/// it runs on this machine), counted together.
fn cpu_sample(server: &[u32]) -> Option<CpuSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // cpu  user nice system idle iowait irq softirq steal …
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    if f.len() < 8 {
        return None;
    }
    let total: u64 = f.iter().sum();
    Some(CpuSample {
        busy: total - f[3] - f[4],
        total,
        irq: f[5] + f[6],
        server: server
            .iter()
            .map(|pid| process_jiffies(*pid))
            .sum::<Option<u64>>()?,
        generator: process_jiffies(std::process::id())?,
        kernel_threads: kernel_threads(),
    })
}

fn cores_between(a: &CpuSample, b: &CpuSample) -> Option<Cores> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let total = b.total.checked_sub(a.total).filter(|t| *t > 0)? as f64;
    let share = |d: u64| d as f64 / total * cores;
    let server = b.server.saturating_sub(a.server);
    let generator = b.generator.saturating_sub(a.generator);
    let kernel_threads: u64 = b
        .kernel_threads
        .iter()
        .map(|(pid, j)| j.saturating_sub(a.kernel_threads.get(pid).copied().unwrap_or(0)))
        .sum();
    let kernel = b.irq.saturating_sub(a.irq) + kernel_threads;
    let busy = b.busy.saturating_sub(a.busy);
    Some(Cores {
        server: share(server),
        generator: share(generator),
        kernel: share(kernel),
        other: share(busy.saturating_sub(server + generator + kernel)),
    })
}

async fn run_phase(
    phase: Phase,
    addr: SocketAddr,
    works: Vec<Work>,
    duration: Duration,
    server_pids: Vec<u32>,
) -> PhaseResult {
    eprintln!(
        "  {}: {} connections, {:?} warm-up + {:.1} s measured …",
        phase.label(),
        works.len(),
        WARMUP,
        duration.as_secs_f64()
    );
    let measure_from = Instant::now() + WARMUP;
    let end = measure_from + duration;
    let handles: Vec<_> = works
        .into_iter()
        .map(|w| tokio::spawn(worker(addr, w, measure_from, end)))
        .collect();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let first = cpu_sample(&server_pids);
        let disks = disk_sample();
        tokio::time::sleep_until(end.into()).await;
        let disk = disk_use(&disks, &disk_sample(), duration.as_secs_f64());
        let last = cpu_sample(&server_pids);
        let cores = first.zip(last).and_then(|(a, b)| cores_between(&a, &b));
        (cores, disk)
    });
    let mut tally = Tally::new();
    let mut acked = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(t) => {
                acked.push(t.acked);
                tally.merge(t);
            }
            Err(e) => {
                acked.push(0);
                tally.fail(true, "worker task failed".into(), Some(e.to_string()));
            }
        }
    }
    let (cpu, disk) = cpu.await.unwrap_or((None, None));
    PhaseResult {
        phase,
        tally,
        acked,
        seconds: duration.as_secs_f64(),
        cpu,
        disk,
    }
}

/// What a disk did in a window: durable posts wait for it, so its speed on the day is part of
/// every posts figure (the same build has measured 10,000 to 16,000 posts/s on one VM within
/// an hour, with the disk's write latency tracking it).
#[derive(Clone)]
struct DiskUse {
    device: String,
    mb_per_s: f64,
    writes_per_s: f64,
    /// Average time of one write request, queueing in the device included.
    ms_per_write: f64,
    flushes_per_s: f64,
}

/// Counters of each whole disk from /proc/diskstats: sectors written, writes completed,
/// milliseconds writing, flushes completed.
fn disk_sample() -> HashMap<String, [u64; 4]> {
    let Ok(text) = std::fs::read_to_string("/proc/diskstats") else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = *fields.get(2)?;
            // Whole disks only (a partition's writes are its disk's too), no loop or RAM disks.
            if !Path::new("/sys/block").join(name).exists()
                || ["loop", "ram", "zram"].iter().any(|p| name.starts_with(p))
            {
                return None;
            }
            let n = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
            Some((name.to_string(), [n(9)?, n(7)?, n(10)?, n(18).unwrap_or(0)]))
        })
        .collect()
}

/// The disk that wrote the most between two samples, as rates over `seconds`.
fn disk_use(
    first: &HashMap<String, [u64; 4]>,
    last: &HashMap<String, [u64; 4]>,
    seconds: f64,
) -> Option<DiskUse> {
    let (device, delta) = last
        .iter()
        .filter_map(|(name, now)| {
            let before = first.get(name)?;
            let d: Vec<u64> = now
                .iter()
                .zip(before)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect();
            Some((name.clone(), d))
        })
        .max_by_key(|(_, d)| d[0])?;
    Some(DiskUse {
        device,
        mb_per_s: delta[0] as f64 * 512.0 / 1e6 / seconds,
        writes_per_s: delta[1] as f64 / seconds,
        ms_per_write: delta[2] as f64 / (delta[1].max(1)) as f64,
        flushes_per_s: delta[3] as f64 / seconds,
    })
}

/// How many messages the agent sees in a ticket, following the `Link` pages.
async fn count_messages(addr: SocketAddr, ticket: &str, agent: &str) -> Result<u64, Error> {
    let mut path = format!("/api/v1/tickets/{ticket}/messages?limit=200");
    let mut count = 0u64;
    for _ in 0..100_000 {
        let answer = once(addr, Method::GET, &path, Some(agent), None).await?;
        if answer.status != StatusCode::OK {
            return Err(format!(
                "GET {path}: {} {}",
                answer.status,
                body_text(&answer.body)
            ));
        }
        let page: serde_json::Value =
            serde_json::from_slice(&answer.body).map_err(|e| format!("GET {path}: {e}"))?;
        count += page.as_array().map_or(0, |a| a.len() as u64);
        match answer.link.as_deref().and_then(next_link) {
            Some(next) => path = next,
            None => return Ok(count),
        }
    }
    Err("too many pages".into())
}

/// The path of a `Link` header's `rel="next"` URL.
fn next_link(header: &str) -> Option<String> {
    let part = header
        .split(',')
        .find(|p| p.contains("rel=\"next\"") || p.contains("rel=next"))?;
    let url = part.split('<').nth(1)?.split('>').next()?;
    let path = match url.find("://") {
        Some(i) => &url[i + 3..][url[i + 3..].find('/')?..],
        None => url,
    };
    Some(path.to_string())
}

// ---------------------------------------------------------------------------------------------
// Report

fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    Some(line[field.len()..].trim().to_string())
}

/// Every file under `path` with its size.
fn files_by_size(root: &Path, path: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        match entry.metadata() {
            Ok(m) if m.is_dir() => files_by_size(root, &entry.path(), out),
            Ok(m) => {
                let name = entry.path();
                let name = name
                    .strip_prefix(root)
                    .unwrap_or(&name)
                    .display()
                    .to_string();
                out.push((name, m.len()));
            }
            Err(_) => {}
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_table(results: &[&PhaseResult]) {
    println!(
        "{:<14} {:>10} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8}   CPU cores: server / load gen / kernel / other",
        "phase", "requests", "errors", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
    );
    for r in results {
        let h = &r.tally.histogram;
        let cpu = r.cpu.map_or("?".into(), |c| {
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2}",
                c.server, c.generator, c.kernel, c.other
            )
        });
        println!(
            "{:<14} {:>10} {:>8} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}   {cpu}",
            r.phase.label(),
            r.tally.ok + r.tally.errors,
            r.tally.errors,
            r.throughput(),
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
        );
    }
    for r in results {
        if let Some(d) = r.disk.as_ref().filter(|d| d.mb_per_s >= 1.0) {
            println!(
                "  disk during {}: {} wrote {:.0} MB/s in {:.0} writes/s ({:.2} ms each on \
                 average), {:.0} flushes/s",
                r.phase.label(),
                d.device,
                d.mb_per_s,
                d.writes_per_s,
                d.ms_per_write,
                d.flushes_per_s
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// What one store's server did under load, and what it left behind.
struct StoreRun {
    store: Store,
    /// Its reads and posts phases, in that order.
    results: Vec<PhaseResult>,
    /// Acknowledged posts against messages listed afterwards, for ticket 0.
    durability: Option<String>,
    /// The server's peak resident memory.
    peak_rss: Option<String>,
    /// Files of `DATA_DIR` by size (the whole store for the embedded one).
    store_files: Vec<(String, u64)>,
    /// How the server stopped.
    stop: String,
    /// Where the MongoDB store was, for the report.
    backing: Backing,
    /// The MongoDB server's process, whose CPU was counted with ticketd's.
    mongo_pid: Option<u32>,
}

/// Opens one ticket per connection on a ready server and checks the agent may read them.
async fn open_tickets(
    addr: SocketAddr,
    customers: &[String],
    agent: &str,
) -> Result<Vec<String>, Error> {
    let mut tickets = Vec::new();
    for (i, token) in customers.iter().enumerate() {
        let body = format!(
            r#"{{"topic":"Benchmark ticket {i}","description":"Opened by benches/http_load.rs so the load spreads over one ticket per connection."}}"#
        );
        let answer = once(
            addr,
            Method::POST,
            "/api/v1/tickets",
            Some(token),
            Some(body),
        )
        .await?;
        if answer.status != StatusCode::OK {
            return Err(format!(
                "POST /api/v1/tickets: {} {}",
                answer.status,
                body_text(&answer.body)
            ));
        }
        let ticket: serde_json::Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("POST /api/v1/tickets answer: {e}"))?;
        let id = ticket["id"]
            .as_str()
            .ok_or("POST /api/v1/tickets answered no id")?
            .to_string();
        tickets.push(id);
    }
    // The agent may read any ticket: a sanity check of the token and the route.
    let first = tickets.first().ok_or("no connections, no tickets")?;
    let path = format!("/api/v1/tickets/{first}");
    let answer = once(addr, Method::GET, &path, Some(agent), None).await?;
    if answer.status != StatusCode::OK {
        return Err(format!(
            "agent GET {path}: {} {}",
            answer.status,
            body_text(&answer.body)
        ));
    }
    Ok(tickets)
}

/// Starts ticketd on `store`, opens the tickets and runs the reads and posts phases asked for.
async fn measure_store(
    store: Store,
    options: &Options,
    guard: &mut Guard,
    customers: &[String],
    agent: &str,
) -> Result<StoreRun, Error> {
    let release = release_dir();
    let data_dir = match store {
        Store::Embedded => guard.dir.join("data"),
        Store::Mongo => guard.dir.join("data-mongo"),
    };
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let backing = match (store, &options.mongo_uri) {
        (Store::Embedded, _) => Backing::Embedded,
        (Store::Mongo, Some(uri)) => Backing::Mongo {
            uri: uri.clone(),
            db: format!("ticketd_bench_{}_{}", std::process::id(), now_nanos()),
        },
        (Store::Mongo, None) => return Err("--stores mongo needs --mongo-uri".into()),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let name = store.process();
    let pid = guard.spawn(
        name,
        ticketd_command(
            &release.join("ticketd"),
            &data_dir,
            addr.port(),
            options.sync_full,
            &backing,
        ),
    )?;
    let measured = measure_started(store, options, guard, addr, pid, customers, agent).await;
    // Figures taken before the server stops.
    let peak_rss = status_field(pid, "VmHWM:");
    let mut store_files = Vec::new();
    files_by_size(&data_dir, &data_dir, &mut store_files);
    store_files.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    let stop = guard.stop(name);
    if let Backing::Mongo { uri, db } = &backing {
        drop_database(uri, db).await;
    }
    let (results, durability) = measured?;
    Ok(StoreRun {
        store,
        results,
        durability,
        peak_rss,
        store_files,
        stop,
        backing,
        mongo_pid: options.mongo_pid.filter(|_| store == Store::Mongo),
    })
}

/// The phases of [`measure_store`] once its server is spawned.
async fn measure_started(
    store: Store,
    options: &Options,
    guard: &mut Guard,
    addr: SocketAddr,
    pid: u32,
    customers: &[String],
    agent: &str,
) -> Result<(Vec<PhaseResult>, Option<String>), Error> {
    let name = store.process();
    let wants = |p: Phase| options.phases.contains(&p);
    wait_ready(guard, name, addr, "/healthz").await?;
    let tickets = open_tickets(addr, customers, agent).await?;
    eprintln!(
        "  setup{}: {} customer tokens, 1 agent token, {} tickets",
        if store == Store::Mongo {
            " (mongo)"
        } else {
            ""
        },
        customers.len(),
        tickets.len()
    );
    let works = |post: bool| -> Result<Vec<Work>, Error> {
        tickets
            .iter()
            .zip(customers)
            .map(|(id, token)| {
                let suffix = if post { "/messages" } else { "" };
                let uri: Uri = format!("/api/v1/tickets/{id}{suffix}")
                    .parse()
                    .map_err(|e| format!("ticket id {id}: {e}"))?;
                let auth = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| format!("token: {e}"))?;
                Ok(if post {
                    Work::Post { uri, auth }
                } else {
                    Work::Read { uri, auth }
                })
            })
            .collect()
    };
    // In MongoDB mode the database's work is part of every request: its CPU counts with ticketd's.
    let mut pids = vec![pid];
    if store == Store::Mongo {
        pids.extend(options.mongo_pid);
    }
    let mut results = Vec::new();
    if wants(Phase::Reads) {
        results.push(
            run_phase(
                Phase::Reads,
                addr,
                works(false)?,
                options.duration,
                pids.clone(),
            )
            .await,
        );
        guard.check_alive(name)?;
    }
    let mut durability = None;
    if wants(Phase::Posts) {
        let before = count_messages(addr, &tickets[0], agent).await;
        let result = run_phase(
            Phase::Posts,
            addr,
            works(true)?,
            options.duration,
            pids.clone(),
        )
        .await;
        guard.check_alive(name)?;
        let after = count_messages(addr, &tickets[0], agent).await;
        durability = Some(match (before, after) {
            (Ok(before), Ok(after)) => {
                let acked = result.acked.first().copied().unwrap_or(0);
                let verdict = if after == before + acked {
                    "match"
                } else {
                    "MISMATCH"
                };
                format!(
                    "ticket 0: {acked} posts acknowledged, {} messages listed afterwards: {verdict}",
                    after - before.min(after)
                )
            }
            (Err(e), _) | (_, Err(e)) => format!("could not count ticket 0's messages: {e}"),
        });
        results.push(result);
    }
    Ok((results, durability))
}

/// Drops the benchmark's database, so the test server does not keep it in memory; a failure
/// is only reported.
async fn drop_database(uri: &str, db: &str) {
    let dropped = async {
        mongodb::Client::with_uri_str(uri)
            .await?
            .database(db)
            .drop()
            .await
    };
    if let Err(e) = dropped.await {
        eprintln!("http_load: could not drop MongoDB database {db}: {e}");
    }
}

async fn run(options: Options) -> Result<(), Error> {
    let release = release_dir();
    let ticketd_bin = release.join("ticketd");
    let ceiling_bin = release.join("examples").join("ceiling");
    let wants = |p: Phase| options.phases.contains(&p);
    let needs_ticketd = wants(Phase::Reads) || wants(Phase::Posts);
    for (bin, needed) in [
        (&ticketd_bin, needs_ticketd),
        (&ceiling_bin, wants(Phase::Ceiling)),
    ] {
        if needed && !bin.is_file() {
            return Err(format!(
                "{} is missing: run scripts/bench, or `cargo build --release --bin ticketd --example ceiling` first",
                bin.display()
            ));
        }
    }

    let mut guard = Guard::new()?;
    let n = options.connections;
    let sync = if options.sync_full { "FULL" } else { "NORMAL" };
    let with_mongo = options.stores.contains(&Store::Mongo);
    let with_embedded = options.stores.contains(&Store::Embedded);
    eprintln!(
        "http_load: {n} connections, {:.1} s per phase, SQLite synchronous={sync}{}",
        options.duration.as_secs_f64(),
        if with_mongo {
            format!(
                ", stores: {}",
                options
                    .stores
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        }
    );

    let ceiling_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut ceiling_pid = None;
    if wants(Phase::Ceiling) {
        let mut command = Command::new(&ceiling_bin);
        command.arg(ceiling_addr.port().to_string());
        ceiling_pid = Some(guard.spawn("ceiling", command)?);
    }

    // Tokens while the ceiling starts: one customer per connection, and one agent. They are
    // signed with the shared secret, so every store's server takes the same ones.
    let mut customers = Vec::new();
    let mut agent = String::new();
    if needs_ticketd {
        customers = (0..n)
            .map(|i| mint(SECRET, &format!("bench-user-{i}"), "CUSTOMER"))
            .collect::<Result<Vec<_>, _>>()?;
        agent = mint(SECRET, "bench-agent", "AGENT")?;
    }

    let mut ceiling = None;
    if wants(Phase::Ceiling) {
        wait_ready(&mut guard, "ceiling", ceiling_addr, "/ceiling").await?;
        ceiling = Some(
            run_phase(
                Phase::Ceiling,
                ceiling_addr,
                vec![Work::Ceiling; n],
                options.duration,
                ceiling_pid.into_iter().collect(),
            )
            .await,
        );
        guard.check_alive("ceiling")?;
    }
    let mut runs = Vec::new();
    if needs_ticketd {
        for store in &options.stores {
            runs.push(measure_store(*store, &options, &mut guard, &customers, &agent).await?);
        }
    }
    guard.stop("ceiling");

    println!();
    println!(
        "ticketd HTTP load ({n} connections, {:.1} s per phase after {:?} warm-up; load generator on the same machine)",
        options.duration.as_secs_f64(),
        WARMUP
    );
    println!("machine: {}", machine());
    if with_embedded || !needs_ticketd {
        println!(
            "SQLite synchronous: {sync}{}",
            if options.sync_full {
                " (default; survives a power cut)"
            } else {
                " (--sync normal; survives a crash, not a power cut)"
            }
        );
    }
    if let Some(Backing::Mongo { uri, .. }) = runs
        .iter()
        .map(|r| &r.backing)
        .find(|b| matches!(b, Backing::Mongo { .. }))
    {
        println!("MongoDB: {uri}, {}", mongo_server());
    }
    let multi = runs.len() > 1;
    for (index, run) in runs.iter().enumerate() {
        println!();
        if multi {
            println!("{} store:", run.store.name());
        }
        let mut rows: Vec<&PhaseResult> = ceiling.iter().collect();
        rows.extend(run.results.iter());
        print_rows(&rows);
        // The ceiling's failures, if any, once, with the first store's.
        let failed = if index == 0 {
            rows
        } else {
            run.results.iter().collect()
        };
        print_store_details(run, ceiling.as_ref(), &failed, &guard);
    }
    if runs.is_empty()
        && let Some(ceiling) = &ceiling
    {
        println!();
        print_rows(&[ceiling]);
    }
    if runs.is_empty()
        && let Some(ceiling) = ceiling.as_ref().filter(|c| !c.tally.kinds.is_empty())
    {
        print_failures(ceiling);
    }
    if multi {
        print_side_by_side(&runs);
    }
    Ok(())
}

/// The table of `rows`, a warning for each phase that other processes disturbed, a blank line.
fn print_rows(rows: &[&PhaseResult]) {
    print_table(rows);
    for r in rows {
        if let Some(c) = r.cpu.filter(|c| c.other > NOISE_CORES) {
            println!(
                "WARNING: other processes used {:.2} cores during {}: its figures are not reliable",
                c.other,
                r.phase.label()
            );
        }
    }
    println!();
}

/// The lines under a store's table: its ratio to the ceiling and targets, the durability
/// check, memory, the store's size, the shutdown, failures and the end of its log.
fn print_store_details(
    run: &StoreRun,
    ceiling: Option<&PhaseResult>,
    failed: &[&PhaseResult],
    guard: &Guard,
) {
    let find = |p: Phase| run.results.iter().find(|r| r.phase == p);
    let prefix = match run.store {
        Store::Embedded => String::new(),
        Store::Mongo => "mongo: ".to_string(),
    };
    // The targets are the embedded store's; the MongoDB test server has none.
    let verdict = |target: &str, met: bool| match run.store {
        Store::Embedded => format!(" ({target}: {})", if met { "met" } else { "NOT met" }),
        Store::Mongo => " (no target on the test server)".to_string(),
    };
    if let (Some(ceiling), Some(reads)) = (ceiling, find(Phase::Reads)) {
        let ratio = reads.throughput() / ceiling.throughput().max(f64::MIN_POSITIVE);
        println!(
            "{prefix}ticket reads / ceiling throughput: {ratio:.2}{}",
            verdict("target ≥ 0.50", ratio >= 0.5)
        );
    }
    if let Some(posts) = find(Phase::Posts) {
        let p99 = ms(posts.tally.histogram.value_at_quantile(0.99));
        let met = posts.throughput() >= 10_000.0 && p99 < 10.0 && posts.tally.errors == 0;
        println!(
            "{prefix}message posts: {:.0}/s, p99 {p99:.2} ms{}",
            posts.throughput(),
            verdict("target ≥ 10,000/s with p99 < 10 ms, no errors", met)
        );
    }
    if let Some(line) = &run.durability {
        println!("{prefix}durability check, {line}");
    }
    if let Some(rss) = &run.peak_rss {
        println!("{prefix}ticketd peak RSS (VmHWM): {rss}");
    }
    match &run.backing {
        Backing::Embedded => {
            let largest: Vec<String> = run
                .store_files
                .iter()
                .take(3)
                .map(|(name, size)| format!("{name} {:.1} MiB", mib(*size)))
                .collect();
            println!(
                "store on disk at the end: {:.1} MiB ({})",
                mib(run.store_files.iter().map(|(_, size)| size).sum()),
                largest.join(", ")
            );
        }
        Backing::Mongo { db, .. } => {
            println!("{prefix}store: MongoDB database {db} (dropped at the end)");
            println!(
                "{prefix}CPU \"server\" column: ticketd{}",
                if let Some(pid) = run.mongo_pid {
                    format!(" plus the MongoDB server process (pid {pid})")
                } else {
                    " only (the MongoDB server's pid is unknown: its CPU counts as \"other\")"
                        .to_string()
                }
            );
        }
    }
    println!("{prefix}ticketd shutdown: {}", run.stop);
    for r in failed {
        if !r.tally.kinds.is_empty() {
            print_failures(r);
        }
    }
    let log = tail(&guard.log_path(run.store.process()), 20);
    if !log.trim().is_empty() {
        println!();
        println!("{prefix}ticketd log (RUST_LOG=warn, last 20 lines):");
        for line in log.lines() {
            println!("  {line}");
        }
    }
}

fn print_failures(r: &PhaseResult) {
    println!();
    println!(
        "{} failures (whole phase, warm-up included):",
        r.phase.label()
    );
    for (kind, count) in &r.tally.kinds {
        println!("  {count:>8}  {kind}");
    }
    for sample in &r.tally.samples {
        println!("  e.g. {sample}");
    }
}

/// What the MongoDB server is, as `scripts/bench` describes the one it started
/// (`TICKETD_BENCH_MONGO_SERVER`).
fn mongo_server() -> String {
    std::env::var("TICKETD_BENCH_MONGO_SERVER")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "a MongoDB server given by --mongo-uri".into())
}

/// One table with a column per store and the ratio of the second store to the first.
fn print_side_by_side(runs: &[StoreRun]) {
    let [first, second] = runs else {
        return;
    };
    let (a, b) = (first.store.name(), second.store.name());
    println!();
    println!("side by side ({b}: {})", mongo_server());
    println!(
        "{:<14} {:>14} {:>14} {:>10} {:>14} {:>14} {:>14} {:>14}",
        "phase",
        format!("{a} req/s"),
        format!("{b} req/s"),
        format!("{b}/{a}"),
        format!("{a} p50 ms"),
        format!("{b} p50 ms"),
        format!("{a} p99 ms"),
        format!("{b} p99 ms"),
    );
    for x in &first.results {
        let Some(y) = second.results.iter().find(|r| r.phase == x.phase) else {
            continue;
        };
        let q = |r: &PhaseResult, quantile: f64| ms(r.tally.histogram.value_at_quantile(quantile));
        println!(
            "{:<14} {:>14.0} {:>14.0} {:>10.3} {:>14.2} {:>14.2} {:>14.2} {:>14.2}",
            x.phase.label(),
            x.throughput(),
            y.throughput(),
            y.throughput() / x.throughput().max(f64::MIN_POSITIVE),
            q(x, 0.50),
            q(y, 0.50),
            q(x, 0.99),
            q(y, 0.99),
        );
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
            eprintln!("http_load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Dropping `run` on Ctrl-C drops its guard, which kills the servers.
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
            eprintln!("http_load: {e}");
            ExitCode::FAILURE
        }
    }
}
