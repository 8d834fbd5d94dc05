//! What auditors need from the MongoDB database beyond the event-store trait: the stored event
//! documents field for field in one snapshot ([`MongoAudit`], the MongoDB [`AuditSource`]), and
//! rebuilding the read models from the events ([`replay`]). The checks themselves live in
//! `crate::audit` and are the same as for the SQLite file; this file only knows the collections.
//!
//! Every read of a [`MongoAudit`] goes through one snapshot session, so `ticketd verify` sees one
//! consistent state of the whole database while instances keep appending beside it (the
//! embedded store gets the same from one read transaction). A production `mongod` keeps snapshot
//! history for `minSnapshotHistoryWindowInSeconds` (300 s by default): a verify beside live
//! writers that takes longer is refused with `SnapshotTooOld` rather than giving a wrong answer.

use super::docs::{
    message_from_doc, raw_from_doc, stream_tip_from_doc, ticket_from_doc, to_i64, unavailable,
};
use super::reports::{REPORT_COUNTS, REPORT_FACTS, REPORT_TICKETS};
use super::schema::{self, BLOCKS, Collections, EVENTS_COUNTER, MESSAGES, REPLIES, TICKETS};
use crate::store::audit_source::{AuditSource, RawEvent, ReplaySummary};
use bson::{Document, doc};
use mongodb::{ClientSession, Collection, Database, SessionCursor};
use std::collections::BTreeMap;
use std::collections::HashMap;
use ticketd_events::{EventEnvelope, StoreError};
use ticketd_projections::reports::{
    Dims, FactKind, ReportFact, ReportFolder, ReportRow, day_counters,
};
use ticketd_projections::{MemoryReadModel, MessageView, TicketView};

/// Where a replay builds the read models before they replace the live ones.
const TICKETS_REBUILD: &str = "tickets_replay";
/// See [`TICKETS_REBUILD`].
const MESSAGES_REBUILD: &str = "messages_replay";
/// See [`TICKETS_REBUILD`]: the saved replies (ADR 0021).
const REPLIES_REBUILD: &str = "saved_replies_replay";
/// See [`TICKETS_REBUILD`]: the blocks (ADR 0021).
const BLOCKS_REBUILD: &str = "blocks_replay";
/// See [`TICKETS_REBUILD`]: the search index's terms (ADR 0024).
const SEARCH_REBUILD: &str = "search_terms_replay";
/// See [`TICKETS_REBUILD`]: the reports projection (ADR 0026).
const REPORT_TICKETS_REBUILD: &str = "report_tickets_replay";
/// See [`REPORT_TICKETS_REBUILD`].
const REPORT_FACTS_REBUILD: &str = "report_facts_replay";
/// See [`REPORT_TICKETS_REBUILD`].
const REPORT_COUNTS_REBUILD: &str = "report_counts_replay";
/// Documents written per `insert_many` during a replay.
const INSERT_BATCH: usize = 1_000;

/// A read-only view of a ticketd database in one snapshot.
pub struct MongoAudit {
    /// The database's name, for messages.
    name: String,
    /// Its collections.
    collections: Collections,
    /// The snapshot session every read goes through.
    session: ClientSession,
}

impl MongoAudit {
    /// Connects to `uri` and opens a snapshot of database `db_name`. Refuses a server that is
    /// not a replica set, and a database ticketd never wrote (a mistyped `DB_NAME` must not
    /// verify as an empty, intact store).
    pub async fn open(uri: &str, db_name: &str) -> Result<Self, StoreError> {
        let client = super::client(uri).await?;
        // No default read concern: a snapshot session reads at its own snapshot.
        let db = client.database(db_name);
        schema::check_replica_set(&db).await?;
        let collections = Collections::new(&db);
        require_store(&collections, db_name).await?;
        let session = client
            .start_session()
            .snapshot(true)
            .await
            .map_err(unavailable)?;
        Ok(MongoAudit {
            name: db_name.to_owned(),
            collections,
            session,
        })
    }

