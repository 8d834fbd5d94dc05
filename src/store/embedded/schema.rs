//! The SQLite file's layout and connection settings, in one place so the writer, the readers and
//! future migrations agree on them. The schema is versioned with `PRAGMA user_version`: each
//! entry of [`MIGRATIONS`] moves a database one version forward, and a file written by a newer
//! binary is refused rather than misread.

use super::rows::sql_error;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::Path;
use std::time::Duration;
use ticketd_events::StoreError;

/// Long enough to ride out a checkpoint or another process's short write, short enough that a
/// stuck lock surfaces as an error instead of a hang.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Every distinct statement a connection runs stays prepared: the writer has about ten, a reader
/// up to 32 ticket-listing shapes plus a handful of others.
const STATEMENT_CACHE: usize = 64;

/// WAL bytes written between two of the writer's own checkpoints (see `open_writer`).
pub(super) const WAL_AUTOCHECKPOINT_BYTES: i64 = 64 * 1024 * 1024;

/// Stores one event row, every column; the writer and `ticketd import` both write events
/// through it, so they cannot disagree on the columns.
pub(super) const INSERT_EVENT: &str = "INSERT INTO events (position, event_id, stream_id, \
     version, recorded_at, event_type, schema_version, actor, correlation_id, causation_id, \
     data, prev_hash, hash, global_hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// Migration `i` takes a database from version `i` to `i + 1`; never edit a shipped entry, append.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE events (
        position       INTEGER PRIMARY KEY,
        event_id       TEXT    NOT NULL UNIQUE,
        stream_id      TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        recorded_at    INTEGER NOT NULL,
        event_type     TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        actor          TEXT    NOT NULL,
        correlation_id TEXT    NOT NULL,
        causation_id   TEXT    NOT NULL,
        data           TEXT    NOT NULL,
        UNIQUE (stream_id, version)
    );
    CREATE TABLE streams (
        stream_id TEXT    PRIMARY KEY,
        version   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE tickets (
        position     INTEGER PRIMARY KEY,
        id           TEXT    NOT NULL UNIQUE,
        user_id      TEXT    NOT NULL,
        topic        TEXT    NOT NULL,
        description  TEXT    NOT NULL,
        status       TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        user_role    TEXT    NOT NULL,
        support_role TEXT    NOT NULL,
        issue_level  TEXT    NOT NULL
    );
    CREATE INDEX tickets_by_user         ON tickets (user_id, position);
    CREATE INDEX tickets_by_status       ON tickets (status, position);
    CREATE INDEX tickets_by_issue_level  ON tickets (issue_level, position);
    CREATE INDEX tickets_by_support_role ON tickets (support_role, position);
    CREATE TABLE messages (
        id          TEXT    PRIMARY KEY,
        ticket_id   TEXT    NOT NULL,
        author_id   TEXT    NOT NULL,
        author_name TEXT    NOT NULL,
        content     TEXT    NOT NULL,
        attachments TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        internal    INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        deleted_at  INTEGER
    );
    CREATE INDEX messages_by_ticket ON messages (ticket_id, seq);
    CREATE TABLE checkpoints (
        name     TEXT    PRIMARY KEY,
        position INTEGER NOT NULL
    ) WITHOUT ROWID;
"#,
    // 2: the hash chains (ADR 0009). Rows written before this migration are sealed by
    // `audit::seal_unsealed` right after it, in position order.
    r#"
    ALTER TABLE events  ADD COLUMN prev_hash   TEXT NOT NULL DEFAULT '';
    ALTER TABLE events  ADD COLUMN hash        TEXT NOT NULL DEFAULT '';
    ALTER TABLE events  ADD COLUMN global_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE streams ADD COLUMN hash        TEXT NOT NULL DEFAULT '';
"#,
    // 3: links kept by side-effect projectors (the Discord bridge's channels and messages).
    r#"
    CREATE TABLE links (
        kind  TEXT NOT NULL,
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
"#,
    // 4: a message's row is keyed by its posting event's position, and a ticket's messages are
    // found through the events' (stream_id, version) index, so a post writes one page of its
    // ticket instead of two (ADR 0003, "Revisited a third time").
    r#"
    CREATE TABLE messages_by_position (
        position    INTEGER PRIMARY KEY,
        id          TEXT    NOT NULL UNIQUE,
        ticket_id   TEXT    NOT NULL,
        author_id   TEXT    NOT NULL,
        author_name TEXT    NOT NULL,
        content     TEXT    NOT NULL,
        attachments TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        internal    INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        deleted_at  INTEGER
    );
    INSERT INTO messages_by_position
        SELECT e.position, m.id, m.ticket_id, m.author_id, m.author_name, m.content,
               m.attachments, m.created_at, m.updated_at, m.internal, m.seq, m.deleted_at
        FROM messages m JOIN events e ON e.stream_id = m.ticket_id AND e.version = m.seq;
    DROP TABLE messages;
    ALTER TABLE messages_by_position RENAME TO messages;
"#,
    // 5: who holds a ticket, and its tags, with an index for each filter of the listing. A
    // database from before has no such events, so the defaults are its true state.
    r#"
    ALTER TABLE tickets ADD COLUMN assignee_id   TEXT;
    ALTER TABLE tickets ADD COLUMN assignee_name TEXT;
    ALTER TABLE tickets ADD COLUMN tags          TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX tickets_by_assignee ON tickets (assignee_id, position);
    CREATE TABLE ticket_tags (
        tag      TEXT    NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (tag, position)
    ) WITHOUT ROWID;
    CREATE INDEX ticket_tags_by_ticket ON ticket_tags (position);
"#,
    // 6: the auto-close countdown of a ticket waiting on its customer (ADR 0022), and the
    // index the timer's due-time scan reads: only waiting tickets are in it. A file from before
    // starts with no countdowns; `ticketd replay` computes those its history implies.
    r#"
    ALTER TABLE tickets ADD COLUMN countdown_message   TEXT;
    ALTER TABLE tickets ADD COLUMN countdown_since     INTEGER;
    ALTER TABLE tickets ADD COLUMN countdown_warned_at INTEGER;
    CREATE INDEX tickets_by_countdown ON tickets (countdown_since)
        WHERE countdown_since IS NOT NULL;
"#,
    // 7: the read models of the streams beside the tickets (ADR 0021): saved replies by name
    // and blocked users by id. Older files have no such events, so empty tables are their
    // true state.
    r#"
    CREATE TABLE saved_replies (
        name       TEXT    PRIMARY KEY,
        content    TEXT    NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE blocks (
        user_id    TEXT    PRIMARY KEY,
        reason     TEXT,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
"#,
    // 8: the full-text search index (ADR 0024), filled from the read models of a file from
    // before it (see `SEARCH_VERSION`).
    super::search::SCHEMA,
    // 9: customer feedback and the service-level facts (issue 17, ADR 0025), with the
    // policy-dependent columns the `sla` filters and the breach sweeper read through indexes.
    // A file from before gets the facts its rows imply (the resolution clock from the opening);
    // `ticketd replay` computes the answers and closes its history holds.
    r#"
    ALTER TABLE tickets ADD COLUMN feedback          TEXT;
    ALTER TABLE tickets ADD COLUMN first_response_at INTEGER;
    ALTER TABLE tickets ADD COLUMN sla_from          INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tickets ADD COLUMN resolved_at       INTEGER;
    ALTER TABLE tickets ADD COLUMN sla_fr_breached   INTEGER;
    ALTER TABLE tickets ADD COLUMN sla_res_breached  INTEGER;
    ALTER TABLE tickets ADD COLUMN sla_next_due      INTEGER;
    ALTER TABLE tickets ADD COLUMN sla_sweep_at      INTEGER;
    ALTER TABLE tickets ADD COLUMN sla_breached      INTEGER NOT NULL DEFAULT 0;
    UPDATE tickets SET sla_from = created_at;
    CREATE INDEX tickets_by_sla_next_due ON tickets (sla_next_due)
        WHERE sla_next_due IS NOT NULL AND sla_breached = 0;
    CREATE INDEX tickets_by_sla_sweep ON tickets (sla_sweep_at) WHERE sla_sweep_at IS NOT NULL;
    CREATE INDEX tickets_by_sla_breached ON tickets (position) WHERE sla_breached = 1;
    CREATE TABLE sla_policy (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        fingerprint TEXT    NOT NULL
    );
"#,
    // 10: the reports projection (ADR 0026): per-ticket state, facts and per-day counters,
    // backfilled from the events by `reports::rebuild` in the same transaction.
    super::reports::SCHEMA,
    // 11: messages indexed per ticket rather than per message (ADR 0024, "Per ticket"): a
    // common word's doclist shrinks from most of the messages to at most the tickets; filled
    // again from the live messages in the same transaction.
    super::search::TICKET_TERMS_SCHEMA,
    // 12: message rows held in a plain table until a batch moves thousands into FTS5 at once
    // (ADR 0024, "Pending rows"): a post then appends its batch's one row at a table's end
    // instead of writing an FTS5 segment and size rows. Empty at first: migration 11 wrote
    // every row into FTS5.
    super::search::PENDING_SCHEMA,
];

/// The schema version this binary writes.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if missing) the one read-write connection, switches the file to WAL and
/// brings its schema up to date.
pub(super) fn open_writer(path: &Path, synchronous_full: bool) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path).map_err(sql_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // WAL lets readers keep reading while the writer commits, and turns a commit into one
    // sequential append plus one fsync.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sql_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{} cannot use WAL (journal_mode is {mode})",
            path.display()
        )));
    }
    // NORMAL in WAL mode still survives a killed process; only FULL also survives power loss.
    let synchronous = if synchronous_full { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(sql_error)?;
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(sql_error)?;
    // Savepoints (one per append in a batch) journal pages they touch; keep that in memory.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sql_error)?;
    // The checkpoint thread copies pages back beside the writer. The writer's own automatic
    // checkpoint is still needed: it is the one that lets the next commit restart the WAL from
    // its beginning (under steady writes the thread never finds the WAL fully copied at a commit
    // boundary, and the file would grow without end). But it runs inside a commit, stalling
    // every queued append, so it runs rarely: once per WAL_AUTOCHECKPOINT_BYTES written rather
    // than SQLite's default of every 1,000 pages, which under load meant every few dozen
    // milliseconds and one batch in ten taking over 5 ms. After a restart the file is cut back
    // to journal_size_limit.
    set_wal_autocheckpoint(&conn, WAL_AUTOCHECKPOINT_BYTES)?;
    migrate(&mut conn)?;
    super::audit::seal_unsealed(&mut conn)?;
    Ok(conn)
}

