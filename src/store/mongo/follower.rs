//! Learns about appends made by other instances, so `wait_beyond` wakes for them too. A change
//! stream on the counter document announces each commit within milliseconds; a poll of the
//! counter every [`POLL`] covers a change stream that is down, resuming or not supported.
//! Waking is all it does: readers then read `position > checkpoint` with majority read concern,
//! so a lost notification delays an event by one poll at most and never loses it.

use super::reader;
use super::schema::{Collections, EVENTS_COUNTER};
use bson::doc;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the head is polled, whether or not the change stream is up.
const POLL: Duration = Duration::from_millis(250);
/// How long to wait before opening a failed change stream again.
const REOPEN: Duration = Duration::from_secs(2);

/// Runs until `stop` turns true or its sender is dropped.
pub(super) async fn run(
    collections: Collections,
    head: Arc<watch::Sender<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let publish = |position: u64| {
        head.send_if_modified(|h| {
            let moved = position > *h;
            *h = (*h).max(position);
            moved
        });
    };
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let opened = collections
            .counters
            .watch()
            .pipeline([doc! {"$match": {"documentKey._id": EVENTS_COUNTER}}])
            .full_document(mongodb::options::FullDocumentType::UpdateLookup)
            .await;
        let mut changes = match opened {
            Ok(changes) => Some(changes),
            Err(e) => {
                tracing::debug!("cannot open a change stream on the counter: {e}; polling");
                None
            }
        };
        let reopen_at = tokio::time::Instant::now() + REOPEN;
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
                _ = poll.tick() => {
                    if let Ok(position) = reader::head(&collections).await {
                        publish(position);
                    }
                    if changes.is_none() && tokio::time::Instant::now() >= reopen_at {
                        break;
                    }
                }
                event = next_change(&mut changes) => match event {
                    Some(Ok(event)) => {
                        let position = event
                            .full_document
                            .as_ref()
                            .and_then(|d| d.get_i64("position").ok())
                            .and_then(|p| u64::try_from(p).ok());
                        if let Some(position) = position {
                            publish(position);
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!("the counter's change stream failed: {e}; polling");
                        changes = None;
                    }
                    None => changes = None,
                },
            }
        }
    }
}

type Changes = mongodb::change_stream::ChangeStream<
    mongodb::change_stream::event::ChangeStreamEvent<bson::Document>,
>;

/// The next change, or never when there is no stream.
async fn next_change(
    changes: &mut Option<Changes>,
) -> Option<
    Result<mongodb::change_stream::event::ChangeStreamEvent<bson::Document>, mongodb::error::Error>,
> {
    match changes {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}
