//! A closed ticket's transcript, rendered from its events: a summary, a self-contained HTML page
//! (readable offline, styled like a Discord channel, every piece of user text escaped) and a plain
//! text file. Edits and deletions are marked as such; internal notes are marked as staff-only.
//! Pure: the Discord bridge posts what this renders.

use std::fmt::Write as _;
use ticketd_events::{EventEnvelope, IssueLevel, SupportRole, TicketEvent, UserRole};

/// One message as the transcript shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptMessage {
    /// Who wrote it.
    pub author_name: String,
    /// Their role.
    pub author_role: UserRole,
    /// When it was posted, epoch ms.
    pub posted_at: i64,
    /// Its last text.
    pub content: String,
    /// Its last attachment links.
    pub attachments: Vec<String>,
    /// A staff-only note.
    pub internal: bool,
    /// When it was last edited, if it was.
    pub edited_at: Option<i64>,
    /// When it was deleted, if it was.
    pub deleted_at: Option<i64>,
}

/// Everything a transcript says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The ticket id.
    pub ticket_id: String,
    /// The topic.
    pub topic: String,
    /// The description.
    pub description: String,
    /// The customer's name.
    pub customer_name: String,
    /// The customer's email.
    pub customer_email: String,
    /// The customer's role.
    pub customer_role: UserRole,
    /// When it was opened, epoch ms.
    pub opened_at: i64,
    /// When it was (last) closed, epoch ms, and by whom.
    pub closed: Option<(i64, String)>,
    /// Why, when the closer said.
    pub reason: Option<String>,
    /// The issue level at the end.
    pub issue_level: IssueLevel,
    /// The support role at the end.
    pub support_role: SupportRole,
    /// Who held it at the end, by name.
    pub assignee: Option<String>,
    /// Its tags at the end.
    pub tags: Vec<String>,
    /// Every message, in order.
    pub messages: Vec<TranscriptMessage>,
}

impl Transcript {
    /// Folds a ticket's events (its whole stream, in order); `None` if it has no opening event.
    pub fn from_events(events: &[EventEnvelope]) -> Option<Self> {
        let first = events.first()?;
        let TicketEvent::TicketOpened {
            user_name,
            user_email,
            user_role,
            topic,
            description,
            support_role,
            issue_level,
            ..
        } = &first.event
        else {
            return None;
        };
        let mut t = Transcript {
            ticket_id: first.stream_id.clone(),
            topic: topic.clone(),
            description: description.clone(),
            customer_name: user_name.clone(),
            customer_email: user_email.clone(),
            customer_role: *user_role,
            opened_at: first.recorded_at,
            closed: None,
            reason: None,
            issue_level: *issue_level,
            support_role: *support_role,
            assignee: None,
            tags: Vec::new(),
            messages: Vec::new(),
        };
        let mut index = std::collections::HashMap::new();
        for envelope in &events[1..] {
            let at = envelope.recorded_at;
            match &envelope.event {
                TicketEvent::MessagePosted {
                    message_id,
                    author_name,
                    author_role,
                    content,
                    attachments,
                    internal,
                    ..
                } => {
                    index.insert(message_id.clone(), t.messages.len());
                    t.messages.push(TranscriptMessage {
                        author_name: author_name.clone(),
                        author_role: *author_role,
                        posted_at: at,
                        content: content.clone(),
                        attachments: attachments.clone(),
                        internal: *internal,
                        edited_at: None,
                        deleted_at: None,
                    });
                }
                TicketEvent::MessageEdited {
                    message_id,
                    content,
                    attachments,
                } => {
                    if let Some(m) = index.get(message_id).and_then(|i| t.messages.get_mut(*i)) {
                        m.content = content.clone();
                        if let Some(attachments) = attachments {
                            m.attachments = attachments.clone();
                        }
                        m.edited_at = Some(at);
                    }
                }
                TicketEvent::MessageDeleted { message_id } => {
                    if let Some(m) = index.get(message_id).and_then(|i| t.messages.get_mut(*i)) {
                        m.deleted_at = Some(at);
                    }
                }
                TicketEvent::SupportRoleChanged { to, .. } => t.support_role = *to,
                TicketEvent::IssueLevelChanged { to, .. } => t.issue_level = *to,
                TicketEvent::TicketClosed { reason } => {
                    t.closed = Some((at, envelope.actor.name.clone()));
                    t.reason = reason.clone();
                }
                TicketEvent::TicketReopened {} => {
                    t.closed = None;
                    t.reason = None;
                }
                TicketEvent::AssigneeChanged { to, to_name, .. } => {
                    t.assignee = to.as_ref().map(|id| to_name.clone().unwrap_or(id.clone()));
                }
                TicketEvent::TagsChanged { tags } => t.tags = tags.clone(),
                TicketEvent::TicketOpened { .. }
                | TicketEvent::FeedbackGiven { .. }
                | TicketEvent::SlaBreached { .. }
                | TicketEvent::ReplySaved { .. }
                | TicketEvent::ReplyDeleted { .. }
                | TicketEvent::UserBlocked { .. }
                | TicketEvent::UserUnblocked { .. } => {}
            }
        }
        Some(t)
    }

