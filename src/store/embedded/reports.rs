//! The reports projection in the SQLite file (ADR 0026): each ticket's report state, every fact,
//! and per-day counters of the frequent facts, all written in the append's savepoint beside the
//! other read models. A report sums the counters of the whole days of its window and reads
//! facts one by one only for the part days at its edges and for the durations and breaches,
//! which are few (one or two per ticket); [`ticketd_projections::reports::build_report`] adds
//! them up exactly as the recomputation from the events does.

use super::rows::{sql_error, to_sql_int};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::str::FromStr;
use ticketd_events::{EventEnvelope, IssueLevel, StoreError, SupportRole};
use ticketd_projections::reports::{
    DAY_MS, Dims, FactKind, GroupBy, Report, ReportFact, ReportQuery, ReportRow, ReportTicket,
    build_report, day_start, report_step,
};

/// The tables (migration 10).
pub(super) const SCHEMA: &str = r#"
    CREATE TABLE report_tickets (
        id    TEXT PRIMARY KEY,
        state TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE report_facts (
        kind         TEXT    NOT NULL,
        at           INTEGER NOT NULL,
        position     INTEGER NOT NULL,
        recorded_at  INTEGER NOT NULL,
        issue_level  TEXT    NOT NULL,
        support_role TEXT    NOT NULL,
        assignee     TEXT    NOT NULL,
        value        INTEGER NOT NULL,
        PRIMARY KEY (kind, at, position)
    ) WITHOUT ROWID;
    CREATE TABLE report_counts (
        day          INTEGER NOT NULL,
        kind         TEXT    NOT NULL,
        issue_level  TEXT    NOT NULL,
        support_role TEXT    NOT NULL,
        assignee     TEXT    NOT NULL,
        value        INTEGER NOT NULL,
        n            INTEGER NOT NULL,
        PRIMARY KEY (day, kind, issue_level, support_role, assignee, value)
    ) WITHOUT ROWID;
"#;

/// Empties the projection (before a replay or a backfill).
pub(super) const CLEAR: &str =
    "DELETE FROM report_tickets; DELETE FROM report_facts; DELETE FROM report_counts;";

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        position: 0,
        reason,
    }
}

/// Writes what `envelope` adds to the reports, inside the caller's transaction.
pub(super) fn project(conn: &Connection, envelope: &EventEnvelope) -> Result<(), StoreError> {
    if !envelope.event.is_ticket_event() {
        return Ok(());
    }
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM report_tickets WHERE id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row(params![envelope.stream_id], |row| row.get(0))
                .optional()
        })
        .map_err(sql_error)?;
    let state: Option<ReportTicket> = state
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| corrupt(format!("report state of {}: {e}", envelope.stream_id)))?;
    let step = report_step(state.as_ref(), envelope);
    if let Some(next) = step.state {
        put_state(conn, &envelope.stream_id, &next)?;
    }
    write_facts(conn, &step.facts)
}

/// Records a ticket's report state.
pub(super) fn put_state(
    conn: &Connection,
    ticket_id: &str,
    state: &ReportTicket,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(state)
        .map_err(|e| StoreError::Unavailable(format!("report state: {e}")))?;
    conn.prepare_cached("INSERT OR REPLACE INTO report_tickets (id, state) VALUES (?1, ?2)")
        .and_then(|mut stmt| stmt.execute(params![ticket_id, text]))
        .map_err(sql_error)?;
    Ok(())
}

/// Stores facts, and counts those of the counted kinds in their day.
pub(super) fn write_facts(conn: &Connection, facts: &[ReportFact]) -> Result<(), StoreError> {
    for fact in facts {
        let assignee = fact.dims.assignee.as_deref().unwrap_or_default();
        let position = to_sql_int(fact.position)?;
        conn.prepare_cached(
            "INSERT INTO report_facts (kind, at, position, recorded_at, issue_level, \
             support_role, assignee, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                fact.kind.as_str(),
                fact.at,
                position,
                fact.recorded_at,
                fact.dims.issue_level.as_str(),
                fact.dims.support_role.as_str(),
                assignee,
                fact.value,
            ])
        })
        .map_err(sql_error)?;
        if fact.kind.is_counted() {
            conn.prepare_cached(
                "INSERT INTO report_counts (day, kind, issue_level, support_role, assignee, \
                 value, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1) \
                 ON CONFLICT DO UPDATE SET n = n + 1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    day_start(fact.at),
                    fact.kind.as_str(),
                    fact.dims.issue_level.as_str(),
                    fact.dims.support_role.as_str(),
                    assignee,
                    fact.value,
                ])
            })
            .map_err(sql_error)?;
        }
    }
    Ok(())
}

