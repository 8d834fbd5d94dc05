//! The ticket domain of ticketd, with no I/O: what can be asked of a ticket (commands), what
//! happened to it (events, in their envelopes), the rules that turn one into the other (the
//! [`Ticket`] aggregate), and the narrow [`EventStore`] trait every store implements.
//!
//! Everything here is deterministic: ids and clocks are supplied by the caller, so a ticket's
//! history replays to the same state on any machine, at any time.
#![deny(missing_docs)]

pub mod account;
pub mod aggregate;
pub mod chain;
pub mod command;
pub mod envelope;
pub mod error;
pub mod event;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod inactivity;
pub mod limits;
pub mod replies;
pub mod roles;
pub mod service_level;
pub mod store;
pub mod streams;
pub mod ticket;

pub use account::{AccountCommand, UserAccount};
pub use aggregate::Aggregate;
pub use command::Command;
pub use envelope::{Actor, EventEnvelope, NewEvent, Via};
pub use error::TicketError;
pub use event::TicketEvent;
pub use replies::{ReplyCommand, SavedReplies};
pub use roles::{IssueLevel, SupportRole, TicketStatus, UserRole};
pub use service_level::{SlaClock, SlaPolicy, SlaTarget};
pub use store::{EventStore, ExpectedVersion, StoreError};
pub use ticket::Ticket;
