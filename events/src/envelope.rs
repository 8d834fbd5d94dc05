//! The envelope every stored event travels in: who did it, through which door, when, where it sits
//! in its ticket's stream and in the global order, and what caused it. Auditors read these.

use crate::event::TicketEvent;
use crate::roles::UserRole;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The envelope format version; bumped with an upcaster when a stored shape changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The door a command came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The REST API.
    Web,
    /// A Socket.IO connection.
    Socket,
    /// The Discord bridge.
    Discord,
    /// The command line.
    Cli,
    /// ticketd itself, on a timer (the auto-close of inactive tickets, ADR 0022).
    System,
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    /// Their id (the JWT's `id`, or a Discord member id).
    pub id: String,
    /// Their display name at the time.
    pub name: String,
    /// Their role at the time; the rules are decided on it.
    pub role: UserRole,
    /// The door they used.
    pub via: Via,
}

impl Actor {
    /// Staff act on every ticket.
    pub fn is_staff(&self) -> bool {
        self.role.is_staff()
    }
}

/// An event decided but not yet stored: the store gives it its place and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// UUID v7 chosen by the writer, so a retried append can be recognised.
    pub event_id: String,
    /// Who caused it.
    pub actor: Actor,
    /// Ties together every event one request produced.
    pub correlation_id: String,
    /// The event or request that directly caused this one.
    pub causation_id: String,
    /// What happened.
    pub event: TicketEvent,
}

/// A stored event with its full envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventEnvelope {
    /// UUID v7, unique across the store.
    pub event_id: String,
    /// The ticket id.
    pub stream_id: String,
    /// 1 for the stream's first event, then gap-free.
    pub version: u64,
    /// 1 for the store's first event, then gap-free in commit order.
    pub position: u64,
    /// When the store committed it, epoch milliseconds; never decreases along positions.
    pub recorded_at: i64,
    /// Who caused it.
    pub actor: Actor,
    /// Ties together every event one request produced.
    pub correlation_id: String,
    /// The event or request that directly caused this one.
    pub causation_id: String,
    /// The envelope format version it was written with.
    pub schema_version: u32,
    /// What happened.
    #[serde(flatten)]
    pub event: TicketEvent,
    /// The `hash` of the stream's previous event; empty for version 1 (see [`crate::chain`]).
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 of this event's canonical encoding, chained through `prev_hash`; empty only for an
    /// envelope a store has not sealed.
    #[serde(default)]
    pub hash: String,
    /// This event's link in the chain over the global order (see [`crate::chain`]).
    #[serde(default)]
    pub global_hash: String,
}
