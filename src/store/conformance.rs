//! What every store must do, written once as async functions over any store, so the embedded
//! store and the MongoDB store are held to the same definition (the cqrs-es and eventually-rs
//! way). Each function takes a fresh, empty store and panics with a message naming the broken
//! rule. A store's integration test runs every function through [`crate::conformance_suite`],
//! so a case added here runs on every store; see `tests/store_embedded.rs`.

use super::{Checkpoints, ReadModels, TicketFilter};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ticketd_events::envelope::SCHEMA_VERSION;
use ticketd_events::{
    Actor, EventEnvelope, EventStore, ExpectedVersion, IssueLevel, NewEvent, StoreError,
    SupportRole, TicketEvent, TicketStatus, UserRole, Via,
};
use ticketd_projections::{MemoryReadModel, TicketView};

/// Calls `$test!` with the name of every function of the suite; a store's test file defines
/// `$test!` to turn each name into a test on a fresh store of its kind.
#[macro_export]
macro_rules! conformance_suite {
    ($test:ident) => {
        $test!(
            append_to_new_stream_and_read_back,
            stale_expected_version_is_refused,
            positions_are_gap_free_across_streams,
            read_all_pages_after_a_position,
            read_stream_after_a_version,
            wait_beyond_wakes_on_commit,
            checkpoints_start_at_zero_and_keep_the_last_save,
            retried_append_is_idempotent,
            read_models_follow_each_append,
            ticket_listing_order_cursor_and_filters,
            message_listing_order_cursor_and_visibility,
            concurrent_appends_to_distinct_streams,
            racing_appenders_on_one_stream_all_land,
            links_keep_the_last_value_per_kind,
            a_claimed_link_keeps_its_first_value,
            open_ticket_limit_holds_under_concurrency,
            reports_equal_the_recomputation,
        );
    };
}

/// Everything the suite needs of a store.
pub trait Store: EventStore + ReadModels + Checkpoints + 'static {}

impl<S: EventStore + ReadModels + Checkpoints + 'static> Store for S {}

/// A fresh UUID v7, as every id in ticketd is.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A user acting through the REST API.
pub fn user(id: &str, role: UserRole) -> Actor {
    Actor {
        id: id.to_owned(),
        name: format!("{id} name"),
        role,
        via: Via::Web,
    }
}

/// An agent of the support team.
pub fn agent() -> Actor {
    Actor {
        via: Via::Discord,
        ..user("agent-1", UserRole::Agent)
    }
}

/// `event` caused by `actor`, with fresh ids.
pub fn new_event(actor: &Actor, event: TicketEvent) -> NewEvent {
    NewEvent {
        event_id: new_id(),
        actor: actor.clone(),
        correlation_id: new_id(),
        causation_id: new_id(),
        event,
    }
}

/// `opener` opens a ticket with the given team and urgency.
pub fn opened(opener: &Actor, support_role: SupportRole, issue_level: IssueLevel) -> TicketEvent {
    TicketEvent::TicketOpened {
        user_id: opener.id.clone(),
        user_name: opener.name.clone(),
        user_email: format!("{}@example.com", opener.id),
        user_role: opener.role,
        topic: "Printer".into(),
        description: "It is on fire".into(),
        support_role,
        issue_level,
    }
}

/// `author` posts `message_id`.
pub fn posted(author: &Actor, message_id: &str, internal: bool) -> TicketEvent {
    TicketEvent::MessagePosted {
        message_id: message_id.to_owned(),
        author_id: author.id.clone(),
        author_name: author.name.clone(),
        author_role: author.role,
        content: format!("text of {message_id}"),
        attachments: vec![format!("https://files.example.com/{message_id}.png")],
        internal,
    }
}

/// Opens a ticket for `opener` and returns its id and envelope.
async fn open_ticket<S: Store>(
    store: &S,
    opener: &Actor,
    support_role: SupportRole,
    issue_level: IssueLevel,
) -> (String, EventEnvelope) {
    let ticket_id = new_id();
    let event = new_event(opener, opened(opener, support_role, issue_level));
    let mut stored = store
        .append(&ticket_id, ExpectedVersion::NoStream, vec![event])
        .await
        .expect("opening a ticket on a new stream must succeed");
    (ticket_id, stored.remove(0))
}

/// Appends one event by `actor` to a stream at `version` and returns its envelope.
async fn append_one<S: Store>(
    store: &S,
    ticket_id: &str,
    version: u64,
    actor: &Actor,
    event: TicketEvent,
) -> EventEnvelope {
    let mut stored = store
        .append(
            ticket_id,
            ExpectedVersion::from_version(version),
            vec![new_event(actor, event)],
        )
        .await
        .unwrap_or_else(|e| panic!("append at the stream's version {version} failed: {e}"));
    assert_eq!(stored.len(), 1, "one event appended, one envelope returned");
    stored.remove(0)
}

