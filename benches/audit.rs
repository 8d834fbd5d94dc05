//! How fast the auditing paths are on a big store: builds N tickets × M events (default
//! 10,000 × 100 = 1,000,000) through the real embedded writer, then times folding every event
//! in memory (`MemoryReadModel`, target ≥ 250,000 events/s), `ticketd replay`'s rebuild of the
//! SQLite read models (target ≥ 50,000 events/s) and `ticketd verify`.
//!
//! `cargo bench --bench audit -- [--tickets N] [--events-per-ticket M] [--dir PATH]`; run by
//! `scripts/bench-audit`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use ticketd::audit::verify::verify;
use ticketd::store::embedded::audit::replay;
use ticketd::store::{EmbeddedOptions, EmbeddedStore};
use ticketd_events::{
    Actor, EventEnvelope, EventStore, ExpectedVersion, IssueLevel, NewEvent, SupportRole,
    TicketEvent, UserRole, Via,
};
use ticketd_projections::MemoryReadModel;

/// Concurrent appenders, so the writer's group commit has batches to fill.
const WRITERS: usize = 16;

struct Args {
    tickets: usize,
    per_ticket: usize,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut args = Args {
        tickets: 10_000,
        per_ticket: 100,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tickets" => args.tickets = it.next().and_then(|v| v.parse().ok()).unwrap_or(10_000),
            "--events-per-ticket" => {
                args.per_ticket = it.next().and_then(|v| v.parse().ok()).unwrap_or(100).max(1)
            }
            "--dir" => args.dir = it.next().map(PathBuf::from),
            // `cargo bench` adds `--bench`; anything else is ignored too.
            _ => {}
        }
    }
    args
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// One ticket's whole history: opened, then mostly messages, with edits, deletions, a change of
/// urgency and a close, as decided commands would produce them.
fn history(per_ticket: usize) -> Vec<NewEvent> {
    let customer = Actor {
        id: "customer-1".into(),
        name: "Ann".into(),
        role: UserRole::Customer,
        via: Via::Web,
    };
    let agent = Actor {
        id: "agent-1".into(),
        name: "Bob".into(),
        role: UserRole::Agent,
        via: Via::Discord,
    };
    let correlation = id();
    let event = |actor: &Actor, event| NewEvent {
        event_id: id(),
        actor: actor.clone(),
        correlation_id: correlation.clone(),
        causation_id: correlation.clone(),
        event,
    };
    let mut events = vec![event(
        &customer,
        TicketEvent::TicketOpened {
            user_id: customer.id.clone(),
            user_name: customer.name.clone(),
            user_email: "ann@example.com".into(),
            user_role: UserRole::Customer,
            topic: "The printer is on fire".into(),
            description: "Since this morning the printer on the third floor smokes.".into(),
            support_role: SupportRole::General,
            issue_level: IssueLevel::Normal,
        },
    )];
    let mut messages: Vec<String> = Vec::new();
    for i in 1..per_ticket {
        let author = if i % 2 == 0 { &agent } else { &customer };
        let next = if i + 1 == per_ticket {
            TicketEvent::TicketClosed { reason: None }
        } else if i == per_ticket / 2 {
            TicketEvent::IssueLevelChanged {
                from: IssueLevel::Normal,
                to: IssueLevel::Urgent,
            }
        } else if i % 10 == 0 && !messages.is_empty() {
            TicketEvent::MessageEdited {
                message_id: messages[messages.len() - 1].clone(),
                content: format!("Message {i}, edited: the smoke is grey, not black."),
                attachments: None,
            }
        } else if i % 33 == 0 && messages.len() > 1 {
            TicketEvent::MessageDeleted {
                message_id: messages[messages.len() - 2].clone(),
            }
        } else {
            let message_id = id();
            messages.push(message_id.clone());
            TicketEvent::MessagePosted {
                message_id,
                author_id: author.id.clone(),
                author_name: author.name.clone(),
                author_role: author.role,
                content: format!("Message {i}: have you tried turning it off and on again?"),
                attachments: vec![],
                internal: i % 7 == 0,
            }
        };
        events.push(event(author, next));
    }
    events
}

fn main() {
    let args = args();
    let total = args.tickets * args.per_ticket;
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    println!("machine: {}", machine());
    println!(
        "building {} tickets × {} events = {total} events in {}",
        args.tickets,
        args.per_ticket,
        dir.display()
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");

    let store = EmbeddedStore::open(
        &dir,
        EmbeddedOptions {
            synchronous_full: false,
            ..EmbeddedOptions::default()
        },
    )
    .expect("open the store");
    let started = Instant::now();
    runtime.block_on(async {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let store = store.clone();
            let next = Arc::clone(&next);
            let (tickets, per_ticket) = (args.tickets, args.per_ticket);
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < tickets {
                    let events = history(per_ticket);
                    store
                        .append(&id(), ExpectedVersion::NoStream, events)
                        .await
                        .expect("append a ticket's history");
                }
            }));
        }
        for task in tasks {
            task.await.expect("an appender");
        }
    });
    report(
        "append (writer, 100-event appends, synchronous=NORMAL)",
        total,
        started,
    );

    let events: Vec<EventEnvelope> = runtime.block_on(async {
        let mut all = Vec::with_capacity(total);
        loop {
            let after = all.last().map_or(0, |e: &EventEnvelope| e.position);
            let page = store.read_all(after, 50_000).await.expect("read the log");
            if page.is_empty() {
                break all;
            }
            all.extend(page);
        }
    });
    runtime.block_on(store.shutdown());
    drop(store);
    assert_eq!(events.len(), total);

    let started = Instant::now();
    let model = MemoryReadModel::from_events(&events);
    report("fold in memory (MemoryReadModel)", total, started);
    assert_eq!(model.tickets.len(), args.tickets);
    drop(model);
    drop(events);

    let started = Instant::now();
    let summary = replay(&dir, |_, _| {}).expect("replay");
    report("replay: rebuild SQLite read models", total, started);
    assert_eq!(summary.events as usize, total);

    let started = Instant::now();
    let verified = verify(&dir).expect("read the store");
    let report_line = verified.expect("a clean store verifies");
    report("verify: chains + read models vs rebuild", total, started);
    assert_eq!(report_line.events as usize, total);
}

fn report(what: &str, events: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what:<55} {events:>9} events in {secs:>7.2} s = {:>10.0} events/s",
        events as f64 / secs.max(1e-9)
    );
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, {}", std::env::consts::OS)
}
