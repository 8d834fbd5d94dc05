//! The service-level sweeper (issue 17, ADR 0025): when a ticket's first-response or resolution
//! due time passes before it was met, the system appends `SlaBreached`, once per target per due
//! period. Nothing is kept in memory: each sweep reads the tickets with a target pending from
//! the read model's `sla_sweep_at` index, and the Ticket aggregate records a target at most once
//! per period, so a retry, a restart or a second instance never records it twice. On MongoDB
//! only the holder of a lease sweeps, which spares the others the work. The clock is injected.

use crate::autoclose::Clock;
use crate::commands::{CommandError, Context, Executor};
use crate::store::mongo::Lease;
use crate::store::{BlockList, Countdowns};
use std::sync::Arc;
use std::time::Duration;
use ticketd_events::inactivity::system_actor;
use ticketd_events::{Command, EventStore, SlaPolicy, StoreError};
use tracing::{info, warn};

/// Tickets read per sweep at most; the earliest due first, so none starves.
const SWEEP_LIMIT: usize = 1_000;
/// The lease's name on MongoDB.
pub const LEASE: &str = "sla-sweep";

/// Records every target missed by `now`; answers how many were recorded. Each ticket is its
/// own command: one that fails is logged and tried again next sweep.
pub async fn sweep<S: EventStore + BlockList + Countdowns>(
    executor: &Executor<S>,
    policy: &SlaPolicy,
    now: i64,
) -> Result<usize, StoreError> {
    let due = executor.store().due_sla(now, SWEEP_LIMIT).await?;
    let mut recorded = 0;
    for ticket in due {
        let clock = ticket.sla_clock();
        let commands: Vec<Command> = clock
            .unrecorded(policy, now)
            .into_iter()
            .map(|(target, due_at)| Command::RecordSlaBreach { target, due_at })
            .collect();
        if commands.is_empty() {
            continue;
        }
        let context = Context {
            actor: system_actor(),
            correlation_id: uuid::Uuid::now_v7().to_string(),
            idempotency: None,
        };
        match executor.execute(&ticket.id, &context, &commands).await {
            Ok(outcome) => {
                for envelope in &outcome.events {
                    info!(ticket_id = %ticket.id, event = envelope.event.type_name(), "service level missed");
                    recorded += 1;
                }
            }
            Err(CommandError::Rejected(e)) => {
                warn!(ticket_id = %ticket.id, "breach record refused: {e}");
            }
            Err(CommandError::Store(e)) => return Err(e),
        }
    }
    Ok(recorded)
}

/// How often to sweep: an eighth of the shortest target, within 100 ms..30 s, so a breach is
/// recorded soon after its due time.
pub fn tick(policy: &SlaPolicy) -> Duration {
    let shortest = policy
        .first_response
        .values()
        .chain(policy.resolution.values())
        .copied()
        .fold(f64::INFINITY, f64::min);
    let eighth_ms = if shortest.is_finite() {
        shortest * 60_000.0 / 8.0
    } else {
        30_000.0
    };
    Duration::from_millis(eighth_ms.clamp(100.0, 30_000.0) as u64)
}

/// Sweeps every [`tick`] until the task is aborted; with a `lease` (MongoDB), only while this
/// instance holds it.
pub async fn run(
    state: crate::app::AppState,
    policy: SlaPolicy,
    clock: Arc<dyn Clock>,
    lease: Option<Lease>,
) {
    let every = tick(&policy);
    let mut held: Option<std::time::Instant> = None;
    loop {
        if let Some(lease) = &lease {
            let now = std::time::Instant::now();
            let tried = match held {
                Some(deadline) if now < deadline => lease.renew().await,
                _ => lease.acquire().await,
            };
            match tried {
                Ok(deadline) => held = deadline,
                Err(e) => warn!(lease = LEASE, "cannot take or renew the lease: {e}"),
            }
        }
        let holding =
            lease.is_none() || held.is_some_and(|deadline| std::time::Instant::now() < deadline);
        if holding && let Err(e) = sweep(&state.executor, &policy, clock.now_ms()).await {
            warn!("service-level sweep failed, trying again: {e}");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_come_often_enough_and_not_too_often() {
        let policy = |fr: &str| SlaPolicy::parse(Some(fr), None).unwrap();
        assert_eq!(tick(&policy("CRITICAL:0.05")), Duration::from_millis(375));
        assert_eq!(tick(&policy("NORMAL:240")), Duration::from_secs(30));
        assert_eq!(tick(&policy("NORMAL:0.001")), Duration::from_millis(100));
        assert_eq!(tick(&SlaPolicy::default()), Duration::from_secs(30));
    }
}
