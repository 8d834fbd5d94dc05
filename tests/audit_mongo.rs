//! Auditing in MongoDB mode, end to end: `ticketd verify` passing on a clean database and naming
//! the first damaged event after documents of the `events` collection are edited, deleted,
//! inserted or reordered directly with the driver; `ticketd replay` rebuilding read models equal
//! to the live ones (the API answers the same before and after); `ticketd audit` printing the
//! timeline beside a running server. Runs against the SecantusDB server `scripts/test` starts
//! (`TICKETD_TEST_MONGO_URI`); each test uses databases of its own and drops them.

#[path = "common/audit_history.rs"]
mod audit_history;
mod common;

use audit_history::{
    EVENTS, assert_timeline, everything, helpdesk_state, make_helpdesk_history, make_history,
};
use bson::{Document, doc};
use common::{TestMongo, TestServer, binary_command};
use mongodb::{Client, Database};
use ticketd::audit::verify::{Damage, Finding, Report, check};
use ticketd::store::mongo::audit::MongoAudit;

/// The collections a ticketd database holds that the audit reads.
const COLLECTIONS: [&str; 5] = ["events", "streams", "counters", "tickets", "messages"];

/// Verifies database `db` through the library.
async fn verify(mongo: &TestMongo, db: &str) -> Result<Report, Finding> {
    let mut audit = MongoAudit::open(&mongo.uri, db)
        .await
        .expect("open the database for auditing");
    check(&mut audit).await.expect("the database is readable")
}

