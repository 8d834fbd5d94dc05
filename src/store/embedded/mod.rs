//! The default store, for running on one box: events, read models and checkpoints in one SQLite
//! file (`ticketd.db` under the data directory) in WAL mode. One thread owns the write connection
//! and group-commits queued appends ([`writer`]); queries run on a small pool of read-only
//! connections ([`reader`]) that the writer never blocks. Read models are projected inside the
//! append's transaction ([`projection`]), so a client always reads its own writes.

pub mod audit;
pub mod beside;
mod blocked;
mod checkpointer;
mod helpdesk;
pub mod import;
mod links;
mod projection;
mod reader;
mod reports;
mod rows;
mod schema;
mod search;
mod ticket_cache;
mod writer;

use self::reader::Readers;
use self::ticket_cache::TicketCache;
use self::writer::{Request, Writer};
use crate::store::prepared::PreparedEvent;
use crate::store::{Checkpoints, HelpdeskModels, Links, ReadModels, TicketFilter};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use ticketd_events::{EventEnvelope, EventStore, ExpectedVersion, NewEvent, StoreError};
use ticketd_projections::{BlockView, MessageView, ReplyView, TicketView};
use tokio::sync::{Mutex, oneshot, watch};

/// The database file's name inside the data directory.
const DB_FILE: &str = "ticketd.db";

/// How to open an [`EmbeddedStore`].
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedOptions {
    /// `PRAGMA synchronous=FULL` (an acknowledged write also survives power loss) rather than
    /// `NORMAL` (it survives a killed process, and commits cost less). Default true.
    pub synchronous_full: bool,
    /// How many read-only connections serve queries concurrently. Default 4.
    pub readers: usize,
    /// WAL bytes between two of the writer's own checkpoints, and the size the WAL file is cut
    /// back to. Default 64 MiB; tests make it small to see the WAL kept bounded.
    pub wal_autocheckpoint_bytes: i64,
    /// The service-level targets the tickets' `sla` columns are computed with (ADR 0025).
    /// Default: none.
    pub sla: ticketd_events::SlaPolicy,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            synchronous_full: true,
            readers: 4,
            wal_autocheckpoint_bytes: schema::WAL_AUTOCHECKPOINT_BYTES,
            sla: ticketd_events::SlaPolicy::default(),
        }
    }
}

/// The embedded SQLite store; clones share one file, one writer thread and one reader pool.
#[derive(Clone)]
pub struct EmbeddedStore {
    /// Shared so a clone per request or task costs a reference count.
    inner: Arc<Inner>,
}

