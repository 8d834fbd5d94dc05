//! Moves the WAL's pages into the database file on a thread of its own. SQLite's automatic
//! checkpoint would do it inside the writer's commit, stalling every queued append behind it;
//! here it runs beside the writer (a PASSIVE checkpoint never blocks it) on the second core, a
//! few milliseconds behind, so the writer's own automatic checkpoint (rare: see
//! `schema::WAL_AUTOCHECKPOINT_BYTES`) finds almost nothing left to copy.

use super::rows::sql_error;
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;
use ticketd_events::StoreError;
use tokio::sync::watch;

/// How often the WAL is copied back while appends arrive. Short, so each pass (and the writer's
/// occasional own one) has little to copy and fsync; an idle store is not touched.
const INTERVAL: Duration = Duration::from_millis(10);

/// Stops the checkpoint thread when dropped.
pub(super) struct Checkpointer {
    _stop: Sender<()>,
}

/// Starts checkpointing `path`, whenever `head` has moved, until the returned handle is dropped.
pub(super) fn spawn(path: &Path, head: watch::Receiver<u64>) -> Result<Checkpointer, StoreError> {
    let conn = Connection::open(path).map_err(sql_error)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql_error)?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("ticketd-sqlite-checkpoint".into())
        .spawn(move || {
            let mut copied = *head.borrow();
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                let now = *head.borrow();
                if now == copied {
                    continue;
                }
                // A failed pass is retried on the next tick; the WAL only grows meanwhile.
                if conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    .is_ok()
                {
                    copied = now;
                }
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(Checkpointer { _stop: stop })
}
