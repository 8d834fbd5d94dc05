//! The deliverer: follows the global stream from the webhook checkpoint and POSTs each event to
//! the partner, signed, one at a time and in log order. Only a 2xx moves the checkpoint, so an
//! event is never skipped and at most the one unacknowledged event is sent again after a crash.
//! Anything else is retried on the schedule (or the partner's `Retry-After`); a 410 pauses
//! delivery, persisted, until `ticketd webhooks resume`. Between events, and every second while
//! idle or waiting, it looks at the links the command line writes (pause, replay), so those
//! commands take effect on a running server.

use super::WebhookConfig;
use super::body::Bodies;
use super::schedule::retry_after;
use super::state::{self, Failure, Paused};
use crate::store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ticketd_events::{EventEnvelope, EventStore, StoreError};
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{debug, info, warn};

/// Events read per round trip to the store.
const BATCH: usize = 256;
/// How long one POST may take before it counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the links the command line writes are looked at.
pub const POLL: Duration = Duration::from_secs(1);
/// Most of a partner's answer read (and discarded), so its connection can be kept alive.
const ANSWER_MAX: usize = 64 * 1024;

/// The outcome of delivering one event.
enum Done {
    /// The partner took it.
    Taken,
    /// A replay was asked for meanwhile: start again from its checkpoint.
    Replay,
}

/// One attempt's result.
enum Attempt {
    Taken,
    Gone,
    Failed {
        error: String,
        wait: Option<Duration>,
    },
}

/// Delivers until the task is aborted.
pub async fn run(store: Store, config: Arc<WebhookConfig>) {
    let client = match webhook_client::Client::builder()
        .timeout(TIMEOUT)
        // A redirect would send the signed body somewhere the partner did not configure.
        .redirect(webhook_client::redirect::Policy::none())
        .user_agent(concat!("ticketd-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            warn!(
                "cannot build the partner webhook's HTTP client: {}; webhooks are off",
                e.without_url()
            );
            return;
        }
    };
    let mut deliverer = Deliverer {
        store,
        config,
        client,
        bodies: Bodies::default(),
        next_poll: Instant::now(),
    };
    deliverer.follow().await;
}

struct Deliverer {
    store: Store,
    config: Arc<WebhookConfig>,
    /// Keeps connections to the partner alive between events.
    client: webhook_client::Client,
    /// Each ticket folded as far as delivered, for the bodies.
    bodies: Bodies,
    /// When the command line's links are looked at next.
    next_poll: Instant,
}

impl Deliverer {
    async fn follow(&mut self) {
        let mut after = self.start().await;
        loop {
            if Instant::now() >= self.next_poll {
                self.next_poll = Instant::now() + POLL;
                if let Some(moved) = self.controls(after).await {
                    after = moved;
                }
            }
            let store = self.store.clone();
            let batch = retry_store("read events", || store.read_all(after, BATCH)).await;
            if batch.is_empty() {
                tokio::select! {
                    _ = self.store.wait_beyond(after) => {}
                    _ = sleep_until(self.next_poll) => {}
                }
                continue;
            }
            let mut saved = after;
            for envelope in &batch {
                if !self.config.wants(envelope.event.type_name()) {
                    self.bodies.pass(envelope);
                    after = envelope.position;
                    continue;
                }
                match self.deliver(envelope).await {
                    Done::Taken => {
                        after = envelope.position;
                        let store = self.store.clone();
                        retry_store("save the checkpoint", || {
                            let store = store.clone();
                            async move { state::save_checkpoint(&store, after).await }
                        })
                        .await;
                        saved = after;
                    }
                    Done::Replay => {
                        saved = after;
                        after = self.controls(after).await.unwrap_or(after);
                        break;
                    }
                }
                if Instant::now() >= self.next_poll {
                    break;
                }
            }
            // Filtered events move the checkpoint too, once per batch rather than per event.
            if after > saved {
                let store = self.store.clone();
                retry_store("save the checkpoint", || {
                    let store = store.clone();
                    async move { state::save_checkpoint(&store, after).await }
                })
                .await;
            }
        }
    }

    /// The checkpoint to follow from; the head when webhooks are switched on for the first time
    /// (history only on request: `ticketd webhooks replay --from`).
    async fn start(&mut self) -> u64 {
        let store = self.store.clone();
        let checkpoint = retry_store("load the checkpoint", || {
            let store = store.clone();
            async move { state::checkpoint(&store).await }
        })
        .await;
        let after = match checkpoint {
            Some(after) => after,
            None => {
                let head = retry_store("read the head", || store.head()).await;
                retry_store("save the checkpoint", || {
                    let store = store.clone();
                    async move { state::save_checkpoint(&store, head).await }
                })
                .await;
                info!(
                    position = head,
                    "webhooks switched on: delivering every event after the head; earlier ones only on `ticketd webhooks replay --from`"
                );
                head
            }
        };
        info!(after, "webhook delivery follows the stream");
        after
    }

    /// Carries out what the command line asked: a replay (answers the new checkpoint) and, while
    /// paused, waiting for a resume.
    async fn controls(&mut self, after: u64) -> Option<u64> {
        let store = self.store.clone();
        let request = retry_store("read the replay request", || {
            let store = store.clone();
            async move { state::replay_request(&store).await }
        })
        .await;
        let moved = match request {
            None => None,
            Some(from) => {
                // A replay only goes back: moving forward would skip events never delivered.
                let to = from.saturating_sub(1).min(after);
                retry_store("save the checkpoint", || {
                    let store = store.clone();
                    async move { state::save_checkpoint(&store, to).await }
                })
                .await;
                retry_store("clear the replay request", || {
                    let store = store.clone();
                    async move { state::set_replay_request(&store, None).await }
                })
                .await;
                self.bodies.clear();
                info!(
                    from,
                    was_after = after,
                    "webhook replay: delivering again from position {from}"
                );
                Some(to)
            }
        };
        let paused = retry_store("read the pause", || {
            let store = store.clone();
            async move { state::paused(&store).await }
        })
        .await;
        if let Some(paused) = paused {
            warn!(
                position = paused.position,
                "webhook delivery is paused (the partner answered 410 Gone); `ticketd webhooks resume` resumes it"
            );
            self.wait_for_resume().await;
        }
        moved
    }

