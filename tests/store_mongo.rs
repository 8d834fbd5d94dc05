//! The MongoDB store against the store conformance suite (the same functions as the embedded
//! store), plus what only a shared database has to promise: several instances appending at once
//! leave no gap a follower could skip, a retried append whose first outcome was lost is stored
//! once, and a lease has one holder at a time. Runs against the SecantusDB server `scripts/test`
//! starts (`TICKETD_TEST_MONGO_URI`); each test uses a database of its own and drops it.

mod common;

use common::TestMongo;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ticketd::store::conformance::{self, new_event, new_id, opened, posted, user};
use ticketd::store::{MongoStore, ReadModels};
use ticketd_events::{
    EventEnvelope, EventStore, ExpectedVersion, IssueLevel, StoreError, SupportRole, UserRole,
};

async fn connect(mongo: &TestMongo) -> MongoStore {
    MongoStore::connect(&mongo.uri, &mongo.db)
        .await
        .unwrap_or_else(|e| panic!("connect to {} ({}): {e}", mongo.uri, mongo.db))
}

macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(mongo) = TestMongo::new(stringify!($name)) else { return };
            let store = connect(&mongo).await;
            conformance::$name(store.clone()).await;
            store.shutdown().await;
            mongo.drop_database().await;
        }
    )+};
}

ticketd::conformance_suite!(conformance);

/// An append whose caller gave up before the answer (a timeout, a dropped connection: the
/// outcome is unknown to it) and that is then retried, by the same instance or by another, is
/// stored exactly once, and every try answers with the same envelopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_retried_after_an_unknown_outcome_is_stored_once() {
    let Some(mongo) = TestMongo::new("unknown_outcome") else {
        return;
    };
    let a = connect(&mongo).await;
    let b = connect(&mongo).await;
    let customer = user("u1", UserRole::Customer);
    for round in 0..5 {
        let ticket_id = new_id();
        let events = vec![
            new_event(
                &customer,
                opened(&customer, SupportRole::General, IssueLevel::Normal),
            ),
            new_event(&customer, posted(&customer, &new_id(), false)),
        ];
        // The first try: abandoned after a varying delay, so it is cut before, during or after
        // its commit.
        let abandoned = tokio::spawn({
            let (a, ticket_id, events) = (a.clone(), ticket_id.clone(), events.clone());
            async move {
                a.append(&ticket_id, ExpectedVersion::NoStream, events)
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(round * 3)).await;
        abandoned.abort();
        // Two retries at once, from both instances.
        let (from_a, from_b) = tokio::join!(
            a.append(&ticket_id, ExpectedVersion::NoStream, events.clone()),
            b.append(&ticket_id, ExpectedVersion::NoStream, events.clone()),
        );
        let from_a = from_a.expect("a retry on instance A returns the stored envelopes");
        let from_b = from_b.expect("a retry on instance B returns the stored envelopes");
        assert_eq!(from_a, from_b, "every try answers with the same envelopes");
        let stored = a.read_stream(&ticket_id, 0).await.unwrap();
        assert_eq!(stored, from_a, "the events are stored once (round {round})");
    }
    let all = a.read_all(0, 1000).await.unwrap();
    assert_eq!(all.len(), 10, "five appends of two events, none twice");
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=10).collect::<Vec<_>>());
    a.shutdown().await;
    b.shutdown().await;
    mongo.drop_database().await;
}

/// Appends `count` messages to `ticket_id`, re-reading the stream after every lost race.
async fn post_racing(store: &MongoStore, ticket_id: &str, count: usize) {
    let customer = user("racer", UserRole::Customer);
    for _ in 0..count {
        let event = new_event(&customer, posted(&customer, &new_id(), false));
        loop {
            let version = store
                .read_stream(ticket_id, 0)
                .await
                .unwrap()
                .last()
                .map_or(0, |e| e.version);
            match store
                .append(
                    ticket_id,
                    ExpectedVersion::from_version(version),
                    vec![event.clone()],
                )
                .await
            {
                Ok(_) => break,
                Err(StoreError::WrongExpectedVersion { .. }) => tokio::task::yield_now().await,
                Err(e) => panic!("a racing append failed: {e}"),
            }
        }
    }
}

