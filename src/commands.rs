//! The command executor: load a ticket, let the aggregate decide, append with the expected
//! version. Commands for one ticket are serialized within this instance (a per-ticket lock), so
//! they never race each other here; a race with another writer (another instance) surfaces as a
//! wrong expected version, and the command is re-decided on fresh state and retried, never lost.
//! Decided state is cached per ticket so a busy ticket with 10,000 messages is not re-read for
//! every command.

use crate::store::{BlockList, CappedAppend, Links, OpenCap};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use ticketd_events::{
    Actor, Aggregate, Command, EventEnvelope, EventStore, ExpectedVersion, NewEvent, StoreError,
    Ticket, TicketError,
};
use tokio::sync::Mutex as AsyncMutex;

/// How often a command is re-decided after losing a race before giving up with 503.
const MAX_ATTEMPTS: u32 = 8;
/// Tickets whose decided state is kept between commands; idle ones beyond this are dropped.
const CACHE_CAPACITY: usize = 10_000;

/// Why a command did not take effect.
#[derive(Debug, Error)]
pub enum CommandError {
    /// The rules refused it.
    #[error(transparent)]
    Rejected(#[from] TicketError),
    /// The store failed, or the race was lost too many times.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The events it appended, possibly none (a command that changes nothing). The ticket's
    /// state is not handed out: copying it would cost as much as the ticket is long.
    pub events: Vec<EventEnvelope>,
}

/// Who asks, and on behalf of which request.
#[derive(Debug, Clone)]
pub struct Context {
    /// The caller.
    pub actor: Actor,
    /// The request id; ties the events to the request in logs and in the audit trail.
    pub correlation_id: String,
    /// Set when the client sent an idempotency key: the seed every id of the command is
    /// derived from, so a retry of the same request names the same events and the store answers
    /// with the ones it already has instead of writing them twice (ADR 0014).
    pub idempotency: Option<IdempotencySeed>,
}

/// The links kind under which `POST /api/v1/tickets` keeps each idempotency key and the id of
/// the ticket it claimed (ADR 0014).
pub const TICKET_KEYS: &str = "ticket-idempotency-key";

/// What a client's idempotency key becomes: a hash of who sent it, to which ticket, and the key,
/// so one user's key never meets another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencySeed([u8; 32]);

impl IdempotencySeed {
    /// The seed of `key` sent by `user_id` in `scope`: the ticket id when opening it, the route
    /// and ticket when posting in it, so one key used on both names different events.
    pub fn new(user_id: &str, scope: &str, key: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in ["ticketd idempotency v1", user_id, scope, key] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        IdempotencySeed(hash.finalize().into())
    }

    /// The links key (under [`TICKET_KEYS`]) of `key` sent by `user_id` to open a ticket: a hash,
    /// so one user's key never meets another's and the raw key is not stored. No ticket id exists
    /// yet, so the route stands in its place.
    pub fn ticket_key(user_id: &str, key: &str) -> String {
        Self::new(user_id, "POST /api/v1/tickets", key).id("ticket key")
    }

    /// A UUID (version 8) for the `what` of this request: the same for every retry.
    pub fn id(&self, what: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest: [u8; 32] = Sha256::new()
            .chain_update(self.0)
            .chain_update(what.as_bytes())
            .finalize()
            .into();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

type Slot = Arc<AsyncMutex<Option<Ticket>>>;

/// Runs commands against any [`EventStore`].
pub struct Executor<S> {
    store: S,
    slots: Mutex<HashMap<String, Slot>>,
}

impl<S: EventStore + BlockList> Executor<S> {
    /// An executor over `store` with an empty cache.
    pub fn new(store: S) -> Self {
        Executor {
            store,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The store it writes to.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Decides `commands` in order on one ticket and appends all their events atomically.
    pub async fn execute(
        &self,
        ticket_id: &str,
        context: &Context,
        commands: &[Command],
    ) -> Result<Outcome, CommandError> {
        self.refuse_blocked(context, commands).await?;
        let slot = self.slot(ticket_id);
        let mut cached = slot.lock().await;
        let mut ticket = match cached.take() {
            Some(ticket) => ticket,
            None => self.load(ticket_id, Ticket::default()).await?,
        };
        let mut refreshed = false;
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let decided = match decide_all(&ticket, commands, &context.actor) {
                Ok(decided) => decided,
                // A refusal may come from state another instance has moved on from: look once more.
                Err(_) if !refreshed => {
                    refreshed = true;
                    ticket = self.load(ticket_id, ticket).await?;
                    continue;
                }
                Err(e) => break Err(CommandError::Rejected(e)),
            };
            if decided.is_empty() {
                break Ok(Vec::new());
            }
            let new_events = new_events(context, decided);
            let expected = ExpectedVersion::from_version(ticket.version);
            match self.store.append(ticket_id, expected, new_events).await {
                Ok(stored) => {
                    // A retried request is answered with the events its first try stored,
                    // which the state already holds.
                    let known = ticket.version;
                    for envelope in stored.iter().filter(|e| e.version > known) {
                        ticket.apply(&envelope.event);
                    }
                    break Ok(stored);
                }
                Err(StoreError::WrongExpectedVersion { .. }) if attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt)).await;
                    ticket = self.load(ticket_id, ticket).await?;
                }
                Err(e) => {
                    // The outcome of a failed append is unknown: forget the state, reload next time.
                    drop(cached);
                    self.forget(ticket_id);
                    return Err(e.into());
                }
            }
        };
        let exists = ticket.exists();
        let outcome = result.map(|events| Outcome { events });
        if exists {
            *cached = Some(ticket);
        } else {
            drop(cached);
            self.forget(ticket_id);
        }
        outcome
    }

