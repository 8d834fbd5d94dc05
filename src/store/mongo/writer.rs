//! The one task per instance that appends. Appends from every request queue up on a channel; the
//! writer takes whatever queued while it was busy and commits it as one transaction (group
//! commit), with one `$inc` of the counter document for the whole batch. SecantusDB manages
//! about 450 one-append transactions a second, so a burst of N commands sharing one transaction
//! is what keeps a busy instance fast.
//!
//! The counter is incremented inside the same transaction as the inserts, so positions are taken
//! in commit order and an aborted transaction takes none: two instances writing at once make one
//! of them conflict (write conflict on the counter, code 112) and run again after a jittered
//! pause, never a gap and never a reader seeing n + 1 before n (ADR 0011).
//!
//! MongoDB has no savepoints, so a batch is decided before anything is written: requests with a
//! stale expected version are refused from the stream tips read in the transaction's snapshot,
//! retries of stored appends are answered from the stored events (idempotency by event id), and
//! only the rest is placed and written.

use super::docs::{Failure, classify, envelope_from_doc, event_doc, stream_tip_from_doc, to_i64};
use super::projection::{ProjectError, project};
use super::schema::{Collections, EVENTS_COUNTER};
use crate::store::OpenCap;
use crate::store::prepared::PreparedEvent;
use bson::doc;
use mongodb::options::{ReadConcern, WriteConcern};
use mongodb::{Client, ClientSession};
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ticketd_events::chain::{self, Placement};
use ticketd_events::envelope::SCHEMA_VERSION;
use ticketd_events::{EventEnvelope, ExpectedVersion, StoreError, TicketStatus};
use tokio::sync::{mpsc, oneshot, watch};

/// Requests committed together at most; bounds one transaction's size and duration.
const MAX_BATCH: usize = 256;
/// How long one batch keeps retrying conflicts and outages before its callers get a 503.
const RETRY_BUDGET: Duration = Duration::from_secs(15);
/// The first pause after a conflict; doubled per retry up to [`MAX_BACKOFF`], then jittered.
const FIRST_BACKOFF: Duration = Duration::from_millis(4);
/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_millis(250);
/// Duplicate-key refusals of one batch in a row before its callers get an error: a fresh
/// snapshot normally turns one into a wrong-expected-version answer at once.
const MAX_DUPLICATE_RETRIES: u32 = 5;

/// Where the writer sends its answer; dropped unanswered only if the writer died.
pub(super) type Reply = oneshot::Sender<Result<Vec<EventEnvelope>, StoreError>>;

/// One queued append.
pub(super) struct Request {
    /// The ticket's stream.
    pub(super) stream_id: String,
    /// Its version as the caller last saw it.
    pub(super) expected: ExpectedVersion,
    /// What to append, in order.
    pub(super) events: Vec<PreparedEvent>,
    /// For an opening under `MAX_OPEN_TICKETS_PER_USER`: the cap it is appended under.
    pub(super) cap: Option<OpenCap>,
    /// Gets the stored envelopes once the batch is committed.
    pub(super) reply: Reply,
}

/// What became of one request in a committed batch.
enum Outcome {
    /// Appended now, or found stored by an earlier try.
    Stored(Vec<EventEnvelope>),
    /// Refused: stale version, or an event id stored elsewhere.
    Refused(StoreError),
    /// Shares an event id with an earlier request of the same batch (a client retrying while
    /// its first try still queued): it runs in the next batch, where it finds the first stored.
    Deferred,
}

/// A failed try of a batch, with what it means.
struct TryFailed {
    failure: Failure,
    error: String,
}

impl From<mongodb::error::Error> for TryFailed {
    fn from(error: mongodb::error::Error) -> Self {
        TryFailed {
            failure: classify(&error),
            error: error.to_string(),
        }
    }
}

impl From<StoreError> for TryFailed {
    fn from(error: StoreError) -> Self {
        TryFailed {
            failure: Failure::Other,
            error: error.to_string(),
        }
    }
}

impl From<ProjectError> for TryFailed {
    fn from(error: ProjectError) -> Self {
        match error {
            ProjectError::Driver(e) => e.into(),
            ProjectError::Encode(e) => e.into(),
        }
    }
}

/// The writer task's state.
pub(super) struct Writer {
    /// Sessions come from here.
    client: Client,
    /// The collections it writes.
    collections: Collections,
    /// Publishes the head after each commit, for `wait_beyond` on this instance.
    head: Arc<watch::Sender<u64>>,
    /// Commit times and batch sizes, for `/metrics`.
    metrics: crate::store::metrics::StoreMetrics,
}

impl Writer {
    pub(super) fn new(
        client: Client,
        collections: Collections,
        head: Arc<watch::Sender<u64>>,
    ) -> Self {
        Writer {
            client,
            collections,
            head,
            metrics: Default::default(),
        }
    }

