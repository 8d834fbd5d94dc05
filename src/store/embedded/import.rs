//! `ticketd import` into the embedded store: exported envelopes written as they are (ids,
//! versions, positions, times and hashes kept) into an empty data directory, with the read
//! models projected from them and the exported links and checkpoints, all in one transaction.
//! Runs with the server stopped: it takes the directory's lock like `ticketd replay` does.

use super::audit::lock_data_dir;
use super::projection::project;
use super::rows::{sql_error, to_sql_int};
use super::schema;
use crate::store::Bookkeeping;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::Path;
use ticketd_events::{EventEnvelope, StoreError};

/// Loads `events` (in position order, checked by the caller) and `bookkeeping` into the store in
/// `dir`, which must hold no event, ticket, message, checkpoint or link yet.
pub fn import(
    dir: &Path,
    events: &[EventEnvelope],
    bookkeeping: &Bookkeeping,
) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    let _lock = lock_data_dir(dir)?;
    let mut conn = schema::open_writer(&dir.join(super::DB_FILE), true)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    for table in ["events", "tickets", "messages", "checkpoints", "links"] {
        let any: Option<i64> = tx
            .query_row(&format!("SELECT 1 FROM {table} LIMIT 1"), [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sql_error)?;
        if any.is_some() {
            return Err(StoreError::Unavailable(format!(
                "{} is not empty (its {table} table has rows): import only loads into an empty \
                 store",
                dir.display()
            )));
        }
    }
    let render = |e: serde_json::Error| StoreError::Unavailable(format!("serialize: {e}"));
    let mut tips: HashMap<&str, (u64, &str)> = HashMap::new();
    {
        let mut insert = tx.prepare(super::schema::INSERT_EVENT).map_err(sql_error)?;
        for e in events {
            insert
                .execute(params![
                    to_sql_int(e.position)?,
                    e.event_id,
                    e.stream_id,
                    to_sql_int(e.version)?,
                    e.recorded_at,
                    e.event.type_name(),
                    e.schema_version,
                    serde_json::to_string(&e.actor).map_err(render)?,
                    e.correlation_id,
                    e.causation_id,
                    serde_json::to_string(&e.event).map_err(render)?,
                    e.prev_hash,
                    e.hash,
                    e.global_hash,
                ])
                .map_err(sql_error)?;
            project(&tx, e, &ticketd_events::SlaPolicy::default())?;
            tips.insert(&e.stream_id, (e.version, &e.hash));
        }
    }
    // The imported tickets have no service-level columns yet: the next open with targets
    // computes every ticket's.
    tx.execute("DELETE FROM sla_policy", [])
        .map_err(sql_error)?;
    for (stream_id, (version, hash)) in tips {
        tx.execute(
            "INSERT INTO streams (stream_id, version, hash) VALUES (?1, ?2, ?3)",
            params![stream_id, to_sql_int(version)?, hash],
        )
        .map_err(sql_error)?;
    }
    for (kind, key, value) in &bookkeeping.links {
        tx.execute(
            "INSERT INTO links (kind, key, value) VALUES (?1, ?2, ?3)",
            params![kind, key, value],
        )
        .map_err(sql_error)?;
    }
    for (name, position) in &bookkeeping.checkpoints {
        tx.execute(
            "INSERT INTO checkpoints (name, position) VALUES (?1, ?2)",
            params![name, to_sql_int(*position)?],
        )
        .map_err(sql_error)?;
    }
    tx.commit().map_err(sql_error)
}