/// Runs the `ticketd` binary in MongoDB mode on database `db`.
fn run_cli(mongo: &TestMongo, db: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = binary_command(dir.path(), dir.path())
        .env("MONGO_URI", &mongo.uri)
        .env("DB_NAME", db)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn client(mongo: &TestMongo) -> Client {
    Client::with_uri_str(&mongo.uri)
        .await
        .expect("connect to the MongoDB test server")
}

/// A copy of the clean database, to damage: every document of the collections the audit reads.
struct Copies {
    client: Client,
    source: String,
    made: Vec<String>,
}

impl Copies {
    async fn copy(&mut self) -> Database {
        let name = format!("{}_{}", self.source, self.made.len());
        let from = self.client.database(&self.source);
        let to = self.client.database(&name);
        for collection in COLLECTIONS {
            let mut cursor = from
                .collection::<Document>(collection)
                .find(doc! {})
                .await
                .unwrap();
            let mut documents = Vec::new();
            while cursor.advance().await.unwrap() {
                documents.push(cursor.deserialize_current().unwrap());
            }
            if !documents.is_empty() {
                to.collection::<Document>(collection)
                    .insert_many(documents)
                    .await
                    .unwrap();
            }
        }
        self.made.push(name);
        to
    }

    async fn drop_all(&self) {
        for name in &self.made {
            self.client.database(name).drop().await.unwrap();
        }
    }
}

/// The position and event id of the first `MessagePosted` of "hello there": neither the first
/// nor the last event.
async fn a_message(db: &Database) -> (i64, String) {
    let found = db
        .collection::<Document>("events")
        .find_one(doc! {"event_type": "MessagePosted", "data": {"$regex": "hello there"}})
        .sort(doc! {"_id": 1})
        .await
        .unwrap()
        .expect("the history has that message");
    (
        found.get_i64("_id").unwrap(),
        found.get_str("event_id").unwrap().to_string(),
    )
}

async fn event_at(db: &Database, position: i64) -> Document {
    db.collection::<Document>("events")
        .find_one(doc! {"_id": position})
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("an event at {position}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_on_a_clean_database_and_names_the_first_damaged_event() {
    let Some(mongo) = TestMongo::new("audit_verify") else {
        return;
    };
    let server = TestServer::start_mongo(&mongo, &[]).await;
    make_history(&server).await;
    server.stop().await;

    let report = verify(&mongo, &mongo.db)
        .await
        .expect("a clean database verifies");
    assert_eq!((report.events, report.streams), (EVENTS, 2));
    assert_eq!((report.tickets, report.messages), (2, 8));
    let (code, out, err) = run_cli(&mongo, &mongo.db, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified 16 events in 2 streams"), "{out}");
    assert!(out.contains(&report.head_global_hash), "{out}");

    let mut copies = Copies {
        client: client(&mongo).await,
        source: mongo.db.clone(),
        made: Vec::new(),
    };

    // A payload edited in place.
    let db = copies.copy().await;
    let (position, event_id) = a_message(&db).await;
    let original = event_at(&db, position).await;
    let edited = original
        .get_str("data")
        .unwrap()
        .replace("hello there", "goodbye");
    db.collection::<Document>("events")
        .update_one(doc! {"_id": position}, doc! {"$set": {"data": edited}})
        .await
        .unwrap();
    let finding = verify(&mongo, db.name()).await.unwrap_err();
    assert_eq!(finding.damage, Damage::Altered, "{finding}");
    assert_eq!(
        (finding.position, finding.event_id.as_deref()),
        (position as u64, Some(event_id.as_str()))
    );
    let (code, _, err) = run_cli(&mongo, db.name(), &["verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "altered at position {position} (event {event_id})"
        )),
        "{err}"
    );

    // An event deleted: named where it should be, with the event found in its place.
    let db = copies.copy().await;
    let next = event_at(&db, position + 1).await;
    db.collection::<Document>("events")
        .delete_one(doc! {"_id": position})
        .await
        .unwrap();
    let finding = verify(&mongo, db.name()).await.unwrap_err();
    assert_eq!(finding.damage, Damage::Missing, "{finding}");
    assert_eq!(
        (finding.position, finding.event_id.as_deref()),
        (position as u64, next.get_str("event_id").ok())
    );

    // The last event deleted: only the streams collection remembers it.
    let db = copies.copy().await;
    db.collection::<Document>("events")
        .delete_one(doc! {"_id": EVENTS as i64})
        .await
        .unwrap();
    let finding = verify(&mongo, db.name()).await.unwrap_err();
    assert_eq!(finding.damage, Damage::Missing, "{finding}");
    assert_eq!(finding.position, EVENTS);

    // Two events swapped: each one's content under the other's position.
    let db = copies.copy().await;
    let events = db.collection::<Document>("events");
    let mut first = event_at(&db, position).await;
    let mut second = event_at(&db, position + 1).await;
    let moved = second.get_str("event_id").unwrap().to_string();
    events
        .delete_many(doc! {"_id": {"$in": [position, position + 1]}})
        .await
        .unwrap();
    first.insert("_id", position + 1);
    second.insert("_id", position);
    events.insert_many([second, first]).await.unwrap();
    let finding = verify(&mongo, db.name()).await.unwrap_err();
    assert_eq!(finding.damage, Damage::Reordered, "{finding}");
    assert_eq!(
        (finding.position, finding.event_id.as_deref()),
        (position as u64, Some(moved.as_str()))
    );
    let (code, _, err) = run_cli(&mongo, db.name(), &["verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("reordered at position"), "{err}");

    // A forged event appended to a stream, hashes copied from a real one.
    let db = copies.copy().await;
    let mut forged = event_at(&db, position).await;
    let stream_id = forged.get_str("stream_id").unwrap().to_string();
    let last = db
        .collection::<Document>("events")
        .find_one(doc! {"stream_id": &stream_id})
        .sort(doc! {"version": -1})
        .await
        .unwrap()
        .unwrap();
    forged.insert("_id", EVENTS as i64 + 1);
    forged.insert("event_id", "forged");
    forged.insert("version", last.get_i64("version").unwrap() + 1);
    db.collection::<Document>("events")
        .insert_one(forged)
        .await
        .unwrap();
    let finding = verify(&mongo, db.name()).await.unwrap_err();
    assert_eq!(finding.damage, Damage::Inserted, "{finding}");
    assert_eq!(finding.position, EVENTS + 1);
    assert_eq!(finding.event_id.as_deref(), Some("forged"));

    // The events intact, a read model changed behind the projection's back.
    let db = copies.copy().await;
    db.collection::<Document>("messages")
        .update_one(
            doc! {"content": "it broke"},
            doc! {"$set": {"content": "rewritten"}},
        )
        .await
        .unwrap();
    let finding = verify(&mongo, db.name()).await.unwrap_err();
    assert_eq!(finding.damage, Damage::ReadModel, "{finding}");

    // A database ticketd never wrote is not an intact empty store.
    let (code, _, err) = run_cli(&mongo, &format!("{}_none", mongo.db), &["verify"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds no ticketd store"), "{err}");

    copies.drop_all().await;
    mongo.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_read_models_equal_to_the_live_ones() {
    let Some(mongo) = TestMongo::new("audit_replay") else {
        return;
    };
    let server = TestServer::start_mongo(&mongo, &[]).await;
    make_history(&server).await;
    let before = everything(&server).await;
    assert_eq!(before.as_array().unwrap().len(), 2);
    server.stop().await;

    // Damage the read models, then rebuild them from the events.
    let db = client(&mongo).await.database(&mongo.db);
    db.collection::<Document>("tickets")
        .delete_one(doc! {"topic": "Scanner"})
        .await
        .unwrap();
    db.collection::<Document>("messages")
        .update_many(doc! {}, doc! {"$set": {"content": "rewritten"}})
        .await
        .unwrap();
    assert_eq!(
        verify(&mongo, &mongo.db).await.unwrap_err().damage,
        Damage::ReadModel
    );
    let (code, out, err) = run_cli(&mongo, &mongo.db, &["replay"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("replayed 16 events into 2 tickets and 8 messages in "),
        "{out}"
    );
    assert!(out.contains("events/s)"), "{out}");
    verify(&mongo, &mongo.db)
        .await
        .expect("the rebuilt read models verify");
    // The rebuilt collections carry the indexes the API's queries need.
    for (collection, index) in [("tickets", "by_user"), ("messages", "by_ticket")] {
        let names = db
            .collection::<Document>(collection)
            .list_index_names()
            .await
            .unwrap();
        assert!(names.iter().any(|n| n == index), "{collection}: {names:?}");
    }
    let staging = db.list_collection_names().await.unwrap();
    assert!(
        !staging.iter().any(|n| n.ends_with("_replay")),
        "{staging:?}"
    );

    let server = TestServer::start_mongo(&mongo, &[]).await;
    assert_eq!(everything(&server).await, before);
    // The timeline reads the same database, beside the running server.
    let ticket_id = before[0]["listed"]["id"].as_str().unwrap();
    let (code, out, err) = run_cli(&mongo, &mongo.db, &["audit", ticket_id]);
    assert_eq!(code, 0, "{err}");
    assert_timeline(&out);
    let (code, _, err) = run_cli(&mongo, &mongo.db, &["audit", "no-such-ticket"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "no ticket no-such-ticket in MongoDB database {}",
            mongo.db
        )),
        "{err}"
    );
    server.stop().await;
    mongo.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_replay_cover_saved_replies_and_blocks() {
    let Some(mongo) = TestMongo::new("audit_helpdesk") else {
        return;
    };
    let server = TestServer::start_mongo(&mongo, &[]).await;
    make_helpdesk_history(&server).await;
    let before = helpdesk_state(&server).await;
    server.stop().await;
    let report = verify(&mongo, &mongo.db)
        .await
        .expect("a clean database verifies");
    assert_eq!((report.events, report.streams), (7, 3));

    let db = client(&mongo).await.database(&mongo.db);
    db.collection::<Document>("saved_replies")
        .delete_many(doc! {})
        .await
        .unwrap();
    db.collection::<Document>("blocks")
        .update_many(doc! {}, doc! {"$set": {"reason": "forged"}})
        .await
        .unwrap();
    assert_eq!(
        verify(&mongo, &mongo.db).await.unwrap_err().damage,
        Damage::ReadModel
    );
    let (code, out, err) = run_cli(&mongo, &mongo.db, &["replay"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("replayed 7 events into 0 tickets"), "{out}");
    verify(&mongo, &mongo.db)
        .await
        .expect("the rebuilt read models verify");

    let server = TestServer::start_mongo(&mongo, &[]).await;
    assert_eq!(helpdesk_state(&server).await, before);
    server.stop().await;
    mongo.drop_database().await;
}
