//! What one stored event means for the support team's Discord guild, as plain data. The socket
//! broadcaster plans in [`crate::fanout`] and only emits; the Discord bridge works the same way:
//! it looks up what [`needs`] asks for, calls [`plan`], and carries the steps out. Deciding here
//! and doing there keeps the decisions table-tested without Discord, and keeps the bridge to what
//! only it can do: resolve symbolic targets (a level's category, the roles from a support role
//! up) from its settings, and make each step happen once (links, nonces, retries).

mod text;

use crate::views::{MessageView, TicketView};
use text::Opening;
use ticketd_events::{
    EventEnvelope, IssueLevel, SupportRole, TicketEvent, TicketStatus, UserRole, Via,
};

pub use text::CONTENT_MAX;

/// What the bridge must look up before planning an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs<'a> {
    /// The ticket's row: whether it is open now, and where its channel goes.
    pub ticket: bool,
    /// The message an edit concerns, as the read model has it (its author and attachments).
    pub message: Option<&'a str>,
    /// The ticket's stream: the role an edited message's author posted with, or what a close's
    /// transcript shows.
    pub history: bool,
}

/// What the bridge looked up, as [`needs`] asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// The ticket's row.
    pub ticket: Option<&'a TicketView>,
    /// The edited message's row.
    pub message: Option<&'a MessageView>,
    /// The ticket's stream, at least up to the event.
    pub history: Option<&'a [EventEnvelope]>,
}

/// Where a ticket's channel sits and who sees it, symbolically: the bridge resolves both from
/// its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The channel belongs in the category of this issue level.
    pub category: IssueLevel,
    /// The channel is visible to this support role's Discord role and to every one above it.
    pub visible_from: SupportRole,
}

/// A ticket channel to create when the ticket has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// Its name.
    pub name: String,
    /// Its topic, which starts with `marker`.
    pub topic: String,
    /// The topic's prefix naming the ticket: a channel created just before a crash is found by
    /// it instead of being created twice.
    pub marker: String,
    /// Where it goes and who sees it.
    pub place: Place,
}

/// Which channel the steps that act in the ticket's channel use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// The ticket's channel, found or created first if it has none (the ticket is open).
    Open(ChannelSpec),
    /// The ticket's channel if it still has one; without one those steps are skipped. A closed
    /// ticket gets no new channel: replaying old history must not fill the guild with channels
    /// of long-closed tickets.
    Existing,
}

/// A button under the opening message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    /// Closes the ticket.
    Close,
    /// Hands the ticket to the next support role up.
    Escalate,
    /// The member who clicks holds the ticket.
    Claim,
}

impl Button {
    /// Every button, in the order they are shown.
    pub const ALL: [Button; 3] = [Button::Claim, Button::Escalate, Button::Close];

    /// What it says.
    pub fn label(self) -> &'static str {
        match self {
            Button::Close => "Close",
            Button::Escalate => "Escalate",
            Button::Claim => "Claim",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Button::Close => "close",
            Button::Escalate => "escalate",
            Button::Claim => "claim",
        }
    }

    /// The id Discord sends back on a click: the action and the ticket.
    pub fn custom_id(self, ticket_id: &str) -> String {
        format!("{}:{ticket_id}", self.action())
    }

    /// The button and ticket a clicked `custom_id` names; `None` for one we never made.
    pub fn parse(custom_id: &str) -> Option<(Button, &str)> {
        let (action, ticket_id) = custom_id.split_once(':')?;
        let button = Button::ALL.into_iter().find(|b| b.action() == action)?;
        Some((button, ticket_id))
    }
}

/// A message to post once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// What makes it once: a post already recorded under this key is not made again.
    pub key: String,
    /// Its text; user text in it is escaped.
    pub content: String,
    /// The buttons under it.
    pub buttons: Vec<Button>,
}

/// A file attached to a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its name.
    pub name: String,
    /// Its content.
    pub body: String,
}

/// The transcript of a closed ticket, for the transcript channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptPost {
    /// The post: the summary, keyed by the close.
    pub post: Post,
    /// The HTML page and the plain-text file.
    pub files: Vec<File>,
}

