//! The search index in SQLite (ADR 0024): two contentless FTS5 tables fed with the terms of
//! [`crate::search::text`], written by the inline projection in the append's transaction.
//!
//! `search_tickets` holds one row per ticket (rowid: its position) with the topic and the
//! description. Messages are indexed per ticket rather than per message: a search wants
//! tickets, and a common word's message-level doclist (most of a million rows on the
//! benchmark) cost far more than the 20 ms a whole query may take. A message's row in
//! `search_messages` (rowid: the ticket's position shifted left by [`SEQ_BITS`], plus the
//! message's version in its stream; `body` for public messages, `note` for internal ones) holds
//! only the terms its ticket did not hold yet, as far as the writer remembers ([`Known`]): a
//! word's doclist then has about one row per ticket, and the ticket is read off each rowid.
//! What the writer does not remember (after a restart, or a ticket it forgot) is written again:
//! a duplicate row costs a little doclist, never a wrong answer. A deletion or an edit writes
//! the ticket's rows again from its live messages ([`Op::Rebuild`]), so the first row holding a
//! word is always the first live message holding it (where excerpts are looked for).
//! Contentless (`content=''`): the text is in `tickets` and `messages` already. The terms
//! arrive normalised and space-separated, so the `ascii` tokenizer only splits them again and
//! both stores index the very same words.
//!
//! On the writer thread the index writes of a batch are held back until its last request is
//! done and applied just before the commit, outside the requests' savepoints ([`flush`]): FTS5
//! writes its pending terms out as a new segment at every savepoint, so writing them inside each
//! request's savepoint would cost a segment (and its merges) per post. A rolled-back request
//! drops its held writes ([`mark`], [`undo_to`]); the commit still holds the events, the read
//! models and the index together, and a batch that does not commit makes the writer forget what
//! it remembered ([`forget_known`]).

use super::rows::{sql_error, to_sql_int};
use crate::search::text::{QueryTerm, terms};
use crate::store::{TermHit, found};
use rusqlite::{Connection, OptionalExtension, params};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use ticketd_events::StoreError;
use ticketd_projections::{Change, TicketView};

/// Bits of a message row's rowid that hold its version in the ticket's stream.
pub(super) const SEQ_BITS: u32 = 24;

/// Most terms the writer remembers, over all tickets (about 64 bytes each): past it, the
/// tickets remembered longest are forgotten first.
const KNOWN_TERMS: usize = 500_000;

/// Migration 8's tables (migration 11 replaces `search_messages`: [`TICKET_TERMS_SCHEMA`]).
pub(super) const SCHEMA: &str = "
    CREATE VIRTUAL TABLE search_tickets USING fts5(topic, description, content = '',
        contentless_delete = 1, tokenize = 'ascii', detail = column);
    CREATE VIRTUAL TABLE search_messages USING fts5(body, note, content = '',
        contentless_delete = 1, tokenize = 'ascii', detail = column);
";

/// Migration 11: messages indexed per ticket (see the module's header), filled again from the
/// read models by [`rebuild_messages`].
pub(super) const TICKET_TERMS_SCHEMA: &str = "
    DROP TABLE search_messages;
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
    /// A posted message's terms join its ticket's.
    Add(MessageTerms),
    /// The ticket's message rows are written again from its live messages (a message was
    /// deleted or edited).
    Rebuild(i64),
    /// Add a ticket's row: position, topic terms, description terms.
    Ticket(i64, String, String),
}

/// The terms of one message, and where they go.
struct MessageTerms {
    /// The ticket's position.
    position: i64,
    /// The message's version in the ticket's stream.
    seq: i64,
    /// Whether it is an internal note.
    internal: bool,
    /// Its distinct terms.
    terms: Vec<String>,
}

/// The terms the writer knows each recent ticket's message rows to hold, public and internal
/// apart. Only ever a subset of what the index holds (it is filled as rows are written, and
/// emptied when a batch fails), so a term it does not know is merely written again.
#[derive(Default)]
struct Known {
    tickets: HashMap<(i64, bool), HashSet<String>>,
    /// The tickets in the order they were first remembered, to forget the oldest first.
    order: VecDeque<(i64, bool)>,
    terms: usize,
}

