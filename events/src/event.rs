//! What happened to a ticket, in the past tense. Events are immutable once stored: a change to
//! one of these shapes must stay readable from the old JSON (a serde default, or an upcaster
//! keyed by [`crate::envelope::SCHEMA_VERSION`]). Their type names are stored and are pinned by a test.

use crate::roles::{IssueLevel, SupportRole, UserRole};
use crate::service_level::SlaTarget;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One fact in a ticket's stream. The ticket id is the stream id, so it is not repeated here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum TicketEvent {
    /// A user opened the ticket; always the first event of a stream.
    TicketOpened {
        /// The opener's id, as the partner backend knows them.
        user_id: String,
        /// The opener's name when they opened it.
        user_name: String,
        /// The opener's email when they opened it.
        user_email: String,
        /// The opener's role; decides whose ticket it is.
        user_role: UserRole,
        /// What the ticket is about.
        topic: String,
        /// The opener's account of the problem.
        description: String,
        /// The support team it starts with.
        support_role: SupportRole,
        /// The urgency it starts with.
        issue_level: IssueLevel,
    },
    /// Someone wrote in the ticket.
    MessagePosted {
        /// The new message's id.
        message_id: String,
        /// Who wrote it.
        author_id: String,
        /// Their name when they wrote it.
        author_name: String,
        /// Their role when they wrote it.
        author_role: UserRole,
        /// The text.
        content: String,
        /// Links to attached files.
        #[serde(default)]
        attachments: Vec<String>,
        /// Staff-only note, never shown to the customer.
        #[serde(default)]
        internal: bool,
    },
    /// A message's text (and possibly its attachments) was replaced.
    MessageEdited {
        /// Which message.
        message_id: String,
        /// The new text.
        content: String,
        /// The new attachments, when they were replaced too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachments: Option<Vec<String>>,
    },
    /// A message was withdrawn; it stays in the history but leaves every listing.
    MessageDeleted {
        /// Which message.
        message_id: String,
    },
    /// The ticket was handed to another support team.
    SupportRoleChanged {
        /// The team before.
        from: SupportRole,
        /// The team now.
        to: SupportRole,
    },
    /// The ticket's urgency changed.
    IssueLevelChanged {
        /// The level before.
        from: IssueLevel,
        /// The level now.
        to: IssueLevel,
    },
    /// The ticket stopped taking messages.
    TicketClosed {
        /// Why, when the closer said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Staff opened a closed ticket again.
    TicketReopened {},
    /// The ticket's holder changed: claimed, handed over, taken over or released.
    AssigneeChanged {
        /// The holder before, if any.
        #[serde(default)]
        from: Option<String>,
        /// The holder now; `None` when released.
        #[serde(default)]
        to: Option<String>,
        /// The new holder's name when they got it (their token's username, a Discord display
        /// name, or the id itself for someone ticketd never saw act).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_name: Option<String>,
    },
    /// Staff replaced the ticket's tags; customers never see them.
    TagsChanged {
        /// The tags now, lower-case, in the order given, without duplicates.
        tags: Vec<String>,
    },
    /// The ticket's owner rated it after it closed; once per ticket, ever (issue 17).
    FeedbackGiven {
        /// 1 (poor) to 5 (great).
        rating: u8,
        /// What they said, up to 1,000 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// A service-level target was missed: its due time passed before it was met. Appended by the
    /// system's sweeper, once per target per due period (ADR 0025).
    SlaBreached {
        /// Which target.
        target: SlaTarget,
        /// The due time it missed, epoch milliseconds.
        due_at: i64,
    },
    /// An admin saved a reply under a name, new or replacing its text. Stream
    /// [`crate::streams::REPLIES`], not a ticket's.
    ReplySaved {
        /// The reply's name, lower-case ([`crate::limits::is_tag`] rules).
        name: String,
        /// Its text (1–4,000 characters).
        content: String,
    },
    /// An admin removed a saved reply. Stream [`crate::streams::REPLIES`].
    ReplyDeleted {
        /// The removed reply's name.
        name: String,
    },
    /// An admin blocked a user: they may no longer open tickets or write. Stream
    /// `user:<id>` ([`crate::streams::user`]).
    UserBlocked {
        /// The blocked user's id (also in the stream id, repeated so followers need no parsing).
        user_id: String,
        /// Why, when the admin said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An admin lifted a user's block. Stream `user:<id>`.
    UserUnblocked {
        /// The user's id.
        user_id: String,
    },
}

impl TicketEvent {
    /// The stored type name; stable forever, since old streams are read by it.
    pub fn type_name(&self) -> &'static str {
        match self {
            TicketEvent::TicketOpened { .. } => "TicketOpened",
            TicketEvent::MessagePosted { .. } => "MessagePosted",
            TicketEvent::MessageEdited { .. } => "MessageEdited",
            TicketEvent::MessageDeleted { .. } => "MessageDeleted",
            TicketEvent::SupportRoleChanged { .. } => "SupportRoleChanged",
            TicketEvent::IssueLevelChanged { .. } => "IssueLevelChanged",
            TicketEvent::TicketClosed { .. } => "TicketClosed",
            TicketEvent::TicketReopened {} => "TicketReopened",
            TicketEvent::AssigneeChanged { .. } => "AssigneeChanged",
            TicketEvent::TagsChanged { .. } => "TagsChanged",
            TicketEvent::FeedbackGiven { .. } => "FeedbackGiven",
            TicketEvent::SlaBreached { .. } => "SlaBreached",
            TicketEvent::ReplySaved { .. } => "ReplySaved",
            TicketEvent::ReplyDeleted { .. } => "ReplyDeleted",
            TicketEvent::UserBlocked { .. } => "UserBlocked",
            TicketEvent::UserUnblocked { .. } => "UserUnblocked",
        }
    }

    /// Whether the event belongs to a ticket's stream. The others live on streams beside the
    /// tickets (saved replies, users: ADR 0021), and every follower that speaks of tickets
    /// passes them by.
    pub fn is_ticket_event(&self) -> bool {
        !matches!(
            self,
            TicketEvent::ReplySaved { .. }
                | TicketEvent::ReplyDeleted { .. }
                | TicketEvent::UserBlocked { .. }
                | TicketEvent::UserUnblocked { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_shapes_are_pinned() {
        let posted = TicketEvent::MessagePosted {
            message_id: "m1".into(),
            author_id: "u1".into(),
            author_name: "Ann".into(),
            author_role: UserRole::Customer,
            content: "hi".into(),
            attachments: vec![],
            internal: false,
        };
        assert_eq!(
            serde_json::to_value(&posted).unwrap(),
            json!({"type": "MessagePosted", "data": {
                "message_id": "m1", "author_id": "u1", "author_name": "Ann",
                "author_role": "CUSTOMER", "content": "hi", "attachments": [], "internal": false
            }})
        );
        let closed = TicketEvent::TicketClosed { reason: None };
        assert_eq!(
            serde_json::to_value(&closed).unwrap(),
            json!({"type": "TicketClosed", "data": {}})
        );
        assert_eq!(
            serde_json::to_value(TicketEvent::TicketReopened {}).unwrap(),
            json!({"type": "TicketReopened", "data": {}})
        );
    }

    #[test]
    fn type_names_match_the_serialized_tag() {
        let samples = [
            TicketEvent::MessageDeleted {
                message_id: "m".into(),
            },
            TicketEvent::SupportRoleChanged {
                from: SupportRole::General,
                to: SupportRole::Admin,
            },
            TicketEvent::IssueLevelChanged {
                from: IssueLevel::Normal,
                to: IssueLevel::Critical,
            },
            TicketEvent::TicketClosed {
                reason: Some("done".into()),
            },
            TicketEvent::TicketReopened {},
            TicketEvent::AssigneeChanged {
                from: None,
                to: Some("a1".into()),
                to_name: Some("Ann".into()),
            },
            TicketEvent::TagsChanged {
                tags: vec!["billing".into()],
            },
            TicketEvent::FeedbackGiven {
                rating: 4,
                comment: Some("quick".into()),
            },
            TicketEvent::SlaBreached {
                target: SlaTarget::FirstResponse,
                due_at: 1_000,
            },
            TicketEvent::ReplySaved {
                name: "refund".into(),
                content: "We refunded you.".into(),
            },
            TicketEvent::ReplyDeleted {
                name: "refund".into(),
            },
            TicketEvent::UserBlocked {
                user_id: "u1".into(),
                reason: Some("spam".into()),
            },
            TicketEvent::UserUnblocked {
                user_id: "u1".into(),
            },
        ];
        for event in samples {
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(value["type"], event.type_name());
            let back: TicketEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn feedback_and_breach_shapes_are_pinned() {
        let feedback = TicketEvent::FeedbackGiven {
            rating: 5,
            comment: None,
        };
        assert_eq!(
            serde_json::to_value(&feedback).unwrap(),
            json!({"type": "FeedbackGiven", "data": {"rating": 5}})
        );
        let breach = TicketEvent::SlaBreached {
            target: SlaTarget::Resolution,
            due_at: 42,
        };
        assert_eq!(
            serde_json::to_value(&breach).unwrap(),
            json!({"type": "SlaBreached", "data": {"target": "resolution", "due_at": 42}})
        );
    }

    #[test]
    fn older_message_posted_without_optional_fields_still_reads() {
        let old = json!({"type": "MessagePosted", "data": {
            "message_id": "m1", "author_id": "u1", "author_name": "Ann",
            "author_role": "CUSTOMER", "content": "hi"
        }});
        let event: TicketEvent = serde_json::from_value(old).unwrap();
        assert!(matches!(
            event,
            TicketEvent::MessagePosted {
                internal: false,
                ..
            }
        ));
    }
}
