//! What auditors read from a store, whichever it is: the stored events byte for byte (the hash
//! chains cover exactly what was written, not what this binary would write today), each stream's
//! recorded end, and the read models as stored. Both stores implement [`AuditSource`], so the
//! checks of `ticketd verify` and the timeline of `ticketd audit` (in `crate::audit`) are written
//! once and run on either.

use std::collections::HashMap;
use std::future::Future;
use ticketd_events::chain::{self, HashedFields, Placement};
use ticketd_events::{Actor, EventEnvelope, StoreError, TicketEvent};
use ticketd_projections::{MessageView, TicketView};

/// One stored event exactly as stored: the actor and the event as the JSON texts that were
/// hashed, never re-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// Global position.
    pub position: u64,
    /// Event id.
    pub event_id: String,
    /// Ticket id.
    pub stream_id: String,
    /// Stream version.
    pub version: u64,
    /// Commit time, epoch ms.
    pub recorded_at: i64,
    /// The stored event type name.
    pub event_type: String,
    /// The envelope format version.
    pub schema_version: i64,
    /// The actor's JSON text.
    pub actor: String,
    /// Correlation id.
    pub correlation_id: String,
    /// Causation id.
    pub causation_id: String,
    /// The tagged event's JSON text.
    pub data: String,
    /// The stored hash of the stream's previous event.
    pub prev_hash: String,
    /// The stored hash of this event.
    pub hash: String,
    /// The stored global-chain link.
    pub global_hash: String,
}

impl RawEvent {
    /// The hash this event's content and stored `prev_hash` give if it sits at `position`.
    pub fn hash_at(&self, position: u64) -> String {
        chain::event_hash(
            &HashedFields {
                schema_version: u32::try_from(self.schema_version).unwrap_or(u32::MAX),
                event_id: &self.event_id,
                stream_id: &self.stream_id,
                correlation_id: &self.correlation_id,
                causation_id: &self.causation_id,
                actor_json: &self.actor,
                event_type: &self.event_type,
                event_json: &self.data,
            },
            &Placement {
                version: self.version,
                position,
                recorded_at: self.recorded_at,
                prev_hash: &self.prev_hash,
            },
        )
    }

    /// The hash this event's content gives where it is.
    pub fn computed_hash(&self) -> String {
        self.hash_at(self.position)
    }

    /// The envelope the event holds.
    pub fn decode(&self) -> Result<EventEnvelope, StoreError> {
        self.clone().into_envelope()
    }

    /// The envelope the event holds, without copying its texts.
    pub fn into_envelope(self) -> Result<EventEnvelope, StoreError> {
        let position = self.position;
        let corrupt = |reason: String| StoreError::Corrupt { position, reason };
        let actor: Actor =
            serde_json::from_str(&self.actor).map_err(|e| corrupt(format!("actor: {e}")))?;
        let event: TicketEvent =
            serde_json::from_str(&self.data).map_err(|e| corrupt(format!("data: {e}")))?;
        if event.type_name() != self.event_type {
            return Err(corrupt(format!(
                "event_type {} but data holds {}",
                self.event_type,
                event.type_name()
            )));
        }
        Ok(EventEnvelope {
            event_id: self.event_id,
            stream_id: self.stream_id,
            version: self.version,
            position,
            recorded_at: self.recorded_at,
            actor,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            schema_version: u32::try_from(self.schema_version)
                .map_err(|e| corrupt(format!("schema_version: {e}")))?,
            event,
            prev_hash: self.prev_hash,
            hash: self.hash,
            global_hash: self.global_hash,
        })
    }
}

/// What a replay rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Events folded.
    pub events: u64,
    /// Tickets written.
    pub tickets: u64,
    /// Messages written (deleted ones included).
    pub messages: u64,
}

/// One consistent view of a store for auditors: every call sees the same snapshot, even while
/// servers keep appending beside it. Methods take `&mut self` because a snapshot may live in a
/// session the calls share. (Futures without a `Send` bound: the auditing commands run them on
/// one thread.)
pub trait AuditSource {
    /// Up to `limit` events after `after_position`, in position order.
    fn events_after(
        &mut self,
        after_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RawEvent>, StoreError>>;

    /// One stream's events in version order.
    fn stream(
        &mut self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Vec<RawEvent>, StoreError>>;

    /// Every stream id that has events, in id order.
    fn stream_ids(&mut self) -> impl Future<Output = Result<Vec<String>, StoreError>>;

    /// Each stream's version and last hash as the writer recorded them, by stream id.
    fn stream_tips(
        &mut self,
    ) -> impl Future<Output = Result<HashMap<String, (u64, String)>, StoreError>>;

    /// A ticket as the read model holds it.
    fn ticket(
        &mut self,
        ticket_id: &str,
    ) -> impl Future<Output = Result<Option<TicketView>, StoreError>>;

    /// Every message of a ticket as the read model holds it, deleted ones and notes included,
    /// by seq.
    fn messages_of(
        &mut self,
        ticket_id: &str,
    ) -> impl Future<Output = Result<Vec<MessageView>, StoreError>>;

    /// How many tickets and messages the read models hold.
    fn read_model_counts(&mut self) -> impl Future<Output = Result<(u64, u64), StoreError>>;

    /// Every saved reply as the read model holds it, by name (ADR 0021).
    fn replies(
        &mut self,
    ) -> impl Future<Output = Result<Vec<ticketd_projections::ReplyView>, StoreError>>;

    /// Every block as the read model holds it, by user id (ADR 0021).
    fn blocks(
        &mut self,
    ) -> impl Future<Output = Result<Vec<ticketd_projections::BlockView>, StoreError>>;

    /// The reports projection as stored (ADR 0026): every fact and every day counter, each
    /// sorted.
    fn report_projection(
        &mut self,
    ) -> impl Future<
        Output = Result<
            (
                Vec<ticketd_projections::reports::ReportFact>,
                Vec<ticketd_projections::reports::ReportRow>,
            ),
            StoreError,
        >,
    >;

    /// The first disagreement between the read models and a lookup table a store keeps beside
    /// them (the embedded store's `ticket_tags`, which the `tag` filter reads), described;
    /// `None` when they agree or the store keeps none (MongoDB indexes the ticket documents
    /// themselves).
    fn lookup_tables(&mut self) -> impl Future<Output = Result<Option<String>, StoreError>> {
        std::future::ready(Ok(None))
    }

    /// Where the store is, for messages to a person (a path, or a database name).
    fn describe(&self) -> String;
}
