//! The store for several instances: events, read models and checkpoints in a MongoDB replica set
//! (`MONGO_URI`, database `DB_NAME`). Each instance runs one writer task that group-commits its
//! queued appends in one transaction, taking gap-free positions from a counter document inside
//! that transaction ([`writer`], ADR 0011); read models are projected in the same transaction
//! ([`projection`]), so a client always reads its own writes, whichever instance it asks next.
//! A follower task ([`follower`]) learns of other instances' commits from a change stream (or by
//! polling), which is how every instance's broadcaster sees the whole shared stream. The
//! auditing commands read and rebuild the same collections through [`audit`].

pub mod audit;
mod docs;
mod follower;
mod helpdesk;
pub mod lease;
mod projection;
mod reader;
mod reports;
mod schema;
mod search;
mod writer;

pub use lease::Lease;

use self::schema::Collections;
use self::writer::{Request, Writer};
use crate::store::prepared::PreparedEvent;
use crate::store::{Checkpoints, HelpdeskModels, Links, ReadModels, TicketFilter};
use mongodb::options::{ClientOptions, ReadConcern, WriteConcern};
use mongodb::{Client, Database};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use ticketd_events::{EventEnvelope, EventStore, ExpectedVersion, NewEvent, StoreError};
use ticketd_projections::{MessageView, TicketView};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How long a request waits for a reachable server before it fails with 503; the driver's 30 s
/// default would hold requests far past any client's patience during an outage.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The MongoDB store; clones share one client, one writer task and one follower task.
#[derive(Clone)]
pub struct MongoStore {
    /// Shared so a clone per request or task costs a reference count.
    inner: Arc<Inner>,
}

struct Inner {
    /// The database, with majority read and write concern.
    db: Database,
    /// Handles on its collections.
    collections: Collections,
    /// The writer's queue; `None` once shutdown began, which is how appends learn to refuse.
    requests: RwLock<Option<mpsc::UnboundedSender<Request>>>,
    /// The writer task, until shutdown awaits it.
    writer_task: Mutex<Option<JoinHandle<()>>>,
    /// The highest position this instance knows committed (its own appends and the follower's
    /// news of everybody's).
    head: Arc<watch::Sender<u64>>,
    /// Stops the follower; dropped with the last handle, which stops it too.
    stop: watch::Sender<bool>,
    /// The writer's commit times and batch sizes.
    metrics: crate::store::metrics::StoreMetrics,
}

impl MongoStore {
    /// Connects to `uri`, checks the server is a writable replica set member, creates the
    /// indexes of database `db_name` and starts the writer and follower tasks.
    pub async fn connect(uri: &str, db_name: &str) -> Result<Self, StoreError> {
        Self::connect_with_sla(uri, db_name, ticketd_events::SlaPolicy::default()).await
    }

    /// [`MongoStore::connect`], computing the tickets' service-level fields under `sla`
    /// (ADR 0025).
    pub async fn connect_with_sla(
        uri: &str,
        db_name: &str,
        sla: ticketd_events::SlaPolicy,
    ) -> Result<Self, StoreError> {
        let db = majority_database(uri, db_name).await?;
        let client = db.client().clone();
        let mut collections = Collections::new(&db);
        collections.sla = Arc::new(sla);
        schema::prepare(&collections).await?;
        projection::sync_sla_fields(&collections)
            .await
            .map_err(|e| match e {
                projection::ProjectError::Driver(e) => docs::unavailable(e),
                projection::ProjectError::Encode(e) => e,
            })?;
        let head = Arc::new(watch::Sender::new(reader::head(&collections).await?));
        let (requests, queue) = mpsc::unbounded_channel();
        let metrics = crate::store::metrics::StoreMetrics::default();
        let writer = Writer::new(client.clone(), collections.clone(), Arc::clone(&head))
            .with_metrics(metrics.clone());
        let writer_task = tokio::spawn(writer.run(queue));
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(follower::run(
            collections.clone(),
            Arc::clone(&head),
            stopped,
        ));
        Ok(MongoStore {
            inner: Arc::new(Inner {
                db,
                collections,
                requests: RwLock::new(Some(requests)),
                writer_task: Mutex::new(Some(writer_task)),
                head,
                stop,
                metrics,
            }),
        })
    }

