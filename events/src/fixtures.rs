//! Envelopes for tests, in any crate of the workspace: one builder instead of a struct literal
//! of thirteen fields copied into every test module. Behind the `fixtures` feature, which only
//! dev-dependencies turn on, so no server build carries it.

use crate::{Actor, EventEnvelope, TicketEvent, UserRole, Via};

/// `event` as version 1 of ticket `t1` at position 1, recorded at 1,000 ms, by the customer
/// `u1` ("Ann") through the REST API, with empty hashes; the methods change what a test needs.
pub fn envelope(event: TicketEvent) -> EventEnvelope {
    EventEnvelope {
        event_id: "e1".into(),
        stream_id: "t1".into(),
        version: 1,
        position: 1,
        recorded_at: 1_000,
        actor: Actor {
            id: "u1".into(),
            name: "Ann".into(),
            role: UserRole::Customer,
            via: Via::Web,
        },
        correlation_id: "c".into(),
        causation_id: "c".into(),
        schema_version: 1,
        event,
        prev_hash: String::new(),
        hash: String::new(),
        global_hash: String::new(),
    }
}

/// Builder methods over [`envelope`]'s defaults.
pub trait EnvelopeFixture {
    /// Sets the event id.
    fn id(self, event_id: &str) -> Self;
    /// Sets the stream version.
    fn version(self, version: u64) -> Self;
    /// Sets the global position.
    fn position(self, position: u64) -> Self;
    /// Sets when it was recorded, epoch milliseconds.
    fn at(self, recorded_at: i64) -> Self;
    /// Sets who acted: id, name and role (the door stays as it is).
    fn by(self, id: &str, name: &str, role: UserRole) -> Self;
    /// Sets the door the actor came through.
    fn via(self, via: Via) -> Self;
}

impl EnvelopeFixture for EventEnvelope {
    fn id(mut self, event_id: &str) -> Self {
        self.event_id = event_id.into();
        self
    }
    fn version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }
    fn position(mut self, position: u64) -> Self {
        self.position = position;
        self
    }
    fn at(mut self, recorded_at: i64) -> Self {
        self.recorded_at = recorded_at;
        self
    }
    fn by(mut self, id: &str, name: &str, role: UserRole) -> Self {
        self.actor.id = id.into();
        self.actor.name = name.into();
        self.actor.role = role;
        self
    }
    fn via(mut self, via: Via) -> Self {
        self.actor.via = via;
        self
    }
}
