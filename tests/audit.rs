//! Auditing, end to end: a ticket's events over the API (admins only), the ticket and its
//! messages `as_of` an instant across edits, deletions and closes, `ticketd verify` passing on a
//! clean store and naming the first damaged event after rows are edited, deleted, reordered or
//! inserted in the SQLite file or the tag index, and `ticketd replay` rebuilding read models
//! (the tag index included) equal to the live ones.

#[path = "common/audit_history.rs"]
mod audit_history;
mod common;

use audit_history::{
    EVENTS, assert_timeline, everything, helpdesk_state, make_helpdesk_history, make_history,
};
use common::{TestServer, assert_error, assert_field_error, binary_command, keys};
use reqwest::StatusCode;
use rusqlite::Connection;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use ticketd::audit::verify::{Damage, verify};
use ticketd::store::{EmbeddedOptions, EmbeddedStore};
use ticketd_events::{EventEnvelope, EventStore, chain};

/// Lets the clock move on, so that consecutive requests get distinct `recorded_at` values and an
/// instant can fall between them.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// The admin's view of a ticket's events.
async fn events(server: &TestServer, ticket_id: &str) -> Vec<Value> {
    let admin = server.token("root", "ADMIN");
    let (status, _, body) = server
        .get(&format!("/api/v1/tickets/{ticket_id}/events"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().expect("an array of events").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_for_admins_and_carry_full_chained_envelopes() {
    let server = TestServer::start().await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("agent", "AGENT");
    let ticket = server.create_ticket(&ann, "Printer", "It is on fire").await;
    let id = ticket["id"].as_str().unwrap();
    server.post_message(&ann, id, "hello").await;
    let (status, _, _) = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &agent,
            json!({"content": "note", "internal": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let list = events(&server, id).await;
    assert_eq!(list.len(), 3);
    assert_eq!(
        keys(&list[0]),
        [
            "event_id",
            "stream_id",
            "version",
            "position",
            "recorded_at",
            "actor",
            "correlation_id",
            "causation_id",
            "schema_version",
            "type",
            "data",
            "prev_hash",
            "hash",
            "global_hash"
        ]
    );
    assert_eq!(keys(&list[0]["actor"]), ["id", "name", "role", "via"]);
    assert_eq!(list[0]["actor"]["via"], "web");
    let types: Vec<_> = list.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["TicketOpened", "MessagePosted", "MessagePosted"]);
    let mut previous = String::new();
    for (i, value) in list.iter().enumerate() {
        let envelope: EventEnvelope = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(envelope.version, i as u64 + 1);
        assert_eq!(envelope.prev_hash, previous, "version {} chains", i + 1);
        assert_eq!(envelope.hash.len(), 64);
        assert_eq!(chain::envelope_hash(&envelope), envelope.hash);
        previous = envelope.hash;
    }

    for (who, role) in [
        ("ann", "CUSTOMER"),
        ("agent", "AGENT"),
        ("tmp", "TEMP_USER"),
    ] {
        let reply = server
            .get(
                &format!("/api/v1/tickets/{id}/events"),
                &server.token(who, role),
            )
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    let admin = server.token("root", "ADMIN");
    let unknown = uuid::Uuid::now_v7();
    for path in [
        format!("/api/v1/tickets/{unknown}/events"),
        "/api/v1/tickets/not-an-id/events".to_string(),
    ] {
        let reply = server.get(&path, &admin).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_shows_the_ticket_and_messages_as_they_were() {
    let server = TestServer::start().await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("agent", "AGENT");
    let bob = server.token("bob", "CUSTOMER");
    let ticket = server.create_ticket(&ann, "Printer", "It is on fire").await;
    let id = ticket["id"].as_str().unwrap().to_string();
    let messages = format!("/api/v1/tickets/{id}/messages");
    let show = format!("/api/v1/tickets/{id}");
    tick().await;
    let first = server.post_message(&ann, &id, "first").await;
    tick().await;
    let second = server.post_message(&ann, &id, "second").await;
    tick().await;
    let (status, _, _) = server
        .post_json(
            &messages,
            &agent,
            json!({"content": "staff only", "internal": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tick().await;
    let m1 = first["id"].as_str().unwrap();
    let m2 = second["id"].as_str().unwrap();
    let (status, _, _) = server
        .patch_json(
            &format!("{messages}/{m1}"),
            &ann,
            json!({"content": "first, edited"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tick().await;
    let (status, _, _) = server.delete(&format!("{messages}/{m2}"), &ann).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    tick().await;
    let (status, _, _) = server.post_empty(&format!("{show}/close"), &ann).await;
    assert_eq!(status, StatusCode::OK);

    let history = events(&server, &id).await;
    let at = |version: usize| history[version - 1]["recorded_at"].as_i64().unwrap();
    let contents = |body: &Value| -> Vec<String> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect()
    };

    // Before the ticket existed.
    let reply = server
        .get(&format!("{show}?as_of={}", at(1) - 1), &ann)
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    let reply = server
        .get(&format!("{messages}?as_of={}", at(1) - 1), &ann)
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");

    // Once both messages and the note were posted: the original texts, the note for staff only.
    let then = at(4);
    let (status, _, body) = server.get(&format!("{messages}?as_of={then}"), &ann).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(contents(&body), ["first", "second"]);
    assert_eq!(body[0]["updated_at"], body[0]["created_at"]);
    let (_, _, body) = server
        .get(&format!("{messages}?as_of={then}"), &agent)
        .await;
    assert_eq!(contents(&body), ["first", "second", "staff only"]);
    assert_eq!(body[2]["internal"], true);
    let (status, _, body) = server.get(&format!("{show}?as_of={then}"), &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "OPEN");

    // After the edit, before the deletion.
    let (_, _, body) = server
        .get(&format!("{messages}?as_of={}", at(5)), &ann)
        .await;
    assert_eq!(contents(&body), ["first, edited", "second"]);
    // After the deletion, before the close.
    let (_, _, body) = server
        .get(&format!("{messages}?as_of={}", at(6)), &ann)
        .await;
    assert_eq!(contents(&body), ["first, edited"]);
    let (_, _, body) = server.get(&format!("{show}?as_of={}", at(6)), &ann).await;
    assert_eq!(body["status"], "OPEN");

    // Now: exactly the live answers.
    let now = at(7) + 60_000;
    for token in [&ann, &agent] {
        let (_, _, live) = server.get(&show, token).await;
        assert_eq!(live["status"], "CLOSED");
        let (_, _, past) = server.get(&format!("{show}?as_of={now}"), token).await;
        assert_eq!(past, live);
        let (_, _, live) = server.get(&messages, token).await;
        let (_, _, past) = server.get(&format!("{messages}?as_of={now}"), token).await;
        assert_eq!(past, live);
    }

    // Paging at an instant follows the same cursor, keeping `as_of` in the next link.
    let (items, pages) = server
        .walk(&format!("{messages}?as_of={then}&limit=1"), &agent)
        .await;
    assert_eq!(pages, 3);
    assert_eq!(
        items
            .iter()
            .map(|m| m["content"].clone())
            .collect::<Vec<_>>(),
        ["first", "second", "staff only"]
    );

    // The same access rules as the live routes.
    let reply = server.get(&format!("{show}?as_of={then}"), &bob).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = server.get(&format!("{messages}?as_of={then}"), &bob).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");

    for bad in ["yesterday", "-5", "1.5"] {
        let reply = server.get(&format!("{show}?as_of={bad}"), &ann).await;
        assert_field_error(&reply, "query.as_of", "invalid_query");
        let reply = server.get(&format!("{messages}?as_of={bad}"), &ann).await;
        assert_field_error(&reply, "query.as_of", "invalid_query");
    }
}

/// Builds a store with some history through the API (see [`audit_history`]). Returns the
/// stopped server's data directory.
async fn some_history() -> tempfile::TempDir {
    let server = TestServer::start().await;
    make_history(&server).await;
    server.stop().await
}

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("ticketd.db")).unwrap()
}

/// A copy of the data directory (the database and its WAL), to damage.
fn copy_of(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("ticketd.db")
        {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
    }
    copy
}

fn run_cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let cwd = tempfile::tempdir().unwrap();
    let out = binary_command(dir, cwd.path()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A position holding a `MessagePosted` that is neither the first nor the last event.
fn a_message_position(conn: &Connection) -> (i64, String) {
    conn.query_row(
        "SELECT position, event_id FROM events WHERE event_type = 'MessagePosted' \
         AND data LIKE '%hello there%' ORDER BY position LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_on_a_clean_store_and_names_the_first_damaged_event() {
    let dir = some_history().await;
    let report = verify(dir.path()).unwrap().expect("a clean store verifies");
    assert_eq!((report.events, report.streams), (EVENTS, 2));
    assert_eq!((report.tickets, report.messages), (2, 8));
    let (code, out, err) = run_cli(dir.path(), &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified 16 events in 2 streams"), "{out}");
    assert!(out.contains(&report.head_global_hash), "{out}");

    // Edited in place.
    let damaged = copy_of(dir.path());
    let (position, event_id) = a_message_position(&db(damaged.path()));
    db(damaged.path())
        .execute(
            "UPDATE events SET data = replace(data, 'hello there', 'goodbye') WHERE position = ?1",
            [position],
        )
        .unwrap();
    let finding = verify(damaged.path()).unwrap().unwrap_err();
    assert_eq!(finding.damage, Damage::Altered, "{finding}");
    assert_eq!(
        (finding.position, finding.event_id.as_deref()),
        (position as u64, Some(event_id.as_str()))
    );
    let (code, _, err) = run_cli(damaged.path(), &["verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "altered at position {position} (event {event_id})"
        )),
        "{err}"
    );

    // Deleted.
    let damaged = copy_of(dir.path());
    let conn = db(damaged.path());
    let next: String = conn
        .query_row(
            "SELECT event_id FROM events WHERE position = ?1",
            [position + 1],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute("DELETE FROM events WHERE position = ?1", [position])
        .unwrap();
    drop(conn);
    let finding = verify(damaged.path()).unwrap().unwrap_err();
    assert_eq!(finding.damage, Damage::Missing, "{finding}");
    assert_eq!(
        (finding.position, finding.event_id.as_deref()),
        (position as u64, Some(next.as_str()))
    );

    // The last event of a stream deleted: only the streams table remembers it.
    let damaged = copy_of(dir.path());
    let conn = db(damaged.path());
    let head: i64 = conn
        .query_row("SELECT MAX(position) FROM events", [], |r| r.get(0))
        .unwrap();
    conn.execute("DELETE FROM events WHERE position = ?1", [head])
        .unwrap();
    drop(conn);
    let finding = verify(damaged.path()).unwrap().unwrap_err();
    assert_eq!(finding.damage, Damage::Missing, "{finding}");
    assert_eq!(finding.position, head as u64);

    // Two events swapped.
    let damaged = copy_of(dir.path());
    let conn = db(damaged.path());
    let moved: String = conn
        .query_row(
            "SELECT event_id FROM events WHERE position = ?1",
            [position + 1],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute_batch(&format!(
        "UPDATE events SET position = -1 WHERE position = {position};
         UPDATE events SET position = {position} WHERE position = {};
         UPDATE events SET position = {} WHERE position = -1;",
        position + 1,
        position + 1
    ))
    .unwrap();
    drop(conn);
    let finding = verify(damaged.path()).unwrap().unwrap_err();
    assert_eq!(finding.damage, Damage::Reordered, "{finding}");
    assert_eq!(
        (finding.position, finding.event_id.as_deref()),
        (position as u64, Some(moved.as_str()))
    );
    let (code, _, err) = run_cli(damaged.path(), &["verify"]);
    assert_eq!(code, 1);
    assert!(err.contains("reordered at position"), "{err}");

    // A forged event appended to a stream, hashes copied from a real one.
    let damaged = copy_of(dir.path());
    db(damaged.path())
        .execute(
            "INSERT INTO events (position, event_id, stream_id, version, recorded_at, event_type, \
             schema_version, actor, correlation_id, causation_id, data, prev_hash, hash, \
             global_hash) \
             SELECT (SELECT MAX(position) FROM events) + 1, 'forged', stream_id, \
             (SELECT MAX(version) FROM events e WHERE e.stream_id = events.stream_id) + 1, \
             recorded_at, event_type, schema_version, actor, correlation_id, causation_id, data, \
             prev_hash, hash, global_hash FROM events WHERE position = ?1",
            [position],
        )
        .unwrap();
    let finding = verify(damaged.path()).unwrap().unwrap_err();
    assert_eq!(finding.damage, Damage::Inserted, "{finding}");
    assert_eq!(finding.position, 17);
    assert_eq!(finding.event_id.as_deref(), Some("forged"));

    // The events intact, a read model changed behind the projection's back.
    let damaged = copy_of(dir.path());
    db(damaged.path())
        .execute(
            "UPDATE messages SET content = 'rewritten' WHERE content = 'it broke'",
            [],
        )
        .unwrap();
    let finding = verify(damaged.path()).unwrap().unwrap_err();
    assert_eq!(finding.damage, Damage::ReadModel, "{finding}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_read_models_equal_to_the_live_ones() {
    let dir = some_history().await;
    let server = TestServer::start_in(dir, &[]).await;
    let before = everything(&server).await;
    assert_eq!(before.as_array().unwrap().len(), 2);

    // A running server holds the directory: replay is refused, and changes nothing.
    let (code, _, err) = run_cli(server.data_dir(), &["replay"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("in use"), "{err}");
    let dir = server.stop().await;

    // Damage the read models, then rebuild them from the events.
    db(dir.path())
        .execute_batch(
            "DELETE FROM tickets WHERE topic = 'Scanner';
             UPDATE messages SET content = 'rewritten';",
        )
        .unwrap();
    assert_eq!(
        verify(dir.path()).unwrap().unwrap_err().damage,
        Damage::ReadModel
    );
    let (code, out, err) = run_cli(dir.path(), &["replay"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("replayed 16 events into 2 tickets and 8 messages in "),
        "{out}"
    );
    assert!(out.contains("events/s)"), "{out}");
    verify(dir.path())
        .unwrap()
        .expect("the rebuilt read models verify");

    let server = TestServer::start_in(dir, &[]).await;
    assert_eq!(everything(&server).await, before);
    // The timeline reads the same file, beside the running server.
    let ticket_id = before[0]["listed"]["id"].as_str().unwrap();
    let (code, out, err) = run_cli(server.data_dir(), &["audit", ticket_id]);
    assert_eq!(code, 0, "{err}");
    assert_timeline(&out);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_the_chains_are_sealed_on_open_to_the_same_hashes() {
    let dir = some_history().await;
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let sealed = store.read_all(0, 100).await.unwrap();
    store.shutdown().await;
    drop(store);
    // What a file from before the chains looks like: no hashes at all.
    db(dir.path())
        .execute_batch(
            "UPDATE events SET prev_hash = '', hash = '', global_hash = '';
             UPDATE streams SET hash = '';",
        )
        .unwrap();
    assert!(verify(dir.path()).unwrap().is_err());
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    assert_eq!(store.read_all(0, 100).await.unwrap(), sealed);
    store.shutdown().await;
    verify(dir.path()).unwrap().expect("sealed rows verify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_replay_cover_saved_replies_and_blocks() {
    let server = TestServer::start().await;
    make_helpdesk_history(&server).await;
    let before = helpdesk_state(&server).await;
    let dir = server.stop().await;
    let report = verify(dir.path()).unwrap().expect("a clean store verifies");
    assert_eq!((report.events, report.streams), (7, 3));

    // Damaged read models of the streams beside the tickets are found, then rebuilt.
    db(dir.path())
        .execute_batch("DELETE FROM saved_replies; UPDATE blocks SET reason = 'forged';")
        .unwrap();
    assert_eq!(
        verify(dir.path()).unwrap().unwrap_err().damage,
        Damage::ReadModel
    );
    db(dir.path())
        .execute_batch("INSERT INTO saved_replies VALUES ('forged', 'x', 1);")
        .unwrap();
    let (code, out, err) = run_cli(dir.path(), &["replay"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("replayed 7 events into 0 tickets"), "{out}");
    verify(dir.path())
        .unwrap()
        .expect("the rebuilt read models verify");
    let (code, out, err) = run_cli(dir.path(), &["verify"]);
    assert_eq!(code, 0, "{out}{err}");

    // Their history reads like a ticket's.
    let (code, out, err) = run_cli(dir.path(), &["audit", "replies"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Stream replies — 4 events"), "{out}");
    assert!(
        out.contains("saved the reply refund: \"Refund sent.\""),
        "{out}"
    );
    assert!(out.contains("deleted the reply hello"), "{out}");
    let (code, out, err) = run_cli(dir.path(), &["audit", "user:ann"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("blocked ann: \"spam\""), "{out}");

    let server = TestServer::start_in(dir, &[]).await;
    assert_eq!(helpdesk_state(&server).await, before);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_tag_index_that_disagrees_with_the_tickets_and_replay_mends_it() {
    let server = TestServer::start().await;
    let (ann, agent) = (
        server.token("ann", "CUSTOMER"),
        server.token("agent", "AGENT"),
    );
    let ticket = server.create_ticket(&ann, "Printer", "Broken").await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let (status, _, _) = server
        .patch_json(
            &format!("/api/v1/tickets/{id}"),
            &agent,
            json!({"tags": ["billing", "vip"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(tagged_vip(&server, &agent, &id).await);
    let dir = server.stop().await;
    verify(dir.path()).unwrap().expect("a clean store verifies");

    // A row of the tag index lost: the `tag` filter no longer finds the ticket.
    let damaged = copy_of(dir.path());
    db(damaged.path())
        .execute("DELETE FROM ticket_tags WHERE tag = 'vip'", [])
        .unwrap();
    let finding = verify(damaged.path()).unwrap().unwrap_err();
    assert_eq!(finding.damage, Damage::ReadModel, "{finding}");
    assert!(finding.detail.contains("\"vip\""), "{finding}");
    assert!(finding.detail.contains(&id), "{finding}");

    // A row the ticket does not hold: the filter would find it for a tag it lacks.
    let forged = copy_of(dir.path());
    db(forged.path())
        .execute(
            "INSERT INTO ticket_tags (tag, position) SELECT 'forged', position FROM tickets",
            [],
        )
        .unwrap();
    let finding = verify(forged.path()).unwrap().unwrap_err();
    assert!(finding.detail.contains("\"forged\""), "{finding}");

    let (code, out, err) = run_cli(damaged.path(), &["replay"]);
    assert_eq!(code, 0, "{out}{err}");
    verify(damaged.path())
        .unwrap()
        .expect("the rebuilt tag index verifies");
    let server = TestServer::start_in(damaged, &[]).await;
    assert!(tagged_vip(&server, &agent, &id).await);
    server.stop().await;
}

/// Whether the staff listing filtered by the tag `vip` holds the ticket `id`.
async fn tagged_vip(server: &common::Api, token: &str, id: &str) -> bool {
    let (status, _, body) = server.get("/api/v1/tickets?tag=vip", token).await;
    assert_eq!(status, StatusCode::OK);
    body.as_array().unwrap().iter().any(|t| t["id"] == id)
}