fn positions(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

fn versions(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

fn ticket_ids(tickets: &[TicketView]) -> Vec<&str> {
    tickets.iter().map(|t| t.id.as_str()).collect()
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("epoch ms fit an i64")
}

/// Appending to a new stream returns full envelopes that read back identically.
pub async fn append_to_new_stream_and_read_back<S: Store>(store: S) {
    assert_eq!(store.head().await.unwrap(), 0, "a fresh store has head 0");
    let customer = user("u1", UserRole::Customer);
    let ticket_id = new_id();
    let events = vec![
        new_event(
            &customer,
            opened(&customer, SupportRole::General, IssueLevel::Normal),
        ),
        new_event(&customer, posted(&customer, &new_id(), false)),
        new_event(&customer, posted(&customer, &new_id(), false)),
    ];
    let before = now_ms();
    let stored = store
        .append(&ticket_id, ExpectedVersion::NoStream, events.clone())
        .await
        .expect("append to a new stream");
    let after = now_ms();
    assert_eq!(stored.len(), 3, "every appended event gets an envelope");
    for (i, (envelope, new)) in stored.iter().zip(&events).enumerate() {
        let n = i as u64 + 1;
        assert_eq!(
            envelope.event_id, new.event_id,
            "the writer's event id is kept"
        );
        assert_eq!(envelope.stream_id, ticket_id);
        assert_eq!(envelope.version, n, "versions start at 1 in a new stream");
        assert_eq!(
            envelope.position, n,
            "positions start at 1 in a fresh store"
        );
        assert_eq!(envelope.actor, new.actor);
        assert_eq!(envelope.correlation_id, new.correlation_id);
        assert_eq!(envelope.causation_id, new.causation_id);
        assert_eq!(envelope.schema_version, SCHEMA_VERSION);
        assert_eq!(envelope.event, new.event);
        assert!(
            (before - 1000..=after + 1000).contains(&envelope.recorded_at),
            "recorded_at {} is the commit time in epoch ms ({before}..{after})",
            envelope.recorded_at
        );
    }
    assert!(
        stored
            .windows(2)
            .all(|w| w[0].recorded_at <= w[1].recorded_at),
        "recorded_at never decreases along positions"
    );
    assert_eq!(
        store.read_stream(&ticket_id, 0).await.unwrap(),
        stored,
        "read_stream returns exactly the envelopes append returned"
    );
    assert_eq!(
        store.read_all(0, 100).await.unwrap(),
        stored,
        "read_all returns exactly the envelopes append returned"
    );
    assert_eq!(store.head().await.unwrap(), 3, "head is the last position");

    let next = append_one(
        &store,
        &ticket_id,
        3,
        &customer,
        posted(&customer, "m4", false),
    )
    .await;
    assert_eq!(
        (next.version, next.position),
        (4, 4),
        "the stream continues"
    );
}

/// A stale expected version is refused with both versions, and nothing of it is written.
pub async fn stale_expected_version_is_refused<S: Store>(store: S) {
    let customer = user("u1", UserRole::Customer);
    let (ticket_id, _) =
        open_ticket(&store, &customer, SupportRole::General, IssueLevel::Normal).await;
    let head = store.head().await.unwrap();
    let refused_message = new_id();

    for (expected, number) in [
        (ExpectedVersion::NoStream, 0),
        (ExpectedVersion::Exact(0), 0),
        (ExpectedVersion::Exact(3), 3),
    ] {
        let err = store
            .append(
                &ticket_id,
                expected,
                vec![new_event(
                    &customer,
                    posted(&customer, &refused_message, false),
                )],
            )
            .await
            .expect_err("a stale expected version must be refused");
        match err {
            StoreError::WrongExpectedVersion {
                stream_id,
                expected,
                actual,
            } => assert_eq!(
                (stream_id.as_str(), expected, actual),
                (ticket_id.as_str(), number, 1),
                "the error names the stream, the expectation and the actual version"
            ),
            other => panic!("expected WrongExpectedVersion, got {other:?}"),
        }
    }

    let missing = new_id();
    let err = store
        .append(
            &missing,
            ExpectedVersion::Exact(1),
            vec![new_event(
                &customer,
                opened(&customer, SupportRole::General, IssueLevel::Normal),
            )],
        )
        .await
        .expect_err("expecting version 1 of a stream that does not exist must be refused");
    assert!(
        matches!(
            err,
            StoreError::WrongExpectedVersion {
                actual: 0,
                expected: 1,
                ..
            }
        ),
        "a missing stream is at version 0, got {err:?}"
    );

    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a refused append takes no position"
    );
    assert_eq!(store.read_stream(&ticket_id, 0).await.unwrap().len(), 1);
    assert!(store.read_stream(&missing, 0).await.unwrap().is_empty());
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 1);
    assert!(store.get_ticket(&missing).await.unwrap().is_none());
    assert!(
        store.get_message(&refused_message).await.unwrap().is_none(),
        "a refused append leaves no trace in the read models"
    );
}

/// Positions are 1..=n with no gaps, in commit order, however streams interleave.
pub async fn positions_are_gap_free_across_streams<S: Store>(store: S) {
    let customer = user("u1", UserRole::Customer);
    let mut returned = Vec::new();
    let (a, opened_a) =
        open_ticket(&store, &customer, SupportRole::General, IssueLevel::Normal).await;
    let (b, opened_b) = open_ticket(
        &store,
        &customer,
        SupportRole::Technical,
        IssueLevel::Urgent,
    )
    .await;
    returned.extend([opened_a, opened_b]);
    let mut stream_versions = [(a.clone(), 1u64), (b.clone(), 1u64)];
    for round in 0..4 {
        for (stream, version) in &mut stream_versions {
            if round == 3 && *stream == b {
                continue;
            }
            let message = new_id();
            returned.push(
                append_one(
                    &store,
                    stream,
                    *version,
                    &customer,
                    posted(&customer, &message, false),
                )
                .await,
            );
            *version += 1;
        }
    }
    let all = store.read_all(0, 1000).await.unwrap();
    let n = all.len() as u64;
    assert_eq!(n, 9);
    assert_eq!(
        positions(&all),
        (1..=n).collect::<Vec<_>>(),
        "positions are gap-free"
    );
    assert_eq!(
        all, returned,
        "read_all is the commit order with the returned envelopes"
    );
    assert_eq!(
        versions(&store.read_stream(&a, 0).await.unwrap()),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        versions(&store.read_stream(&b, 0).await.unwrap()),
        [1, 2, 3, 4]
    );
    assert_eq!(store.head().await.unwrap(), n);
}

