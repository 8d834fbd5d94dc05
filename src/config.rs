//! Settings, read once at start-up from the environment (and a `.env` file, loaded by `main`).
//! The API specification's variable names are the contract; a setting left empty switches its part off.
//! Reading goes through a lookup function so tests can configure a server without touching
//! the process environment.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tracing::{info, warn};

/// Shortest secret PRODUCTION accepts, in bytes: HS256 wants at least the hash's length.
pub const MIN_SECRET_BYTES: usize = 32;

/// `SERVER_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    /// Readable logs, generated secret allowed, error details shown.
    Development,
    /// JSON logs by default, a real secret required, internals never shown.
    Production,
}

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The HS256 key; never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }
    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// A URL that holds a token (a Discord webhook's): its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL itself, for the HTTP client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretUrl(redacted)")
    }
}

/// Where the secret came from, so start-up can say how to mint a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// `JWT_SECRET_KEY`.
    Environment,
    /// Generated in DEVELOPMENT and kept in `DATA_DIR/jwt_secret`.
    Generated,
}

/// The Discord bridge's settings; all or nothing.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// `DISCORD_BOT_TOKEN`; never logged.
    pub bot_token: Secret,
    /// `GUILD_ID`.
    pub guild_id: u64,
    /// `TRANSCRIPT_CHANNEL_ID`.
    pub transcript_channel_id: Option<u64>,
    /// `GENERAL_`, `URGENT_`, `CRITICAL_TICKET_CATEGORY_ID`.
    pub category_ids: [Option<u64>; 3],
    /// `SUPPORT_TEAM_ROLE_ID`, `DEVELOPER_ROLE_ID`, `MANAGER_ROLE_ID`, `ADMIN_ROLE_ID`.
    pub role_ids: [Option<u64>; 4],
    /// `DISCORD_API_URL`: another Discord-compatible endpoint (a proxy, or the tests' fake) that
    /// takes the bot's HTTP calls, and so hands out the gateway URL. `None` is Discord itself.
    pub api_url: Option<String>,
    /// `DISCORD_INTERNAL_PREFIX` (`!note`): a staff message starting with it is an internal note.
    pub internal_prefix: String,
    /// `DISCORD_CHANNEL_GRACE_SECS` (300): how long a closed ticket's channel stays before removal.
    pub channel_grace: std::time::Duration,
}