impl Known {
    /// The terms of `message` not known yet for its ticket, now known.
    fn learn(&mut self, message: &MessageTerms) -> Vec<String> {
        let key = (message.position, message.internal);
        let set = self.tickets.entry(key).or_insert_with(|| {
            self.order.push_back(key);
            HashSet::new()
        });
        let new: Vec<String> = message
            .terms
            .iter()
            .filter(|t| set.insert((*t).clone()))
            .cloned()
            .collect();
        self.terms += new.len();
        self.trim();
        new
    }

    /// Remembers a ticket's complete sets, as a rebuild wrote them.
    fn replace(&mut self, position: i64, sets: [(bool, HashSet<String>); 2]) {
        for (internal, set) in sets {
            let key = (position, internal);
            self.terms += set.len();
            match self.tickets.insert(key, set) {
                Some(old) => self.terms -= old.len(),
                None => self.order.push_back(key),
            }
        }
        self.trim();
    }

    fn trim(&mut self) {
        while self.terms > KNOWN_TERMS {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.tickets.remove(&key) {
                self.terms -= old.len();
            }
        }
    }
}

thread_local! {
    /// The writes held back on this thread, when it holds them back (the writer thread).
    static HELD: RefCell<Option<Vec<Op>>> = const { RefCell::new(None) };
    /// Whether the store of this (writer) thread keeps the index.
    static KEPT: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    /// What the writer thread knows the index to hold (none on other threads).
    static KNOWN: RefCell<Option<Known>> = const { RefCell::new(None) };
}

