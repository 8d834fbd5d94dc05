//! The auto-close of inactive tickets (issue 15, ADR 0022): a ticket whose last public message
//! is from staff, unanswered by its customer for `AUTO_CLOSE_AFTER_HOURS`, is closed by the
//! system (reason "inactive"), after a warning posted into it `AUTO_CLOSE_WARNING_HOURS` before.
//!
//! Nothing is kept in memory: each sweep reads the waiting tickets from the read model's
//! countdown index, so a restart loses nothing. Warnings and closes are ordinary commands
//! decided by the Ticket aggregate on the countdown the sweep saw: a customer's reply that lands
//! first makes them decide nothing, and the warning's id is derived from the countdown, so a
//! second sweep (a retry, a restart, another instance) can never post or close twice. On
//! MongoDB only the holder of a lease sweeps, which spares the others the work; correctness
//! does not depend on it. The clock is injected ([`Clock`]), so tests need not wait hours.

use crate::commands::{CommandError, Context, Executor, IdempotencySeed};
use crate::store::mongo::Lease;
use crate::store::{BlockList, Countdowns};
use crate::ticket_rules::AutoClose;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ticketd_events::inactivity::{Due, due, scan_horizon, system_actor};
use ticketd_events::{Command, EventStore, StoreError, TicketError, TicketStatus};
use tracing::{info, warn};

/// Waiting tickets read per sweep at most; the oldest first, so none starves.
const SWEEP_LIMIT: usize = 1_000;
/// The lease's name on MongoDB.
pub const LEASE: &str = "auto-close";
/// How long a take or renewal of the lease holds.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the holder renews: well inside [`LEASE_TTL`].
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// Where the auto-close task reads the time: the wall clock in production, a hand-set one in
/// tests. Epoch milliseconds, as events' `recorded_at` are.
pub trait Clock: Send + Sync + 'static {
    /// Now, epoch ms.
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told; clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn at(now_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(now_ms)))
    }

    /// Sets the time.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Warnings posted.
    pub warned: usize,
    /// Tickets closed.
    pub closed: usize,
}

/// The warning's text: how long the customer has, in words.
pub fn warning_text(rules: &AutoClose) -> String {
    format!(
        "This ticket will be closed automatically in {} unless you reply. If your problem is \
         solved, there is nothing more to do.",
        in_words(rules.warning)
    )
}

fn in_words(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (n, unit) = if secs >= 2 * 3600 {
        (secs / 3600, "hours")
    } else if secs >= 2 * 60 {
        (secs / 60, "minutes")
    } else {
        (secs.max(1), "seconds")
    };
    format!("{n} {unit}")
}

