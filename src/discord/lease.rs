//! The bridge under a lease: on MongoDB several instances share one database, but only one may
//! run the Discord bridge (two projectors would open every channel twice, two gateway handlers
//! would post every staff message twice). [`supervise`] tries to take the lease
//! [`LEASE`] about every [`ACQUIRE_EVERY`], starts the bridge once it holds it, renews it every
//! [`RENEW_EVERY`] and stops the bridge as soon as a renewal finds the lease gone or the lease's
//! own deadline passes without one, then goes back to trying. On shutdown it stops the bridge and
//! releases the lease, so another instance takes over at once rather than after [`TTL`].

use super::start;
use crate::app::AppState;
use crate::store::mongo::Lease;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};
use tracing::{error, info, warn};

/// The lease's name.
pub const LEASE: &str = "discord";
/// How long a take or renewal holds.
pub const TTL: Duration = Duration::from_secs(10);
/// How often a holder renews: well inside [`TTL`], so two renewals may fail before it expires.
pub const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often an instance without the lease tries to take it.
pub const ACQUIRE_EVERY: Duration = Duration::from_secs(1);
/// How long a holder whose bridge could not start (Discord not answering) waits, with the lease
/// released, before trying again.
pub const START_RETRY: Duration = Duration::from_secs(5);

/// Runs the bridge whenever this instance holds `lease`, until `stop` turns true; then stops the
/// bridge and releases the lease.
pub async fn supervise(state: AppState, lease: Lease, mut stop: watch::Receiver<bool>) {
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
            "acquired the lease: this instance runs the Discord bridge"
        );
        let running = match timeout_at(deadline, start(state.clone())).await {
            Ok(Ok(running)) => running,
            Ok(Err(e)) => {
                error!("the Discord bridge cannot start: {e}");
                give_up(&lease).await;
                if wait_or_stop(&mut stop, Instant::now() + START_RETRY).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                warn!(
                    lease = LEASE,
                    "lost the lease: the bridge took too long to start"
                );
                continue;
            }
        };
        let stopping = hold(&lease, deadline, &mut stop).await;
        running.stop().await;
        if stopping {
            give_up(&lease).await;
            return;
        }
    }
}

/// Renews the lease until it is lost (logging that) or `stop` turns true; returns whether it
/// was `stop`. The bridge keeps running meanwhile, and must stop as soon as this returns.
async fn hold(lease: &Lease, mut deadline: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    let mut next = Instant::now() + RENEW_EVERY;
    loop {
        tokio::select! {
            _ = sleep_until(deadline) => {
                warn!(lease = LEASE, "lost the lease: not renewed in time; stopping the Discord bridge");
                return false;
            }
            _ = stopped(stop) => return true,
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
                    "lost the lease: another instance holds it; stopping the Discord bridge"
                );
                return false;
            }
            // Try again soon; the deadline above still stops the bridge in time.
            Ok(Err(e)) => {
                warn!(lease = LEASE, "cannot renew the lease: {e}");
                next = Instant::now() + ACQUIRE_EVERY;
            }
            Err(_) => {
                warn!(
                    lease = LEASE,
                    "lost the lease: not renewed in time; stopping the Discord bridge"
                );
                return false;
            }
        }
    }
}

/// Releases the lease so another instance need not wait for it to expire.
async fn give_up(lease: &Lease) {
    if let Err(e) = lease.release().await {
        warn!(lease = LEASE, "cannot release the lease: {e}");
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps until `until`; true when `stop` turned true first.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, until: Instant) -> bool {
    tokio::select! {
        _ = stopped(stop) => true,
        _ = sleep(until.saturating_duration_since(Instant::now())) => false,
    }
}