    /// What the writer measures, for `/metrics`.
    pub fn metrics(&self) -> &crate::store::metrics::StoreMetrics {
        &self.inner.metrics
    }

    /// Turns the keeping of the search index on or off (`SEARCH_INDEX`, ADR 0024).
    pub fn set_search_index(&self, on: bool) {
        self.inner
            .collections
            .search_kept
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the search index is kept.
    pub fn search_index(&self) -> bool {
        self.inner
            .collections
            .search_kept
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops taking writes, lets every queued one commit and waits for the writer task to end.
    /// Reads keep working. Calling it again waits for the first call and does nothing more.
    pub async fn shutdown(&self) {
        let mut task = self.inner.writer_task.lock().await;
        drop(
            self.inner
                .requests
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let Some(handle) = task.take()
            && let Err(e) = handle.await
        {
            tracing::error!(error = %e, "the mongodb writer task failed");
        }
        self.inner.stop.send_replace(true);
    }

    /// The database this store uses.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// A lease named `name` in this database, held as `holder` for `ttl` at a time.
    pub fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Lease {
        Lease::new(&self.inner.db, name, holder, ttl)
    }

    /// True when the store holds no event, ticket, message or checkpoint (an import's target).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let c = &self.inner.collections;
        for collection in [&c.events, &c.tickets, &c.messages, &c.checkpoints, &c.links] {
            let found = collection
                .find_one(bson::doc! {})
                .await
                .map_err(docs::unavailable)?;
            if found.is_some() {
                return Ok(false);
            }
        }
        Ok(reader::head(c).await? == 0)
    }

    /// Every link and checkpoint (see `ticketd export`).
    pub async fn bookkeeping(&self) -> Result<crate::store::Bookkeeping, StoreError> {
        reader::bookkeeping(&self.inner.collections).await
    }

    /// Loads exported events, in position order, into an empty store, keeping every field of
    /// their envelopes, and projects them into the read models; then the exported links and
    /// checkpoints. Not for a live store: nothing else may append while it runs.
    pub async fn import(
        &self,
        events: &[EventEnvelope],
        bookkeeping: &crate::store::Bookkeeping,
    ) -> Result<(), StoreError> {
        if !self.is_empty().await? {
            return Err(StoreError::Unavailable(
                "the MongoDB database is not empty: import only loads into an empty store".into(),
            ));
        }
        let c = &self.inner.collections;
        let mut tips: std::collections::HashMap<&str, (u64, &str)> =
            std::collections::HashMap::new();
        for chunk in events.chunks(500) {
            let documents = chunk
                .iter()
                .map(|e| {
                    let actor = serde_json::to_string(&e.actor)
                        .map_err(|e| StoreError::Unavailable(format!("serialize: {e}")))?;
                    let data = serde_json::to_string(&e.event)
                        .map_err(|e| StoreError::Unavailable(format!("serialize: {e}")))?;
                    docs::event_doc(e, &actor, &data)
                })
                .collect::<Result<Vec<_>, _>>()?;
            c.events
                .insert_many(documents)
                .ordered(true)
                .await
                .map_err(docs::unavailable)?;
            for envelope in chunk {
                projection::project_alone(c, envelope)
                    .await
                    .map_err(|e| match e {
                        projection::ProjectError::Driver(e) => docs::unavailable(e),
                        projection::ProjectError::Encode(e) => e,
                    })?;
                tips.insert(&envelope.stream_id, (envelope.version, &envelope.hash));
            }
        }
        for (stream_id, (version, hash)) in tips {
            c.streams
                .update_one(
                    bson::doc! {"_id": stream_id},
                    bson::doc! {"$set": {"version": docs::to_i64(version)?, "hash": hash}},
                )
                .upsert(true)
                .await
                .map_err(docs::unavailable)?;
        }
        if let Some(last) = events.last() {
            c.counters
                .update_one(
                    bson::doc! {"_id": schema::EVENTS_COUNTER},
                    bson::doc! {"$set": {
                        "position": docs::to_i64(last.position)?,
                        "global_hash": &last.global_hash,
                        "recorded_at": last.recorded_at,
                    }},
                )
                .upsert(true)
                .await
                .map_err(docs::unavailable)?;
            self.inner.head.send_replace(last.position);
        }
        // The imported tickets' service-level fields follow at the next start with targets.
        c.counters
            .delete_one(bson::doc! {"_id": projection::SLA_POLICY})
            .await
            .map_err(docs::unavailable)?;
        for (kind, key, value) in &bookkeeping.links {
            c.links
                .insert_one(bson::doc! {"_id": {"kind": kind, "key": key}, "value": value})
                .await
                .map_err(docs::unavailable)?;
        }
        for (name, position) in &bookkeeping.checkpoints {
            c.checkpoints
                .insert_one(bson::doc! {"_id": name, "position": docs::to_i64(*position)?})
                .await
                .map_err(docs::unavailable)?;
        }
        Ok(())
    }

    /// Queues `request` for the writer.
    fn submit(&self, request: Request) -> Result<(), StoreError> {
        let requests = self
            .inner
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let sender = requests.as_ref().ok_or(StoreError::ShuttingDown)?;
        sender.send(request).map_err(|_| writer_gone())
    }
}

/// A client for `uri` with our timeouts; the server and the auditing commands share it.
async fn client(uri: &str) -> Result<Client, StoreError> {
    let mut options = ClientOptions::parse(uri)
        .await
        .map_err(|e| StoreError::Unavailable(format!("MONGO_URI is not usable: {e}")))?;
    options.app_name.get_or_insert_with(|| "ticketd".into());
    options
        .server_selection_timeout
        .get_or_insert(SERVER_SELECTION_TIMEOUT);
    options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
    Client::with_options(options)
        .map_err(|e| StoreError::Unavailable(format!("MONGO_URI is not usable: {e}")))
}

/// Database `db_name` with majority read and write concern, on a server checked to be a
/// writable replica set member: what the store and a replay write through.
async fn majority_database(uri: &str, db_name: &str) -> Result<Database, StoreError> {
    let db = client(uri).await?.database_with_options(
        db_name,
        mongodb::options::DatabaseOptions::builder()
            .read_concern(ReadConcern::majority())
            .write_concern(WriteConcern::majority())
            .build(),
    );
    schema::check_replica_set(&db).await?;
    Ok(db)
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the mongodb writer task stopped".into())
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("database", &self.inner.db.name())
            .field("head", &*self.inner.head.borrow())
            .finish_non_exhaustive()
    }
}

impl crate::store::Countdowns for MongoStore {
    async fn due_countdowns(
        &self,
        started_by: i64,
        limit: usize,
    ) -> Result<Vec<TicketView>, StoreError> {
        reader::due_countdowns(&self.inner.collections, started_by, limit).await
    }