/// `read_all` pages by position: strictly after the cursor, at most `limit`.
pub async fn read_all_pages_after_a_position<S: Store>(store: S) {
    let customer = user("u1", UserRole::Customer);
    let (ticket_id, _) =
        open_ticket(&store, &customer, SupportRole::General, IssueLevel::Normal).await;
    for version in 1..10 {
        append_one(
            &store,
            &ticket_id,
            version,
            &customer,
            posted(&customer, &new_id(), false),
        )
        .await;
    }
    assert_eq!(
        positions(&store.read_all(3, 4).await.unwrap()),
        [4, 5, 6, 7]
    );
    assert_eq!(
        positions(&store.read_all(7, 100).await.unwrap()),
        [8, 9, 10]
    );
    assert!(
        store.read_all(10, 5).await.unwrap().is_empty(),
        "nothing after the head"
    );
    assert!(
        store.read_all(0, 0).await.unwrap().is_empty(),
        "limit 0 reads nothing"
    );

    let mut paged = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store.read_all(cursor, 3).await.unwrap();
        assert!(page.len() <= 3, "a page holds at most `limit` events");
        let Some(last) = page.last() else { break };
        cursor = last.position;
        paged.extend(page);
    }
    assert_eq!(
        paged,
        store.read_all(0, 100).await.unwrap(),
        "paging visits every event once, in order"
    );
}

