//! The one thread that writes. Appends from every task queue up on a channel; the writer takes
//! whatever has queued while it was busy and commits it as one transaction (group commit), so a
//! burst of N commands costs one fsync instead of N. Each request runs inside its own savepoint,
//! so a stale expected version or a failing statement undoes only that request. Because only this
//! thread assigns positions, and assigns them in the order it commits, the global order has no
//! gaps and no reader ever sees position n + 1 before n.

use super::blocked::BlockedUsers;
use super::projection::project;
use super::reader::events_by_id;
use super::rows::{sql_error, to_sql_int};
use super::schema::INSERT_EVENT;
use super::ticket_cache::TicketCache;
use crate::store::OpenCap;
use crate::store::prepared::PreparedEvent;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};
use ticketd_events::SlaPolicy;
use ticketd_events::chain::{self, Placement};
use ticketd_events::envelope::SCHEMA_VERSION;
use ticketd_events::{EventEnvelope, ExpectedVersion, StoreError, TicketStatus};
use tokio::sync::{oneshot, watch};

/// Requests committed together at most; bounds how long the first of them waits for the last.
const MAX_BATCH: usize = 512;

/// Where the writer sends its answer; dropped unanswered only if the writer died.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the writer is asked to do.
pub(super) enum Request {
    /// Append events to a stream at an expected version.
    Append {
        /// The ticket's stream.
        stream_id: String,
        /// Its version as the caller last saw it.
        expected: ExpectedVersion,
        /// What to append, in order.
        events: Vec<PreparedEvent>,
        /// For an opening under `MAX_OPEN_TICKETS_PER_USER`: the cap it is appended under.
        cap: Option<OpenCap>,
        /// Gets the stored envelopes once the batch is committed.
        reply: Reply<Vec<EventEnvelope>>,
    },
    /// Record a projector's checkpoint; goes through the writer so it never contends with it
    /// for the write lock.
    SaveCheckpoint {
        /// The projector.
        name: String,
        /// What it finished.
        position: u64,
        /// Gets the outcome once the batch is committed.
        reply: Reply<()>,
    },
    /// Record or remove a projector's link (see [`crate::store::Links`]).
    SaveLink {
        /// What the key names.
        kind: String,
        /// Our id.
        key: String,
        /// The other system's id; `None` removes the link.
        value: Option<String>,
        /// Whether surviving a killed process is enough (see `Links::save_link_relaxed`): a
        /// batch of nothing else commits without waiting for the disk.
        relaxed: bool,
        /// Gets the outcome once the batch is committed.
        reply: Reply<()>,
    },
    /// Link a key unless it is linked already (see [`crate::store::Links::claim_link`]).
    ClaimLink {
        /// What the key names.
        kind: String,
        /// The key.
        key: String,
        /// The value to link if the key is free.
        value: String,
        /// Gets the value that holds once the batch is committed.
        reply: Reply<String>,
    },
}

/// A request's outcome, held until its batch commits: nothing is acknowledged before that.
enum Answer {
    Append(
        Reply<Vec<EventEnvelope>>,
        Result<Vec<EventEnvelope>, StoreError>,
    ),
    SaveCheckpoint(Reply<()>, Result<(), StoreError>),
    SaveLink(Reply<()>, Result<(), StoreError>),
    ClaimLink(Reply<String>, Result<String, StoreError>),
}

impl Answer {
    /// Tickets whose row an appended event changed, for the ticket cache: messages live in
    /// their own rows (a public one moves its ticket's countdown, which the cache may keep
    /// stale: see below).
    fn changed_tickets(&self) -> impl Iterator<Item = &str> {
        self.appended()
            .iter()
            .filter(|e| {
                // A public post moves the row's auto-close countdown too, but the countdown is
                // read only by the timer's own query (`due_countdowns`), never through the
                // cache: forgetting the ticket on every post cost each next request on it a
                // read, and halved the posts a second (`scripts/bench`).
                // A public staff post may be the ticket's first answer, which its row shows
                // to staff (`first_response_at`, ADR 0025): that one is forgotten.
                match &e.event {
                    ticketd_events::TicketEvent::MessagePosted {
                        author_id,
                        author_role,
                        internal,
                        ..
                    } => {
                        ticketd_events::inactivity::message_effect(
                            author_id,
                            *author_role,
                            *internal,
                        ) == ticketd_events::inactivity::CountdownEffect::Start
                    }
                    ticketd_events::TicketEvent::MessageEdited { .. }
                    | ticketd_events::TicketEvent::MessageDeleted { .. } => false,
                    _ => true,
                }
            })
            .map(|e| e.stream_id.as_str())
    }

    /// The events this request appended: none unless it is an append that succeeded.
    fn appended(&self) -> &[EventEnvelope] {
        match self {
            Answer::Append(_, Ok(events)) => events.as_slice(),
            _ => &[],
        }
    }