    /// The summary lines: ticket, customer, opened, closed (when and by whom), messages, level,
    /// role.
    pub fn summary(&self) -> String {
        let closed = match &self.closed {
            Some((at, by)) => format!("{} by {by}", utc(*at)),
            None => "not closed".into(),
        };
        let mut out = format!(
            "Ticket: {} ({})\nCustomer: {} <{}> ({})\nOpened: {}\nClosed: {closed}\n",
            self.ticket_id,
            self.topic,
            self.customer_name,
            self.customer_email,
            self.customer_role,
            utc(self.opened_at),
        );
        if let Some(reason) = &self.reason {
            let _ = writeln!(out, "Reason: {reason}");
        }
        let _ = write!(
            out,
            "Messages: {}\nLevel: {}\nRole: {}\nHeld by: {}\nTags: {}",
            self.messages.len(),
            self.issue_level,
            self.support_role,
            self.assignee.as_deref().unwrap_or("nobody"),
            if self.tags.is_empty() {
                "none".to_string()
            } else {
                self.tags.join(", ")
            }
        );
        out
    }

    /// The plain-text transcript.
    pub fn text(&self) -> String {
        let mut out = self.summary();
        let _ = write!(out, "\n\nDescription:\n{}\n", self.description);
        for m in &self.messages {
            let _ = write!(
                out,
                "\n[{}] {} ({}){}{}{}:\n{}\n",
                utc(m.posted_at),
                m.author_name,
                m.author_role,
                if m.internal { " [internal note]" } else { "" },
                m.edited_at
                    .map(|at| format!(" [edited {}]", utc(at)))
                    .unwrap_or_default(),
                m.deleted_at
                    .map(|at| format!(" [deleted {}]", utc(at)))
                    .unwrap_or_default(),
                m.content
            );
            for url in &m.attachments {
                let _ = writeln!(out, "  attachment: {url}");
            }
        }
        out
    }

    /// The HTML transcript: one file, inline style, no scripts, nothing fetched.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        );
        let _ = write!(out, "<title>Ticket {}</title>", escape(&self.topic));
        out.push_str(
            "<style>body{background:#313338;color:#dbdee1;font:15px/1.4 system-ui,sans-serif;\
             margin:0;padding:24px}h1{font-size:20px;color:#f2f3f5}pre.summary{background:#2b2d31;\
             padding:12px;border-radius:8px;white-space:pre-wrap}.m{padding:8px 0;border-top:1px \
             solid #3f4147}.a{font-weight:600;color:#f2f3f5}.t{color:#949ba4;font-size:12px;\
             margin-left:8px}.tag{font-size:11px;border-radius:4px;padding:1px 4px;margin-left:6px;\
             background:#4e5058}.internal{background:#8a6d00}.deleted .c{text-decoration:\
             line-through;color:#949ba4}.c{white-space:pre-wrap;word-wrap:break-word}\
             a{color:#00a8fc}</style></head><body>",
        );
        let _ = write!(
            out,
            "<h1>Ticket: {}</h1><pre class=\"summary\">{}</pre><div class=\"m\"><span class=\"a\">\
             Description</span><div class=\"c\">{}</div></div>",
            escape(&self.topic),
            escape(&self.summary()),
            escape(&self.description)
        );
        for m in &self.messages {
            let _ = write!(
                out,
                "<div class=\"m{}\"><span class=\"a\">{}</span><span class=\"tag\">{}</span>",
                if m.deleted_at.is_some() {
                    " deleted"
                } else {
                    ""
                },
                escape(&m.author_name),
                m.author_role
            );
            if m.internal {
                out.push_str("<span class=\"tag internal\">internal note</span>");
            }
            let _ = write!(out, "<span class=\"t\">{}</span>", utc(m.posted_at));
            if let Some(at) = m.edited_at {
                let _ = write!(out, "<span class=\"tag\">edited {}</span>", utc(at));
            }
            if let Some(at) = m.deleted_at {
                let _ = write!(out, "<span class=\"tag\">deleted {}</span>", utc(at));
            }
            let _ = write!(out, "<div class=\"c\">{}</div>", escape(&m.content));
            for url in &m.attachments {
                let url = escape(url);
                let _ = write!(
                    out,
                    "<div>📎 <a href=\"{url}\" rel=\"noopener noreferrer\">{url}</a></div>"
                );
            }
            out.push_str("</div>");
        }
        out.push_str("</body></html>\n");
        out
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// Appends `text` with `& < > " '` escaped, so it is inert inside HTML text and attributes.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `2024-05-01 10:00:00 UTC` for epoch milliseconds.
fn utc(epoch_ms: i64) -> String {
    let days = epoch_ms.div_euclid(86_400_000);
    let ms = epoch_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60
    )
}

