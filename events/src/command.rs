//! What can be asked of a ticket. Commands are requests and may be refused; ids for anything they
//! create are chosen by the caller so that deciding stays pure and a retry decides the same thing.

use crate::roles::{IssueLevel, SupportRole};
use crate::service_level::SlaTarget;

/// A request to change one ticket. Who asks travels beside it as an [`crate::Actor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Open a new ticket; the stream must be empty.
    OpenTicket {
        /// What it is about (1–200 characters).
        topic: String,
        /// The problem (1–5,000 characters).
        description: String,
        /// The opener's email, from their token; the support team may need to write back.
        email: String,
    },
    /// Write in the ticket.
    PostMessage {
        /// The id the new message will have.
        message_id: String,
        /// The text (1–4,000 characters).
        content: String,
        /// Up to 10 http(s) links.
        attachments: Vec<String>,
        /// A staff-only note.
        internal: bool,
    },
    /// Replace a message's text.
    EditMessage {
        /// Which message.
        message_id: String,
        /// The new text.
        content: String,
        /// New attachments, when they are replaced too.
        attachments: Option<Vec<String>>,
    },
    /// Withdraw a message.
    DeleteMessage {
        /// Which message.
        message_id: String,
    },
    /// Hand the ticket to another support team (staff).
    ChangeSupportRole {
        /// The new team.
        to: SupportRole,
    },
    /// Change the urgency (staff).
    ChangeIssueLevel {
        /// The new level.
        to: IssueLevel,
    },
    /// Stop taking messages (owner or staff).
    CloseTicket {
        /// Why, optionally.
        reason: Option<String>,
    },
    /// Take messages again (staff).
    ReopenTicket,
    /// Hold the ticket (staff): the assignee is the claimant, as the door names them.
    Claim {
        /// The claimant's id (`discord:<snowflake>` for a Discord member).
        assignee_id: String,
        /// Their name.
        assignee_name: String,
    },
    /// Let go of the ticket (its holder, or an ADMIN).
    Unclaim,
    /// Give the ticket to someone, or to nobody (staff; an AGENT only while it is unassigned or
    /// theirs).
    Assign {
        /// The new holder (1–128 characters), or `None`.
        assignee_id: Option<String>,
        /// Their name as ticketd last saw it, else the id.
        assignee_name: Option<String>,
    },
    /// Add one tag, unless the ticket has it (staff); one request needs no read of the others.
    AddTag {
        /// A valid tag, lower-case.
        tag: String,
    },
    /// Take one tag off, if the ticket has it (staff).
    RemoveTag {
        /// A valid tag, lower-case.
        tag: String,
    },
    /// Replace the ticket's tags (staff).
    SetTags {
        /// Valid, lower-case, without duplicates ([`crate::limits::normalize_tags`]).
        tags: Vec<String>,
    },
    /// Warn the customer that the ticket will close (the system only): posted only while the
    /// ticket still waits on the customer since staff message `awaiting` (ADR 0022).
    WarnInactive {
        /// The staff message the countdown runs from, as the read model saw it.
        awaiting: String,
        /// The warning's id; derived from the ticket and `awaiting`, so every instance and
        /// every retry names the same message and it is posted once.
        message_id: String,
        /// The text.
        content: String,
    },
    /// Close the ticket as inactive (the system only), if it still waits on the customer since
    /// staff message `awaiting`; otherwise nothing.
    CloseInactive {
        /// The staff message the countdown runs from, as the read model saw it.
        awaiting: String,
    },
    /// Rate the closed ticket (its owner, once ever): 1–5 and an optional comment of up to
    /// 1,000 characters, checked by the door ([`crate::limits::RATING`],
    /// [`crate::limits::FEEDBACK_COMMENT_MAX`]).
    GiveFeedback {
        /// 1 to 5.
        rating: u8,
        /// What they say.
        comment: Option<String>,
    },
    /// Record that `target` was missed at `due_at` (the system only); nothing if it is recorded
    /// in its current period already, so every instance and retry records it once (ADR 0025).
    RecordSlaBreach {
        /// Which target.
        target: SlaTarget,
        /// The due time it missed.
        due_at: i64,
    },
}