    async fn due_sla(&self, by: i64, limit: usize) -> Result<Vec<TicketView>, StoreError> {
        reader::due_sla(&self.inner.collections, by, limit).await
    }
}

impl crate::store::BlockList for MongoStore {
    async fn is_blocked(&self, user_id: &str) -> Result<bool, StoreError> {
        helpdesk::is_blocked(&self.inner.collections.blocks, user_id).await
    }
}

impl crate::store::CappedAppend for MongoStore {
    async fn append_capped(
        &self,
        stream_id: &str,
        events: Vec<NewEvent>,
        cap: &crate::store::OpenCap,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let events = events
            .into_iter()
            .map(|event| PreparedEvent::new(stream_id, event))
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, answer) = oneshot::channel();
        self.submit(Request {
            stream_id: stream_id.to_owned(),
            expected: ExpectedVersion::NoStream,
            events,
            cap: Some(cap.clone()),
            reply,
        })?;
        answer.await.map_err(|_| writer_gone())?
    }
}

impl EventStore for MongoStore {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let events = events
            .into_iter()
            .map(|event| PreparedEvent::new(stream_id, event))
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, answer) = oneshot::channel();
        self.submit(Request {
            stream_id: stream_id.to_owned(),
            expected,
            events,
            cap: None,
            reply,
        })?;
        // The writer drops a reply unanswered only when it died mid-batch.
        answer.await.map_err(|_| writer_gone())?
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        reader::read_stream(&self.inner.collections, stream_id, after_version).await
    }

    async fn read_stream_page(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        reader::read_stream_page(&self.inner.collections, stream_id, after_version, limit).await
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        reader::read_all(&self.inner.collections, after_position, limit).await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let head = reader::head(&self.inner.collections).await?;
        self.inner.head.send_if_modified(|h| {
            let moved = head > *h;
            *h = (*h).max(head);
            moved
        });
        Ok(head)
    }

    async fn wait_beyond(&self, position: u64) {
        let mut head = self.inner.head.subscribe();
        // The sender lives as long as `self`, so this ends only by the head passing `position`.
        let _ = head.wait_for(|head| *head > position).await;
    }
}

