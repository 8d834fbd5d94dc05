//! The auto-close sweep driven in-process with an injected time, on both stores: nothing before
//! the warning is due, one warning at its time and none again, the close at its time, a
//! customer's reply stopping the countdown, and sweeps by two executors at once (two instances)
//! warning once and closing once. The black-box side is `tests/api_autoclose.rs`.

mod common;

use common::TestMongo;
use std::time::Duration;
use ticketd::autoclose::{Swept, sweep};
use ticketd::commands::{Context, Executor};
use ticketd::store::conformance::user;
use ticketd::store::{
    BlockList, Countdowns, EmbeddedOptions, EmbeddedStore, MongoStore, ReadModels,
};
use ticketd::ticket_rules::AutoClose;
use ticketd_events::{Command, EventStore, TicketEvent, TicketStatus, UserRole};

const RULES: AutoClose = AutoClose {
    after: Duration::from_secs(100),
    warning: Duration::from_secs(20),
};

fn context(id: &str, role: UserRole) -> Context {
    Context {
        actor: user(id, role),
        correlation_id: uuid::Uuid::now_v7().to_string(),
        idempotency: None,
    }
}

async fn open<S: EventStore + BlockList>(executor: &Executor<S>) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let open = Command::OpenTicket {
        topic: "Printer".into(),
        description: "On fire".into(),
        email: "ann@example.com".into(),
    };
    executor
        .execute(&id, &context("ann", UserRole::Customer), &[open])
        .await
        .unwrap();
    id
}

async fn say<S: EventStore + BlockList>(
    executor: &Executor<S>,
    ticket: &str,
    who: &str,
    role: UserRole,
) {
    let post = Command::PostMessage {
        message_id: uuid::Uuid::now_v7().to_string(),
        content: format!("{who} says hi"),
        attachments: vec![],
        internal: false,
    };
    executor
        .execute(ticket, &context(who, role), &[post])
        .await
        .unwrap();
}

/// The ticket's row as stored. Not `get_ticket`: its cache keeps a row across customer posts,
/// which move only the countdown, and the countdown is read by the timer's own query only.
async fn row<S: ReadModels>(store: &S, ticket: &str) -> ticketd_projections::TicketView {
    store
        .list_tickets(&ticketd::store::TicketFilter::default(), None, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == ticket)
        .expect("the ticket is listed")
}

/// When the countdown of `ticket` started, from the read model.
async fn since<S: ReadModels>(store: &S, ticket: &str) -> i64 {
    let view = row(store, ticket).await;
    view.countdown.expect("a countdown").since
}

async fn system_events<S: EventStore>(store: &S, ticket: &str) -> (usize, usize) {
    let events = store.read_stream(ticket, 0).await.unwrap();
    let system: Vec<_> = events.iter().filter(|e| e.actor.id == "system").collect();
    let warnings = system
        .iter()
        .filter(|e| matches!(e.event, TicketEvent::MessagePosted { .. }))
        .count();
    let closes = system
        .iter()
        .filter(|e| {
            matches!(&e.event, TicketEvent::TicketClosed { reason } if reason.as_deref() == Some("inactive"))
        })
        .count();
    (warnings, closes)
}

async fn the_sweep_follows_the_clock<S>(store: S)
where
    S: EventStore + BlockList + ReadModels + Countdowns + Clone + 'static,
{
    let executor = Executor::new(store.clone());
    let waiting = open(&executor).await;
    let answered = open(&executor).await;
    let untouched = open(&executor).await;
    say(&executor, &waiting, "ada", UserRole::Agent).await;
    say(&executor, &answered, "ada", UserRole::Agent).await;
    let t0 = since(&store, &waiting).await;
    let t1 = since(&store, &answered).await;
    assert!(
        row(&store, &untouched).await.countdown.is_none(),
        "a ticket staff never answered waits on nobody"
    );

    let nothing = Swept::default();
    assert_eq!(
        sweep(&executor, &RULES, t0 + 79_999).await.unwrap(),
        nothing
    );
    let at_warning = t0.max(t1) + 80_000;
    assert_eq!(
        sweep(&executor, &RULES, at_warning).await.unwrap(),
        Swept {
            warned: 2,
            closed: 0
        }
    );
    assert_eq!(
        sweep(&executor, &RULES, at_warning).await.unwrap(),
        nothing,
        "a second sweep warns nobody again"
    );
    let warned = row(&store, &waiting).await;
    assert!(warned.countdown.unwrap().warned_at.is_some());
    let customer_sees = store
        .list_messages(&waiting, None, 10, false)
        .await
        .unwrap();
    assert!(
        customer_sees.iter().any(|m| m.author_id == "system"),
        "the warning is a public message"
    );

    say(&executor, &answered, "ann", UserRole::Customer).await;
    assert!(row(&store, &answered).await.countdown.is_none());

    let at_close = t0.max(t1) + 100_000;
    assert_eq!(
        sweep(&executor, &RULES, at_close).await.unwrap(),
        Swept {
            warned: 0,
            closed: 1
        }
    );
    assert_eq!(
        sweep(&executor, &RULES, at_close + 500_000).await.unwrap(),
        nothing
    );
    let closed = row(&store, &waiting).await;
    assert_eq!(closed.status, TicketStatus::Closed);
    assert!(closed.countdown.is_none());
    assert_eq!(system_events(&store, &waiting).await, (1, 1));
    assert_eq!(system_events(&store, &answered).await, (1, 0));
    assert_eq!(row(&store, &answered).await.status, TicketStatus::Open);

    // Another instance, which opened the ticket and so holds it in its cache as it was before
    // staff answered elsewhere: its sweep still warns (decided on fresh state, not the cache).
    let other = Executor::new(store.clone());
    let stale = open(&other).await;
    say(&executor, &stale, "ada", UserRole::Agent).await;
    let t = since(&store, &stale).await;
    assert_eq!(
        sweep(&other, &RULES, t + 80_000).await.unwrap(),
        Swept {
            warned: 1,
            closed: 0
        }
    );

    // Two instances sweeping at once: each its own executor (its own cache and locks).
    let racing = open(&executor).await;
    say(&executor, &racing, "ada", UserRole::Agent).await;
    let t = since(&store, &racing).await;
    for now in [t + 80_000, t + 100_000] {
        let (a, b) = tokio::join!(sweep(&executor, &RULES, now), sweep(&other, &RULES, now));
        let (a, b) = (a.unwrap(), b.unwrap());
        // `stale` is due too (warned at t0 + 80 s, so closing at +100 s of its own start): count
        // only what happened to `racing` below.
        let _ = (a, b);
    }
    assert_eq!(system_events(&store, &racing).await, (1, 1));
    assert_eq!(system_events(&store, &stale).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_sweep_follows_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    the_sweep_follows_the_clock(store.clone()).await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_sweep_follows_the_clock() {
    let Some(mongo) = TestMongo::new("autoclose_sweep") else {
        return;
    };
    let store = MongoStore::connect(&mongo.uri, &mongo.db).await.unwrap();
    the_sweep_follows_the_clock(store.clone()).await;
    store.shutdown().await;
    mongo.drop_database().await;
}
