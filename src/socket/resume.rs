//! Socket resume: a client that hands over the last position it saw (`since`) first receives,
//! in log order, what it missed and may see, then the live events, with none missing and none
//! twice at the seam (ADR 0019). The log is durable and its positions are global, so this works
//! after a server restart and on any instance of one database.
//!
//! The seam is the broadcaster's [`Cursor`]: the position of the last event the broadcaster has
//! dealt with, which it advances while holding the cursor's lock. A resuming socket replays up
//! to the cursor without the lock, then takes the lock, replays the few events the broadcaster
//! passed meanwhile and joins its rooms before letting go: every event up to the cursor came
//! from the replay, every later one comes live, and both go through the socket's one queue in
//! order.
//!
//! Replayed payloads are what live delivery announced: each ticket is folded from its stream up
//! to the event before the one replayed, and the same [`fanout::plan`] turns the event into the
//! socket event.

use serde::Serialize;
use serde_json::json;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use ticketd_events::{EventEnvelope, EventStore, StoreError};
use ticketd_projections::MemoryReadModel;
use ticketd_projections::fanout::{self, Audience, Delivery};
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::Instant;
use tracing::{debug, warn};

/// Events read per round trip while replaying.
const BATCH: usize = 512;
/// Tickets kept folded while replaying; past this the fold is dropped and rebuilt from the
/// stream when needed, so a replay across many long tickets stays bounded in memory.
const FOLDED_TICKETS: usize = 256;
/// How far behind the cursor a socket may be when it takes the lock for the last stretch: the
/// broadcaster waits for that stretch, so it is kept short.
const LAST_STRETCH: u64 = 64;
/// How long a replay waits for a socket whose send queue stays full before giving up on it.
const STALLED: Duration = Duration::from_secs(30);
/// How long a socket resuming from beyond this instance's cursor waits for the broadcaster to
/// get there (another instance may have shown it a position this one has not reached yet).
const CATCH_UP: Duration = Duration::from_secs(5);
/// What [`Cursor::peek`] answers before the broadcaster has read the head.
const NOT_STARTED: u64 = u64::MAX;

/// The second argument of every event a socket receives once it asked for positions: where the
/// event it announces sits in the log, so the client can resume after it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Position {
    /// The global position of the last event of the command announced.
    pub position: u64,
    /// That event's id.
    pub event_id: String,
}

impl Position {
    /// The position of `envelope`.
    pub fn of(envelope: &EventEnvelope) -> Self {
        Position {
            position: envelope.position,
            event_id: envelope.event_id.clone(),
        }
    }
}

/// The broadcaster's progress: the last position it has emitted (or decided to skip).
#[derive(Debug)]
pub struct Cursor {
    position: Mutex<Option<u64>>,
    seen: AtomicU64,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            position: Mutex::new(None),
            seen: AtomicU64::new(NOT_STARTED),
        }
    }
}

/// The cursor, held: the broadcaster emits and advances under it; a resuming socket joins its
/// rooms under it.
pub struct Held<'a> {
    guard: MutexGuard<'a, Option<u64>>,
    seen: &'a AtomicU64,
}

impl Held<'_> {
    /// The position, once the broadcaster has started.
    pub fn position(&self) -> Option<u64> {
        *self.guard
    }

    /// Records that everything up to `position` has been emitted.
    pub fn advance(&mut self, position: u64) {
        *self.guard = Some(position);
        self.seen.store(position, Ordering::Release);
    }
}

impl Cursor {
    /// Takes the lock.
    pub async fn hold(&self) -> Held<'_> {
        Held {
            guard: self.position.lock().await,
            seen: &self.seen,
        }
    }

    /// The position without the lock: already passed when read, so only a lower bound.
    pub fn peek(&self) -> Option<u64> {
        match self.seen.load(Ordering::Acquire) {
            NOT_STARTED => None,
            position => Some(position),
        }
    }
}