/// The proleptic Gregorian date (year, month, day) of a day count since 1970-01-01, by Howard
/// Hinnant's algorithm: transcripts and the audit timeline print dates without a date crate.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketd_events::fixtures::{self, EnvelopeFixture};

    fn envelope(version: u64, at: i64, who: &str, event: TicketEvent) -> EventEnvelope {
        fixtures::envelope(event)
            .id(&format!("e{version}"))
            .version(version)
            .position(version)
            .at(at)
            .by(who, who, UserRole::Agent)
    }

    fn posted(id: &str, content: &str, internal: bool) -> TicketEvent {
        TicketEvent::MessagePosted {
            message_id: id.into(),
            author_id: "u1".into(),
            author_name: "Ann <script>".into(),
            author_role: UserRole::Customer,
            content: content.into(),
            attachments: vec!["https://x.example/a?b=1&c=\"2\"".into()],
            internal,
        }
    }

    fn history() -> Vec<EventEnvelope> {
        vec![
            envelope(
                1,
                1_714_557_600_000,
                "Ann",
                TicketEvent::TicketOpened {
                    user_id: "u1".into(),
                    user_name: "Ann".into(),
                    user_email: "ann@example.com".into(),
                    user_role: UserRole::Customer,
                    topic: "Login <b>broken</b>".into(),
                    description: "It & that".into(),
                    support_role: SupportRole::General,
                    issue_level: IssueLevel::Normal,
                },
            ),
            envelope(
                2,
                1_714_557_660_000,
                "Ann",
                posted("m1", "<img src=x onerror=alert(1)>", false),
            ),
            envelope(3, 1_714_557_700_000, "Sam", posted("m2", "note", true)),
            envelope(
                4,
                1_714_557_760_000,
                "Ann",
                TicketEvent::MessageEdited {
                    message_id: "m1".into(),
                    content: "fixed <i>text</i>".into(),
                    attachments: None,
                },
            ),
            envelope(5, 1_714_557_800_000, "Ann", posted("m3", "oops", false)),
            envelope(
                6,
                1_714_557_810_000,
                "Ann",
                TicketEvent::MessageDeleted {
                    message_id: "m3".into(),
                },
            ),
            envelope(
                7,
                1_714_557_820_000,
                "Sam",
                TicketEvent::IssueLevelChanged {
                    from: IssueLevel::Normal,
                    to: IssueLevel::Urgent,
                },
            ),
            envelope(
                8,
                1_714_561_200_000,
                "Sam",
                TicketEvent::TicketClosed {
                    reason: Some("solved".into()),
                },
            ),
        ]
    }

    #[test]
    fn summary_counts_and_names_the_closer() {
        let t = Transcript::from_events(&history()).unwrap();
        let summary = t.summary();
        for line in [
            "Ticket: t1 (Login <b>broken</b>)",
            "Customer: Ann <ann@example.com> (CUSTOMER)",
            "Opened: 2024-05-01 10:00:00 UTC",
            "Closed: 2024-05-01 11:00:00 UTC by Sam",
            "Reason: solved",
            "Messages: 3",
            "Level: URGENT",
            "Role: GENERAL",
        ] {
            assert!(summary.contains(line), "{line} in {summary}");
        }
    }

    #[test]
    fn html_escapes_every_user_text_and_marks_edits_deletions_and_notes() {
        let html = Transcript::from_events(&history()).unwrap().html();
        for raw in ["<script>", "<b>broken", "<i>text", "<img", "c=\"2\""] {
            assert!(!html.contains(raw), "{raw} is not escaped");
        }
        for shown in [
            "Ann &lt;script&gt;",
            "fixed &lt;i&gt;text&lt;/i&gt;",
            "It &amp; that",
            "internal note",
            "edited 2024-05-01 10:02:40 UTC",
            "deleted 2024-05-01 10:03:30 UTC",
            "c=&quot;2&quot;",
        ] {
            assert!(html.contains(shown), "{shown} missing");
        }
        assert!(!html.contains("<script"), "no scripts at all");
    }

    #[test]
    fn text_marks_the_same() {
        let text = Transcript::from_events(&history()).unwrap().text();
        assert!(text.contains("[internal note]"));
        assert!(text.contains("[edited 2024-05-01 10:02:40 UTC]"));
        assert!(text.contains("[deleted 2024-05-01 10:03:30 UTC]"));
        assert!(text.contains("attachment: https://x.example/a?b=1&c=\"2\""));
    }
}