/// Lets the writer's own checkpoint run once per `bytes` of WAL, and cuts the WAL file back to
/// that size after a restart.
pub(super) fn set_wal_autocheckpoint(conn: &Connection, bytes: i64) -> Result<(), StoreError> {
    let page_size: i64 = conn
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .map_err(sql_error)?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        (bytes / page_size.max(512)).max(1),
    )
    .map_err(sql_error)?;
    conn.pragma_update(None, "journal_size_limit", bytes)
        .map_err(sql_error)
}

/// Opens a connection that can only read; it sees every transaction committed before each of
/// its statements starts.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(sql_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The schema version that added the auto-close countdown columns.
const COUNTDOWN_VERSION: i64 = 6;

/// The schema version that added the search index.
const SEARCH_VERSION: i64 = 8;
/// The schema version that added the reports projection.
const REPORTS_VERSION: i64 = 10;
/// The schema version that indexed messages per ticket.
const TICKET_TERMS_VERSION: i64 = 11;

/// The schema version that added the service-level facts (ADR 0025).
const SLA_VERSION: i64 = 9;

/// Sets the service-level facts of every ticket of a file from before them (first answers,
/// closes, reopens) from its events in position order, as the inline projection would have, so
/// `ticketd verify` agrees; the policy-dependent columns follow at the store's open.
fn backfill_sla(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {} FROM events \
             WHERE event_type IN ('MessagePosted', 'TicketClosed', 'TicketReopened') \
             ORDER BY position",
            super::rows::EVENT_COLUMNS
        ))
        .map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let envelope = match super::rows::event_from_row(row).map_err(sql_error)? {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!("no service-level facts from a damaged event: {e}");
                continue;
            }
        };
        for change in ticketd_projections::changes(&envelope) {
            if matches!(change, ticketd_projections::Change::Sla { .. }) {
                super::projection::apply(conn, change)?;
            }
        }
    }
    Ok(())
}

