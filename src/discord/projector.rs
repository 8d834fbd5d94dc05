//! The bridge's projector: follows the global stream from its checkpoint and does in Discord what
//! each event asks. Delivery is at least once, so every step first looks for what an earlier run
//! already did: the ticket → channel and message → Discord message links (recorded right after
//! each creation, before the checkpoint moves), a channel whose topic carries the ticket id (a
//! crash between creating it and recording it), and a nonce Discord deduplicates on (a crash
//! between posting and recording). Discord remembers a nonce for a few minutes only, so when an
//! earlier attempt may lie further back (the first event after a start, an event being retried,
//! an event older than [`NONCE_WINDOW_MS`]) the channel's latest messages are searched for an
//! unclaimed copy first. A failed Discord call is retried until it lands: an event is never
//! skipped.

use super::format::{self, Opening};
use super::retry::{Gone, until_done};
use super::{Bridge, CHECKPOINT, link, now_ms};
use crate::alerts::Reporter;
use crate::store::{Checkpoints, Links, ReadModels};
use serenity::all::{
    ButtonStyle, ChannelId, ChannelType, CreateActionRow, CreateAllowedMentions, CreateAttachment,
    CreateButton, CreateChannel, CreateMessage, EditChannel, EditMessage, GetMessages, MessageId,
    Nonce,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use ticketd_events::{EventEnvelope, EventStore, StoreError, TicketEvent, TicketStatus, Via};
use ticketd_projections::TicketView;
use ticketd_projections::transcript::Transcript;
use tracing::{debug, info, warn};

/// Events read per round trip to the store.
const BATCH: usize = 128;
/// How long Discord is trusted to remember a nonce ("the past few minutes", says Discord).
const NONCE_WINDOW_MS: i64 = 60_000;
/// How many of a channel's latest messages the search for an unrecorded post reads (Discord's
/// maximum for one call).
const RECENT: u8 = 100;

/// Follows the stream from the `discord` checkpoint until the task is aborted.
pub async fn run(bridge: Arc<Bridge>) {
    let store = bridge.state.store.clone();
    let mut after = retry_store(bridge.alerts(), "load the checkpoint", || {
        store.load_checkpoint(CHECKPOINT)
    })
    .await;
    info!(after, "Discord projector follows the stream");
    // The event after the checkpoint may have been half done by a run that crashed.
    let mut first = true;
    loop {
        store.wait_beyond(after).await;
        let batch = retry_store(bridge.alerts(), "read events", || {
            store.read_all(after, BATCH)
        })
        .await;
        for envelope in &batch {
            let old = envelope.recorded_at < now_ms() - NONCE_WINDOW_MS;
            bridge.recheck.store(first || old, Ordering::Relaxed);
            let mut tried = false;
            retry_store(bridge.alerts(), "apply an event", || {
                if tried {
                    bridge.recheck.store(true, Ordering::Relaxed);
                }
                tried = true;
                bridge.apply(envelope)
            })
            .await;
            first = false;
            after = envelope.position;
            retry_store(bridge.alerts(), "save the checkpoint", || {
                store.save_checkpoint(CHECKPOINT, after)
            })
            .await;
        }
    }
}

/// Retries a store call until it succeeds; the projector cannot move on without it.
async fn retry_store<T, F, Fut>(alerts: &Reporter, what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e) => {
                warn!("Discord projector cannot {what}: {e}; retrying");
                alerts.report("projector", format_args!("cannot {what}: {e}; retrying"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

impl Bridge {
    /// Does in Discord what one event asks, idempotently.
    async fn apply(&self, envelope: &EventEnvelope) -> Result<(), StoreError> {
        let ticket_id = envelope.stream_id.as_str();
        let from_discord = envelope.actor.via == Via::Discord;
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
                let Some(ticket) = self.open_ticket(ticket_id).await? else {
                    return Ok(());
                };
                let channel = self.ensure_channel(&ticket).await?;
                let content = format::opening(&Opening {
                    ticket_id,
                    user_name,
                    user_email,
                    user_role: *user_role,
                    topic,
                    description,
                    issue_level: *issue_level,
                    support_role: *support_role,
                });
                let buttons = CreateActionRow::Buttons(vec![
                    CreateButton::new(format!("close:{ticket_id}"))
                        .label("Close")
                        .style(ButtonStyle::Danger),
                    CreateButton::new(format!("escalate:{ticket_id}"))
                        .label("Escalate")
                        .style(ButtonStyle::Primary),
                ]);
                self.post_once(channel, envelope, content, vec![buttons])
                    .await?;
            }
            TicketEvent::MessagePosted {
                message_id,
                author_name,
                author_role,
                content,
                attachments,
                internal,
                ..
            } if !from_discord => {
                if self.load(link::MESSAGE, message_id).await?.is_some() {
                    return Ok(());
                }
                let Some(channel) = self.channel_of_open(ticket_id).await? else {
                    return Ok(());
                };
                let text = format::message_copy(
                    author_name,
                    *author_role,
                    *internal,
                    content,
                    attachments,
                );
                if let Some(posted) = self.post_once(channel, envelope, text, vec![]).await? {
                    self.save(link::MESSAGE, message_id, Some(&posted.to_string()))
                        .await?;
                }
            }
            TicketEvent::MessageEdited {
                message_id,
                content,
                attachments,
            } if !from_discord => {
                let (Some(copy), Some(channel)) = (
                    self.load(link::MESSAGE, message_id).await?,
                    self.load(link::TICKET_CHANNEL, ticket_id).await?,
                ) else {
                    return Ok(());
                };
                let Some(message) = self.state.store.get_message(message_id).await? else {
                    return Ok(());
                };
                let attachments = attachments.as_ref().unwrap_or(&message.attachments);
                let role = self.author_role(ticket_id, message_id).await?;
                let text = format::message_copy(
                    &message.author_name,
                    role,
                    message.internal,
                    content,
                    attachments,
                );
                let (channel, copy) = (parse_channel(&channel), parse_message(&copy));
                let edit = EditMessage::new()
                    .content(text)
                    .allowed_mentions(CreateAllowedMentions::new());
                let _ = until_done(self.alerts(), "edit a message copy", || {
                    channel.edit_message(&self.http, copy, edit.clone())
                })
                .await;
            }
            TicketEvent::MessageDeleted { message_id } if !from_discord => {
                let (Some(copy), Some(channel)) = (
                    self.load(link::MESSAGE, message_id).await?,
                    self.load(link::TICKET_CHANNEL, ticket_id).await?,
                ) else {
                    return Ok(());
                };
                let (channel, copy) = (parse_channel(&channel), parse_message(&copy));
                let _ = until_done(self.alerts(), "delete a message copy", || {
                    channel.delete_message(&self.http, copy)
                })
                .await;
            }
            TicketEvent::SupportRoleChanged { to, .. } => {
                let Some(ticket) = self.open_ticket(ticket_id).await? else {
                    return Ok(());
                };
                let channel = self.ensure_channel(&ticket).await?;
                self.place(channel, &ticket).await;
                let text = format::notice(&format!("Escalated to {to}"), &envelope.actor.name);
                self.post_once(channel, envelope, text, vec![]).await?;
            }
            TicketEvent::IssueLevelChanged { to, .. } => {
                let Some(ticket) = self.open_ticket(ticket_id).await? else {
                    return Ok(());
                };
                let channel = self.ensure_channel(&ticket).await?;
                self.place(channel, &ticket).await;
                let text =
                    format::notice(&format!("Issue level set to {to}"), &envelope.actor.name);
                self.post_once(channel, envelope, text, vec![]).await?;
            }
            TicketEvent::TicketClosed { reason } => {
                self.post_transcript(envelope).await?;
                let Some(channel) = self.load(link::TICKET_CHANNEL, ticket_id).await? else {
                    return Ok(());
                };
                let channel = parse_channel(&channel);
                let what = match reason {
                    Some(reason) => format!("Ticket closed: {}", format::escape(reason)),
                    None => "Ticket closed".to_string(),
                };
                let text = format::notice(&what, &envelope.actor.name);
                self.post_once(channel, envelope, text, vec![]).await?;
                let grace =
                    i64::try_from(self.config.channel_grace.as_millis()).unwrap_or(i64::MAX);
                let at = envelope.recorded_at.saturating_add(grace);
                self.schedule_removal(ticket_id, channel, at).await?;
            }
            TicketEvent::TicketReopened {} => {
                let Some(ticket) = self.open_ticket(ticket_id).await? else {
                    return Ok(());
                };
                let channel = self.ensure_channel(&ticket).await?;
                let text = format::notice("Ticket reopened", &envelope.actor.name);
                self.post_once(channel, envelope, text, vec![]).await?;
            }
            // Messages from Discord are there already.
            TicketEvent::MessagePosted { .. }
            | TicketEvent::MessageEdited { .. }
            | TicketEvent::MessageDeleted { .. } => {}
        }
        Ok(())
    }

    /// The ticket, when it is open now. A closed ticket gets no (new) channel: replaying old
    /// history must not fill the guild with channels of long-closed tickets.
    async fn open_ticket(&self, ticket_id: &str) -> Result<Option<TicketView>, StoreError> {
        Ok(self
            .state
            .store
            .get_ticket(ticket_id)
            .await?
            .filter(|t| t.status == TicketStatus::Open))
    }

    /// The channel of a ticket that has one; an open ticket without one gets one.
    async fn channel_of_open(&self, ticket_id: &str) -> Result<Option<ChannelId>, StoreError> {
        if let Some(channel) = self.load(link::TICKET_CHANNEL, ticket_id).await? {
            return Ok(Some(parse_channel(&channel)));
        }
        match self.open_ticket(ticket_id).await? {
            Some(ticket) => Ok(Some(self.ensure_channel(&ticket).await?)),
            None => Ok(None),
        }
    }

    /// The ticket's channel: the linked one, else one in the guild whose topic names the ticket
    /// (created before a crash), else a new one. Links both ways before returning.
    async fn ensure_channel(&self, ticket: &TicketView) -> Result<ChannelId, StoreError> {
        if let Some(channel) = self.load(link::TICKET_CHANNEL, &ticket.id).await? {
            return Ok(parse_channel(&channel));
        }
        let marker = format::topic_marker(&ticket.id);
        let guild = self.guild();
        let existing = until_done(self.alerts(), "list the guild's channels", || {
            guild.channels(&self.http)
        })
        .await
        .unwrap_or_default()
        .into_values()
        .find(|c| c.topic.as_deref().is_some_and(|t| t.starts_with(&marker)));
        let channel = match existing {
            Some(channel) => {
                info!(ticket = %ticket.id, channel = %channel.id, "found the ticket's channel");
                channel.id
            }
            None => {
                let mut create =
                    CreateChannel::new(format::channel_name(&ticket.id, &ticket.topic))
                        .kind(ChannelType::Text)
                        .topic(format::channel_topic(&ticket.id, &ticket.topic))
                        .permissions(self.overwrites(ticket.support_role));
                if let Some(category) = self.category(ticket.issue_level) {
                    create = create.category(category);
                }
                loop {
                    match until_done(self.alerts(), "create a ticket channel", || {
                        guild.create_channel(&self.http, create.clone())
                    })
                    .await
                    {
                        Ok(channel) => break channel.id,
                        // A 404 here means the guild or category is unknown: a setting to fix.
                        Err(Gone) => {
                            warn!(
                                "cannot create a channel: the guild or category is unknown; retrying"
                            );
                            self.alerts().report(
                                "projector",
                                "cannot create a ticket channel: the guild or category is unknown (GUILD_ID, *_TICKET_CATEGORY_ID); retrying in 30 s",
                            );
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                    }
                }
            }
        };
        let id = channel.to_string();
        self.save(link::CHANNEL_TICKET, &id, Some(&ticket.id))
            .await?;
        self.save(link::TICKET_CHANNEL, &ticket.id, Some(&id))
            .await?;
        Ok(channel)
    }

    /// Moves a channel to its level's category and gives it its role's overwrites.
    async fn place(&self, channel: ChannelId, ticket: &TicketView) {
        let edit = EditChannel::new()
            .category(self.category(ticket.issue_level))
            .permissions(self.overwrites(ticket.support_role));
        if until_done(self.alerts(), "move a ticket channel", || {
            channel.edit(&self.http, edit.clone())
        })
        .await
        .is_err()
        {
            debug!(%channel, "the channel to move is gone");
        }
    }

    /// Posts `content` for `envelope` unless an earlier run did; returns the Discord message,
    /// or `None` when the channel is gone.
    async fn post_once(
        &self,
        channel: ChannelId,
        envelope: &EventEnvelope,
        content: String,
        components: Vec<CreateActionRow>,
    ) -> Result<Option<MessageId>, StoreError> {
        let mut message = CreateMessage::new().content(content.clone());
        if !components.is_empty() {
            message = message.components(components);
        }
        self.post_keyed(channel, &envelope.event_id, &content, message)
            .await
    }

    /// Posts `message` (whose text is `content`) unless the post recorded under `key` exists;
    /// `key` also makes the nonce Discord deduplicates on.
    async fn post_keyed(
        &self,
        channel: ChannelId,
        key: &str,
        content: &str,
        message: CreateMessage,
    ) -> Result<Option<MessageId>, StoreError> {
        if let Some(posted) = self.load(link::EVENT_MESSAGE, key).await? {
            return Ok(Some(parse_message(&posted)));
        }
        if self.recheck.load(Ordering::Relaxed)
            && let Some(found) = self.find_unrecorded(channel, key, content).await?
        {
            info!(%channel, message = %found, "found a post an earlier run made but did not record");
            self.record_post(key, found).await?;
            return Ok(Some(found));
        }
        let message = message
            .allowed_mentions(CreateAllowedMentions::new())
            .nonce(Nonce::String(format::nonce(key)))
            .enforce_nonce(true);
        match until_done(self.alerts(), "post a message", || {
            channel.send_message(&self.http, message.clone())
        })
        .await
        {
            Ok(posted) => {
                self.record_post(key, posted.id).await?;
                Ok(Some(posted.id))
            }
            Err(Gone) => {
                warn!(%channel, "a channel to post in is gone");
                self.alerts().report(
                    "projector",
                    format_args!("channel {channel} is gone: a post for {key} was skipped"),
                );
                Ok(None)
            }
        }
    }

    /// Records that `message` is the post for `key`, both ways: the claim (message → key) first,
    /// so that a post found by [`Bridge::find_unrecorded`] is never one another key owns.
    async fn record_post(&self, key: &str, message: MessageId) -> Result<(), StoreError> {
        let id = message.to_string();
        self.save(link::POSTED_FOR, &id, Some(key)).await?;
        self.save(link::EVENT_MESSAGE, key, Some(&id)).await
    }

    /// The bot's post with this `content` among the channel's latest messages that no other key
    /// claims: what an earlier attempt for `key` posted without recording it.
    async fn find_unrecorded(
        &self,
        channel: ChannelId,
        key: &str,
        content: &str,
    ) -> Result<Option<MessageId>, StoreError> {
        let recent = match until_done(self.alerts(), "read a channel's latest messages", || {
            channel.messages(&self.http, GetMessages::new().limit(RECENT))
        })
        .await
        {
            Ok(recent) => recent,
            Err(Gone) => return Ok(None),
        };
        for message in recent {
            if message.author.id != self.bot_id || message.content.trim() != content.trim() {
                continue;
            }
            match self.load(link::POSTED_FOR, &message.id.to_string()).await? {
                Some(owner) if owner != key => {}
                _ => return Ok(Some(message.id)),
            }
        }
        Ok(None)
    }

    /// Posts the transcript of the ticket as it was at this close to the transcript channel:
    /// the summary, an HTML file and a plain-text file.
    async fn post_transcript(&self, close: &EventEnvelope) -> Result<(), StoreError> {
        let Some(channel) = self.config.transcript_channel_id.map(ChannelId::new) else {
            return Ok(());
        };
        let mut events = self.state.store.read_stream(&close.stream_id, 0).await?;
        events.retain(|e| e.version <= close.version);
        let Some(transcript) = Transcript::from_events(&events) else {
            return Ok(());
        };
        let name = format!("transcript-{}", close.stream_id);
        let summary = format!(
            "**Transcript**\n{}",
            format::code_block(&transcript.summary(), format::CONTENT_MAX - 20)
        );
        let message = CreateMessage::new()
            .content(summary.clone())
            .add_file(CreateAttachment::bytes(
                transcript.html(),
                format!("{name}.html"),
            ))
            .add_file(CreateAttachment::bytes(
                transcript.text(),
                format!("{name}.txt"),
            ));
        self.post_keyed(
            channel,
            &format!("transcript:{}", close.event_id),
            &summary,
            message,
        )
        .await?;
        Ok(())
    }

    /// The role a message's author had when posting, from the ticket's stream.
    async fn author_role(
        &self,
        ticket_id: &str,
        message_id: &str,
    ) -> Result<ticketd_events::UserRole, StoreError> {
        let events = self.state.store.read_stream(ticket_id, 0).await?;
        Ok(events
            .iter()
            .find_map(|e| match &e.event {
                TicketEvent::MessagePosted {
                    message_id: id,
                    author_role,
                    ..
                } if id == message_id => Some(*author_role),
                _ => None,
            })
            .unwrap_or(ticketd_events::UserRole::Customer))
    }

    async fn load(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.state.store.load_link(kind, key).await
    }

    async fn save(&self, kind: &str, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.state.store.save_link(kind, key, value).await
    }
}

fn parse_channel(id: &str) -> ChannelId {
    ChannelId::new(id.parse().unwrap_or(1))
}

fn parse_message(id: &str) -> MessageId {
    MessageId::new(id.parse().unwrap_or(1))
}
