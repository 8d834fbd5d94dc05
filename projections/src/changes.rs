//! What one event changes in the read models, as data, so that SQLite, MongoDB and memory apply
//! exactly the same projection.

use crate::views::{BlockView, FeedbackView, MessageView, ReplyView, SlaFacts, TicketView};
use ticketd_events::inactivity::{CountdownEffect, message_effect};
use ticketd_events::{
    EventEnvelope, IssueLevel, SlaTarget, SupportRole, TicketEvent, TicketStatus,
};

/// Fields of a ticket an event may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketPatch {
    /// New status.
    pub status: Option<TicketStatus>,
    /// New support team.
    pub support_role: Option<SupportRole>,
    /// New urgency.
    pub issue_level: Option<IssueLevel>,
    /// New holder as `(id, name)`, or `Some(None)` when released.
    pub assignee: Option<Option<(String, String)>>,
    /// The owner's rating, once given.
    pub feedback: Option<FeedbackView>,
}

/// One change to the read models.
// Changes live for one projection step and are not kept in bulk: boxing the ticket would cost an
// allocation per opening for no memory saved.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A ticket appears.
    InsertTicket(TicketView),
    /// A ticket's own fields change, and with them `updated_at`. Messages do not touch the
    /// ticket: a staff-only note must not be visible to the customer even as a changed time.
    UpdateTicket {
        /// Which ticket.
        ticket_id: String,
        /// What changes.
        patch: TicketPatch,
        /// The event's time.
        updated_at: i64,
    },
    /// A message appears.
    InsertMessage(MessageView),
    /// A message's text changes.
    EditMessage {
        /// Which message.
        message_id: String,
        /// The new text.
        content: String,
        /// New attachments, if replaced.
        attachments: Option<Vec<String>>,
        /// The event's time.
        updated_at: i64,
    },
    /// A ticket's tags are replaced. Its `updated_at` stays: tags are for staff, and a changed
    /// time would tell the customer something happened.
    SetTags {
        /// Which ticket.
        ticket_id: String,
        /// The tags now.
        tags: Vec<String>,
    },
    /// A message leaves the listings.
    DeleteMessage {
        /// Which message.
        message_id: String,
        /// The event's time.
        deleted_at: i64,
    },
    /// A saved reply appears or its text is replaced.
    PutReply(ReplyView),
    /// A saved reply goes.
    DeleteReply {
        /// Its name.
        name: String,
    },
    /// A user is blocked, or their block's reason changes.
    PutBlock(BlockView),
    /// A user's block goes.
    DeleteBlock {
        /// Whose.
        user_id: String,
    },
    /// A ticket's service-level facts change (ADR 0025). Like tags, they leave `updated_at`:
    /// customers never see them.
    Sla {
        /// Which ticket.
        ticket_id: String,
        /// How.
        change: SlaChange,
    },
    /// A ticket's auto-close countdown changes (ADR 0022). Like tags, it leaves `updated_at` as
    /// it is: it is bookkeeping for the timer, not something that happened to the ticket.
    Countdown {
        /// Which ticket.
        ticket_id: String,
        /// How.
        change: CountdownChange,
    },
}

/// How a ticket's service-level facts change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlaChange {
    /// A public staff message at `at`: the first response, unless one came before.
    Answered {
        /// Its time.
        at: i64,
    },
    /// Closed at `at`: the resolution of the current period.
    Resolved {
        /// Its time.
        at: i64,
    },
    /// Reopened at `at`: a new resolution period starts.
    Reopened {
        /// Its time.
        at: i64,
    },
    /// A target recorded missed at its due time.
    Breached {
        /// Which target.
        target: SlaTarget,
        /// The due time missed.
        due_at: i64,
    },
}

/// The facts after `change`: the one rule every store mirrors.
pub fn next_sla(mut facts: SlaFacts, change: &SlaChange) -> SlaFacts {
    match *change {
        SlaChange::Answered { at } => {
            facts.first_response_at.get_or_insert(at);
        }
        SlaChange::Resolved { at } => facts.resolved_at = Some(at),
        SlaChange::Reopened { at } => {
            facts.resolution_from = at;
            facts.resolved_at = None;
            facts.resolution_breached = None;
        }
        SlaChange::Breached { target, due_at } => match target {
            SlaTarget::FirstResponse => facts.first_response_breached = Some(due_at),
            SlaTarget::Resolution => facts.resolution_breached = Some(due_at),
        },
    }
    facts
}

/// How a countdown changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountdownChange {
    /// It starts anew from a public staff message posted at `since`.
    Start {
        /// The staff message.
        message_id: String,
        /// Its time.
        since: i64,
    },
    /// The system's warning was posted at `at`; a ticket without a countdown stays without.
    Warned {
        /// The warning's time.
        at: i64,
    },
    /// The customer answered or the ticket closed: no countdown.
    Stop,
}