    /// Runs `find` in the snapshot and decodes every document.
    async fn find<T>(
        &mut self,
        collection: &Collection<Document>,
        filter: Document,
        sort: Document,
        limit: Option<i64>,
        decode: impl Fn(&Document) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut find = collection.find(filter).sort(sort);
        if let Some(limit) = limit {
            find = find.limit(limit);
        }
        let cursor = find.session(&mut self.session).await.map_err(unavailable)?;
        drain(cursor, &mut self.session, decode).await
    }
}

/// Drains a session cursor, decoding each document with `decode`.
async fn drain<T>(
    mut cursor: SessionCursor<Document>,
    session: &mut ClientSession,
    decode: impl Fn(&Document) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut items = Vec::new();
    while cursor.advance(session).await.map_err(unavailable)? {
        let document: Document = cursor.deserialize_current().map_err(unavailable)?;
        items.push(decode(&document)?);
    }
    Ok(items)
}

/// Refuses a database without ticketd's counter document.
async fn require_store(collections: &Collections, db_name: &str) -> Result<(), StoreError> {
    let counter = collections
        .counters
        .find_one(doc! {"_id": EVENTS_COUNTER})
        .await
        .map_err(unavailable)?;
    match counter {
        Some(_) => Ok(()),
        None => Err(StoreError::Unavailable(format!(
            "MongoDB database {db_name} holds no ticketd store (is DB_NAME right?)"
        ))),
    }
}

