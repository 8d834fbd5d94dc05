//! Conflicting commands on one ticket, sent at once by many writers (issue 19 part 3): edit vs
//! delete of one message, close vs post, claim vs claim, reopen vs close. Each round lines the
//! requests up behind a barrier, then checks the answers against the ticket's own history (the
//! ADMIN events endpoint) and the read API: every outcome must be one that some serial order of
//! the commands gives (an acknowledged post lies before the close, a refused one comes after it;
//! one claimer wins; closes and reopens alternate), and no acknowledged command is missing.
//! On MongoDB the requests are spread over two instances on one database. `ticketd verify` runs
//! at the end of each test. Bounded: a few rounds of a few writers each.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Barrier;

/// The servers a race uses: one on the embedded store, two on one database on MongoDB.
struct Servers {
    all: Vec<TestServer>,
}

impl Servers {
    async fn start(store: &Backend) -> Self {
        let first = store.start().await;
        let mut all = vec![first];
        if let Some(mongo) = store.current_mongo() {
            all.push(TestServer::start_mongo(&mongo, &[]).await);
        }
        Servers { all }
    }

    /// The instance the `i`th writer talks to.
    fn api(&self, i: usize) -> Api {
        Api::clone(&self.all[i % self.all.len()])
    }

    async fn finish(self, store: &Backend) {
        // Read-only, beside the running servers: hash chains and read models equal a rebuild.
        ticketd_cli(
            self.all[0].data_dir(),
            store.current_mongo().as_ref(),
            &["verify"],
            true,
        );
        for server in self.all {
            server.stop().await;
        }
    }
}

/// What one racer sends.
#[derive(Clone, Debug)]
enum Cmd {
    Edit(String),
    Delete,
    Post(String),
    Close,
    Reopen,
    Claim,
}

/// Sends every command at once (behind a barrier), each from its own task, as `(who, cmd)` on
/// instance `i % n`; answers in the order given.
async fn race(
    servers: &Servers,
    ticket: &str,
    message: Option<&str>,
    racers: Vec<(String, Cmd)>,
) -> Vec<(Cmd, StatusCode, Value)> {
    let barrier = Arc::new(Barrier::new(racers.len()));
    let mut tasks = Vec::new();
    for (i, (token, cmd)) in racers.into_iter().enumerate() {
        let api = servers.api(i);
        let barrier = barrier.clone();
        let ticket = ticket.to_string();
        let message = message.unwrap_or_default().to_string();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let messages = format!("/api/v1/tickets/{ticket}/messages");
            let (status, _, body) = match &cmd {
                Cmd::Edit(content) => {
                    api.patch_json(
                        &format!("{messages}/{message}"),
                        &token,
                        json!({ "content": content }),
                    )
                    .await
                }
                Cmd::Delete => api.delete(&format!("{messages}/{message}"), &token).await,
                Cmd::Post(content) => {
                    api.post_json(&messages, &token, json!({ "content": content }))
                        .await
                }
                Cmd::Close => {
                    api.post_empty(&format!("/api/v1/tickets/{ticket}/close"), &token)
                        .await
                }
                Cmd::Reopen => {
                    api.post_empty(&format!("/api/v1/tickets/{ticket}/reopen"), &token)
                        .await
                }
                Cmd::Claim => {
                    api.post_empty(&format!("/api/v1/tickets/{ticket}/claim"), &token)
                        .await
                }
            };
            (cmd, status, body)
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("a racer panicked"));
    }
    // Which way each race went, for `--nocapture` readers.
    let outcome: Vec<String> = out
        .iter()
        .map(|(c, s, _)| format!("{c:?}={}", s.as_u16()))
        .collect();
    eprintln!("race on {ticket}: {}", outcome.join(" "));
    out
}

/// The ticket's events after `after_version`, as `(type, data)`.
async fn history(api: &Api, ticket: &str, after_version: u64) -> Vec<(String, Value)> {
    let admin = mint("race-admin", "ADMIN");
    let (events, _) = api
        .walk(
            &format!("/api/v1/tickets/{ticket}/events?limit=1000"),
            &admin,
        )
        .await;
    let mut version = 0;
    let mut out = Vec::new();
    for e in events {
        version += 1;
        assert_eq!(e["version"], json!(version), "versions have no gap: {e}");
        if version > after_version {
            out.push((
                e["type"].as_str().unwrap_or_default().to_string(),
                e["data"].clone(),
            ));
        }
    }
    out
}

fn version_of(events: &[(String, Value)]) -> u64 {
    events.len() as u64
}

const ROUNDS: usize = 3;