/// One thing to do in Discord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Post in the ticket's channel.
    Post(Post),
    /// Copy a ticket message into the ticket's channel unless it has a copy, and link the copy
    /// to the message, so its edits and deletion find it.
    Copy {
        /// The ticket message.
        message_id: String,
        /// The copy.
        post: Post,
    },
    /// Replace the text of a message's copy, if it has one.
    EditCopy {
        /// The ticket message.
        message_id: String,
        /// The copy's new text.
        content: String,
    },
    /// Delete a message's copy, if it has one.
    DeleteCopy {
        /// The ticket message.
        message_id: String,
    },
    /// Move the ticket's channel and reset who sees it.
    Place(Place),
    /// Set the channel's topic (it says who holds the ticket).
    Topic(String),
    /// Post the transcript in the transcript channel.
    Transcript(TranscriptPost),
    /// Remove the ticket's channel once the grace period after `closed_at` (epoch ms) is over.
    RemoveChannel {
        /// When the ticket closed.
        closed_at: i64,
    },
}

/// What one event means for Discord: the steps, in order, and the channel they act in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The channel of the steps that act in the ticket's channel.
    pub channel: Channel,
    /// What to do.
    pub steps: Vec<Step>,
}

impl Plan {
    fn nothing() -> Self {
        Plan {
            channel: Channel::Existing,
            steps: Vec::new(),
        }
    }
}

/// What the bridge must look up before planning `envelope`; `transcripts` says whether closes
/// are transcribed (a transcript channel is set), since a transcript needs the whole stream.
pub fn needs(envelope: &EventEnvelope, transcripts: bool) -> Needs<'_> {
    let from_discord = envelope.actor.via == Via::Discord;
    match &envelope.event {
        TicketEvent::TicketOpened { .. }
        | TicketEvent::SupportRoleChanged { .. }
        | TicketEvent::IssueLevelChanged { .. }
        | TicketEvent::AssigneeChanged { .. }
        | TicketEvent::TagsChanged { .. }
        | TicketEvent::TicketReopened {} => Needs {
            ticket: true,
            ..Needs::default()
        },
        TicketEvent::MessagePosted { .. } if !from_discord => Needs {
            ticket: true,
            ..Needs::default()
        },
        TicketEvent::MessageEdited { message_id, .. } if !from_discord => Needs {
            message: Some(message_id),
            history: true,
            ..Needs::default()
        },
        TicketEvent::TicketClosed { .. } => Needs {
            history: transcripts,
            ..Needs::default()
        },
        TicketEvent::MessagePosted { .. }
        | TicketEvent::MessageEdited { .. }
        | TicketEvent::MessageDeleted { .. } => Needs::default(),
        // Streams beside the tickets have no channel (ADR 0021).
        TicketEvent::ReplySaved { .. }
        | TicketEvent::ReplyDeleted { .. }
        | TicketEvent::UserBlocked { .. }
        | TicketEvent::UserUnblocked { .. } => Needs::default(),
        TicketEvent::FeedbackGiven { .. } => Needs::default(),
        TicketEvent::SlaBreached { .. } => Needs {
            ticket: true,
            ..Needs::default()
        },
    }
}

