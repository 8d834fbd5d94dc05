//! What delivery keeps in the store, as links of kind [`KIND`], so that it survives a restart,
//! moves with `ticketd export`, and can be read and changed by `ticketd webhooks …` while
//! servers run, on either store:
//!
//! - `checkpoint`: the position of the last event the partner took (absent: webhooks were never
//!   switched on, and delivery starts at the head). Only the deliverer writes it.
//! - `paused`: present while a 410 holds delivery; `ticketd webhooks resume` removes it.
//! - `replay`: a pending `ticketd webhooks replay --from`; the deliverer moves its checkpoint and
//!   removes it, so the checkpoint keeps a single writer.
//! - `last_failure`: the latest failed attempt: when, which event, and the status code or error
//!   kind; never the URL or the secret.

use crate::store::Links;
use serde::{Deserialize, Serialize};
use ticketd_events::StoreError;

/// The links' kind.
pub const KIND: &str = "webhook";
const CHECKPOINT: &str = "checkpoint";
const PAUSED: &str = "paused";
const REPLAY: &str = "replay";
const LAST_FAILURE: &str = "last_failure";

/// Why and since when delivery is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    /// When the 410 came, epoch ms.
    pub at: i64,
    /// The event it refused; delivered first after a resume.
    pub position: u64,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// When, epoch ms.
    pub at: i64,
    /// The event being delivered.
    pub position: u64,
    /// Which attempt at it failed (1 for the first).
    pub attempt: u32,
    /// `HTTP 500`, `timeout`, `connection refused`, …
    pub error: String,
}

fn parse<T: for<'de> Deserialize<'de>>(key: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Unavailable(format!(
            "the webhook link {key} is unreadable ({e}): {text:?}"
        ))
    })
}

fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The last position the partner took; `None` before webhooks were first switched on.
pub async fn checkpoint(store: &impl Links) -> Result<Option<u64>, StoreError> {
    match store.load_link(KIND, CHECKPOINT).await? {
        None => Ok(None),
        Some(text) => parse(CHECKPOINT, &text).map(Some),
    }
}

/// Records that the partner took everything up to `position`. Once per delivered event, so it
/// does not wait for the disk: surviving a killed process is what keeps a crash from sending
/// more than the unacknowledged event again; a power cut may send a few acknowledged ones again,
/// which at-least-once delivery allows.
pub async fn save_checkpoint(store: &impl Links, position: u64) -> Result<(), StoreError> {
    store
        .save_link_relaxed(KIND, CHECKPOINT, Some(&position.to_string()))
        .await
}

/// Whether a 410 paused delivery.
pub async fn paused(store: &impl Links) -> Result<Option<Paused>, StoreError> {
    match store.load_link(KIND, PAUSED).await? {
        None => Ok(None),
        Some(text) => parse(PAUSED, &text).map(Some),
    }
}

/// Pauses delivery (`Some`) or lets it go on (`None`).
pub async fn set_paused(store: &impl Links, paused: Option<&Paused>) -> Result<(), StoreError> {
    let text = paused.map(encode);
    store.save_link(KIND, PAUSED, text.as_deref()).await
}

/// A pending replay: the position to deliver from.
pub async fn replay_request(store: &impl Links) -> Result<Option<u64>, StoreError> {
    match store.load_link(KIND, REPLAY).await? {
        None => Ok(None),
        Some(text) => parse(REPLAY, &text).map(Some),
    }
}

/// Asks for a replay from `from` (`Some`), or marks it done (`None`).
pub async fn set_replay_request(store: &impl Links, from: Option<u64>) -> Result<(), StoreError> {
    let text = from.map(|p| p.to_string());
    store.save_link(KIND, REPLAY, text.as_deref()).await
}

/// The latest failed attempt, if any ever failed.
pub async fn last_failure(store: &impl Links) -> Result<Option<Failure>, StoreError> {
    match store.load_link(KIND, LAST_FAILURE).await? {
        None => Ok(None),
        Some(text) => parse(LAST_FAILURE, &text).map(Some),
    }
}

/// Records a failed attempt.
pub async fn save_failure(store: &impl Links, failure: &Failure) -> Result<(), StoreError> {
    store
        .save_link(KIND, LAST_FAILURE, Some(&encode(failure)))
        .await
}