    /// Sleeps until the pause is lifted; a replay request is honoured after that.
    async fn wait_for_resume(&mut self) {
        loop {
            sleep(POLL).await;
            let store = self.store.clone();
            let paused = retry_store("read the pause", || {
                let store = store.clone();
                async move { state::paused(&store).await }
            })
            .await;
            if paused.is_none() {
                info!("webhook delivery resumed");
                return;
            }
        }
    }

    /// Delivers one event until the partner takes it, or a replay is asked for.
    async fn deliver(&mut self, envelope: &EventEnvelope) -> Done {
        let store = self.store.clone();
        let body = loop {
            match self.bodies.body(&store, envelope).await {
                Ok(body) => break body,
                Err(e) => {
                    warn!(
                        position = envelope.position,
                        "cannot build a webhook body: {e}; retrying"
                    );
                    sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let mut failures: u32 = 0;
        loop {
            match self.attempt(envelope, &body).await {
                Attempt::Taken => {
                    if failures > 0 {
                        info!(
                            position = envelope.position,
                            attempts = failures + 1,
                            "the partner took the webhook after retries"
                        );
                    } else {
                        debug!(position = envelope.position, "webhook delivered");
                    }
                    return Done::Taken;
                }
                Attempt::Gone => {
                    failures += 1;
                    let now = now_ms();
                    self.record(Failure {
                        at: now,
                        position: envelope.position,
                        attempt: failures,
                        error: "HTTP 410".into(),
                    })
                    .await;
                    let paused = Paused {
                        at: now,
                        position: envelope.position,
                    };
                    retry_store("save the pause", || {
                        let store = store.clone();
                        let paused = paused.clone();
                        async move { state::set_paused(&store, Some(&paused)).await }
                    })
                    .await;
                    warn!(
                        position = envelope.position,
                        "webhook delivery paused: the partner answered 410 Gone; `ticketd webhooks resume` resumes it"
                    );
                    self.wait_for_resume().await;
                    if self.replay_pending().await {
                        return Done::Replay;
                    }
                    failures = 0;
                }
                Attempt::Failed { error, wait } => {
                    failures += 1;
                    let wait = wait.unwrap_or_else(|| self.config.retry_schedule.wait(failures));
                    warn!(
                        position = envelope.position,
                        attempt = failures,
                        error = %error,
                        wait_secs = wait.as_secs_f64(),
                        "the partner did not take the webhook; retrying"
                    );
                    self.record(Failure {
                        at: now_ms(),
                        position: envelope.position,
                        attempt: failures,
                        error,
                    })
                    .await;
                    if self.wait(wait).await {
                        return Done::Replay;
                    }
                }
            }
        }
    }

    /// Waits `wait` before a retry, looking at the command line's links every second; true when
    /// a replay was asked for meanwhile.
    async fn wait(&mut self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        loop {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            sleep((until - now).min(POLL)).await;
            if Instant::now() < until && self.replay_pending().await {
                return true;
            }
        }
    }

    async fn replay_pending(&self) -> bool {
        let store = self.store.clone();
        retry_store("read the replay request", || {
            let store = store.clone();
            async move { state::replay_request(&store).await }
        })
        .await
        .is_some()
    }

    /// Keeps the latest failure for `ticketd webhooks status`; losing one is only a log line.
    async fn record(&self, failure: Failure) {
        if let Err(e) = state::save_failure(&self.store, &failure).await {
            warn!("cannot record the webhook failure: {e}");
        }
    }

    /// One signed POST, with a fresh timestamp.
    async fn attempt(&self, envelope: &EventEnvelope, body: &[u8]) -> Attempt {
        let timestamp = now_ms().div_euclid(1000);
        let signature = self.config.secret.sign(&envelope.event_id, timestamp, body);
        let sent = self
            .client
            .post(self.config.url.expose())
            .header("content-type", "application/json")
            .header("webhook-id", &envelope.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Failed {
                    error: error_kind(&e),
                    wait: None,
                };
            }
        };
        let status = response.status().as_u16();
        let wait = retry_after(
            status,
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        // Read the answer (up to a limit) so the connection can carry the next event.
        let mut read = 0;
        while read < ANSWER_MAX {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        match status {
            200..=299 => Attempt::Taken,
            410 => Attempt::Gone,
            _ => Attempt::Failed {
                error: format!("HTTP {status}"),
                wait,
            },
        }
    }
}

/// What went wrong with a request, in words that never carry the URL.
fn error_kind(e: &webhook_client::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else if e.is_body() || e.is_decode() {
        "the answer broke off".into()
    } else {
        format!("request failed: {}", strip_url(e))
    }
}

fn strip_url(e: &webhook_client::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(cause) = source {
        text = cause.to_string();
        source = cause.source();
    }
    if text.is_empty() {
        "unknown error".into()
    } else {
        text
    }
}

/// Retries a store call until it succeeds: delivery cannot move on without it.
async fn retry_store<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e) => {
                warn!("webhook delivery cannot {what}: {e}; retrying");
                sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
