//! The search index in SQLite (ADR 0024): two contentless FTS5 tables fed with the terms of
//! [`crate::search::text`], written by the inline projection in the append's transaction.
//!
//! `search_tickets` holds one row per ticket (rowid: its position) with the topic and the
//! description; `search_messages` one row per live message (rowid: the ticket's position shifted
//! left by [`SEQ_BITS`], plus the message's version in its stream), its text in `body` or, for an
//! internal note, in `note`. The ticket is thus read off a message's rowid, and a word's tickets
//! come from its doclist alone. Contentless (`content=''`): the text is in `tickets` and
//! `messages` already. The terms arrive normalised and space-separated, so the `ascii`
//! tokenizer only splits them again and both stores index the very same words.

use super::rows::{sql_error, to_sql_int};
use crate::search::text::{QueryTerm, terms};
use crate::store::found;
use rusqlite::{Connection, OptionalExtension, params};
use ticketd_events::StoreError;
use ticketd_projections::{Change, MessageView, TicketView};

/// Bits of a message row's rowid that hold its version in the ticket's stream.
pub(super) const SEQ_BITS: u32 = 24;

/// Migration 8's tables.
pub(super) const SCHEMA: &str = "
    CREATE VIRTUAL TABLE search_tickets USING fts5(topic, description, content = '',
        contentless_delete = 1, tokenize = 'ascii', detail = column);
    CREATE VIRTUAL TABLE search_messages USING fts5(body, note, content = '',
        contentless_delete = 1, tokenize = 'ascii', detail = column);
";

/// Whether the index is kept: on unless `SEARCH_INDEX=off` (a benchmark's and operator's knob;
/// the search route then answers 503, and `ticketd replay` rebuilds the index once it is on).
pub fn enabled() -> bool {
    crate::search::index_enabled()
}

/// Keeps the index up with one read-model change; called before the change is applied.
pub(super) fn apply(conn: &Connection, change: &Change) -> Result<(), StoreError> {
    if !enabled() {
        return Ok(());
    }
    match change {
        Change::InsertTicket(ticket) => index_ticket(conn, ticket),
        Change::InsertMessage(message) => {
            let Some(position) = ticket_position(conn, &message.ticket_id)? else {
                return Ok(());
            };
            index_message(conn, position, message)
        }
        Change::EditMessage {
            message_id,
            content,
            ..
        } => {
            if let Some((rowid, internal, deleted)) = message_row(conn, message_id)? {
                remove(conn, rowid)?;
                if !deleted {
                    insert_message(conn, rowid, content, internal)?;
                }
            }
            Ok(())
        }
        Change::DeleteMessage { message_id, .. } => match message_row(conn, message_id)? {
            Some((rowid, _, _)) => remove(conn, rowid),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Empties both tables (`ticketd replay` refills them through [`apply`]).
pub(super) fn clear(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "INSERT INTO search_tickets (search_tickets) VALUES ('delete-all'); \
         INSERT INTO search_messages (search_messages) VALUES ('delete-all');",
    )
    .map_err(sql_error)
}

/// Fills the tables of a file from before the index from its read models (migration 8).
pub(super) fn backfill(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare("SELECT position, topic, description FROM tickets ORDER BY position")
        .map_err(sql_error)?;
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)?;
    for (position, topic, description) in rows {
        insert_ticket(conn, position, &topic, &description)?;
    }
    let mut stmt = conn
        .prepare(
            "SELECT t.position, m.seq, m.content, m.internal FROM messages m \
             JOIN tickets t ON t.id = m.ticket_id WHERE m.deleted_at IS NULL \
             ORDER BY m.position",
        )
        .map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let (position, seq, content, internal): (i64, i64, String, bool) = (
            row.get(0).map_err(sql_error)?,
            row.get(1).map_err(sql_error)?,
            row.get(2).map_err(sql_error)?,
            row.get(3).map_err(sql_error)?,
        );
        if let Some(rowid) = message_rowid(position, seq) {
            insert_message(conn, rowid, &content, internal)?;
        }
    }
    Ok(())
}

fn index_ticket(conn: &Connection, ticket: &TicketView) -> Result<(), StoreError> {
    let position = to_sql_int(ticket.position)?;
    conn.prepare_cached("DELETE FROM search_tickets WHERE rowid = ?1")
        .and_then(|mut s| s.execute([position]))
        .map_err(sql_error)?;
    insert_ticket(conn, position, &ticket.topic, &ticket.description)
}

fn insert_ticket(
    conn: &Connection,
    position: i64,
    topic: &str,
    description: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO search_tickets (rowid, topic, description) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut s| s.execute(params![position, joined(topic), joined(description)]))
    .map_err(sql_error)
    .map(drop)
}