/// Four editors and two deleters on one message: one deletion wins (the other finds nothing),
/// every acknowledged edit is in the history before the deletion with its text, every refused
/// edit is not there at all, and the message is gone.
async fn edit_races_delete(store: &Backend) {
    let servers = Servers::start(store).await;
    let api = servers.api(0);
    let ann = mint("ann", "CUSTOMER");
    let agent = mint("ada", "AGENT");
    for round in 0..ROUNDS {
        let ticket = api.create_ticket(&ann, "Race", "edit vs delete").await;
        let ticket = ticket["id"].as_str().unwrap().to_string();
        let message = api.post_message(&ann, &ticket, "original").await;
        let message = message["id"].as_str().unwrap().to_string();
        let before = version_of(&history(&api, &ticket, 0).await);
        let mut racers = Vec::new();
        for i in 0..6 {
            let who = if i % 2 == 0 {
                ann.clone()
            } else {
                agent.clone()
            };
            let cmd = if i == 2 || i == 5 {
                Cmd::Delete
            } else {
                Cmd::Edit(format!("edit {round}.{i}"))
            };
            racers.push((who, cmd));
        }
        let answers = race(&servers, &ticket, Some(&message), racers).await;
        let events = history(&api, &ticket, before).await;
        let deletes: Vec<_> = answers
            .iter()
            .filter(|(c, _, _)| matches!(c, Cmd::Delete))
            .map(|(_, s, _)| *s)
            .collect();
        assert_eq!(
            deletes
                .iter()
                .filter(|s| **s == StatusCode::NO_CONTENT)
                .count(),
            1,
            "one deletion wins: {deletes:?}"
        );
        assert!(
            deletes
                .iter()
                .all(|s| *s == StatusCode::NO_CONTENT || *s == StatusCode::NOT_FOUND),
            "{deletes:?}"
        );
        let kinds: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            kinds.last(),
            Some(&"MessageDeleted"),
            "the deletion is last: {kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "MessageDeleted").count(),
            1,
            "{kinds:?}"
        );
        let edited: Vec<String> = events
            .iter()
            .filter(|(t, _)| t == "MessageEdited")
            .map(|(_, d)| d["content"].as_str().unwrap_or_default().to_string())
            .collect();
        let mut acknowledged = Vec::new();
        for (cmd, status, body) in &answers {
            if let Cmd::Edit(content) = cmd {
                match *status {
                    StatusCode::OK => {
                        assert_eq!(body["content"], json!(content));
                        acknowledged.push(content.clone());
                    }
                    StatusCode::NOT_FOUND => assert!(
                        !edited.contains(content),
                        "a refused edit is not in the history: {content}"
                    ),
                    other => panic!("edit answered {other}: {body}"),
                }
            }
        }
        let mut in_history = edited.clone();
        in_history.sort();
        acknowledged.sort();
        assert_eq!(
            in_history, acknowledged,
            "exactly the acknowledged edits are in the history"
        );
        let (_, _, list) = api
            .get(&format!("/api/v1/tickets/{ticket}/messages"), &agent)
            .await;
        assert_eq!(list, json!([]), "the message is gone");
    }
    servers.finish(store).await;
}

/// Six posters and one closer: every post answered 200 is in the history before the close,
/// every post refused 409 is not there, and the listing has exactly the acknowledged posts.
async fn close_races_post(store: &Backend) {
    let servers = Servers::start(store).await;
    let api = servers.api(0);
    let ann = mint("ann", "CUSTOMER");
    let agent = mint("ada", "AGENT");
    for round in 0..ROUNDS {
        let ticket = api.create_ticket(&ann, "Race", "close vs post").await;
        let ticket = ticket["id"].as_str().unwrap().to_string();
        let mut racers = Vec::new();
        for i in 0..7 {
            let who = if i % 2 == 0 {
                ann.clone()
            } else {
                agent.clone()
            };
            let cmd = if i == 3 {
                Cmd::Close
            } else {
                Cmd::Post(format!("post {round}.{i}"))
            };
            racers.push((who, cmd));
        }
        let answers = race(&servers, &ticket, None, racers).await;
        let events = history(&api, &ticket, 1).await;
        let kinds: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(kinds.last(), Some(&"TicketClosed"), "{kinds:?}");
        assert_eq!(
            kinds.len() - 1,
            kinds.iter().filter(|k| **k == "MessagePosted").count()
        );
        let posted: Vec<String> = events
            .iter()
            .filter(|(t, _)| t == "MessagePosted")
            .map(|(_, d)| d["message_id"].as_str().unwrap_or_default().to_string())
            .collect();
        let mut acknowledged = Vec::new();
        for (cmd, status, body) in &answers {
            match (cmd, *status) {
                (Cmd::Close, s) => assert_eq!(s, StatusCode::OK, "{body}"),
                (Cmd::Post(content), StatusCode::OK) => {
                    assert_eq!(body["content"], json!(content));
                    acknowledged.push(body["id"].as_str().unwrap().to_string());
                }
                (Cmd::Post(_), StatusCode::CONFLICT) => assert_eq!(body["error"], "CONFLICT"),
                (_, other) => panic!("answered {other}: {body}"),
            }
        }
        let mut sorted = posted.clone();
        sorted.sort();
        acknowledged.sort();
        assert_eq!(
            sorted, acknowledged,
            "the acknowledged posts and only they precede the close"
        );
        let (_, _, list) = api
            .get(&format!("/api/v1/tickets/{ticket}/messages"), &agent)
            .await;
        assert_eq!(body_ids(&list), posted, "the listing, in history order");
    }
    servers.finish(store).await;
}