    fn send(self) {
        // A caller that stopped waiting is no error: its write stands, and a retry by event id
        // finds it.
        match self {
            Answer::Append(reply, result) => drop(reply.send(result)),
            Answer::SaveCheckpoint(reply, result) => drop(reply.send(result)),
            Answer::SaveLink(reply, result) => drop(reply.send(result)),
            Answer::ClaimLink(reply, result) => drop(reply.send(result)),
        }
    }

    fn fail(self, reason: &str) {
        let error = || StoreError::Unavailable(reason.to_owned());
        match self {
            Answer::Append(reply, _) => drop(reply.send(Err(error()))),
            Answer::SaveCheckpoint(reply, _) => drop(reply.send(Err(error()))),
            Answer::SaveLink(reply, _) => drop(reply.send(Err(error()))),
            Answer::ClaimLink(reply, _) => drop(reply.send(Err(error()))),
        }
    }
}

/// The write connection and what the writer knows about the committed log.
pub(super) struct Writer {
    /// The only read-write connection to the file.
    conn: Connection,
    /// Its configured `PRAGMA synchronous` (2 FULL, 1 NORMAL), restored after a relaxed batch.
    synchronous: i64,
    /// Position of the last committed event; the next event gets `head + 1`.
    head: u64,
    /// `global_hash` of the last committed event; the next one chains to it.
    global_hash: String,
    /// `recorded_at` of the last committed event, so a clock stepping back cannot make time run
    /// backwards along positions.
    last_recorded_at: i64,
    /// Tells `head()` and `wait_beyond()` about each commit.
    head_tx: Arc<watch::Sender<u64>>,
    /// Tickets kept in memory for reads; told which ones each batch changed.
    tickets: Option<Arc<TicketCache>>,
    /// The blocked users the store answers from, moved by each committed block or unblock.
    blocked: Option<Arc<BlockedUsers>>,
    /// Stream tips, so appends skip a lookup.
    tips: StreamTips,
    /// Commit times and batch sizes, for `/metrics`.
    metrics: crate::store::metrics::StoreMetrics,
    /// The service-level targets the `sla` columns are computed with (ADR 0025).
    sla: SlaPolicy,
}

impl Writer {
    /// Takes over `conn` and learns the committed head from it.
    pub(super) fn new(
        conn: Connection,
        head_tx: Arc<watch::Sender<u64>>,
    ) -> Result<Self, StoreError> {
        let (head, last_recorded_at, global_hash) = load_head(&conn)?;
        let synchronous = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .map_err(sql_error)?;
        head_tx.send_replace(head);
        Ok(Writer {
            synchronous,
            conn,
            head,
            global_hash,
            last_recorded_at,
            head_tx,
            tickets: None,
            blocked: None,
            tips: StreamTips::default(),
            metrics: Default::default(),
            sla: SlaPolicy::default(),
        })
    }

    /// Makes the writer forget, in `cache`, every ticket a batch changes.
    pub(super) fn with_ticket_cache(mut self, cache: Arc<TicketCache>) -> Self {
        self.tickets = Some(cache);
        self
    }

    /// Keeps `blocked` in step with the commits.
    pub(super) fn with_blocked_users(mut self, blocked: Arc<BlockedUsers>) -> Self {
        self.blocked = Some(blocked);
        self
    }

    /// Records its batches in `metrics`.
    pub(super) fn with_metrics(mut self, metrics: crate::store::metrics::StoreMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Computes the tickets' service-level columns under `policy`.
    pub(super) fn with_sla(mut self, policy: SlaPolicy) -> Self {
        self.sla = policy;
        self
    }

    /// Starts the writer thread; it runs until every sender of `requests` is gone and the queue
    /// is drained, holding `lock` (the data directory's lock) until then.
    pub(super) fn spawn(
        self,
        requests: Receiver<Request>,
        lock: std::fs::File,
        search_kept: Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<JoinHandle<()>, StoreError> {
        std::thread::Builder::new()
            .name("ticketd-sqlite-writer".into())
            .spawn(move || {
                super::search::hold_writes_on_this_thread(search_kept);
                self.run(requests);
                // Released only once the last batch committed, so `shutdown` returning means
                // another process (or `ticketd replay`) may take the directory.
                drop(lock);
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))
    }

    fn run(mut self, requests: Receiver<Request>) {
        loop {
            let first = match requests.try_recv() {
                Ok(first) => first,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    // Nothing waits: the search index's pending rows may move now rather than
                    // in the batch of a request that would wait for them (ADR 0024).
                    self.idle();
                    match requests.recv() {
                        Ok(first) => first,
                        Err(_) => break,
                    }
                }
            };
            let mut batch = Vec::with_capacity(16);
            batch.push(first);
            batch.extend(requests.try_iter().take(MAX_BATCH - 1));
            self.commit_batch(batch);
        }
    }

    /// Work done while no request waits: moving the search index's pending rows into FTS5
    /// once there are enough of them, in a transaction of its own. A failure only leaves them
    /// pending for the next batch that finds too many.
    fn idle(&mut self) {
        if !super::search::worth_moving_when_idle() {
            return;
        }
        let moved = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)
            .and_then(|tx| {
                super::search::move_when_idle(&tx)?;
                tx.commit().map_err(sql_error)
            });
        if let Err(e) = moved {
            super::search::forget_known();
            tracing::warn!(error = %e, "cannot move the search index's pending rows");
        }
    }

