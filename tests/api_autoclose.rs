//! The auto-close of inactive tickets, seen from outside on both stores with
//! `AUTO_CLOSE_AFTER_HOURS=0.002` (7.2 s; the warning, capped at half, 3.6 s before): the
//! customer sees the warning, then the system's close ("inactive") shows in the ticket's events
//! and in the audit timeline; a customer reply cancels it; a restart between the warning and the
//! close still closes once; two servers on one MongoDB warn once and close once.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

const FAST: [(&str, &str); 1] = [("AUTO_CLOSE_AFTER_HOURS", "0.002")];
/// Longer than any due time here (7.2 s) plus sweeps and a restart.
const PATIENCE: Duration = Duration::from_secs(30);

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The ticket's stored events as `token` may see them.
async fn events(server: &TestServer, token: &str, id: &str) -> Vec<Value> {
    let (status, _, body) = server
        .get(&format!("/api/v1/tickets/{id}/events?limit=100"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = body.get("events").cloned().unwrap_or(body);
    list.as_array().cloned().unwrap_or_default()
}

fn system_warnings(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == "MessagePosted" && e["actor"]["id"] == "system")
        .count()
}

fn closes(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "TicketClosed")
        .collect()
}

/// Polls the customer's view of the messages until the system's warning is there.
async fn wait_for_warning(server: &TestServer, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, _, body) = server
            .get(&format!("/api/v1/tickets/{id}/messages"), token)
            .await;
        if let Some(warning) = body
            .as_array()
            .and_then(|list| list.iter().find(|m| m["author_id"] == "system"))
        {
            return warning.clone();
        }
        assert!(Instant::now() < deadline, "no warning in time: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_status(server: &TestServer, token: &str, id: &str, status: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, _, body) = server.get(&format!("/api/v1/tickets/{id}"), token).await;
        if body["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "not {status} in time: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_closed_once_by_the_system(events: &[Value]) {
    let closes = closes(events);
    assert_eq!(closes.len(), 1, "one close: {events:?}");
    let close = closes[0];
    assert_eq!(close["actor"]["id"], "system", "{close}");
    assert_eq!(close["actor"]["via"], "system", "{close}");
    assert_eq!(close["data"]["reason"], "inactive", "{close}");
    assert_eq!(system_warnings(events), 1, "one warning: {events:?}");
}

async fn an_unanswered_ticket_is_warned_then_closed(store: &Backend) {
    let server = store.start_with(&FAST).await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let root = server.token("root", "ADMIN");
    let waiting = id_of(&server.create_ticket(&ann, "Printer", "On fire").await);
    let answered = id_of(&server.create_ticket(&ann, "Scanner", "Jammed").await);
    let silent = id_of(&server.create_ticket(&ann, "Fax", "Who uses fax").await);
    server
        .post_message(&ada, &waiting, "Have you tried water?")
        .await;
    server
        .post_message(&ada, &answered, "Is it plugged in?")
        .await;

    let warning = wait_for_warning(&server, &ann, &waiting).await;
    assert!(
        warning["content"]
            .as_str()
            .unwrap_or_default()
            .contains("closed automatically"),
        "{warning}"
    );
    wait_for_warning(&server, &ann, &answered).await;
    // The customer answers one of them: its countdown stops.
    server.post_message(&ann, &answered, "Yes it is").await;

    wait_for_status(&server, &ann, &waiting, "CLOSED").await;
    let history = events(&server, &root, &waiting).await;
    assert_closed_once_by_the_system(&history);
    // Past the answered ticket's own due time (it started at most a second after the first).
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in [&answered, &silent] {
        let (_, _, ticket) = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
        assert_eq!(ticket["status"], "OPEN", "{ticket}");
        assert!(closes(&events(&server, &root, id).await).is_empty());
    }
    // A ticket waiting on nobody after the customer's answer: one warning, no close.
    assert_eq!(system_warnings(&events(&server, &root, &answered).await), 1);

    // The audit timeline tells the close like any other.
    let mongo = store.current_mongo();
    let dir = server.stop().await;
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = binary_command(dir.path(), cwd.path());
    if let Some(mongo) = &mongo {
        cmd.env("MONGO_URI", &mongo.uri).env("DB_NAME", &mongo.db);
    }
    let out = cmd.args(["audit", &waiting]).output().unwrap();
    let timeline = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{timeline}");
    assert!(
        timeline.contains("system (ADMIN, via system)  closed the ticket: \"inactive\""),
        "{timeline}"
    );
}

async fn a_restart_between_warning_and_close_closes_once(store: &Backend) {
    let server = store.start_with(&FAST).await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let id = id_of(&server.create_ticket(&ann, "Printer", "On fire").await);
    server.post_message(&ada, &id, "Try turning it off").await;
    wait_for_warning(&server, &ann, &id).await;
    let server = store.restart_with(server, &FAST).await;
    wait_for_status(&server, &ann, &id, "CLOSED").await;
    // A few more sweeps, in case one would close or warn again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let root = server.token("root", "ADMIN");
    assert_closed_once_by_the_system(&events(&server, &root, &id).await);
    server.stop().await;
}

on_both_stores!(
    an_unanswered_ticket_is_warned_then_closed,
    a_restart_between_warning_and_close_closes_once,
);

/// Two servers on one MongoDB database, each with the timer on: one warning, one close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_warn_once_and_close_once() {
    let Some(mongo) = TestMongo::new("autoclose_two_instances") else {
        return;
    };
    let a = TestServer::start_mongo(&mongo, &FAST).await;
    let b = TestServer::start_mongo(&mongo, &FAST).await;
    let ann = a.token("ann", "CUSTOMER");
    let ada = a.token("ada", "AGENT");
    let mut ids = Vec::new();
    for topic in ["One", "Two", "Three"] {
        let id = id_of(&a.create_ticket(&ann, topic, "Broken").await);
        b.post_message(&ada, &id, "Fixed?").await;
        ids.push(id);
    }
    for id in &ids {
        wait_for_status(&b, &ann, id, "CLOSED").await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let root = a.token("root", "ADMIN");
    for id in &ids {
        assert_closed_once_by_the_system(&events(&a, &root, id).await);
    }
    a.stop().await;
    b.stop().await;
    mongo.drop_database().await;
}
