//! The store the server runs on, chosen at start-up: the embedded file when `MONGO_URI` is not
//! set, MongoDB when it is. An enum rather than a trait object, so the store traits keep their
//! native async functions and a call on the embedded store costs one match more than before.

use super::{
    BlockList, CappedAppend, Checkpoints, Countdowns, EmbeddedStore, HelpdeskModels, Links,
    MongoStore, OpenCap, ReadModels, SearchIndex, TicketFilter,
};
use ticketd_events::{EventEnvelope, EventStore, ExpectedVersion, NewEvent, StoreError};
use ticketd_projections::{BlockView, MessageView, ReplyView, TicketView};

/// One of the stores; clones share the underlying store.
#[derive(Clone, Debug)]
pub enum Store {
    /// SQLite under `DATA_DIR`: one instance.
    Embedded(EmbeddedStore),
    /// A MongoDB replica set: one or more instances.
    Mongo(MongoStore),
}

impl From<EmbeddedStore> for Store {
    fn from(store: EmbeddedStore) -> Self {
        Store::Embedded(store)
    }
}

impl From<MongoStore> for Store {
    fn from(store: MongoStore) -> Self {
        Store::Mongo(store)
    }
}

/// Calls the same method on whichever store this is.
macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Embedded($store) => $call,
            Store::Mongo($store) => $call,
        }
    };
}

impl Store {
    /// Stops taking writes and lets every queued one commit; reads keep working.
    pub async fn shutdown(&self) {
        delegate!(self, s => s.shutdown().await)
    }

    /// What the writer measures, for `/metrics`.
    pub fn metrics(&self) -> &super::metrics::StoreMetrics {
        delegate!(self, s => s.metrics())
    }

    /// Turns the keeping of the search index on or off (`SEARCH_INDEX`, ADR 0024).
    pub fn set_search_index(&self, on: bool) {
        delegate!(self, s => s.set_search_index(on))
    }

    /// Whether the search index is kept.
    pub fn search_index(&self) -> bool {
        delegate!(self, s => s.search_index())
    }

    /// A short name for logs: `embedded` or `mongodb`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Embedded(_) => "embedded",
            Store::Mongo(_) => "mongodb",
        }
    }
}

impl Countdowns for Store {
    async fn due_countdowns(
        &self,
        started_by: i64,
        limit: usize,
    ) -> Result<Vec<TicketView>, StoreError> {
        delegate!(self, s => s.due_countdowns(started_by, limit).await)
    }

    async fn due_sla(&self, by: i64, limit: usize) -> Result<Vec<TicketView>, StoreError> {
        delegate!(self, s => s.due_sla(by, limit).await)
    }
}

impl BlockList for Store {
    async fn is_blocked(&self, user_id: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.is_blocked(user_id).await)
    }
}

impl SearchIndex for Store {
    async fn search_term(
        &self,
        term: &crate::search::text::QueryTerm,
        include_internal: bool,
    ) -> Result<Vec<crate::store::TermHit>, StoreError> {
        delegate!(self, s => s.search_term(term, include_internal).await)
    }

    async fn tickets_at(&self, positions: &[u64]) -> Result<Vec<TicketView>, StoreError> {
        delegate!(self, s => s.tickets_at(positions).await)
    }
}

impl CappedAppend for Store {
    async fn append_capped(
        &self,
        stream_id: &str,
        events: Vec<NewEvent>,
        cap: &OpenCap,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        delegate!(self, s => s.append_capped(stream_id, events, cap).await)
    }
}

impl EventStore for Store {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        delegate!(self, s => s.append(stream_id, expected, events).await)
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        delegate!(self, s => s.read_stream(stream_id, after_version).await)
    }

    async fn read_stream_page(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        delegate!(self, s => s.read_stream_page(stream_id, after_version, limit).await)
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        delegate!(self, s => s.read_all(after_position, limit).await)
    }

    async fn head(&self) -> Result<u64, StoreError> {
        delegate!(self, s => s.head().await)
    }

    async fn wait_beyond(&self, position: u64) {
        delegate!(self, s => s.wait_beyond(position).await)
    }
}

impl HelpdeskModels for Store {
    async fn list_replies(&self) -> Result<Vec<ReplyView>, StoreError> {
        delegate!(self, s => s.list_replies().await)
    }

    async fn list_blocks(&self) -> Result<Vec<BlockView>, StoreError> {
        delegate!(self, s => s.list_blocks().await)
    }
}

impl crate::store::Reports for Store {
    async fn report(
        &self,
        query: &ticketd_projections::reports::ReportQuery,
    ) -> Result<ticketd_projections::reports::Report, StoreError> {
        delegate!(self, s => s.report(query).await)
    }
}

impl ReadModels for Store {
    async fn get_ticket(&self, ticket_id: &str) -> Result<Option<TicketView>, StoreError> {
        delegate!(self, s => s.get_ticket(ticket_id).await)
    }

    async fn list_tickets(
        &self,
        filter: &TicketFilter,
        before_position: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TicketView>, StoreError> {
        delegate!(self, s => s.list_tickets(filter, before_position, limit).await)
    }

    async fn get_message(&self, message_id: &str) -> Result<Option<MessageView>, StoreError> {
        delegate!(self, s => s.get_message(message_id).await)
    }

    async fn list_messages(
        &self,
        ticket_id: &str,
        after_seq: Option<u64>,
        limit: usize,
        include_internal: bool,
    ) -> Result<Vec<MessageView>, StoreError> {
        delegate!(self, s => s.list_messages(ticket_id, after_seq, limit, include_internal).await)
    }

    async fn list_messages_newest_first(
        &self,
        ticket_id: &str,
        before_seq: Option<u64>,
        limit: usize,
        include_internal: bool,
    ) -> Result<Vec<MessageView>, StoreError> {
        delegate!(self, s => {
            s.list_messages_newest_first(ticket_id, before_seq, limit, include_internal).await
        })
    }
}

impl Checkpoints for Store {
    async fn load_checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        delegate!(self, s => s.load_checkpoint(name).await)
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        delegate!(self, s => s.save_checkpoint(name, position).await)
    }
}

impl Links for Store {
    async fn load_link(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        delegate!(self, s => s.load_link(kind, key).await)
    }

    async fn save_link(
        &self,
        kind: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.save_link(kind, key, value).await)
    }

    async fn save_link_relaxed(
        &self,
        kind: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.save_link_relaxed(kind, key, value).await)
    }

    async fn claim_link(&self, kind: &str, key: &str, value: &str) -> Result<String, StoreError> {
        delegate!(self, s => s.claim_link(kind, key, value).await)
    }
}