    /// Commits `batch` (see [`Writer::commit`]), without waiting for the disk when it holds
    /// relaxed bookkeeping only.
    fn commit_batch(&mut self, batch: Vec<Request>) {
        // A batch of relaxed bookkeeping only (the webhook checkpoint, once per delivered event)
        // commits with synchronous=NORMAL: in WAL mode that survives a killed process, and it
        // spares an fsync per event. Anything else in the batch keeps the configured mode.
        let relaxed = self.synchronous > 1 && relaxed_only(&batch);
        if relaxed {
            self.set_synchronous(1);
        }
        self.commit(batch);
        if relaxed {
            self.set_synchronous(self.synchronous);
        }
    }

    /// `PRAGMA synchronous`; a failure only costs the speed or safety of one batch, so it is
    /// logged, not fatal.
    fn set_synchronous(&self, level: i64) {
        if let Err(e) = self.conn.pragma_update(None, "synchronous", level) {
            tracing::warn!("cannot set synchronous={level}: {e}");
        }
    }

    /// Runs `batch` in one transaction and answers every request after the commit.
    fn commit(&mut self, batch: Vec<Request>) {
        let started = std::time::Instant::now();
        let requests = batch.len();
        let stamp = now_ms().max(self.last_recorded_at);
        let mut head = (self.head, self.global_hash.clone());
        let mut answers = Vec::with_capacity(batch.len());
        let committed = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => {
                let mut broken = None;
                for request in batch {
                    if broken.is_some() {
                        answers.push(unanswered(request));
                        continue;
                    }
                    match execute(&tx, request, &mut head, &mut self.tips, stamp, &self.sla) {
                        Ok(answer) => answers.push(answer),
                        Err((answer, reason)) => {
                            answers.push(answer);
                            broken = Some(reason);
                        }
                    }
                }
                // The search index writes held back during the batch (ADR 0024).
                let broken = match (broken, super::search::flush(&tx)) {
                    (Some(reason), _) => Some(reason),
                    (None, Err(e)) => Some(format!("search index: {e}")),
                    (None, Ok(())) => None,
                };
                match broken {
                    // Dropping the transaction rolls it back.
                    Some(reason) => {
                        super::search::undo_to(0);
                        super::search::forget_known();
                        Err(reason)
                    }
                    None => tx.commit().map_err(|e| {
                        super::search::forget_known();
                        format!("commit failed: {e}")
                    }),
                }
            }
            Err(e) => {
                answers.extend(batch.into_iter().map(unanswered));
                Err(format!("cannot begin a transaction: {e}"))
            }
        };
        match committed {
            Ok(()) => {
                // Before the head moves: a follower woken by it, like a client answered, must
                // not find a ticket row older than the events it reads.
                if let Some(cache) = &self.tickets {
                    let changed: Vec<&str> =
                        answers.iter().flat_map(Answer::changed_tickets).collect();
                    if !changed.is_empty() {
                        cache.forget(changed);
                    }
                }
                if let Some(blocked) = &self.blocked {
                    // Only what this batch wrote: a retry answered from the log names an older
                    // block, which a later unblock may have lifted.
                    let before = self.head;
                    blocked.follow(
                        answers
                            .iter()
                            .flat_map(Answer::appended)
                            .filter(|e| e.position > before),
                    );
                }
                let (head, global_hash) = head;
                self.metrics
                    .committed(requests, head - self.head, started.elapsed());
                if head != self.head {
                    self.head = head;
                    self.global_hash = global_hash;
                    self.last_recorded_at = stamp;
                    self.head_tx.send_replace(head);
                }
                answers.into_iter().for_each(Answer::send);
            }
            Err(reason) => {
                tracing::error!(%reason, requests = answers.len(), "sqlite batch not committed");
                // The transaction may have failed after some of its pages reached the file; only
                // the file knows what the head is now.
                match load_head(&self.conn) {
                    Ok((head, last, global_hash)) => {
                        self.head = head;
                        self.global_hash = global_hash;
                        self.last_recorded_at = self.last_recorded_at.max(last);
                        self.head_tx.send_replace(head);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reload the head after a failed commit")
                    }
                }
                // Tips learned in this batch were never committed.
                self.tips.clear();
                answers.into_iter().for_each(|a| a.fail(&reason));
            }
        }
    }
}

