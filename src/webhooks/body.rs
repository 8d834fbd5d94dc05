//! What a partner receives for one event: `{type, position, ticket_id, occurred_at, data}`,
//! where `data` is the Ticket or Message Object exactly as of that event (a deleted message as
//! it was, an internal note with `internal: true`). It is folded from the ticket's own stream up
//! to the event, not read from the current read model, so a replayed or late delivery still
//! says what that event did. Folds are kept per ticket while delivering in order, so each event
//! costs one step of a fold rather than a read of its stream.

use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use ticketd_events::{EventEnvelope, EventStore, StoreError, TicketEvent};
use ticketd_projections::MemoryReadModel;

/// Tickets whose fold is kept; the oldest kept is forgotten first and read again if needed.
pub const KEPT_TICKETS: usize = 4096;

/// The body of `envelope` given `model`, its ticket's stream folded up to and including it.
pub fn render(envelope: &EventEnvelope, model: &MemoryReadModel) -> Value {
    let ticket = model.tickets.get(&envelope.stream_id);
    let data = match &envelope.event {
        TicketEvent::MessagePosted { message_id, .. }
        | TicketEvent::MessageEdited { message_id, .. }
        | TicketEvent::MessageDeleted { message_id } => model
            .messages
            .get(message_id)
            .and_then(|m| serde_json::to_value(m).ok()),
        TicketEvent::TicketOpened { .. }
        | TicketEvent::SupportRoleChanged { .. }
        | TicketEvent::IssueLevelChanged { .. }
        | TicketEvent::TicketClosed { .. }
        | TicketEvent::TicketReopened {}
        | TicketEvent::AssigneeChanged { .. }
        | TicketEvent::FeedbackGiven { .. }
        | TicketEvent::SlaBreached { .. }
        // The partner's own backend sees what staff see, tags included.
        | TicketEvent::TagsChanged { .. } => {
            ticket.and_then(|t| serde_json::to_value(as_staff(t)).ok())
        }
        // Streams beside the tickets (ADR 0021): the reply or block as of the event, or what
        // names the one that went.
        TicketEvent::ReplySaved { name, .. } => model
            .replies
            .get(name)
            .and_then(|r| serde_json::to_value(r).ok()),
        TicketEvent::ReplyDeleted { name } => Some(json!({"name": name})),
        TicketEvent::UserBlocked { user_id, .. } => model
            .blocks
            .get(user_id)
            .and_then(|b| serde_json::to_value(b).ok()),
        TicketEvent::UserUnblocked { user_id } => Some(json!({"user_id": user_id})),
    };
    json!({
        "type": envelope.event.type_name(),
        "position": envelope.position,
        // Saved replies and blocks live beside the tickets (ADR 0021): null.
        "ticket_id": ticket.map(|t| t.id.as_str()),
        "occurred_at": envelope.recorded_at,
        "data": data.unwrap_or(Value::Null),
    })
}

/// A ticket as staff see it, its first answer included, but without its service levels: those
/// follow from the serving instance's targets, which are configuration, not events, so a
/// redelivery after they changed would say something the event did not.
fn as_staff(ticket: &ticketd_projections::TicketView) -> ticketd_projections::TicketView {
    let mut ticket = ticket.clone().seen_by(true);
    ticket.sla = None;
    ticket
}

/// A ticket's stream folded up to `version`.
struct Folded {
    version: u64,
    model: MemoryReadModel,
}

/// The folds kept while delivering.
#[derive(Default)]
pub struct Bodies {
    folds: HashMap<String, Folded>,
    /// Tickets in the order their fold was made, for forgetting the oldest.
    order: VecDeque<String>,
}

impl Bodies {
    /// Forgets every fold (after a replay moved delivery back).
    pub fn clear(&mut self) {
        self.folds.clear();
        self.order.clear();
    }

    /// Keeps a kept fold in step with an event that is not delivered (filtered out), so the
    /// next delivered event of its ticket needs no read.
    pub fn pass(&mut self, envelope: &EventEnvelope) {
        if let Some(fold) = self.folds.get_mut(&envelope.stream_id) {
            if fold.version + 1 == envelope.version {
                fold.model.apply_event(envelope);
                fold.version = envelope.version;
            } else {
                self.folds.remove(&envelope.stream_id);
            }
        }
    }

