//! Why the Ticket aggregate refuses a command. Each transport maps these once to its own shape
//! (HTTP status, socket error, Discord reply); tests match on the variant, never the text.

use thiserror::Error;

/// A refused command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TicketError {
    /// The stream has no ticket.
    #[error("ticket not found")]
    TicketNotFound,
    /// A ticket with this id exists already.
    #[error("ticket already exists")]
    TicketAlreadyExists,
    /// The message does not exist in this ticket, was deleted, or is not visible to the actor.
    #[error("message not found")]
    MessageNotFound,
    /// The actor may not touch this ticket or message, or may not issue this command at all.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The ticket is closed and takes no changes but a reopen.
    #[error("ticket is closed")]
    TicketClosed,
    /// Reopening a ticket that is open.
    #[error("ticket is not closed")]
    TicketNotClosed,
    /// A tag added to a ticket that has as many as it may.
    #[error("a ticket has at most {} tags", crate::limits::TAGS_MAX)]
    TooManyTags,
    /// The system's warning or close came for a countdown that is over: the customer answered,
    /// staff wrote again, or the ticket closed (ADR 0022). An error rather than "nothing", so a
    /// decision made on stale state is looked at once more on fresh state.
    #[error("the ticket no longer waits on its customer")]
    CountdownMoved,
    /// Claiming a ticket another staff member holds (only an ADMIN may take it over).
    #[error("ticket is held by {by}")]
    HeldByAnother {
        /// The holder's name.
        by: String,
    },
    /// A saved reply of that name does not exist.
    #[error("saved reply not found")]
    ReplyNotFound,
    /// Unblocking a user who is not blocked.
    #[error("user is not blocked")]
    NotBlocked,
    /// Rating a ticket its owner has rated already (even before a reopen).
    #[error("this ticket has been rated already")]
    FeedbackAlreadyGiven,
}
