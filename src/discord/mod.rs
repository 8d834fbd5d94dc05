//! The Discord bridge: the support team works in a Discord guild. Two halves share one
//! [`Bridge`]: the [`projector`] follows the global event stream from a durable checkpoint and
//! turns tickets into channels and customer messages into Discord messages; the [`gateway`]
//! handler turns what staff do in those channels (messages, slash commands, buttons) into
//! commands, which come back through the stream like any other door's ([`refusal`] is the one
//! answer when one does not go through). What an event means in Discord is planned purely in
//! `ticketd_projections::discord`, as the socket fan-out is. Beside them, [`removal`] removes
//! closed tickets' channels once their grace period has passed, across restarts, and every
//! failure either half logs also goes to `ERROR_BOT_WEBHOOK_URL` ([`crate::alerts`]).
//!
//! `DISCORD_API_URL` points the HTTP client (and so the gateway URL it fetches) at another
//! Discord-compatible endpoint. serenity's rate limiter ignores that setting, so it is switched off
//! there and [`retry`] does the waiting; against Discord itself serenity's own limiter stays on.

pub mod gateway;
pub mod helpdesk;
pub mod lease;
pub mod nonce;
pub mod projector;
pub mod refusal;
pub mod removal;
pub mod retry;
pub mod search;
pub mod slash;

use crate::alerts::Reporter;
use crate::app::AppState;
use crate::config::DiscordConfig;
use serenity::all::{
    ChannelId, ClientBuilder, GatewayIntents, GuildId, Http, HttpBuilder, PermissionOverwrite,
    PermissionOverwriteType, Permissions, RoleId, ShardManager, UserId,
};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use thiserror::Error;
use ticketd_events::{IssueLevel, SupportRole};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// The projector's checkpoint name.
pub const CHECKPOINT: &str = "discord";

/// Link kinds kept in [`crate::store::Links`].
pub mod link {
    /// Ticket id → its channel id.
    pub const TICKET_CHANNEL: &str = "discord.ticket_channel";
    /// Channel id → its ticket id.
    pub const CHANNEL_TICKET: &str = "discord.channel_ticket";
    /// Event id → the Discord message posted for it (opening message, copies, notices).
    pub const EVENT_MESSAGE: &str = "discord.event_message";
    /// Ticket message id → the Discord copy of it.
    pub const MESSAGE: &str = "discord.message";
    /// Discord message id → the key (event id, `transcript:<event id>`) it was posted for: a post
    /// found while looking for an unrecorded one is taken only if no other key claims it.
    pub const POSTED_FOR: &str = "discord.posted_for";
    /// The closed tickets' channels still to remove (one record; see `removal`).
    pub const PENDING_REMOVALS: &str = "discord.pending_removals";
}

/// Why the bridge could not start.
#[derive(Debug, Error)]
pub enum DiscordError {
    /// Discord (or the endpoint `DISCORD_API_URL` names) did not answer as it should.
    #[error("cannot reach Discord at {endpoint}: {cause}")]
    Unreachable {
        /// Where we asked.
        endpoint: String,
        /// What went wrong.
        cause: String,
    },
    /// serenity refused to build the client.
    #[error("cannot start the Discord client: {0}")]
    Client(String),
}

/// What the two halves share.
pub struct Bridge {
    /// Commands, the store and the settings.
    pub state: AppState,
    /// The bridge's settings (the same as `state.config.discord`).
    pub config: DiscordConfig,
    /// serenity's HTTP client, pointed at `DISCORD_API_URL` when set.
    pub http: Arc<Http>,
    /// The bot's own user: its messages are echoed back by the gateway and must be ignored, and
    /// it needs its own overwrite to see the channels it hides from everyone.
    pub bot_id: UserId,
    /// Closed tickets' channels waiting for their grace period to pass.
    pub removals: removal::Removals,
    /// Set by the projector while applying an event that an earlier attempt may have posted
    /// longer ago than Discord remembers nonces: look for that post before posting.
    pub recheck: AtomicBool,
}

