//! Partner webhooks end to end: a real server delivering to a receiver on loopback that
//! verifies every signature with its own HMAC (`common::webhook_receiver`), on both stores:
//! every event once and in order with the right bodies, the failure script (500s, a 429 with
//! `Retry-After`, the partner down and back), `WEBHOOK_EVENTS`, a 410 pausing until
//! `ticketd webhooks resume` (across a restart), `replay --from`, `status`; then the real binary
//! killed with -9 mid-delivery, two instances on one MongoDB, and start-up refusals.

mod common;

use common::webhook_receiver::{Answer, Receiver, WEBHOOK_SECRET};
use common::{
    Backend, BinaryServer, MESSAGE_KEYS, TestMongo, TestServer, WEBHOOK_TICKET_KEYS,
    binary_command, keys, mint, on_both_stores,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(30);

/// The webhook settings for `receiver`, with fast retries, plus `extra`.
fn settings(receiver: &Receiver, extra: &[(&'static str, &'static str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("WEBHOOK_URL".to_string(), receiver.url()),
        ("WEBHOOK_SECRET".to_string(), WEBHOOK_SECRET.to_string()),
        ("WEBHOOK_RETRY_SCHEDULE".to_string(), "0.05,0.1".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `/readyz`'s `webhook_lag`, waiting until it shows (the checkpoint exists).
async fn wait_lag(server: &TestServer) -> u64 {
    let deadline = Instant::now() + WITHIN;
    loop {
        let (status, _, body) = server.raw(Method::GET, "/readyz", &[], None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if let Some(lag) = body["webhook_lag"].as_u64() {
            return lag;
        }
        assert!(
            Instant::now() < deadline,
            "webhook_lag never showed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/readyz`'s `position`.
async fn head(server: &TestServer) -> u64 {
    let (_, _, body) = server.raw(Method::GET, "/readyz", &[], None).await;
    body["position"].as_u64().expect("a position")
}

/// `ticketd webhooks <args>` over the server's store; its stdout, asserting the exit code.
fn webhooks_cli(data_dir: &Path, mongo: Option<&TestMongo>, args: &[&str], code: i32) -> String {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = binary_command(data_dir, cwd.path());
    if let Some(mongo) = mongo {
        cmd.env("MONGO_URI", &mongo.uri).env("DB_NAME", &mongo.db);
    }
    let output = cmd
        .arg("webhooks")
        .args(args)
        .output()
        .expect("run ticketd");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "ticketd webhooks {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn cli(store: &Backend, server: &TestServer, args: &[&str], code: i32) -> String {
    let dir = server.data_dir().to_path_buf();
    let mongo = store.current_mongo();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        webhooks_cli(&dir, mongo.as_ref(), &args, code)
    })
    .await
    .expect("the command ran")
}

/// Waits until `ticketd webhooks status` prints a line containing `needle`.
async fn wait_status(store: &Backend, server: &TestServer, needle: &str) -> String {
    let deadline = Instant::now() + WITHIN;
    loop {
        let out = cli(store, server, &["status"], 0).await;
        if out.contains(needle) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "status never said {needle:?}:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asserts the taken deliveries are exactly positions `from..=to`, each once, in order.
fn assert_in_order(taken: &[common::webhook_receiver::Received], from: u64, to: u64) {
    let positions: Vec<u64> = taken.iter().map(|r| r.position()).collect();
    let expected: Vec<u64> = (from..=to).collect();
    assert_eq!(positions, expected, "positions taken");
}

async fn every_event_is_delivered_once_in_order(store: &Backend) {
    let receiver = Receiver::start().await;
    // Events from before webhooks were switched on are history: not sent unasked.
    let server = store.start().await;
    let ann = mint("ann", "CUSTOMER");
    let agent = mint("agent1", "AGENT");
    server
        .create_ticket(&ann, "Before", "made before webhooks")
        .await;
    let env = settings(&receiver, &[]);
    let server = store.restart_with(server, &borrowed(&env)).await;
    assert_eq!(wait_lag(&server).await, 0);
    let start = head(&server).await;

    let ticket = server.create_ticket(&ann, "Printer", "It is on fire").await;
    let id = ticket["id"].as_str().unwrap().to_string();
    let message = server.post_message(&ann, &id, "hello").await;
    let mid = message["id"].as_str().unwrap();
    let (status, _, note) = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &agent,
            json!({"content": "staff only", "internal": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{note}");
    let path = format!("/api/v1/tickets/{id}/messages/{mid}");
    let (status, _, _) = server
        .patch_json(&path, &ann, json!({"content": "edited"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.delete(&path, &ann).await;
    assert!(status.is_success(), "{status}");
    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK);

    let taken = receiver.wait_taken(6, WITHIN).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken_now = receiver.taken();
    assert_eq!(taken_now.len(), 6, "nothing more, nothing twice");
    receiver.assert_all_verified();
    assert_in_order(&taken, start + 1, start + 6);
    let kinds: Vec<&str> = taken.iter().map(|r| r.kind()).collect();
    assert_eq!(
        kinds,
        [
            "TicketOpened",
            "MessagePosted",
            "MessagePosted",
            "MessageEdited",
            "MessageDeleted",
            "TicketClosed"
        ]
    );
    let mut ids: Vec<&str> = taken.iter().map(|r| r.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 6, "one webhook-id per event");
    let now = common::now_ms();
    for r in &taken {
        assert_eq!(
            keys(&r.body),
            ["type", "position", "ticket_id", "occurred_at", "data"]
        );
        assert_eq!(r.body["ticket_id"], json!(id));
        let at = r.body["occurred_at"].as_i64().expect("epoch ms");
        assert!((now - 60_000..=now).contains(&at), "occurred_at {at}");
        uuid::Uuid::parse_str(&r.id).expect("webhook-id is the event id");
    }
    let data = |i: usize| &taken[i].body["data"];
    assert_eq!(
        keys(data(0)),
        WEBHOOK_TICKET_KEYS,
        "the partner sees what staff see"
    );
    assert_eq!(data(0)["status"], "OPEN");
    assert_eq!(keys(data(1)), MESSAGE_KEYS);
    assert_eq!(data(1)["content"], "hello");
    assert_eq!(data(2)["internal"], true);
    assert_eq!(data(2)["content"], "staff only");
    assert_eq!(data(3)["content"], "edited");
    assert_eq!(data(4)["id"], json!(mid));
    assert_eq!(data(4)["content"], "edited", "a deleted message as it was");
    assert_eq!(data(5)["status"], "CLOSED");
    assert_eq!(
        data(5)["first_response_at"],
        Value::Null,
        "an internal note is no answer"
    );
    assert_eq!(data(5)["id"], json!(id));

    assert_eq!(wait_lag(&server).await, 0);
    let status = cli(store, &server, &["status"], 0).await;
    let end = start + 6;
    assert!(status.contains(&format!("checkpoint: {end}")), "{status}");
    assert!(
        status.contains("lag: 0") && status.contains("state: delivering"),
        "{status}"
    );
    assert!(status.contains("last failure: none"), "{status}");
    assert!(
        !status.contains("tok-5e3c2e7") && !status.contains("MfKQ9r8"),
        "{status}"
    );
    drop(server);
}

async fn failures_are_retried_without_loss_or_reordering(store: &Backend) {
    let mut receiver = Receiver::start().await;
    let env = settings(&receiver, &[]);
    let server = store.start_with(&borrowed(&env)).await;
    wait_lag(&server).await;
    let start = head(&server).await;
    receiver.script([
        Answer::Status(500),
        Answer::Status(500),
        Answer::RetryAfter(429, "1"),
        Answer::Status(503),
    ]);
    let ann = mint("ann", "CUSTOMER");
    let ticket = server.create_ticket(&ann, "Flaky", "partner flakes").await;
    let id = ticket["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        server.post_message(&ann, &id, &format!("m{i}")).await;
    }
    receiver.wait_taken(4, WITHIN).await;

    // The partner goes down; events keep coming; it comes back.
    receiver.stop();
    for i in 3..6 {
        server.post_message(&ann, &id, &format!("m{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let down = cli(store, &server, &["status"], 0).await;
    assert!(down.contains("last failure: connection refused"), "{down}");
    receiver.restart().await;

    let taken = receiver.wait_taken(7, WITHIN).await;
    receiver.assert_all_verified();
    assert_in_order(&taken, start + 1, start + 7);
    let received = receiver.received();
    let first = &taken[0];
    let attempts: Vec<_> = received.iter().filter(|r| r.id == first.id).collect();
    let statuses: Vec<u16> = attempts.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [500, 500, 429, 503, 200],
        "the same webhook-id on every retry"
    );
    let waited = attempts[3].at - attempts[2].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    assert!(
        attempts[3].timestamp > attempts[2].timestamp,
        "re-signed with a fresh timestamp"
    );
    assert_ne!(attempts[3].signature, attempts[2].signature);
    // Each position is taken once: no later event overtook an earlier one.
    let mut seen = HashMap::new();
    for r in &received {
        if let Some(previous) = seen.insert(r.id.clone(), r.position()) {
            assert_eq!(previous, r.position());
        }
    }
    let positions: Vec<u64> = received.iter().map(|r| r.position()).collect();
    assert!(
        positions.windows(2).all(|w| w[0] <= w[1]),
        "attempts in log order: {positions:?}"
    );
    drop(server);
}

async fn webhook_events_filters_types(store: &Backend) {
    let receiver = Receiver::start().await;
    let env = settings(
        &receiver,
        &[("WEBHOOK_EVENTS", "TicketOpened,TicketClosed")],
    );
    let server = store.start_with(&borrowed(&env)).await;
    wait_lag(&server).await;
    let ann = mint("ann", "CUSTOMER");
    let ticket = server
        .create_ticket(&ann, "Filtered", "only open and close")
        .await;
    let id = ticket["id"].as_str().unwrap().to_string();
    server.post_message(&ann, &id, "not sent").await;
    server.post_message(&ann, &id, "not sent either").await;
    server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &ann)
        .await;
    let taken = receiver.wait_taken(2, WITHIN).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kinds: Vec<String> = receiver
        .taken()
        .iter()
        .map(|r| r.kind().to_string())
        .collect();
    assert_eq!(kinds, ["TicketOpened", "TicketClosed"]);
    assert_eq!(taken[1].position(), taken[0].position() + 3);
    assert_eq!(
        wait_lag(&server).await,
        0,
        "filtered events move the checkpoint too"
    );
    receiver.assert_all_verified();
}

async fn gone_pauses_until_resumed(store: &Backend) {
    let receiver = Receiver::start().await;
    let env = settings(&receiver, &[]);
    let server = store.start_with(&borrowed(&env)).await;
    wait_lag(&server).await;
    receiver.script([Answer::Status(410)]);
    let ann = mint("ann", "CUSTOMER");
    let ticket = server
        .create_ticket(&ann, "Gone", "partner says gone")
        .await;
    let id = ticket["id"].as_str().unwrap().to_string();
    let paused = wait_status(store, &server, "state: paused").await;
    assert!(paused.contains("last failure: HTTP 410"), "{paused}");
    server.post_message(&ann, &id, "held back").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 1, "nothing is sent while paused");
    assert_eq!(wait_lag(&server).await, 2);

    // The pause is kept in the store: a restart does not lift it.
    let server = store.restart_with(server, &borrowed(&env)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 1, "still paused after a restart");
    let out = cli(store, &server, &["resume"], 0).await;
    assert!(out.contains("resumes"), "{out}");
    let taken = receiver.wait_taken(2, WITHIN).await;
    assert_eq!(taken[0].kind(), "TicketOpened");
    assert_eq!(
        taken[0].id,
        receiver.received()[0].id,
        "the refused event comes first"
    );
    assert_eq!(taken[1].kind(), "MessagePosted");
    wait_status(store, &server, "state: delivering").await;
    let again = cli(store, &server, &["resume"], 0).await;
    assert!(again.contains("not paused"), "{again}");
    receiver.assert_all_verified();
}

async fn replay_redelivers_history(store: &Backend) {
    let receiver = Receiver::start().await;
    let server = store.start().await;
    let ann = mint("ann", "CUSTOMER");
    let ticket = server
        .create_ticket(&ann, "History", "before the switch")
        .await;
    let id = ticket["id"].as_str().unwrap().to_string();
    server.post_message(&ann, &id, "old").await;
    let env = settings(&receiver, &[]);
    let server = store.restart_with(server, &borrowed(&env)).await;
    wait_lag(&server).await;
    let start = head(&server).await;
    assert_eq!(start, 2);
    server.post_message(&ann, &id, "new").await;
    let taken = receiver.wait_taken(1, WITHIN).await;
    assert_eq!(taken[0].position(), 3, "delivery started at the head");

    cli(store, &server, &["replay", "--from", "0"], 2).await;
    cli(store, &server, &["replay", "--from", "5"], 2).await;
    let out = cli(store, &server, &["replay", "--from", "4"], 0).await;
    assert!(out.contains("nothing to replay"), "{out}");
    let out = cli(store, &server, &["replay", "--from", "1"], 0).await;
    assert!(out.contains("position 1 is delivered next"), "{out}");
    let taken = receiver.wait_taken(4, WITHIN).await;
    let positions: Vec<u64> = taken.iter().map(|r| r.position()).collect();
    assert_eq!(positions, [3, 1, 2, 3]);
    assert_eq!(
        taken[3].id, taken[0].id,
        "a replayed event keeps its webhook-id"
    );
    assert_eq!(taken[1].body["data"]["status"], "OPEN");
    assert_eq!(taken[2].body["data"]["content"], "old");
    assert_eq!(taken[3].body["data"]["content"], "new");
    let status = wait_status(store, &server, "lag: 0").await;
    assert!(
        status.contains("checkpoint: 3") && !status.contains("replay:"),
        "{status}"
    );
    receiver.assert_all_verified();
}

on_both_stores!(
    every_event_is_delivered_once_in_order,
    failures_are_retried_without_loss_or_reordering,
    webhook_events_filters_types,
    gone_pauses_until_resumed,
    replay_redelivers_history,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_redelivers_at_most_the_unacknowledged_event() {
    let receiver = Receiver::start().await;
    receiver.set_delay(Duration::from_millis(150));
    let env = settings(&receiver, &[]);
    let env = borrowed(&env);
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn_with(dir.path(), &env).await;
    let ann = mint("ann", "CUSTOMER");
    // Wait for the checkpoint, so every event below is after it.
    let deadline = Instant::now() + WITHIN;
    loop {
        let (_, _, body) = server.raw(Method::GET, "/readyz", &[], None).await;
        if body.get("webhook_lag").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no webhook_lag: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ticket = server.create_ticket(&ann, "Killed", "mid-delivery").await;
    let id = ticket["id"].as_str().unwrap().to_string();
    for i in 0..9 {
        server.post_message(&ann, &id, &format!("m{i}")).await;
    }
    receiver.wait_taken(3, WITHIN).await;
    let deadline = Instant::now() + WITHIN;
    while receiver.in_flight() == 0 {
        assert!(Instant::now() < deadline, "no delivery in flight");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let log = server.log_text();
    server.kill9();
    let before = receiver.received();
    let in_flight = before.last().expect("one in flight").clone();
    assert!(
        !in_flight.answered,
        "killed while the partner was answering"
    );

    let server = BinaryServer::spawn_with(dir.path(), &env).await;
    let deadline = Instant::now() + WITHIN;
    loop {
        let taken = receiver.taken();
        let mut positions: Vec<u64> = taken.iter().map(|r| r.position()).collect();
        positions.dedup();
        if positions == (1..=10).collect::<Vec<_>>() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered: {positions:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in receiver.received() {
        *counts.entry(r.id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= 1,
        "more than one event sent twice: {twice:?}"
    );
    if let Some((id, n)) = twice.first() {
        assert_eq!(
            **id, in_flight.id,
            "only the unacknowledged event is sent again"
        );
        assert_eq!(**n, 2);
    }
    receiver.assert_all_verified();
    // Neither the URL (its token) nor the secret is ever logged.
    let log = log + &server.log_text();
    assert!(log.contains("webhook"), "{log}");
    assert!(
        !log.contains("tok-5e3c2e7") && !log.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_mongodb_never_both_deliver() {
    let Some(mongo) = TestMongo::new("webhooks_two_instances") else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.set_delay(Duration::from_millis(10));
    let env = settings(&receiver, &[]);
    let env = borrowed(&env);
    let a = TestServer::start_mongo(&mongo, &env).await;
    let b = TestServer::start_mongo(&mongo, &env).await;
    wait_lag(&a).await;
    wait_lag(&b).await;
    let ann = mint("ann", "CUSTOMER");
    let ticket = a.create_ticket(&ann, "Shared", "two instances").await;
    let id = ticket["id"].as_str().unwrap().to_string();
    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        server.post_message(&ann, &id, &format!("m{i}")).await;
    }
    let taken = receiver.wait_taken(11, WITHIN).await;
    assert_in_order(&taken, 1, 11);
    assert_eq!(receiver.received().len(), 11, "no event sent twice");
    assert_eq!(receiver.max_in_flight(), 1, "one delivery at a time");

    // Whichever held the lease, stopping one leaves the other to carry on from the checkpoint.
    a.stop().await;
    for i in 0..5 {
        b.post_message(&ann, &id, &format!("late{i}")).await;
    }
    let taken = receiver.wait_taken(16, WITHIN).await;
    let mut positions: Vec<u64> = taken.iter().map(|r| r.position()).collect();
    positions.dedup();
    assert_eq!(positions, (1..=16).collect::<Vec<_>>());
    assert!(
        receiver.received().len() <= 17,
        "at most the one in flight sent twice"
    );
    assert_eq!(receiver.max_in_flight(), 1);
    receiver.assert_all_verified();
    drop(b);
    mongo.drop_database().await;
}

#[test]
fn start_up_refuses_bad_webhook_settings_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bad) in [
        ("WEBHOOK_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("WEBHOOK_SECRET", "whsec_%%%notbase64"),
        ("WEBHOOK_EVENTS", "TicketOpened,TicketVanished"),
        ("WEBHOOK_RETRY_SCHEDULE", "5,later"),
    ] {
        let output = binary_command(dir.path(), dir.path())
            .arg("serve")
            .env("WEBHOOK_URL", "http://127.0.0.1:9/hooks/tok-5e3c2e7")
            .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env(name, bad)
            .output()
            .expect("run ticketd");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}={bad}: {stderr}");
        assert!(stderr.contains(name), "{stderr}");
        assert!(
            !stderr.contains("tok-5e3c2e7") && !stderr.contains("MfKQ9r8"),
            "{stderr}"
        );
    }
}
