//! Where events, read models and checkpoints live. Every store implements the domain's
//! [`EventStore`] for the events and [`ReadModels`] for the queries the API answers; the embedded
//! SQLite store is the default, MongoDB serves several instances; [`Store`] is whichever of the
//! two the server was started with.

#[doc(hidden)]
pub mod any;
pub mod audit_source;
// The suite every store must pass: compiled for tests only (the `conformance` feature, which the
// package's tests turn on through its dev-dependency on itself), not into the server.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod embedded;
pub mod metrics;
pub mod mongo;
pub(crate) mod prepared;

pub use any::Store;
pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use mongo::MongoStore;

use std::future::Future;
use ticketd_events::{EventEnvelope, IssueLevel, NewEvent, StoreError, SupportRole, TicketStatus};
use ticketd_projections::{BlockView, MessageView, ReplyView, TicketView};

/// Which tickets a listing wants; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    /// Only this user's tickets (always set for customers).
    pub user_id: Option<String>,
    /// Only open or only closed.
    pub status: Option<TicketStatus>,
    /// Only this urgency.
    pub issue_level: Option<IssueLevel>,
    /// Only this support team.
    pub support_role: Option<SupportRole>,
    /// Only tickets held by this id (`Some(None)`: held by nobody).
    pub assignee: Option<Option<String>>,
    /// Only tickets carrying every one of these tags (stored form: lower-case).
    pub tags: Vec<String>,
    /// Only tickets in this service-level state (staff; ADR 0025).
    pub sla: Option<SlaFilter>,
}

/// The `sla` listing filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaFilter {
    /// A target recorded missed (`sla=breached`).
    Breached,
    /// Nothing missed, and the earliest due time not yet met at or before this instant, epoch
    /// ms (`sla=due_within:<minutes>`, counted from the request).
    DueBy(i64),
}

/// The queries behind the REST API's reads. Every one is answered from an index: nothing here
/// may scan all tickets or all messages.
pub trait ReadModels: Send + Sync {
    /// One ticket by id.
    fn get_ticket(
        &self,
        ticket_id: &str,
    ) -> impl Future<Output = Result<Option<TicketView>, StoreError>> + Send;

    /// Tickets matching `filter`, newest first (by the position of their opening event), only
    /// those with a position below `before_position` when given, at most `limit`.
    fn list_tickets(
        &self,
        filter: &TicketFilter,
        before_position: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<TicketView>, StoreError>> + Send;

    /// One message by id, deleted ones included (with `deleted_at`).
    fn get_message(
        &self,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<MessageView>, StoreError>> + Send;

    /// A ticket's live (not deleted) messages in posting order, after `after_seq` when given, at
    /// most `limit`; internal notes only when `include_internal`.
    fn list_messages(
        &self,
        ticket_id: &str,
        after_seq: Option<u64>,
        limit: usize,
        include_internal: bool,
    ) -> impl Future<Output = Result<Vec<MessageView>, StoreError>> + Send;

    /// The same messages newest first: those before `before_seq` when given, at most `limit`
    /// (a long conversation opens at its latest page and pages back from there).
    fn list_messages_newest_first(
        &self,
        ticket_id: &str,
        before_seq: Option<u64>,
        limit: usize,
        include_internal: bool,
    ) -> impl Future<Output = Result<Vec<MessageView>, StoreError>> + Send;
}

/// Where in a ticket a search term was found (ADR 0024): bits of [`SearchIndex::search_term`]'s
/// answer.
pub mod found {
    /// In the topic.
    pub const TOPIC: u8 = 4;
    /// In the description.
    pub const DESCRIPTION: u8 = 2;
    /// In a live message (an internal note only when notes were asked for).
    pub const MESSAGE: u8 = 1;
}

/// One ticket holding a search term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermHit {
    /// The ticket's position.
    pub position: u64,
    /// Where the term is: [`found`] bits.
    pub found: u8,
    /// When found in a message: a version in the ticket's stream at or before the first live
    /// message holding the term, so excerpts are looked for from there (ADR 0024).
    pub first_message: Option<u64>,
}

/// The full-text index (ADR 0024), kept in the append's transaction like the other read models.
/// It answers one query word at a time; [`crate::search`] intersects and ranks.
pub trait SearchIndex: Send + Sync {
    /// The tickets holding `term` (or a word starting with it, for a prefix), by ascending
    /// position; internal notes count only when `include_internal`.
    fn search_term(
        &self,
        term: &crate::search::text::QueryTerm,
        include_internal: bool,
    ) -> impl Future<Output = Result<Vec<TermHit>, StoreError>> + Send;

    /// The tickets at these positions, in any order; positions without a ticket are left out.
    fn tickets_at(
        &self,
        positions: &[u64],
    ) -> impl Future<Output = Result<Vec<TicketView>, StoreError>> + Send;
}

impl TicketFilter {
    /// Whether `ticket` passes every set field, as a listing with this filter would decide.
    pub fn matches(&self, ticket: &TicketView) -> bool {
        let tags = ticket.tags.as_deref().unwrap_or_default();
        self.user_id.as_ref().is_none_or(|u| *u == ticket.user_id)
            && self.status.is_none_or(|s| s == ticket.status)
            && self.issue_level.is_none_or(|l| l == ticket.issue_level)
            && self.support_role.is_none_or(|r| r == ticket.support_role)
            && self
                .assignee
                .as_ref()
                .is_none_or(|a| *a == ticket.assignee_id)
            && self.tags.iter().all(|t| tags.contains(t))
    }
}

/// The cap an opening is appended under: its opener may have at most `limit` open tickets
/// (`MAX_OPEN_TICKETS_PER_USER`, ADR 0023).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCap {
    /// Whose open tickets count: the opener's id.
    pub user_id: String,
    /// How many may be open at once; 1 or more (0 means no cap, and no [`OpenCap`] is made).
    pub limit: u64,
}

