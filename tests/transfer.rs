//! `ticketd export` and `ticketd import` on the embedded store: what a move carries beside the
//! events (links and checkpoints), and which files import refuses before writing anything. The
//! move between the embedded store and MongoDB is in `api_mongo.rs`.

mod common;

use common::*;
use reqwest::StatusCode;
use ticketd::store::{Checkpoints, EmbeddedOptions, EmbeddedStore};

/// Runs `ticketd import --input file` into a fresh data directory, which it hands back with
/// what the command said; panics unless it exits as `succeed` says.
fn import_fresh(file: &std::path::Path, succeed: bool) -> (tempfile::TempDir, String) {
    let target = tempfile::tempdir().unwrap();
    let said = ticketd_cli(
        target.path(),
        None,
        &["import", "--input", file.to_str().unwrap()],
        succeed,
    );
    (target, said)
}

/// The ids of the tickets `token` lists.
async fn listed_ids(server: &TestServer, token: &str) -> Vec<String> {
    let (status, _, body) = server.get("/api/v1/tickets", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_store_keeps_its_ticket_keys_and_checkpoints() {
    let server = TestServer::start().await;
    let ann = server.token("ann", "CUSTOMER");
    let (status, _, first) = server.create_ticket_keyed(&ann, "open-1", "Moved").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    server.post_message(&ann, &id, "hello").await;
    let source = server.stop().await;
    // The Discord bridge's checkpoint, as it leaves one after handling both events.
    let store = EmbeddedStore::open(source.path(), EmbeddedOptions::default()).unwrap();
    store
        .save_checkpoint(ticketd::discord::CHECKPOINT, 2)
        .await
        .unwrap();
    store.shutdown().await;
    drop(store);

    let files = tempfile::tempdir().unwrap();
    let export = files.path().join("events.jsonl");
    let export_arg = export.to_str().unwrap();
    let said = ticketd_cli(
        source.path(),
        None,
        &["export", "--output", export_arg],
        true,
    );
    assert!(said.contains("2 events written"), "{said}");
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "two events, ann's name, one key, one checkpoint:\n{text}"
    );
    assert!(lines[2].starts_with(r#"{"link":{"kind":"person-name""#));
    assert!(lines[3].starts_with(r#"{"link":{"kind":"ticket-idempotency-key""#));
    assert!(!lines[3].contains("open-1"), "the raw key is not exported");
    assert_eq!(
        lines[4],
        r#"{"checkpoint":{"name":"discord","position":2}}"#
    );

    let (target, _) = import_fresh(&export, true);
    let store = EmbeddedStore::open(target.path(), EmbeddedOptions::default()).unwrap();
    assert_eq!(
        store
            .load_checkpoint(ticketd::discord::CHECKPOINT)
            .await
            .unwrap(),
        2,
        "the bridge carries on where it was, posting nothing twice"
    );
    store.shutdown().await;
    drop(store);

    let moved = TestServer::start_in(target, &[]).await;
    let (status, _, retried) = moved.create_ticket_keyed(&ann, "open-1", "Moved").await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(
        retried["id"], first["id"],
        "the retry answers the moved ticket"
    );
    assert_eq!(listed_ids(&moved, &ann).await, [id]);
    moved.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_refuses_bookkeeping_that_does_not_fit_its_events() {
    let server = TestServer::start().await;
    let ann = server.token("ann", "CUSTOMER");
    let (status, _, _) = server.create_ticket_keyed(&ann, "open-1", "One").await;
    assert_eq!(status, StatusCode::OK);
    let source = server.stop().await;
    let files = tempfile::tempdir().unwrap();
    let export = files.path().join("events.jsonl");
    ticketd_cli(
        source.path(),
        None,
        &["export", "--output", export.to_str().unwrap()],
        true,
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (event, link) = (lines[0], lines[1]);
    let checkpoint =
        |position: u64| format!(r#"{{"checkpoint":{{"name":"discord","position":{position}}}}}"#);
    let cases = [
        (vec![event.to_owned(), checkpoint(2)], "past the last event"),
        (
            vec![event.to_owned(), checkpoint(1), checkpoint(1)],
            "appears twice",
        ),
        (
            vec![event.to_owned(), link.to_owned(), link.to_owned()],
            "appears twice",
        ),
        (vec![link.to_owned(), event.to_owned()], "events come first"),
        (
            vec![event.to_owned(), r#"{"link":{"kind":"k"}}"#.to_owned()],
            "not an event envelope",
        ),
    ];
    for (i, (file_lines, why)) in cases.into_iter().enumerate() {
        let bad = files.path().join(format!("bad-{i}.jsonl"));
        std::fs::write(&bad, file_lines.join("\n") + "\n").unwrap();
        let (target, said) = import_fresh(&bad, false);
        assert!(said.contains(why), "case {i}: expected {why:?} in {said}");
        assert!(
            !target.path().join("ticketd.db").exists(),
            "case {i}: nothing is written"
        );
    }
    // The file as exported loads, so each refusal above came from its one change.
    import_fresh(&export, true);
    // So does a file of events only, as earlier versions wrote them.
    let events_only = files.path().join("events-only.jsonl");
    std::fs::write(&events_only, format!("{event}\n")).unwrap();
    let (_, said) = import_fresh(&events_only, true);
    assert!(said.contains("1 events loaded"), "{said}");
}