/// `read_stream` returns only that stream's events after a version, in version order.
pub async fn read_stream_after_a_version<S: Store>(store: S) {
    let customer = user("u1", UserRole::Customer);
    let (ticket_id, _) =
        open_ticket(&store, &customer, SupportRole::General, IssueLevel::Normal).await;
    let (other, _) = open_ticket(&store, &customer, SupportRole::General, IssueLevel::Normal).await;
    for version in 1..5 {
        append_one(
            &store,
            &ticket_id,
            version,
            &customer,
            posted(&customer, &new_id(), false),
        )
        .await;
        append_one(
            &store,
            &other,
            version,
            &customer,
            posted(&customer, &new_id(), false),
        )
        .await;
    }
    let tail = store.read_stream(&ticket_id, 2).await.unwrap();
    assert_eq!(versions(&tail), [3, 4, 5]);
    assert!(
        tail.iter().all(|e| e.stream_id == ticket_id),
        "read_stream never returns another stream's events"
    );
    assert!(store.read_stream(&ticket_id, 5).await.unwrap().is_empty());
    assert!(
        store.read_stream(&new_id(), 0).await.unwrap().is_empty(),
        "an unknown stream reads as empty"
    );
    // Pages: at most `limit` events, from the version after the cursor, this stream only.
    let page = store.read_stream_page(&ticket_id, 1, 2).await.unwrap();
    assert_eq!(versions(&page), [2, 3]);
    assert!(page.iter().all(|e| e.stream_id == ticket_id));
    let last = store.read_stream_page(&ticket_id, 3, 10).await.unwrap();
    assert_eq!(versions(&last), [4, 5]);
    assert!(
        store
            .read_stream_page(&ticket_id, 0, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `wait_beyond` returns at once when the head is already past, and wakes on a later commit.
pub async fn wait_beyond_wakes_on_commit<S: Store>(store: S) {
    let store = Arc::new(store);
    let customer = user("u1", UserRole::Customer);
    let (ticket_id, opened) =
        open_ticket(&*store, &customer, SupportRole::General, IssueLevel::Normal).await;
    let head = store.head().await.unwrap();
    assert_eq!(head, opened.position);
    tokio::time::timeout(Duration::from_secs(1), store.wait_beyond(head - 1))
        .await
        .expect("wait_beyond(p) with head > p returns at once");

    let waiter = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.wait_beyond(head).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiter.is_finished(),
        "wait_beyond(head) must wait while nothing new is committed"
    );
    append_one(
        &*store,
        &ticket_id,
        1,
        &customer,
        posted(&customer, &new_id(), false),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("wait_beyond(head) wakes once a later append commits")
        .expect("the waiting task ran to the end");
    assert_eq!(store.head().await.unwrap(), head + 1);
}

/// Checkpoints read 0 until saved, then the last saved value, independently per name.
pub async fn checkpoints_start_at_zero_and_keep_the_last_save<S: Store>(store: S) {
    assert_eq!(store.load_checkpoint("socket").await.unwrap(), 0);
    store.save_checkpoint("socket", 7).await.unwrap();
    assert_eq!(store.load_checkpoint("socket").await.unwrap(), 7);
    store.save_checkpoint("socket", 9).await.unwrap();
    assert_eq!(store.load_checkpoint("socket").await.unwrap(), 9);
    assert_eq!(
        store.load_checkpoint("discord").await.unwrap(),
        0,
        "checkpoints are per projector"
    );
    store.save_checkpoint("discord", 3).await.unwrap();
    assert_eq!(store.load_checkpoint("discord").await.unwrap(), 3);
    assert_eq!(store.load_checkpoint("socket").await.unwrap(), 9);
}

/// Retrying an append whose outcome was lost returns what the first try stored and writes
/// nothing, whatever expected version the retry carries.
pub async fn retried_append_is_idempotent<S: Store>(store: S) {
    let customer = user("u1", UserRole::Customer);
    let ticket_id = new_id();
    let message_id = new_id();
    let events = vec![
        new_event(
            &customer,
            opened(&customer, SupportRole::General, IssueLevel::Normal),
        ),
        new_event(&customer, posted(&customer, &message_id, false)),
    ];
    let first = store
        .append(&ticket_id, ExpectedVersion::NoStream, events.clone())
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(2)] {
        let retry = store
            .append(&ticket_id, expected, events.clone())
            .await
            .expect("a retried append returns the stored envelopes instead of an error");
        assert_eq!(
            retry, first,
            "the retry answers with the first try's envelopes"
        );
    }
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a retry takes no position"
    );
    // A retry of only the opening, at the stream's current version: answered with the stored
    // opening, and the stream stays where it is for the next append.
    let again = store
        .append(&ticket_id, ExpectedVersion::Exact(2), events[..1].to_vec())
        .await
        .expect("a retried first event returns the stored one");
    assert_eq!(again, first[..1].to_vec());
    let next = store
        .append(
            &ticket_id,
            ExpectedVersion::Exact(2),
            vec![new_event(&customer, posted(&customer, &new_id(), false))],
        )
        .await
        .expect("a retry answered from the log leaves the stream at its real version");
    assert_eq!(next[0].version, 3);
    let first: Vec<_> = first.into_iter().chain(next).collect();
    let head = head + 1;
    assert_eq!(store.read_stream(&ticket_id, 0).await.unwrap(), first);
    assert_eq!(store.read_all(0, 100).await.unwrap(), first);
    assert_eq!(
        store
            .list_messages(&ticket_id, None, 100, true)
            .await
            .unwrap()
            .len(),
        2,
        "a retry projects nothing twice"
    );

    let elsewhere = new_id();
    let reused = store
        .append(&elsewhere, ExpectedVersion::NoStream, events[..1].to_vec())
        .await;
    assert!(
        reused.is_err(),
        "an event id stored in another stream is not a retry: {reused:?}"
    );
    assert!(store.read_stream(&elsewhere, 0).await.unwrap().is_empty());
    assert_eq!(store.head().await.unwrap(), head);
}

/// Tickets and messages are projected in the append itself: visible as soon as it returns, and
/// equal to the in-memory projection of the stream.
pub async fn read_models_follow_each_append<S: Store>(store: S) {
    let customer = user("u1", UserRole::Customer);
    let staff = agent();
    let (ticket_id, opened) =
        open_ticket(&store, &customer, SupportRole::General, IssueLevel::Normal).await;
    let ticket = store
        .get_ticket(&ticket_id)
        .await
        .unwrap()
        .expect("the ticket is readable as soon as the append returned");
    assert_eq!(ticket.user_id, customer.id);
    assert_eq!(ticket.status, TicketStatus::Open);
    assert_eq!(ticket.user_role, UserRole::Customer);
    assert_eq!(ticket.position, opened.position);
    assert_eq!(
        (ticket.created_at, ticket.updated_at),
        (opened.recorded_at, opened.recorded_at)
    );

    let mut version = 1;
    let mut next = async |actor: &Actor, event: TicketEvent| {
        let envelope = append_one(&store, &ticket_id, version, actor, event).await;
        version += 1;
        envelope
    };
    let m1 = next(&customer, posted(&customer, "m1", false)).await;
    let message = store
        .get_message("m1")
        .await
        .unwrap()
        .expect("a message is readable as soon as the append returned");
    assert_eq!(
        message.seq, m1.version,
        "a message's seq is its event's version"
    );
    assert_eq!(message.attachments, ["https://files.example.com/m1.png"]);
    next(&customer, posted(&customer, "m2", false)).await;
    next(&staff, posted(&staff, "n1", true)).await;
    let edit = next(
        &customer,
        TicketEvent::MessageEdited {
            message_id: "m1".into(),
            content: "edited".into(),
            attachments: Some(vec!["https://files.example.com/b.png".into()]),
        },
    )
    .await;
    let m1_now = store.get_message("m1").await.unwrap().unwrap();
    assert_eq!(m1_now.content, "edited");
    assert_eq!(m1_now.attachments, ["https://files.example.com/b.png"]);
    assert_eq!(
        (m1_now.created_at, m1_now.updated_at),
        (m1.recorded_at, edit.recorded_at)
    );
    next(
        &customer,
        TicketEvent::MessageEdited {
            message_id: "m2".into(),
            content: "edited text only".into(),
            attachments: None,
        },
    )
    .await;
    assert_eq!(
        store.get_message("m2").await.unwrap().unwrap().attachments,
        ["https://files.example.com/m2.png"],
        "an edit without attachments keeps them"
    );
    let deleted = next(
        &customer,
        TicketEvent::MessageDeleted {
            message_id: "m2".into(),
        },
    )
    .await;
    assert_eq!(
        store.get_message("m2").await.unwrap().unwrap().deleted_at,
        Some(deleted.recorded_at),
        "get_message still finds a deleted message, with when it was deleted"
    );
    let listed = |internal| store.list_messages(&ticket_id, None, 100, internal);
    let ids = |list: Vec<ticketd_projections::MessageView>| {
        list.into_iter().map(|m| m.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(listed(false).await.unwrap()),
        ["m1"],
        "no deleted or internal messages"
    );
    assert_eq!(
        ids(listed(true).await.unwrap()),
        ["m1", "n1"],
        "staff see internal notes"
    );

    next(
        &staff,
        TicketEvent::SupportRoleChanged {
            from: SupportRole::General,
            to: SupportRole::Technical,
        },
    )
    .await;
    next(
        &staff,
        TicketEvent::IssueLevelChanged {
            from: IssueLevel::Normal,
            to: IssueLevel::Critical,
        },
    )
    .await;
    let closed = next(&staff, TicketEvent::TicketClosed { reason: None }).await;
    let ticket = store.get_ticket(&ticket_id).await.unwrap().unwrap();
    assert_eq!(
        (ticket.status, ticket.support_role, ticket.issue_level),
        (
            TicketStatus::Closed,
            SupportRole::Technical,
            IssueLevel::Critical
        )
    );
    assert_eq!(
        ticket.updated_at, closed.recorded_at,
        "every event moves updated_at"
    );
    next(&staff, TicketEvent::TicketReopened {}).await;
    assert_eq!(
        store.get_ticket(&ticket_id).await.unwrap().unwrap().status,
        TicketStatus::Open
    );

    let memory = MemoryReadModel::from_events(&store.read_stream(&ticket_id, 0).await.unwrap());
    assert_eq!(
        Some(&memory.tickets[&ticket_id]),
        store.get_ticket(&ticket_id).await.unwrap().as_ref(),
        "the stored ticket equals the replayed one"
    );
    for (id, message) in &memory.messages {
        assert_eq!(
            Some(message),
            store.get_message(id).await.unwrap().as_ref(),
            "the stored message {id} equals the replayed one"
        );
    }
    assert!(store.get_ticket(&new_id()).await.unwrap().is_none());
    assert!(store.get_message(&new_id()).await.unwrap().is_none());
}

/// Ticket listings are newest first, page by position, and combine filters with AND.
pub async fn ticket_listing_order_cursor_and_filters<S: Store>(store: S) {
    use IssueLevel::{Critical, Normal, Urgent};
    use SupportRole::{General, Manager, Technical};
    let alice = user("alice", UserRole::Customer);
    let bob = user("bob", UserRole::TempUser);
    let staff = agent();
    let (t1, _) = open_ticket(&store, &alice, General, Normal).await;
    let (t2, _) = open_ticket(&store, &bob, Technical, Urgent).await;
    let (t3, _) = open_ticket(&store, &alice, Technical, Critical).await;
    let (t4, _) = open_ticket(&store, &alice, General, Urgent).await;
    let (t5, _) = open_ticket(&store, &bob, General, Normal).await;
    let (t6, _) = open_ticket(&store, &alice, Manager, Normal).await;
    for closed in [&t4, &t5] {
        append_one(
            &store,
            closed,
            1,
            &staff,
            TicketEvent::TicketClosed { reason: None },
        )
        .await;
    }
    let list = async |filter: TicketFilter, before: Option<u64>, limit: usize| {
        store.list_tickets(&filter, before, limit).await.unwrap()
    };
    let all = TicketFilter::default();

    let newest_first = list(all.clone(), None, 100).await;
    assert_eq!(
        ticket_ids(&newest_first),
        [&t6, &t5, &t4, &t3, &t2, &t1],
        "newest first, by the opening event's position; later activity does not reorder"
    );
    for ticket in &newest_first {
        assert_eq!(
            Some(ticket),
            store.get_ticket(&ticket.id).await.unwrap().as_ref()
        );
    }

    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = list(all.clone(), before, 2).await;
        assert!(page.len() <= 2, "a page holds at most `limit` tickets");
        let Some(last) = page.last() else { break };
        before = Some(last.position);
        paged.extend(page);
    }
    assert_eq!(
        paged, newest_first,
        "paging by position visits every ticket once, in order"
    );

    let of_alice = TicketFilter {
        user_id: Some("alice".into()),
        ..TicketFilter::default()
    };
    assert_eq!(
        ticket_ids(&list(of_alice.clone(), None, 100).await),
        [&t6, &t4, &t3, &t1]
    );
    let t4_position = newest_first[2].position;
    assert_eq!(
        ticket_ids(&list(of_alice.clone(), Some(t4_position), 1).await),
        [&t3],
        "a cursor and a filter combine"
    );
    let by_status = |status| TicketFilter {
        status: Some(status),
        ..TicketFilter::default()
    };
    assert_eq!(
        ticket_ids(&list(by_status(TicketStatus::Closed), None, 100).await),
        [&t5, &t4]
    );
    assert_eq!(
        ticket_ids(&list(by_status(TicketStatus::Open), None, 100).await),
        [&t6, &t3, &t2, &t1]
    );
    let urgent = TicketFilter {
        issue_level: Some(Urgent),
        ..TicketFilter::default()
    };
    assert_eq!(ticket_ids(&list(urgent, None, 100).await), [&t4, &t2]);
    let technical = TicketFilter {
        support_role: Some(Technical),
        ..TicketFilter::default()
    };
    assert_eq!(
        ticket_ids(&list(technical.clone(), None, 100).await),
        [&t3, &t2]
    );
    let alice_technical = TicketFilter {
        user_id: Some("alice".into()),
        ..technical
    };
    assert_eq!(ticket_ids(&list(alice_technical, None, 100).await), [&t3]);
    let alice_open_general = TicketFilter {
        user_id: Some("alice".into()),
        status: Some(TicketStatus::Open),
        support_role: Some(General),
        issue_level: None,
        ..TicketFilter::default()
    };
    assert_eq!(
        ticket_ids(&list(alice_open_general, None, 100).await),
        [&t1]
    );
    let bob_critical = TicketFilter {
        user_id: Some("bob".into()),
        issue_level: Some(Critical),
        ..TicketFilter::default()
    };
    assert!(
        list(bob_critical, None, 100).await.is_empty(),
        "filters combine with AND"
    );
    assert!(list(all, None, 0).await.is_empty(), "limit 0 lists nothing");
}

/// Message listings are in posting order, page by seq, and hide deleted and (unless asked)
/// internal messages.
pub async fn message_listing_order_cursor_and_visibility<S: Store>(store: S) {
    let customer = user("u1", UserRole::Customer);
    let staff = agent();
    let (ticket_id, _) =
        open_ticket(&store, &customer, SupportRole::General, IssueLevel::Normal).await;
    let (other, _) = open_ticket(&store, &customer, SupportRole::General, IssueLevel::Normal).await;
    let post = [
        ("m1", &customer, false),
        ("m2", &staff, false),
        ("m3", &staff, true),
        ("m4", &customer, false),
        ("m5", &customer, false),
    ];
    let mut version = 1;
    for (id, author, internal) in post {
        append_one(
            &store,
            &ticket_id,
            version,
            author,
            posted(author, id, internal),
        )
        .await;
        version += 1;
    }
    append_one(
        &store,
        &ticket_id,
        version,
        &customer,
        TicketEvent::MessageDeleted {
            message_id: "m4".into(),
        },
    )
    .await;
    append_one(&store, &other, 1, &customer, posted(&customer, "b1", false)).await;

    let list = async |after: Option<u64>, limit: usize, internal: bool| {
        store
            .list_messages(&ticket_id, after, limit, internal)
            .await
            .unwrap()
    };
    let ids = |list: &[ticketd_projections::MessageView]| {
        list.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    };
    let everything = list(None, 100, true).await;
    assert_eq!(ids(&everything), ["m1", "m2", "m3", "m5"]);
    assert!(
        everything.windows(2).all(|w| w[0].seq < w[1].seq),
        "posting order is seq order"
    );
    assert_eq!(ids(&list(None, 100, false).await), ["m1", "m2", "m5"]);
    let first_page = list(None, 2, true).await;
    assert_eq!(ids(&first_page), ["m1", "m2"]);
    let after = first_page.last().map(|m| m.seq);
    assert_eq!(ids(&list(after, 2, true).await), ["m3", "m5"]);
    assert_eq!(
        ids(&list(after, 1, false).await),
        ["m5"],
        "the cursor skips hidden messages without counting them"
    );
    let last_seq = everything.last().map(|m| m.seq);
    assert!(list(last_seq, 10, true).await.is_empty());
    let newest = async |before: Option<u64>, limit: usize, internal: bool| {
        store
            .list_messages_newest_first(&ticket_id, before, limit, internal)
            .await
            .unwrap()
    };
    assert_eq!(
        ids(&newest(None, 100, true).await),
        ["m5", "m3", "m2", "m1"]
    );
    assert_eq!(ids(&newest(None, 100, false).await), ["m5", "m2", "m1"]);
    let latest_page = newest(None, 2, true).await;
    assert_eq!(ids(&latest_page), ["m5", "m3"]);
    let before = latest_page.last().map(|m| m.seq);
    assert_eq!(ids(&newest(before, 2, true).await), ["m2", "m1"]);
    assert_eq!(
        ids(&newest(last_seq, 1, false).await),
        ["m2"],
        "newest first, the cursor also skips hidden messages"
    );
    let first_seq = everything.first().map(|m| m.seq);
    assert!(newest(first_seq, 10, true).await.is_empty());
    assert_eq!(
        ids(&store.list_messages(&other, None, 100, false).await.unwrap()),
        ["b1"],
        "each ticket lists only its own messages"
    );
    assert!(
        store
            .list_messages(&new_id(), None, 100, true)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Fifty appends to fifty new streams at once all succeed, with positions 1..=50.
pub async fn concurrent_appends_to_distinct_streams<S: Store>(store: S) {
    let store = Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let customer = user(&format!("u{i}"), UserRole::Customer);
            open_ticket(&*store, &customer, SupportRole::General, IssueLevel::Normal).await
        });
    }
    let mut opened = Vec::new();
    while let Some(done) = tasks.join_next().await {
        opened.push(done.expect("an appending task panicked"));
    }
    let mut taken: Vec<u64> = opened.iter().map(|(_, e)| e.position).collect();
    taken.sort_unstable();
    assert_eq!(
        taken,
        (1..=50).collect::<Vec<_>>(),
        "concurrent appends leave no gaps"
    );
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(positions(&all), (1..=50).collect::<Vec<_>>());
    for (ticket_id, envelope) in &opened {
        assert_eq!(envelope.version, 1);
        assert!(
            store.get_ticket(ticket_id).await.unwrap().is_some(),
            "every concurrently opened ticket is projected"
        );
    }
    assert_eq!(store.head().await.unwrap(), 50);
}

