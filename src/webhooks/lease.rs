//! Delivery under a lease: on MongoDB several instances share the log, and two deliverers would
//! send every event twice and race on the checkpoint. As for the Discord bridge
//! (`crate::discord::lease`), only the holder of [`LEASE`] delivers: it renews every
//! [`RENEW_EVERY`] and stops delivering as soon as a renewal finds the lease gone or its own
//! deadline passes without one; a new holder carries on from the checkpoint. On shutdown the
//! lease is released so another instance takes over at once.

use super::WebhookConfig;
use super::deliver;
use crate::store::Store;
use crate::store::mongo::Lease;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout_at};
use tracing::{info, warn};

/// The lease's name.
pub const LEASE: &str = "webhooks";
/// How long a take or renewal holds.
pub const TTL: Duration = Duration::from_secs(10);
/// How often a holder renews: well inside [`TTL`].
pub const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often an instance without the lease tries to take it.
pub const ACQUIRE_EVERY: Duration = Duration::from_secs(1);

/// Delivers whenever this instance holds `lease`, until `stop` turns true; then stops and
/// releases the lease.
pub async fn supervise(
    store: Store,
    config: Arc<WebhookConfig>,
    lease: Lease,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let deadline = match lease.acquire().await {
            Ok(Some(deadline)) => Instant::from_std(deadline),
            Ok(None) => {
                if wait_or_stop(&mut stop, Instant::now() + ACQUIRE_EVERY).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                warn!(lease = LEASE, "cannot try the lease: {e}");
                if wait_or_stop(&mut stop, Instant::now() + ACQUIRE_EVERY).await {
                    return;
                }
                continue;
            }
        };
        info!(
            lease = LEASE,
            "acquired the lease: this instance delivers the webhooks"
        );
        let delivery = tokio::spawn(deliver::run(store.clone(), Arc::clone(&config)));
        let stopping = hold(&lease, deadline, &mut stop).await;
        // Dropping an attempt in flight is safe: the checkpoint has not moved, so the next
        // holder sends that event again (at least once).
        delivery.abort();
        let _ = delivery.await;
        if stopping {
            if let Err(e) = lease.release().await {
                warn!(lease = LEASE, "cannot release the lease: {e}");
            }
            return;
        }
    }
}

/// Renews the lease until it is lost or `stop` turns true; returns whether it was `stop`.
async fn hold(lease: &Lease, mut deadline: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    let mut next = Instant::now() + RENEW_EVERY;
    loop {
        tokio::select! {
            _ = sleep_until(deadline) => {
                warn!(lease = LEASE, "lost the lease: not renewed in time; stopping webhook delivery");
                return false;
            }
            _ = stop.wait_for(|s| *s) => return true,
            _ = sleep_until(next) => {}
        }
        match timeout_at(deadline, lease.renew()).await {
            Ok(Ok(Some(renewed))) => {
                deadline = Instant::from_std(renewed);
                next = Instant::now() + RENEW_EVERY;
            }
            Ok(Ok(None)) => {
                warn!(
                    lease = LEASE,
                    "lost the lease: another instance holds it; stopping webhook delivery"
                );
                return false;
            }
            Ok(Err(e)) => {
                warn!(lease = LEASE, "cannot renew the lease: {e}");
                next = Instant::now() + ACQUIRE_EVERY;
            }
            Err(_) => {
                warn!(
                    lease = LEASE,
                    "lost the lease: not renewed in time; stopping webhook delivery"
                );
                return false;
            }
        }
    }
}

/// Sleeps until `until`; true when `stop` turned true first.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, until: Instant) -> bool {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => true,
        _ = sleep_until(until) => false,
    }
}