/// Rebuilds the projection from every event (the migration that adds it, and replays): each
/// ticket's stream folded on its own, which gives the facts an in-order fold would.
pub(super) fn rebuild(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(CLEAR).map_err(sql_error)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {} FROM events ORDER BY position",
            super::rows::EVENT_COLUMNS
        ))
        .map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut folder = ticketd_projections::reports::ReportFolder::default();
    while let Some(row) = rows.next().map_err(sql_error)? {
        // A damaged row is `ticketd verify`'s to report; it must not keep the store from opening.
        let envelope = match super::rows::event_from_row(row).map_err(sql_error)? {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!("no report facts from a damaged event: {e}");
                continue;
            }
        };
        let facts = folder.step(&envelope);
        write_facts(conn, &facts)?;
    }
    for (id, state) in &folder.tickets {
        put_state(conn, id, state)?;
    }
    Ok(())
}

fn dims_from(row: &Row<'_>, first: usize) -> rusqlite::Result<Result<Dims, StoreError>> {
    let level: String = row.get(first)?;
    let role: String = row.get(first + 1)?;
    let assignee: String = row.get(first + 2)?;
    Ok((|| {
        Ok(Dims {
            issue_level: level
                .parse()
                .map_err(|_| corrupt(format!("report issue_level {level}")))?,
            support_role: role
                .parse()
                .map_err(|_| corrupt(format!("report support_role {role}")))?,
            assignee: (!assignee.is_empty()).then_some(assignee),
        })
    })())
}

fn kind_from(text: &str) -> Result<FactKind, StoreError> {
    FactKind::from_str(text).map_err(|()| corrupt(format!("report fact kind {text}")))
}

const FACT_COLUMNS: &str =
    "kind, at, position, recorded_at, issue_level, support_role, assignee, value";

fn fact_from(row: &Row<'_>) -> rusqlite::Result<Result<ReportFact, StoreError>> {
    let kind: String = row.get(0)?;
    let position: i64 = row.get(2)?;
    let dims = dims_from(row, 4)?;
    let (at, recorded_at, value) = (row.get(1)?, row.get(3)?, row.get(7)?);
    Ok((|| {
        Ok(ReportFact {
            kind: kind_from(&kind)?,
            at,
            position: u64::try_from(position).map_err(|e| corrupt(e.to_string()))?,
            recorded_at,
            dims: dims?,
            value,
        })
    })())
}

/// The column of the dimension `group_by` groups by, if it is not time.
fn dim_column(group_by: GroupBy) -> Option<&'static str> {
    match group_by {
        GroupBy::Day | GroupBy::Week => None,
        GroupBy::IssueLevel => Some("issue_level"),
        GroupBy::SupportRole => Some("support_role"),
        GroupBy::Assignee => Some("assignee"),
    }
}

/// Dims holding only what the grouping reads (the grouped column at `index`, if any): a report
/// never looks at the others, so they are neither selected nor decoded.
fn grouped_dims(row: &Row<'_>, group_by: GroupBy, index: usize) -> Result<Dims, StoreError> {
    let mut dims = Dims {
        issue_level: IssueLevel::Normal,
        support_role: SupportRole::General,
        assignee: None,
    };
    let Some(column) = dim_column(group_by) else {
        return Ok(dims);
    };
    let text: String = row.get(index).map_err(sql_error)?;
    match group_by {
        GroupBy::IssueLevel => {
            dims.issue_level = text
                .parse()
                .map_err(|_| corrupt(format!("report {column} {text}")))?;
        }
        GroupBy::SupportRole => {
            dims.support_role = text
                .parse()
                .map_err(|_| corrupt(format!("report {column} {text}")))?;
        }
        _ => dims.assignee = (!text.is_empty()).then_some(text),
    }
    Ok(dims)
}

