//! Logging: readable lines in development, JSON lines in production, level from `RUST_LOG`
//! (default `info`). Whatever `RUST_LOG` asks, the libraries that print what crosses the wire
//! (WebSocket frames, Socket.IO packets and handshakes, HTTP requests, Discord gateway payloads,
//! database commands) log at `info` at most: at `debug` and `trace` they print tokens and bot
//! credentials, which must never reach a log.

use crate::config::LogFormat;
use tracing::Metadata;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Targets (and their sub-modules) that print payloads, request lines or headers below `info`.
/// `log` records from libraries on the `log` crate arrive with their module path as target.
const PAYLOAD_TARGETS: [&str; 13] = [
    "engineioxide",
    "socketioxide",
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "serenity",
    "mongodb",
    "rustls",
    "tower_http",
    "axum",
];

/// Whether an event or span may be logged: anything of ours, and a payload-printing library's
/// only at `info` or above.
pub fn allowed(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= LevelFilter::INFO || !prints_payloads(metadata.target())
}

fn prints_payloads(target: &str) -> bool {
    PAYLOAD_TARGETS.iter().any(|crate_name| {
        target
            .strip_prefix(crate_name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only when a person is watching: a file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let redact = FilterFn::new(allowed);
    let registry = tracing_subscriber::registry().with(filter).with(redact);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(ansi),
            )
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::prints_payloads;

    #[test]
    fn payload_printing_libraries_are_matched_by_crate_not_by_prefix() {
        for target in [
            "tungstenite",
            "tungstenite::protocol::frame",
            "socketioxide::client",
            "engineioxide::transport::ws",
            "serenity::gateway::shard",
            "hyper_util::server",
        ] {
            assert!(prints_payloads(target), "{target}");
        }
        for target in ["ticketd", "ticketd::socket", "hyperion", "serenity_like"] {
            assert!(!prints_payloads(target), "{target}");
        }
    }
}