/// How long a connection may take and how many one client may hold (ADR 0015).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `HTTP_HEADER_TIMEOUT_SECS` (10): a new connection must deliver its first request's
    /// headers within this time, and a kept-alive one the rest of a request's headers once
    /// the first byte of it came. Slowloris clients hold a connection no longer than this.
    pub header_timeout: Duration,
    /// `HTTP_KEEPALIVE_TIMEOUT_SECS` (60): how long a kept-alive connection may wait, idle,
    /// for its next request.
    pub keepalive_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT_SECS` (30): a request's body must arrive within this time once its
    /// headers have; past it the answer is 408.
    pub body_timeout: Duration,
    /// `MAX_CONNECTIONS_PER_IP` (512): open connections, WebSockets included, one client
    /// address may hold; `None` (0) is no cap, for benchmarks from one address.
    pub per_address: Option<usize>,
    /// `RESERVED_FILE_DESCRIPTORS` (128): open files kept back from clients for the store,
    /// outgoing connections and logs; clients get the open-file limit less this.
    pub reserved_files: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            per_address: Some(512),
            reserved_files: 128,
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `WEB_SERVER_HOST`: the address `main` binds. `None` (unset) is every interface: IPv6 and
    /// IPv4 where the system allows, else IPv4.
    pub host: Option<IpAddr>,
    /// `WEB_SERVER_PORT` (5000): where `main` binds REST and Socket.IO.
    pub port: u16,
    /// Time-outs and connection caps of the listener.
    pub limits: ConnectionLimits,
    /// `SERVER_MODE` (DEVELOPMENT).
    pub mode: ServerMode,
    /// `DATA_DIR` (`./data`): the embedded store and the generated development secret.
    pub data_dir: PathBuf,
    /// `JWT_SECRET_KEY`, or the generated one in DEVELOPMENT.
    pub jwt_secret: Secret,
    /// Where the secret came from.
    pub secret_source: SecretSource,
    /// `RATE_LIMITS` (on); `off` is for benchmarks only.
    pub rate_limits: bool,
    /// `SEARCH_INDEX` (on); `off` stops keeping the search index and the search route answers
    /// 503 (a benchmark's and operator's knob, ADR 0024; `ticketd replay` rebuilds it).
    pub search_index: bool,
    /// `CORS_ORIGINS`: comma-separated origins allowed to call from a browser; `*` for any.
    pub cors_origins: Vec<String>,
    /// `LOG_FORMAT` (pretty in DEVELOPMENT, json in PRODUCTION).
    pub log_format: LogFormat,
    /// `SOCKET_AUTH_TIMEOUT_SECS` (10): how long a socket may stay unauthorized before it is dropped,
    /// and an Engine.IO session may wait before it sends its Socket.IO CONNECT.
    pub socket_auth_timeout: std::time::Duration,
    /// `SOCKET_RESUME_MAX_EVENTS` (10,000): the most events a resuming socket is replayed; one
    /// further behind gets `resync_required` and re-reads the REST API instead.
    pub socket_resume_max_events: u64,
    /// `SQLITE_SYNCHRONOUS` (FULL): FULL survives a power cut, NORMAL only a crash.
    pub sqlite_synchronous_full: bool,
    /// `MONGO_URI`: when set, events live in MongoDB instead of the embedded file.
    pub mongo_uri: Option<String>,
    /// `DB_NAME` (support_ticket_db).
    pub db_name: String,
    /// The Discord bridge, when `DISCORD_BOT_TOKEN` and `GUILD_ID` are set.
    pub discord: Option<DiscordConfig>,
    /// `ERROR_WEBHOOK_URL`: a Discord webhook that gets server errors (500s, panics); it holds a
    /// token, so it is never logged.
    pub error_webhook_url: Option<SecretUrl>,
    /// `ERROR_BOT_WEBHOOK_URL`: a Discord webhook that gets the Discord bridge's errors.
    pub error_bot_webhook_url: Option<SecretUrl>,
    /// Signed webhooks to a partner backend, when `WEBHOOK_URL` and `WEBHOOK_SECRET` are set.
    pub webhook: Option<crate::webhooks::WebhookConfig>,
    /// The open-ticket limit and the auto-close of inactive tickets.
    pub tickets: crate::ticket_rules::TicketRules,
    /// `METRICS_TOKEN`: the bearer token `/metrics` asks for; unset, `/metrics` is open.
    pub metrics_token: Option<Secret>,
    /// `SLA_FIRST_RESPONSE_MINUTES` and `SLA_RESOLUTION_MINUTES` (`NORMAL:240,URGENT:60`): the
    /// service-level targets per issue level (ADR 0025); empty when neither is set.
    pub sla: ticketd_events::SlaPolicy,
}

/// A setting that cannot be used; start-up stops with this message.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A variable has a value we cannot use.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// The generated development secret could not be kept.
    #[error("cannot keep the development secret in {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let host = get("WEB_SERVER_HOST")
            .map(|v| {
                // `[::1]` as in a URL is accepted too.
                v.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .map_err(|_| {
                        invalid(
                            "WEB_SERVER_HOST",
                            "expected an IP address such as 0.0.0.0, ::, 127.0.0.1 or ::1",
                        )
                    })
            })
            .transpose()?;
        let port = match get("WEB_SERVER_PORT") {
            None => 5000,
            Some(v) => v
                .parse()
                .map_err(|_| invalid("WEB_SERVER_PORT", "expected a port number"))?,
        };
        let defaults = ConnectionLimits::default();
        let secs = |name: &'static str, default: Duration| match get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
                _ => Err(invalid(name, "expected a whole number of seconds above 0")),
            },
        };
        let count = |name: &'static str, default: usize| match get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| invalid(name, "expected a whole number (0 or more)")),
        };
        let limits = ConnectionLimits {
            header_timeout: secs("HTTP_HEADER_TIMEOUT_SECS", defaults.header_timeout)?,
            keepalive_timeout: secs("HTTP_KEEPALIVE_TIMEOUT_SECS", defaults.keepalive_timeout)?,
            body_timeout: secs("HTTP_BODY_TIMEOUT_SECS", defaults.body_timeout)?,
            per_address: match count("MAX_CONNECTIONS_PER_IP", defaults.per_address.unwrap_or(0))? {
                0 => None,
                n => Some(n),
            },
            reserved_files: count("RESERVED_FILE_DESCRIPTORS", defaults.reserved_files)?,
        };
        let mode = match get("SERVER_MODE")
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("DEVELOPMENT") => ServerMode::Development,
            Some("PRODUCTION") => ServerMode::Production,
            Some(_) => return Err(invalid("SERVER_MODE", "expected PRODUCTION or DEVELOPMENT")),
        };
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let (jwt_secret, secret_source) = match get("JWT_SECRET_KEY") {
            Some(key) if mode == ServerMode::Production && key.len() < MIN_SECRET_BYTES => {
                return Err(invalid(
                    "JWT_SECRET_KEY",
                    format!("must be at least {MIN_SECRET_BYTES} bytes in PRODUCTION"),
                ));
            }
            Some(key) => (Secret::new(key), SecretSource::Environment),
            None if mode == ServerMode::Production => {
                return Err(invalid("JWT_SECRET_KEY", "is required in PRODUCTION"));
            }
            None => (development_secret(&data_dir)?, SecretSource::Generated),
        };
        let rate_limits = match get("RATE_LIMITS")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("on") | Some("true") | Some("1") => true,
            Some("off") | Some("false") | Some("0") => false,
            Some(_) => return Err(invalid("RATE_LIMITS", "expected on or off")),
        };
        let search_index = match get("SEARCH_INDEX")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("on") | Some("true") | Some("1") => true,
            Some("off") | Some("false") | Some("0") => false,
            Some(_) => return Err(invalid("SEARCH_INDEX", "expected on or off")),
        };
        let cors_origins = get("CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().to_string())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let log_format = match get("LOG_FORMAT")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None if mode == ServerMode::Production => LogFormat::Json,
            None | Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(invalid("LOG_FORMAT", "expected pretty or json")),
        };
        let socket_auth_timeout = match get("SOCKET_AUTH_TIMEOUT_SECS") {
            None => std::time::Duration::from_secs(10),
            Some(v) => match v.parse::<u64>() {
                Ok(secs) if secs > 0 => std::time::Duration::from_secs(secs),
                _ => {
                    return Err(invalid(
                        "SOCKET_AUTH_TIMEOUT_SECS",
                        "expected a whole number of seconds above 0",
                    ));
                }
            },
        };
        let socket_resume_max_events = match get("SOCKET_RESUME_MAX_EVENTS") {
            None => 10_000,
            Some(v) => v.parse::<u64>().map_err(|_| {
                invalid(
                    "SOCKET_RESUME_MAX_EVENTS",
                    "expected a whole number of events (0: never replay, always resync)",
                )
            })?,
        };
        let sqlite_synchronous_full = match get("SQLITE_SYNCHRONOUS")
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("FULL") => true,
            Some("NORMAL") => false,
            Some(_) => return Err(invalid("SQLITE_SYNCHRONOUS", "expected FULL or NORMAL")),
        };
        let id = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            get(name)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| invalid(name, "expected a Discord id (digits)"))
                })
                .transpose()
        };
        // Every Discord setting is checked whether or not the bridge is on, so a typo is found
        // the day it is made rather than the day the bridge is switched on.
        let guild_id = id("GUILD_ID")?;
        let transcript_channel_id = id("TRANSCRIPT_CHANNEL_ID")?;
        let category_ids = [
            id("GENERAL_TICKET_CATEGORY_ID")?,
            id("URGENT_TICKET_CATEGORY_ID")?,
            id("CRITICAL_TICKET_CATEGORY_ID")?,
        ];
        let role_ids = [
            id("SUPPORT_TEAM_ROLE_ID")?,
            id("DEVELOPER_ROLE_ID")?,
            id("MANAGER_ROLE_ID")?,
            id("ADMIN_ROLE_ID")?,
        ];
        let api_url = match get("DISCORD_API_URL") {
            None => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_string())
            }
            Some(_) => {
                return Err(invalid("DISCORD_API_URL", "expected an http(s) URL"));
            }
        };
        let channel_grace = match get("DISCORD_CHANNEL_GRACE_SECS") {
            None => std::time::Duration::from_secs(300),
            Some(v) => std::time::Duration::from_secs(v.parse().map_err(|_| {
                invalid(
                    "DISCORD_CHANNEL_GRACE_SECS",
                    "expected a whole number of seconds",
                )
            })?),
        };
        let discord = match (get("DISCORD_BOT_TOKEN"), guild_id) {
            (Some(token), Some(guild_id)) => Some(DiscordConfig {
                bot_token: Secret::new(token),
                guild_id,
                transcript_channel_id,
                category_ids,
                role_ids,
                api_url,
                internal_prefix: get("DISCORD_INTERNAL_PREFIX").unwrap_or_else(|| "!note".into()),
                channel_grace,
            }),
            (Some(_), None) => {
                return Err(invalid(
                    "GUILD_ID",
                    "is required when DISCORD_BOT_TOKEN is set (or unset both: no bridge)",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "DISCORD_BOT_TOKEN",
                    "is required when GUILD_ID is set (or unset both: no bridge)",
                ));
            }
            (None, None) => None,
        };
        Ok(Config {
            host,
            port,
            limits,
            mode,
            data_dir,
            jwt_secret,
            secret_source,
            rate_limits,
            search_index,
            cors_origins,
            log_format,
            socket_auth_timeout,
            socket_resume_max_events,
            sqlite_synchronous_full,
            mongo_uri: get("MONGO_URI"),
            db_name: get("DB_NAME").unwrap_or_else(|| "support_ticket_db".into()),
            discord,
            error_webhook_url: webhook_url(get("ERROR_WEBHOOK_URL"), "ERROR_WEBHOOK_URL")?,
            error_bot_webhook_url: webhook_url(
                get("ERROR_BOT_WEBHOOK_URL"),
                "ERROR_BOT_WEBHOOK_URL",
            )?,
            webhook: crate::webhooks::WebhookConfig::from_lookup(&get)?,
            tickets: crate::ticket_rules::TicketRules::from_lookup(&get)?,
            metrics_token: get("METRICS_TOKEN").map(Secret::new),
            sla: ticketd_events::SlaPolicy {
                first_response: sla_targets(&get, "SLA_FIRST_RESPONSE_MINUTES")?,
                resolution: sla_targets(&get, "SLA_RESOLUTION_MINUTES")?,
            },
        })
    }

    /// Says once, at start-up, which optional parts are off and why.
    pub fn log_summary(&self) {
        info!(port = self.port, mode = ?self.mode, data_dir = %self.data_dir.display(), "configuration read");
        let limits = &self.limits;
        info!(
            header_timeout_secs = limits.header_timeout.as_secs(),
            keepalive_timeout_secs = limits.keepalive_timeout.as_secs(),
            body_timeout_secs = limits.body_timeout.as_secs(),
            max_connections_per_ip = limits.per_address.unwrap_or(0),
            reserved_file_descriptors = limits.reserved_files,
            "connection limits"
        );
        if limits.per_address.is_none() {
            warn!(
                "MAX_CONNECTIONS_PER_IP=0: one client address may open any number of connections (benchmarks only)"
            );
        }
        if self.secret_source == SecretSource::Generated {
            warn!(
                "JWT_SECRET_KEY is not set: using a generated development secret kept in {}; mint a token with `cargo run --release -- token --id u1 --username ann --email ann@example.com --role CUSTOMER`",
                self.data_dir.join(SECRET_FILE).display()
            );
        }
        if self.mongo_uri.is_some() {
            info!(
                db_name = %self.db_name,
                "MONGO_URI is set: events, read models and checkpoints are kept in MongoDB (DATA_DIR holds only the development secret)"
            );
        } else {
            info!("MONGO_URI is not set: events are kept in the embedded store");
        }
        match &self.discord {
            None => info!("DISCORD_BOT_TOKEN or GUILD_ID is not set: the Discord bridge is off"),
            Some(discord) => {
                info!(guild_id = discord.guild_id, "the Discord bridge is on");
                if let Some(url) = &discord.api_url {
                    warn!("DISCORD_API_URL is set: the bot talks to {url} instead of Discord");
                }
                if discord.category_ids.iter().any(Option::is_none) {
                    warn!(
                        "a *_TICKET_CATEGORY_ID is not set: tickets of that level get channels outside any category"
                    );
                }
                if discord.role_ids.iter().all(Option::is_none) {
                    warn!(
                        "no support role id is set: ticket channels are visible to nobody but the bot and admins, and nobody may use the staff commands"
                    );
                }
            }
        }
        // The URLs hold the webhooks' tokens: say whether they are set, never what they are.
        match self.error_webhook_url {
            Some(_) => info!(
                "ERROR_WEBHOOK_URL is set: server errors (500s, panics) are reported there, at most one message every 2 s"
            ),
            None => info!("ERROR_WEBHOOK_URL is not set: server errors are only logged"),
        }
        match self.error_bot_webhook_url {
            Some(_) => info!(
                "ERROR_BOT_WEBHOOK_URL is set: Discord bridge errors are reported there, at most one message every 2 s"
            ),
            None => {
                info!("ERROR_BOT_WEBHOOK_URL is not set: Discord bridge errors are only logged")
            }
        }
        // Like the error webhooks': whether it is on, never the URL or the secret.
        match &self.webhook {
            Some(webhook) => info!(
                events = %webhook.events_summary(),
                "WEBHOOK_URL is set: events are delivered to the partner backend, signed"
            ),
            None => info!("WEBHOOK_URL is not set: partner webhooks are off"),
        }
        if !self.rate_limits {
            warn!("RATE_LIMITS=off: rate limits are disabled (benchmarks only)");
        }
        if !self.search_index {
            warn!("SEARCH_INDEX=off: the search index is not kept and /search answers 503");
        }
    }
}

/// A webhook URL must be http(s); the error never repeats the value, which holds a token.
fn webhook_url(
    value: Option<String>,
    name: &'static str,
) -> Result<Option<SecretUrl>, ConfigError> {
    match value {
        Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => Err(invalid(
            name,
            "expected a Discord webhook URL (https://discord.com/api/webhooks/…)",
        )),
        other => Ok(other.map(SecretUrl)),
    }
}

/// The development secret's file name inside `DATA_DIR`.
pub const SECRET_FILE: &str = "jwt_secret";

/// Reads the secret generated on an earlier start, or makes and keeps a new one, so tokens
/// minted in development stay valid across restarts.
fn development_secret(data_dir: &Path) -> Result<Secret, ConfigError> {
    let path = data_dir.join(SECRET_FILE);
    let keep = |source| ConfigError::SecretFile {
        path: path.clone(),
        source,
    };
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= MIN_SECRET_BYTES {
            return Ok(Secret::new(existing));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(keep)?;
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, &secret).map_err(keep)?;
    restrict_permissions(&path).map_err(keep)?;
    Ok(Secret::new(secret))
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// One service-level variable: `LEVEL:MINUTES` pairs, decimals allowed.
fn sla_targets(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<ticketd_events::service_level::LevelTargets, ConfigError> {
    ticketd_events::service_level::parse_targets(&get(name).unwrap_or_default()).map_err(|e| {
        invalid(
            name,
            format!("{e}; expected e.g. NORMAL:240,URGENT:60,CRITICAL:15 (minutes)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn production_refuses_a_missing_or_short_secret() {
        let err = config(&[("SERVER_MODE", "PRODUCTION")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "JWT_SECRET_KEY",
                ..
            }
        ));
        let err =
            config(&[("SERVER_MODE", "PRODUCTION"), ("JWT_SECRET_KEY", "short")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "JWT_SECRET_KEY",
                ..
            }
        ));
        let key = "k".repeat(32);
        let ok = config(&[("SERVER_MODE", "PRODUCTION"), ("JWT_SECRET_KEY", &key)]).unwrap();
        assert_eq!(ok.log_format, LogFormat::Json);
    }

    #[test]
    fn development_generates_and_keeps_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();
        let first = config(&[("DATA_DIR", data)]).unwrap();
        let second = config(&[("DATA_DIR", data)]).unwrap();
        assert_eq!(first.secret_source, SecretSource::Generated);
        assert_eq!(first.jwt_secret.expose(), second.jwt_secret.expose());
        assert!(first.jwt_secret.expose().len() >= MIN_SECRET_BYTES);
        assert!(
            !format!("{first:?}").contains(std::str::from_utf8(first.jwt_secret.expose()).unwrap())
        );
    }

    #[test]
    fn defaults_and_bad_values() {
        let c = config(&[("JWT_SECRET_KEY", "dev")]).unwrap();
        assert_eq!(
            (c.port, c.rate_limits, c.db_name.as_str()),
            (5000, true, "support_ticket_db")
        );
        assert!(c.discord.is_none() && c.mongo_uri.is_none());
        assert!(config(&[("JWT_SECRET_KEY", "dev"), ("WEB_SERVER_PORT", "http")]).is_err());
        assert!(config(&[("JWT_SECRET_KEY", "dev"), ("RATE_LIMITS", "maybe")]).is_err());
        assert!(config(&[("JWT_SECRET_KEY", "dev"), ("GUILD_ID", "abc")]).is_err());
        let c = config(&[
            ("JWT_SECRET_KEY", "dev"),
            ("RATE_LIMITS", "off"),
            ("CORS_ORIGINS", "http://a, http://b"),
        ])
        .unwrap();
        assert!(!c.rate_limits);
        assert_eq!(c.cors_origins, ["http://a", "http://b"]);
    }

    #[test]
    fn listener_settings() {
        let c = config(&[("JWT_SECRET_KEY", "dev")]).unwrap();
        assert_eq!(c.host, None);
        assert_eq!(c.limits, ConnectionLimits::default());
        let c = config(&[
            ("JWT_SECRET_KEY", "dev"),
            ("WEB_SERVER_HOST", "[::1]"),
            ("HTTP_HEADER_TIMEOUT_SECS", "2"),
            ("MAX_CONNECTIONS_PER_IP", "0"),
        ])
        .unwrap();
        assert_eq!(c.host, Some("::1".parse().unwrap()));
        assert_eq!(c.limits.header_timeout, Duration::from_secs(2));
        assert_eq!(c.limits.per_address, None);
        for (name, bad) in [
            ("WEB_SERVER_HOST", "localhost"),
            ("HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("HTTP_BODY_TIMEOUT_SECS", "1.5"),
            ("HTTP_KEEPALIVE_TIMEOUT_SECS", "-1"),
            ("MAX_CONNECTIONS_PER_IP", "many"),
            ("RESERVED_FILE_DESCRIPTORS", "-5"),
        ] {
            let err = config(&[("JWT_SECRET_KEY", "dev"), (name, bad)]).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
                "{name}={bad}: {err}"
            );
        }
    }

    #[test]
    fn the_partner_webhook_stays_out_of_debug_output() {
        let c = config(&[
            ("JWT_SECRET_KEY", "dev"),
            ("WEBHOOK_URL", "https://partner.example/hooks/tok-0a1b2c3d"),
            ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            (
                "ERROR_WEBHOOK_URL",
                "https://discord.example/api/webhooks/1/errtok-5e6f",
            ),
            (
                "ERROR_BOT_WEBHOOK_URL",
                "https://discord.example/api/webhooks/2/bottok-7a8b",
            ),
        ])
        .unwrap();
        assert!(c.webhook.is_some() && c.error_webhook_url.is_some());
        let debug = format!("{c:?}");
        for secret in ["tok-0a1b2c3d", "MfKQ9r8", "errtok-5e6f", "bottok-7a8b"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn discord_settings_are_checked_while_the_bridge_is_off() {
        for (name, bad) in [
            ("TRANSCRIPT_CHANNEL_ID", "abc"),
            ("URGENT_TICKET_CATEGORY_ID", "12x"),
            ("ADMIN_ROLE_ID", "-1"),
            ("DISCORD_API_URL", "ftp://x"),
            ("DISCORD_CHANNEL_GRACE_SECS", "soon"),
        ] {
            let err = config(&[("JWT_SECRET_KEY", "dev"), (name, bad)]).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { name: n, .. } if n == name),
                "{name}={bad}: {err}"
            );
        }
        let half = config(&[("JWT_SECRET_KEY", "dev"), ("DISCORD_BOT_TOKEN", "t")]).unwrap_err();
        assert!(matches!(
            half,
            ConfigError::Invalid {
                name: "GUILD_ID",
                ..
            }
        ));
        let half = config(&[("JWT_SECRET_KEY", "dev"), ("GUILD_ID", "1")]).unwrap_err();
        assert!(matches!(
            half,
            ConfigError::Invalid {
                name: "DISCORD_BOT_TOKEN",
                ..
            }
        ));
        let off = config(&[("JWT_SECRET_KEY", "dev"), ("TRANSCRIPT_CHANNEL_ID", "42")]).unwrap();
        assert!(
            off.discord.is_none(),
            "a good id alone does not switch the bridge on"
        );
    }
}