/// Facts of `kind` with `at` in `[lo, hi)`, as rows with the dimension `group_by` reads.
fn facts_between(
    conn: &Connection,
    kind: FactKind,
    lo: i64,
    hi: i64,
    as_of: Option<i64>,
    group_by: GroupBy,
    out: &mut Vec<ReportRow>,
) -> Result<(), StoreError> {
    if hi <= lo {
        return Ok(());
    }
    let dim = dim_column(group_by).map_or(String::new(), |c| format!(", {c}"));
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT at, value{dim} FROM report_facts WHERE kind = ?1 AND at >= ?2 AND at < ?3 \
             AND (?4 IS NULL OR recorded_at <= ?4)"
        ))
        .map_err(sql_error)?;
    let mut rows = stmt
        .query(params![kind.as_str(), lo, hi, as_of])
        .map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(ReportRow {
            kind,
            at: row.get(0).map_err(sql_error)?,
            dims: grouped_dims(row, group_by, 2)?,
            value: row.get(1).map_err(sql_error)?,
            count: 1,
        });
    }
    Ok(())
}

/// The report for `query`.
pub(super) fn report(conn: &Connection, query: &ReportQuery) -> Result<Report, StoreError> {
    let mut rows = Vec::new();
    let (lo, hi) = (query.from, query.recorded_end());
    if hi > lo {
        // Whole days from the counters, the part days at either edge from the facts.
        let first_full = if lo.rem_euclid(DAY_MS) == 0 {
            lo
        } else {
            day_start(lo) + DAY_MS
        };
        let last_full = day_start(hi);
        let edges = if first_full < last_full {
            counters_between(conn, first_full, last_full, query.group_by, &mut rows)?;
            [(lo, first_full), (last_full, hi)]
        } else {
            [(lo, hi), (hi, hi)]
        };
        for kind in FactKind::COUNTED {
            for (a, b) in edges {
                facts_between(conn, kind, a, b, None, query.group_by, &mut rows)?;
            }
        }
        for kind in [FactKind::FirstResponse, FactKind::Resolution] {
            facts_between(conn, kind, lo, hi, None, query.group_by, &mut rows)?;
        }
    }
    facts_between(
        conn,
        FactKind::SlaBreach,
        query.from,
        query.to,
        query.as_of,
        query.group_by,
        &mut rows,
    )?;
    Ok(build_report(query, rows))
}

/// The counters of the days in `[lo, hi)`, summed in SQL over what the grouping does not read
/// (by day for a time grouping, over the window for the others).
fn counters_between(
    conn: &Connection,
    lo: i64,
    hi: i64,
    group_by: GroupBy,
    out: &mut Vec<ReportRow>,
) -> Result<(), StoreError> {
    let sql = match dim_column(group_by) {
        None => "SELECT day, kind, value, SUM(n) FROM report_counts WHERE day >= ?1 AND day < ?2 \
                 GROUP BY day, kind, value"
            .to_owned(),
        Some(c) => format!(
            "SELECT MIN(day), kind, value, SUM(n), {c} FROM report_counts \
             WHERE day >= ?1 AND day < ?2 GROUP BY kind, value, {c}"
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let mut rows = stmt.query(params![lo, hi]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let kind: String = row.get(1).map_err(sql_error)?;
        let n: i64 = row.get(3).map_err(sql_error)?;
        out.push(ReportRow {
            kind: kind_from(&kind)?,
            at: row.get(0).map_err(sql_error)?,
            dims: grouped_dims(row, group_by, 4)?,
            value: row.get(2).map_err(sql_error)?,
            count: u64::try_from(n).map_err(|e| corrupt(format!("report count: {e}")))?,
        });
    }
    Ok(())
}

fn counter_from(row: &Row<'_>) -> Result<ReportRow, StoreError> {
    let kind: String = row.get(1).map_err(sql_error)?;
    let n: i64 = row.get(6).map_err(sql_error)?;
    Ok(ReportRow {
        kind: kind_from(&kind)?,
        at: row.get(0).map_err(sql_error)?,
        dims: dims_from(row, 2).map_err(sql_error)??,
        value: row.get(5).map_err(sql_error)?,
        count: u64::try_from(n).map_err(|e| corrupt(format!("report count: {e}")))?,
    })
}

/// Every stored fact, sorted (for `ticketd verify`).
pub(super) fn all_facts(conn: &Connection) -> Result<Vec<ReportFact>, StoreError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {FACT_COLUMNS} FROM report_facts"))
        .map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(fact_from(row).map_err(sql_error)??);
    }
    out.sort();
    Ok(out)
}

/// Every stored counter, sorted (for `ticketd verify`).
pub(super) fn all_counters(conn: &Connection) -> Result<Vec<ReportRow>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT day, kind, issue_level, support_role, assignee, value, n FROM report_counts",
        )
        .map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(counter_from(row)?);
    }
    out.sort();
    Ok(out)
}
