//! The database's layout: which collections there are, the indexes every query needs (created at
//! start-up, so no request ever scans a collection), and the start-up check that the server is
//! a replica set, without which there are no transactions and no change streams.

use super::docs::unavailable;
use bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use ticketd_events::StoreError;

/// The append-only log; `_id` is the global position.
pub(super) const EVENTS: &str = "events";
/// Each stream's version and last hash: what an append checks and chains to.
pub(super) const STREAMS: &str = "streams";
/// One document, `_id: "events"`: the last position, its global hash and time.
pub(super) const COUNTERS: &str = "counters";
/// The Ticket read model.
pub(super) const TICKETS: &str = "tickets";
/// The Message read model.
pub(super) const MESSAGES: &str = "messages";
/// The saved replies read model, `_id` the name (ADR 0021).
pub(super) const REPLIES: &str = "saved_replies";
/// The blocks read model, `_id` the user id (ADR 0021).
pub(super) const BLOCKS: &str = "blocks";
/// The search index's terms (ADR 0024).
pub(super) const SEARCH: &str = "search_terms";
/// Projector checkpoints, `_id` the projector's name.
pub(super) const CHECKPOINTS: &str = "checkpoints";
/// Links between our ids and another system's, `_id: {kind, key}`.
pub(super) const LINKS: &str = "links";
/// Leases for work only one instance may do, `_id` the lease's name.
pub(super) const LEASES: &str = "leases";

/// The `_id` of the global counter document.
pub(super) const EVENTS_COUNTER: &str = "events";

/// Handles on every collection, cloned cheaply by the writer, readers and follower.
#[derive(Clone, Debug)]
pub(super) struct Collections {
    /// See [`EVENTS`].
    pub(super) events: Collection<Document>,
    /// See [`STREAMS`].
    pub(super) streams: Collection<Document>,
    /// See [`COUNTERS`].
    pub(super) counters: Collection<Document>,
    /// See [`TICKETS`].
    pub(super) tickets: Collection<Document>,
    /// See [`MESSAGES`].
    pub(super) messages: Collection<Document>,
    /// See [`REPLIES`].
    pub(super) replies: Collection<Document>,
    /// See [`BLOCKS`].
    pub(super) blocks: Collection<Document>,
    /// See [`SEARCH`].
    pub(super) search: Collection<Document>,
    /// Whether the projection keeps the search index (`SEARCH_INDEX`, ADR 0024); shared by
    /// every clone of one store's handles.
    pub(super) search_kept: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Tickets' positions as the search projection looked them up (see
    /// [`super::search::TicketPositions`]); shared by every clone of one store's handles.
    pub(super) ticket_positions: std::sync::Arc<std::sync::Mutex<super::search::TicketPositions>>,
    /// See [`CHECKPOINTS`].
    pub(super) checkpoints: Collection<Document>,
    /// See [`LINKS`].
    pub(super) links: Collection<Document>,
    /// The reports projection's per-ticket state (ADR 0026).
    pub(super) report_tickets: Collection<Document>,
    /// The reports projection's facts.
    pub(super) report_facts: Collection<Document>,
    /// The reports projection's per-day counters.
    pub(super) report_counts: Collection<Document>,
    /// The service-level targets the tickets' `sla_*` fields are computed with (ADR 0025).
    pub(super) sla: std::sync::Arc<ticketd_events::SlaPolicy>,
}

impl Collections {
    pub(super) fn new(db: &Database) -> Self {
        Collections {
            events: db.collection(EVENTS),
            streams: db.collection(STREAMS),
            counters: db.collection(COUNTERS),
            tickets: db.collection(TICKETS),
            messages: db.collection(MESSAGES),
            replies: db.collection(REPLIES),
            blocks: db.collection(BLOCKS),
            search: db.collection(SEARCH),
            search_kept: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            ticket_positions: std::sync::Arc::default(),
            checkpoints: db.collection(CHECKPOINTS),
            links: db.collection(LINKS),
            report_tickets: db.collection(super::reports::REPORT_TICKETS),
            report_facts: db.collection(super::reports::REPORT_FACTS),
            report_counts: db.collection(super::reports::REPORT_COUNTS),
            sla: std::sync::Arc::default(),
        }
    }
}

