//! The application state every handler shares: configuration, the store, the command executor,
//! the token verifier, the rate limiters and the error webhooks. Cheap to clone (one `Arc`), no
//! globals.

use crate::alerts::Alerts;
use crate::auth::Verifier;
use crate::commands::Executor;
use crate::config::Config;
use crate::rate_limit::RateLimits;
use crate::store::Store;
use std::ops::Deref;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Shared state; derefs to [`Inner`].
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What the state holds.
pub struct Inner {
    /// Settings read at start-up.
    pub config: Config,
    /// Reads go straight to the store's read models.
    pub store: Store,
    /// Writes go through commands.
    pub executor: Executor<Store>,
    /// Checks bearer tokens with the precomputed key.
    pub verifier: Verifier,
    /// Per-user, per-route quotas.
    pub limits: RateLimits,
    /// Error webhooks: server errors and Discord bridge errors.
    pub alerts: Alerts,
    /// What `/metrics` shows.
    pub metrics: crate::metrics::Metrics,
    /// How many sockets have a deadline pending (a token's expiry or the anonymous timeout):
    /// the size of the deadline task's book, kept by that task and shown by `/readyz`.
    pub socket_deadlines: Arc<AtomicUsize>,
    /// Names of the people seen acting, for tickets handed to someone by id.
    pub people: crate::people::People,
    /// How far the Socket.IO broadcaster has got: where resuming sockets join the live stream.
    pub broadcast_cursor: Arc<crate::socket::resume::Cursor>,
    /// Turns true when the server starts shutting down: long polls answer at once.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Background tasks to stop on shutdown.
    background: Mutex<Vec<JoinHandle<()>>>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state and starts its background housekeeping.
    pub fn new(config: Config, store: impl Into<Store>) -> Self {
        let store = store.into();
        let (alerts, deliveries) = Alerts::new(&config);
        let limits = RateLimits::new(config.rate_limits);
        let metrics = crate::metrics::Metrics::new(store.metrics(), &limits, &alerts);
        let state = AppState(Arc::new(Inner {
            verifier: Verifier::new(&config.jwt_secret),
            limits,
            executor: Executor::new(store.clone()),
            alerts,
            metrics,
            socket_deadlines: Arc::new(AtomicUsize::new(0)),
            broadcast_cursor: Arc::default(),
            people: crate::people::People::default(),
            stopping: tokio::sync::watch::Sender::new(false),
            store,
            config,
            background: Mutex::new(Vec::new()),
        }));
        for delivery in deliveries {
            state.spawn(delivery);
        }
        let limits = state.clone();
        state.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                limits.limits.forget_idle();
            }
        });
        state
    }

    /// Runs `task` until [`AppState::stop_background`].
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
    }

    /// Says the server is shutting down, to requests that wait (long polls).
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Turns true once the server is shutting down.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Stops every background task.
    pub fn stop_background(&self) {
        for handle in self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            handle.abort();
        }
    }
}
