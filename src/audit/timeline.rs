//! `ticketd audit <ticket-id>`: a ticket's history as a person reads it, one line per event:
//! where it sits in the global order, when (ISO-8601, UTC), who and through which door, and what
//! happened in words, with message texts shortened. Deleted messages are shown with the text they
//! had, since the history keeps it.

use std::collections::HashMap;
use std::fmt::Write as _;
use ticketd_events::{EventEnvelope, TicketEvent};

/// Characters of a message shown before it is cut with `…`.
const TEXT_WIDTH: usize = 60;

/// The whole timeline of one ticket's events, in stream order.
pub fn render(events: &[EventEnvelope]) -> String {
    let mut out = String::new();
    let Some(first) = events.first() else {
        return out;
    };
    // Saved replies and users have streams too (ADR 0021): `ticketd audit replies`.
    let kind = if ticketd_events::streams::is_ticket(&first.stream_id) {
        "Ticket"
    } else {
        "Stream"
    };
    let _ = writeln!(
        out,
        "{kind} {} — {} events, positions {} to {}",
        first.stream_id,
        events.len(),
        first.position,
        events.last().map_or(first.position, |e| e.position)
    );
    // The text each message has at this point of the history, to say what a deletion removed.
    let mut texts: HashMap<&str, &str> = HashMap::new();
    for event in events {
        let what = describe(&event.event, &mut texts);
        let _ = writeln!(
            out,
            "#{:<8} {}  {} ({}, via {})  {}",
            event.position,
            iso8601(event.recorded_at),
            event.actor.name,
            event.actor.role,
            via(event),
            what
        );
    }
    out
}

fn via(event: &EventEnvelope) -> &'static str {
    match event.actor.via {
        ticketd_events::Via::Web => "web",
        ticketd_events::Via::Socket => "socket",
        ticketd_events::Via::Discord => "discord",
        ticketd_events::Via::Cli => "cli",
        ticketd_events::Via::System => "system",
    }
}

/// What one event did, in words.
fn describe<'a>(event: &'a TicketEvent, texts: &mut HashMap<&'a str, &'a str>) -> String {
    match event {
        TicketEvent::TicketOpened {
            topic,
            description,
            support_role,
            issue_level,
            ..
        } => format!(
            "opened the ticket \"{}\" ({support_role}, {issue_level}): \"{}\"",
            shorten(topic),
            shorten(description)
        ),
        TicketEvent::MessagePosted {
            message_id,
            content,
            attachments,
            internal,
            ..
        } => {
            texts.insert(message_id, content);
            let kind = if *internal {
                "an internal note"
            } else {
                "a message"
            };
            let files = match attachments.len() {
                0 => String::new(),
                1 => " with 1 attachment".into(),
                n => format!(" with {n} attachments"),
            };
            format!(
                "posted {kind} {message_id}{files}: \"{}\"",
                shorten(content)
            )
        }
        TicketEvent::MessageEdited {
            message_id,
            content,
            ..
        } => {
            let before = texts.insert(message_id, content).unwrap_or("");
            format!(
                "edited message {message_id} from \"{}\" to \"{}\"",
                shorten(before),
                shorten(content)
            )
        }
        TicketEvent::MessageDeleted { message_id } => {
            let text = texts.get(message_id.as_str()).copied().unwrap_or("");
            format!("deleted message {message_id}: \"{}\"", shorten(text))
        }
        TicketEvent::SupportRoleChanged { from, to } => {
            format!("handed the ticket from the {from} team to {to}")
        }
        TicketEvent::IssueLevelChanged { from, to } => {
            format!("changed the urgency from {from} to {to}")
        }
        TicketEvent::TicketClosed { reason } => match reason {
            Some(reason) => format!("closed the ticket: \"{}\"", shorten(reason)),
            None => "closed the ticket".into(),
        },
        TicketEvent::TicketReopened {} => "reopened the ticket".into(),
        TicketEvent::AssigneeChanged { to, to_name, .. } => match (to, to_name) {
            (Some(id), Some(name)) if name != id => {
                format!("gave the ticket to {} ({id})", shorten(name))
            }
            (Some(id), _) => format!("gave the ticket to {id}"),
            (None, _) => "released the ticket".into(),
        },
        TicketEvent::TagsChanged { tags } if tags.is_empty() => "removed the ticket's tags".into(),
        TicketEvent::TagsChanged { tags } => format!("tagged the ticket {}", tags.join(", ")),
        TicketEvent::FeedbackGiven { rating, comment } => match comment {
            Some(comment) => format!("rated the ticket {rating}/5: \"{}\"", shorten(comment)),
            None => format!("rated the ticket {rating}/5"),
        },
        TicketEvent::SlaBreached { target, due_at } => {
            format!("missed the {target} target due at {due_at}")
        }
        // The streams beside the tickets (ADR 0021): `ticketd audit replies`, `user:<id>`.
        TicketEvent::ReplySaved { name, content } => {
            format!("saved the reply {name}: \"{}\"", shorten(content))
        }
        TicketEvent::ReplyDeleted { name } => format!("deleted the reply {name}"),
        TicketEvent::UserBlocked { user_id, reason } => match reason {
            Some(reason) => format!("blocked {user_id}: \"{}\"", shorten(reason)),
            None => format!("blocked {user_id}"),
        },
        TicketEvent::UserUnblocked { user_id } => format!("unblocked {user_id}"),
    }
}