/// Holds this thread's index writes back until [`flush`], and keeps the index only while
/// `kept` is set (called once by the writer thread).
pub(super) fn hold_writes_on_this_thread(kept: Arc<AtomicBool>) {
    HELD.with(|held| *held.borrow_mut() = Some(Vec::new()));
    KEPT.with(|k| *k.borrow_mut() = Some(kept));
    KNOWN.with(|known| *known.borrow_mut() = Some(Known::default()));
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

/// Forgets what this thread knew the index to hold: called when a batch that wrote to it does
/// not commit.
pub(super) fn forget_known() {
    KNOWN.with(|known| {
        if let Some(known) = known.borrow_mut().as_mut() {
            *known = Known::default();
        }
    });
}

/// Applies every held write, in order; the batch fails if one fails. A ticket rebuilt in the
/// batch is rebuilt once, after its other writes, from the messages as the batch leaves them,
/// which already hold its posts.
pub(super) fn flush(conn: &Connection) -> Result<(), StoreError> {
    let ops = HELD
        .with(|held| held.borrow_mut().as_mut().map(std::mem::take))
        .unwrap_or_default();
    let rebuilt: BTreeSet<i64> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Rebuild(position) => Some(*position),
            _ => None,
        })
        .collect();
    for op in &ops {
        match op {
            Op::Add(message) if rebuilt.contains(&message.position) => {}
            Op::Rebuild(_) => {}
            op => run(conn, op)?,
        }
    }
    for position in rebuilt {
        run(conn, &Op::Rebuild(position))?;
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
    match op {
        Op::Add(message) => {
            let new = KNOWN.with(|known| match known.borrow_mut().as_mut() {
                Some(known) => known.learn(message),
                None => message.terms.clone(),
            });
            if new.is_empty() {
                return Ok(());
            }
            insert_row(
                conn,
                row_id(message.position, message.seq),
                &new.join(" "),
                message.internal,
            )
        }
        Op::Rebuild(position) => rebuild_ticket(conn, *position),
        Op::Ticket(position, topic, description) => conn
            .prepare_cached(
                "INSERT INTO search_tickets (rowid, topic, description) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![position, topic, description]))
            .map(drop)
            .map_err(sql_error),
    }
}

fn insert_row(
    conn: &Connection,
    rowid: i64,
    terms: &str,
    internal: bool,
) -> Result<(), StoreError> {
    let (body, note) = if internal { ("", terms) } else { (terms, "") };
    conn.prepare_cached("INSERT INTO search_messages (rowid, body, note) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![rowid, body, note]))
        .map(drop)
        .map_err(sql_error)
}

/// Writes a ticket's message rows again from its live messages, each holding the terms new to
/// the ticket (of its kind) in posting order. It reads every live message of the ticket: the
/// price of a deletion or an edit, paid so that posts, far more common, write only new terms.
fn rebuild_ticket(conn: &Connection, position: i64) -> Result<(), StoreError> {
    let (low, high) = (row_id(position, 0), row_id(position, (1 << SEQ_BITS) - 1));
    let old: Vec<i64> = conn
        .prepare_cached("SELECT id FROM search_messages_docsize WHERE id BETWEEN ?1 AND ?2")
        .and_then(|mut s| s.query_map(params![low, high], |r| r.get(0))?.collect())
        .map_err(sql_error)?;
    {
        let mut delete = conn
            .prepare_cached("DELETE FROM search_messages WHERE rowid = ?1")
            .map_err(sql_error)?;
        for rowid in old {
            delete.execute([rowid]).map_err(sql_error)?;
        }
    }
    let mut seen: [HashSet<String>; 2] = Default::default();
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.seq, m.internal, m.content FROM tickets t \
             JOIN messages m ON m.ticket_id = t.id \
             WHERE t.position = ?1 AND m.deleted_at IS NULL ORDER BY m.seq",
        )
        .map_err(sql_error)?;
    let mut rows = stmt.query([position]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let (seq, internal, content): (i64, bool, String) = (
            row.get(0).map_err(sql_error)?,
            row.get(1).map_err(sql_error)?,
            row.get(2).map_err(sql_error)?,
        );
        if !fits(position, seq) {
            continue;
        }
        let set = &mut seen[usize::from(internal)];
        let new: Vec<String> = terms(&content)
            .into_iter()
            .filter(|t| set.insert(t.clone()))
            .collect();
        if !new.is_empty() {
            insert_row(conn, row_id(position, seq), &new.join(" "), internal)?;
        }
    }
    let [public, notes] = seen;
    KNOWN.with(|known| {
        if let Some(known) = known.borrow_mut().as_mut() {
            known.replace(position, [(false, public), (true, notes)]);
        }
    });
    Ok(())
}

/// Keeps the index up with one read-model change; called before the change is applied.
pub(super) fn apply(conn: &Connection, change: &Change) -> Result<(), StoreError> {
    if !enabled() {
        return Ok(());
    }
    match change {
        Change::InsertTicket(ticket) => index_ticket(conn, ticket),
        Change::InsertMessage(message) => {
            if message.deleted_at.is_some() {
                return Ok(());
            }
            let Some(position) = ticket_position(conn, &message.ticket_id)? else {
                return Ok(());
            };
            let seq = to_sql_int(message.seq)?;
            if !fits(position, seq) {
                return Ok(());
            }
            submit(
                conn,
                Op::Add(MessageTerms {
                    position,
                    seq,
                    internal: message.internal,
                    terms: terms(&message.content),
                }),
            )
        }
        Change::EditMessage { message_id, .. } | Change::DeleteMessage { message_id, .. } => {
            match message_ticket(conn, message_id)? {
                Some(position) => submit(conn, Op::Rebuild(position)),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Empties the index (`ticketd replay` refills it through [`apply`] and [`rebuild_messages`]).
pub(super) fn clear(conn: &Connection) -> Result<(), StoreError> {
    forget_known();
    conn.execute_batch(
        "INSERT INTO search_tickets (search_tickets) VALUES ('delete-all'); \
         INSERT INTO search_messages (search_messages) VALUES ('delete-all');",
    )
    .map_err(sql_error)
}

/// Fills the tickets' table of a file from before the index from its read models (migration
/// 8; the messages follow at migration 11, [`rebuild_messages`]).
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
        submit(
            conn,
            Op::Ticket(position, joined(&topic), joined(&description)),
        )?;
    }
    Ok(())
}

/// Writes every ticket's message rows again from the live messages of the read models
/// (migration 11, and `ticketd replay` once the read models are rebuilt).
pub(super) fn rebuild_messages(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("INSERT INTO search_messages (search_messages) VALUES ('delete-all');")
        .map_err(sql_error)?;
    let positions: Vec<i64> = conn
        .prepare("SELECT position FROM tickets ORDER BY position")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sql_error)?;
    for position in positions {
        rebuild_ticket(conn, position)?;
    }
    Ok(())
}

/// A ticket's row. Rows are only ever added for a ticket new to the index (an opening, or a
/// rebuild after `clear`), so no row is replaced.
fn index_ticket(conn: &Connection, ticket: &TicketView) -> Result<(), StoreError> {
    submit(
        conn,
        Op::Ticket(
            to_sql_int(ticket.position)?,
            joined(&ticket.topic),
            joined(&ticket.description),
        ),
    )
}

/// Whether a message's row fits the rowid layout; past it (a ticket position beyond 2^39 or a
/// version beyond 2^24) the message is left out of the index rather than failing the post.
fn fits(position: i64, seq: i64) -> bool {
    let fits = (0..1 << (63 - SEQ_BITS)).contains(&position) && (0..1 << SEQ_BITS).contains(&seq);
    if !fits {
        tracing::warn!(
            ticket_position = position,
            seq,
            "a message beyond the search index's layout"
        );
    }
    fits
}

/// The rowid of a ticket's message row (in range: see [`fits`]).
fn row_id(position: i64, seq: i64) -> i64 {
    (position << SEQ_BITS) | seq
}

/// The position of a message's ticket.
fn message_ticket(conn: &Connection, message_id: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached(
        "SELECT t.position FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.id = ?1",
    )
    .and_then(|mut s| s.query_row([message_id], |r| r.get(0)).optional())
    .map_err(sql_error)
}

fn ticket_position(conn: &Connection, ticket_id: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT position FROM tickets WHERE id = ?1")
        .and_then(|mut s| s.query_row([ticket_id], |r| r.get(0)).optional())
        .map_err(sql_error)
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

/// See [`crate::store::SearchIndex::search_term`]. The first of a ticket's message rows holding
/// the term is that of the first live message holding it (see the module's header): a hit's
/// `first_message`.
pub(super) fn search_term(
    conn: &Connection,
    term: &QueryTerm,
    include_internal: bool,
) -> Result<Vec<TermHit>, StoreError> {
    let mut found: BTreeMap<u64, (u8, Option<u64>)> = BTreeMap::new();
    let mut rowids = |sql: &str, query: String, bit: u8| -> Result<(), StoreError> {
        let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
        let mut rows = stmt.query([query]).map_err(sql_error)?;
        let shift = if bit == found::MESSAGE { SEQ_BITS } else { 0 };
        let mut last = None;
        while let Some(row) = rows.next().map_err(sql_error)? {
            let rowid: i64 = row.get(0).map_err(sql_error)?;
            let position = u64::try_from(rowid >> shift).unwrap_or(0);
            // A ticket's message rows are adjacent and ascending: the first is the earliest.
            if last != Some(position) {
                let entry = found.entry(position).or_default();
                entry.0 |= bit;
                if bit == found::MESSAGE {
                    let seq = u64::try_from(rowid & ((1 << SEQ_BITS) - 1)).unwrap_or(0);
                    entry.1 = Some(entry.1.map_or(seq, |s| s.min(seq)));
                }
                last = Some(position);
            }
        }
        Ok(())
    };
    let tickets = "SELECT rowid FROM search_tickets WHERE search_tickets MATCH ?1";
    rowids(tickets, fts_query("topic", term), found::TOPIC)?;
    rowids(tickets, fts_query("description", term), found::DESCRIPTION)?;
    let columns = if include_internal { "" } else { "body" };
    rowids(
        "SELECT rowid FROM search_messages WHERE search_messages MATCH ?1",
        fts_query(columns, term),
        found::MESSAGE,
    )?;
    Ok(found
        .into_iter()
        .map(|(position, (bits, first_message))| TermHit {
            position,
            found: bits,
            first_message,
        })
        .collect())
}