/// Refuses a server that is not a replica set member able to take writes.
pub(super) async fn check_replica_set(db: &Database) -> Result<(), StoreError> {
    let hello = db
        .client()
        .database("admin")
        .run_command(doc! {"hello": 1})
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot reach MongoDB: {e}")))?;
    if hello.get_str("setName").is_err() {
        return Err(StoreError::Unavailable(
            "MongoDB is not a replica set: ticketd needs transactions and change streams, which \
             only a replica set has. Start mongod with --replSet NAME and run rs.initiate() once \
             (a single-node replica set is enough)"
                .into(),
        ));
    }
    if !hello.get_bool("isWritablePrimary").unwrap_or(false) {
        return Err(StoreError::Unavailable(
            "MongoDB answered from a member that is not the primary: connect ticketd to the \
             replica set (or its primary)"
                .into(),
        ));
    }
    Ok(())
}

/// An index that refuses a second document with the same keys.
fn unique(keys: Document, name: &str) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(
            IndexOptions::builder()
                .unique(true)
                .name(name.to_owned())
                .build(),
        )
        .build()
}

/// An index for lookups and sorted walks.
fn plain(keys: Document, name: &str) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().name(name.to_owned()).build())
        .build()
}

/// Creates every index (a no-op when they exist) and the counter document.
pub(super) async fn prepare(collections: &Collections) -> Result<(), StoreError> {
    collections
        .events
        .create_indexes([
            unique(doc! {"stream_id": 1, "version": 1}, "stream_version"),
            unique(doc! {"event_id": 1}, "event_id"),
        ])
        .await
        .map_err(unavailable)?;
    read_model_indexes(&collections.tickets, &collections.messages).await?;
    search_indexes(&collections.search).await?;
    report_indexes(&collections.report_facts, &collections.report_counts).await?;
    collections
        .counters
        .update_one(
            doc! {"_id": EVENTS_COUNTER},
            doc! {"$setOnInsert": {"position": 0_i64, "global_hash": "", "recorded_at": 0_i64}},
        )
        .upsert(true)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// The indexes the API's queries need on a tickets and a messages collection: the live ones, or
/// those a replay builds before it swaps them in.
pub(super) async fn read_model_indexes(
    tickets: &Collection<Document>,
    messages: &Collection<Document>,
) -> Result<(), StoreError> {
    tickets
        .create_indexes([
            unique(doc! {"position": 1}, "position"),
            plain(doc! {"user_id": 1, "position": 1}, "by_user"),
            plain(doc! {"status": 1, "position": 1}, "by_status"),
            plain(doc! {"issue_level": 1, "position": 1}, "by_issue_level"),
            plain(doc! {"support_role": 1, "position": 1}, "by_support_role"),
            plain(doc! {"assignee_id": 1, "position": 1}, "by_assignee"),
            plain(doc! {"tags": 1, "position": 1}, "by_tag"),
            plain(doc! {"countdown.since": 1}, "by_countdown"),
            // The `sla` filters and the breach sweeper (ADR 0025).
            plain(doc! {"sla_next_due": 1}, "by_sla_next_due"),
            plain(doc! {"sla_sweep_at": 1}, "by_sla_sweep"),
            plain(doc! {"sla_breached": 1, "position": 1}, "by_sla_breached"),
        ])
        .await
        .map_err(unavailable)?;
    messages
        .create_indexes([plain(doc! {"ticket_id": 1, "seq": 1}, "by_ticket")])
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// The search collection's indexes (ADR 0024): words by term (a prefix is a range of it,
/// answered from the index alone), and a document's words by ticket and version, which an edit
/// or a deletion removes.
pub(super) async fn search_indexes(search: &Collection<Document>) -> Result<(), StoreError> {
    search
        .create_indexes([
            plain(doc! {"t": 1, "p": 1, "f": 1}, "by_term"),
            plain(doc! {"p": 1, "s": 1}, "by_document"),
        ])
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// The indexes a report reads through (ADR 0026): facts by kind and time, counters by day.
pub(super) async fn report_indexes(
    facts: &Collection<Document>,
    counts: &Collection<Document>,
) -> Result<(), StoreError> {
    facts
        .create_indexes([plain(doc! {"kind": 1, "at": 1}, "by_kind_at")])
        .await
        .map_err(unavailable)?;
    counts
        .create_indexes([plain(doc! {"day": 1}, "by_day")])
        .await
        .map_err(unavailable)?;
    Ok(())
}
