//! How fast partner webhooks are delivered: fills a fresh embedded store with N events (tickets
//! of M events each, written by 16 concurrent appenders so tickets interleave), starts the
//! release server on it with webhooks pointed at a receiver on loopback, asks it to deliver the
//! whole history (`ticketd webhooks replay --from 1`, the real command) and times it. The
//! receiver verifies every signature (HMAC of its own) and that positions arrive 1, 2, 3, …
//! once each. Target: ≥ 2,000 events/s in order, verified.
//!
//! `cargo bench --bench webhooks -- [--tickets N (1000)] [--events-per-ticket M (20)]
//! [--sync full|normal (full)]`; run by `scripts/bench-webhooks`.

// Shared with the other benchmarks; this one needs only part of it.
#[allow(dead_code)]
#[path = "support/mod.rs"]
mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{answers_ok, free_port, machine, release_dir, tail, ticketd_command};
use ticketd::store::{EmbeddedOptions, EmbeddedStore};
use ticketd_events::{
    Actor, EventStore, ExpectedVersion, IssueLevel, NewEvent, SupportRole, TicketEvent, UserRole,
    Via,
};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WRITERS: usize = 16;

struct Args {
    tickets: usize,
    per_ticket: usize,
    sync: String,
}

fn args() -> Args {
    let mut args = Args {
        tickets: 1000,
        per_ticket: 20,
        sync: "full".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tickets" => args.tickets = it.next().and_then(|v| v.parse().ok()).unwrap_or(1000),
            "--events-per-ticket" => {
                args.per_ticket = it.next().and_then(|v| v.parse().ok()).unwrap_or(20).max(2)
            }
            "--sync" => args.sync = it.next().unwrap_or_else(|| "full".into()),
            _ => {}
        }
    }
    args
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// One ticket: opened, then messages (every fifth an internal note, every seventh an edit).
fn history(per_ticket: usize) -> Vec<NewEvent> {
    let actor = Actor {
        id: "customer-1".into(),
        name: "Ann".into(),
        role: UserRole::Customer,
        via: Via::Web,
    };
    let correlation = id();
    let event = |event| NewEvent {
        event_id: id(),
        actor: actor.clone(),
        correlation_id: correlation.clone(),
        causation_id: correlation.clone(),
        event,
    };
    let mut events = vec![event(TicketEvent::TicketOpened {
        user_id: actor.id.clone(),
        user_name: actor.name.clone(),
        user_email: "ann@example.com".into(),
        user_role: UserRole::Customer,
        topic: "The printer is on fire".into(),
        description: "Since this morning the printer on the third floor smokes.".into(),
        support_role: SupportRole::General,
        issue_level: IssueLevel::Normal,
    })];
    let mut last = String::new();
    for i in 1..per_ticket {
        let next = if i % 7 == 0 && !last.is_empty() {
            TicketEvent::MessageEdited {
                message_id: last.clone(),
                content: format!("Message {i}, edited"),
                attachments: None,
            }
        } else {
            last = id();
            TicketEvent::MessagePosted {
                message_id: last.clone(),
                author_id: actor.id.clone(),
                author_name: actor.name.clone(),
                author_role: actor.role,
                content: format!("Message {i}: have you tried turning it off and on again?"),
                attachments: vec![],
                internal: i % 5 == 0,
            }
        };
        events.push(event(next));
    }
    events
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// The next position expected.
    next: AtomicU64,
    /// Requests that were out of order, repeated or badly signed.
    bad: AtomicU64,
    /// When the first and the latest delivery arrived.
    times: Mutex<Option<(Instant, Instant)>>,
}

async fn receive(
    key: Arc<Vec<u8>>,
    seen: Arc<Seen>,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (msg_id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).expect("a key");
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(&body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let position = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["position"].as_u64());
    let in_order = position == Some(seen.next.load(Ordering::SeqCst));
    if expected != signature || !in_order {
        seen.bad.fetch_add(1, Ordering::SeqCst);
    } else {
        seen.next.fetch_add(1, Ordering::SeqCst);
    }
    let now = Instant::now();
    let mut times = seen.times.lock().unwrap_or_else(|p| p.into_inner());
    *times = Some(times.map_or((now, now), |(first, _)| (first, now)));
    Response::new(Full::new(Bytes::new()))
}

