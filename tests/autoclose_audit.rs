//! The auto-close countdown as a read model on both stores: `ticketd verify` checks it against a
//! rebuild from the events and `ticketd replay` rebuilds it (with its index); a SQLite file from
//! before it existed (schema 5) gets the countdowns its history implies when it is opened.

mod common;

use bson::{Document, doc};
use common::{TestMongo, TestServer, binary_command};
use rusqlite::Connection;
use std::path::Path;
use ticketd::audit::verify::{Damage, check, verify};
use ticketd::store::mongo::audit::MongoAudit;
use ticketd::store::{EmbeddedOptions, EmbeddedStore, MongoStore, ReadModels};

fn db(dir: &Path) -> Connection {
    Connection::open(dir.join("ticketd.db")).unwrap()
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

/// Two tickets staff answered; the customer answered one of them back. Returns the data
/// directory and the waiting ticket's id.
async fn history() -> (tempfile::TempDir, String, String) {
    history_on(TestServer::start().await).await
}

async fn history_on(server: TestServer) -> (tempfile::TempDir, String, String) {
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let waiting = server.create_ticket(&ann, "Printer", "Broken").await;
    let waiting = waiting["id"].as_str().unwrap().to_string();
    let answered = server.create_ticket(&ann, "Scanner", "Broken").await;
    let answered = answered["id"].as_str().unwrap().to_string();
    server.post_message(&ada, &waiting, "Try this").await;
    server.post_message(&ada, &answered, "Try that").await;
    server.post_message(&ann, &answered, "Did not help").await;
    (server.stop().await, waiting, answered)
}

/// The countdowns of `ids` as `(message_id, since)`, read through the store.
async fn countdowns(dir: &Path, ids: &[&str]) -> Vec<Option<(String, i64)>> {
    let store = EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap();
    let mut out = Vec::new();
    for id in ids {
        let ticket = store.get_ticket(id).await.unwrap().unwrap();
        out.push(ticket.countdown.map(|c| (c.message_id, c.since)));
    }
    store.shutdown().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_and_replay_rebuilds_the_countdowns() {
    let (dir, waiting, answered) = history().await;
    let live = countdowns(dir.path(), &[&waiting, &answered]).await;
    assert!(live[0].is_some(), "the answered-by-staff ticket waits");
    assert_eq!(live[1], None, "the customer answered the other");
    verify(dir.path()).unwrap().expect("a clean store verifies");

    // A lost countdown is a read model that differs from the events.
    db(dir.path())
        .execute(
            "UPDATE tickets SET countdown_message = NULL, countdown_since = NULL WHERE id = ?1",
            [&waiting],
        )
        .unwrap();
    assert_eq!(
        verify(dir.path()).unwrap().unwrap_err().damage,
        Damage::ReadModel
    );
    let (code, out, err) = run_cli(dir.path(), &["replay"]);
    assert_eq!(code, 0, "{out}{err}");
    verify(dir.path())
        .unwrap()
        .expect("the rebuilt countdowns verify");
    assert_eq!(countdowns(dir.path(), &[&waiting, &answered]).await, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_before_countdowns_gets_them_on_open() {
    let (dir, waiting, answered) = history().await;
    let live = countdowns(dir.path(), &[&waiting, &answered]).await;
    // What a schema-5 file looks like: no countdown columns, no index.
    db(dir.path())
        .execute_batch(
            "DROP INDEX tickets_by_countdown;
             ALTER TABLE tickets DROP COLUMN countdown_message;
             ALTER TABLE tickets DROP COLUMN countdown_since;
             ALTER TABLE tickets DROP COLUMN countdown_warned_at;
             DROP TABLE saved_replies;
             DROP TABLE blocks;
             DROP TABLE report_tickets;
             DROP TABLE report_facts;
             DROP TABLE report_counts;
             DROP TABLE search_tickets;
             DROP TABLE search_messages;
             DROP TABLE search_pending;
             DROP INDEX tickets_by_sla_next_due;
             DROP INDEX tickets_by_sla_sweep;
             DROP INDEX tickets_by_sla_breached;
             DROP TABLE sla_policy;
             ALTER TABLE tickets DROP COLUMN feedback;
             ALTER TABLE tickets DROP COLUMN first_response_at;
             ALTER TABLE tickets DROP COLUMN sla_from;
             ALTER TABLE tickets DROP COLUMN resolved_at;
             ALTER TABLE tickets DROP COLUMN sla_fr_breached;
             ALTER TABLE tickets DROP COLUMN sla_res_breached;
             ALTER TABLE tickets DROP COLUMN sla_next_due;
             ALTER TABLE tickets DROP COLUMN sla_sweep_at;
             ALTER TABLE tickets DROP COLUMN sla_breached;
             PRAGMA user_version = 5;",
        )
        .unwrap();
    assert_eq!(countdowns(dir.path(), &[&waiting, &answered]).await, live);
    verify(dir.path())
        .unwrap()
        .expect("the migrated file verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mongodb_verify_checks_and_replay_rebuilds_the_countdowns() {
    let Some(mongo) = TestMongo::new("autoclose_audit") else {
        return;
    };
    let (_dir, waiting, answered) = history_on(TestServer::start_mongo(&mongo, &[]).await).await;
    let read = || async {
        let store = MongoStore::connect(&mongo.uri, &mongo.db).await.unwrap();
        let mut out = Vec::new();
        for id in [&waiting, &answered] {
            let ticket = store.get_ticket(id).await.unwrap().unwrap();
            out.push(ticket.countdown.map(|c| (c.message_id, c.since)));
        }
        store.shutdown().await;
        out
    };
    let verify = || async {
        let mut audit = MongoAudit::open(&mongo.uri, &mongo.db).await.unwrap();
        check(&mut audit).await.unwrap()
    };
    let live = read().await;
    assert!(live[0].is_some() && live[1].is_none(), "{live:?}");
    verify().await.expect("a clean database verifies");

    let db = mongodb::Client::with_uri_str(&mongo.uri)
        .await
        .unwrap()
        .database(&mongo.db);
    db.collection::<Document>("tickets")
        .update_one(doc! {"_id": &waiting}, doc! {"$unset": {"countdown": ""}})
        .await
        .unwrap();
    assert_eq!(verify().await.unwrap_err().damage, Damage::ReadModel);

    let cwd = tempfile::tempdir().unwrap();
    let out = binary_command(cwd.path(), cwd.path())
        .env("MONGO_URI", &mongo.uri)
        .env("DB_NAME", &mongo.db)
        .arg("replay")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verify().await.expect("the rebuilt countdowns verify");
    assert_eq!(read().await, live);
    let indexes = db
        .collection::<Document>("tickets")
        .list_index_names()
        .await
        .unwrap();
    assert!(indexes.iter().any(|i| i == "by_countdown"), "{indexes:?}");
    mongo.drop_database().await;
}
