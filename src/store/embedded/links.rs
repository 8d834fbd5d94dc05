//! The `links` table: small key → value rows kept by side-effect projectors (the Discord bridge's
//! ticket → channel and message → Discord message), written through the writer like checkpoints.

use super::rows::sql_error;
use rusqlite::{Connection, OptionalExtension, params};
use ticketd_events::StoreError;

/// The value linked to `key` under `kind`.
pub(super) fn load_link(
    conn: &Connection,
    kind: &str,
    key: &str,
) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM links WHERE kind = ?1 AND key = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![kind, key], |row| row.get(0))
                .optional()
        })
        .map_err(sql_error)
}

/// Records, replaces or (with `None`) removes a link.
pub(super) fn save_link(
    conn: &Connection,
    kind: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(), StoreError> {
    let result = match value {
        Some(value) => conn
            .prepare_cached(
                "INSERT INTO links (kind, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute(params![kind, key, value])),
        None => conn
            .prepare_cached("DELETE FROM links WHERE kind = ?1 AND key = ?2")
            .and_then(|mut stmt| stmt.execute(params![kind, key])),
    };
    result.map(drop).map_err(sql_error)
}
