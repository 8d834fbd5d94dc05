//! The API's Ticket and Message objects, exactly as clients receive them.

use serde::{Deserialize, Serialize};
use ticketd_events::{IssueLevel, SupportRole, TicketStatus, UserRole};

/// The seed's Ticket Object, plus who holds it and (for staff) its tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TicketView {
    /// The ticket id (its stream id), a UUID v7.
    pub id: String,
    /// Who opened it.
    pub user_id: String,
    /// What it is about.
    pub topic: String,
    /// The opener's account of the problem.
    pub description: String,
    /// OPEN or CLOSED.
    pub status: TicketStatus,
    /// When it was opened, epoch ms.
    pub created_at: i64,
    /// When anything last happened in it, epoch ms.
    pub updated_at: i64,
    /// The opener's role.
    pub user_role: UserRole,
    /// The support team it is with.
    pub support_role: SupportRole,
    /// Its urgency.
    pub issue_level: IssueLevel,
    /// Who holds it (a user id, or `discord:<snowflake>` for a Discord member), or `null`.
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// The holder's name when they got it, or `null`.
    #[serde(default)]
    pub assignee_name: Option<String>,
    /// Its tags, for staff; customers never receive them ([`TicketView::seen_by`] takes them out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Global position of its opening event: the stable sort key of listings and their cursor.
    #[serde(skip)]
    pub position: u64,
    /// The auto-close countdown while the ticket waits on its customer (ADR 0022); kept for the
    /// timer, never sent to clients. Read it through the timer's query (`due_countdowns`): the
    /// embedded store's ticket cache keeps a row across posts, which move only this.
    #[serde(skip)]
    pub countdown: Option<Countdown>,
}

/// A ticket waiting on its customer: since when, from which staff message, and whether the
/// warning went out. Times are the events' `recorded_at`, so a replay gives the same values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Countdown {
    /// The public staff message the customer has not answered.
    pub message_id: String,
    /// When it was posted, epoch ms.
    pub since: i64,
    /// When the system's warning was posted, epoch ms, if it was.
    pub warned_at: Option<i64>,
}

impl TicketView {
    /// The ticket as a viewer may see it: staff see its tags, customers do not.
    pub fn seen_by(mut self, staff: bool) -> Self {
        if staff {
            self.tags.get_or_insert_with(Vec::new);
        } else {
            self.tags = None;
        }
        self
    }
}

/// The seed's Message Object, plus `internal` on staff-only notes (absent otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageView {
    /// The message id, a UUID v7.
    pub id: String,
    /// Its ticket.
    pub ticket_id: String,
    /// Who wrote it.
    pub author_id: String,
    /// Their name when they wrote it.
    pub author_name: String,
    /// The text.
    pub content: String,
    /// Links to attached files.
    pub attachments: Vec<String>,
    /// When it was posted, epoch ms.
    pub created_at: i64,
    /// When it was last edited (or posted), epoch ms.
    pub updated_at: i64,
    /// A staff-only note; customers never receive one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Version of its posting event in the ticket's stream: the order of a ticket's messages.
    #[serde(skip)]
    pub seq: u64,
    /// When it was deleted; deleted messages leave every listing but stay in the history.
    #[serde(skip)]
    pub deleted_at: Option<i64>,
}

/// A saved reply as `GET /api/v1/replies` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyView {
    /// Its name: 1–32 lower-case ASCII letters, digits, `-` or `_`.
    pub name: String,
    /// Its text.
    pub content: String,
    /// When it was last saved, epoch ms.
    pub updated_at: i64,
}

/// A block as `GET /api/v1/blocks` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockView {
    /// The blocked user's id.
    pub user_id: String,
    /// Why, when the admin said; else `null`.
    pub reason: Option<String>,
    /// When the block (or its latest reason) was recorded, epoch ms.
    pub created_at: i64,
}