/// Runs one request in its own savepoint. `Err` means the transaction itself is broken (a
/// savepoint could not be opened or undone), which fails the whole batch. `head` is the last
/// position and its global hash, as this batch has them so far; `tips` learns each stream's new
/// tip once its request's savepoint is released.
fn execute(
    tx: &Transaction<'_>,
    request: Request,
    head: &mut (u64, String),
    tips: &mut StreamTips,
    stamp: i64,
    sla: &SlaPolicy,
) -> Result<Answer, (Answer, String)> {
    // Prepared once and kept: three statements per request would otherwise be parsed anew each
    // time, and the writer is the one thread every append waits for.
    let savepoint = |sql: &str| -> Result<(), String> {
        tx.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([]))
            .map(drop)
            .map_err(|e| format!("savepoint: {e}"))
    };
    if let Err(reason) = savepoint("SAVEPOINT request") {
        return Err((unanswered(request), reason));
    }
    let held = super::search::mark();
    let mut new_tip = None;
    let (answer, new_head) = match request {
        Request::Append {
            stream_id,
            expected,
            events,
            cap,
            reply,
        } => match check_cap(tx, &stream_id, cap.as_ref(), tips)
            .and_then(|()| append(tx, &stream_id, expected, events, head, tips, stamp, sla))
        {
            Ok((envelopes, new_head)) => {
                // A retry answered with what an earlier try stored wrote nothing: its envelopes
                // may be older than the stream's tip, which must not move back to them.
                if new_head.0 > head.0 {
                    new_tip = envelopes
                        .last()
                        .map(|e| (stream_id, (e.version, e.hash.clone())));
                }
                (Answer::Append(reply, Ok(envelopes)), Some(new_head))
            }
            Err(e) => (Answer::Append(reply, Err(e)), None),
        },
        Request::SaveCheckpoint {
            name,
            position,
            reply,
        } => match save_checkpoint(tx, &name, position) {
            Ok(()) => (Answer::SaveCheckpoint(reply, Ok(())), Some(head.clone())),
            Err(e) => (Answer::SaveCheckpoint(reply, Err(e)), None),
        },
        Request::SaveLink {
            kind,
            key,
            value,
            reply,
            ..
        } => match super::links::save_link(tx, &kind, &key, value.as_deref()) {
            Ok(()) => (Answer::SaveLink(reply, Ok(())), Some(head.clone())),
            Err(e) => (Answer::SaveLink(reply, Err(e)), None),
        },
        Request::ClaimLink {
            kind,
            key,
            value,
            reply,
        } => match super::links::claim_link(tx, &kind, &key, &value) {
            Ok(held) => (Answer::ClaimLink(reply, Ok(held)), Some(head.clone())),
            Err(e) => (Answer::ClaimLink(reply, Err(e)), None),
        },
    };
    let closed = match new_head {
        Some(_) => savepoint("RELEASE request"),
        None => {
            super::search::undo_to(held);
            savepoint("ROLLBACK TO request").and_then(|()| savepoint("RELEASE request"))
        }
    };
    match closed {
        Ok(()) => {
            // Only a released savepoint moves the head: a rolled-back request used no positions.
            if let Some(new_head) = new_head {
                *head = new_head;
            }
            if let Some((stream_id, tip)) = new_tip {
                tips.insert(stream_id, tip);
            }
            Ok(answer)
        }
        Err(reason) => Err((answer, reason)),
    }
}

/// Each stream's version and last hash as the writer last wrote them, so an append does not
/// look its stream up first. Only the writer changes streams, so the map is exact for every
/// stream in it; it is emptied when a batch fails (its requests' tips were never committed) and
/// when it grows past [`StreamTips::CAPACITY`], after which tips are read from the file again.
#[derive(Default)]
pub(super) struct StreamTips(std::collections::HashMap<String, (u64, String)>);

impl StreamTips {
    /// Streams remembered at most (about 150 bytes each).
    const CAPACITY: usize = 100_000;

    fn get(&self, stream_id: &str) -> Option<&(u64, String)> {
        self.0.get(stream_id)
    }