/// Two instances append at once, to one shared stream and to streams of their own, while a
/// follower on a third handle reads the global order the way projectors do (`wait_beyond`,
/// then `read_all` after its checkpoint): it sees every position exactly once, in order, with
/// no gap, and each stream's versions are contiguous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_appending_leave_no_gap_for_a_follower() {
    let Some(mongo) = TestMongo::new("two_instances_gap_free") else {
        return;
    };
    let a = connect(&mongo).await;
    let b = connect(&mongo).await;
    let follower_store = connect(&mongo).await;
    let customer = user("u1", UserRole::Customer);
    let shared = new_id();
    a.append(
        &shared,
        ExpectedVersion::NoStream,
        vec![new_event(
            &customer,
            opened(&customer, SupportRole::General, IssueLevel::Normal),
        )],
    )
    .await
    .unwrap();

    let follower = tokio::spawn({
        let store = follower_store.clone();
        async move {
            let mut seen: Vec<EventEnvelope> = Vec::new();
            let mut after = 0;
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let _ = tokio::time::timeout(Duration::from_millis(500), store.wait_beyond(after))
                    .await;
                let batch = store.read_all(after, 50).await.unwrap();
                for envelope in batch {
                    assert_eq!(
                        envelope.position,
                        after + 1,
                        "the follower saw position {} right after {after}",
                        envelope.position
                    );
                    after = envelope.position;
                    seen.push(envelope);
                }
                if seen.last().is_some_and(|e| e.stream_id == "stop") {
                    return seen;
                }
                assert!(Instant::now() < deadline, "the follower did not finish");
            }
        }
    });

    const OWN_STREAMS: usize = 6;
    const EVENTS_PER_STREAM: usize = 3;
    const SHARED_POSTS: usize = 8;
    let mut writers = tokio::task::JoinSet::new();
    for (name, store) in [("a", a.clone()), ("b", b.clone())] {
        for i in 0..OWN_STREAMS {
            let store = store.clone();
            writers.spawn(async move {
                let customer = user(&format!("{name}{i}"), UserRole::Customer);
                let ticket_id = new_id();
                let mut events = vec![new_event(
                    &customer,
                    opened(&customer, SupportRole::General, IssueLevel::Normal),
                )];
                for _ in 1..EVENTS_PER_STREAM {
                    events.push(new_event(&customer, posted(&customer, &new_id(), false)));
                }
                // One event per append, so the two instances' transactions interleave.
                for (version, event) in events.into_iter().enumerate() {
                    store
                        .append(
                            &ticket_id,
                            ExpectedVersion::from_version(version as u64),
                            vec![event],
                        )
                        .await
                        .unwrap_or_else(|e| panic!("append to an own stream failed: {e}"));
                }
            });
        }
        for _ in 0..2 {
            let (store, shared) = (store.clone(), shared.clone());
            writers.spawn(async move { post_racing(&store, &shared, SHARED_POSTS / 4).await });
        }
    }
    while let Some(done) = writers.join_next().await {
        done.expect("a writer panicked");
    }
    // The last event, on a stream the follower recognises.
    b.append(
        "stop",
        ExpectedVersion::NoStream,
        vec![new_event(
            &customer,
            opened(&customer, SupportRole::General, IssueLevel::Normal),
        )],
    )
    .await
    .unwrap();

    let seen = tokio::time::timeout(Duration::from_secs(150), follower)
        .await
        .expect("the follower finished")
        .expect("the follower did not panic");
    let expected_total = 1 + 2 * OWN_STREAMS * EVENTS_PER_STREAM + SHARED_POSTS + 1;
    assert_eq!(seen.len(), expected_total, "every event was seen once");
    assert_eq!(
        seen.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=expected_total as u64).collect::<Vec<_>>()
    );
    assert_eq!(seen, a.read_all(0, 1000).await.unwrap());
    let mut streams: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for envelope in &seen {
        streams
            .entry(envelope.stream_id.as_str())
            .or_default()
            .push(envelope.version);
    }
    for (stream, versions) in &streams {
        assert_eq!(
            versions,
            &(1..=versions.len() as u64).collect::<Vec<_>>(),
            "stream {stream} has contiguous versions"
        );
    }
    assert_eq!(streams[shared.as_str()].len(), 1 + SHARED_POSTS);
    assert!(
        seen.windows(2)
            .all(|w| w[0].recorded_at <= w[1].recorded_at),
        "recorded_at never decreases along positions, across instances"
    );
    for envelope in &seen {
        assert_eq!(
            envelope.hash,
            ticketd_events::chain::envelope_hash(envelope),
            "each instance hashes the same bytes"
        );
    }
    for w in seen.windows(2) {
        assert_eq!(
            w[1].global_hash,
            ticketd_events::chain::global_hash(&w[0].global_hash, &w[1].hash),
            "the global chain links across instances"
        );
    }
    assert_eq!(
        a.list_messages(&shared, None, 100, false)
            .await
            .unwrap()
            .len(),
        SHARED_POSTS
    );
    for store in [a, b, follower_store] {
        store.shutdown().await;
    }
    mongo.drop_database().await;
}