/// Appending an opening under an [`OpenCap`]. Counting open tickets in the read model and then
/// appending would let two opens that both counted `limit - 1` both succeed; here the count is
/// taken inside the append's own transaction, which every other append is serialized against
/// (the embedded store's single writer; MongoDB's counter document, which every append
/// transaction writes, so two of them conflict and one reruns on the other's result).
pub trait CappedAppend: Send + Sync {
    /// Appends `events` to the new stream `stream_id` (as with [`ExpectedVersion::NoStream`])
    /// unless `cap.user_id` has `cap.limit` or more open tickets, which is refused with
    /// [`StoreError::OpenTicketLimit`]. A stream that exists already is not counted against:
    /// the append answers as an unguarded one would (stored envelopes for a retry, else a
    /// wrong expected version).
    ///
    /// [`ExpectedVersion::NoStream`]: ticketd_events::ExpectedVersion::NoStream
    fn append_capped(
        &self,
        stream_id: &str,
        events: Vec<NewEvent>,
        cap: &OpenCap,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send;
}

/// The auto-close timer's query (ADR 0022): tickets waiting on their customer, by when they
/// started waiting, from an index that holds waiting tickets only, so a scan never walks every
/// ticket.
pub trait Countdowns: Send + Sync {
    /// Tickets whose countdown started at or before `started_by` (epoch ms), oldest first, at
    /// most `limit`.
    fn due_countdowns(
        &self,
        started_by: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<TicketView>, StoreError>> + Send;

    /// The service-level sweeper's query (ADR 0025): tickets with a target to record missed
    /// at or before `by` (epoch ms), earliest first, at most `limit`; from an index that holds
    /// only tickets with such a target pending.
    fn due_sla(
        &self,
        by: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<TicketView>, StoreError>> + Send;
}

/// The read models of the streams beside the tickets (ADR 0021), projected inline like the
/// tickets: saved replies and blocks. Both stay small (names, blocked users), so they are
/// listed whole.
pub trait HelpdeskModels: Send + Sync {
    /// Every saved reply, sorted by name.
    fn list_replies(&self) -> impl Future<Output = Result<Vec<ReplyView>, StoreError>> + Send;

    /// Every block, sorted by user id.
    fn list_blocks(&self) -> impl Future<Output = Result<Vec<BlockView>, StoreError>> + Send;
}

/// Whether a user is blocked (ADR 0021), asked before every customer's open, post and edit, so
/// it must cost next to nothing: the embedded store keeps the set in memory beside its single
/// writer; MongoDB reads the block's document by its key, since another instance may have
/// written it.
pub trait BlockList: Send + Sync {
    /// Whether `user_id` is blocked as of the last commit this instance can see.
    fn is_blocked(&self, user_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The reports projection (ADR 0026): figures over a window, from per-day counters and the
/// facts at the window's edges, never from a scan of the events.
pub trait Reports: Send + Sync {
    /// The report `query` asks for; equal to
    /// [`ticketd_projections::reports::recompute`] over the stored events.
    fn report(
        &self,
        query: &ticketd_projections::reports::ReportQuery,
    ) -> impl Future<Output = Result<ticketd_projections::reports::Report, StoreError>> + Send;
}

/// Durable positions of the projectors that follow the global stream (socket fan-out, Discord).
pub trait Checkpoints: Send + Sync {
    /// The last position the named projector finished, 0 if it never ran.
    fn load_checkpoint(&self, name: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records that the named projector finished everything up to `position`.
    fn save_checkpoint(
        &self,
        name: &str,
        position: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Durable links between our ids and another system's: the Discord bridge keeps ticket → channel
/// and message → Discord message here, so a side effect already done is found again after a
/// crash instead of being done twice.
pub trait Links: Send + Sync {
    /// The value linked to `key` under `kind`, if any.
    fn load_link(
        &self,
        kind: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Records (or replaces) the link of `key` under `kind`; `None` removes it.
    fn save_link(
        &self,
        kind: &str,
        key: &str,
        value: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`Links::save_link`] for bookkeeping that may be lost to a power cut but not to a killed
    /// process (the webhook checkpoint, written once per delivered event): a store may skip
    /// waiting for the disk. By default it is `save_link`.
    fn save_link_relaxed(
        &self,
        kind: &str,
        key: &str,
        value: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.save_link(kind, key, value)
    }

    /// Links `key` to `value` unless it is linked already, atomically, and answers the value
    /// that holds: `value` for the first claim, the first claim's value for every later one, so
    /// racing claimants all agree on one.
    fn claim_link(
        &self,
        kind: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// What a store keeps beside its events that a move between stores must carry: the links
/// (Discord channels and messages, ticket idempotency keys) and the projectors' checkpoints.
/// Without them the Discord bridge of a moved store would post every ticket again and a
/// retried ticket open would open a second ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bookkeeping {
    /// Every link, as `(kind, key, value)`.
    pub links: Vec<(String, String, String)>,
    /// Every projector checkpoint, as `(name, position)`.
    pub checkpoints: Vec<(String, u64)>,
}
