//! The support team's `/reply <name>` and `/block` (issue 15, parts 3 and 4). They act beside
//! the ticket commands of `slash.rs`: `/reply` reads a saved reply and posts it into the
//! channel's ticket as the member's own message; `/block` blocks the channel's ticket owner
//! on their own stream (ADR 0021). Registered and dispatched from [`COMMANDS`], so the two
//! cannot drift, like the ticket commands' table.

use super::Bridge;
use super::refusal::{self, Door};
use crate::commands::Context as CommandContext;
use crate::store::{HelpdeskModels, ReadModels};
use serenity::all::{
    CommandDataOptionValue, CommandInteraction, CommandOptionType, CreateAutocompleteResponse,
    CreateCommand, CreateCommandOption, CreateInteractionResponse,
    CreateInteractionResponseMessage,
};
use ticketd_events::{AccountCommand, Command, UserAccount, UserRole, limits, streams};
use tracing::warn;

/// The names this module answers, in registration order.
pub const COMMANDS: [&str; 2] = ["reply", "block"];

/// Their registrations.
pub fn registrations() -> Vec<CreateCommand> {
    vec![
        CreateCommand::new("reply")
            .description("Post a saved reply into this ticket as your own message")
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "name", "The saved reply")
                    .required(true)
                    .max_length(limits::TAG_MAX as u16)
                    .set_autocomplete(true),
            ),
        CreateCommand::new("block")
            .description(
                "Block this ticket's owner from opening tickets and writing (managers, admins)",
            )
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "reason", "Why")
                    .max_length(limits::BLOCK_REASON_MAX as u16),
            ),
    ]
}

/// Discord shows at most this many suggestions.
const CHOICES_MAX: usize = 25;

fn option(interaction: &CommandInteraction, name: &str) -> Option<String> {
    interaction
        .data
        .options
        .iter()
        .find(|o| o.name == name)
        .and_then(|o| match &o.value {
            CommandDataOptionValue::String(s) => {
                Some(s.trim().to_string()).filter(|s| !s.is_empty())
            }
            _ => None,
        })
}

impl Bridge {
    /// Runs `/reply` or `/block`; `false` if the command is not one of [`COMMANDS`].
    pub async fn on_helpdesk_command(&self, interaction: &CommandInteraction) -> bool {
        let (text, public) = match interaction.data.name.as_str() {
            "reply" => self.reply(interaction).await,
            "block" => (self.block(interaction).await, false),
            _ => return false,
        };
        let message = CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(!public);
        let response = CreateInteractionResponse::Message(message);
        if let Err(e) = interaction.create_response(&self.http, response).await {
            warn!("cannot answer an interaction: {e}");
            self.alerts()
                .report("slash", format_args!("cannot answer an interaction: {e}"));
        }
        true
    }

    /// Suggests the saved replies whose names start with what the member typed.
    pub async fn on_autocomplete(&self, interaction: &CommandInteraction) {
        let typed = interaction
            .data
            .autocomplete()
            .map(|o| o.value.to_ascii_lowercase())
            .unwrap_or_default();
        let roles = interaction.member.as_ref().map(|m| m.roles.as_slice());
        let mut answer = CreateAutocompleteResponse::new();
        // Only the support team learns the names.
        if interaction.data.name == "reply" && self.is_staff(roles.unwrap_or_default()) {
            match self.state.store.list_replies().await {
                Ok(replies) => {
                    for reply in replies
                        .iter()
                        .filter(|r| r.name.starts_with(&typed))
                        .take(CHOICES_MAX)
                    {
                        answer = answer.add_string_choice(&reply.name, &reply.name);
                    }
                }
                Err(e) => warn!("cannot list the saved replies: {e}"),
            }
        }
        let response = CreateInteractionResponse::Autocomplete(answer);
        if let Err(e) = interaction.create_response(&self.http, response).await {
            warn!("cannot answer an autocomplete: {e}");
        }
    }

    /// Posts the saved reply. Its answer is public: the bridge never copies what came from
    /// Discord back into it, so the answer is how the channel shows the reply.
    async fn reply(&self, interaction: &CommandInteraction) -> (String, bool) {
        let roles = interaction
            .member
            .as_ref()
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        if !self.is_staff(&roles) {
            return ("Sorry, only the support team can do that.".into(), false);
        }
        let Some(ticket_id) = self.ticket_of(interaction.channel_id).await else {
            return ("This is not a ticket channel.".into(), false);
        };
        let name = option(interaction, "name")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let replies = match self.state.store.list_replies().await {
            Ok(replies) => replies,
            Err(e) => return (self.refuse(Door::Interaction, &ticket_id, &e.into()), false),
        };
        let Some(reply) = replies.into_iter().find(|r| r.name == name) else {
            return (format!("There is no saved reply named `{name}`."), false);
        };
        let actor = self.staff_actor(&interaction.user, interaction.member.as_deref());
        let author = actor.name.clone();
        let context = CommandContext {
            actor,
            correlation_id: format!("discord:{}", interaction.id),
            idempotency: None,
        };
        // Named after the interaction, so a redelivered interaction posts nothing twice.
        let command = Command::PostMessage {
            message_id: super::ticket_message_id(interaction.id.get()),
            content: reply.content.clone(),
            attachments: Vec::new(),
            internal: false,
        };
        match self
            .state
            .executor
            .execute(&ticket_id, &context, &[command])
            .await
        {
            Ok(_) => (format!("**{author}**: {}", reply.content), true),
            Err(e) => (self.refuse(Door::Interaction, &ticket_id, &e), false),
        }
    }

    /// Blocks the ticket's owner: members with the manager or admin role only, who act with an
    /// admin's authority over blocks.
    async fn block(&self, interaction: &CommandInteraction) -> String {
        let roles = interaction
            .member
            .as_ref()
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        let [_, _, manager, admin] = self.config.role_ids;
        let may = roles
            .iter()
            .any(|r| Some(r.get()) == manager || Some(r.get()) == admin);
        if !may {
            return "Sorry, only managers and admins can block users.".into();
        }
        let Some(ticket_id) = self.ticket_of(interaction.channel_id).await else {
            return "This is not a ticket channel.".into();
        };
        let owner = match self.state.store.get_ticket(&ticket_id).await {
            Ok(Some(ticket)) => ticket.user_id,
            Ok(None) => return refusal::reply(&ticketd_events::TicketError::TicketNotFound.into()),
            Err(e) => return self.refuse(Door::Interaction, &ticket_id, &e.into()),
        };
        let mut actor = self.staff_actor(&interaction.user, interaction.member.as_deref());
        actor.role = UserRole::Admin;
        let context = CommandContext {
            actor,
            correlation_id: format!("discord:{}", interaction.id),
            idempotency: None,
        };
        let command = AccountCommand::Block {
            user_id: owner.clone(),
            reason: option(interaction, "reason"),
        };
        match self
            .state
            .executor
            .execute_on::<UserAccount>(&streams::user(&owner), &context, &command)
            .await
        {
            Ok(_) => format!("Blocked `{owner}`: they can no longer open tickets or write."),
            Err(e) => self.refuse(Door::Interaction, &ticket_id, &e),
        }
    }
}
