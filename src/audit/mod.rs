//! For auditors, from the command line: a ticket's timeline (`ticketd audit`), rebuilding the
//! read models from the events (`ticketd replay`) and checking that nothing stored was altered
//! (`ticketd verify`). All three work on the SQLite file under `DATA_DIR`; `audit` and `verify`
//! only read (a read-only connection, so they may run beside a server), `replay` writes and needs
//! the server stopped. The HTTP side of auditing (events, `as_of`) is `crate::http::history`.

pub mod replay;
pub mod timeline;
pub mod verify;

use crate::store::embedded::audit::{AuditReader, RawEvent};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use ticketd_events::{EventEnvelope, StoreError};

/// Exit status when the store is damaged.
const DAMAGED: u8 = 1;
/// Exit status when the store cannot be read or written at all.
const UNUSABLE: u8 = 2;

/// `ticketd audit <ticket-id>`: prints the ticket's timeline.
pub fn audit_command(data_dir: &Path, ticket_id: &str) -> ExitCode {
    let events = AuditReader::open(data_dir).and_then(|reader| {
        reader
            .stream(ticket_id)?
            .iter()
            .map(RawEvent::decode)
            .collect::<Result<Vec<EventEnvelope>, StoreError>>()
    });
    match events {
        Ok(events) if events.is_empty() => {
            eprintln!(
                "ticketd audit: no ticket {ticket_id} in {}",
                data_dir.display()
            );
            ExitCode::from(UNUSABLE)
        }
        Ok(events) => {
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
pub fn replay_command(data_dir: &Path) -> ExitCode {
    match replay::run(data_dir, std::io::stderr().is_terminal()) {
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
pub fn verify_command(data_dir: &Path) -> ExitCode {
    match verify::verify(data_dir) {
        Ok(Ok(report)) => {
            println!(
                "verified {} events in {} streams: every hash chain holds; {} tickets and {} \
                 messages equal a rebuild",
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
