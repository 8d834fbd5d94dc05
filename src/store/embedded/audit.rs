//! What auditors need from the SQLite file beyond the [`ticketd_events::EventStore`] trait: the
//! stored event rows byte for byte ([`AuditReader`], the embedded [`AuditSource`]), sealing rows
//! written before the chains existed, the data directory's lock, and rebuilding the read models
//! from the events. The checks themselves live in `crate::audit` and are the same for MongoDB;
//! this file only knows the tables.

use super::DB_FILE;
use super::projection;
use super::reader;
use super::rows::{sql_error, to_sql_int};
use super::schema::{self, SCHEMA_VERSION};
use crate::store::audit_source::AuditSource;
pub use crate::store::audit_source::{RawEvent, ReplaySummary};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use ticketd_events::StoreError;
use ticketd_events::chain;
use ticketd_projections::reports::{ReportFact, ReportRow};
use ticketd_projections::{Change, MemoryReadModel, MessageView, TicketView};

/// The lock file inside the data directory, held by a serving store's writer and by a replay.
const LOCK_FILE: &str = "ticketd.lock";

/// Rows read or sealed at a time.
const PAGE: usize = 10_000;

/// The raw columns of `events`, in [`RawEvent::from_row`]'s order.
const RAW_COLUMNS: &str = "position, event_id, stream_id, version, recorded_at, event_type, \
     schema_version, actor, correlation_id, causation_id, data, prev_hash, hash, global_hash";

/// Takes the data directory's lock, so that one process at a time writes to it: a second
/// server, or a replay beside a running server, is refused instead of corrupting positions.
/// The lock is advisory and dies with the process (even after `kill -9`).
pub fn lock_data_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another ticketd process (a running server or a replay)",
            dir.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Reads one `events` row in [`RAW_COLUMNS`]' order.
fn raw_from_row(row: &Row<'_>) -> rusqlite::Result<Result<RawEvent, StoreError>> {
    let position: i64 = row.get(0)?;
    let position_u = u64::try_from(position).unwrap_or(0);
    let read = || -> rusqlite::Result<RawEvent> {
        Ok(RawEvent {
            position: position_u,
            event_id: row.get(1)?,
            stream_id: row.get(2)?,
            version: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
            recorded_at: row.get(4)?,
            event_type: row.get(5)?,
            schema_version: row.get(6)?,
            actor: row.get(7)?,
            correlation_id: row.get(8)?,
            causation_id: row.get(9)?,
            data: row.get(10)?,
            prev_hash: row.get(11)?,
            hash: row.get(12)?,
            global_hash: row.get(13)?,
        })
    };
    // A column of the wrong SQLite type is damage to this row, not a failure of the file.
    Ok(read().map_err(|e| StoreError::Corrupt {
        position: position_u,
        reason: format!("unreadable row: {e}"),
    }))
}

fn raw_rows(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<RawEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
    let rows = stmt.query_map(args, raw_from_row).map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error)?).collect()
}

/// A read-only view of the file inside one read transaction: every query sees the same
/// snapshot, even while a server keeps appending beside it.
pub struct AuditReader {
    /// A read-only connection with an open read transaction.
    conn: Connection,
    /// The database file, to name it in messages.
    path: PathBuf,
}

