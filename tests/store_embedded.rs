//! The embedded SQLite store against the store conformance suite, plus what only a store on disk
//! has to promise: a reopened directory carries on where it stopped, shutdown flushes the queue,
//! and a damaged row is reported rather than skipped.

use std::path::Path;
use std::sync::Arc;
use tempfile::TempDir;
use ticketd::store::conformance::{self, agent, new_event, new_id, opened, posted, user};
use ticketd::store::{
    Checkpoints, EmbeddedOptions, EmbeddedStore, ReadModels, SearchIndex, TicketFilter,
};
use ticketd_events::{EventStore, ExpectedVersion, IssueLevel, StoreError, SupportRole, UserRole};

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(dir, EmbeddedOptions::default()).expect("open the embedded store")
}

/// A fresh store in its own directory; the directory lives as long as the returned guard.
fn fresh() -> (TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(dir.path());
    (dir, store)
}

macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_dir, store) = fresh();
            conformance::$name(store.clone()).await;
            store.shutdown().await;
        }
    )+};
}

ticketd::conformance_suite!(conformance);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_after_shutdown_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested").join("data");
    let customer = user("u1", UserRole::Customer);
    let ticket_id = new_id();

    let store = open(&data_dir);
    assert_eq!(store.path(), data_dir.join("ticketd.db"));
    assert!(
        store.path().exists(),
        "open creates the directory and the file"
    );
    let events = vec![
        new_event(
            &customer,
            opened(&customer, SupportRole::General, IssueLevel::Urgent),
        ),
        new_event(&customer, posted(&customer, "m1", false)),
        new_event(&agent(), posted(&agent(), "n1", true)),
    ];
    store
        .append(&ticket_id, ExpectedVersion::NoStream, events)
        .await
        .unwrap();
    store.save_checkpoint("socket", 2).await.unwrap();
    let events_before = store.read_all(0, 100).await.unwrap();
    let ticket_before = store.get_ticket(&ticket_id).await.unwrap();
    let messages_before = store
        .list_messages(&ticket_id, None, 100, true)
        .await
        .unwrap();
    conformance::shutdown_refuses_writes_and_keeps_reads(&store, &ticket_id, || store.shutdown())
        .await;
    drop(store);

    let store = open(&data_dir);
    assert_eq!(store.read_all(0, 100).await.unwrap(), events_before);
    assert_eq!(store.get_ticket(&ticket_id).await.unwrap(), ticket_before);
    assert_eq!(
        store
            .list_messages(&ticket_id, None, 100, true)
            .await
            .unwrap(),
        messages_before
    );
    assert_eq!(store.load_checkpoint("socket").await.unwrap(), 2);
    assert_eq!(store.head().await.unwrap(), 3);
    let next = store
        .append(
            &ticket_id,
            ExpectedVersion::Exact(3),
            vec![new_event(&customer, posted(&customer, "m2", false))],
        )
        .await
        .unwrap();
    assert_eq!(
        (next[0].version, next[0].position),
        (4, 4),
        "the stream and the global order continue without a gap"
    );
    assert!(next[0].recorded_at >= events_before[2].recorded_at);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_every_queued_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let customer = user("u1", UserRole::Customer);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (store, customer) = (store.clone(), customer.clone());
        tasks.spawn(async move {
            let ticket_id = new_id();
            let event = new_event(
                &customer,
                opened(&customer, SupportRole::General, IssueLevel::Normal),
            );
            (
                ticket_id.clone(),
                store
                    .append(&ticket_id, ExpectedVersion::NoStream, vec![event])
                    .await,
            )
        });
    }
    tokio::task::yield_now().await;
    store.shutdown().await;
    let mut acknowledged = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            (ticket_id, Ok(_)) => acknowledged.push(ticket_id),
            (_, Err(StoreError::ShuttingDown)) => {}
            (_, Err(other)) => panic!("an append during shutdown failed otherwise: {other}"),
        }
    }
    drop(store);
    let store = open(dir.path());
    for ticket_id in &acknowledged {
        assert!(
            store.get_ticket(ticket_id).await.unwrap().is_some(),
            "an acknowledged append survives shutdown and reopen"
        );
    }
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(
        all.len(),
        acknowledged.len(),
        "nothing unacknowledged was written"
    );
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=all.len() as u64).collect::<Vec<_>>());
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_at_never_decreases_along_positions() {
    let (_dir, store) = fresh();
    let store = Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let customer = user(&format!("u{i}"), UserRole::Customer);
            let ticket_id = new_id();
            let open = new_event(
                &customer,
                opened(&customer, SupportRole::General, IssueLevel::Normal),
            );
            store
                .append(&ticket_id, ExpectedVersion::NoStream, vec![open])
                .await
                .unwrap();
            for version in 1..5 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let post = new_event(&customer, posted(&customer, &new_id(), false));
                store
                    .append(&ticket_id, ExpectedVersion::Exact(version), vec![post])
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(all.len(), 100);
    assert!(
        all.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at),
        "recorded_at never decreases along positions"
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_is_wal_with_a_schema_version() {
    let (_dir, store) = fresh();
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert!(version >= 1, "the schema is versioned for later migrations");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_event_row_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let customer = user("u1", UserRole::Customer);
    let ticket_id = new_id();
    store
        .append(
            &ticket_id,
            ExpectedVersion::NoStream,
            vec![new_event(
                &customer,
                opened(&customer, SupportRole::General, IssueLevel::Normal),
            )],
        )
        .await
        .unwrap();
    store.shutdown().await;
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("ticketd.db")).unwrap();
    conn.execute(
        "UPDATE events SET data = '{\"type\":\"Nope\"}' WHERE position = 1",
        [],
    )
    .unwrap();
    drop(conn);

    let store = open(dir.path());
    let err = store.read_all(0, 10).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { position: 1, .. }),
        "a row that does not parse is Corrupt with its position, got {err:?}"
    );
    assert!(matches!(
        store.read_stream(&ticket_id, 0).await,
        Err(StoreError::Corrupt { position: 1, .. })
    ));
    // The read models were projected when the event was appended and stay readable.
    let listed = store
        .list_tickets(&TicketFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    store.shutdown().await;
}

