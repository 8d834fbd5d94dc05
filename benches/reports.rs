//! What a report costs on a big store (issue 17, ADR 0026): builds N tickets with M messages in
//! all (default 10,000 and 1,000,000) spread over the last 30 days, loads them through the
//! store's import (which projects every event, reports included, as the writer does inline),
//! then times `GET /api/v1/reports`' store query for the last 30 days by day (target < 50 ms),
//! by holder, and for a window cut inside days, R times each, printing p50 and p99. With
//! `--mongo URI` the same on MongoDB, beside it, at `--mongo-scale` of the size (default 0.1:
//! its import projects one event at a time over the network).
//!
//! `cargo bench --bench reports -- [--tickets N] [--messages M] [--runs R] [--mongo URI]
//! [--mongo-scale F]`; run by `scripts/bench-reports`.

use std::time::{Duration, Instant};
use ticketd::store::embedded::import::import;
use ticketd::store::{Bookkeeping, EmbeddedOptions, EmbeddedStore, MongoStore, Reports};
use ticketd_events::{Actor, EventEnvelope, IssueLevel, SupportRole, TicketEvent, UserRole, Via};
use ticketd_projections::reports::{DAY_MS, GroupBy, ReportQuery, day_start};

struct Args {
    tickets: usize,
    messages: usize,
    runs: usize,
    mongo: Option<String>,
    mongo_scale: f64,
}

fn args() -> Args {
    let mut args = Args {
        tickets: 10_000,
        messages: 1_000_000,
        runs: 200,
        mongo: None,
        mongo_scale: 0.1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |default: usize| it.next().and_then(|v| v.parse().ok()).unwrap_or(default);
        match arg.as_str() {
            "--tickets" => args.tickets = number(10_000).max(1),
            "--messages" => args.messages = number(1_000_000),
            "--runs" => args.runs = number(200).max(1),
            "--mongo" => args.mongo = it.next(),
            "--mongo-scale" => {
                args.mongo_scale = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.1)
            }
            // `cargo bench` adds `--bench`; anything else is ignored too.
            _ => {}
        }
    }
    args
}

fn actor(id: &str, role: UserRole) -> Actor {
    Actor {
        id: id.into(),
        name: id.into(),
        role,
        via: Via::Web,
    }
}

