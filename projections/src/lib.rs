//! Read models of ticketd: the API's Ticket and Message objects as pure functions of the event
//! stream. A store applies [`changes`] of each event inside the same transaction that appends it
//! (an inline projection), so a writer always reads its own write; [`MemoryReadModel`] applies the
//! same changes in memory, which is what replays and tests compare the stored models against.
//! The followers plan here too: [`fanout`] what each event becomes on the sockets, [`discord`]
//! what it means in the support team's Discord guild.
#![deny(missing_docs)]

mod changes;
pub mod discord;
pub mod fanout;
mod memory;
pub mod reports;
pub mod transcript;
mod views;

pub use changes::{Change, CountdownChange, SlaChange, TicketPatch, changes, next_sla};
pub use memory::{MemoryReadModel, next_countdown};
pub use views::{
    BlockView, Countdown, FeedbackView, MessageView, ReplyView, SlaFacts, SlaView, TicketView,
};
