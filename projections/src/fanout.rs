//! Which Socket.IO event one stored event becomes, who receives it and with what payload. Pure:
//! the broadcaster supplies the ticket and message as the read model has them, and the payload is
//! those rows with this event's own change applied, so it says exactly what the event did.

use crate::changes::{Change, SlaChange, changes};
use crate::memory::MemoryReadModel;
use crate::views::{MessageView, TicketView};
use serde::Serialize;
use ticketd_events::{EventEnvelope, TicketEvent};

/// The client events of the seed, plus `ticket_opened` and `ticket_updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketEvent {
    /// `message`: a new message (Message Object).
    Message,
    /// `edit_message`: a message was edited (Message Object).
    EditMessage,
    /// `delete_message`: a message was deleted (Message Object).
    DeleteMessage,
    /// `ticket_closed`: the ticket closed (Ticket Object).
    TicketClosed,
    /// `ticket_opened`: a new ticket (Ticket Object), so staff inboxes and the owner's other
    /// devices show it at once.
    TicketOpened,
    /// `ticket_updated`: reopened, re-routed or re-levelled (Ticket Object).
    TicketUpdated,
}

impl SocketEvent {
    /// The event name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            SocketEvent::Message => "message",
            SocketEvent::EditMessage => "edit_message",
            SocketEvent::DeleteMessage => "delete_message",
            SocketEvent::TicketClosed => "ticket_closed",
            SocketEvent::TicketOpened => "ticket_opened",
            SocketEvent::TicketUpdated => "ticket_updated",
        }
    }
}

/// Who receives an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every socket of the ticket's owner and every staff socket.
    OwnerAndStaff,
    /// Staff sockets only: internal notes.
    StaffOnly,
}

/// The object an event carries. A ticket goes to staff as it is and to its owner without its
/// tags ([`Delivery::payload_for`]).
// One payload per emission, never held in bulk: a box would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Payload {
    /// A Message Object.
    Message(MessageView),
    /// A Ticket Object.
    Ticket(TicketView),
}

/// One emission to plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Which event.
    pub event: SocketEvent,
    /// To whom.
    pub audience: Audience,
    /// With what, as staff see it.
    pub payload: Payload,
}

impl Delivery {
    /// The payload as a staff member (`staff`) or the ticket's owner sees it, service levels
    /// under `sla` included for staff.
    pub fn payload_for(&self, staff: bool, sla: &ticketd_events::SlaPolicy) -> Payload {
        match &self.payload {
            Payload::Ticket(ticket) => Payload::Ticket(ticket.clone().seen_by(staff).with_sla(sla)),
            message => message.clone(),
        }
    }

    /// Whether owner and staff receive different payloads (a ticket: staff see its tags).
    pub fn differs_by_viewer(&self) -> bool {
        matches!(self.payload, Payload::Ticket(_))
    }
}

/// What the broadcaster must look up before planning `envelope`: the message it concerns, if
/// the event edits or deletes one (a posted message travels in the event itself).
pub fn message_needed(envelope: &EventEnvelope) -> Option<&str> {
    match &envelope.event {
        TicketEvent::MessageEdited { message_id, .. }
        | TicketEvent::MessageDeleted { message_id } => Some(message_id),
        _ => None,
    }
}

/// Whether `current` needs no emission of its own because `next` announces the same ticket
/// change: both are ticket-level events appended together by one command (a PATCH of support
/// role and issue level). The ticket payload of `next` already shows both changes, so
/// announcing each would tell clients twice, once with a change the event did not make. A
/// change of tags reaches staff only, so it may be superseded but never supersedes: the owner
/// would miss the change it stood for (the PATCH route sets tags first for this reason).
pub fn superseded_by(current: &EventEnvelope, next: &EventEnvelope) -> bool {
    let for_everyone = |e: &EventEnvelope| {
        matches!(
            e.event,
            TicketEvent::SupportRoleChanged { .. }
                | TicketEvent::IssueLevelChanged { .. }
                | TicketEvent::AssigneeChanged { .. }
                | TicketEvent::TicketClosed { .. }
                | TicketEvent::TicketReopened {}
        )
    };
    let ticket_level =
        |e: &EventEnvelope| for_everyone(e) || matches!(e.event, TicketEvent::TagsChanged { .. });
    current.stream_id == next.stream_id
        && current.correlation_id == next.correlation_id
        && next.position == current.position + 1
        && ticket_level(current)
        && for_everyone(next)
}