/// Plans `envelope` from what the bridge looked up. A ticket, message or history that was not
/// found plans what can be done without it, usually nothing.
pub fn plan(envelope: &EventEnvelope, known: &Known<'_>) -> Plan {
    let ticket_id = envelope.stream_id.as_str();
    let from_discord = envelope.actor.via == Via::Discord;
    let open = known.ticket.filter(|t| t.status == TicketStatus::Open);
    let notice = |what: &str| Post {
        key: envelope.event_id.clone(),
        content: text::notice(what, &envelope.actor.name),
        buttons: Vec::new(),
    };
    match &envelope.event {
        TicketEvent::TicketOpened {
            user_name,
            user_email,
            user_role,
            topic,
            description,
            support_role,
            issue_level,
            ..
        } => {
            let Some(ticket) = open else {
                return Plan::nothing();
            };
            let content = text::opening(&Opening {
                ticket_id,
                user_name,
                user_email,
                user_role: *user_role,
                topic,
                description,
                issue_level: *issue_level,
                support_role: *support_role,
            });
            Plan {
                channel: Channel::Open(spec(ticket)),
                steps: vec![Step::Post(Post {
                    key: envelope.event_id.clone(),
                    content,
                    buttons: Button::ALL.to_vec(),
                })],
            }
        }
        // What staff wrote in Discord is there already.
        TicketEvent::MessagePosted { .. }
        | TicketEvent::MessageEdited { .. }
        | TicketEvent::MessageDeleted { .. }
            if from_discord =>
        {
            Plan::nothing()
        }
        TicketEvent::MessagePosted {
            message_id,
            author_name,
            author_role,
            content,
            attachments,
            internal,
            ..
        } => Plan {
            channel: open.map_or(Channel::Existing, |t| Channel::Open(spec(t))),
            steps: vec![Step::Copy {
                message_id: message_id.clone(),
                post: Post {
                    key: envelope.event_id.clone(),
                    content: text::message_copy(
                        author_name,
                        *author_role,
                        *internal,
                        content,
                        attachments,
                    ),
                    buttons: Vec::new(),
                },
            }],
        },
        TicketEvent::MessageEdited {
            message_id,
            content,
            attachments,
        } => {
            let Some(message) = known.message else {
                return Plan::nothing();
            };
            let attachments = attachments.as_ref().unwrap_or(&message.attachments);
            let role = author_role(known.history.unwrap_or_default(), message_id);
            Plan {
                channel: Channel::Existing,
                steps: vec![Step::EditCopy {
                    message_id: message_id.clone(),
                    content: text::message_copy(
                        &message.author_name,
                        role,
                        message.internal,
                        content,
                        attachments,
                    ),
                }],
            }
        }
        TicketEvent::MessageDeleted { message_id } => Plan {
            channel: Channel::Existing,
            steps: vec![Step::DeleteCopy {
                message_id: message_id.clone(),
            }],
        },
        // Saved replies and blocks belong to no ticket channel (ADR 0021).
        TicketEvent::ReplySaved { .. }
        | TicketEvent::ReplyDeleted { .. }
        | TicketEvent::UserBlocked { .. }
        | TicketEvent::UserUnblocked { .. } => Plan::nothing(),
        // The rating goes where the transcripts are, right under the ticket's own (issue 17).
        TicketEvent::FeedbackGiven { rating, comment } => Plan {
            channel: Channel::Existing,
            steps: vec![Step::Transcript(TranscriptPost {
                post: Post {
                    key: envelope.event_id.clone(),
                    content: text::feedback(
                        ticket_id,
                        *rating,
                        comment.as_deref(),
                        &envelope.actor.name,
                    ),
                    buttons: Vec::new(),
                },
                files: Vec::new(),
            })],
        },
        // Said once in the ticket's channel: keyed by the event, which is recorded once.
        TicketEvent::SlaBreached { target, due_at } => {
            let what = match target {
                ticketd_events::SlaTarget::FirstResponse => "first response",
                ticketd_events::SlaTarget::Resolution => "resolution",
            };
            Plan {
                channel: open.map_or(Channel::Existing, |t| Channel::Open(spec(t))),
                steps: vec![Step::Post(Post {
                    key: envelope.event_id.clone(),
                    content: format!(
                        "⚠️ Service level missed: the {what} was due <t:{}:f>",
                        due_at.div_euclid(1_000)
                    ),
                    buttons: Vec::new(),
                })],
            }
        }
        TicketEvent::SupportRoleChanged { to, .. } => {
            replace(open, notice(&format!("Escalated to {to}")))
        }
        TicketEvent::IssueLevelChanged { to, .. } => {
            replace(open, notice(&format!("Issue level set to {to}")))
        }
        TicketEvent::TicketClosed { reason } => {
            let what = match reason {
                Some(reason) => format!("Ticket closed: {}", text::escape(reason)),
                None => "Ticket closed".to_string(),
            };
            let transcript = known
                .history
                .and_then(|history| transcript(envelope, history))
                .map(Step::Transcript);
            Plan {
                channel: Channel::Existing,
                steps: transcript
                    .into_iter()
                    .chain([
                        Step::Post(notice(&what)),
                        Step::RemoveChannel {
                            closed_at: envelope.recorded_at,
                        },
                    ])
                    .collect(),
            }
        }
        TicketEvent::TicketReopened {} => match open {
            Some(ticket) => Plan {
                channel: Channel::Open(spec(ticket)),
                steps: vec![Step::Post(notice("Ticket reopened"))],
            },
            None => Plan::nothing(),
        },
        TicketEvent::AssigneeChanged { to, to_name, .. } => {
            let what = match (to, to_name) {
                (Some(_), Some(name)) => format!("Held by {}", text::escape(name)),
                (Some(id), None) => format!("Held by {}", text::escape(id)),
                (None, _) => "Released: nobody holds this ticket".to_string(),
            };
            match open {
                Some(ticket) => Plan {
                    channel: Channel::Open(spec(ticket)),
                    steps: vec![Step::Topic(spec(ticket).topic), Step::Post(notice(&what))],
                },
                None => Plan::nothing(),
            }
        }
        TicketEvent::TagsChanged { tags } => {
            let what = if tags.is_empty() {
                "Tags removed".to_string()
            } else {
                format!("Tags: {}", tags.join(", "))
            };
            match open {
                Some(ticket) => Plan {
                    channel: Channel::Open(spec(ticket)),
                    steps: vec![Step::Post(notice(&what))],
                },
                None => Plan::nothing(),
            }
        }
    }
}