/// Whom a replay is for: the same visibility as live delivery.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The user's id: a customer sees the events of their own tickets.
    pub user_id: String,
    /// Staff see every ticket's events, internal notes included.
    pub staff: bool,
    /// The service-level targets staff see tickets under (ADR 0025).
    pub sla: std::sync::Arc<ticketd_events::SlaPolicy>,
}

/// How a resume ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// Replayed this many socket events, then joined the rooms.
    Replayed(usize),
    /// Too far behind: sent `resync_required` and joined the rooms.
    Resync,
    /// The socket went away, was authorized again or stalled; nothing was joined.
    Abandoned,
}

/// Replays to `socket` what `viewer` may see after `since`, then calls `join` (which joins the
/// live rooms and answers whether it did) with the broadcaster held at the seam. A socket more
/// than `max_events` behind gets `resync_required` `{position}` and joins at once.
pub async fn resume<S: EventStore + crate::store::ReadModels>(
    store: &S,
    cursor: &Cursor,
    socket: &SocketRef,
    viewer: &Viewer,
    since: u64,
    max_events: u64,
    join: impl FnOnce() -> bool,
) -> Result<Resumed, StoreError> {
    let Some(start) = started(cursor, socket).await else {
        return Ok(Resumed::Abandoned);
    };
    if start.saturating_sub(since) > max_events {
        // Told the head rather than wherever this instance's broadcaster happens to be.
        if let Ok(head) = store.head().await {
            catch_up_to(cursor, head).await;
        }
        let held = cursor.hold().await;
        let head = held.position().unwrap_or(start);
        if !send(socket, "resync_required", &json!({ "position": head })).await || !join() {
            return Ok(Resumed::Abandoned);
        }
        debug!(sid = %socket.id, since, head, "socket too far behind: resync");
        return Ok(Resumed::Resync);
    }
    if since > start
        && let Ok(head) = store.head().await
    {
        // A client may have seen a position on an instance whose broadcaster is ahead of this
        // one's; joining before the cursor gets there would show it those events again.
        catch_up_to(cursor, since.min(head)).await;
    }
    let mut replay = Replay {
        store,
        socket,
        viewer,
        folded: HashMap::new(),
        owners: HashMap::new(),
        sent: 0,
    };
    let mut done = since;
    while let Some(target) = cursor.peek()
        && target > done.saturating_add(LAST_STRETCH)
    {
        if !replay.run(done, target).await? {
            return Ok(Resumed::Abandoned);
        }
        done = target;
    }
    let held = cursor.hold().await;
    let target = held.position().unwrap_or(done);
    if target > done && !replay.run(done, target).await? {
        return Ok(Resumed::Abandoned);
    }
    if !join() {
        return Ok(Resumed::Abandoned);
    }
    drop(held);
    debug!(sid = %socket.id, since, upto = target, sent = replay.sent, "socket resumed");
    Ok(Resumed::Replayed(replay.sent))
}