/// The read-model changes one stored event causes, in the order to apply them.
pub fn changes(envelope: &EventEnvelope) -> Vec<Change> {
    let ticket_id = &envelope.stream_id;
    let at = envelope.recorded_at;
    let touch = |patch: TicketPatch| Change::UpdateTicket {
        ticket_id: ticket_id.clone(),
        patch,
        updated_at: at,
    };
    match &envelope.event {
        TicketEvent::TicketOpened {
            user_id,
            user_role,
            topic,
            description,
            support_role,
            issue_level,
            ..
        } => vec![Change::InsertTicket(TicketView {
            id: ticket_id.clone(),
            user_id: user_id.clone(),
            topic: topic.clone(),
            description: description.clone(),
            status: TicketStatus::Open,
            created_at: at,
            updated_at: at,
            user_role: *user_role,
            support_role: *support_role,
            issue_level: *issue_level,
            assignee_id: None,
            assignee_name: None,
            tags: Some(Vec::new()),
            position: envelope.position,
            countdown: None,
            feedback: None,
            first_response_at: None,
            sla: None,
            sla_facts: SlaFacts {
                resolution_from: at,
                ..SlaFacts::default()
            },
        })],
        TicketEvent::MessagePosted {
            message_id,
            author_id,
            author_name,
            author_role,
            content,
            attachments,
            internal,
        } => {
            let countdown = match message_effect(author_id, *author_role, *internal) {
                CountdownEffect::Start => Some(CountdownChange::Start {
                    message_id: message_id.clone(),
                    since: at,
                }),
                CountdownEffect::Stop => Some(CountdownChange::Stop),
                CountdownEffect::Warned => Some(CountdownChange::Warned { at }),
                CountdownEffect::None => None,
            };
            let mut list = vec![Change::InsertMessage(MessageView {
                id: message_id.clone(),
                ticket_id: ticket_id.clone(),
                author_id: author_id.clone(),
                author_name: author_name.clone(),
                content: content.clone(),
                attachments: attachments.clone(),
                created_at: at,
                updated_at: at,
                internal: *internal,
                seq: envelope.version,
                deleted_at: None,
            })];
            let answers = matches!(countdown, Some(CountdownChange::Start { .. }));
            list.extend(countdown.map(|change| Change::Countdown {
                ticket_id: ticket_id.clone(),
                change,
            }));
            if answers {
                list.push(Change::Sla {
                    ticket_id: ticket_id.clone(),
                    change: SlaChange::Answered { at },
                });
            }
            list
        }
        TicketEvent::MessageEdited {
            message_id,
            content,
            attachments,
        } => vec![Change::EditMessage {
            message_id: message_id.clone(),
            content: content.clone(),
            attachments: attachments.clone(),
            updated_at: at,
        }],
        TicketEvent::MessageDeleted { message_id } => vec![Change::DeleteMessage {
            message_id: message_id.clone(),
            deleted_at: at,
        }],
        TicketEvent::SupportRoleChanged { to, .. } => {
            vec![touch(TicketPatch {
                support_role: Some(*to),
                ..TicketPatch::default()
            })]
        }
        TicketEvent::IssueLevelChanged { to, .. } => {
            vec![touch(TicketPatch {
                issue_level: Some(*to),
                ..TicketPatch::default()
            })]
        }
        TicketEvent::TicketClosed { .. } => {
            vec![
                touch(TicketPatch {
                    status: Some(TicketStatus::Closed),
                    ..TicketPatch::default()
                }),
                Change::Countdown {
                    ticket_id: ticket_id.clone(),
                    change: CountdownChange::Stop,
                },
                Change::Sla {
                    ticket_id: ticket_id.clone(),
                    change: SlaChange::Resolved { at },
                },
            ]
        }
        TicketEvent::TicketReopened {} => {
            vec![
                touch(TicketPatch {
                    status: Some(TicketStatus::Open),
                    ..TicketPatch::default()
                }),
                Change::Sla {
                    ticket_id: ticket_id.clone(),
                    change: SlaChange::Reopened { at },
                },
            ]
        }
        TicketEvent::AssigneeChanged { to, to_name, .. } => {
            let holder = to
                .as_ref()
                .map(|id| (id.clone(), to_name.clone().unwrap_or_else(|| id.clone())));
            vec![touch(TicketPatch {
                assignee: Some(holder),
                ..TicketPatch::default()
            })]
        }
        TicketEvent::TagsChanged { tags } => vec![Change::SetTags {
            ticket_id: ticket_id.clone(),
            tags: tags.clone(),
        }],
        TicketEvent::ReplySaved { name, content } => vec![Change::PutReply(ReplyView {
            name: name.clone(),
            content: content.clone(),
            updated_at: at,
        })],
        TicketEvent::ReplyDeleted { name } => vec![Change::DeleteReply { name: name.clone() }],
        TicketEvent::UserBlocked { user_id, reason } => vec![Change::PutBlock(BlockView {
            user_id: user_id.clone(),
            reason: reason.clone(),
            created_at: at,
        })],
        TicketEvent::UserUnblocked { user_id } => vec![Change::DeleteBlock {
            user_id: user_id.clone(),
        }],
        TicketEvent::FeedbackGiven { rating, comment } => vec![touch(TicketPatch {
            feedback: Some(FeedbackView {
                rating: *rating,
                comment: comment.clone(),
                created_at: at,
            }),
            ..TicketPatch::default()
        })],
        TicketEvent::SlaBreached { target, due_at } => vec![Change::Sla {
            ticket_id: ticket_id.clone(),
            change: SlaChange::Breached {
                target: *target,
                due_at: *due_at,
            },
        }],
    }
}
