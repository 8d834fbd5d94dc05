//! Removing a closed ticket's channel after `DISCORD_CHANNEL_GRACE_SECS`, durably. An in-memory
//! timer would forget the channel when ticketd restarts inside the grace period, so the
//! projector records each pending removal (ticket, channel, when) in the links store before its
//! checkpoint moves past the close, and [`run`] — started with the bridge, so on every start-up
//! too — removes the channels whose time has come. A removal forgets the channel's links and
//! then its record, so it happens once; a crash between the two repeats only a deletion that
//! Discord answers with 404.
//!
//! The links store has no listing, so the pending removals live in one record
//! ([`link::PENDING_REMOVALS`]); it holds only the tickets closed within the grace period.

use super::retry::until_done;
use super::{Bridge, link, now_ms};
use crate::store::{Links, ReadModels};
use serde::{Deserialize, Serialize};
use serenity::all::ChannelId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use ticketd_events::{StoreError, TicketStatus};
use tokio::sync::{Mutex, Notify};
use tracing::{info, warn};

/// The key of the one record under [`link::PENDING_REMOVALS`].
const KEY: &str = "all";
/// How long [`run`] sleeps when nothing is pending (a new removal wakes it sooner).
const IDLE: Duration = Duration::from_secs(3600);

/// One channel waiting to be removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Due {
    /// The channel id.
    channel: String,
    /// When it goes, in epoch milliseconds: the close's time plus the grace period.
    at: i64,
}

/// Pending removals by ticket id.
type Pending = BTreeMap<String, Due>;

/// What the projector and [`run`] share about removals.
#[derive(Default)]
pub struct Removals {
    /// Serialises the read-modify-write of the pending record.
    lock: Mutex<()>,
    /// Wakes [`run`] when a removal is recorded.
    wake: Notify,
}

impl Bridge {
    /// Records that `ticket`'s `channel` goes at `at` (epoch ms), replacing an earlier record
    /// for the ticket (a ticket closed, reopened and closed again goes after its last close).
    pub(super) async fn schedule_removal(
        &self,
        ticket: &str,
        channel: ChannelId,
        at: i64,
    ) -> Result<(), StoreError> {
        let _guard = self.removals.lock.lock().await;
        let mut pending = self.pending().await?;
        let due = Due {
            channel: channel.to_string(),
            at,
        };
        if pending.get(ticket) != Some(&due) {
            pending.insert(ticket.to_string(), due);
            self.keep_pending(&pending).await?;
        }
        self.removals.wake.notify_one();
        Ok(())
    }

    async fn pending(&self) -> Result<Pending, StoreError> {
        let record = self
            .state
            .store
            .load_link(link::PENDING_REMOVALS, KEY)
            .await?;
        Ok(match record {
            None => Pending::new(),
            Some(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
                // Unreadable means written by a future version or damaged; starting afresh
                // leaves some channels in place, which staff can delete by hand.
                warn!("the pending channel removals cannot be read ({e}); forgetting them");
                Pending::new()
            }),
        })
    }

    async fn keep_pending(&self, pending: &Pending) -> Result<(), StoreError> {
        let json = (!pending.is_empty())
            .then(|| serde_json::to_string(pending).unwrap_or_else(|_| "{}".into()));
        self.state
            .store
            .save_link(link::PENDING_REMOVALS, KEY, json.as_deref())
            .await
    }

    /// Removes `ticket`'s channel if the ticket is still closed and the channel still its own,
    /// then forgets the channel's links.
    async fn remove(&self, ticket: &str, due: &Due) -> Result<(), StoreError> {
        let closed = self
            .state
            .store
            .get_ticket(ticket)
            .await?
            .is_some_and(|t| t.status == TicketStatus::Closed);
        let linked = self
            .state
            .store
            .load_link(link::TICKET_CHANNEL, ticket)
            .await?;
        if !closed || linked.as_deref() != Some(due.channel.as_str()) {
            return Ok(());
        }
        let channel = ChannelId::new(due.channel.parse().unwrap_or(1));
        let _ = until_done(self.retrying(), "remove a closed ticket's channel", || {
            channel.delete(&self.http)
        })
        .await;
        self.state
            .store
            .save_link(link::TICKET_CHANNEL, ticket, None)
            .await?;
        self.state
            .store
            .save_link(link::CHANNEL_TICKET, &due.channel, None)
            .await?;
        info!(%ticket, %channel, "removed the closed ticket's channel");
        Ok(())
    }

    /// Forgets `ticket`'s record if it is still `due` (not replaced by a later close).
    async fn done(&self, ticket: &str, due: &Due) -> Result<(), StoreError> {
        let _guard = self.removals.lock.lock().await;
        let mut pending = self.pending().await?;
        if pending.get(ticket) == Some(due) {
            pending.remove(ticket);
            self.keep_pending(&pending).await?;
        }
        Ok(())
    }
}

/// Removes channels as their time comes, until the task is aborted.
pub async fn run(bridge: Arc<Bridge>) {
    loop {
        let next = match sweep(&bridge).await {
            Ok(next) => next,
            Err(e) => {
                warn!("cannot remove closed tickets' channels: {e}; retrying");
                bridge
                    .alerts()
                    .report("discord", format_args!("channel removal: {e}; retrying"));
                Some(now_ms() + 1000)
            }
        };
        let wait = next.map_or(IDLE, |at| {
            Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = bridge.removals.wake.notified() => {}
        }
    }
}

/// Removes every channel due now; returns when the next one is due.
async fn sweep(bridge: &Bridge) -> Result<Option<i64>, StoreError> {
    let pending = bridge.pending().await?;
    let now = now_ms();
    let mut next = None::<i64>;
    for (ticket, due) in &pending {
        if due.at > now {
            next = Some(next.map_or(due.at, |n| n.min(due.at)));
            continue;
        }
        bridge.remove(ticket, due).await?;
        bridge.done(ticket, due).await?;
    }
    Ok(next)
}
