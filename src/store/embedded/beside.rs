//! Small writes to the links table beside a running server, for `ticketd webhooks resume` and
//! `replay`: the server holds the data directory's lock and its one writer connection, but
//! SQLite in WAL mode lets another process commit a short transaction between the writer's
//! (waiting its turn through the busy timeout). The server reads links through its readers,
//! which see each commit, so nothing in it needs telling.

use super::audit::db_path;
use super::links;
use super::rows::sql_error;
use super::schema::{BUSY_TIMEOUT, SCHEMA_VERSION};
use crate::store::Links;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Mutex;
use ticketd_events::StoreError;

/// One read-write connection to `ticketd.db` that does not take the directory's lock.
pub struct Beside(Mutex<Connection>);

impl Beside {
    /// Opens `dir/ticketd.db`; refuses a missing file or one a newer or older binary wrote
    /// (start the server once to migrate it).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = db_path(dir)?;
        let conn = Connection::open(&path).map_err(sql_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql_error)?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "{} has schema version {version}, this binary writes {SCHEMA_VERSION}; start the server once to migrate it",
                path.display()
            )));
        }
        Ok(Beside(Mutex::new(conn)))
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.0.lock().unwrap_or_else(|p| p.into_inner());
        work(&conn)
    }

    /// The last committed position, 0 for an empty store.
    pub fn head(&self) -> Result<u64, StoreError> {
        self.with(|conn| {
            let head: Option<i64> = conn
                .query_row("SELECT MAX(position) FROM events", [], |row| row.get(0))
                .map_err(sql_error)?;
            Ok(head.and_then(|h| u64::try_from(h).ok()).unwrap_or(0))
        })
    }
}

impl Links for Beside {
    async fn load_link(&self, kind: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|conn| links::load_link(conn, kind, key))
    }

    async fn save_link(
        &self,
        kind: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|conn| links::save_link(conn, kind, key, value))
    }

    async fn claim_link(&self, kind: &str, key: &str, value: &str) -> Result<String, StoreError> {
        self.with(|conn| links::claim_link(conn, kind, key, value))
    }
}
