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

/// Links `key` to `value` unless a link exists; answers the value that holds.
pub(super) fn claim_link(
    conn: &Connection,
    kind: &str,
    key: &str,
    value: &str,
) -> Result<String, StoreError> {
    conn.prepare_cached(
        "INSERT INTO links (kind, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (kind, key) DO NOTHING",
    )
    .and_then(|mut stmt| stmt.execute(params![kind, key, value]))
    .map_err(sql_error)?;
    load_link(conn, kind, key)?
        .ok_or_else(|| StoreError::Unavailable(format!("link {kind}/{key} vanished in its claim")))
}