/// A running bridge; [`Running::stop`] stops the projector and closes the gateway connection.
/// Dropping it aborts both tasks too, without waiting for the shards to close.
pub struct Running {
    /// Stops the shards.
    shards: Arc<ShardManager>,
    /// The projector's, the channel remover's and the gateway client's tasks.
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the projector at once, then closes the gateway connection (waiting at most a few
    /// seconds for the shards) and ends the client's task.
    pub async fn stop(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let shards = Arc::clone(&self.shards);
        if tokio::time::timeout(Duration::from_secs(5), shards.shutdown_all())
            .await
            .is_err()
        {
            warn!("the Discord gateway did not close within 5 s");
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the bridge: checks that Discord answers (a configured `DISCORD_API_URL` that does not
/// is a start-up error, since serenity would silently fall back to Discord's real gateway), then
/// runs the projector and the gateway client as tasks that [`Running`] owns.
pub async fn start(state: AppState) -> Result<Running, DiscordError> {
    let Some(config) = state.config.discord.clone() else {
        return Err(DiscordError::Client(
            "the Discord bridge is not configured".into(),
        ));
    };
    let token = String::from_utf8_lossy(config.bot_token.expose()).into_owned();
    let http = build_http(&token, config.api_url.as_deref());
    let endpoint = config
        .api_url
        .clone()
        .unwrap_or_else(|| "Discord's API".into());
    let unreachable = |cause: String| DiscordError::Unreachable {
        endpoint: endpoint.clone(),
        cause,
    };
    let gateway = http
        .get_gateway()
        .await
        .map_err(|e| unreachable(format!("GET /gateway: {e}")))?;
    let me = http
        .get_current_user()
        .await
        .map_err(|e| unreachable(format!("GET /users/@me: {e}")))?;
    info!(gateway = %gateway.url, bot = %me.name, "Discord answers");
    let bridge = Arc::new(Bridge {
        state,
        config,
        http: Arc::new(http),
        bot_id: me.id,
        removals: removal::Removals::default(),
        recheck: AtomicBool::new(true),
    });

    let intents =
        GatewayIntents::GUILDS | GatewayIntents::GUILD_MESSAGES | GatewayIntents::MESSAGE_CONTENT;
    // The client gets its own Http (the builder takes one by value) with the same settings.
    let mut client = ClientBuilder::new_with_http(
        build_http(&token, bridge.config.api_url.as_deref()),
        intents,
    )
    .event_handler(gateway::Handler::new(Arc::clone(&bridge)))
    .await
    .map_err(|e| DiscordError::Client(e.to_string()))?;
    // The tasks start with no await between them and `Running`, so a caller that drops this
    // future (a lease deadline passing) never leaves one of them behind.
    let projector = tokio::spawn(projector::run(Arc::clone(&bridge)));
    let removals = tokio::spawn(removal::run(Arc::clone(&bridge)));
    let shards = Arc::clone(&client.shard_manager);
    let alerts = bridge.alerts().clone();
    let gateway = tokio::spawn(async move {
        // serenity reconnects and resumes by itself; this returns only on a fatal error (a bad
        // token, intents not enabled) or on shutdown.
        if let Err(e) = client.start().await {
            error!("the Discord gateway client stopped: {e}");
            alerts.report("gateway", format_args!("the gateway client stopped: {e}"));
        }
    });
    Ok(Running {
        shards,
        tasks: vec![projector, removals, gateway],
    })
}

/// serenity's HTTP client; with a proxy, its rate limiter is off (it would talk to Discord
/// itself) and [`retry`] handles 429s.
fn build_http(token: &str, api_url: Option<&str>) -> Http {
    match api_url {
        Some(url) => HttpBuilder::new(token)
            .proxy(url)
            .ratelimiter_disabled(true)
            .build(),
        None => HttpBuilder::new(token).build(),
    }
}

impl Bridge {
    /// Where the bridge's errors are reported (`ERROR_BOT_WEBHOOK_URL`).
    pub fn alerts(&self) -> &Reporter {
        &self.state.alerts.bridge
    }

    /// Where Discord calls report their failures and count their retries ([`retry`]).
    pub fn retrying(&self) -> (&Reporter, &prometheus_client::metrics::counter::Counter) {
        (
            &self.state.alerts.bridge,
            &self.state.metrics.discord_retries,
        )
    }

    /// The guild.
    pub fn guild(&self) -> GuildId {
        GuildId::new(self.config.guild_id)
    }

    /// The category a ticket of `level` lives in, if configured.
    pub fn category(&self, level: IssueLevel) -> Option<ChannelId> {
        let index = IssueLevel::ALL.iter().position(|l| *l == level)?;
        self.config.category_ids[index].map(ChannelId::new)
    }

    /// The configured Discord roles that may see a ticket of `role`: its own and every one above.
    pub fn roles_for(&self, role: SupportRole) -> Vec<RoleId> {
        let from = SupportRole::ALL
            .iter()
            .position(|r| *r == role)
            .unwrap_or(0);
        self.config.role_ids[from..]
            .iter()
            .flatten()
            .map(|id| RoleId::new(*id))
            .collect()
    }

    /// Whether a member with `roles` is staff: holds any of the configured support roles.
    pub fn is_staff(&self, roles: &[RoleId]) -> bool {
        roles
            .iter()
            .any(|r| self.config.role_ids.contains(&Some(r.get())))
    }

    /// A ticket channel's overwrites: hidden from `@everyone` (whose role id is the guild id),
    /// open to the bot and to the roles that may see a ticket of `role`.
    pub fn overwrites(&self, role: SupportRole) -> Vec<PermissionOverwrite> {
        let member = Permissions::VIEW_CHANNEL
            | Permissions::SEND_MESSAGES
            | Permissions::READ_MESSAGE_HISTORY
            | Permissions::ATTACH_FILES
            | Permissions::EMBED_LINKS
            | Permissions::USE_APPLICATION_COMMANDS;
        let mut overwrites = vec![
            PermissionOverwrite {
                allow: Permissions::empty(),
                deny: Permissions::VIEW_CHANNEL,
                kind: PermissionOverwriteType::Role(RoleId::new(self.config.guild_id)),
            },
            PermissionOverwrite {
                allow: member | Permissions::MANAGE_MESSAGES | Permissions::MANAGE_CHANNELS,
                deny: Permissions::empty(),
                kind: PermissionOverwriteType::Member(self.bot_id),
            },
        ];
        overwrites.extend(
            self.roles_for(role)
                .into_iter()
                .map(|id| PermissionOverwrite {
                    allow: member,
                    deny: Permissions::empty(),
                    kind: PermissionOverwriteType::Role(id),
                }),
        );
        overwrites
    }

    /// The ticket a channel belongs to, if it is a ticket channel.
    pub async fn ticket_of(&self, channel: ChannelId) -> Option<String> {
        use crate::store::Links;
        match self
            .state
            .store
            .load_link(link::CHANNEL_TICKET, &channel.to_string())
            .await
        {
            Ok(ticket) => ticket,
            Err(e) => {
                warn!(%channel, "cannot look up the channel's ticket: {e}");
                self.alerts().report(
                    "gateway",
                    format_args!("cannot look up a channel's ticket: {e}"),
                );
                None
            }
        }
    }
}

/// Now, in epoch milliseconds, as events record time.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The Discord epoch (2015-01-01) in Unix milliseconds; snowflakes count from it.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// The ticket message id a Discord message becomes: a UUID v7 carrying the snowflake's time and
/// its low bits, so the same Discord message always maps to the same ticket message. That makes
/// posting idempotent (the aggregate ignores a known id) and lets edits and deletes find their
/// message without a stored link.
pub fn ticket_message_id(discord_message_id: u64) -> String {
    let millis = (discord_message_id >> 22) + DISCORD_EPOCH_MS;
    let low = (discord_message_id & 0x3F_FFFF).to_be_bytes();
    let mut tail = [0u8; 10];
    tail[7..].copy_from_slice(&low[5..]);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_message_ids_map_to_stable_distinct_v7_ids() {
        let a = ticket_message_id(1_234_567_890_123_456_789);
        assert_eq!(a, ticket_message_id(1_234_567_890_123_456_789));
        assert_ne!(a, ticket_message_id(1_234_567_890_123_456_790));
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
    }
}