/// A re-routed or re-levelled open ticket: its channel moves to where the ticket is now, and
/// says why.
fn replace(open: Option<&TicketView>, notice: Post) -> Plan {
    match open {
        Some(ticket) => Plan {
            channel: Channel::Open(spec(ticket)),
            steps: vec![Step::Place(place(ticket)), Step::Post(notice)],
        },
        None => Plan::nothing(),
    }
}

fn place(ticket: &TicketView) -> Place {
    Place {
        category: ticket.issue_level,
        visible_from: ticket.support_role,
    }
}

fn spec(ticket: &TicketView) -> ChannelSpec {
    ChannelSpec {
        name: text::channel_name(&ticket.id, &ticket.topic),
        topic: text::channel_topic(&ticket.id, &ticket.topic, ticket.assignee_name.as_deref()),
        marker: text::topic_marker(&ticket.id),
        place: place(ticket),
    }
}

/// The role a message's author had when posting it; a copy of a message whose posting is not
/// in `history` is labelled as a customer's, the least trusted.
fn author_role(history: &[EventEnvelope], message_id: &str) -> UserRole {
    history
        .iter()
        .find_map(|e| match &e.event {
            TicketEvent::MessagePosted {
                message_id: id,
                author_role,
                ..
            } if id == message_id => Some(*author_role),
            _ => None,
        })
        .unwrap_or(UserRole::Customer)
}

