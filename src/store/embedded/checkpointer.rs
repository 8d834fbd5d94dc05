//! Moves the WAL's pages into the database file on a thread of its own. SQLite's automatic
//! checkpoint would do it inside the writer's commit, stalling every queued append behind it;
//! here it runs beside the writer (a PASSIVE checkpoint never blocks it) on the second core.

use super::rows::sql_error;
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;
use ticketd_events::StoreError;

/// How often the WAL is copied back.
const INTERVAL: Duration = Duration::from_millis(250);

/// Stops the checkpoint thread when dropped.
pub(super) struct Checkpointer {
    _stop: Sender<()>,
}

/// Starts checkpointing `path` until the returned handle is dropped.
pub(super) fn spawn(path: &Path) -> Result<Checkpointer, StoreError> {
    let conn = Connection::open(path).map_err(sql_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql_error)?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("ticketd-sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                // A failed pass is retried on the next tick; the WAL only grows meanwhile.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(Checkpointer { _stop: stop })
}