/// A store refuses writes after shutdown and its reads keep working (the conformance check);
/// another instance carries on where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_appends_and_keeps_reads() {
    let Some(mongo) = TestMongo::new("shutdown") else {
        return;
    };
    let store = connect(&mongo).await;
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
    conformance::shutdown_refuses_writes_and_keeps_reads(&store, &ticket_id, || store.shutdown())
        .await;

    // Another instance on the same database carries on where it stopped.
    let again = connect(&mongo).await;
    assert_eq!(again.head().await.unwrap(), 1);
    let next = again
        .append(
            &ticket_id,
            ExpectedVersion::Exact(1),
            vec![new_event(&customer, posted(&customer, "m1", false))],
        )
        .await
        .unwrap();
    assert_eq!((next[0].version, next[0].position), (2, 2));
    again.shutdown().await;
    mongo.drop_database().await;
}

/// A server that is not there is a clear error at start-up, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_start_up_error() {
    let port = common::free_port();
    let started = Instant::now();
    let err = MongoStore::connect(
        &format!("mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=500"),
        "unreachable",
    )
    .await
    .expect_err("nothing listens there");
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("cannot reach MongoDB")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

mod lease {
    use super::*;

    const TTL: Duration = Duration::from_millis(600);

    /// One holder: while A holds the lease, B cannot take it; A can renew and release it, and
    /// then B takes it at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_holder_at_a_time() {
        let Some(mongo) = TestMongo::new("lease_one_holder") else {
            return;
        };
        let store = connect(&mongo).await;
        let a = store.lease("discord", "instance-a", Duration::from_secs(30));
        let b = store.lease("discord", "instance-b", Duration::from_secs(30));
        assert!(
            a.acquire().await.unwrap().is_some(),
            "a free lease is taken"
        );
        assert!(
            a.acquire().await.unwrap().is_some(),
            "taking it again renews"
        );
        assert!(
            b.acquire().await.unwrap().is_none(),
            "a held lease is refused"
        );
        assert!(
            b.renew().await.unwrap().is_none(),
            "b cannot renew what it does not hold"
        );
        assert!(a.renew().await.unwrap().is_some());
        assert_eq!(a.holder().await.unwrap().as_deref(), Some("instance-a"));
        b.release().await.unwrap();
        assert_eq!(
            a.holder().await.unwrap().as_deref(),
            Some("instance-a"),
            "only the holder can release"
        );
        a.release().await.unwrap();
        assert_eq!(a.holder().await.unwrap(), None);
        assert!(
            b.acquire().await.unwrap().is_some(),
            "a released lease is taken"
        );
        let other = store.lease("transcripts", "instance-a", Duration::from_secs(30));
        assert!(
            other.acquire().await.unwrap().is_some(),
            "leases are per name"
        );
        store.shutdown().await;
        mongo.drop_database().await;
    }

    /// A holder that stops renewing (it died) loses the lease to another instance within one
    /// ttl, and learns it has lost it when it tries to renew.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_lease_is_taken_over() {
        let Some(mongo) = TestMongo::new("lease_takeover") else {
            return;
        };
        let store = connect(&mongo).await;
        let a = store.lease("discord", "instance-a", TTL);
        let b = store.lease("discord", "instance-b", TTL);
        let deadline_a = a.acquire().await.unwrap().expect("a takes the free lease");
        assert!(b.acquire().await.unwrap().is_none());
        let started = Instant::now();
        let taken = loop {
            if let Some(deadline) = b.acquire().await.unwrap() {
                break deadline;
            }
            assert!(
                started.elapsed() < TTL * 5,
                "b did not take the lease over within 5 ttl"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            Instant::now() >= deadline_a,
            "b took the lease only after a's own deadline"
        );
        assert!(taken > deadline_a);
        assert!(
            a.renew().await.unwrap().is_none(),
            "a learns it lost the lease"
        );
        assert_eq!(a.holder().await.unwrap().as_deref(), Some("instance-b"));
        store.shutdown().await;
        mongo.drop_database().await;
    }

    /// Four instances competing for one lease for a few seconds, each renewing only sometimes:
    /// the periods each believed it held the lease never overlap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_two_holders() {
        let Some(mongo) = TestMongo::new("lease_never_two") else {
            return;
        };
        let store = connect(&mongo).await;
        let ttl = Duration::from_millis(300);
        let grants = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut contenders = tokio::task::JoinSet::new();
        for i in 0..4 {
            let lease = store.lease("discord", &format!("instance-{i}"), ttl);
            let grants = Arc::clone(&grants);
            contenders.spawn(async move {
                let until = Instant::now() + Duration::from_secs(4);
                let mut held = false;
                while Instant::now() < until {
                    let granted = if held {
                        lease.renew().await.unwrap()
                    } else {
                        lease.acquire().await.unwrap()
                    };
                    let answered = Instant::now();
                    held = granted.is_some();
                    if let Some(deadline) = granted {
                        grants.lock().unwrap().push((answered, deadline, i));
                    }
                    // Some renew in time, some too late; a holder "dies" now and then.
                    let pause = match (i + grants.lock().unwrap().len()) % 5 {
                        0 => ttl * 2,
                        _ => ttl / 3,
                    };
                    tokio::time::sleep(pause).await;
                }
            });
        }
        while let Some(done) = contenders.join_next().await {
            done.unwrap();
        }
        let mut grants = grants.lock().unwrap().clone();
        grants.sort_by_key(|(answered, _, _)| *answered);
        let holders: std::collections::BTreeSet<usize> = grants.iter().map(|g| g.2).collect();
        assert!(holders.len() >= 2, "the lease changed hands: {grants:?}");
        let mut current: Option<(usize, Instant)> = None;
        for (answered, deadline, holder) in grants {
            if let Some((previous, until)) = current
                && previous != holder
            {
                assert!(
                    answered >= until,
                    "instance-{holder} got the lease while instance-{previous} held it"
                );
            }
            current = Some((holder, deadline));
        }
        store.shutdown().await;
        mongo.drop_database().await;
    }
}