struct Inner {
    /// The database file.
    path: PathBuf,
    /// The writer's queue; `None` once shutdown began, which is how appends learn to refuse.
    requests: RwLock<Option<Sender<Request>>>,
    /// The writer thread, until shutdown joins it. An async lock, so a second shutdown waits for
    /// the first to finish joining instead of returning while the writer still runs.
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    /// The last committed position, published by the writer after each commit.
    head: Arc<watch::Sender<u64>>,
    /// Read-only connections for every query.
    readers: Arc<Readers>,
    /// Copies the WAL back into the database file off the writer's thread.
    _checkpointer: checkpointer::Checkpointer,
    /// Tickets kept in memory for `get_ticket`; the writer forgets those it changes.
    tickets: Arc<TicketCache>,
    /// Who is blocked, kept by the writer as it commits.
    blocked: Arc<blocked::BlockedUsers>,
    /// The writer's commit times and batch sizes.
    metrics: crate::store::metrics::StoreMetrics,
    /// Whether the writer keeps the search index (`SEARCH_INDEX`, ADR 0024).
    search_kept: Arc<std::sync::atomic::AtomicBool>,
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/ticketd.db`, bringing its schema up to date, and starts the
    /// writer thread. Blocking; needs no async runtime.
    pub fn open(dir: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let lock = audit::lock_data_dir(dir)?;
        let path = dir.join(DB_FILE);
        let mut conn = schema::open_writer(&path, options.synchronous_full)?;
        projection::sync_sla_columns(&mut conn, &options.sla)?;
        schema::set_wal_autocheckpoint(&conn, options.wal_autocheckpoint_bytes)?;
        let head = Arc::new(watch::Sender::new(0));
        let tickets = Arc::new(TicketCache::default());
        let blocked = Arc::new(blocked::BlockedUsers::new(
            helpdesk::list_blocks(&conn)?.into_iter().map(|b| b.user_id),
        ));
        let metrics = crate::store::metrics::StoreMetrics::default();
        let writer = Writer::new(conn, Arc::clone(&head))?
            .with_ticket_cache(Arc::clone(&tickets))
            .with_blocked_users(Arc::clone(&blocked))
            .with_metrics(metrics.clone())
            .with_sla(options.sla.clone());
        // Readers open after the writer created the schema and the WAL files they need.
        let readers = Arc::new(Readers::open(path.clone(), options.readers)?);
        let (requests, queue) = mpsc::channel();
        let search_kept = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let thread = writer.spawn(queue, lock, Arc::clone(&search_kept))?;
        let checkpointer = checkpointer::spawn(&path, head.subscribe())?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                path,
                requests: RwLock::new(Some(requests)),
                writer_thread: Mutex::new(Some(thread)),
                head,
                readers,
                _checkpointer: checkpointer,
                tickets,
                blocked,
                metrics,
                search_kept,
            }),
        })
    }

    /// What the writer measures, for `/metrics`.
    pub fn metrics(&self) -> &crate::store::metrics::StoreMetrics {
        &self.inner.metrics
    }

    /// Renders `events` for the writer, with their search terms while the index is kept.
    fn prepare(
        &self,
        stream_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<PreparedEvent>, StoreError> {
        let indexed = self
            .inner
            .search_kept
            .load(std::sync::atomic::Ordering::Relaxed);
        events
            .into_iter()
            .map(|event| {
                let mut prepared = PreparedEvent::new(stream_id, event)?;
                if let (true, ticketd_events::TicketEvent::MessagePosted { content, .. }) =
                    (indexed, &prepared.event.event)
                {
                    prepared.search_terms = Some(search::message_terms(content));
                }
                Ok(prepared)
            })
            .collect()
    }

    /// Turns the keeping of the search index on or off (`SEARCH_INDEX`, ADR 0024).
    pub fn set_search_index(&self, on: bool) {
        self.inner
            .search_kept
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the search index is kept.
    pub fn search_index(&self) -> bool {
        self.inner
            .search_kept
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops taking writes, lets every queued one commit and waits for the writer thread to end.
    /// Reads keep working. Calling it again waits for the first call and does nothing more.
    pub async fn shutdown(&self) {
        let mut thread = self.inner.writer_thread.lock().await;
        // Dropping the only sender ends the writer's loop once the queue is drained.
        drop(
            self.inner
                .requests
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let Some(handle) = thread.take() {
            match tokio::task::spawn_blocking(move || handle.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tracing::error!("the sqlite writer thread had panicked"),
                Err(e) => tracing::error!(error = %e, "cannot join the sqlite writer thread"),
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
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

    /// Waits for the writer's answer to a submitted request.
    async fn answer<T>(answer: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        // The writer drops a reply unanswered only when it died mid-batch.
        answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the sqlite writer thread stopped".into())
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .field("head", &*self.inner.head.borrow())
            .finish_non_exhaustive()
    }
}

impl crate::store::BlockList for EmbeddedStore {
    async fn is_blocked(&self, user_id: &str) -> Result<bool, StoreError> {
        Ok(self.inner.blocked.contains(user_id))
    }
}

impl crate::store::CappedAppend for EmbeddedStore {
    async fn append_capped(
        &self,
        stream_id: &str,
        events: Vec<NewEvent>,
        cap: &crate::store::OpenCap,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let events = self.prepare(stream_id, events)?;
        let (reply, answer) = oneshot::channel();
        self.submit(Request::Append {
            stream_id: stream_id.to_owned(),
            expected: ExpectedVersion::NoStream,
            events,
            cap: Some(cap.clone()),
            reply,
        })?;
        Self::answer(answer).await
    }
}

impl EventStore for EmbeddedStore {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let events = self.prepare(stream_id, events)?;
        let (reply, answer) = oneshot::channel();
        self.submit(Request::Append {
            stream_id: stream_id.to_owned(),
            expected,
            events,
            cap: None,
            reply,
        })?;
        Self::answer(answer).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.inner
            .readers
            .run(move |conn| reader::read_stream(conn, &stream_id, after_version))
            .await
    }

    async fn read_stream_page(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.inner
            .readers
            .run(move |conn| reader::read_stream_page(conn, &stream_id, after_version, limit))
            .await
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner
            .readers
            .run(move |conn| reader::read_all(conn, after_position, limit))
            .await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        Ok(*self.inner.head.borrow())
    }

    async fn wait_beyond(&self, position: u64) {
        let mut head = self.inner.head.subscribe();
        // The sender lives as long as `self`, so this ends only by the head passing `position`.
        let _ = head.wait_for(|head| *head > position).await;
    }
}

impl crate::store::Countdowns for EmbeddedStore {
    async fn due_countdowns(
        &self,
        started_by: i64,
        limit: usize,
    ) -> Result<Vec<TicketView>, StoreError> {
        self.inner
            .readers
            .run(move |conn| reader::due_countdowns(conn, started_by, limit))
            .await
    }

    async fn due_sla(&self, by: i64, limit: usize) -> Result<Vec<TicketView>, StoreError> {
        self.inner
            .readers
            .run(move |conn| reader::due_sla(conn, by, limit))
            .await
    }
}

impl HelpdeskModels for EmbeddedStore {
    async fn list_replies(&self) -> Result<Vec<ReplyView>, StoreError> {
        self.inner.readers.run(helpdesk::list_replies).await
    }

    async fn list_blocks(&self) -> Result<Vec<BlockView>, StoreError> {
        self.inner.readers.run(helpdesk::list_blocks).await
    }
}

impl crate::store::SearchIndex for EmbeddedStore {
    async fn search_term(
        &self,
        term: &crate::search::text::QueryTerm,
        include_internal: bool,
    ) -> Result<Vec<crate::store::TermHit>, StoreError> {
        let term = term.clone();
        self.inner
            .readers
            .run(move |conn| search::search_term(conn, &term, include_internal))
            .await
    }

    async fn tickets_at(&self, positions: &[u64]) -> Result<Vec<TicketView>, StoreError> {
        let positions = positions.to_vec();
        self.inner
            .readers
            .run(move |conn| reader::tickets_at(conn, &positions))
            .await
    }
}

impl crate::store::Reports for EmbeddedStore {
    async fn report(
        &self,
        query: &ticketd_projections::reports::ReportQuery,
    ) -> Result<ticketd_projections::reports::Report, StoreError> {
        let query = *query;
        self.inner
            .readers
            .run(move |conn| reports::report(conn, &query))
            .await
    }
}

impl ReadModels for EmbeddedStore {
    async fn get_ticket(&self, ticket_id: &str) -> Result<Option<TicketView>, StoreError> {
        let (kept, generation) = self.inner.tickets.get(ticket_id);
        if kept.is_some() {
            return Ok(kept);
        }
        let id = ticket_id.to_owned();
        let ticket = self
            .inner
            .readers
            .run_point(move |conn| reader::get_ticket(conn, &id))
            .await?;
        if let Some(ticket) = &ticket {
            self.inner.tickets.keep(generation, ticket);
        }
        Ok(ticket)
    }

    async fn list_tickets(
        &self,
        filter: &TicketFilter,
        before_position: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TicketView>, StoreError> {
        let filter = filter.clone();
        self.inner
            .readers
            .run(move |conn| reader::list_tickets(conn, &filter, before_position, limit))
            .await
    }

    async fn get_message(&self, message_id: &str) -> Result<Option<MessageView>, StoreError> {
        let message_id = message_id.to_owned();
        self.inner
            .readers
            .run_point(move |conn| reader::get_message(conn, &message_id))
            .await
    }

    async fn list_messages(
        &self,
        ticket_id: &str,
        after_seq: Option<u64>,
        limit: usize,
        include_internal: bool,
    ) -> Result<Vec<MessageView>, StoreError> {
        let ticket_id = ticket_id.to_owned();
        let after_seq = after_seq.unwrap_or(0);
        self.inner
            .readers
            .run(move |conn| {
                reader::list_messages(conn, &ticket_id, after_seq, limit, include_internal)
            })
            .await
    }

    async fn list_messages_newest_first(
        &self,
        ticket_id: &str,
        before_seq: Option<u64>,
        limit: usize,
        include_internal: bool,
    ) -> Result<Vec<MessageView>, StoreError> {
        let ticket_id = ticket_id.to_owned();
        self.inner
            .readers
            .run(move |conn| {
                reader::list_messages_newest_first(
                    conn,
                    &ticket_id,
                    before_seq,
                    limit,
                    include_internal,
                )
            })
            .await
    }
}

impl Checkpoints for EmbeddedStore {
    async fn load_checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        let name = name.to_owned();
        self.inner
            .readers
            .run(move |conn| reader::load_checkpoint(conn, &name))
            .await
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Request::SaveCheckpoint {
            name: name.to_owned(),
            position,
            reply,
        })?;
        Self::answer(answer).await
    }
}

impl Links for EmbeddedStore {
    async fn load_link(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        let (kind, key) = (kind.to_owned(), key.to_owned());
        self.inner
            .readers
            .run(move |conn| links::load_link(conn, &kind, &key))
            .await
    }

    async fn save_link(
        &self,
        kind: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Request::SaveLink {
            kind: kind.to_owned(),
            key: key.to_owned(),
            value: value.map(str::to_owned),
            relaxed: false,
            reply,
        })?;
        Self::answer(answer).await
    }

    async fn save_link_relaxed(
        &self,
        kind: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Request::SaveLink {
            kind: kind.to_owned(),
            key: key.to_owned(),
            value: value.map(str::to_owned),
            relaxed: true,
            reply,
        })?;
        Self::answer(answer).await
    }

    async fn claim_link(&self, kind: &str, key: &str, value: &str) -> Result<String, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Request::ClaimLink {
            kind: kind.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            reply,
        })?;
        Self::answer(answer).await
    }
}
