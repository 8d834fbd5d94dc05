//! The staff's slash commands and buttons. One table lists each command with its registration and
//! the ticket command it becomes, so what is registered and what is dispatched cannot drift. Only
//! members holding a support role may use them; anyone else gets a polite ephemeral refusal.

use super::Bridge;
use super::refusal::{self, Door};
use crate::commands::Context as CommandContext;
use crate::store::ReadModels;
use serenity::all::{
    CommandDataOption, CommandDataOptionValue, CommandInteraction, CommandOptionType,
    ComponentInteraction, CreateCommand, CreateCommandOption, CreateInteractionResponse,
    CreateInteractionResponseMessage, Http, Member, RoleId,
};
use ticketd_events::{Actor, Command, IssueLevel, SupportRole, TicketError, UserRole, Via, limits};
use ticketd_projections::discord::Button;
use tracing::warn;

/// One slash command: its registration, and the ticket command its options become.
struct Slash {
    /// The command's name.
    name: &'static str,
    /// How it is registered in the guild.
    register: fn() -> CreateCommand,
    /// The ticket command it asks for, given the interaction and who asks, or why the options
    /// do not make one.
    run: fn(&CommandInteraction, &Actor) -> Result<Command, String>,
}

/// Every slash command.
const SLASHES: &[Slash] = &[
    Slash {
        name: "close",
        register: || {
            CreateCommand::new("close")
                .description("Close this ticket")
                .add_option(CreateCommandOption::new(
                    CommandOptionType::String,
                    "reason",
                    "Why (shown in the transcript)",
                ))
        },
        run: |interaction, _| {
            Ok(Command::CloseTicket {
                reason: string_option(&interaction.data.options, "reason"),
            })
        },
    },
    Slash {
        name: "escalate",
        register: || {
            let mut role = CreateCommandOption::new(
                CommandOptionType::String,
                "role",
                "The support team to hand the ticket to",
            )
            .required(true);
            for r in SupportRole::ALL {
                role = role.add_string_choice(r.as_str(), r.as_str());
            }
            CreateCommand::new("escalate")
                .description("Hand this ticket to another support team")
                .add_option(role)
        },
        run: |interaction, _| {
            let to = parse::<SupportRole>(&interaction.data.options, "role")?;
            Ok(Command::ChangeSupportRole { to })
        },
    },
    Slash {
        name: "level",
        register: || {
            let mut level =
                CreateCommandOption::new(CommandOptionType::String, "level", "How urgent it is")
                    .required(true);
            for l in IssueLevel::ALL {
                level = level.add_string_choice(l.as_str(), l.as_str());
            }
            CreateCommand::new("level")
                .description("Set this ticket's issue level")
                .add_option(level)
        },
        run: |interaction, _| {
            let to = parse::<IssueLevel>(&interaction.data.options, "level")?;
            Ok(Command::ChangeIssueLevel { to })
        },
    },
    Slash {
        name: "reopen",
        register: || CreateCommand::new("reopen").description("Reopen this closed ticket"),
        run: |_, _| Ok(Command::ReopenTicket),
    },
    Slash {
        name: "claim",
        register: || CreateCommand::new("claim").description("Hold this ticket yourself"),
        run: |_, actor| Ok(claim(actor)),
    },
    Slash {
        name: "unclaim",
        register: || CreateCommand::new("unclaim").description("Let go of this ticket"),
        run: |_, _| Ok(Command::Unclaim),
    },
    Slash {
        name: "assign",
        register: || {
            CreateCommand::new("assign")
                .description("Hand this ticket to a member of the support team")
                .add_option(
                    CreateCommandOption::new(CommandOptionType::User, "member", "Who holds it now")
                        .required(true),
                )
        },
        run: |interaction, _| {
            let Some(user) = interaction.data.options.iter().find_map(|o| match o.value {
                CommandDataOptionValue::User(user) if o.name == "member" => Some(user),
                _ => None,
            }) else {
                return Err("`member` is required".into());
            };
            let resolved = &interaction.data.resolved;
            let name = resolved
                .members
                .get(&user)
                .and_then(|m| m.nick.clone())
                .or_else(|| {
                    resolved
                        .users
                        .get(&user)
                        .map(|u| u.display_name().to_string())
                });
            Ok(Command::Assign {
                assignee_id: Some(member_id(user)),
                assignee_name: name,
            })
        },
    },
    Slash {
        name: "tag",
        register: || {
            let tag = || {
                CreateCommandOption::new(
                    CommandOptionType::String,
                    "tag",
                    "Letters, digits, - and _",
                )
                .required(true)
                .max_length(limits::TAG_MAX as u16)
            };
            CreateCommand::new("tag")
                .description("Tag this ticket (staff only see tags)")
                .add_option(
                    CreateCommandOption::new(CommandOptionType::SubCommand, "add", "Add a tag")
                        .add_sub_option(tag()),
                )
                .add_option(
                    CreateCommandOption::new(
                        CommandOptionType::SubCommand,
                        "remove",
                        "Remove a tag",
                    )
                    .add_sub_option(tag()),
                )
        },
        run: |interaction, _| {
            let Some((action, options)) =
                interaction
                    .data
                    .options
                    .first()
                    .and_then(|o| match &o.value {
                        CommandDataOptionValue::SubCommand(options) => {
                            Some((o.name.as_str(), options))
                        }
                        _ => None,
                    })
            else {
                return Err("Use `/tag add` or `/tag remove`.".into());
            };
            let tag = string_option(options, "tag").unwrap_or_default();
            if !limits::is_tag(&tag) {
                return Err(format!(
                    "A tag is 1 to {} letters, digits, - or _.",
                    limits::TAG_MAX
                ));
            }
            let tag = tag.to_ascii_lowercase();
            match action {
                "add" => Ok(Command::AddTag { tag }),
                "remove" => Ok(Command::RemoveTag { tag }),
                _ => Err("Use `/tag add` or `/tag remove`.".into()),
            }
        },
    },
];