async fn serve(listener: tokio::net::TcpListener, seen: Arc<Seen>) {
    let key = Arc::new(
        STANDARD
            .decode(WEBHOOK_SECRET.trim_start_matches("whsec_"))
            .expect("base64"),
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (key, seen) = (Arc::clone(&key), Arc::clone(&seen));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (key, seen) = (Arc::clone(&key), Arc::clone(&seen));
                async move { Ok::<_, Infallible>(receive(key, seen, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn main() {
    let args = args();
    let total = (args.tickets * args.per_ticket) as u64;
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!("machine: {}", machine());
    println!(
        "filling {} tickets × {} events = {total} events (SQLITE_SYNCHRONOUS={} for the server)",
        args.tickets, args.per_ticket, args.sync
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let store = EmbeddedStore::open(
        dir.path(),
        EmbeddedOptions {
            synchronous_full: false,
            ..EmbeddedOptions::default()
        },
    )
    .expect("open the store");
    runtime.block_on(async {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let (store, next) = (store.clone(), Arc::clone(&next));
            let (tickets, per_ticket) = (args.tickets, args.per_ticket);
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::SeqCst) < tickets {
                    let stream = id();
                    // One append per event, so tickets interleave in the log.
                    for (version, event) in history(per_ticket).into_iter().enumerate() {
                        let expected = ExpectedVersion::from_version(version as u64);
                        store
                            .append(&stream, expected, vec![event])
                            .await
                            .expect("append");
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("a writer");
        }
        store.shutdown().await;
    });
    drop(store);

    let seen = Arc::new(Seen::default());
    seen.next.store(1, Ordering::SeqCst);
    let receiver_port = free_port().expect("a port");
    let receiver: SocketAddr = ([127, 0, 0, 1], receiver_port).into();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(receiver))
        .expect("bind the receiver");
    runtime.spawn(serve(listener, Arc::clone(&seen)));

    let bin = release_dir().join("ticketd");
    let port = free_port().expect("a port");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let mut server = ticketd_command(&bin, dir.path(), port, SECRET)
        .env("SQLITE_SYNCHRONOUS", args.sync.to_uppercase())
        .env("WEBHOOK_URL", format!("http://{receiver}/hooks"))
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("WEBHOOK_RETRY_SCHEDULE", "0.01")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log"))
        .stderr(log)
        .spawn()
        .expect("start the server");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let ready = runtime.block_on(async {
        for _ in 0..200 {
            if answers_ok(addr, "/readyz").await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    if !ready {
        let _ = server.kill();
        panic!("the server did not get ready:\n{}", tail(&log_path, 20));
    }
    // Switched on at the head; now ask for the whole history, as an operator would.
    let replay = std::process::Command::new(&bin)
        .args(["webhooks", "replay", "--from", "1"])
        .env("DATA_DIR", dir.path())
        .env_remove("MONGO_URI")
        .output()
        .expect("run ticketd webhooks replay");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    while seen.next.load(Ordering::SeqCst) <= total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        if seen.bad.load(Ordering::SeqCst) > 0 {
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let delivered = seen.next.load(Ordering::SeqCst) - 1;
    let bad = seen.bad.load(Ordering::SeqCst);
    let (first, last) = seen
        .times
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .expect("something was delivered");
    let secs = (last - first).as_secs_f64();
    println!(
        "events delivered: {delivered} of {total} (out of order, repeated or badly signed: {bad})"
    );
    println!("seconds (first to last delivery): {secs:.3}");
    println!(
        "events/s: {:.0}",
        (delivered.saturating_sub(1)) as f64 / secs.max(1e-9)
    );
    println!(
        "seconds from the replay command to the last delivery: {:.3}",
        last.saturating_duration_since(started).as_secs_f64()
    );
    if delivered != total || bad > 0 {
        eprintln!("server log:\n{}", tail(&log_path, 30));
        std::process::exit(1);
    }
}
