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
//!
//! On the writer thread the index writes of a batch are held back until its last request is
//! done and applied just before the commit, outside the requests' savepoints ([`flush`]): FTS5
//! writes its pending terms out as a new segment at every savepoint, so writing them inside each
//! request's savepoint would cost a segment (and its merges) per post. A rolled-back request
//! drops its held writes ([`mark`], [`undo_to`]); the commit still holds the events, the read
//! models and the index together.

use super::rows::{sql_error, to_sql_int};
use crate::search::text::{QueryTerm, terms};
use crate::store::found;
use rusqlite::{Connection, OptionalExtension, params};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Whether this thread keeps the index: always, but on the writer thread of a store whose
/// index was turned off (`SEARCH_INDEX=off`, a benchmark's and operator's knob; the search
/// route then answers 503, and `ticketd replay` rebuilds the index once it is on).
fn enabled() -> bool {
    KEPT.with(|kept| {
        kept.borrow()
            .as_ref()
            .is_none_or(|on| on.load(Ordering::Relaxed))
    })
}

/// One write to the index, its terms already computed.
enum Op {
    /// Remove a message's row.
    Remove(i64),
    /// Add a message's row: rowid, terms, whether it is a note.
    Message(i64, String, bool),
    /// Add a ticket's row: position, topic terms, description terms.
    Ticket(i64, String, String),
}

thread_local! {
    /// The writes held back on this thread, when it holds them back (the writer thread).
    static HELD: RefCell<Option<Vec<Op>>> = const { RefCell::new(None) };
    /// Whether the store of this (writer) thread keeps the index.
    static KEPT: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Holds this thread's index writes back until [`flush`], and keeps the index only while
/// `kept` is set (called once by the writer thread).
pub(super) fn hold_writes_on_this_thread(kept: Arc<AtomicBool>) {
    HELD.with(|held| *held.borrow_mut() = Some(Vec::new()));
    KEPT.with(|k| *k.borrow_mut() = Some(kept));
}

/// How many writes are held, to [`undo_to`] if the request that follows is rolled back.
pub(super) fn mark() -> usize {
    HELD.with(|held| held.borrow().as_ref().map_or(0, Vec::len))
}

/// Drops the writes held since `mark`.
pub(super) fn undo_to(mark: usize) {
    HELD.with(|held| {
        if let Some(ops) = held.borrow_mut().as_mut() {
            ops.truncate(mark);
        }
    });
}

/// Applies every held write, in order; the batch fails if one fails.
pub(super) fn flush(conn: &Connection) -> Result<(), StoreError> {
    let ops = HELD.with(|held| held.borrow_mut().as_mut().map(std::mem::take));
    for op in ops.unwrap_or_default() {
        run(conn, &op)?;
    }
    Ok(())
}

fn submit(conn: &Connection, op: Op) -> Result<(), StoreError> {
    let now = HELD.with(|held| match held.borrow_mut().as_mut() {
        Some(ops) => {
            ops.push(op);
            None
        }
        None => Some(op),
    });
    match now {
        Some(op) => run(conn, &op),
        None => Ok(()),
    }
}

fn run(conn: &Connection, op: &Op) -> Result<(), StoreError> {
    let result = match op {
        Op::Remove(rowid) => conn
            .prepare_cached("DELETE FROM search_messages WHERE rowid = ?1")
            .and_then(|mut s| s.execute([rowid])),
        Op::Message(rowid, terms, internal) => {
            let (body, note) = if *internal {
                ("", terms.as_str())
            } else {
                (terms.as_str(), "")
            };
            conn.prepare_cached(
                "INSERT INTO search_messages (rowid, body, note) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![rowid, body, note]))
        }
        Op::Ticket(position, topic, description) => conn
            .prepare_cached(
                "INSERT INTO search_tickets (rowid, topic, description) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![position, topic, description])),
    };
    result.map(drop).map_err(sql_error)
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

/// A ticket's row. Rows are only ever added for a ticket or message new to the index (an
/// opening, a post, or a rebuild after `clear`), so no row is replaced.
fn index_ticket(conn: &Connection, ticket: &TicketView) -> Result<(), StoreError> {
    insert_ticket(
        conn,
        to_sql_int(ticket.position)?,
        &ticket.topic,
        &ticket.description,
    )
}

fn insert_ticket(
    conn: &Connection,
    position: i64,
    topic: &str,
    description: &str,
) -> Result<(), StoreError> {
    submit(
        conn,
        Op::Ticket(position, joined(topic), joined(description)),
    )
}

fn index_message(
    conn: &Connection,
    ticket_position: i64,
    message: &MessageView,
) -> Result<(), StoreError> {
    let Some(rowid) = message_rowid(ticket_position, to_sql_int(message.seq)?) else {
        return Ok(());
    };
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
    submit(conn, Op::Message(rowid, joined(content), internal))
}

fn remove(conn: &Connection, rowid: i64) -> Result<(), StoreError> {
    submit(conn, Op::Remove(rowid))
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
