//! The read models held in memory: the reference every stored read model must equal after a
//! replay, and the way to see a ticket as it was at an instant (fold its events up to then).

use crate::changes::{Change, CountdownChange, changes, next_sla};
use crate::views::{BlockView, Countdown, MessageView, ReplyView, TicketView};
use std::collections::BTreeMap;
use ticketd_events::EventEnvelope;

/// The countdown after `change`: the one rule every store mirrors.
pub fn next_countdown(current: Option<Countdown>, change: CountdownChange) -> Option<Countdown> {
    match change {
        CountdownChange::Start { message_id, since } => Some(Countdown {
            message_id,
            since,
            warned_at: None,
        }),
        CountdownChange::Warned { at } => current.map(|c| Countdown {
            warned_at: Some(at),
            ..c
        }),
        CountdownChange::Stop => None,
    }
}

/// Tickets and messages by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryReadModel {
    /// Every ticket, by id.
    pub tickets: BTreeMap<String, TicketView>,
    /// Every message ever posted, deleted ones included (with `deleted_at`), by id.
    pub messages: BTreeMap<String, MessageView>,
    /// Every saved reply, by name (so in the order they are listed).
    pub replies: BTreeMap<String, ReplyView>,
    /// Every blocked user's block, by user id.
    pub blocks: BTreeMap<String, BlockView>,
}

