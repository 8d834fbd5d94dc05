//! For auditors, from the command line: a ticket's timeline (`ticketd audit`), rebuilding the
//! read models from the events (`ticketd replay`) and checking that nothing stored was altered
//! (`ticketd verify`). All three work on either store: the SQLite file under `DATA_DIR`, or the
//! MongoDB database `DB_NAME` when `MONGO_URI` is set. The checks and the timeline are written
//! once over [`AuditSource`]; only reading and rebuilding are the stores' own. `audit` and
//! `verify` only read (one snapshot, so they may run beside serving servers); `replay` writes
//! and needs every server stopped. The HTTP side of auditing (events, `as_of`) is
//! `crate::http::history`.

pub mod replay;
pub mod timeline;
pub mod verify;

use crate::store::audit_source::AuditSource;
use crate::store::embedded::audit::AuditReader;
use crate::store::mongo::audit::MongoAudit;
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::pin::pin;
use std::process::ExitCode;
use std::task::{Context, Poll, Waker};
use ticketd_events::{EventEnvelope, StoreError};

/// Exit status when the store is damaged.
const DAMAGED: u8 = 1;
/// Exit status when the store cannot be read or written at all.
const UNUSABLE: u8 = 2;

/// The store an auditing command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The SQLite file in this data directory.
    Embedded(PathBuf),
    /// A MongoDB database.
    Mongo {
        /// `MONGO_URI`.
        uri: String,
        /// `DB_NAME`.
        db: String,
    },
}

/// Runs a future that never waits. The embedded [`AuditSource`] answers every call
/// synchronously, so the shared async checks run on it without a runtime (and from inside one,
/// where starting another would panic). A future that does wait is a bug, reported as an error.
pub(crate) fn ready_now<F: Future>(future: F) -> Result<F::Output, StoreError> {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => Err(StoreError::Unavailable(
            "internal error: a synchronous audit read waited".into(),
        )),
    }
}

/// Runs `work` on a fresh single-threaded runtime (MongoDB needs one; the commands have none).
fn on_runtime<T>(work: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Unavailable(format!("cannot start the runtime: {e}")))?
        .block_on(work)
}

/// One ticket's events, and where they were read from.
async fn ticket_events<S: AuditSource>(
    source: &mut S,
    ticket_id: &str,
) -> Result<(Vec<EventEnvelope>, String), StoreError> {
    let events = source
        .stream(ticket_id)
        .await?
        .into_iter()
        .map(|raw| raw.into_envelope())
        .collect::<Result<Vec<_>, _>>()?;
    Ok((events, source.describe()))
}

/// `ticket_events` on the target's snapshot.
fn read_ticket(
    target: &Target,
    ticket_id: &str,
) -> Result<(Vec<EventEnvelope>, String), StoreError> {
    match target {
        Target::Embedded(dir) => ready_now(ticket_events(&mut AuditReader::open(dir)?, ticket_id))?,
        Target::Mongo { uri, db } => on_runtime(async {
            ticket_events(&mut MongoAudit::open(uri, db).await?, ticket_id).await
        }),
    }
}

/// [`verify::check`] on the target's snapshot.
fn verify_target(target: &Target) -> Result<Result<verify::Report, verify::Finding>, StoreError> {
    match target {
        Target::Embedded(dir) => verify::verify(dir),
        Target::Mongo { uri, db } => {
            on_runtime(async { verify::check(&mut MongoAudit::open(uri, db).await?).await })
        }
    }
}

/// `ticketd audit <ticket-id>`: prints the ticket's timeline.
pub fn audit_command(target: &Target, ticket_id: &str) -> ExitCode {
    match read_ticket(target, ticket_id) {
        Ok((events, place)) if events.is_empty() => {
            eprintln!("ticketd audit: no ticket {ticket_id} in {place}");
            ExitCode::from(UNUSABLE)
        }
        Ok((events, _)) => {
            print!("{}", timeline::render(&events));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ticketd audit: {e}");
            ExitCode::from(UNUSABLE)
        }
    }
}

/// `ticketd replay`: rebuilds the read models and prints a summary.
pub fn replay_command(target: &Target) -> ExitCode {
    let show_progress = std::io::stderr().is_terminal();
    let replayed = match target {
        Target::Embedded(dir) => replay::run(dir, show_progress),
        Target::Mongo { uri, db } => on_runtime(replay::run_mongo(uri, db, show_progress)),
    };
    match replayed {
        Ok(replayed) => {
            println!("{}", replay::summary_line(&replayed));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ticketd replay: {e}");
            ExitCode::from(UNUSABLE)
        }
    }
}

/// `ticketd verify`: exit 0 when every chain holds and the read models equal a rebuild, 1 naming
/// the first damage, 2 when the store cannot be read.
pub fn verify_command(target: &Target) -> ExitCode {
    match verify_target(target) {
        Ok(Ok(report)) => {
            println!(
                "verified {} events in {} streams: every hash chain holds; {} tickets, {} \
                 messages and the reports projection equal a rebuild",
                report.events, report.streams, report.tickets, report.messages
            );
            println!(
                "head: position {} global_hash {}",
                report.head,
                if report.head_global_hash.is_empty() {
                    "(empty store)"
                } else {
                    &report.head_global_hash
                }
            );
            ExitCode::SUCCESS
        }
        Ok(Err(finding)) => {
            eprintln!("ticketd verify: FAILED: {finding}");
            ExitCode::from(DAMAGED)
        }
        Err(e) => {
            eprintln!("ticketd verify: {e}");
            ExitCode::from(UNUSABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_now_runs_a_future_that_never_waits_and_refuses_one_that_does() {
        assert_eq!(ready_now(async { 7 }).ok(), Some(7));
        assert!(matches!(
            ready_now(std::future::pending::<()>()),
            Err(StoreError::Unavailable(_))
        ));
    }
}