fn index_message(
    conn: &Connection,
    ticket_position: i64,
    message: &MessageView,
) -> Result<(), StoreError> {
    let Some(rowid) = message_rowid(ticket_position, to_sql_int(message.seq)?) else {
        return Ok(());
    };
    remove(conn, rowid)?;
    if message.deleted_at.is_some() {
        return Ok(());
    }
    insert_message(conn, rowid, &message.content, message.internal)
}

fn insert_message(
    conn: &Connection,
    rowid: i64,
    content: &str,
    internal: bool,
) -> Result<(), StoreError> {
    let text = joined(content);
    let (body, note) = if internal {
        ("", text.as_str())
    } else {
        (text.as_str(), "")
    };
    conn.prepare_cached("INSERT INTO search_messages (rowid, body, note) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![rowid, body, note]))
        .map_err(sql_error)
        .map(drop)
}

fn remove(conn: &Connection, rowid: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM search_messages WHERE rowid = ?1")
        .and_then(|mut s| s.execute([rowid]))
        .map_err(sql_error)
        .map(drop)
}

/// A message row's rowid; `None` past what the layout holds (a ticket position beyond 2^39 or
/// a version beyond 2^24: such a message is left out of the index rather than failing the post).
fn message_rowid(ticket_position: i64, seq: i64) -> Option<i64> {
    let fits =
        (0..1 << (63 - SEQ_BITS)).contains(&ticket_position) && (0..1 << SEQ_BITS).contains(&seq);
    if !fits {
        tracing::warn!(
            ticket_position,
            seq,
            "a message beyond the search index's layout"
        );
    }
    fits.then_some((ticket_position << SEQ_BITS) | seq)
}

fn ticket_position(conn: &Connection, ticket_id: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT position FROM tickets WHERE id = ?1")
        .and_then(|mut s| s.query_row([ticket_id], |r| r.get(0)).optional())
        .map_err(sql_error)
}

/// A message's index rowid, whether it is a note, and whether it is deleted.
fn message_row(
    conn: &Connection,
    message_id: &str,
) -> Result<Option<(i64, bool, bool)>, StoreError> {
    let row: Option<(i64, i64, bool, Option<i64>)> = conn
        .prepare_cached(
            "SELECT t.position, m.seq, m.internal, m.deleted_at FROM messages m \
             JOIN tickets t ON t.id = m.ticket_id WHERE m.id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([message_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(sql_error)?;
    Ok(row.and_then(|(position, seq, internal, deleted)| {
        message_rowid(position, seq).map(|rowid| (rowid, internal, deleted.is_some()))
    }))
}

/// A document's terms as the tables store them.
fn joined(text: &str) -> String {
    terms(text).join(" ")
}

/// An FTS5 query for one word in `columns` (all when empty). Terms are letters and digits only,
/// but are quoted anyway so no word is ever read as an operator.
fn fts_query(columns: &str, term: &QueryTerm) -> String {
    let quoted = format!("\"{}\"", term.term.replace('"', "\"\""));
    let star = if term.prefix { " *" } else { "" };
    if columns.is_empty() {
        format!("{quoted}{star}")
    } else {
        format!("{{{columns}}} : {quoted}{star}")
    }
}

/// See [`crate::store::SearchIndex::search_term`].
pub(super) fn search_term(
    conn: &Connection,
    term: &QueryTerm,
    include_internal: bool,
) -> Result<Vec<(u64, u8)>, StoreError> {
    let mut found: std::collections::BTreeMap<u64, u8> = std::collections::BTreeMap::new();
    let mut rowids = |sql: &str, query: String, shift: u32, bit: u8| -> Result<(), StoreError> {
        let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
        let mut rows = stmt.query([query]).map_err(sql_error)?;
        let mut last = None;
        while let Some(row) = rows.next().map_err(sql_error)? {
            let rowid: i64 = row.get(0).map_err(sql_error)?;
            let position = u64::try_from(rowid >> shift).unwrap_or(0);
            // A ticket's message rows are adjacent: count each ticket once.
            if last != Some(position) {
                *found.entry(position).or_default() |= bit;
                last = Some(position);
            }
        }
        Ok(())
    };
    let tickets = "SELECT rowid FROM search_tickets WHERE search_tickets MATCH ?1";
    rowids(tickets, fts_query("topic", term), 0, found::TOPIC)?;
    rowids(
        tickets,
        fts_query("description", term),
        0,
        found::DESCRIPTION,
    )?;
    let columns = if include_internal { "" } else { "body" };
    rowids(
        "SELECT rowid FROM search_messages WHERE search_messages MATCH ?1",
        fts_query(columns, term),
        SEQ_BITS,
        found::MESSAGE,
    )?;
    Ok(found.into_iter().collect())
}