    /// The JSON body of `envelope`, folding its stream as far as it from what is kept, or from
    /// the store.
    pub async fn body<S: EventStore>(
        &mut self,
        store: &S,
        envelope: &EventEnvelope,
    ) -> Result<Vec<u8>, StoreError> {
        let stream = envelope.stream_id.as_str();
        let kept = self
            .folds
            .get(stream)
            .is_some_and(|f| f.version < envelope.version);
        if !kept {
            // A fold past this event (a replay went back) is of no use: start again.
            self.folds.remove(stream);
            self.remember(stream);
        }
        let fold = self
            .folds
            .entry(stream.to_owned())
            .or_insert_with(|| Folded {
                version: 0,
                model: MemoryReadModel::default(),
            });
        if fold.version + 1 < envelope.version {
            // Not kept (a restart, a replay, an evicted ticket): read what lies before it.
            let missing =
                usize::try_from(envelope.version - 1 - fold.version).unwrap_or(usize::MAX);
            let earlier = store
                .read_stream_page(stream, fold.version, missing)
                .await?;
            for e in &earlier {
                fold.model.apply_event(e);
                fold.version = e.version;
            }
            if fold.version + 1 != envelope.version {
                let position = envelope.position;
                self.folds.remove(stream);
                return Err(StoreError::Corrupt {
                    position,
                    reason: format!("its stream {stream} lacks the versions before it"),
                });
            }
        }
        fold.model.apply_event(envelope);
        fold.version = envelope.version;
        serde_json::to_vec(&render(envelope, &fold.model)).map_err(|e| StoreError::Corrupt {
            position: envelope.position,
            reason: format!("cannot encode its webhook body: {e}"),
        })
    }

    /// Notes that `stream` gets a fold, forgetting the oldest beyond [`KEPT_TICKETS`].
    fn remember(&mut self, stream: &str) {
        self.order.push_back(stream.to_owned());
        while self.order.len() > KEPT_TICKETS {
            if let Some(old) = self.order.pop_front() {
                self.folds.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketd_events::UserRole;
    use ticketd_events::fixtures::{self, EnvelopeFixture};

    fn envelope(version: u64, event: TicketEvent) -> EventEnvelope {
        fixtures::envelope(event)
            .id(&format!("e{version}"))
            .version(version)
            .position(version + 100)
            .at(1000 * i64::try_from(version).unwrap())
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
            envelope(2, post("m1", false)),
            envelope(3, post("n1", true)),
            envelope(
                4,
                TicketEvent::MessageEdited {
                    message_id: "m1".into(),
                    content: "edited".into(),
                    attachments: None,
                },
            ),
            envelope(
                5,
                TicketEvent::MessageDeleted {
                    message_id: "m1".into(),
                },
            ),
            envelope(6, TicketEvent::TicketClosed { reason: None }),
        ]
    }

    fn bodies_of(events: &[EventEnvelope]) -> Vec<Value> {
        let mut model = MemoryReadModel::default();
        events
            .iter()
            .map(|e| {
                model.apply_event(e);
                render(e, &model)
            })
            .collect()
    }

    #[test]
    fn each_body_is_the_object_as_of_its_event() {
        let bodies = bodies_of(&history());
        assert_eq!(bodies[0]["type"], "TicketOpened");
        assert_eq!(bodies[0]["position"], 101);
        assert_eq!(bodies[0]["ticket_id"], "t1");
        assert_eq!(bodies[0]["occurred_at"], 1000);
        assert_eq!(bodies[0]["data"]["status"], "OPEN");
        assert_eq!(bodies[1]["data"]["content"], "text of m1");
        assert!(bodies[1]["data"].get("internal").is_none());
        assert_eq!(bodies[2]["data"]["internal"], true);
        assert_eq!(bodies[3]["data"]["content"], "edited");
        assert_eq!(bodies[3]["data"]["updated_at"], 4000);
        assert_eq!(bodies[4]["type"], "MessageDeleted");
        assert_eq!(
            bodies[4]["data"]["content"], "edited",
            "the message as it was"
        );
        assert_eq!(bodies[5]["data"]["status"], "CLOSED");
        let keys: Vec<_> = bodies[0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["type", "position", "ticket_id", "occurred_at", "data"]
        );
    }

    #[test]
    fn an_event_outside_a_ticket_has_a_null_ticket_id() {
        let lone = envelope(4, TicketEvent::TicketReopened {});
        let body = render(&lone, &MemoryReadModel::default());
        assert_eq!(body["ticket_id"], Value::Null);
        assert_eq!(body["data"], Value::Null);
    }
}
