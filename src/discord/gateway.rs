//! The gateway side: what staff do in ticket channels becomes ticket commands. A member's message
//! becomes a message of the ticket (an internal note when it starts with the configured prefix),
//! their edits and deletions follow it, and slash commands and buttons run through [`super::slash`].
//! The bot's own messages (Discord echoes them) and anything from another guild are ignored.

use super::refusal::Door;
use super::{Bridge, ticket_message_id};
use crate::commands::Context as CommandContext;
use crate::store::ReadModels;
use serenity::all::{
    ChannelId, ConnectionStage, Context, EventHandler, GuildId, Interaction, Message, MessageId,
    MessageUpdateEvent, Ready, ShardStageUpdateEvent,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use ticketd_events::limits::{ATTACHMENTS_MAX, MESSAGE_MAX};
use ticketd_events::{Actor, Command, UserRole, Via};
use tracing::{info, warn};

/// How long an edit or deletion waits for the message it concerns: serenity runs each event's
/// handler in its own task, so an edit may arrive before its message has been posted.
const CATCH_UP: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1600),
];

/// serenity's event handler for the bridge.
pub struct Handler {
    /// What both halves of the bridge share.
    bridge: Arc<Bridge>,
    /// READYs so far: every one after the first is a new session after a lost connection.
    sessions: AtomicUsize,
}

impl Handler {
    /// A handler for `bridge`.
    pub fn new(bridge: Arc<Bridge>) -> Self {
        Handler {
            bridge,
            sessions: AtomicUsize::new(0),
        }
    }

    fn ours(&self, guild: Option<GuildId>) -> bool {
        guild == Some(self.bridge.guild())
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        info!(user = %ready.user.name, "Discord gateway ready");
        if self.sessions.fetch_add(1, Ordering::Relaxed) > 0 {
            // serenity could not resume the lost session: events sent meanwhile are not replayed.
            warn!("the Discord gateway connection was lost; connected again with a new session");
            self.bridge.alerts().report(
                "gateway",
                "connection lost; connected again with a new session (events sent meanwhile were not replayed)",
            );
        }
        // READY comes again after every fresh session: a bulk overwrite is safe to repeat.
        let guild = self.bridge.guild();
        let _ = super::retry::until_done(
            self.bridge.retrying(),
            "register the slash commands",
            || guild.set_commands(&ctx.http, super::slash::registrations()),
        )
        .await;
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        // serenity reconnects by itself; a lost connection is still worth knowing about, since
        // staff messages wait meanwhile.
        if event.old == ConnectionStage::Connected && event.new != ConnectionStage::Connected {
            warn!(shard = %event.shard_id, stage = %event.new, "the Discord gateway connection was lost; reconnecting");
            self.bridge.alerts().report(
                "gateway",
                format_args!("connection lost (shard {}); reconnecting", event.shard_id),
            );
        }
    }

    async fn message(&self, _ctx: Context, message: Message) {
        if !self.ours(message.guild_id) || message.author.bot || message.webhook_id.is_some() {
            return;
        }
        let roles = message
            .member
            .as_ref()
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        if !self.bridge.is_staff(&roles) {
            return;
        }
        let Some(ticket_id) = self.bridge.ticket_of(message.channel_id).await else {
            return;
        };
        let name = message
            .member
            .as_ref()
            .and_then(|m| m.nick.clone())
            .unwrap_or_else(|| message.author.display_name().to_string());
        let (content, internal) = self.bridge.split_note(&message.content);
        let attachments: Vec<String> = message
            .attachments
            .iter()
            .map(|a| a.url.clone())
            .take(ATTACHMENTS_MAX)
            .collect();
        let content = fill(content, &attachments);
        if content.is_empty() {
            return;
        }
        let actor = Actor {
            id: message.author.id.to_string(),
            name,
            role: UserRole::Agent,
            via: Via::Discord,
        };
        let command = Command::PostMessage {
            message_id: ticket_message_id(message.id.get()),
            content,
            attachments,
            internal,
        };
        self.bridge
            .run(&ticket_id, actor, message.id, command)
            .await;
    }