    fn insert(&mut self, stream_id: String, tip: (u64, String)) {
        if self.0.len() >= Self::CAPACITY && !self.0.contains_key(&stream_id) {
            self.0.clear();
        }
        self.0.insert(stream_id, tip);
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Appends in the current savepoint and returns the envelopes and the new head with its global
/// hash.
// The writer's hot path: each argument is a borrow of the writer's own state, and a struct
// built per append would only rename them.
#[allow(clippy::too_many_arguments)]
fn append(
    conn: &Connection,
    stream_id: &str,
    expected: ExpectedVersion,
    events: Vec<PreparedEvent>,
    head: &(u64, String),
    tips: &StreamTips,
    recorded_at: i64,
    sla: &SlaPolicy,
) -> Result<(Vec<EventEnvelope>, (u64, String)), StoreError> {
    let (actual, mut prev_hash) = match tips.get(stream_id) {
        Some(tip) => tip.clone(),
        None => stream_tip(conn, stream_id)?,
    };
    if actual != expected.as_u64() {
        // A retry of an append that committed finds its stream moved on by its own events;
        // only then is it worth looking the event ids up.
        if let Some(stored) = already_stored(conn, stream_id, expected, &events)? {
            return Ok((stored, head.clone()));
        }
        return Err(StoreError::WrongExpectedVersion {
            stream_id: stream_id.to_owned(),
            expected: expected.as_u64(),
            actual,
        });
    }
    let mut insert = conn.prepare_cached(INSERT_EVENT).map_err(sql_error)?;
    let mut envelopes = Vec::with_capacity(events.len());
    let (mut position, mut version) = (head.0, actual);
    let mut global_hash = head.1.clone();
    let mut events = events.into_iter();
    while let Some(prepared) = events.next() {
        position += 1;
        version += 1;
        let hash = prepared.pending_hash.finish(&Placement {
            version,
            position,
            recorded_at,
            prev_hash: &prev_hash,
        });
        global_hash = chain::global_hash(&global_hash, &hash);
        let inserted = insert.execute(params![
            to_sql_int(position)?,
            prepared.event.event_id,
            stream_id,
            to_sql_int(version)?,
            recorded_at,
            prepared.event.event.type_name(),
            SCHEMA_VERSION,
            prepared.actor_json,
            prepared.event.correlation_id,
            prepared.event.causation_id,
            prepared.data_json,
            prev_hash,
            hash,
            global_hash,
        ]);
        if let Err(e) = inserted {
            // A retry that carries the stream's current version: its first event is the one
            // already stored. Nothing of this request was written yet.
            if version == actual + 1 && is_constraint(&e) {
                let all: Vec<PreparedEvent> = std::iter::once(prepared).chain(events).collect();
                if let Some(stored) = already_stored(conn, stream_id, expected, &all)? {
                    return Ok((stored, head.clone()));
                }
            }
            return Err(sql_error(e));
        }
        let (new, search_terms) = (prepared.event, prepared.search_terms);
        let envelope = EventEnvelope {
            event_id: new.event_id,
            stream_id: stream_id.to_owned(),
            version,
            position,
            recorded_at,
            actor: new.actor,
            correlation_id: new.correlation_id,
            causation_id: new.causation_id,
            schema_version: SCHEMA_VERSION,
            event: new.event,
            prev_hash: std::mem::take(&mut prev_hash),
            hash: hash.clone(),
            global_hash: global_hash.clone(),
        };
        prev_hash = hash;
        // The message's terms, split and folded on the caller's task (ADR 0024).
        super::search::offer(search_terms);
        let projected = project(conn, &envelope, sla);
        super::search::offer(None);
        projected?;
        envelopes.push(envelope);
    }
    if version != actual {
        let version = to_sql_int(version)?;
        conn.prepare_cached(
            "INSERT INTO streams (stream_id, version, hash) VALUES (?1, ?2, ?3) \
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, \
             hash = excluded.hash",
        )
        .and_then(|mut stmt| stmt.execute(params![stream_id, version, prev_hash]))
        .map_err(sql_error)?;
    }
    Ok((envelopes, (position, global_hash)))
}

/// Refuses an opening whose opener has `cap.limit` open tickets already. The writer is the only
/// one that writes, and earlier requests of this batch are already projected in this
/// transaction, so the count is exact at the moment of the append (ADR 0023). A stream that
/// exists is left to `append` (a retry is answered with what it stored).
fn check_cap(
    conn: &Connection,
    stream_id: &str,
    cap: Option<&OpenCap>,
    tips: &StreamTips,
) -> Result<(), StoreError> {
    let Some(cap) = cap else {
        return Ok(());
    };
    let exists = match tips.get(stream_id) {
        Some((version, _)) => *version > 0,
        None => stream_tip(conn, stream_id)?.0 > 0,
    };
    if exists {
        return Ok(());
    }
    let open: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM tickets WHERE user_id = ?1 AND status = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![cap.user_id, TicketStatus::Open.as_str()], |row| {
                row.get(0)
            })
        })
        .map_err(sql_error)?;
    let open = u64::try_from(open).unwrap_or(0);
    if open >= cap.limit {
        return Err(StoreError::OpenTicketLimit {
            open,
            limit: cap.limit,
        });
    }
    Ok(())
}