/// The transcript of the ticket as it was at `close`: a summary in a code block (shown
/// verbatim, so nothing in it formats or pings), an HTML page and a plain-text file.
fn transcript(close: &EventEnvelope, history: &[EventEnvelope]) -> Option<TranscriptPost> {
    // A later close, reopen or message is not part of this close's transcript.
    let upto = history.partition_point(|e| e.version <= close.version);
    let transcript = crate::transcript::Transcript::from_events(&history[..upto])?;
    let name = format!("transcript-{}", close.stream_id);
    Some(TranscriptPost {
        post: Post {
            key: format!("transcript:{}", close.event_id),
            content: format!(
                "**Transcript**\n{}",
                text::code_block(&transcript.summary(), CONTENT_MAX - 20)
            ),
            buttons: Vec::new(),
        },
        files: vec![
            File {
                name: format!("{name}.html"),
                body: transcript.html(),
            },
            File {
                name: format!("{name}.txt"),
                body: transcript.text(),
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketd_events::fixtures::{self, EnvelopeFixture};

    fn envelope(event: TicketEvent, via: Via) -> EventEnvelope {
        fixtures::envelope(event)
            .id("e5")
            .version(5)
            .position(42)
            .by("a1", "Sam", UserRole::Agent)
            .via(via)
    }

    fn ticket(status: TicketStatus) -> TicketView {
        TicketView {
            id: "t1".into(),
            user_id: "u1".into(),
            topic: "Login fails".into(),
            description: "d".into(),
            status,
            created_at: 1,
            updated_at: 1,
            user_role: UserRole::Customer,
            support_role: SupportRole::Technical,
            issue_level: IssueLevel::Urgent,
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

    fn message() -> MessageView {
        MessageView {
            id: "m1".into(),
            ticket_id: "t1".into(),
            author_id: "u1".into(),
            author_name: "ann".into(),
            content: "old".into(),
            attachments: vec!["https://files.example/a.png".into()],
            created_at: 1,
            updated_at: 1,
            internal: false,
            seq: 2,
            deleted_at: None,
        }
    }

    fn opened() -> TicketEvent {
        TicketEvent::TicketOpened {
            user_id: "u1".into(),
            user_name: "ann".into(),
            user_email: "ann@example.com".into(),
            user_role: UserRole::Customer,
            topic: "Login fails".into(),
            description: "d".into(),
            support_role: SupportRole::General,
            issue_level: IssueLevel::Normal,
        }
    }

    fn posted(content: &str) -> TicketEvent {
        TicketEvent::MessagePosted {
            message_id: "m1".into(),
            author_id: "u1".into(),
            author_name: "ann".into(),
            author_role: UserRole::Customer,
            content: content.into(),
            attachments: vec![],
            internal: false,
        }
    }

    fn edited() -> TicketEvent {
        TicketEvent::MessageEdited {
            message_id: "m1".into(),
            content: "new".into(),
            attachments: None,
        }
    }

    /// A plan as one line per thing the support team would see happen.
    fn describe(plan: &Plan) -> Vec<String> {
        let first = |content: &str| content.lines().next().unwrap_or_default().to_string();
        let mut lines = vec![match &plan.channel {
            Channel::Open(spec) => format!(
                "in #{} ({:?}, {:?} up)",
                spec.name, spec.place.category, spec.place.visible_from
            ),
            Channel::Existing => "in the channel it has, if any".to_string(),
        }];
        for step in &plan.steps {
            lines.push(match step {
                Step::Post(post) => format!(
                    "post {}: {} {:?}",
                    post.key,
                    first(&post.content),
                    post.buttons
                ),
                Step::Copy { message_id, post } => {
                    format!(
                        "copy {message_id} as {}: {}",
                        post.key,
                        first(&post.content)
                    )
                }
                Step::EditCopy {
                    message_id,
                    content,
                } => format!(
                    "edit copy of {message_id}: {}",
                    content.replace('\n', " / ")
                ),
                Step::DeleteCopy { message_id } => format!("delete copy of {message_id}"),
                Step::Place(place) => {
                    format!("move to {:?}, {:?} up", place.category, place.visible_from)
                }
                Step::Transcript(t) => format!(
                    "transcript {}: {} + {}",
                    t.post.key,
                    first(&t.post.content),
                    t.files
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Step::RemoveChannel { closed_at } => {
                    format!("remove the channel after the grace from {closed_at}")
                }
                Step::Topic(topic) => format!("set the topic: {topic}"),
            });
        }
        lines
    }

    #[test]
    fn every_event_kind_plans_what_the_support_team_sees() {
        let open = ticket(TicketStatus::Open);
        let closed = ticket(TicketStatus::Closed);
        let history = vec![
            envelope(opened(), Via::Web),
            envelope(posted("hi"), Via::Web),
        ];
        let m = message();
        let with_open = Known {
            ticket: Some(&open),
            ..Known::default()
        };
        let with_closed = Known {
            ticket: Some(&closed),
            ..Known::default()
        };
        let with_message = Known {
            message: Some(&m),
            history: Some(&history),
            ..Known::default()
        };
        let with_history = Known {
            history: Some(&history),
            ..Known::default()
        };
        let here = "in #ticket-login-fails-1 (Urgent, Technical up)";
        let linked = "in the channel it has, if any";
        let table: Vec<(&str, TicketEvent, Via, Known<'_>, Vec<&str>)> = vec![
            (
                "an opening opens the channel where the ticket is now",
                opened(),
                Via::Web,
                with_open,
                vec![
                    here,
                    "post e5: **New ticket** `t1` [Claim, Escalate, Close]",
                ],
            ),
            (
                "an opening of a ticket closed since gets no channel",
                opened(),
                Via::Web,
                with_closed,
                vec![linked],
            ),
            (
                "a customer message is copied",
                posted("hi"),
                Via::Web,
                with_open,
                vec![here, "copy m1 as e5: **ann** (CUSTOMER):"],
            ),
            (
                "a message of a closed ticket goes only to a channel it still has",
                posted("hi"),
                Via::Socket,
                with_closed,
                vec![linked, "copy m1 as e5: **ann** (CUSTOMER):"],
            ),
            (
                "a staff message from Discord is not echoed back",
                posted("hi"),
                Via::Discord,
                with_open,
                vec![linked],
            ),
            (
                "an edit rewrites the copy with the author's role and kept attachments",
                edited(),
                Via::Web,
                with_message,
                vec![
                    linked,
                    "edit copy of m1: **ann** (CUSTOMER): / new / 📎 <https://files.example/a.png>",
                ],
            ),
            (
                "an edit made in Discord is not echoed back",
                edited(),
                Via::Discord,
                with_message,
                vec![linked],
            ),
            (
                "an edit of a message the read model lacks does nothing",
                edited(),
                Via::Web,
                Known::default(),
                vec![linked],
            ),
            (
                "a deletion deletes the copy",
                TicketEvent::MessageDeleted {
                    message_id: "m1".into(),
                },
                Via::Cli,
                Known::default(),
                vec![linked, "delete copy of m1"],
            ),
            (
                "a deletion made in Discord is not echoed back",
                TicketEvent::MessageDeleted {
                    message_id: "m1".into(),
                },
                Via::Discord,
                Known::default(),
                vec![linked],
            ),
            (
                "an escalation moves the channel to the ticket's current place",
                TicketEvent::SupportRoleChanged {
                    from: SupportRole::General,
                    to: SupportRole::Technical,
                },
                Via::Discord,
                with_open,
                vec![
                    here,
                    "move to Urgent, Technical up",
                    "post e5: ℹ️ Escalated to TECHNICAL — by Sam []",
                ],
            ),
            (
                "a level change moves it too",
                TicketEvent::IssueLevelChanged {
                    from: IssueLevel::Normal,
                    to: IssueLevel::Urgent,
                },
                Via::Web,
                with_open,
                vec![
                    here,
                    "move to Urgent, Technical up",
                    "post e5: ℹ️ Issue level set to URGENT — by Sam []",
                ],
            ),
            (
                "a change to a ticket closed since moves nothing",
                TicketEvent::IssueLevelChanged {
                    from: IssueLevel::Normal,
                    to: IssueLevel::Urgent,
                },
                Via::Web,
                with_closed,
                vec![linked],
            ),
            (
                "a close posts the transcript, says so and removes the channel later",
                TicketEvent::TicketClosed { reason: None },
                Via::Discord,
                with_history,
                vec![
                    linked,
                    "transcript transcript:e5: **Transcript** + transcript-t1.html, transcript-t1.txt",
                    "post e5: ℹ️ Ticket closed — by Sam []",
                    "remove the channel after the grace from 1000",
                ],
            ),
            (
                "without a transcript channel a close only says so",
                TicketEvent::TicketClosed {
                    reason: Some("done".into()),
                },
                Via::Web,
                Known::default(),
                vec![
                    linked,
                    "post e5: ℹ️ Ticket closed: done — by Sam []",
                    "remove the channel after the grace from 1000",
                ],
            ),
            (
                "a reopening opens a channel again",
                TicketEvent::TicketReopened {},
                Via::Web,
                with_open,
                vec![here, "post e5: ℹ️ Ticket reopened — by Sam []"],
            ),
            (
                "a claim retitles the channel with its holder and says so, escaped",
                TicketEvent::AssigneeChanged {
                    from: None,
                    to: Some("discord:9".into()),
                    to_name: Some("*Sam*".into()),
                },
                Via::Discord,
                with_open,
                vec![
                    here,
                    "set the topic: ticket t1 · unclaimed · Login fails",
                    "post e5: ℹ️ Held by \\*Sam\\* — by Sam []",
                ],
            ),
            (
                "a release says nobody holds it",
                TicketEvent::AssigneeChanged {
                    from: Some("discord:9".into()),
                    to: None,
                    to_name: None,
                },
                Via::Web,
                with_open,
                vec![
                    here,
                    "set the topic: ticket t1 · unclaimed · Login fails",
                    "post e5: ℹ️ Released: nobody holds this ticket — by Sam []",
                ],
            ),
            (
                "new tags are shown to the support team",
                TicketEvent::TagsChanged {
                    tags: vec!["vip".into(), "billing".into()],
                },
                Via::Web,
                with_open,
                vec![here, "post e5: ℹ️ Tags: vip, billing — by Sam []"],
            ),
        ];
        for (what, event, via, known, expected) in table {
            let envelope = envelope(event, via);
            assert_eq!(describe(&plan(&envelope, &known)), expected, "{what}");
        }
    }

    #[test]
    fn the_bridge_looks_up_only_what_the_plan_uses() {
        let cases = [
            (opened(), Via::Web, true, (true, None, false)),
            (posted("hi"), Via::Web, true, (true, None, false)),
            (posted("hi"), Via::Discord, true, (false, None, false)),
            (edited(), Via::Web, false, (false, Some("m1"), true)),
            (edited(), Via::Discord, true, (false, None, false)),
            (
                TicketEvent::TicketClosed { reason: None },
                Via::Web,
                true,
                (false, None, true),
            ),
            (
                TicketEvent::TicketClosed { reason: None },
                Via::Web,
                false,
                (false, None, false),
            ),
            (
                TicketEvent::TicketReopened {},
                Via::Web,
                true,
                (true, None, false),
            ),
        ];
        for (event, via, transcripts, expected) in cases {
            let envelope = envelope(event, via);
            let n = needs(&envelope, transcripts);
            assert_eq!(
                (n.ticket, n.message, n.history),
                expected,
                "{:?}",
                envelope.event
            );
        }
    }

    #[test]
    fn user_text_cannot_ping_or_format_anywhere_it_appears() {
        let open = ticket(TicketStatus::Open);
        let known = Known {
            ticket: Some(&open),
            ..Known::default()
        };
        let mut e = envelope(posted("@everyone look **here** <@&123>"), Via::Web);
        e.actor.name = "@here".into();
        let Step::Copy { post, .. } = &plan(&e, &known).steps[0] else {
            panic!("not a copy")
        };
        assert!(
            post.content
                .contains("\\@everyone look \\*\\*here\\*\\* \\<\\@&123\\>"),
            "{}",
            post.content
        );

        e.event = TicketEvent::TicketClosed {
            reason: Some("@everyone [x](http://evil)".into()),
        };
        let Step::Post(post) = &plan(&e, &Known::default()).steps[0] else {
            panic!("not a post")
        };
        assert_eq!(
            post.content,
            "ℹ️ Ticket closed: \\@everyone \\[x\\]\\(http\\://evil\\) — by \\@here"
        );
    }

    #[test]
    fn a_transcript_shows_the_ticket_as_it_was_at_its_close() {
        let mut history = vec![
            envelope(opened(), Via::Web),
            envelope(posted("first @everyone"), Via::Web),
        ];
        history[0].version = 1;
        history[1].version = 2;
        let mut later = envelope(posted("after the close"), Via::Web);
        later.version = 9;
        history.push(later);
        let mut close = envelope(TicketEvent::TicketClosed { reason: None }, Via::Web);
        close.version = 3;
        let known = Known {
            history: Some(&history),
            ..Known::default()
        };
        let Step::Transcript(t) = &plan(&close, &known).steps[0] else {
            panic!("no transcript")
        };
        // In a code block, which Discord shows verbatim: no mention inside can ping.
        assert!(t.post.content.starts_with("**Transcript**\n```\n"));
        assert!(t.post.content.ends_with("\n```"));
        assert!(t.post.content.chars().count() <= CONTENT_MAX);
        let text = &t.files[1].body;
        assert!(text.contains("first @everyone"), "{text}");
        assert!(!text.contains("after the close"), "{text}");
    }

    #[test]
    fn buttons_say_what_they_do_and_name_their_ticket() {
        let open = ticket(TicketStatus::Open);
        let e = envelope(opened(), Via::Web);
        let p = plan(
            &e,
            &Known {
                ticket: Some(&open),
                ..Known::default()
            },
        );
        let Step::Post(post) = &p.steps[0] else {
            panic!("no opening")
        };
        let ids: Vec<String> = post.buttons.iter().map(|b| b.custom_id("t1")).collect();
        assert_eq!(ids, ["claim:t1", "escalate:t1", "close:t1"]);
        assert_eq!(Button::parse("claim:t1"), Some((Button::Claim, "t1")));
        assert_eq!(Button::parse("escalate:t1"), Some((Button::Escalate, "t1")));
        assert_eq!(Button::parse("delete:t1"), None);
        assert_eq!(Button::Close.label(), "Close");
    }
}