/// Twenty writers racing on one stream, each retrying on a stale version after re-reading it,
/// all land exactly once, with versions 1..=21 and nothing overwritten.
pub async fn racing_appenders_on_one_stream_all_land<S: Store>(store: S) {
    let store = Arc::new(store);
    let customer = user("u1", UserRole::Customer);
    let (ticket_id, _) =
        open_ticket(&*store, &customer, SupportRole::General, IssueLevel::Normal).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (store, ticket_id, customer) =
            (Arc::clone(&store), ticket_id.clone(), customer.clone());
        tasks.spawn(async move {
            let message_id = format!("race-{i}");
            for _attempt in 0..1000 {
                let stream = store.read_stream(&ticket_id, 0).await.unwrap();
                let version = stream.last().map_or(0, |e| e.version);
                let event = new_event(&customer, posted(&customer, &message_id, false));
                match store
                    .append(
                        &ticket_id,
                        ExpectedVersion::from_version(version),
                        vec![event],
                    )
                    .await
                {
                    Ok(_) => return message_id,
                    Err(StoreError::WrongExpectedVersion { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("a racing append failed: {other}"),
                }
            }
            panic!("{message_id} lost the race 1000 times");
        });
    }
    let mut landed = BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        landed.insert(done.expect("a racing task panicked"));
    }
    let stream = store.read_stream(&ticket_id, 0).await.unwrap();
    assert_eq!(
        versions(&stream),
        (1..=21).collect::<Vec<_>>(),
        "every racer landed once, versions contiguous"
    );
    let posted: BTreeSet<String> = stream
        .iter()
        .filter_map(|e| match &e.event {
            TicketEvent::MessagePosted { message_id, .. } => Some(message_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        posted, landed,
        "each racer's message is in the stream exactly once"
    );
    assert_eq!(
        store
            .list_messages(&ticket_id, None, 100, false)
            .await
            .unwrap()
            .len(),
        20,
        "every landed message is projected"
    );
    assert_eq!(
        positions(&store.read_all(0, 1000).await.unwrap()),
        (1..=21).collect::<Vec<_>>()
    );
}

/// Links read back what was saved, per kind, replace on a second save and go away on removal.
pub async fn links_keep_the_last_value_per_kind<S: super::Links>(store: S) {
    assert_eq!(store.load_link("channel", "t1").await.unwrap(), None);
    store.save_link("channel", "t1", Some("42")).await.unwrap();
    store.save_link("message", "t1", Some("7")).await.unwrap();
    assert_eq!(
        store.load_link("channel", "t1").await.unwrap().as_deref(),
        Some("42")
    );
    store.save_link("channel", "t1", Some("43")).await.unwrap();
    assert_eq!(
        store.load_link("channel", "t1").await.unwrap().as_deref(),
        Some("43")
    );
    store.save_link("channel", "t1", None).await.unwrap();
    assert_eq!(store.load_link("channel", "t1").await.unwrap(), None);
    assert_eq!(
        store.load_link("message", "t1").await.unwrap().as_deref(),
        Some("7"),
        "links are per kind"
    );
}

/// A claim links a free key and answers its value; every later or racing claim of the same key
/// answers the first value and changes nothing.
pub async fn a_claimed_link_keeps_its_first_value<S: super::Links>(store: S) {
    assert_eq!(
        store.claim_link("ticket-key", "k1", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store
            .claim_link("ticket-key", "k1", "second")
            .await
            .unwrap(),
        "first",
        "a second claim answers the first value"
    );
    assert_eq!(
        store
            .load_link("ticket-key", "k1")
            .await
            .unwrap()
            .as_deref(),
        Some("first")
    );
    assert_eq!(
        store.claim_link("other-kind", "k1", "other").await.unwrap(),
        "other",
        "claims are per kind"
    );
    let claims: Vec<String> = futures_util::future::join_all((0..8).map(|i| {
        store.claim_link(
            "ticket-key",
            "k2",
            ["a", "b", "c", "d", "e", "f", "g", "h"][i],
        )
    }))
    .await
    .into_iter()
    .map(|claim| claim.unwrap())
    .collect();
    assert!(
        claims.iter().all(|value| *value == claims[0]),
        "racing claims agree on one value: {claims:?}"
    );
    assert_eq!(
        store.load_link("ticket-key", "k2").await.unwrap().as_ref(),
        Some(&claims[0])
    );
}

/// Openings under an [`OpenCap`](super::OpenCap) of 2: concurrent opens by one user at the
/// limit leave exactly the allowed number open, each refusal says how many are open, other
/// users are not counted against, a close frees a slot, and a retry of an opening that was
/// stored is answered with it even at the limit (ADR 0023).
pub async fn open_ticket_limit_holds_under_concurrency<S: Store + super::CappedAppend>(store: S) {
    let cap = super::OpenCap {
        user_id: "u1".into(),
        limit: 2,
    };
    let customer = user("u1", UserRole::Customer);
    let opening = || {
        vec![new_event(
            &customer,
            opened(&customer, SupportRole::General, IssueLevel::Normal),
        )]
    };
    let first_id = new_id();
    let first = opening();
    store
        .append_capped(&first_id, first.clone(), &cap)
        .await
        .expect("the first opening is under the limit");

    // Eight at once with one slot left: exactly one lands.
    let ids: Vec<String> = (0..8).map(|_| new_id()).collect();
    let results = futures_util::future::join_all(
        ids.iter()
            .map(|id| store.append_capped(id, opening(), &cap)),
    )
    .await;
    let mut landed = Vec::new();
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(_) => landed.push(id.clone()),
            Err(StoreError::OpenTicketLimit { open: 2, limit: 2 }) => {}
            Err(e) => panic!("an opening at the limit answers OpenTicketLimit(2, 2), not {e}"),
        }
    }
    assert_eq!(landed.len(), 1, "one of the racing openings lands");
    let open = store
        .list_tickets(
            &TicketFilter {
                user_id: Some("u1".into()),
                status: Some(TicketStatus::Open),
                ..TicketFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(open.len(), 2, "two tickets open, the limit");

    // A retry of the first opening (same event ids) is answered with what was stored.
    let retried = store
        .append_capped(&first_id, first, &cap)
        .await
        .expect("a retry of a stored opening is not refused");
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].version, 1);

    // Someone else's tickets do not count.
    let other = user("u2", UserRole::Customer);
    let other_cap = super::OpenCap {
        user_id: "u2".into(),
        limit: 2,
    };
    store
        .append_capped(
            &new_id(),
            vec![new_event(
                &other,
                opened(&other, SupportRole::General, IssueLevel::Normal),
            )],
            &other_cap,
        )
        .await
        .expect("another user has slots of their own");

    // A close frees a slot, for one opening.
    store
        .append(
            &first_id,
            ExpectedVersion::Exact(1),
            vec![new_event(
                &customer,
                TicketEvent::TicketClosed { reason: None },
            )],
        )
        .await
        .unwrap();
    store
        .append_capped(&new_id(), opening(), &cap)
        .await
        .expect("a closed ticket frees its slot");
    match store.append_capped(&new_id(), opening(), &cap).await {
        Err(StoreError::OpenTicketLimit { open: 2, limit: 2 }) => {}
        other => panic!("the freed slot is taken again: {other:?}"),
    }
}

/// What every store promises about shutting down: a second shutdown is harmless, appends and
/// checkpoint saves are refused with [`StoreError::ShuttingDown`], and reads (of `ticket_id`,
/// written before) keep answering as before. Shutting down is not part of the store traits, so
/// this is not in [`conformance_suite!`]: each store's tests call it with the store's own
/// `shutdown`, then check that a reopened store carries on.
pub async fn shutdown_refuses_writes_and_keeps_reads<S, F>(
    store: &S,
    ticket_id: &str,
    shutdown: impl Fn() -> F,
) where
    S: Store,
    F: std::future::Future<Output = ()>,
{
    let events_before = store.read_all(0, 100).await.unwrap();
    let ticket_before = store.get_ticket(ticket_id).await.unwrap();
    assert!(ticket_before.is_some(), "the ticket was projected");
    let checkpoint_before = store.load_checkpoint("socket").await.unwrap();
    shutdown().await;
    shutdown().await;
    let customer = user("u1", UserRole::Customer);
    let refused = store
        .append(
            &new_id(),
            ExpectedVersion::NoStream,
            vec![new_event(
                &customer,
                opened(&customer, SupportRole::General, IssueLevel::Normal),
            )],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::ShuttingDown)),
        "after shutdown appends are refused, got {refused:?}"
    );
    let checkpoint = store.save_checkpoint("socket", checkpoint_before + 1).await;
    assert!(
        matches!(checkpoint, Err(StoreError::ShuttingDown)),
        "after shutdown checkpoints are refused, got {checkpoint:?}"
    );
    assert_eq!(
        store.read_all(0, 100).await.unwrap(),
        events_before,
        "reads keep working after shutdown"
    );
    assert_eq!(store.get_ticket(ticket_id).await.unwrap(), ticket_before);
}