impl MemoryReadModel {
    /// Folds stored events in, in order.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a EventEnvelope>) -> Self {
        let mut model = MemoryReadModel::default();
        for envelope in events {
            model.apply_event(envelope);
        }
        model
    }

    /// Applies everything one event changes.
    pub fn apply_event(&mut self, envelope: &EventEnvelope) {
        for change in changes(envelope) {
            self.apply(change);
        }
    }

    /// Applies one change; changes to missing rows are ignored, as a stored model would.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::InsertTicket(ticket) => {
                self.tickets.insert(ticket.id.clone(), ticket);
            }
            Change::UpdateTicket {
                ticket_id,
                patch,
                updated_at,
            } => {
                if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
                    ticket.status = patch.status.unwrap_or(ticket.status);
                    ticket.support_role = patch.support_role.unwrap_or(ticket.support_role);
                    ticket.issue_level = patch.issue_level.unwrap_or(ticket.issue_level);
                    if let Some(holder) = patch.assignee {
                        (ticket.assignee_id, ticket.assignee_name) = holder.unzip();
                    }
                    if let Some(feedback) = patch.feedback {
                        ticket.feedback = Some(feedback);
                    }
                    ticket.updated_at = updated_at;
                }
            }
            Change::SetTags { ticket_id, tags } => {
                if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
                    ticket.tags = Some(tags);
                }
            }
            Change::InsertMessage(message) => {
                self.messages.insert(message.id.clone(), message);
            }
            Change::EditMessage {
                message_id,
                content,
                attachments,
                updated_at,
            } => {
                if let Some(message) = self.messages.get_mut(&message_id) {
                    message.content = content;
                    if let Some(attachments) = attachments {
                        message.attachments = attachments;
                    }
                    message.updated_at = updated_at;
                }
            }
            Change::DeleteMessage {
                message_id,
                deleted_at,
            } => {
                if let Some(message) = self.messages.get_mut(&message_id) {
                    message.deleted_at = Some(deleted_at);
                }
            }
            Change::Countdown { ticket_id, change } => {
                if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
                    ticket.countdown = next_countdown(ticket.countdown.take(), change);
                }
            }
            Change::Sla { ticket_id, change } => {
                if let Some(ticket) = self.tickets.get_mut(&ticket_id) {
                    ticket.sla_facts = next_sla(std::mem::take(&mut ticket.sla_facts), &change);
                }
            }
            Change::PutReply(reply) => {
                self.replies.insert(reply.name.clone(), reply);
            }
            Change::DeleteReply { name } => {
                self.replies.remove(&name);
            }
            Change::PutBlock(block) => {
                self.blocks.insert(block.user_id.clone(), block);
            }
            Change::DeleteBlock { user_id } => {
                self.blocks.remove(&user_id);
            }
        }
    }

    /// A ticket's live messages in posting order, internal notes only when `staff`.
    pub fn live_messages(&self, ticket_id: &str, staff: bool) -> Vec<&MessageView> {
        let mut list: Vec<_> = self
            .messages
            .values()
            .filter(|m| {
                m.ticket_id == ticket_id && m.deleted_at.is_none() && (staff || !m.internal)
            })
            .collect();
        list.sort_by_key(|m| m.seq);
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketd_events::fixtures::{self, EnvelopeFixture};
    use ticketd_events::{TicketEvent, TicketStatus, UserRole};

    fn envelope(version: u64, at: i64, event: TicketEvent) -> EventEnvelope {
        fixtures::envelope(event)
            .id(&format!("e{version}"))
            .version(version)
            .position(version + 10)
            .at(at)
    }

    fn history() -> Vec<EventEnvelope> {
        let post = |id: &str, internal| TicketEvent::MessagePosted {
            message_id: id.into(),
            author_id: "u1".into(),
            author_name: "Ann".into(),
            author_role: UserRole::Customer,
            content: format!("text of {id}"),
            attachments: vec![],
            internal,
        };
        vec![
            envelope(
                1,
                100,
                TicketEvent::TicketOpened {
                    user_id: "u1".into(),
                    user_name: "Ann".into(),
                    user_email: "ann@example.com".into(),
                    user_role: UserRole::Customer,
                    topic: "Printer".into(),
                    description: "It is on fire".into(),
                    support_role: ticketd_events::SupportRole::General,
                    issue_level: ticketd_events::IssueLevel::Normal,
                },
            ),
            envelope(2, 200, post("m1", false)),
            envelope(3, 300, post("m2", false)),
            envelope(4, 350, post("n1", true)),
            envelope(
                5,
                400,
                TicketEvent::MessageEdited {
                    message_id: "m1".into(),
                    content: "edited".into(),
                    attachments: None,
                },
            ),
            envelope(
                6,
                500,
                TicketEvent::MessageDeleted {
                    message_id: "m2".into(),
                },
            ),
            envelope(7, 600, TicketEvent::TicketClosed { reason: None }),
        ]
    }

    #[test]
    fn the_seed_objects_follow_the_history() {
        let model = MemoryReadModel::from_events(&history());
        let ticket = &model.tickets["t1"];
        assert_eq!((ticket.created_at, ticket.updated_at), (100, 600));
        assert_eq!(ticket.status, TicketStatus::Closed);
        assert_eq!(ticket.position, 11);
        let customer: Vec<_> = model
            .live_messages("t1", false)
            .iter()
            .map(|m| &m.id)
            .collect();
        assert_eq!(
            customer,
            ["m1"],
            "deleted and internal messages are hidden from the customer"
        );
        let staff: Vec<_> = model
            .live_messages("t1", true)
            .iter()
            .map(|m| &m.id)
            .collect();
        assert_eq!(staff, ["m1", "n1"]);
        let m1 = &model.messages["m1"];
        assert_eq!(
            (m1.content.as_str(), m1.created_at, m1.updated_at),
            ("edited", 200, 400)
        );
    }

    #[test]
    fn messages_do_not_touch_the_ticket() {
        // An internal note must not show the customer even a changed `updated_at`.
        let model = MemoryReadModel::from_events(&history()[..4]);
        let ticket = &model.tickets["t1"];
        assert_eq!((ticket.created_at, ticket.updated_at), (100, 100));
    }

    #[test]
    fn message_json_is_the_seed_object() {
        let model = MemoryReadModel::from_events(&history());
        let json = serde_json::to_value(&model.messages["m1"]).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "id",
                "ticket_id",
                "author_id",
                "author_name",
                "content",
                "attachments",
                "created_at",
                "updated_at"
            ]
        );
        assert_eq!(
            serde_json::to_value(&model.messages["n1"]).unwrap()["internal"],
            true
        );
        let ticket = serde_json::to_value(&model.tickets["t1"]).unwrap();
        let keys: Vec<_> = ticket.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "id",
                "user_id",
                "topic",
                "description",
                "status",
                "created_at",
                "updated_at",
                "user_role",
                "support_role",
                "issue_level",
                "assignee_id",
                "assignee_name",
                "tags",
                "feedback"
            ]
        );
    }
}