    /// Refuses a blocked customer's open, post or edit (ADR 0021). The store answers from its
    /// blocks read model, never a cache of ours: an unblock must take effect at once on every
    /// instance. Staff are never blocked; deleting their own messages and closing their tickets
    /// stays open to the blocked.
    async fn refuse_blocked(
        &self,
        context: &Context,
        commands: &[Command],
    ) -> Result<(), CommandError> {
        let writes = commands.iter().any(|c| {
            matches!(
                c,
                Command::OpenTicket { .. }
                    | Command::PostMessage { .. }
                    | Command::EditMessage { .. }
            )
        });
        if context.actor.is_staff() || !writes {
            return Ok(());
        }
        if self.store.is_blocked(&context.actor.id).await? {
            return Err(TicketError::Forbidden(ticketd_events::account::BLOCKED).into());
        }
        Ok(())
    }

    /// Decides `command` on a stream beside the tickets (saved replies, a user: ADR 0021) and
    /// appends its events at the expected version, re-deciding on fresh state after a lost
    /// race. These streams are short and rarely written, so their state is read each time
    /// rather than cached.
    pub async fn execute_on<A: Aggregate>(
        &self,
        stream_id: &str,
        context: &Context,
        command: &A::Command,
    ) -> Result<Outcome, CommandError> {
        let mut state = self.load_stream(stream_id, A::default()).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let decided = state.decide(command, &context.actor)?;
            if decided.is_empty() {
                return Ok(Outcome { events: Vec::new() });
            }
            let new_events = decided
                .into_iter()
                .map(|event| NewEvent {
                    event_id: uuid::Uuid::now_v7().to_string(),
                    actor: context.actor.clone(),
                    correlation_id: context.correlation_id.clone(),
                    causation_id: context.correlation_id.clone(),
                    event,
                })
                .collect();
            let expected = ExpectedVersion::from_version(state.version());
            match self.store.append(stream_id, expected, new_events).await {
                Ok(events) => return Ok(Outcome { events }),
                Err(StoreError::WrongExpectedVersion { .. }) if attempt < MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt)).await;
                    state = self.load_stream(stream_id, state).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Brings `state` up to date with any stream.
    async fn load_stream<A: Aggregate>(
        &self,
        stream_id: &str,
        mut state: A,
    ) -> Result<A, StoreError> {
        for envelope in self.store.read_stream(stream_id, state.version()).await? {
            state.apply(&envelope.event);
        }
        Ok(state)
    }

    /// Brings `ticket` up to date with the stream (from scratch when it is empty).
    async fn load(&self, ticket_id: &str, mut ticket: Ticket) -> Result<Ticket, StoreError> {
        for envelope in self.store.read_stream(ticket_id, ticket.version).await? {
            ticket.apply(&envelope.event);
        }
        Ok(ticket)
    }

    fn slot(&self, ticket_id: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slots.len() >= CACHE_CAPACITY && !slots.contains_key(ticket_id) {
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
            if slots.len() >= CACHE_CAPACITY {
                slots.clear();
            }
        }
        slots.entry(ticket_id.to_string()).or_default().clone()
    }

    fn forget(&self, ticket_id: &str) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slots
            .get(ticket_id)
            .is_some_and(|slot| Arc::strong_count(slot) <= 1)
        {
            slots.remove(ticket_id);
        }
    }
}