/// Sets the countdown of every ticket of a file from before countdowns, from its messages and
/// closes in position order, as the inline projection would have: a timer started after the
/// upgrade then sees the tickets that were already waiting, and `ticketd verify` agrees.
fn backfill_countdowns(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {} FROM events WHERE event_type IN ('MessagePosted', 'TicketClosed') \
             ORDER BY position",
            super::rows::EVENT_COLUMNS
        ))
        .map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        // A damaged row is `ticketd verify`'s to report; it must not keep the store from opening.
        let envelope = match super::rows::event_from_row(row).map_err(sql_error)? {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!("no countdown from a damaged event: {e}");
                continue;
            }
        };
        for change in ticketd_projections::changes(&envelope) {
            if matches!(change, ticketd_projections::Change::Countdown { .. }) {
                super::projection::apply(conn, change)?;
            }
        }
    }
    Ok(())
}

/// Applies the migrations the file has not seen yet, each atomically with its version bump.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql_error)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "database schema version {current} is newer than this binary's {SCHEMA_VERSION}"
        )));
    }
    let applied = usize::try_from(current).map_err(|_| {
        StoreError::Unavailable(format!("database schema version {current} is not valid"))
    })?;
    for (from, sql) in (current..).zip(&MIGRATIONS[applied..]) {
        // A migration that rewrites a table takes a while on a large file: say why start-up waits.
        if from > 0 {
            tracing::info!(from, to = from + 1, "migrating the database schema");
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        tx.execute_batch(sql).map_err(sql_error)?;
        if from + 1 == COUNTDOWN_VERSION {
            backfill_countdowns(&tx)?;
        }
        if from + 1 == SEARCH_VERSION {
            super::search::backfill(&tx)?;
        }
        if from + 1 == SLA_VERSION {
            backfill_sla(&tx)?;
        }
        if from + 1 == REPORTS_VERSION {
            super::reports::rebuild(&tx)?;
        }
        if from + 1 == TICKET_TERMS_VERSION {
            // `search_pending` comes with migration 12.
            super::search::rebuild_messages(&tx, false)?;
        }
        tx.pragma_update(None, "user_version", from + 1)
            .map_err(sql_error)?;
        tx.commit().map_err(sql_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    #[test]
    fn a_new_file_gets_the_latest_schema_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open_writer(&path, true).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        // Reopening an up-to-date file must not try to create the tables again.
        open_writer(&path, false).unwrap();
    }

    #[test]
    fn messages_of_a_version_3_file_are_rekeyed_by_their_posting_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for sql in &MIGRATIONS[..3] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 3).unwrap();
            // Positions unlike versions, so a row keyed by the wrong one shows.
            for (position, stream, version) in [(7, "t1", 2), (9, "t2", 2), (12, "t1", 3)] {
                tx.execute(
                    "INSERT INTO events (position, event_id, stream_id, version, recorded_at, \
                     event_type, schema_version, actor, correlation_id, causation_id, data, \
                     prev_hash, hash, global_hash) \
                     VALUES (?1, ?1, ?2, ?3, 0, 'MessagePosted', 1, '{}', 'c', 'c', '{}', \
                     'p', 'h', 'g')",
                    params![position, stream, version],
                )
                .unwrap();
            }
            for (id, ticket, seq, deleted) in [
                ("m1", "t1", 2, None),
                ("m2", "t2", 2, None),
                ("m3", "t1", 3, Some(5)),
            ] {
                tx.execute(
                    "INSERT INTO messages VALUES (?1, ?2, 'a', 'Ann', 'hi ' || ?1, '[]', 1, 2, \
                     0, ?3, ?4)",
                    params![id, ticket, seq, deleted],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let conn = open_writer(&path, true).unwrap();
        let rows: Vec<(i64, String, String, i64, Option<i64>)> = conn
            .prepare("SELECT position, id, content, seq, deleted_at FROM messages ORDER BY id")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            vec![
                (7, "m1".into(), "hi m1".into(), 2, None),
                (9, "m2".into(), "hi m2".into(), 2, None),
                (12, "m3".into(), "hi m3".into(), 3, Some(5)),
            ]
        );
        let old_index: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'messages_by_ticket'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_index, 0, "the per-ticket message index is gone");
    }

    #[test]
    fn a_version_7_file_gets_its_search_index_filled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for sql in &MIGRATIONS[..7] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 7).unwrap();
            tx.execute_batch(
                "INSERT INTO tickets (position, id, user_id, topic, description, status, \
                 created_at, updated_at, user_role, support_role, issue_level) \
                 VALUES (5, 't1', 'ann', 'Le Café', 'fermé', 'OPEN', 1, 1, 'CUSTOMER', \
                 'GENERAL', 'NORMAL');
                 -- Messages are read through their posting events (ADR 0003); only the
                 -- placement of these matters here.
                 INSERT INTO messages VALUES (6, 'm1', 't1', 'a', 'Ann', 'Walrus', '[]', 1, 1, \
                 0, 2, NULL);
                 INSERT INTO messages VALUES (7, 'm2', 't1', 'a', 'Ann', 'narwhal', '[]', 1, 1, \
                 1, 3, NULL);
                 INSERT INTO messages VALUES (8, 'm3', 't1', 'a', 'Ann', 'gone', '[]', 1, 1, \
                 0, 4, 9);
                 INSERT INTO events (position, event_id, stream_id, version, recorded_at, \
                 event_type, schema_version, actor, correlation_id, causation_id, data) \
                 VALUES (6, 'e6', 't1', 2, 1, 'Fixture', 1, '{}', 'c', 'c', '{}'), \
                 (7, 'e7', 't1', 3, 1, 'Fixture', 1, '{}', 'c', 'c', '{}'), \
                 (8, 'e8', 't1', 4, 1, 'Fixture', 1, '{}', 'c', 'c', '{}');",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let conn = open_writer(&path, true).unwrap();
        let rowids = |table: &str, query: &str| -> Vec<i64> {
            conn.prepare(&format!("SELECT rowid FROM {table} WHERE {table} MATCH ?1"))
                .unwrap()
                .query_map([query], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let shift = super::super::search::SEQ_BITS;
        assert_eq!(rowids("search_tickets", "{topic} : cafe"), [5]);
        assert_eq!(rowids("search_tickets", "{description} : ferme"), [5]);
        assert_eq!(
            rowids("search_messages", "{body} : walrus"),
            [5 << shift | 2]
        );
        assert_eq!(
            rowids("search_messages", "{note} : narwhal"),
            [5 << shift | 3]
        );
        assert!(
            rowids("search_messages", "gone").is_empty(),
            "deleted: not indexed"
        );
    }

    #[test]
    fn a_file_from_a_newer_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open_writer(&path, true).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = open_writer(&path, true).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("newer")),
            "{err}"
        );
    }

    #[test]
    fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let _writer = open_writer(&path, true).unwrap();
        let reader = open_reader(&path).unwrap();
        assert!(
            reader
                .execute("INSERT INTO checkpoints VALUES ('x', 1)", [])
                .is_err()
        );
    }
}