impl HelpdeskModels for MongoStore {
    async fn list_replies(&self) -> Result<Vec<ticketd_projections::ReplyView>, StoreError> {
        helpdesk::list_replies(&self.inner.collections.replies, None).await
    }

    async fn list_blocks(&self) -> Result<Vec<ticketd_projections::BlockView>, StoreError> {
        helpdesk::list_blocks(&self.inner.collections.blocks, None).await
    }
}

impl crate::store::SearchIndex for MongoStore {
    async fn search_term(
        &self,
        term: &crate::search::text::QueryTerm,
        include_internal: bool,
    ) -> Result<Vec<crate::store::TermHit>, StoreError> {
        search::search_term(&self.inner.collections, term, include_internal).await
    }

    async fn tickets_at(&self, positions: &[u64]) -> Result<Vec<TicketView>, StoreError> {
        search::tickets_at(&self.inner.collections.tickets, positions).await
    }
}

impl crate::store::Reports for MongoStore {
    async fn report(
        &self,
        query: &ticketd_projections::reports::ReportQuery,
    ) -> Result<ticketd_projections::reports::Report, StoreError> {
        reports::report(&self.inner.collections, query).await
    }
}

impl ReadModels for MongoStore {
    async fn get_ticket(&self, ticket_id: &str) -> Result<Option<TicketView>, StoreError> {
        reader::get_ticket(&self.inner.collections, ticket_id).await
    }

    async fn list_tickets(
        &self,
        filter: &TicketFilter,
        before_position: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TicketView>, StoreError> {
        reader::list_tickets(&self.inner.collections, filter, before_position, limit).await
    }

    async fn get_message(&self, message_id: &str) -> Result<Option<MessageView>, StoreError> {
        reader::get_message(&self.inner.collections, message_id).await
    }

    async fn list_messages(
        &self,
        ticket_id: &str,
        after_seq: Option<u64>,
        limit: usize,
        include_internal: bool,
    ) -> Result<Vec<MessageView>, StoreError> {
        let bound = after_seq.map(|seq| ("$gt", seq));
        reader::list_messages(
            &self.inner.collections,
            ticket_id,
            bound,
            false,
            limit,
            include_internal,
        )
        .await
    }

    async fn list_messages_newest_first(
        &self,
        ticket_id: &str,
        before_seq: Option<u64>,
        limit: usize,
        include_internal: bool,
    ) -> Result<Vec<MessageView>, StoreError> {
        let bound = before_seq.map(|seq| ("$lt", seq));
        reader::list_messages(
            &self.inner.collections,
            ticket_id,
            bound,
            true,
            limit,
            include_internal,
        )
        .await
    }
}

impl Checkpoints for MongoStore {
    async fn load_checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        reader::load_checkpoint(&self.inner.collections, name).await
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        if self
            .inner
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            return Err(StoreError::ShuttingDown);
        }
        reader::save_checkpoint(&self.inner.collections, name, position).await
    }
}

impl Links for MongoStore {
    async fn load_link(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        reader::load_link(&self.inner.collections, kind, key).await
    }

    async fn save_link(
        &self,
        kind: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        reader::save_link(&self.inner.collections, kind, key, value).await
    }

    async fn claim_link(&self, kind: &str, key: &str, value: &str) -> Result<String, StoreError> {
        reader::claim_link(&self.inner.collections, kind, key, value).await
    }
}