impl AuditReader {
    /// Opens `dir/ticketd.db` read-only. Refuses a missing file, and a file whose schema this
    /// binary has not brought up to date yet (start the server once, or run a replay).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = db_path(dir)?;
        let conn = schema::open_reader(&path)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql_error)?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "{} has schema version {version}, this binary reads {SCHEMA_VERSION}; \
                 start the server once (or run `ticketd replay`) to migrate it",
                path.display()
            )));
        }
        conn.execute_batch("BEGIN DEFERRED").map_err(sql_error)?;
        Ok(AuditReader { conn, path })
    }

    /// Every link and checkpoint, in the same snapshot as the events (see `ticketd export`).
    pub fn bookkeeping(&self) -> Result<crate::store::Bookkeeping, StoreError> {
        reader::bookkeeping(&self.conn)
    }

    /// Up to `limit` rows after `after_position`, in position order.
    pub fn events_after(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RawEvent>, StoreError> {
        raw_rows(
            &self.conn,
            &format!(
                "SELECT {RAW_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
            ),
            params![
                to_sql_int(after_position)?,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
        )
    }

    /// One stream's rows in version order.
    pub fn stream(&self, stream_id: &str) -> Result<Vec<RawEvent>, StoreError> {
        raw_rows(
            &self.conn,
            &format!("SELECT {RAW_COLUMNS} FROM events WHERE stream_id = ?1 ORDER BY version"),
            [stream_id],
        )
    }

    /// Every stream id that has events, in id order.
    pub fn stream_ids(&self) -> Result<Vec<String>, StoreError> {
        distinct_streams(&self.conn)
    }

    /// The `streams` table: each stream's recorded version and last hash, by stream id.
    pub fn stream_tips(&self) -> Result<HashMap<String, (u64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT stream_id, version, hash FROM streams")
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    (
                        u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                        row.get::<_, String>(2)?,
                    ),
                ))
            })
            .map_err(sql_error)?;
        rows.map(|row| row.map_err(sql_error)).collect()
    }

    /// A ticket row.
    pub fn ticket(&self, ticket_id: &str) -> Result<Option<TicketView>, StoreError> {
        reader::get_ticket(&self.conn, ticket_id)
    }

    /// Every message row of a ticket, deleted ones and notes included, by seq.
    pub fn messages_of(&self, ticket_id: &str) -> Result<Vec<MessageView>, StoreError> {
        reader::all_messages_of(&self.conn, ticket_id)
    }

    /// The reports projection as stored: every fact and every day counter, sorted.
    pub fn report_projection(&self) -> Result<(Vec<ReportFact>, Vec<ReportRow>), StoreError> {
        Ok((
            super::reports::all_facts(&self.conn)?,
            super::reports::all_counters(&self.conn)?,
        ))
    }

    /// How many ticket and message rows the read models hold.
    pub fn read_model_counts(&self) -> Result<(u64, u64), StoreError> {
        let count = |table: &str| -> Result<u64, StoreError> {
            let n: i64 = self
                .conn
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                    row.get(0)
                })
                .map_err(sql_error)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok((count("tickets")?, count("messages")?))
    }

    /// The first tag that `ticket_tags` and the tickets' own `tags` disagree on, described.
    pub fn tag_index(&self) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT 'missing from', t.id, j.value FROM tickets t, json_each(t.tags) j \
                 WHERE NOT EXISTS (SELECT 1 FROM ticket_tags g \
                     WHERE g.tag = j.value AND g.position = t.position) \
                 UNION ALL \
                 SELECT 'not of the ticket in', coalesce(t.id, 'at position ' || g.position), \
                     g.tag FROM ticket_tags g LEFT JOIN tickets t ON t.position = g.position \
                 WHERE NOT EXISTS (SELECT 1 FROM json_each(t.tags) j WHERE j.value = g.tag) \
                 LIMIT 1",
                [],
                |row| {
                    Ok(format!(
                        "tag {:?} of ticket {}: {} the tag index (ticket_tags)",
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(0)?
                    ))
                },
            )
            .optional()
            .map_err(sql_error)
    }
}