/// Openings under one cap racing through two instances (two connections, two writers): the
/// counter document serializes their transactions, so exactly the allowed number lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_ticket_limit_holds_across_instances() {
    use ticketd::store::{CappedAppend, OpenCap};
    let Some(mongo) = TestMongo::new("open_limit_instances") else {
        return;
    };
    let a = connect(&mongo).await;
    let b = connect(&mongo).await;
    let customer = user("u1", UserRole::Customer);
    let cap = OpenCap {
        user_id: "u1".into(),
        limit: 3,
    };
    let opening = || {
        vec![new_event(
            &customer,
            opened(&customer, SupportRole::General, IssueLevel::Normal),
        )]
    };
    let ids: Vec<String> = (0..12).map(|_| new_id()).collect();
    let results = futures_util::future::join_all(ids.iter().enumerate().map(|(i, id)| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (events, cap) = (opening(), cap.clone());
        async move { store.append_capped(id, events, &cap).await }
    }))
    .await;
    let landed = results.iter().filter(|r| r.is_ok()).count();
    for result in &results {
        if let Err(e) = result {
            assert!(
                matches!(e, StoreError::OpenTicketLimit { open: 3, limit: 3 }),
                "{e}"
            );
        }
    }
    assert_eq!(landed, 3, "exactly the limit lands across two instances");
    a.shutdown().await;
    b.shutdown().await;
    mongo.drop_database().await;
}