/// Plans the emission of `envelope` given its `ticket` and, for edits and deletions, the
/// `message` as the read model has them. `None`: nothing to emit (a row is missing).
pub fn plan(
    envelope: &EventEnvelope,
    ticket: &TicketView,
    message: Option<&MessageView>,
) -> Option<Delivery> {
    let mut model = MemoryReadModel::default();
    model.tickets.insert(ticket.id.clone(), ticket.clone());
    if let Some(message) = message {
        model.messages.insert(message.id.clone(), message.clone());
    }
    let mut event = None;
    let mut staff_only = false;
    for change in changes(envelope) {
        event = event.or(match &change {
            Change::InsertTicket(_) => Some((SocketEvent::TicketOpened, String::new())),
            // Only staff see tags, so only staff hear that they changed.
            Change::SetTags { .. } => {
                staff_only = true;
                Some((SocketEvent::TicketUpdated, String::new()))
            }
            Change::InsertMessage(m) => Some((SocketEvent::Message, m.id.clone())),
            Change::EditMessage { message_id, .. } => {
                Some((SocketEvent::EditMessage, message_id.clone()))
            }
            Change::DeleteMessage { message_id, .. } => {
                Some((SocketEvent::DeleteMessage, message_id.clone()))
            }
            // Bookkeeping for the timer; the message or close beside it is what is heard.
            Change::Countdown { .. } => None,
            // A recorded breach is staff news (customers never see service levels); the other
            // facts move with a message or close that is heard itself.
            Change::Sla {
                change: SlaChange::Breached { .. },
                ..
            } => {
                staff_only = true;
                Some((SocketEvent::TicketUpdated, String::new()))
            }
            Change::Sla { .. } => None,
            Change::UpdateTicket { patch, .. } => Some((
                if patch.status == Some(ticketd_events::TicketStatus::Closed) {
                    SocketEvent::TicketClosed
                } else {
                    SocketEvent::TicketUpdated
                },
                String::new(),
            )),
            // Saved replies and blocks are no ticket's news (ADR 0021).
            Change::PutReply(_)
            | Change::DeleteReply { .. }
            | Change::PutBlock(_)
            | Change::DeleteBlock { .. } => None,
        });
        model.apply(change);
    }
    let (event, message_id) = event?;
    match event {
        SocketEvent::TicketClosed | SocketEvent::TicketUpdated | SocketEvent::TicketOpened => {
            Some(Delivery {
                event,
                audience: if staff_only {
                    Audience::StaffOnly
                } else {
                    Audience::OwnerAndStaff
                },
                payload: Payload::Ticket(model.tickets.remove(&ticket.id)?.seen_by(true)),
            })
        }
        _ => {
            let mut message = model.messages.remove(&message_id)?;
            // A deletion is announced with the message as it was, not as a tombstone.
            message.deleted_at = None;
            let audience = if message.internal {
                Audience::StaffOnly
            } else {
                Audience::OwnerAndStaff
            };
            Some(Delivery {
                event,
                audience,
                payload: Payload::Message(message),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketd_events::fixtures::{self, EnvelopeFixture};
    use ticketd_events::{IssueLevel, SupportRole, TicketStatus, UserRole};

    fn envelope(event: TicketEvent) -> EventEnvelope {
        fixtures::envelope(event)
            .id("e")
            .version(5)
            .position(42)
            .by("a1", "Agent", UserRole::Agent)
    }

    fn ticket() -> TicketView {
        TicketView {
            id: "t1".into(),
            user_id: "u1".into(),
            topic: "t".into(),
            description: "d".into(),
            status: TicketStatus::Open,
            created_at: 1,
            updated_at: 1,
            user_role: UserRole::Customer,
            support_role: SupportRole::General,
            issue_level: IssueLevel::Normal,
            assignee_id: None,
            assignee_name: None,
            tags: Some(vec![]),
            position: 1,
            countdown: None,
            feedback: None,
            first_response_at: None,
            sla: None,
            sla_facts: Default::default(),
        }
    }

    fn message(internal: bool) -> MessageView {
        MessageView {
            id: "m1".into(),
            ticket_id: "t1".into(),
            author_id: "a1".into(),
            author_name: "Agent".into(),
            content: "old".into(),
            attachments: vec![],
            created_at: 1,
            updated_at: 1,
            internal,
            seq: 2,
            deleted_at: None,
        }
    }

    #[test]
    fn a_rating_reaches_owner_and_staff_and_a_breach_staff_only() {
        let policy = ticketd_events::SlaPolicy::parse(Some("NORMAL:60"), None).unwrap();
        let rated = envelope(TicketEvent::FeedbackGiven {
            rating: 4,
            comment: Some("ok".into()),
        });
        let delivery = plan(&rated, &ticket(), None).unwrap();
        assert_eq!(
            (delivery.event.name(), delivery.audience),
            ("ticket_updated", Audience::OwnerAndStaff)
        );
        let Payload::Ticket(owner) = delivery.payload_for(false, &policy) else {
            panic!("not a ticket")
        };
        assert_eq!(owner.feedback.as_ref().map(|f| f.rating), Some(4));
        assert_eq!((owner.first_response_at, owner.sla), (None, None));
        let Payload::Ticket(staff) = delivery.payload_for(true, &policy) else {
            panic!("not a ticket")
        };
        let sla = staff.sla.flatten().expect("staff see the service levels");
        assert_eq!(sla.first_response_due_at, Some(1 + 60 * 60_000));

        let breached = envelope(TicketEvent::SlaBreached {
            target: ticketd_events::SlaTarget::FirstResponse,
            due_at: 3_600_001,
        });
        let delivery = plan(&breached, &ticket(), None).unwrap();
        assert_eq!(
            (delivery.event.name(), delivery.audience),
            ("ticket_updated", Audience::StaffOnly)
        );
        let Payload::Ticket(staff) = delivery.payload_for(true, &policy) else {
            panic!("not a ticket")
        };
        assert_eq!(
            staff.sla.flatten().map(|s| s.breached),
            Some(vec![ticketd_events::SlaTarget::FirstResponse])
        );
    }

    #[test]
    fn a_posted_message_reaches_owner_and_staff_with_its_object() {
        let posted = envelope(TicketEvent::MessagePosted {
            message_id: "m9".into(),
            author_id: "a1".into(),
            author_name: "Agent".into(),
            author_role: UserRole::Agent,
            content: "hi".into(),
            attachments: vec![],
            internal: false,
        });
        let delivery = plan(&posted, &ticket(), None).unwrap();
        assert_eq!(
            (delivery.event.name(), delivery.audience),
            ("message", Audience::OwnerAndStaff)
        );
        let Payload::Message(m) = delivery.payload else {
            panic!("not a message")
        };
        assert_eq!(
            (m.id.as_str(), m.content.as_str(), m.created_at),
            ("m9", "hi", 1_000)
        );
    }

    #[test]
    fn edits_carry_the_new_text_and_internal_notes_stay_with_staff() {
        let edited = envelope(TicketEvent::MessageEdited {
            message_id: "m1".into(),
            content: "new".into(),
            attachments: None,
        });
        let delivery = plan(&edited, &ticket(), Some(&message(true))).unwrap();
        assert_eq!(
            (delivery.event.name(), delivery.audience),
            ("edit_message", Audience::StaffOnly)
        );
        let Payload::Message(m) = delivery.payload else {
            panic!("not a message")
        };
        assert_eq!((m.content.as_str(), m.updated_at), ("new", 1_000));
    }

    #[test]
    fn deletions_closings_and_updates() {
        let deleted = envelope(TicketEvent::MessageDeleted {
            message_id: "m1".into(),
        });
        let d = plan(&deleted, &ticket(), Some(&message(false))).unwrap();
        assert_eq!(d.event, SocketEvent::DeleteMessage);
        assert!(matches!(d.payload, Payload::Message(ref m) if m.content == "old"));

        let closed = envelope(TicketEvent::TicketClosed { reason: None });
        let d = plan(&closed, &ticket(), None).unwrap();
        assert_eq!(d.event, SocketEvent::TicketClosed);
        assert!(
            matches!(d.payload, Payload::Ticket(ref t) if t.status == TicketStatus::Closed && t.updated_at == 1_000)
        );

        let level = envelope(TicketEvent::IssueLevelChanged {
            from: IssueLevel::Normal,
            to: IssueLevel::Urgent,
        });
        let d = plan(&level, &ticket(), None).unwrap();
        assert_eq!(d.event.name(), "ticket_updated");
        assert!(matches!(d.payload, Payload::Ticket(ref t) if t.issue_level == IssueLevel::Urgent));

        let reopened = envelope(TicketEvent::TicketReopened {});
        assert_eq!(
            plan(&reopened, &ticket(), None).unwrap().event,
            SocketEvent::TicketUpdated
        );
    }

    #[test]
    fn one_command_changing_two_fields_is_announced_once() {
        let role = envelope(TicketEvent::SupportRoleChanged {
            from: SupportRole::General,
            to: SupportRole::Manager,
        });
        let mut level = envelope(TicketEvent::IssueLevelChanged {
            from: IssueLevel::Normal,
            to: IssueLevel::Critical,
        });
        level.position = role.position + 1;
        assert!(superseded_by(&role, &level));
        level.correlation_id = "another request".into();
        assert!(!superseded_by(&role, &level));
        let posted = envelope(TicketEvent::MessageDeleted {
            message_id: "m1".into(),
        });
        assert!(!superseded_by(&posted, &role));
        let mut tags = envelope(TicketEvent::TagsChanged {
            tags: vec!["vip".into()],
        });
        tags.position = role.position - 1;
        assert!(
            superseded_by(&tags, &role),
            "tags set before a change for everyone are announced with it"
        );
        tags.position = level.position + 1;
        level.correlation_id = role.correlation_id.clone();
        assert!(
            !superseded_by(&level, &tags),
            "a staff-only change never stands in for a change the owner must hear of"
        );
    }

    #[test]
    fn an_opening_reaches_owner_and_staff_as_the_ticket() {
        let opened = envelope(TicketEvent::TicketOpened {
            user_id: "u1".into(),
            user_name: "Ann".into(),
            user_email: "ann@example.com".into(),
            user_role: UserRole::Customer,
            topic: "t".into(),
            description: "d".into(),
            support_role: SupportRole::General,
            issue_level: IssueLevel::Normal,
        });
        let delivery = plan(&opened, &ticket(), None).unwrap();
        assert_eq!(
            (delivery.event.name(), delivery.audience),
            ("ticket_opened", Audience::OwnerAndStaff)
        );
        assert!(
            matches!(delivery.payload, Payload::Ticket(ref t) if t.id == "t1" && t.created_at == 1_000)
        );
    }

    #[test]
    fn missing_rows_emit_nothing() {
        let deleted = envelope(TicketEvent::MessageDeleted {
            message_id: "m1".into(),
        });
        assert_eq!(plan(&deleted, &ticket(), None), None);
    }
}