/// The SQLite calls are synchronous: every future here is ready when first polled, which is
/// what lets `crate::audit` run the shared checks without a runtime.
impl AuditSource for AuditReader {
    async fn events_after(
        &mut self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RawEvent>, StoreError> {
        AuditReader::events_after(self, after_position, limit)
    }

    async fn stream(&mut self, stream_id: &str) -> Result<Vec<RawEvent>, StoreError> {
        AuditReader::stream(self, stream_id)
    }

    async fn stream_ids(&mut self) -> Result<Vec<String>, StoreError> {
        AuditReader::stream_ids(self)
    }

    async fn stream_tips(&mut self) -> Result<HashMap<String, (u64, String)>, StoreError> {
        AuditReader::stream_tips(self)
    }

    async fn ticket(&mut self, ticket_id: &str) -> Result<Option<TicketView>, StoreError> {
        AuditReader::ticket(self, ticket_id)
    }

    async fn messages_of(&mut self, ticket_id: &str) -> Result<Vec<MessageView>, StoreError> {
        AuditReader::messages_of(self, ticket_id)
    }

    async fn read_model_counts(&mut self) -> Result<(u64, u64), StoreError> {
        AuditReader::read_model_counts(self)
    }

    async fn replies(&mut self) -> Result<Vec<ticketd_projections::ReplyView>, StoreError> {
        super::helpdesk::list_replies(&self.conn)
    }

    async fn blocks(&mut self) -> Result<Vec<ticketd_projections::BlockView>, StoreError> {
        super::helpdesk::list_blocks(&self.conn)
    }

    async fn report_projection(&mut self) -> Result<(Vec<ReportFact>, Vec<ReportRow>), StoreError> {
        AuditReader::report_projection(self)
    }

    async fn lookup_tables(&mut self) -> Result<Option<String>, StoreError> {
        AuditReader::tag_index(self)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

pub(super) fn db_path(dir: &Path) -> Result<PathBuf, StoreError> {
    let path = dir.join(DB_FILE);
    if path.exists() {
        Ok(path)
    } else {
        Err(StoreError::Unavailable(format!(
            "no store at {} (is DATA_DIR right?)",
            path.display()
        )))
    }
}

fn distinct_streams(conn: &Connection) -> Result<Vec<String>, StoreError> {
    // Walks the (stream_id, version) index, not the table.
    let mut stmt = conn
        .prepare("SELECT DISTINCT stream_id FROM events ORDER BY stream_id")
        .map_err(sql_error)?;
    let rows = stmt.query_map([], |row| row.get(0)).map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error)).collect()
}

/// Hashes rows stored before the chains existed (schema version 1), in position order, as if
/// the writer had hashed them when it appended them. Runs once, right after the migration that
/// added the columns; a no-op when every row has a hash.
pub(super) fn seal_unsealed(conn: &mut Connection) -> Result<(), StoreError> {
    let first: Option<i64> = conn
        .query_row(
            "SELECT MIN(position) FROM events WHERE hash = ''",
            [],
            |row| row.get(0),
        )
        .map_err(sql_error)?;
    let Some(first) = first else {
        return Ok(());
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let mut global: String = tx
        .query_row(
            "SELECT global_hash FROM events WHERE position < ?1 ORDER BY position DESC LIMIT 1",
            [first],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?
        .unwrap_or_default();
    let mut tips: HashMap<String, String> = HashMap::new();
    let mut after = first - 1;
    loop {
        let page = raw_rows(
            &tx,
            &format!(
                "SELECT {RAW_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
            ),
            params![after, PAGE as i64],
        )?;
        let Some(last) = page.last() else { break };
        after = to_sql_int(last.position)?;
        let mut update = tx
            .prepare_cached(
                "UPDATE events SET prev_hash = ?1, hash = ?2, global_hash = ?3 WHERE position = ?4",
            )
            .map_err(sql_error)?;
        for mut row in page {
            row.prev_hash = match tips.get(&row.stream_id) {
                Some(hash) => hash.clone(),
                None if row.version <= 1 => String::new(),
                None => tx
                    .query_row(
                        "SELECT hash FROM events WHERE stream_id = ?1 AND version = ?2",
                        params![row.stream_id, to_sql_int(row.version - 1)?],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql_error)?
                    .unwrap_or_default(),
            };
            let hash = row.computed_hash();
            global = chain::global_hash(&global, &hash);
            update
                .execute(params![
                    row.prev_hash,
                    hash,
                    global,
                    to_sql_int(row.position)?
                ])
                .map_err(sql_error)?;
            tips.insert(row.stream_id, hash);
        }
    }
    tx.execute(
        "UPDATE streams SET hash = COALESCE((SELECT hash FROM events e \
         WHERE e.stream_id = streams.stream_id AND e.version = streams.version), '')",
        [],
    )
    .map_err(sql_error)?;
    tx.commit().map_err(sql_error)
}

/// Drops the read models of `dir/ticketd.db` and rebuilds them from its events, all in one
/// transaction: a replay that fails or is killed leaves the previous read models in place.
/// Each ticket's stream is folded through [`MemoryReadModel`] (the same changes the inline
/// projection applies) and its final rows inserted, so memory holds one ticket at a time.
/// Refuses to run while a server (or another replay) holds the directory.
///
/// `progress(done, total)` is called after each stream with the events folded so far.
pub fn replay(dir: &Path, mut progress: impl FnMut(u64, u64)) -> Result<ReplaySummary, StoreError> {
    let path = db_path(dir)?;
    let _lock = lock_data_dir(dir)?;
    let mut conn = schema::open_writer(&path, true)?;
    let total: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
        .map_err(sql_error)?;
    let total = u64::try_from(total).unwrap_or(0);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    tx.execute_batch(
        "DELETE FROM tickets; DELETE FROM messages; DELETE FROM ticket_tags; \
         DELETE FROM saved_replies; DELETE FROM blocks; DELETE FROM sla_policy;",
    )
    .map_err(sql_error)?;
    super::search::clear(&tx)?;
    let mut summary = ReplaySummary {
        events: 0,
        tickets: 0,
        messages: 0,
    };
    for stream_id in distinct_streams(&tx)? {
        let events = reader::read_stream(&tx, &stream_id, 0)?;
        let model = MemoryReadModel::from_events(&events);
        summary.events += events.len() as u64;
        summary.tickets += model.tickets.len() as u64;
        summary.messages += model.messages.len() as u64;
        for ticket in model.tickets.into_values() {
            projection::apply(&tx, Change::InsertTicket(ticket))?;
        }
        for message in model.messages.into_values() {
            projection::apply(&tx, Change::InsertMessage(message))?;
        }
        // The streams beside the tickets fold to their own rows (ADR 0021).
        for reply in model.replies.into_values() {
            projection::apply(&tx, Change::PutReply(reply))?;
        }
        for block in model.blocks.into_values() {
            projection::apply(&tx, Change::PutBlock(block))?;
        }
        progress(summary.events, total);
    }
    // The messages' search rows are written per ticket, in posting order (ADR 0024).
    super::search::rebuild_messages(&tx, true)?;
    // The reports projection folds the log in position order (ADR 0026).
    super::reports::rebuild(&tx)?;
    tx.commit().map_err(sql_error)?;
    Ok(summary)
}
