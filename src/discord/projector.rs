//! The bridge's projector: follows the global stream from its checkpoint and does in Discord what
//! each event asks. What that is, is planned purely in `ticketd_projections::discord`; this
//! module looks up what the plan needs and carries it out.
//!
//! Delivery is at least once, so every step first looks for what an earlier run already did: the
//! ticket → channel and message → Discord message links (recorded right after each creation,
//! before the checkpoint moves), a channel whose topic carries the ticket id (a crash between
//! creating it and recording it), and a nonce Discord deduplicates on (a crash between posting
//! and recording). Discord remembers a nonce for a few minutes only, so when an earlier attempt
//! may lie further back (the first event after a start, an event being retried, an event older
//! than [`NONCE_WINDOW_MS`]) the channel's latest messages are searched for an unclaimed copy
//! first. A failed Discord call is retried until it lands: an event is never skipped.

use super::nonce::nonce;
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
use ticketd_events::{EventEnvelope, EventStore, StoreError};
use ticketd_projections::discord::{
    self as plan, Button, Channel, ChannelSpec, Known, Place, Post, Step, TranscriptPost,
};
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
    /// Does in Discord what one event asks: looks up what the plan needs, plans, and carries
    /// the steps out, each once.
    async fn apply(&self, envelope: &EventEnvelope) -> Result<(), StoreError> {
        let ticket_id = envelope.stream_id.as_str();
        let store = &self.state.store;
        let needs = plan::needs(envelope, self.config.transcript_channel_id.is_some());
        let ticket = if needs.ticket {
            store.get_ticket(ticket_id).await?
        } else {
            None
        };
        let message = match needs.message {
            Some(id) => store.get_message(id).await?,
            None => None,
        };
        let history = if needs.history {
            Some(store.read_stream(ticket_id, 0).await?)
        } else {
            None
        };
        let known = Known {
            ticket: ticket.as_ref(),
            message: message.as_ref(),
            history: history.as_deref(),
        };
        let plan = plan::plan(envelope, &known);
        let mut channel = TicketChannel {
            ticket_id,
            source: &plan.channel,
            resolved: None,
        };
        for step in &plan.steps {
            self.carry_out(step, &mut channel).await?;
        }
        Ok(())
    }

    /// Does one step of a plan; a step whose channel or copy does not exist does nothing.
    async fn carry_out(
        &self,
        step: &Step,
        channel: &mut TicketChannel<'_>,
    ) -> Result<(), StoreError> {
        let ticket_id = channel.ticket_id;
        match step {
            Step::Post(post) => {
                if let Some(id) = self.channel(channel).await? {
                    self.post_once(id, ticket_id, post, Vec::new()).await?;
                }
            }
            Step::Copy { message_id, post } => {
                if self.load(link::MESSAGE, message_id).await?.is_some() {
                    return Ok(());
                }
                let Some(id) = self.channel(channel).await? else {
                    return Ok(());
                };
                if let Some(posted) = self.post_once(id, ticket_id, post, Vec::new()).await? {
                    self.save(link::MESSAGE, message_id, Some(&posted.to_string()))
                        .await?;
                }
            }
            Step::EditCopy {
                message_id,
                content,
            } => {
                let (Some(copy), Some(id)) = (
                    self.load(link::MESSAGE, message_id).await?,
                    self.channel(channel).await?,
                ) else {
                    return Ok(());
                };
                let copy = parse_message(&copy);
                let edit = EditMessage::new()
                    .content(content)
                    .allowed_mentions(CreateAllowedMentions::new());
                let _ = until_done(self.retrying(), "edit a message copy", || {
                    id.edit_message(&self.http, copy, edit.clone())
                })
                .await;
            }
            Step::DeleteCopy { message_id } => {
                let (Some(copy), Some(id)) = (
                    self.load(link::MESSAGE, message_id).await?,
                    self.channel(channel).await?,
                ) else {
                    return Ok(());
                };
                let copy = parse_message(&copy);
                let _ = until_done(self.retrying(), "delete a message copy", || {
                    id.delete_message(&self.http, copy)
                })
                .await;
            }
            Step::Place(place) => {
                if let Some(id) = self.channel(channel).await? {
                    self.place(id, *place).await;
                }
            }
            Step::Topic(topic) => {
                if let Some(id) = self.channel(channel).await? {
                    let edit = EditChannel::new().topic(topic.clone());
                    if until_done(self.retrying(), "set a ticket channel's topic", || {
                        id.edit(&self.http, edit.clone())
                    })
                    .await
                    .is_err()
                    {
                        debug!(channel = %id, "the channel to retitle is gone");
                    }
                }
            }
            Step::Transcript(transcript) => self.post_transcript(ticket_id, transcript).await?,
            Step::RemoveChannel { closed_at } => {
                if let Some(id) = self.channel(channel).await? {
                    let grace =
                        i64::try_from(self.config.channel_grace.as_millis()).unwrap_or(i64::MAX);
                    self.schedule_removal(ticket_id, id, closed_at.saturating_add(grace))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The channel a plan's steps act in, looked up (and, for an open ticket, found or created)
    /// at the first step that needs it, so a step that needs none (a copy made already, the
    /// transcript) never makes one.
    async fn channel(
        &self,
        channel: &mut TicketChannel<'_>,
    ) -> Result<Option<ChannelId>, StoreError> {
        if let Some(id) = channel.resolved {
            return Ok(id);
        }
        let id = match channel.source {
            Channel::Open(spec) => Some(self.ensure_channel(channel.ticket_id, spec).await?),
            Channel::Existing => self
                .load(link::TICKET_CHANNEL, channel.ticket_id)
                .await?
                .map(|c| parse_channel(&c)),
        };
        channel.resolved = Some(id);
        Ok(id)
    }

    /// The ticket's channel: the linked one, else one in the guild whose topic names the ticket
    /// (created before a crash), else a new one. Links both ways before returning.
    async fn ensure_channel(
        &self,
        ticket_id: &str,
        spec: &ChannelSpec,
    ) -> Result<ChannelId, StoreError> {
        if let Some(channel) = self.load(link::TICKET_CHANNEL, ticket_id).await? {
            return Ok(parse_channel(&channel));
        }
        let guild = self.guild();
        let existing = until_done(self.retrying(), "list the guild's channels", || {
            guild.channels(&self.http)
        })
        .await
        .unwrap_or_default()
        .into_values()
        .find(|c| {
            c.topic
                .as_deref()
                .is_some_and(|t| t.starts_with(&spec.marker))
        });
        let channel = match existing {
            Some(channel) => {
                info!(ticket = %ticket_id, channel = %channel.id, "found the ticket's channel");
                channel.id
            }
            None => {
                let mut create = CreateChannel::new(spec.name.as_str())
                    .kind(ChannelType::Text)
                    .topic(spec.topic.as_str())
                    .permissions(self.overwrites(spec.place.visible_from));
                if let Some(category) = self.category(spec.place.category) {
                    create = create.category(category);
                }
                loop {
                    match until_done(self.retrying(), "create a ticket channel", || {
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
        self.save(link::CHANNEL_TICKET, &id, Some(ticket_id))
            .await?;
        self.save(link::TICKET_CHANNEL, ticket_id, Some(&id))
            .await?;
        Ok(channel)
    }

    /// Moves a channel to its level's category and gives it its role's overwrites.
    async fn place(&self, channel: ChannelId, place: Place) {
        let edit = EditChannel::new()
            .category(self.category(place.category))
            .permissions(self.overwrites(place.visible_from));
        if until_done(self.retrying(), "move a ticket channel", || {
            channel.edit(&self.http, edit.clone())
        })
        .await
        .is_err()
        {
            debug!(%channel, "the channel to move is gone");
        }
    }

    /// Makes `post` in `channel` unless an earlier run did, with `files` attached; returns the
    /// Discord message, or `None` when the channel is gone.
    async fn post_once(
        &self,
        channel: ChannelId,
        ticket_id: &str,
        post: &Post,
        files: Vec<CreateAttachment>,
    ) -> Result<Option<MessageId>, StoreError> {
        let mut message = CreateMessage::new().content(post.content.clone());
        if !post.buttons.is_empty() {
            let buttons = post
                .buttons
                .iter()
                .map(|b| {
                    let style = match b {
                        Button::Close => ButtonStyle::Danger,
                        Button::Escalate => ButtonStyle::Primary,
                        Button::Claim => ButtonStyle::Success,
                    };
                    CreateButton::new(b.custom_id(ticket_id))
                        .label(b.label())
                        .style(style)
                })
                .collect();
            message = message.components(vec![CreateActionRow::Buttons(buttons)]);
        }
        for file in files {
            message = message.add_file(file);
        }
        self.post_keyed(channel, &post.key, &post.content, message)
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
            .nonce(Nonce::String(nonce(key)))
            .enforce_nonce(true);
        match until_done(self.retrying(), "post a message", || {
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
        let recent = match until_done(self.retrying(), "read a channel's latest messages", || {
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

    /// Posts a transcript to the transcript channel, if there is one.
    async fn post_transcript(
        &self,
        ticket_id: &str,
        transcript: &TranscriptPost,
    ) -> Result<(), StoreError> {
        let Some(channel) = self.config.transcript_channel_id.map(ChannelId::new) else {
            return Ok(());
        };
        let files = transcript
            .files
            .iter()
            .map(|f| CreateAttachment::bytes(f.body.as_bytes(), f.name.as_str()))
            .collect();
        self.post_once(channel, ticket_id, &transcript.post, files)
            .await?;
        Ok(())
    }

    async fn load(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.state.store.load_link(kind, key).await
    }

    async fn save(&self, kind: &str, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.state.store.save_link(kind, key, value).await
    }
}

/// The ticket's channel for one event's plan.
struct TicketChannel<'a> {
    /// The ticket.
    ticket_id: &'a str,
    /// Whether the channel may be created or must exist already.
    source: &'a Channel,
    /// The channel once looked up: `Some(None)` when the ticket has none.
    resolved: Option<Option<ChannelId>>,
}

fn parse_channel(id: &str) -> ChannelId {
    ChannelId::new(id.parse().unwrap_or(1))
}

fn parse_message(id: &str) -> MessageId {
    MessageId::new(id.parse().unwrap_or(1))
}