/// Every ticket's history with its times, spread evenly over the 30 days before `now`, then put
/// in time order with positions and versions as a store would have given them.
fn history(tickets: usize, messages: usize, now: i64) -> Vec<EventEnvelope> {
    let per_ticket = messages / tickets;
    let span = 30 * DAY_MS - 2 * 3_600_000;
    let mut timed: Vec<(i64, usize, Actor, TicketEvent)> =
        Vec::with_capacity(messages + 4 * tickets);
    let levels = [IssueLevel::Normal, IssueLevel::Urgent, IssueLevel::Critical];
    let teams = [
        SupportRole::General,
        SupportRole::Technical,
        SupportRole::Manager,
    ];
    let agent = |i: usize| actor(&format!("a{}", i % 20), UserRole::Agent);
    for i in 0..tickets {
        let customer = actor(&format!("c{}", i % 2000), UserRole::Customer);
        let opened = now - 30 * DAY_MS + (span / tickets as i64) * i as i64;
        // Messages a minute apart, at most two hours in all.
        let step = (7_200_000 / (per_ticket as i64 + 2)).max(1);
        let mut at = opened;
        timed.push((
            at,
            i,
            customer.clone(),
            TicketEvent::TicketOpened {
                user_id: customer.id.clone(),
                user_name: customer.name.clone(),
                user_email: format!("{}@example.com", customer.id),
                user_role: UserRole::Customer,
                topic: "Printer".into(),
                description: "On fire".into(),
                support_role: teams[i % 3],
                issue_level: levels[i % 3],
            },
        ));
        for k in 0..per_ticket {
            at += step;
            let staff = k % 2 == 1;
            let author = if staff { agent(i) } else { customer.clone() };
            if k == 2 {
                timed.push((
                    at,
                    i,
                    agent(i),
                    TicketEvent::AssigneeChanged {
                        from: None,
                        to: Some(agent(i).id),
                        to_name: None,
                    },
                ));
            }
            timed.push((
                at,
                i,
                author.clone(),
                TicketEvent::MessagePosted {
                    message_id: format!("m{i}-{k}"),
                    author_id: author.id.clone(),
                    author_name: author.name.clone(),
                    author_role: author.role,
                    content: "text".into(),
                    attachments: vec![],
                    internal: staff && k % 10 == 9,
                },
            ));
        }
        at += step;
        timed.push((at, i, agent(i), TicketEvent::TicketClosed { reason: None }));
        if i % 3 == 0 {
            timed.push((
                at + 1,
                i,
                customer.clone(),
                TicketEvent::FeedbackGiven {
                    rating: (i % 5 + 1) as u8,
                    comment: None,
                },
            ));
        }
    }
    timed.sort_by_key(|(at, ..)| *at);
    let mut versions = vec![0_u64; tickets];
    let ids: Vec<String> = (0..tickets)
        .map(|i| format!("0190a000-0000-7000-8000-{i:012}"))
        .collect();
    timed
        .into_iter()
        .enumerate()
        .map(|(n, (at, i, actor, event))| {
            versions[i] += 1;
            EventEnvelope {
                event_id: format!("e{n}"),
                stream_id: ids[i].clone(),
                version: versions[i],
                position: n as u64 + 1,
                recorded_at: at,
                actor,
                correlation_id: format!("c{n}"),
                causation_id: format!("c{n}"),
                schema_version: 1,
                event,
                prev_hash: String::new(),
                hash: String::new(),
                global_hash: String::new(),
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs each query `runs` times and prints p50/p99 (ms).
async fn measure<S: Reports>(store: &S, label: &str, now: i64, runs: usize) {
    let end = day_start(now) + DAY_MS;
    let queries = [
        ("30 days by day", end - 30 * DAY_MS, end, GroupBy::Day),
        (
            "30 days by holder",
            end - 30 * DAY_MS,
            end,
            GroupBy::Assignee,
        ),
        (
            "30 days cut inside days, by day",
            now - 30 * DAY_MS,
            now,
            GroupBy::Day,
        ),
    ];
    for (name, from, to, group_by) in queries {
        let query = ReportQuery {
            from,
            to,
            group_by,
            as_of: None,
        };
        let mut times = Vec::with_capacity(runs);
        let mut opened = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let report = store.report(&query).await.expect("report");
            times.push(started.elapsed());
            opened = report.groups.iter().map(|g| g.opened).sum::<u64>();
        }
        times.sort();
        println!(
            "{label:9} {name:34} p50 {:8.2} ms  p99 {:8.2} ms  ({runs} runs; {opened} opened in the window)",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
        );
    }
}

fn main() {
    let args = args();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    println!(
        "reports benchmark: {} tickets, {} messages over 30 days; {} runs per query; {} cores",
        args.tickets,
        args.messages,
        args.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let events = history(args.tickets, args.messages, now);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let started = Instant::now();
    import(dir.path(), &events, &Bookkeeping::default()).expect("import");
    let store = EmbeddedStore::open(
        dir.path(),
        EmbeddedOptions {
            synchronous_full: false,
            ..EmbeddedOptions::default()
        },
    )
    .expect("open");
    println!(
        "embedded: {} events imported and projected (and sealed) in {:.1} s",
        events.len(),
        started.elapsed().as_secs_f64()
    );
    runtime.block_on(measure(&store, "embedded", now, args.runs));
    runtime.block_on(store.shutdown());
    drop(events);

    let Some(uri) = args.mongo else {
        return;
    };
    let tickets = ((args.tickets as f64 * args.mongo_scale) as usize).max(1);
    let messages = (args.messages as f64 * args.mongo_scale) as usize;
    let events = history(tickets, messages, now);
    runtime.block_on(async {
        let db = format!("bench_reports_{}", std::process::id());
        let store = MongoStore::connect(&uri, &db).await.expect("connect");
        let started = Instant::now();
        store
            .import(&events, &Bookkeeping::default())
            .await
            .expect("import");
        println!(
            "mongo:    {tickets} tickets, {messages} messages: {} events imported and projected in {:.1} s",
            events.len(),
            started.elapsed().as_secs_f64()
        );
        measure(&store, "mongo", now, args.runs).await;
        // And the embedded store at the same size, for the ratio.
        let dir = tempfile::tempdir().expect("a temporary directory");
        import(dir.path(), &events, &Bookkeeping::default()).expect("import");
        let small = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("open");
        measure(&small, "embedded", now, args.runs).await;
        small.shutdown().await;
        let client = mongodb::Client::with_uri_str(&uri).await.expect("client");
        let _ = client.database(&db).drop().await;
    });
}