    /// Records its batches in `metrics`.
    pub(super) fn with_metrics(mut self, metrics: crate::store::metrics::StoreMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Commits queued requests until every sender is gone and the queue is drained.
    pub(super) async fn run(self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let mut deferred = Vec::new();
        loop {
            let mut batch: Vec<Request> = std::mem::take(&mut deferred);
            if batch.is_empty() {
                match requests.recv().await {
                    Some(first) => batch.push(first),
                    None => break,
                }
            }
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            deferred = self.commit_batch(batch).await;
        }
    }

    /// Runs `batch` in one transaction, retrying what may be retried, answers every request and
    /// hands back the deferred ones.
    async fn commit_batch(&self, batch: Vec<Request>) -> Vec<Request> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut duplicates: u32 = 0;
        loop {
            let tried = Instant::now();
            let failed = match self.try_batch(&batch).await {
                Ok((outcomes, head)) => {
                    // The follower may move the head for another instance's events, so the
                    // events are counted from the outcomes (a retried append counts again).
                    let events: usize = outcomes
                        .iter()
                        .map(|o| match o {
                            Outcome::Stored(envelopes) => envelopes.len(),
                            _ => 0,
                        })
                        .sum();
                    self.metrics
                        .committed(batch.len(), events as u64, tried.elapsed());
                    if let Some(head) = head {
                        self.head.send_if_modified(|h| {
                            let moved = head > *h;
                            *h = (*h).max(head);
                            moved
                        });
                    }
                    return answer(batch, outcomes);
                }
                Err(failed) => failed,
            };
            attempt += 1;
            if let Failure::Duplicate(_) = failed.failure {
                duplicates += 1;
            }
            let retry = match failed.failure {
                Failure::Transient | Failure::UnknownCommit => true,
                Failure::Duplicate(_) => duplicates <= MAX_DUPLICATE_RETRIES,
                // An outage: retrying within the budget rides out a failover or a restart.
                Failure::Other => true,
            };
            if !retry || started.elapsed() >= RETRY_BUDGET {
                tracing::error!(
                    error = %failed.error,
                    attempts = attempt,
                    requests = batch.len(),
                    "mongodb batch not committed"
                );
                let reason = format!("mongodb: {}", failed.error);
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Unavailable(reason.clone())));
                }
                return Vec::new();
            }
            if failed.failure == Failure::Other {
                tracing::warn!(error = %failed.error, attempt, "mongodb append failed; retrying");
            } else {
                tracing::debug!(error = %failed.error, attempt, "mongodb append conflict; retrying");
            }
            tokio::time::sleep(backoff(attempt, failed.failure == Failure::Other)).await;
        }
    }

    /// One try of a batch: a fresh session and transaction, decided and written, committed.
    /// Returns each request's outcome and the new head if anything was appended.
    async fn try_batch(&self, batch: &[Request]) -> Result<(Vec<Outcome>, Option<u64>), TryFailed> {
        // A fresh session per try: after a refused write the server has aborted the
        // transaction, and the session must not be reused for it.
        super::search::positions_aborted(&self.collections);
        let mut session = self.client.start_session().await?;
        session
            .start_transaction()
            .read_concern(ReadConcern::snapshot())
            .write_concern(WriteConcern::majority())
            .await?;
        let written = match self.decide_and_write(&mut session, batch).await {
            Ok(written) => written,
            Err(failed) => {
                let _ = session.abort_transaction().await;
                return Err(failed);
            }
        };
        let (outcomes, head) = written;
        if head.is_none() {
            // Nothing written: refusals and retries only.
            let _ = session.abort_transaction().await;
            return Ok((outcomes, None));
        }
        let mut tries = 0;
        loop {
            match session.commit_transaction().await {
                Ok(()) => {
                    super::search::positions_committed(&self.collections);
                    return Ok((outcomes, head));
                }
                Err(e) => {
                    tries += 1;
                    // Committing again is safe: the server answers a repeated commit with the
                    // first one's outcome. Past a few tries the whole batch runs again, and its
                    // event ids tell whether the first commit landed.
                    if classify(&e) == Failure::UnknownCommit && tries < 3 {
                        tokio::time::sleep(backoff(tries, false)).await;
                        continue;
                    }
                    return Err(e.into());
                }
            }
        }
    }

    /// Reads what the batch depends on in the transaction's snapshot, decides every request,
    /// and writes the accepted ones with their read-model changes and the counter.
    async fn decide_and_write(
        &self,
        session: &mut ClientSession,
        batch: &[Request],
    ) -> Result<(Vec<Outcome>, Option<u64>), TryFailed> {
        let c = &self.collections;
        let all_ids: Vec<&str> = batch
            .iter()
            .flat_map(|r| r.events.iter().map(|e| e.event.event_id.as_str()))
            .collect();
        let mut stored: HashMap<String, EventEnvelope> = HashMap::new();
        let mut cursor = c
            .events
            .find(doc! {"event_id": {"$in": &all_ids}})
            .session(&mut *session)
            .await?;
        while cursor.advance(&mut *session).await? {
            let envelope = envelope_from_doc(&cursor.deserialize_current()?)?;
            stored.insert(envelope.event_id.clone(), envelope);
        }
        drop(cursor);

        let stream_ids: HashSet<&str> = batch.iter().map(|r| r.stream_id.as_str()).collect();
        let stream_ids: Vec<&str> = stream_ids.into_iter().collect();
        let mut tips: HashMap<String, (u64, String)> = HashMap::new();
        let mut cursor = c
            .streams
            .find(doc! {"_id": {"$in": &stream_ids}})
            .session(&mut *session)
            .await?;
        while cursor.advance(&mut *session).await? {
            let (id, tip) = stream_tip_from_doc(&cursor.deserialize_current()?)?;
            tips.insert(id, tip);
        }
        drop(cursor);

        let counter = c
            .counters
            .find_one(doc! {"_id": EVENTS_COUNTER})
            .session(&mut *session)
            .await?
            .unwrap_or_default();
        let mut position = counter
            .get_i64("position")
            .ok()
            .and_then(|p| u64::try_from(p).ok())
            .unwrap_or(0);
        let mut global_hash = counter
            .get_str("global_hash")
            .unwrap_or_default()
            .to_owned();
        let last_recorded_at = counter.get_i64("recorded_at").unwrap_or(0);
        let recorded_at = now_ms().max(last_recorded_at);
        let first_position = position;

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut in_batch: HashSet<&str> = HashSet::new();
        let mut documents = Vec::new();
        let mut appended: Vec<EventEnvelope> = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        let mut opened_in_batch: HashMap<&str, u64> = HashMap::new();
        for request in batch {
            let stream_id = request.stream_id.as_str();
            let ids: Vec<&str> = request
                .events
                .iter()
                .map(|e| e.event.event_id.as_str())
                .collect();
            let unique: HashSet<&str> = ids.iter().copied().collect();
            if unique.len() != ids.len() {
                outcomes.push(Outcome::Refused(StoreError::Unavailable(
                    "an append repeats an event id".into(),
                )));
                continue;
            }
            if ids.iter().any(|id| in_batch.contains(id)) {
                outcomes.push(Outcome::Deferred);
                continue;
            }
            let (actual, _) = tips.get(stream_id).cloned().unwrap_or_default();
            if let Some(outcome) = already_stored(request, &ids, &stored, actual) {
                outcomes.push(outcome);
                continue;
            }
            if actual != request.expected.as_u64() {
                outcomes.push(Outcome::Refused(StoreError::WrongExpectedVersion {
                    stream_id: stream_id.to_owned(),
                    expected: request.expected.as_u64(),
                    actual,
                }));
                continue;
            }
            if let Some(cap) = &request.cap {
                // Counted in this transaction's snapshot, plus the openings this batch accepted
                // already; the counter document makes a concurrent batch of another instance
                // conflict and rerun on our result, so no two counts miss each other (ADR 0023).
                let earlier = opened_in_batch
                    .get(cap.user_id.as_str())
                    .copied()
                    .unwrap_or(0);
                let open = count_open(c, &mut *session, &cap.user_id).await? + earlier;
                if open >= cap.limit {
                    outcomes.push(Outcome::Refused(StoreError::OpenTicketLimit {
                        open,
                        limit: cap.limit,
                    }));
                    continue;
                }
                *opened_in_batch.entry(cap.user_id.as_str()).or_default() += 1;
            }
            in_batch.extend(ids.iter().copied());
            let tip = tips.entry(stream_id.to_owned()).or_default();
            let mut envelopes = Vec::with_capacity(request.events.len());
            for prepared in &request.events {
                position += 1;
                tip.0 += 1;
                let hash = prepared.pending_hash.finish(&Placement {
                    version: tip.0,
                    position,
                    recorded_at,
                    prev_hash: &tip.1,
                });
                global_hash = chain::global_hash(&global_hash, &hash);
                let new = &prepared.event;
                let envelope = EventEnvelope {
                    event_id: new.event_id.clone(),
                    stream_id: stream_id.to_owned(),
                    version: tip.0,
                    position,
                    recorded_at,
                    actor: new.actor.clone(),
                    correlation_id: new.correlation_id.clone(),
                    causation_id: new.causation_id.clone(),
                    schema_version: SCHEMA_VERSION,
                    event: new.event.clone(),
                    prev_hash: std::mem::replace(&mut tip.1, hash.clone()),
                    hash,
                    global_hash: global_hash.clone(),
                };
                documents.push(event_doc(
                    &envelope,
                    &prepared.actor_json,
                    &prepared.data_json,
                )?);
                envelopes.push(envelope);
            }
            if !touched.iter().any(|s| s == stream_id) {
                touched.push(stream_id.to_owned());
            }
            appended.extend(envelopes.iter().cloned());
            outcomes.push(Outcome::Stored(envelopes));
        }
        if documents.is_empty() {
            return Ok((outcomes, None));
        }

        // The counter first: a concurrent batch of another instance conflicts here, before
        // either of them has done more work.
        c.counters
            .update_one(
                doc! {"_id": EVENTS_COUNTER},
                doc! {
                    "$inc": {"position": to_i64(position - first_position)?},
                    "$set": {"global_hash": &global_hash, "recorded_at": recorded_at},
                },
            )
            .upsert(true)
            .session(&mut *session)
            .await?;
        c.events
            .insert_many(documents)
            .ordered(true)
            .session(&mut *session)
            .await?;
        for stream_id in &touched {
            let (version, hash) = &tips[stream_id];
            c.streams
                .update_one(
                    doc! {"_id": stream_id},
                    doc! {"$set": {"version": to_i64(*version)?, "hash": hash}},
                )
                .upsert(true)
                .session(&mut *session)
                .await?;
        }
        for envelope in &appended {
            project(c, &mut *session, envelope).await?;
        }
        Ok((outcomes, Some(position)))
    }
}