/// Warns and closes whatever is due at `now`. Each ticket is its own command: one that fails
/// is logged and tried again next sweep, the others go on.
pub async fn sweep<S: EventStore + BlockList + Countdowns>(
    executor: &Executor<S>,
    rules: &AutoClose,
    now: i64,
) -> Result<Swept, StoreError> {
    let after = millis(rules.after);
    let warning = millis(rules.warning);
    let waiting = executor
        .store()
        .due_countdowns(scan_horizon(after, warning, now), SWEEP_LIMIT)
        .await?;
    let mut swept = Swept::default();
    for ticket in waiting {
        let Some(countdown) = ticket.countdown else {
            continue;
        };
        if ticket.status != TicketStatus::Open {
            continue;
        }
        let command = match due(countdown.since, countdown.warned_at, after, warning, now) {
            Due::Nothing => continue,
            Due::Warn => Command::WarnInactive {
                message_id: IdempotencySeed::new("system", &ticket.id, &countdown.message_id)
                    .id("auto-close warning"),
                awaiting: countdown.message_id,
                content: warning_text(rules),
            },
            Due::Close => Command::CloseInactive {
                awaiting: countdown.message_id,
            },
        };
        let context = Context {
            actor: system_actor(),
            correlation_id: uuid::Uuid::now_v7().to_string(),
            idempotency: None,
        };
        match executor.execute(&ticket.id, &context, &[command]).await {
            Ok(outcome) if outcome.events.is_empty() => {}
            Ok(outcome) => {
                for envelope in &outcome.events {
                    match envelope.event {
                        ticketd_events::TicketEvent::TicketClosed { .. } => {
                            info!(ticket_id = %ticket.id, "closed an inactive ticket");
                            swept.closed += 1;
                        }
                        _ => {
                            info!(ticket_id = %ticket.id, "warned of an auto-close");
                            swept.warned += 1;
                        }
                    }
                }
            }
            // The read model was a moment behind: the customer answered or the ticket closed.
            Err(CommandError::Rejected(
                TicketError::CountdownMoved | TicketError::TicketClosed,
            )) => {}
            Err(CommandError::Rejected(e)) => {
                warn!(ticket_id = %ticket.id, "auto-close refused: {e}");
            }
            Err(CommandError::Store(e)) => return Err(e),
        }
    }
    Ok(swept)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// How often to sweep: often enough that a close lands within an eighth of the warning's lead
/// of its due time, at most every 30 s, at least every 100 ms.
pub fn tick(rules: &AutoClose) -> Duration {
    (rules.warning / 8).clamp(Duration::from_millis(100), Duration::from_secs(30))
}

/// Sweeps every [`tick`] until the task is aborted; with a `lease` (MongoDB), only while this
/// instance holds it.
pub async fn run(
    state: crate::app::AppState,
    rules: AutoClose,
    clock: Arc<dyn Clock>,
    lease: Option<Lease>,
) {
    let every = tick(&rules);
    let mut held: Option<std::time::Instant> = None;
    let mut renew_at = std::time::Instant::now();
    loop {
        if let Some(lease) = &lease {
            let now = std::time::Instant::now();
            if held.is_none_or(|deadline| now >= deadline || now >= renew_at) {
                let tried = match held {
                    Some(deadline) if now < deadline => lease.renew().await,
                    _ => lease.acquire().await,
                };
                match tried {
                    Ok(Some(deadline)) => {
                        if held.is_none() {
                            info!(lease = LEASE, "this instance closes inactive tickets");
                        }
                        held = Some(deadline);
                        renew_at = std::time::Instant::now() + RENEW_EVERY;
                    }
                    Ok(None) => held = None,
                    Err(e) => warn!(lease = LEASE, "cannot take or renew the lease: {e}"),
                }
            }
        }
        let holding =
            lease.is_none() || held.is_some_and(|deadline| std::time::Instant::now() < deadline);
        if holding && let Err(e) = sweep(&state.executor, &rules, clock.now_ms()).await {
            warn!("auto-close sweep failed, trying again: {e}");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(after_ms: u64, warning_ms: u64) -> AutoClose {
        AutoClose {
            after: Duration::from_millis(after_ms),
            warning: Duration::from_millis(warning_ms),
        }
    }

    #[test]
    fn a_manual_clock_moves_only_when_set_and_clones_share_it() {
        let clock = ManualClock::at(1_000);
        let shared = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        shared.set(5_000);
        assert_eq!(clock.now_ms(), 5_000);
        assert!(
            SystemClock.now_ms() > 1_700_000_000_000,
            "the wall clock is epoch ms"
        );
    }

    #[test]
    fn sweeps_come_often_enough_and_not_too_often() {
        let cases = [
            // (after, warning, tick): an eighth of the warning, within 100 ms..30 s.
            (7_200, 3_600, 450),
            (1_000, 200, 100),
            (72 * 3_600_000, 24 * 3_600_000, 30_000),
        ];
        for (after, warning, tick_ms) in cases {
            assert_eq!(
                tick(&rules(after, warning)),
                Duration::from_millis(tick_ms),
                "{after} {warning}"
            );
        }
    }

    #[test]
    fn the_warning_says_how_long_in_words() {
        let cases = [
            (3_600, "in 3 seconds"),
            (24 * 3_600_000, "in 24 hours"),
            (30 * 60_000, "in 30 minutes"),
            (90_000, "in 90 seconds"),
        ];
        for (warning, words) in cases {
            let text = warning_text(&rules(warning * 2, warning));
            assert!(text.contains(words), "{warning}: {text}");
        }
    }
}