/// Five agents claim one ticket at once: one wins, the others are told who holds it, and the
/// history has one assignment, to the winner.
async fn claim_races_claim(store: &Backend) {
    let servers = Servers::start(store).await;
    let api = servers.api(0);
    let ann = mint("ann", "CUSTOMER");
    for round in 0..ROUNDS {
        let ticket = api.create_ticket(&ann, "Race", "claim vs claim").await;
        let ticket = ticket["id"].as_str().unwrap().to_string();
        let racers = (0..5)
            .map(|i| (mint(&format!("agent{round}-{i}"), "AGENT"), Cmd::Claim))
            .collect();
        let answers = race(&servers, &ticket, None, racers).await;
        let winners: Vec<String> = answers
            .iter()
            .filter(|(_, s, _)| *s == StatusCode::OK)
            .map(|(_, _, b)| b["assignee_id"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(winners.len(), 1, "one claim wins: {answers:?}");
        for (_, status, body) in &answers {
            assert!(
                *status == StatusCode::OK || *status == StatusCode::CONFLICT,
                "{status} {body}"
            );
        }
        let events = history(&api, &ticket, 1).await;
        assert_eq!(events.len(), 1, "one assignment: {events:?}");
        assert_eq!(events[0].0, "AssigneeChanged");
        assert_eq!(events[0].1["to"], json!(winners[0]));
        let (_, _, now) = api.get(&format!("/api/v1/tickets/{ticket}"), &ann).await;
        assert_eq!(now["assignee_id"], json!(winners[0]));
    }
    servers.finish(store).await;
}

/// Three closers and three reopeners at once: in the history closes and reopens alternate,
/// starting from open; their counts are the acknowledged ones; a refused close needs a moment
/// the ticket was closed; the ticket ends in the state of the last event.
async fn reopen_races_close(store: &Backend) {
    let servers = Servers::start(store).await;
    let api = servers.api(0);
    let ann = mint("ann", "CUSTOMER");
    let agent = mint("ada", "AGENT");
    for _ in 0..ROUNDS {
        let ticket = api.create_ticket(&ann, "Race", "reopen vs close").await;
        let ticket = ticket["id"].as_str().unwrap().to_string();
        let racers = (0..6)
            .map(|i| {
                let cmd = if i % 2 == 0 { Cmd::Close } else { Cmd::Reopen };
                (agent.clone(), cmd)
            })
            .collect();
        let answers = race(&servers, &ticket, None, racers).await;
        let events = history(&api, &ticket, 1).await;
        let mut open = true;
        for (kind, _) in &events {
            match kind.as_str() {
                "TicketClosed" => assert!(open, "closed twice in a row: {events:?}"),
                "TicketReopened" => assert!(!open, "reopened while open: {events:?}"),
                other => panic!("unexpected {other}"),
            }
            open = !open;
        }
        let count = |want: fn(&Cmd) -> bool, status: StatusCode| {
            answers
                .iter()
                .filter(|(c, s, _)| want(c) && *s == status)
                .count()
        };
        let is_close = |c: &Cmd| matches!(c, Cmd::Close);
        let is_reopen = |c: &Cmd| matches!(c, Cmd::Reopen);
        let closes = events.iter().filter(|(k, _)| k == "TicketClosed").count();
        let reopens = events.len() - closes;
        assert_eq!(count(is_close, StatusCode::OK), closes, "{answers:?}");
        assert_eq!(count(is_reopen, StatusCode::OK), reopens, "{answers:?}");
        assert_eq!(
            count(is_close, StatusCode::CONFLICT) + closes,
            3,
            "every close answered 200 or 409"
        );
        assert_eq!(count(is_reopen, StatusCode::CONFLICT) + reopens, 3);
        if count(is_close, StatusCode::CONFLICT) > 0 {
            assert!(closes > 0, "a close was refused though nobody closed");
        }
        let (_, _, now) = api.get(&format!("/api/v1/tickets/{ticket}"), &ann).await;
        assert_eq!(now["status"], json!(if open { "OPEN" } else { "CLOSED" }));
    }
    servers.finish(store).await;
}

on_both_stores!(
    edit_races_delete,
    close_races_post,
    claim_races_claim,
    reopen_races_close
);