    async fn message_update(
        &self,
        _ctx: Context,
        _old: Option<Message>,
        _new: Option<Message>,
        event: MessageUpdateEvent,
    ) {
        // An update without content is Discord adding an embed, not an edit.
        let (Some(content), Some(author)) = (event.content.as_deref(), event.author.as_ref())
        else {
            return;
        };
        if !self.ours(event.guild_id) || author.bot {
            return;
        }
        let Some(ticket_id) = self.bridge.ticket_of(event.channel_id).await else {
            return;
        };
        let message_id = ticket_message_id(event.id.get());
        let Some(existing) = self.bridge.known_message(&message_id).await else {
            return;
        };
        let (content, _) = self.bridge.split_note(content);
        let attachments = event.attachments.as_ref().map(|list| {
            list.iter()
                .map(|a| a.url.clone())
                .take(ATTACHMENTS_MAX)
                .collect::<Vec<_>>()
        });
        let content = fill(content, attachments.as_deref().unwrap_or(&[]));
        if content.is_empty() {
            return;
        }
        let actor = Actor {
            id: existing.author_id,
            name: existing.author_name,
            role: UserRole::Agent,
            via: Via::Discord,
        };
        let command = Command::EditMessage {
            message_id,
            content,
            attachments,
        };
        self.bridge.run(&ticket_id, actor, event.id, command).await;
    }

    async fn message_delete(
        &self,
        _ctx: Context,
        channel_id: ChannelId,
        deleted_message_id: MessageId,
        guild_id: Option<GuildId>,
    ) {
        if !self.ours(guild_id) {
            return;
        }
        let Some(ticket_id) = self.bridge.ticket_of(channel_id).await else {
            return;
        };
        let message_id = ticket_message_id(deleted_message_id.get());
        // Copies of customer messages and the bot's notices have no ticket message of this id.
        let Some(existing) = self.bridge.known_message(&message_id).await else {
            return;
        };
        if existing.deleted_at.is_some() {
            return;
        }
        let actor = Actor {
            id: existing.author_id,
            name: existing.author_name,
            role: UserRole::Agent,
            via: Via::Discord,
        };
        let command = Command::DeleteMessage { message_id };
        self.bridge
            .run(&ticket_id, actor, deleted_message_id, command)
            .await;
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        match &interaction {
            Interaction::Command(command) if self.ours(command.guild_id) => {
                self.bridge.on_command(command).await;
            }
            Interaction::Component(button) if self.ours(button.guild_id) => {
                self.bridge.on_button(button).await;
            }
            Interaction::Autocomplete(command) if self.ours(command.guild_id) => {
                self.bridge.on_autocomplete(command).await;
            }
            _ => {}
        }
    }
}

/// Text for a message that has only attachments: the aggregate wants some.
fn fill(content: String, attachments: &[String]) -> String {
    let content: String = content.chars().take(MESSAGE_MAX).collect();
    if content.trim().is_empty() && !attachments.is_empty() {
        "(attachment)".into()
    } else {
        content
    }
}

impl Bridge {
    /// Splits the internal-note prefix off: the text without it, and whether it was there.
    fn split_note(&self, content: &str) -> (String, bool) {
        let prefix = self.config.internal_prefix.as_str();
        match content.strip_prefix(prefix) {
            Some(rest) if !prefix.is_empty() => (rest.trim().to_string(), true),
            _ => (content.trim().to_string(), false),
        }
    }

    /// A ticket message, waiting a little for it to appear (see [`CATCH_UP`]).
    async fn known_message(&self, message_id: &str) -> Option<ticketd_projections::MessageView> {
        for pause in std::iter::once(Duration::ZERO).chain(CATCH_UP) {
            tokio::time::sleep(pause).await;
            match self.state.store.get_message(message_id).await {
                Ok(Some(message)) => return Some(message),
                Ok(None) => {}
                Err(e) => {
                    warn!("cannot look up message {message_id}: {e}");
                    self.alerts()
                        .report("gateway", format_args!("cannot look up a message: {e}"));
                }
            }
        }
        None
    }

    /// Runs a command for a Discord message; a refusal is not retried.
    async fn run(&self, ticket_id: &str, actor: Actor, source: MessageId, command: Command) {
        let context = CommandContext {
            actor,
            correlation_id: format!("discord:{source}"),
            idempotency: None,
        };
        if let Err(e) = self
            .state
            .executor
            .execute(ticket_id, &context, &[command])
            .await
        {
            // A message has no reply to carry the refusal: it is logged where it needs to be.
            self.refuse(Door::Message, ticket_id, &e);
        }
    }
}