/// A Discord member's id as ticketd keeps it beside partner user ids.
fn member_id(user: serenity::all::UserId) -> String {
    format!("discord:{user}")
}

/// The command of a member claiming the ticket for themselves.
fn claim(actor: &Actor) -> Command {
    Command::Claim {
        assignee_id: actor.id.clone(),
        assignee_name: actor.name.clone(),
    }
}

/// Every command's registration, for a bulk overwrite in the guild (safe to repeat on READY).
pub fn registrations() -> Vec<CreateCommand> {
    let mut all: Vec<CreateCommand> = SLASHES.iter().map(|s| (s.register)()).collect();
    all.extend(super::helpdesk::registrations());
    all.extend(super::search::registrations());
    all
}

fn string_option(options: &[CommandDataOption], name: &str) -> Option<String> {
    options
        .iter()
        .find(|o| o.name == name)
        .and_then(|o| match &o.value {
            CommandDataOptionValue::String(s) => {
                Some(s.trim().to_string()).filter(|s| !s.is_empty())
            }
            _ => None,
        })
}

fn parse<T: std::str::FromStr>(options: &[CommandDataOption], name: &str) -> Result<T, String> {
    let value = string_option(options, name).ok_or_else(|| format!("`{name}` is required"))?;
    value
        .parse()
        .map_err(|_| format!("`{value}` is not a valid {name}"))
}

impl Bridge {
    /// Whoever acts through a command or button: staff under `discord:<member id>` (the id a
    /// claim records) and their display name; an ADMIN if they hold the admin role, else an
    /// agent.
    pub(super) fn staff_actor(&self, user: &serenity::all::User, member: Option<&Member>) -> Actor {
        let admin = self.config.role_ids[3];
        let is_admin = member.is_some_and(|m| m.roles.iter().any(|r| Some(r.get()) == admin));
        Actor {
            id: member_id(user.id),
            name: member
                .and_then(|m| m.nick.clone())
                .unwrap_or_else(|| user.display_name().to_string()),
            role: if is_admin {
                UserRole::Admin
            } else {
                UserRole::Agent
            },
            via: Via::Discord,
        }
    }
}

impl Bridge {
    /// Runs a slash command.
    pub async fn on_command(&self, interaction: &CommandInteraction) {
        if self.on_helpdesk_command(interaction).await || self.on_search_command(interaction).await
        {
            return;
        }
        let roles = interaction
            .member
            .as_ref()
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        let actor = self.staff_actor(&interaction.user, interaction.member.as_deref());
        let reply = match SLASHES.iter().find(|s| s.name == interaction.data.name) {
            None => "Unknown command.".to_string(),
            Some(slash) => match (slash.run)(interaction, &actor) {
                Err(problem) => problem,
                Ok(command) => {
                    self.act(
                        &roles,
                        interaction.channel_id,
                        actor,
                        interaction.id.to_string(),
                        command,
                    )
                    .await
                }
            },
        };
        respond(self, reply, |http, r| interaction.create_response(http, r)).await;
    }