/// The reports projection (ADR 0026) answers what the recomputation from the events gives, over
/// a varied history (levels, teams, holders, notes, closes, reopens, ratings, breaches due on
/// other days), for whole-day and part-day windows, every grouping and several `as_of` instants.
pub async fn reports_equal_the_recomputation<S: Store + super::Reports>(store: S) {
    use ticketd_events::service_level::SlaTarget;
    use ticketd_projections::reports::{DAY_MS, GroupBy, ReportQuery, day_start, recompute};
    let staff = [agent(), user("root", UserRole::Admin)];
    let levels = [IssueLevel::Normal, IssueLevel::Urgent, IssueLevel::Critical];
    let teams = [
        SupportRole::General,
        SupportRole::Technical,
        SupportRole::Manager,
    ];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for i in 0..12_usize {
        let customer = user(&format!("c{}", i % 4), UserRole::Customer);
        let answerer = &staff[i % 2];
        let id = new_id();
        let mut events = vec![
            opened(&customer, teams[i % 3], levels[i % 3]),
            posted(&customer, &new_id(), false),
            posted(answerer, &new_id(), i % 3 == 0),
            posted(answerer, &new_id(), false),
        ];
        if i % 2 == 0 {
            events.push(TicketEvent::IssueLevelChanged {
                from: levels[i % 3],
                to: levels[(i + 1) % 3],
            });
        }
        if i % 3 != 2 {
            events.push(TicketEvent::AssigneeChanged {
                from: None,
                to: Some(format!("a{}", i % 2)),
                to_name: None,
            });
        }
        events.push(TicketEvent::TicketClosed { reason: None });
        if i % 4 == 1 {
            events.push(TicketEvent::TicketReopened {});
            events.push(posted(&customer, &new_id(), false));
            events.push(TicketEvent::TicketClosed { reason: None });
        }
        if i % 3 != 1 {
            events.push(TicketEvent::FeedbackGiven {
                rating: (i % 5 + 1) as u8,
                comment: None,
            });
        }
        events.push(TicketEvent::SlaBreached {
            target: SlaTarget::ALL[i % 2],
            due_at: now - (i as i64 % 4) * DAY_MS - 1_000,
        });
        for (n, event) in events.into_iter().enumerate() {
            let actor = if n == 0 { &customer } else { answerer };
            let expected = if n == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(n as u64)
            };
            store
                .append(&id, expected, vec![new_event(actor, event)])
                .await
                .expect("append");
        }
    }
    let events = store.read_all(0, 10_000).await.expect("read all");
    let (first, last) = (events[0].recorded_at, events[events.len() - 1].recorded_at);
    let middle = events[events.len() / 2].recorded_at;
    let whole = (day_start(now) - 5 * DAY_MS, day_start(now) + DAY_MS);
    let mut compared = 0;
    for (from, to) in [
        whole,
        (first, last + 1),
        (middle, whole.1),
        (now - 2 * DAY_MS, middle),
    ] {
        for group_by in GroupBy::ALL {
            for as_of in [None, Some(middle), Some(first - 1), Some(now - 2 * DAY_MS)] {
                let query = ReportQuery {
                    from,
                    to,
                    group_by,
                    as_of,
                };
                let answer = store.report(&query).await.expect("report");
                assert_eq!(answer, recompute(&events, &query), "{query:?}");
                compared += 1;
            }
        }
    }
    let all = ReportQuery {
        from: whole.0,
        to: whole.1,
        group_by: GroupBy::Week,
        as_of: None,
    };
    let answer = store.report(&all).await.expect("report");
    let sum = |f: &dyn Fn(&ticketd_projections::reports::ReportGroup) -> u64| {
        answer.groups.iter().map(f).sum::<u64>()
    };
    assert_eq!(sum(&|g| g.opened), 12);
    assert_eq!(
        sum(&|g| g.sla_breaches),
        12,
        "breaches due on other days count"
    );
    assert_eq!(sum(&|g| g.feedback.count), 8);
    assert_eq!(sum(&|g| g.reopened), 3);
    assert_eq!(compared, 80);
}
