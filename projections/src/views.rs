//! The API's Ticket and Message objects, exactly as clients receive them.

use serde::{Deserialize, Serialize};
use ticketd_events::{
    IssueLevel, SlaClock, SlaPolicy, SlaTarget, SupportRole, TicketStatus, UserRole,
};

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
    /// The owner's rating once they gave it, for everyone who sees the ticket; else `null`.
    #[serde(default)]
    pub feedback: Option<FeedbackView>,
    /// The first public staff message, epoch ms (`null` before), for staff only: set by
    /// [`TicketView::seen_by`] from the service-level facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i64>")]
    pub first_response_at: Option<Option<i64>>,
    /// The service levels (ADR 0025), for staff only: `null` when no target is configured. Set
    /// by [`TicketView::with_sla`] when the ticket is served, since the targets are configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<SlaView>")]
    pub sla: Option<Option<SlaView>>,
    /// What the service levels are folded from; the due times follow from these and the targets.
    #[serde(skip)]
    pub sla_facts: SlaFacts,
}

/// A ticket's rating by its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FeedbackView {
    /// 1 (poor) to 5 (great).
    pub rating: u8,
    /// What they said, or `null`.
    pub comment: Option<String>,
    /// When they rated it, epoch ms.
    pub created_at: i64,
}

/// A ticket's service levels as staff see them (ADR 0025).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SlaView {
    /// When the first public staff answer is due, epoch ms; `null` if the level has no target.
    pub first_response_due_at: Option<i64>,
    /// When the close is due (from the opening or the last reopen); `null` if no target.
    pub resolution_due_at: Option<i64>,
    /// The targets recorded missed in their current period: `first_response`, `resolution`.
    pub breached: Vec<SlaTarget>,
}

/// The policy-free service-level facts of a ticket, kept in its row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaFacts {
    /// The first public staff message.
    pub first_response_at: Option<i64>,
    /// Where the resolution clock starts: the opening or the last reopen.
    pub resolution_from: i64,
    /// The close ending the current period, while closed.
    pub resolved_at: Option<i64>,
    /// The due time the first response was recorded missed at (`SlaBreached`).
    pub first_response_breached: Option<i64>,
    /// The due time the resolution was recorded missed at, in the current period.
    pub resolution_breached: Option<i64>,
}

impl TicketView {
    /// The service-level clock of this ticket as its row holds it.
    pub fn sla_clock(&self) -> SlaClock {
        let f = &self.sla_facts;
        let mut clock = SlaClock {
            opened_at: Some(self.created_at),
            level: Some(self.issue_level),
            resolution_from: f.resolution_from,
            first_response_at: f.first_response_at,
            resolved_at: f.resolved_at,
            ..SlaClock::default()
        };
        if let Some(due) = f.first_response_breached {
            clock.recorded.insert(SlaTarget::FirstResponse, due);
        }
        if let Some(due) = f.resolution_breached {
            clock.recorded.insert(SlaTarget::Resolution, due);
        }
        clock
    }

    /// Adds the `sla` object for a staff view ([`TicketView::seen_by`] `true`) under `policy`;
    /// a customer's view stays without.
    pub fn with_sla(mut self, policy: &SlaPolicy) -> Self {
        if self.sla.is_some() && policy.is_enabled() {
            let clock = self.sla_clock();
            self.sla = Some(Some(SlaView {
                first_response_due_at: clock.due_at(policy, SlaTarget::FirstResponse),
                resolution_due_at: clock.due_at(policy, SlaTarget::Resolution),
                breached: clock.breached(),
            }));
        }
        self
    }
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
    /// The ticket as a viewer may see it: staff see its tags and first answer (and, through
    /// [`TicketView::with_sla`], its service levels), customers do not.
    pub fn seen_by(mut self, staff: bool) -> Self {
        if staff {
            self.tags.get_or_insert_with(Vec::new);
            self.first_response_at = Some(self.sla_facts.first_response_at);
            self.sla.get_or_insert(None);
        } else {
            self.tags = None;
            self.first_response_at = None;
            self.sla = None;
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
