//! ticketd, the server: configuration, the command executor, the stores (embedded SQLite and
//! MongoDB), and the doors onto one event stream: the REST API, Socket.IO and the Discord
//! bridge, with the followers (the socket broadcaster, the bridge) reading the log. `main` is a
//! thin command line over [`run`], which tests call too; the auditing commands live in
//! [`audit`], moving a store's history in [`transfer`].

pub mod alerts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod autoclose;
pub mod cli;
pub mod commands;
pub mod config;
pub mod discord;
pub mod hs256;
pub mod http;
pub mod metrics;
pub mod people;
pub mod rate_limit;
pub mod search;
pub mod serve;
pub mod sla;
pub mod socket;
pub mod store;
pub mod telemetry;
pub mod ticket_rules;
pub mod transfer;
pub mod webhooks;

use crate::app::AppState;
use crate::config::Config;
use crate::store::{EmbeddedOptions, EmbeddedStore, MongoStore, Store};
use std::future::Future;
use thiserror::Error;
use ticketd_events::StoreError;
use tracing::info;

/// Why the server stopped with an error.
#[derive(Debug, Error)]
pub enum RunError {
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// Serving failed.
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The Discord bridge is configured but cannot start.
    #[error(transparent)]
    Discord(#[from] discord::DiscordError),
}

/// Opens the store the configuration asks for: MongoDB when `MONGO_URI` is set, else the
/// embedded file under `DATA_DIR`.
pub async fn open_store(config: &Config) -> Result<Store, StoreError> {
    if let Some(uri) = &config.mongo_uri {
        let store = MongoStore::connect_with_sla(uri, &config.db_name, config.sla.clone()).await?;
        info!(database = %config.db_name, "events are kept in MongoDB");
        return Ok(store.into());
    }
    let options = EmbeddedOptions {
        synchronous_full: config.sqlite_synchronous_full,
        sla: config.sla.clone(),
        ..EmbeddedOptions::default()
    };
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&data_dir, options))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
    Ok(store.into())
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests,
/// flushes the store's writer and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    config.log_summary();
    let store = open_store(&config).await?;
    store.set_search_index(config.search_index);
    let state = AppState::new(config, store.clone());
    let (socket_layer, io) = socket::layer(state.clone());
    state.spawn(socket::broadcaster::run(
        store.clone(),
        io.clone(),
        state.broadcast_cursor.clone(),
        state.config.sla.clone(),
    ));
    // On MongoDB several instances may share the database: the bridge runs only on the one
    // holding the lease. The embedded store has one instance per DATA_DIR, so it runs here.
    let (stop_discord, discord_stopped) = tokio::sync::watch::channel(false);
    let mut supervisor = None;
    let discord = match (&state.config.discord, &store) {
        (Some(_), Store::Mongo(mongo)) => {
            let holder = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7());
            let lease = mongo.lease(discord::lease::LEASE, &holder, discord::lease::TTL);
            supervisor = Some(tokio::spawn(discord::lease::supervise(
                state.clone(),
                lease,
                discord_stopped,
            )));
            None
        }
        (Some(_), Store::Embedded(_)) => match discord::start(state.clone()).await {
            Ok(running) => Some(running),
            Err(e) => {
                state.stop_background();
                store.shutdown().await;
                return Err(e.into());
            }
        },
        (None, _) => None,
    };
    // Partner webhooks: like the bridge, one deliverer per database.
    let (stop_webhooks, webhooks_stopped) = tokio::sync::watch::channel(false);
    let mut webhook_supervisor = None;
    if let Some(webhook) = &state.config.webhook {
        let webhook = std::sync::Arc::new(webhook.clone());
        match &store {
            Store::Mongo(mongo) => {
                let holder = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7());
                let lease = mongo.lease(webhooks::lease::LEASE, &holder, webhooks::lease::TTL);
                webhook_supervisor = Some(tokio::spawn(webhooks::lease::supervise(
                    store.clone(),
                    webhook,
                    lease,
                    webhooks_stopped,
                )));
            }
            Store::Embedded(_) => state.spawn(webhooks::deliver::run(store.clone(), webhook)),
        }
    }
    // Auto-close of inactive tickets: on MongoDB under a lease, like the bridge (ADR 0022).
    if state.config.tickets.max_open_per_user > 0 {
        info!(
            max_open_tickets_per_user = state.config.tickets.max_open_per_user,
            "open tickets per user are limited"
        );
    }
    if let Some(rules) = state.config.tickets.auto_close {
        info!(
            after_secs = rules.after.as_secs_f64(),
            warning_secs = rules.warning.as_secs_f64(),
            "inactive tickets close automatically"
        );
        let lease = match &store {
            Store::Mongo(mongo) => {
                let holder = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7());
                Some(mongo.lease(autoclose::LEASE, &holder, autoclose::LEASE_TTL))
            }
            Store::Embedded(_) => None,
        };
        state.spawn(autoclose::run(
            state.clone(),
            rules,
            std::sync::Arc::new(autoclose::SystemClock),
            lease,
        ));
    }
    if state.config.sla.is_enabled() {
        info!("service-level targets are set: missed ones are recorded");
        let lease = match &store {
            Store::Mongo(mongo) => {
                let holder = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7());
                Some(mongo.lease(sla::LEASE, &holder, autoclose::LEASE_TTL))
            }
            Store::Embedded(_) => None,
        };
        state.spawn(sla::run(
            state.clone(),
            state.config.sla.clone(),
            std::sync::Arc::new(autoclose::SystemClock),
            lease,
        ));
    }
    let router = http::router(state.clone(), socket_layer);
    let addr = listener.local_addr()?;
    // An address bound on every interface is not one a browser can open; this machine's is.
    let url = if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    };
    info!(%addr, "serving REST and Socket.IO on {url}, the web console at {url}/");
    let stopping = state.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.begin_shutdown();
    };
    let served = serve::serve(listener, router, state.config.limits, shutdown).await;
    io.close().await;
    if let Some(discord) = discord {
        discord.stop().await;
    }
    let _ = stop_discord.send(true);
    if let Some(supervisor) = supervisor {
        let _ = supervisor.await;
    }
    let _ = stop_webhooks.send(true);
    if let Some(supervisor) = webhook_supervisor {
        let _ = supervisor.await;
    }
    state.stop_background();
    store.shutdown().await;
    info!("stopped: in-flight requests finished, store flushed");
    served.map_err(RunError::from)
}