/// One line of at most [`TEXT_WIDTH`] characters.
fn shorten(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= TEXT_WIDTH {
        flat
    } else {
        let mut cut: String = flat.chars().take(TEXT_WIDTH - 1).collect();
        cut.push('…');
        cut
    }
}

/// `2024-05-01T10:00:00.123Z` for epoch milliseconds.
pub fn iso8601(epoch_ms: i64) -> String {
    let days = epoch_ms.div_euclid(86_400_000);
    let ms_of_day = epoch_ms.rem_euclid(86_400_000);
    let (year, month, day) = ticketd_projections::transcript::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketd_events::fixtures::{self, EnvelopeFixture};
    use ticketd_events::{IssueLevel, SupportRole, UserRole};

    #[test]
    fn times_are_iso8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_714_557_600_123), "2024-05-01T10:00:00.123Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn long_texts_are_cut_to_one_line() {
        assert_eq!(shorten("a\nb"), "a b");
        let long = "x".repeat(100);
        let cut = shorten(&long);
        assert_eq!(cut.chars().count(), TEXT_WIDTH);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_timeline_says_what_happened() {
        let envelope = |version: u64, event: TicketEvent| {
            fixtures::envelope(event)
                .id(&format!("e{version}"))
                .version(version)
                .position(version + 100)
                .at(1_714_557_600_000 + version as i64)
        };
        let events = [
            envelope(
                1,
                TicketEvent::TicketOpened {
                    user_id: "u1".into(),
                    user_name: "Ann".into(),
                    user_email: "ann@example.com".into(),
                    user_role: UserRole::Customer,
                    topic: "Printer".into(),
                    description: "It is on fire".into(),
                    support_role: SupportRole::General,
                    issue_level: IssueLevel::Normal,
                },
            ),
            envelope(
                2,
                TicketEvent::MessagePosted {
                    message_id: "m1".into(),
                    author_id: "u1".into(),
                    author_name: "Ann".into(),
                    author_role: UserRole::Customer,
                    content: "hello".into(),
                    attachments: vec![],
                    internal: false,
                },
            ),
            envelope(
                3,
                TicketEvent::MessageEdited {
                    message_id: "m1".into(),
                    content: "hello again".into(),
                    attachments: None,
                },
            ),
            envelope(
                4,
                TicketEvent::MessageDeleted {
                    message_id: "m1".into(),
                },
            ),
            envelope(5, TicketEvent::TicketClosed { reason: None }),
        ];
        let text = render(&events);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(lines[0].contains("Ticket t1 — 5 events, positions 101 to 105"));
        assert!(
            lines[1].starts_with("#101      2024-05-01T10:00:00.001Z  Ann (CUSTOMER, via web)")
        );
        assert!(
            lines[1]
                .ends_with("opened the ticket \"Printer\" (GENERAL, NORMAL): \"It is on fire\"")
        );
        assert!(
            lines[2].ends_with("posted a message m1: \"hello\""),
            "{}",
            lines[2]
        );
        assert!(lines[3].ends_with("edited message m1 from \"hello\" to \"hello again\""));
        assert!(lines[4].ends_with("deleted message m1: \"hello again\""));
        assert!(lines[5].ends_with("closed the ticket"));
    }
}