/// The cursor once the broadcaster has read the head; `None` if the socket left meanwhile.
async fn started(cursor: &Cursor, socket: &SocketRef) -> Option<u64> {
    loop {
        if !socket.connected() {
            return None;
        }
        if let Some(position) = cursor.peek() {
            return Some(position);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits, a little, for the broadcaster to reach `goal`.
async fn catch_up_to(cursor: &Cursor, goal: u64) {
    let deadline = Instant::now() + CATCH_UP;
    while cursor.peek().is_some_and(|p| p < goal) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Replay<'a, S> {
    store: &'a S,
    socket: &'a SocketRef,
    viewer: &'a Viewer,
    /// Tickets folded up to the last event replayed of each.
    folded: HashMap<String, MemoryReadModel>,
    /// Ticket owners, for customers: a ticket's owner never changes.
    owners: HashMap<String, Option<String>>,
    sent: usize,
}

impl<S: EventStore + crate::store::ReadModels> Replay<'_, S> {
    /// Replays the events in `(after, upto]`; `false` when the socket cannot take them.
    async fn run(&mut self, mut after: u64, upto: u64) -> Result<bool, StoreError> {
        // An event is announced once the next one shows it is not superseded (one command's
        // ticket changes are announced once, by the last), as the broadcaster does.
        let mut held: Option<EventEnvelope> = None;
        'pages: loop {
            let batch = self.store.read_all(after, BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for envelope in batch {
                if let Some(previous) = held.take()
                    && !fanout::superseded_by(&previous, &envelope)
                    && !self.announce(&previous).await?
                {
                    return Ok(false);
                }
                if envelope.position > upto {
                    break 'pages;
                }
                after = envelope.position;
                held = Some(envelope);
            }
        }
        match held {
            Some(last) => self.announce(&last).await,
            None => Ok(true),
        }
    }

    /// Sends `envelope`'s socket event if the viewer may see it.
    async fn announce(&mut self, envelope: &EventEnvelope) -> Result<bool, StoreError> {
        // Live delivery sends nothing for the streams beside the tickets (ADR 0021).
        if !envelope.event.is_ticket_event() {
            return Ok(true);
        }
        if !self.may_see_ticket(&envelope.stream_id).await? {
            return Ok(true);
        }
        let Some(delivery) = self.plan(envelope).await? else {
            return Ok(true);
        };
        if delivery.audience == Audience::StaffOnly && !self.viewer.staff {
            return Ok(true);
        }
        let args = (
            delivery.payload_for(self.viewer.staff, &self.viewer.sla),
            Position::of(envelope),
        );
        if !send(self.socket, delivery.event.name(), &args).await {
            return Ok(false);
        }
        self.sent += 1;
        Ok(true)
    }

    async fn may_see_ticket(&mut self, ticket_id: &str) -> Result<bool, StoreError> {
        if self.viewer.staff {
            return Ok(true);
        }
        if !self.owners.contains_key(ticket_id) {
            if self.owners.len() >= 4 * FOLDED_TICKETS {
                self.owners.clear();
            }
            let owner = self.store.get_ticket(ticket_id).await?.map(|t| t.user_id);
            self.owners.insert(ticket_id.to_string(), owner);
        }
        Ok(self
            .owners
            .get(ticket_id)
            .is_some_and(|owner| owner.as_deref() == Some(self.viewer.user_id.as_str())))
    }

    /// What live delivery planned for `envelope`: the ticket as it stood before it.
    async fn plan(&mut self, envelope: &EventEnvelope) -> Result<Option<Delivery>, StoreError> {
        let id = &envelope.stream_id;
        if !self.folded.contains_key(id) {
            if self.folded.len() >= FOLDED_TICKETS {
                self.folded.clear();
            }
            let before = envelope.version.saturating_sub(1) as usize;
            let events = self.store.read_stream_page(id, 0, before).await?;
            self.folded
                .insert(id.clone(), MemoryReadModel::from_events(&events));
        }
        let Some(model) = self.folded.get_mut(id) else {
            return Ok(None);
        };
        let ticket = match model.tickets.get(id) {
            Some(ticket) => ticket.clone(),
            // The opening itself: the ticket is what the event makes it.
            None => match MemoryReadModel::from_events([envelope]).tickets.remove(id) {
                Some(ticket) => ticket,
                None => return Ok(None),
            },
        };
        let message = fanout::message_needed(envelope).and_then(|m| model.messages.get(m));
        let delivery = fanout::plan(envelope, &ticket, message);
        model.apply_event(envelope);
        Ok(delivery)
    }
}

/// Emits to one socket, waiting while its send queue is full: a replay may send thousands of
/// events, more than the queue holds. `false` when the socket is gone or stays full.
async fn send<T: Serialize + ?Sized>(socket: &SocketRef, event: &str, data: &T) -> bool {
    let deadline = Instant::now() + STALLED;
    loop {
        match socket.emit(event, data) {
            Ok(()) => return true,
            Err(SendError::Socket(SocketError::InternalChannelFull))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => {
                warn!(sid = %socket.id, "replay to a socket stopped: {e}");
                return false;
            }
        }
    }
}