/// Under steady writes from many tasks, with the checkpoint thread copying pages back beside the
/// writer and readers reading, the WAL file stays near its configured bound instead of growing
/// with everything ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_steady_writes() {
    const BOUND: i64 = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(
        dir.path(),
        EmbeddedOptions {
            synchronous_full: false,
            wal_autocheckpoint_bytes: BOUND,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let customer = user("u1", UserRole::Customer);
    let mut writers = Vec::new();
    for _ in 0..16 {
        let (store, customer) = (store.clone(), customer.clone());
        writers.push(tokio::spawn(async move {
            let ticket_id = new_id();
            let opening = opened(&customer, SupportRole::General, IssueLevel::Normal);
            store
                .append(
                    &ticket_id,
                    ExpectedVersion::NoStream,
                    vec![new_event(&customer, opening)],
                )
                .await
                .unwrap();
            for version in 1..=300 {
                let message = posted(&customer, &new_id(), false);
                store
                    .append(
                        &ticket_id,
                        ExpectedVersion::Exact(version),
                        vec![new_event(&customer, message)],
                    )
                    .await
                    .unwrap();
                if version % 10 == 0 {
                    store.get_ticket(&ticket_id).await.unwrap();
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("ticketd.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let db = std::fs::metadata(dir.path().join("ticketd.db"))
        .unwrap()
        .len();
    assert!(
        db > 3 * BOUND as u64,
        "the test wrote more than the bound several times over ({db} bytes)"
    );
    assert!(
        wal <= 2 * BOUND as u64,
        "the WAL is {wal} bytes after writing a {db}-byte database; bound {BOUND}"
    );
    store.shutdown().await;
}

/// The tickets holding `word` (internal notes included when `notes`), each with the version its
/// excerpts are looked for from.
async fn hits(
    store: &EmbeddedStore,
    word: &str,
    prefix: bool,
    notes: bool,
) -> Vec<(u64, Option<u64>)> {
    let term = ticketd::search::text::QueryTerm {
        term: word.to_owned(),
        prefix,
    };
    store
        .search_term(&term, notes)
        .await
        .expect("search a term")
        .into_iter()
        .map(|hit| (hit.position, hit.first_message))
        .collect()
}

/// Posts `content` to `ticket` at `version` and answers the message's version.
async fn post(store: &EmbeddedStore, ticket: &str, version: u64, id: &str, content: &str) -> u64 {
    let author = user("u1", UserRole::Customer);
    let event = ticketd_events::TicketEvent::MessagePosted {
        message_id: id.to_owned(),
        author_id: author.id.clone(),
        author_name: author.name.clone(),
        author_role: author.role,
        content: content.to_owned(),
        attachments: vec![],
        internal: false,
    };
    let stored = store
        .append(
            ticket,
            ExpectedVersion::Exact(version),
            vec![new_event(&author, event)],
        )
        .await
        .expect("post");
    stored[0].version
}

/// Posts are indexed through a pending table that batches move into FTS5 thousands at a time
/// (ADR 0024, "Pending rows"): a word is found the same before and after its move, after a
/// deletion or an edit on either side of it, and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_word_is_found_alike_before_and_after_its_row_moves_into_fts5() {
    let (dir, store) = fresh();
    let customer = user("u1", UserRole::Customer);
    let (a, b) = (new_id(), new_id());
    let mut opened_at = Vec::new();
    for ticket in [&a, &b] {
        let stored = store
            .append(
                ticket,
                ExpectedVersion::NoStream,
                vec![new_event(
                    &customer,
                    opened(&customer, SupportRole::General, IssueLevel::Normal),
                )],
            )
            .await
            .unwrap();
        opened_at.push(stored[0].position);
    }
    let (pa, pb) = (opened_at[0], opened_at[1]);
    let first = post(&store, &a, 1, "a1", "Walrus alpha").await;
    let note = ticketd_events::TicketEvent::MessagePosted {
        message_id: "a2".into(),
        author_id: agent().id,
        author_name: agent().name,
        author_role: agent().role,
        content: "narwhal".into(),
        attachments: vec![],
        internal: true,
    };
    store
        .append(
            &a,
            ExpectedVersion::Exact(first),
            vec![new_event(&agent(), note)],
        )
        .await
        .unwrap();
    assert_eq!(
        hits(&store, "walrus", false, false).await,
        [(pa, Some(first))]
    );

    // More posts than the pending table holds: every earlier row moves into FTS5.
    let version = post_fillers(&store, &b, 1, 0..4500).await;
    let later = post(&store, &a, first + 1, "a3", "walrus beta").await;

    // Moved rows and pending rows answer alike.
    assert_eq!(
        hits(&store, "walrus", false, false).await,
        [(pa, Some(first))]
    );
    assert_eq!(
        hits(&store, "beta", false, false).await,
        [(pa, Some(later))]
    );
    assert_eq!(hits(&store, "narwhal", false, false).await, []);
    assert_eq!(
        hits(&store, "narwhal", false, true).await,
        [(pa, Some(first + 1))]
    );
    assert_eq!(hits(&store, "filler4499", false, false).await.len(), 1);
    assert_eq!(hits(&store, "filler17", false, false).await[0].0, pb);
    assert_eq!(hits(&store, "commo", true, false).await.len(), 1);
    assert_eq!(hits(&store, "common", false, false).await[0], (pb, Some(2)));

    // A deletion of a moved message: its other word goes, the word a pending one holds stays.
    store
        .append(
            &a,
            ExpectedVersion::Exact(later),
            vec![new_event(
                &customer,
                ticketd_events::TicketEvent::MessageDeleted {
                    message_id: "a1".into(),
                },
            )],
        )
        .await
        .unwrap();
    assert_eq!(hits(&store, "alpha", false, false).await, []);
    assert_eq!(
        hits(&store, "walrus", false, false).await,
        [(pa, Some(later))]
    );
    // An edit of the message whose row was pending: its old words go, its new one comes.
    store
        .append(
            &a,
            ExpectedVersion::Exact(later + 1),
            vec![new_event(
                &customer,
                ticketd_events::TicketEvent::MessageEdited {
                    message_id: "a3".into(),
                    content: "gamma".into(),
                    attachments: None,
                },
            )],
        )
        .await
        .unwrap();
    assert_eq!(hits(&store, "walrus", false, false).await, []);
    assert_eq!(
        hits(&store, "gamma", false, false).await,
        [(pa, Some(later))]
    );
    assert_eq!(
        hits(&store, "narwhal", false, true).await,
        [(pa, Some(first + 1))]
    );

    // A restart finds everything where it was, and new posts are indexed on.
    store.shutdown().await;
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        hits(&store, "gamma", false, false).await,
        [(pa, Some(later))]
    );
    assert_eq!(
        hits(&store, "filler4499", false, false).await,
        [(pb, Some(4501))]
    );
    let last = post(&store, &b, version, "b-last", "walrus again").await;
    assert_eq!(
        hits(&store, "walrus", false, false).await,
        [(pb, Some(last))]
    );
    store.shutdown().await;
}

/// Posts `n` messages `filler<k> common` to `ticket` from `version`, 100 to an append; answers
/// the version after them.
async fn post_fillers(
    store: &EmbeddedStore,
    ticket: &str,
    version: u64,
    range: std::ops::Range<usize>,
) -> u64 {
    let author = user("u1", UserRole::Customer);
    let mut version = version;
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(100) {
        let events = chunk
            .iter()
            .map(|n| {
                new_event(
                    &author,
                    ticketd_events::TicketEvent::MessagePosted {
                        message_id: format!("m{n}"),
                        author_id: author.id.clone(),
                        author_name: author.name.clone(),
                        author_role: author.role,
                        content: format!("filler{n} common"),
                        attachments: vec![],
                        internal: false,
                    },
                )
            })
            .collect();
        let stored = store
            .append(ticket, ExpectedVersion::Exact(version), events)
            .await
            .unwrap();
        version = stored.last().unwrap().version;
    }
    version
}

/// An idle writer moves the search index's pending rows once a thousand or so wait, so that
/// the batch that would find four thousand does not make its requests wait for the move
/// (ADR 0024); what moved is found as before.
#[tokio::test]
async fn an_idle_writer_moves_the_pending_rows_and_they_are_found_alike() {
    let (dir, store) = fresh();
    let customer = user("u1", UserRole::Customer);
    let ticket = new_id();
    let opening = store
        .append(
            &ticket,
            ExpectedVersion::NoStream,
            vec![new_event(
                &customer,
                opened(&customer, SupportRole::General, IssueLevel::Normal),
            )],
        )
        .await
        .unwrap()[0]
        .position;
    let file = rusqlite::Connection::open(dir.path().join("ticketd.db")).unwrap();
    let pending = || -> i64 {
        file.query_row(
            "SELECT coalesce(sum(messages), 0) FROM search_pending",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };

    // Too few to move: they wait, however idle the writer.
    let version = post_fillers(&store, &ticket, 1, 0..1000).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(pending(), 1000);

    // Enough: the idle writer moves them all, with nothing posted to make it.
    let version = post_fillers(&store, &ticket, version, 1000..1100).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pending() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} rows still pending",
            pending()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        hits(&store, "common", false, false).await,
        [(opening, Some(2))]
    );
    assert_eq!(
        hits(&store, "filler1099", false, false).await,
        [(opening, Some(version))]
    );
    assert_eq!(
        hits(&store, "filler10", true, false).await,
        [(opening, Some(12))]
    );
    store.shutdown().await;
}