/// A retry of an append whose outcome the caller never learned: when its first event is already
/// in this stream, the first try committed, and its envelopes are the answer.
fn already_stored(
    conn: &Connection,
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[PreparedEvent],
) -> Result<Option<Vec<EventEnvelope>>, StoreError> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let first_id = first.event.event_id.as_str();
    let Some(Some(stored)) = events_by_id(conn, &[first_id])?.pop() else {
        return Ok(None);
    };
    if stored.stream_id != stream_id {
        return Err(StoreError::Unavailable(format!(
            "event id {first_id} is already stored in stream {}",
            stored.stream_id
        )));
    }
    let ids: Vec<&str> = events.iter().map(|e| e.event.event_id.as_str()).collect();
    let found: Option<Vec<EventEnvelope>> = events_by_id(conn, &ids)?
        .into_iter()
        .map(|e| e.filter(|e| e.stream_id == stream_id))
        .collect();
    match found {
        Some(stored) => Ok(Some(stored)),
        // Same first id, different events: not a retry of what was stored. Make the caller
        // reload the stream and decide again.
        None => Err(StoreError::WrongExpectedVersion {
            stream_id: stream_id.to_owned(),
            expected: expected.as_u64(),
            actual: stream_tip(conn, stream_id)?.0,
        }),
    }
}