    /// Runs a button of the opening message.
    pub async fn on_button(&self, interaction: &ComponentInteraction) {
        let roles = interaction
            .member
            .as_ref()
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        let actor = self.staff_actor(&interaction.user, interaction.member.as_ref());
        let command = match Button::parse(&interaction.data.custom_id) {
            Some((Button::Close, _)) => Ok(Command::CloseTicket { reason: None }),
            Some((Button::Claim, _)) => Ok(claim(&actor)),
            Some((Button::Escalate, ticket_id)) => {
                match self.state.store.get_ticket(ticket_id).await {
                    Ok(Some(ticket)) => {
                        let ladder = SupportRole::ALL;
                        let at = ladder.iter().position(|r| *r == ticket.support_role);
                        match at.and_then(|i| ladder.get(i + 1)) {
                            Some(next) => Ok(Command::ChangeSupportRole { to: *next }),
                            None => Err("This ticket is already with the top support team.".into()),
                        }
                    }
                    Ok(None) => Err(refusal::reply(&TicketError::TicketNotFound.into())),
                    Err(e) => Err(self.refuse(Door::Interaction, ticket_id, &e.into())),
                }
            }
            None => Err("Unknown button.".to_string()),
        };
        let reply = match command {
            Err(problem) => problem,
            Ok(command) => {
                self.act(
                    &roles,
                    interaction.channel_id,
                    actor,
                    interaction.id.to_string(),
                    command,
                )
                .await
            }
        };
        respond(self, reply, |http, r| interaction.create_response(http, r)).await;
    }

    /// Checks the member and the channel, runs `command` on the channel's ticket and says how it
    /// went.
    async fn act(
        &self,
        roles: &[RoleId],
        channel: serenity::all::ChannelId,
        actor: Actor,
        correlation_id: String,
        command: Command,
    ) -> String {
        if !self.is_staff(roles) {
            return "Sorry, only the support team can do that.".into();
        }
        let Some(ticket_id) = self.ticket_of(channel).await else {
            return "This is not a ticket channel.".into();
        };
        let context = CommandContext {
            actor,
            correlation_id: format!("discord:{correlation_id}"),
            idempotency: None,
        };
        let done = match &command {
            Command::CloseTicket { .. } => "Ticket closed.",
            Command::ReopenTicket => "Ticket reopened.",
            Command::ChangeSupportRole { .. } => "Ticket handed over.",
            Command::ChangeIssueLevel { .. } => "Issue level changed.",
            Command::Claim { .. } => "You hold this ticket now.",
            Command::Unclaim => "Nobody holds this ticket now.",
            Command::Assign { .. } => "Ticket handed over.",
            Command::AddTag { .. } | Command::RemoveTag { .. } => "Tags updated.",
            _ => "Done.",
        };
        match self
            .state
            .executor
            .execute(&ticket_id, &context, &[command])
            .await
        {
            Ok(_) => done.into(),
            Err(e) => self.refuse(Door::Interaction, &ticket_id, &e),
        }
    }
}

/// Answers an interaction with an ephemeral message (only the member sees it).
async fn respond<'a, F, Fut>(bridge: &'a Bridge, text: String, send: F)
where
    F: FnOnce(&'a Http, CreateInteractionResponse) -> Fut,
    Fut: Future<Output = serenity::Result<()>>,
{
    let response = CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(true),
    );
    if let Err(e) = send(&bridge.http, response).await {
        warn!("cannot answer an interaction: {e}");
        bridge
            .alerts()
            .report("slash", format_args!("cannot answer an interaction: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_command_is_dispatched() {
        let registered: Vec<String> = registrations()
            .iter()
            .map(|c| {
                serde_json::to_value(c).unwrap()["name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let mut dispatched: Vec<&str> = SLASHES.iter().map(|s| s.name).collect();
        dispatched.extend(super::super::helpdesk::COMMANDS);
        dispatched.extend(super::super::search::COMMANDS);
        assert_eq!(registered, dispatched);
    }
}