impl<S: EventStore + BlockList + Links + CappedAppend> Executor<S> {
    /// Opens a ticket as `context`'s actor, with `open` (an [`Command::OpenTicket`]), and answers
    /// its id. Without a key it is a new ticket. With the client's idempotency key, the key is
    /// first claimed in the store's links (atomically on both stores), so a retry, or a twin
    /// racing on any instance, opens nothing more and answers the ticket the first try opened;
    /// a first try that stopped between the claim and the open is finished by the retry, with
    /// the event ids it used, so the store recognises an append it did finish (ADR 0014).
    ///
    /// With `max_open` above 0 the opening is appended under an [`OpenCap`]: refused with
    /// [`StoreError::OpenTicketLimit`] when the opener has that many tickets open, counted in the
    /// append's own transaction (ADR 0023). A retry of a ticket that did open is answered with
    /// it, whatever the count.
    pub async fn open_ticket(
        &self,
        context: &Context,
        open: Command,
        key: Option<&str>,
        max_open: u64,
    ) -> Result<String, CommandError> {
        let cap = (max_open > 0).then(|| OpenCap {
            user_id: context.actor.id.clone(),
            limit: max_open,
        });
        // A fresh v7 id keeps tickets in time order, whether or not a key claims it.
        let fresh_id = uuid::Uuid::now_v7().to_string();
        let Some(key) = key else {
            self.open(&fresh_id, context, open, cap.as_ref()).await?;
            return Ok(fresh_id);
        };
        let user_id = context.actor.id.as_str();
        let ticket_id = self
            .store
            .claim_link(
                TICKET_KEYS,
                &IdempotencySeed::ticket_key(user_id, key),
                &fresh_id,
            )
            .await?;
        let context = Context {
            idempotency: Some(IdempotencySeed::new(user_id, &ticket_id, key)),
            ..context.clone()
        };
        // "Already exists" means an earlier try (or a racing twin) opened it.
        match self.open(&ticket_id, &context, open, cap.as_ref()).await {
            Ok(()) | Err(CommandError::Rejected(TicketError::TicketAlreadyExists)) => Ok(ticket_id),
            Err(e) => Err(e),
        }
    }

    /// Opens `ticket_id`, under `cap` when there is one. An opening is decided on whether the
    /// stream exists only, so it needs no retry loop: a twin that appended first makes it
    /// "already exists".
    async fn open(
        &self,
        ticket_id: &str,
        context: &Context,
        open: Command,
        cap: Option<&OpenCap>,
    ) -> Result<(), CommandError> {
        let Some(cap) = cap else {
            return self.execute(ticket_id, context, &[open]).await.map(drop);
        };
        let slot = self.slot(ticket_id);
        let mut cached = slot.lock().await;
        let mut ticket = match cached.take() {
            Some(ticket) => ticket,
            None => self.load(ticket_id, Ticket::default()).await?,
        };
        let decided = ticket.decide(&open, &context.actor);
        let result = match decided {
            Err(e) => Err(CommandError::Rejected(e)),
            Ok(decided) => {
                let appended = self
                    .store
                    .append_capped(ticket_id, new_events(context, decided), cap)
                    .await;
                match appended {
                    Ok(stored) => {
                        let known = ticket.version;
                        for envelope in stored.iter().filter(|e| e.version > known) {
                            ticket.apply(&envelope.event);
                        }
                        Ok(())
                    }
                    Err(StoreError::WrongExpectedVersion { .. }) => {
                        Err(CommandError::Rejected(TicketError::TicketAlreadyExists))
                    }
                    Err(e) => Err(CommandError::Store(e)),
                }
            }
        };
        if ticket.exists() && result.is_ok() {
            *cached = Some(ticket);
        } else {
            drop(cached);
            self.forget(ticket_id);
        }
        result
    }
}

/// The decided events in their envelopes-to-be: ids from the idempotency seed when there is one
/// (a retry names the same events), else fresh.
fn new_events(context: &Context, decided: Vec<ticketd_events::TicketEvent>) -> Vec<NewEvent> {
    decided
        .into_iter()
        .enumerate()
        .map(|(i, event)| NewEvent {
            event_id: match &context.idempotency {
                Some(seed) => seed.id(&format!("event {i}")),
                None => uuid::Uuid::now_v7().to_string(),
            },
            actor: context.actor.clone(),
            correlation_id: context.correlation_id.clone(),
            causation_id: context.correlation_id.clone(),
            event,
        })
        .collect()
}

fn decide_all(
    ticket: &Ticket,
    commands: &[Command],
    actor: &Actor,
) -> Result<Vec<ticketd_events::TicketEvent>, TicketError> {
    if let [command] = commands {
        // The common case needs no copy of the state (which grows with the ticket's messages).
        return ticket.decide(command, actor);
    }
    let mut state = ticket.clone();
    let mut all = Vec::new();
    for command in commands {
        let events = state.decide(command, actor)?;
        for event in &events {
            state.apply(event);
        }
        all.extend(events);
    }
    Ok(all)
}

/// Jittered exponential backoff, so racing instances do not collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = 2u64.saturating_pow(attempt.min(8));
    Duration::from_millis(base + rand::random::<u64>() % (base + 1))
}