fn is_constraint(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// The stream's current version and its last event's hash; 0 and empty when it does not exist.
fn stream_tip(conn: &Connection, stream_id: &str) -> Result<(u64, String), StoreError> {
    let tip: Option<(i64, String)> = conn
        .prepare_cached("SELECT version, hash FROM streams WHERE stream_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([stream_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(sql_error)?;
    let (version, hash) = tip.unwrap_or_default();
    let version = u64::try_from(version).map_err(|_| StoreError::Corrupt {
        position: 0,
        reason: format!("stream {stream_id} has negative version {version}"),
    })?;
    Ok((version, hash))
}

fn save_checkpoint(conn: &Connection, name: &str, position: u64) -> Result<(), StoreError> {
    let position = to_sql_int(position)?;
    conn.prepare_cached(
        "INSERT INTO checkpoints (name, position) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    )
    .and_then(|mut stmt| stmt.execute(params![name, position]))
    .map(drop)
    .map_err(sql_error)
}

/// The last committed position, its `recorded_at` and its `global_hash`; zeros and empty for
/// an empty log.
fn load_head(conn: &Connection) -> Result<(u64, i64, String), StoreError> {
    let last: Option<(i64, i64, String)> = conn
        .query_row(
            "SELECT position, recorded_at, global_hash FROM events \
             ORDER BY position DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(sql_error)?;
    let (position, recorded_at, global_hash) = last.unwrap_or_default();
    let head = u64::try_from(position).map_err(|_| StoreError::Corrupt {
        position: 0,
        reason: format!("negative position {position}"),
    })?;
    Ok((head, recorded_at, global_hash))
}

/// A request that never ran, for a batch that fails as a whole.
fn unanswered(request: Request) -> Answer {
    fn not_run<T>() -> Result<T, StoreError> {
        Err(StoreError::Unavailable("not run".into()))
    }
    match request {
        Request::Append { reply, .. } => Answer::Append(reply, not_run()),
        Request::SaveCheckpoint { reply, .. } => Answer::SaveCheckpoint(reply, not_run()),
        Request::SaveLink { reply, .. } => Answer::SaveLink(reply, not_run()),
        Request::ClaimLink { reply, .. } => Answer::ClaimLink(reply, not_run()),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether every request of `batch` is relaxed bookkeeping.
fn relaxed_only(batch: &[Request]) -> bool {
    batch
        .iter()
        .all(|r| matches!(r, Request::SaveLink { relaxed: true, .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{new_event, opened, user};
    use crate::store::embedded::schema::open_writer;
    use std::time::Duration;
    use ticketd_events::{IssueLevel, NewEvent, SupportRole, TicketEvent, UserRole};

    type AppendAnswer = oneshot::Receiver<Result<Vec<EventEnvelope>, StoreError>>;

    fn writer(dir: &std::path::Path) -> Writer {
        let conn = open_writer(&dir.join("t.db"), false).unwrap();
        Writer::new(conn, Arc::new(watch::Sender::new(0))).unwrap()
    }

    fn open_request(stream_id: &str, events: Vec<NewEvent>) -> (Request, AppendAnswer) {
        let (reply, answer) = oneshot::channel();
        let request = Request::Append {
            stream_id: stream_id.to_owned(),
            expected: ExpectedVersion::NoStream,
            events: events
                .into_iter()
                .map(|e| PreparedEvent::new(stream_id, e).unwrap())
                .collect(),
            cap: None,
            reply,
        };
        (request, answer)
    }

    fn opening() -> NewEvent {
        let customer = user("u1", UserRole::Customer);
        new_event(
            &customer,
            opened(&customer, SupportRole::General, IssueLevel::Normal),
        )
    }

    fn positions(answer: &mut AppendAnswer) -> Vec<u64> {
        let envelopes = answer.try_recv().unwrap().unwrap();
        envelopes.iter().map(|e| e.position).collect()
    }

    fn save_link(relaxed: bool) -> (Request, oneshot::Receiver<Result<(), StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let request = Request::SaveLink {
            kind: "webhook".into(),
            key: "checkpoint".into(),
            value: Some("1".into()),
            relaxed,
            reply,
        };
        (request, answer)
    }

    #[test]
    fn only_a_batch_of_relaxed_links_skips_the_fsync_and_the_mode_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("t.db"), true).unwrap();
        let mut writer = Writer::new(conn, Arc::new(watch::Sender::new(0))).unwrap();
        let mode = |w: &Writer| -> i64 {
            w.conn
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        assert_eq!(mode(&writer), 2);
        let (link, mut answer) = save_link(true);
        writer.commit_batch(vec![link]);
        assert!(answer.try_recv().unwrap().is_ok());
        assert_eq!(mode(&writer), 2, "FULL again after a relaxed batch");
        let (relaxed, _) = save_link(true);
        let (durable, _) = save_link(false);
        let (also_relaxed, _) = save_link(true);
        assert!(relaxed_only(&[relaxed]));
        assert!(
            !relaxed_only(&[also_relaxed, durable]),
            "a durable write keeps its fsync"
        );
        let (append, _) = open_request("s1", vec![opening()]);
        assert!(!relaxed_only(&[append]));
    }

    /// An opening by `user` on a new stream, under a cap of `limit` when given.
    fn open_by(user_id: &str, limit: Option<u64>) -> (Request, AppendAnswer) {
        let opener = user(user_id, UserRole::Customer);
        let stream_id = crate::store::conformance::new_id();
        let (mut request, answer) = open_request(
            &stream_id,
            vec![new_event(
                &opener,
                opened(&opener, SupportRole::General, IssueLevel::Normal),
            )],
        );
        if let Request::Append { cap, .. } = &mut request {
            *cap = limit.map(|limit| OpenCap {
                user_id: user_id.into(),
                limit,
            });
        }
        (request, answer)
    }

    #[test]
    fn the_open_ticket_limit_table() {
        // (case, u1's open tickets before, u1's closed ones, u2's open ones, the batch as
        // (opener, cap), what each request of the batch gets: Ok or the open count refused)
        type Case = (
            &'static str,
            usize,
            usize,
            usize,
            Vec<(&'static str, Option<u64>)>,
            Vec<Result<(), u64>>,
        );
        let cases: Vec<Case> = vec![
            (
                "under the limit",
                0,
                0,
                0,
                vec![("u1", Some(1))],
                vec![Ok(())],
            ),
            ("at the limit", 1, 0, 0, vec![("u1", Some(1))], vec![Err(1)]),
            (
                "past it (a lowered setting)",
                3,
                0,
                0,
                vec![("u1", Some(2))],
                vec![Err(3)],
            ),
            (
                "one slot, two in one batch",
                1,
                0,
                0,
                vec![("u1", Some(2)), ("u1", Some(2))],
                vec![Ok(()), Err(2)],
            ),
            (
                "others' tickets do not count",
                0,
                0,
                3,
                vec![("u1", Some(1))],
                vec![Ok(())],
            ),
            (
                "closed tickets do not count",
                0,
                2,
                0,
                vec![("u1", Some(1))],
                vec![Ok(())],
            ),
            (
                "no cap, no limit",
                2,
                0,
                0,
                vec![("u1", None)],
                vec![Ok(())],
            ),
        ];
        for (name, open, closed, others, batch, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let mut writer = writer(dir.path());
            let mut before = Vec::new();
            for _ in 0..open + closed {
                before.push(open_by("u1", None));
            }
            for _ in 0..others {
                before.push(open_by("u2", None));
            }
            let (requests, mut answers): (Vec<_>, Vec<_>) = before.into_iter().unzip();
            writer.commit_batch(requests);
            let agent = user("a1", UserRole::Agent);
            let mut closes = Vec::new();
            for answer in answers.iter_mut().take(closed) {
                let stream = answer.try_recv().unwrap().unwrap()[0].stream_id.clone();
                let (reply, _) = oneshot::channel();
                closes.push(Request::Append {
                    stream_id: stream.clone(),
                    expected: ExpectedVersion::Exact(1),
                    events: vec![
                        PreparedEvent::new(
                            &stream,
                            new_event(&agent, TicketEvent::TicketClosed { reason: None }),
                        )
                        .unwrap(),
                    ],
                    cap: None,
                    reply,
                });
            }
            writer.commit_batch(closes);
            let (requests, answers): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|(opener, limit)| open_by(opener, limit))
                .unzip();
            writer.commit_batch(requests);
            let got: Vec<Result<(), u64>> = answers
                .into_iter()
                .map(|mut answer| match answer.try_recv().unwrap() {
                    Ok(_) => Ok(()),
                    Err(StoreError::OpenTicketLimit { open, .. }) => Err(open),
                    Err(e) => panic!("{name}: {e}"),
                })
                .collect();
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn a_refused_request_spoils_nothing_else_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path());
        let (first, mut first_answer) = open_request("s1", vec![opening()]);
        // Same stream, same batch: it sees the first one's write and is stale.
        let (stale, mut stale_answer) = open_request("s1", vec![opening()]);
        let duplicate = opening();
        // A SQL error (the event id twice) must roll back only this request's savepoint.
        let (broken, mut broken_answer) = open_request("s3", vec![duplicate.clone(), duplicate]);
        let (other, mut other_answer) = open_request("s2", vec![opening(), opening()]);
        let (reply, mut saved) = oneshot::channel();
        let checkpoint = Request::SaveCheckpoint {
            name: "socket".into(),
            position: 3,
            reply,
        };
        writer.commit_batch(vec![first, stale, broken, other, checkpoint]);

        assert_eq!(positions(&mut first_answer), [1]);
        assert!(matches!(
            stale_answer.try_recv().unwrap(),
            Err(StoreError::WrongExpectedVersion {
                expected: 0,
                actual: 1,
                ..
            })
        ));
        assert!(matches!(
            broken_answer.try_recv().unwrap(),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(
            positions(&mut other_answer),
            [2, 3],
            "refused requests take no positions"
        );
        assert!(saved.try_recv().unwrap().is_ok());
        assert_eq!((writer.head, *writer.head_tx.borrow()), (3, 3));
        let stored: i64 = writer
            .conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE stream_id = 's3'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0);
    }

    #[test]
    fn a_batch_that_cannot_commit_fails_every_request_and_keeps_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path());
        let (first, mut first_answer) = open_request("s1", vec![opening()]);
        writer.commit_batch(vec![first]);
        assert_eq!(positions(&mut first_answer), [1]);

        // Another process holding the write lock past the busy timeout.
        writer.conn.busy_timeout(Duration::ZERO).unwrap();
        let intruder = Connection::open(dir.path().join("t.db")).unwrap();
        intruder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (blocked, mut blocked_answer) = open_request("s2", vec![opening()]);
        let (reply, mut saved) = oneshot::channel();
        let checkpoint = Request::SaveCheckpoint {
            name: "socket".into(),
            position: 1,
            reply,
        };
        writer.commit_batch(vec![blocked, checkpoint]);
        assert!(matches!(
            blocked_answer.try_recv().unwrap(),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            saved.try_recv().unwrap(),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(writer.head, 1);

        intruder.execute_batch("ROLLBACK").unwrap();
        let (retry, mut retry_answer) = open_request("s2", vec![opening()]);
        writer.commit_batch(vec![retry]);
        assert_eq!(positions(&mut retry_answer), [2], "no position was lost");
    }

    #[test]
    fn a_retried_block_answered_from_the_log_does_not_undo_a_later_unblock() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = Arc::new(BlockedUsers::default());
        let mut writer = writer(dir.path()).with_blocked_users(Arc::clone(&blocked));
        let admin = user("root", UserRole::Admin);
        let block = new_event(
            &admin,
            TicketEvent::UserBlocked {
                user_id: "ann".into(),
                reason: None,
            },
        );
        let (first, _) = open_request("user:ann", vec![block.clone()]);
        writer.commit_batch(vec![first]);
        assert!(blocked.contains("ann"));

        let (reply, _) = oneshot::channel();
        let unblock = new_event(
            &admin,
            TicketEvent::UserUnblocked {
                user_id: "ann".into(),
            },
        );
        writer.commit_batch(vec![Request::Append {
            stream_id: "user:ann".into(),
            expected: ExpectedVersion::from_version(1),
            events: vec![PreparedEvent::new("user:ann", unblock).unwrap()],
            cap: None,
            reply,
        }]);
        assert!(!blocked.contains("ann"));

        let (retry, mut answer) = open_request("user:ann", vec![block]);
        writer.commit_batch(vec![retry]);
        assert_eq!(
            positions(&mut answer),
            [1],
            "the retry is answered from the log"
        );
        assert!(!blocked.contains("ann"), "and blocks nobody again");
    }

    #[test]
    fn recorded_at_does_not_follow_a_clock_stepping_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path());
        writer.last_recorded_at = i64::MAX / 2;
        let (first, mut answer) = open_request("s1", vec![opening()]);
        writer.commit_batch(vec![first]);
        let envelopes = answer.try_recv().unwrap().unwrap();
        assert_eq!(envelopes[0].recorded_at, i64::MAX / 2);
    }
}
