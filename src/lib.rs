//! ticketd, the server: configuration, the command executor, the embedded store and the REST API
//! over one event stream. `main` is a thin command line over [`run`], which tests call too.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod http;
pub mod socket;
pub mod store;
pub mod telemetry;

use crate::app::AppState;
use crate::config::Config;
use crate::store::{EmbeddedOptions, EmbeddedStore};
use std::future::Future;
use std::net::SocketAddr;
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
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests,
/// flushes the store's writer and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    config.log_summary();
    let options = EmbeddedOptions {
        synchronous_full: config.sqlite_synchronous_full,
        ..EmbeddedOptions::default()
    };
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&data_dir, options))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
    let state = AppState::new(config, store.clone());
    let (socket_layer, io) = socket::layer(state.clone());
    state.spawn(socket::broadcaster::run(store.clone(), io.clone()));
    let router = http::router(state.clone(), socket_layer);
    let addr = listener.local_addr()?;
    info!(%addr, "serving REST and Socket.IO on http://{addr}");
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    io.close().await;
    state.stop_background();
    store.shutdown().await;
    info!("stopped: in-flight requests finished, store flushed");
    served.map_err(RunError::from)
}