/// How many of `user_id`'s tickets are open, in the transaction's snapshot; walks that user's
/// tickets only (the `(user_id, position)` index).
async fn count_open(
    c: &Collections,
    session: &mut ClientSession,
    user_id: &str,
) -> Result<u64, TryFailed> {
    let mut cursor = c
        .tickets
        .find(doc! {"user_id": user_id, "status": TicketStatus::Open.as_str()})
        .projection(doc! {"_id": 1})
        .session(&mut *session)
        .await?;
    let mut open = 0;
    while cursor.advance(&mut *session).await? {
        open += 1;
    }
    Ok(open)
}

/// A retry of an append whose outcome the caller never learned: when its first event is already
/// stored in this stream, the first try committed and its envelopes are the answer. Mirrors the
/// embedded store's rule.
fn already_stored(
    request: &Request,
    ids: &[&str],
    stored: &HashMap<String, EventEnvelope>,
    actual: u64,
) -> Option<Outcome> {
    let stream_id = request.stream_id.as_str();
    let first = stored.get(*ids.first()?);
    match first {
        Some(first) if first.stream_id != stream_id => {
            Some(Outcome::Refused(StoreError::Unavailable(format!(
                "event id {} is already stored in stream {}",
                first.event_id, first.stream_id
            ))))
        }
        Some(_) => {
            let found: Option<Vec<EventEnvelope>> = ids
                .iter()
                .map(|id| {
                    stored
                        .get(*id)
                        .filter(|e| e.stream_id == stream_id)
                        .cloned()
                })
                .collect();
            Some(match found {
                Some(envelopes) => Outcome::Stored(envelopes),
                // Same first id, different events: not a retry of what was stored.
                None => Outcome::Refused(StoreError::WrongExpectedVersion {
                    stream_id: stream_id.to_owned(),
                    expected: request.expected.as_u64(),
                    actual,
                }),
            })
        }
        // A later event of the append is stored already (in any stream): writing it again
        // would break the unique event id.
        None => ids.iter().find_map(|id| {
            stored.get(*id).map(|e| {
                Outcome::Refused(StoreError::Unavailable(format!(
                    "event id {id} is already stored in stream {}",
                    e.stream_id
                )))
            })
        }),
    }
}

/// Answers every request of a committed batch; returns the deferred ones.
fn answer(batch: Vec<Request>, outcomes: Vec<Outcome>) -> Vec<Request> {
    let mut deferred = Vec::new();
    for (request, outcome) in batch.into_iter().zip(outcomes) {
        // A caller that stopped waiting is no error: its write stands, and a retry by event id
        // finds it.
        match outcome {
            Outcome::Stored(envelopes) => drop(request.reply.send(Ok(envelopes))),
            Outcome::Refused(error) => drop(request.reply.send(Err(error))),
            Outcome::Deferred => deferred.push(request),
        }
    }
    deferred
}

/// A pause before try `attempt + 1`: exponential, capped, and fully jittered so that writers of
/// several instances that collided do not collide again in step. Outages wait longer.
fn backoff(attempt: u32, outage: bool) -> Duration {
    let cap = if outage {
        Duration::from_millis(1000)
    } else {
        MAX_BACKOFF
    };
    let ceiling = FIRST_BACKOFF.saturating_mul(1 << attempt.min(16)).min(cap);
    let ceiling_ms = u64::try_from(ceiling.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::rng().random_range(1..=ceiling_ms))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
