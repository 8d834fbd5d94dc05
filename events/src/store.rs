//! The event-store abstraction, in the shape of `eventually`'s `EventStore` (see ADR 0002) but
//! with native async functions and our own errors: append to one ticket's stream at an expected
//! version, read a stream, read the global order after a position, and wait for new events.
//! Every store (embedded SQLite, MongoDB) passes the same conformance suite.

use crate::envelope::{EventEnvelope, NewEvent};
use std::future::Future;
use thiserror::Error;

/// What the writer believes the stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version (its last event's version).
    Exact(u64),
}

impl ExpectedVersion {
    /// The version as a number, 0 for an empty stream.
    pub fn as_u64(self) -> u64 {
        match self {
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Exact(v) => v,
        }
    }

    /// The expectation matching a stream folded to `version` events.
    pub fn from_version(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }
}

/// Why a store did not do what was asked.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another writer appended first; reload, decide again and retry.
    #[error("stream {stream_id} is at version {actual}, expected {expected}")]
    WrongExpectedVersion {
        /// The stream.
        stream_id: String,
        /// What the writer expected.
        expected: u64,
        /// What the store has.
        actual: u64,
    },
    /// The store cannot be reached or failed; the command may be retried later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored event could not be read back; a bug or a damaged store.
    #[error("corrupt event at position {position}: {reason}")]
    Corrupt {
        /// Where.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// The store is shutting down and takes no more writes.
    #[error("store is shutting down")]
    ShuttingDown,
    /// An open refused because its opener already has `open` tickets open, as many as the
    /// limit allows; decided inside the append's transaction, so it holds under concurrency.
    #[error("{open} tickets are open already (the limit is {limit})")]
    OpenTicketLimit {
        /// How many of the opener's tickets are open.
        open: u64,
        /// The limit the append was made under.
        limit: u64,
    },
}

/// An append-only log of ticket events with one stream per ticket and a gap-free global order.
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream_id` if it is at `expected`, atomically, and returns them with
    /// their envelopes. Positions are assigned in commit order with no gaps.
    fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send;

    /// The stream's events with version greater than `after_version`, in order.
    fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send;

    /// Up to `limit` of the stream's events with version greater than `after_version`, in
    /// order: one page of a long stream without reading the rest.
    fn read_stream_page(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send {
        async move {
            let mut events = self.read_stream(stream_id, after_version).await?;
            events.truncate(limit);
            Ok(events)
        }
    }

    /// Up to `limit` events with position greater than `after_position`, in order.
    fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send;

    /// The position of the last committed event, 0 for an empty store.
    fn head(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Resolves once the head is beyond `position` (at once if it already is); followers use it
    /// to sleep until there is something to read.
    fn wait_beyond(&self, position: u64) -> impl Future<Output = ()> + Send;
}
