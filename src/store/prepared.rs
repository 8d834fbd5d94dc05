//! An event made ready for a store's writer on the caller's task: its stored JSON rendered and
//! its hash computed up to the fields only the writer knows (version, position, time, previous
//! hash). Every store uses it, so every store stores and hashes the same bytes.

use ticketd_events::chain::{HashedFields, PendingHash};
use ticketd_events::envelope::SCHEMA_VERSION;
use ticketd_events::{NewEvent, StoreError};

/// A new event with its JSON rendered and most of its hash absorbed, done on the caller's task
/// so a store's single writer spends its time in the database and on the short tail of one hash.
pub(crate) struct PreparedEvent {
    /// The event itself, which becomes the returned envelope.
    pub(crate) event: NewEvent,
    /// `event.actor` as stored.
    pub(crate) actor_json: String,
    /// `event.event` as stored: the tagged `{"type", "data"}` form, not the envelope's flattening.
    pub(crate) data_json: String,
    /// The event's hash with everything but its placement absorbed.
    pub(crate) pending_hash: PendingHash,
    /// The distinct search terms of the message the event posts, space-separated, for the
    /// embedded store's writer
    /// (`store::embedded::search::offer`).
    pub(crate) search_terms: Option<String>,
}

impl PreparedEvent {
    /// Renders the stored JSON of `event`, bound for `stream_id`.
    pub(crate) fn new(stream_id: &str, event: NewEvent) -> Result<Self, StoreError> {
        let render = |e: serde_json::Error| StoreError::Unavailable(format!("serialize: {e}"));
        let actor_json = serde_json::to_string(&event.actor).map_err(render)?;
        let data_json = serde_json::to_string(&event.event).map_err(render)?;
        let pending_hash = PendingHash::new(&HashedFields {
            schema_version: SCHEMA_VERSION,
            event_id: &event.event_id,
            stream_id,
            correlation_id: &event.correlation_id,
            causation_id: &event.causation_id,
            actor_json: &actor_json,
            event_type: event.event.type_name(),
            event_json: &data_json,
        });
        Ok(PreparedEvent {
            event,
            actor_json,
            data_json,
            pending_hash,
            search_terms: None,
        })
    }
}