impl AuditSource for MongoAudit {
    async fn events_after(
        &mut self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RawEvent>, StoreError> {
        let events = self.collections.events.clone();
        let filter = doc! {"_id": {"$gt": to_i64(after_position)?}};
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.find(&events, filter, doc! {"_id": 1}, Some(limit), raw_from_doc)
            .await
    }

    async fn stream(&mut self, stream_id: &str) -> Result<Vec<RawEvent>, StoreError> {
        let events = self.collections.events.clone();
        let sort = doc! {"stream_id": 1, "version": 1};
        self.find(
            &events,
            doc! {"stream_id": stream_id},
            sort,
            None,
            raw_from_doc,
        )
        .await
    }

    async fn stream_ids(&mut self) -> Result<Vec<String>, StoreError> {
        // An aggregation cursor rather than `distinct`, whose single answer document is capped
        // at 16 MiB (about 400,000 ticket ids).
        let cursor = self
            .collections
            .events
            .aggregate([
                doc! {"$group": {"_id": "$stream_id"}},
                doc! {"$sort": {"_id": 1}},
            ])
            .session(&mut self.session)
            .await
            .map_err(unavailable)?;
        drain(cursor, &mut self.session, |d| {
            d.get_str("_id")
                .map(str::to_owned)
                .map_err(|e| StoreError::Corrupt {
                    position: 0,
                    reason: format!("an event's stream_id: {e}"),
                })
        })
        .await
    }

    async fn stream_tips(&mut self) -> Result<HashMap<String, (u64, String)>, StoreError> {
        let streams = self.collections.streams.clone();
        let tips = self
            .find(
                &streams,
                doc! {},
                doc! {"_id": 1},
                None,
                stream_tip_from_doc,
            )
            .await?;
        Ok(tips.into_iter().collect())
    }

    async fn ticket(&mut self, ticket_id: &str) -> Result<Option<TicketView>, StoreError> {
        let tickets = self.collections.tickets.clone();
        let found = self
            .find(
                &tickets,
                doc! {"_id": ticket_id},
                doc! {},
                Some(1),
                ticket_from_doc,
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn messages_of(&mut self, ticket_id: &str) -> Result<Vec<MessageView>, StoreError> {
        let messages = self.collections.messages.clone();
        let sort = doc! {"ticket_id": 1, "seq": 1};
        self.find(
            &messages,
            doc! {"ticket_id": ticket_id},
            sort,
            None,
            message_from_doc,
        )
        .await
    }

    async fn read_model_counts(&mut self) -> Result<(u64, u64), StoreError> {
        let mut counts = [0u64; 2];
        for (count, collection) in counts
            .iter_mut()
            .zip([&self.collections.tickets, &self.collections.messages])
        {
            let n = collection
                .count_documents(doc! {})
                .session(&mut self.session)
                .await
                .map_err(unavailable)?;
            *count = n;
        }
        Ok((counts[0], counts[1]))
    }

    async fn replies(&mut self) -> Result<Vec<ticketd_projections::ReplyView>, StoreError> {
        let replies = self.collections.replies.clone();
        super::helpdesk::list_replies(&replies, Some(&mut self.session)).await
    }

    async fn blocks(&mut self) -> Result<Vec<ticketd_projections::BlockView>, StoreError> {
        let blocks = self.collections.blocks.clone();
        super::helpdesk::list_blocks(&blocks, Some(&mut self.session)).await
    }

    async fn report_projection(&mut self) -> Result<(Vec<ReportFact>, Vec<ReportRow>), StoreError> {
        let facts = self.collections.report_facts.clone();
        let counts = self.collections.report_counts.clone();
        let mut facts = self
            .find(
                &facts,
                doc! {},
                doc! {"_id": 1},
                None,
                super::reports::fact_from,
            )
            .await?;
        let mut counters = self
            .find(
                &counts,
                doc! {},
                doc! {"_id": 1},
                None,
                super::reports::counter_from,
            )
            .await?;
        facts.sort();
        counters.sort();
        Ok((facts, counters))
    }

    fn describe(&self) -> String {
        format!("MongoDB database {}", self.name)
    }
}

/// Rebuilds the read models of database `db_name` from its events: folds each ticket's stream
/// through [`MemoryReadModel`] (the changes the inline projection applies) into fresh
/// collections with the live ones' indexes, then renames them over the live `tickets` and
/// `messages`. Until the rename the live read models are untouched, so a replay that fails or
/// is killed leaves them as they were.
///
/// Every instance on the database must be stopped: an append committed during the rebuild
/// would be missing from it. The counter is read before and after, and a replay that saw the
/// log move is abandoned (the staging collections dropped) instead of swapped in.
///
/// `progress(done, total)` is called after each stream with the events folded so far.
pub async fn replay(
    uri: &str,
    db_name: &str,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReplaySummary, StoreError> {
    let db = super::majority_database(uri, db_name).await?;
    let collections = Collections::new(&db);
    require_store(&collections, db_name).await?;
    let head = super::reader::head(&collections).await?;
    let staging = Staging {
        tickets: db.collection(TICKETS_REBUILD),
        messages: db.collection(MESSAGES_REBUILD),
        replies: db.collection(REPLIES_REBUILD),
        blocks: db.collection(BLOCKS_REBUILD),
        search: db.collection(SEARCH_REBUILD),
        report_tickets: db.collection(REPORT_TICKETS_REBUILD),
        report_facts: db.collection(REPORT_FACTS_REBUILD),
        report_counts: db.collection(REPORT_COUNTS_REBUILD),
    };
    staging.drop().await?;
    // The replies and blocks may rebuild to nothing; the rename needs the collections to exist.
    for name in [
        REPLIES_REBUILD,
        BLOCKS_REBUILD,
        REPORT_TICKETS_REBUILD,
        REPORT_FACTS_REBUILD,
        REPORT_COUNTS_REBUILD,
        SEARCH_REBUILD,
    ] {
        db.create_collection(name).await.map_err(unavailable)?;
    }
    let built = rebuild(&collections, &staging, head, &mut progress).await;
    let moved = match &built {
        Ok(_) => super::reader::head(&collections)
            .await
            .map(|now| now != head),
        Err(_) => Ok(false),
    };
    match (built, moved) {
        (Ok(summary), Ok(false)) => {
            swap_in(&db, TICKETS_REBUILD, TICKETS).await?;
            swap_in(&db, MESSAGES_REBUILD, MESSAGES).await?;
            swap_in(&db, REPLIES_REBUILD, REPLIES).await?;
            swap_in(&db, BLOCKS_REBUILD, BLOCKS).await?;
            swap_in(&db, SEARCH_REBUILD, schema::SEARCH).await?;
            swap_in(&db, REPORT_TICKETS_REBUILD, REPORT_TICKETS).await?;
            swap_in(&db, REPORT_FACTS_REBUILD, REPORT_FACTS).await?;
            swap_in(&db, REPORT_COUNTS_REBUILD, REPORT_COUNTS).await?;
            // The rebuilt tickets carry no service-level fields yet: the next start computes
            // them under its policy.
            collections
                .counters
                .delete_one(doc! {"_id": super::projection::SLA_POLICY})
                .await
                .map_err(unavailable)?;
            Ok(summary)
        }
        (Ok(_), Ok(true)) => {
            staging.drop().await?;
            Err(StoreError::Unavailable(format!(
                "events were appended to {db_name} during the replay: stop every ticketd \
                 instance on this database and run it again (the read models were left as \
                 they were)"
            )))
        }
        (Err(e), _) | (_, Err(e)) => {
            let _ = staging.drop().await;
            Err(e)
        }
    }
}

/// The collections a replay builds before they replace the live ones.
struct Staging {
    /// Tickets.
    tickets: Collection<Document>,
    /// Messages.
    messages: Collection<Document>,
    /// Saved replies (ADR 0021).
    replies: Collection<Document>,
    /// Blocks (ADR 0021).
    blocks: Collection<Document>,
    /// Search terms (ADR 0024).
    search: Collection<Document>,
    /// The reports projection (ADR 0026): per-ticket state.
    report_tickets: Collection<Document>,
    /// Its facts.
    report_facts: Collection<Document>,
    /// Its day counters.
    report_counts: Collection<Document>,
}

impl Staging {
    async fn drop(&self) -> Result<(), StoreError> {
        for collection in [
            &self.tickets,
            &self.messages,
            &self.replies,
            &self.blocks,
            &self.search,
            &self.report_tickets,
            &self.report_facts,
            &self.report_counts,
        ] {
            collection.drop().await.map_err(unavailable)?;
        }
        Ok(())
    }
}

/// Folds the events up to `head`, one stream at a time (memory holds one ticket), into
/// `tickets` and `messages`. One cursor over the `(stream_id, version)` index brings every
/// stream's events in order, rather than a query per ticket.
async fn rebuild(
    collections: &Collections,
    staging: &Staging,
    head: u64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<ReplaySummary, StoreError> {
    schema::read_model_indexes(&staging.tickets, &staging.messages).await?;
    schema::search_indexes(&staging.search).await?;
    schema::report_indexes(&staging.report_facts, &staging.report_counts).await?;
    let mut cursor = collections
        .events
        .find(doc! {"_id": {"$lte": to_i64(head)?}})
        .sort(doc! {"stream_id": 1, "version": 1})
        .await
        .map_err(unavailable)?;
    let mut summary = ReplaySummary {
        events: 0,
        tickets: 0,
        messages: 0,
    };
    let mut out = Output::new(staging);
    let mut stream: Vec<EventEnvelope> = Vec::new();
    while cursor.advance().await.map_err(unavailable)? {
        let document: Document = cursor.deserialize_current().map_err(unavailable)?;
        let envelope = raw_from_doc(&document)?.into_envelope()?;
        if stream
            .first()
            .is_some_and(|first| first.stream_id != envelope.stream_id)
        {
            out.fold(&std::mem::take(&mut stream), &mut summary).await?;
            progress(summary.events, head);
        }
        stream.push(envelope);
    }
    out.fold(&stream, &mut summary).await?;
    out.flush(true).await?;
    progress(summary.events, head);
    Ok(summary)
}

/// The rebuilt documents on their way to the staging collections, written in batches.
struct Output<'a> {
    /// Where everything goes.
    staging: &'a Staging,
    /// Ticket documents not yet written.
    ticket_docs: Vec<Document>,
    /// Message documents not yet written.
    message_docs: Vec<Document>,
    /// Saved reply and block documents not yet written (few: kept to the end).
    reply_docs: Vec<Document>,
    /// See `reply_docs`.
    block_docs: Vec<Document>,
    /// Search term documents not yet written (ADR 0024).
    search_docs: Vec<Document>,
    /// Report state and fact documents not yet written.
    report_docs: Vec<Document>,
    /// See `report_docs`.
    fact_docs: Vec<Document>,
    /// The day counters so far (written at the end; one per day and kind of ticket).
    counters: BTreeMap<(i64, FactKind, Dims, i64), u64>,
}

impl<'a> Output<'a> {
    fn new(staging: &'a Staging) -> Self {
        Output {
            staging,
            ticket_docs: Vec::new(),
            message_docs: Vec::new(),
            reply_docs: Vec::new(),
            block_docs: Vec::new(),
            search_docs: Vec::new(),
            report_docs: Vec::new(),
            fact_docs: Vec::new(),
            counters: BTreeMap::new(),
        }
    }

    /// Folds one stream and queues its rows.
    async fn fold(
        &mut self,
        stream: &[EventEnvelope],
        summary: &mut ReplaySummary,
    ) -> Result<(), StoreError> {
        if stream.is_empty() {
            return Ok(());
        }
        let model = MemoryReadModel::from_events(stream);
        summary.events += stream.len() as u64;
        summary.tickets += model.tickets.len() as u64;
        summary.messages += model.messages.len() as u64;
        let mut positions = std::collections::HashMap::new();
        for ticket in model.tickets.values() {
            self.ticket_docs.push(super::docs::ticket_doc(ticket)?);
            self.search_docs.extend(super::search::ticket_docs(ticket)?);
            positions.insert(ticket.id.as_str(), to_i64(ticket.position)?);
        }
        for message in model.messages.values() {
            self.message_docs.push(super::docs::message_doc(message)?);
            if let Some(p) = positions.get(message.ticket_id.as_str()) {
                self.search_docs
                    .extend(super::search::message_docs(*p, message)?);
            }
        }
        for reply in model.replies.values() {
            self.reply_docs.push(super::helpdesk::reply_doc(reply));
        }
        for block in model.blocks.values() {
            self.block_docs.push(super::helpdesk::block_doc(block));
        }
        // The reports projection: a ticket's facts depend on its own stream only (ADR 0026).
        let mut folder = ReportFolder::default();
        let facts: Vec<ReportFact> = stream.iter().flat_map(|e| folder.step(e)).collect();
        for row in day_counters(&facts) {
            *self
                .counters
                .entry((row.at, row.kind, row.dims, row.value))
                .or_default() += row.count;
        }
        for (id, state) in &folder.tickets {
            self.report_docs.push(super::reports::state_doc(id, state)?);
        }
        for fact in &facts {
            self.fact_docs.push(super::reports::fact_doc(fact)?);
        }
        if self.ticket_docs.len()
            + self.message_docs.len()
            + self.search_docs.len()
            + self.fact_docs.len()
            >= INSERT_BATCH
        {
            self.flush(false).await?;
        }
        Ok(())
    }

    /// Writes every queued document; `last` writes the day counters too.
    async fn flush(&mut self, last: bool) -> Result<(), StoreError> {
        let mut counter_docs = Vec::new();
        if last {
            counter_docs = std::mem::take(&mut self.counters)
                .into_iter()
                .map(|((at, kind, dims, value), count)| {
                    super::reports::counter_doc(&ReportRow {
                        kind,
                        at,
                        dims,
                        value,
                        count,
                    })
                })
                .collect();
        }
        for (collection, documents) in [
            (&self.staging.report_tickets, &mut self.report_docs),
            (&self.staging.report_facts, &mut self.fact_docs),
            (&self.staging.report_counts, &mut counter_docs),
            (&self.staging.tickets, &mut self.ticket_docs),
            (&self.staging.messages, &mut self.message_docs),
            (&self.staging.replies, &mut self.reply_docs),
            (&self.staging.blocks, &mut self.block_docs),
            (&self.staging.search, &mut self.search_docs),
        ] {
            if !documents.is_empty() {
                collection
                    .insert_many(std::mem::take(documents))
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(())
    }
}

/// Renames collection `from` over `to`, dropping the old `to` in the same command.
async fn swap_in(db: &Database, from: &str, to: &str) -> Result<(), StoreError> {
    let name = db.name();
    db.client()
        .database("admin")
        .run_command(doc! {
            "renameCollection": format!("{name}.{from}"),
            "to": format!("{name}.{to}"),
            "dropTarget": true,
        })
        .await
        .map_err(unavailable)?;
    Ok(())
}
