//! The support team's `/search <words>` (issue 17 part 1, ADR 0024): the same search as
//! `GET /api/v1/search` with staff visibility, answered to the member alone (ephemeral) with a
//! link to each matching ticket's channel. The answer names tickets by their topics, which are
//! customer text: mentions in it never ping (no allowed mentions) and markdown is escaped.

use super::Bridge;
use super::link;
use crate::search::{SearchRequest, search, text};
use crate::store::{Links, TicketFilter};
use serenity::all::{
    CommandDataOptionValue, CommandInteraction, CommandOptionType, CreateAllowedMentions,
    CreateCommand, CreateCommandOption, CreateInteractionResponse,
    CreateInteractionResponseMessage,
};
use tracing::warn;

/// The names this module answers.
pub const COMMANDS: [&str; 1] = ["search"];

/// Hits listed in one answer.
const HITS: usize = 10;

/// Its registration.
pub fn registrations() -> Vec<CreateCommand> {
    vec![
        CreateCommand::new("search")
            .description("Find tickets by words of their topic, description or messages")
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "words", "What to find")
                    .required(true)
                    .max_length(crate::http::search::Q_MAX as u16),
            ),
    ]
}

impl Bridge {
    /// Runs `/search`; `false` if the command is not one of [`COMMANDS`].
    pub async fn on_search_command(&self, interaction: &CommandInteraction) -> bool {
        if interaction.data.name != "search" {
            return false;
        }
        let text = self.search_answer(interaction).await;
        let message = CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(true)
            .allowed_mentions(CreateAllowedMentions::new());
        let response = CreateInteractionResponse::Message(message);
        if let Err(e) = interaction.create_response(&self.http, response).await {
            warn!("cannot answer an interaction: {e}");
            self.alerts()
                .report("slash", format_args!("cannot answer an interaction: {e}"));
        }
        true
    }

    async fn search_answer(&self, interaction: &CommandInteraction) -> String {
        let roles = interaction
            .member
            .as_ref()
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        if !self.is_staff(&roles) {
            return "Sorry, only the support team can do that.".into();
        }
        let words = interaction
            .data
            .options
            .iter()
            .find(|o| o.name == "words")
            .and_then(|o| match &o.value {
                CommandDataOptionValue::String(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let terms = text::query_terms(&words);
        if terms.is_empty() || terms.len() > crate::search::MAX_WORDS {
            return format!(
                "Give 1 to {} words of letters or digits.",
                crate::search::MAX_WORDS
            );
        }
        if !self.state.store.search_index() {
            return "Search is turned off on this server (SEARCH_INDEX=off).".into();
        }
        let request = SearchRequest {
            terms,
            filter: TicketFilter::default(),
            staff: true,
            cursor: None,
            limit: HITS,
        };
        let found = match search(&self.state.store, &request).await {
            Ok(found) => found,
            Err(e) => {
                warn!("search from Discord failed: {e}");
                return "Search is not available right now; try again in a moment.".into();
            }
        };
        if found.hits.is_empty() {
            return "No ticket matches every word.".into();
        }
        let mut lines = Vec::new();
        for hit in &found.hits {
            let ticket = &hit.ticket;
            let channel = self
                .state
                .store
                .load_link(link::TICKET_CHANNEL, &ticket.id)
                .await
                .ok()
                .flatten();
            let place = channel.map_or_else(|| "(no channel)".to_string(), |c| format!("<#{c}>"));
            lines.push(format!(
                "{place} {} · {}",
                escape(&ticket.topic),
                ticket.status.as_str()
            ));
        }
        if found.more {
            lines.push(format!("…more than {HITS}: add a word to narrow it down."));
        }
        lines.join("\n")
    }
}

/// Customer text inside a Discord message: markdown and mention syntax shown as typed.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().take(100) {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '@' | '#' | '[' | ']'
        ) {
            out.push('\\');
        }
        out.push(if c == '\n' { ' ' } else { c });
    }
    out
}
