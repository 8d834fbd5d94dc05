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
//! done and applied just before the commit, outside the requests' savepoints ([`flush`]). A
//! batch's new message rows do not go to FTS5 at once: they go to `search_pending` as one plain
//! row, each with all its terms, and the writer moves them all into FTS5 together, a ticket's at
//! a time, keeping only the terms new to it ([`move_pending`]): while idle once a thousand wait
//! ([`move_when_idle`]), or in the batch that finds four thousand; a search reads both (ADR
//! 0024, "Pending rows"). FTS5 writes a segment, its structure and a size row per
//! message at every commit, which cost posts most of the index's price. A rolled-back request
//! drops its held writes ([`mark`], [`undo_to`]); the commit still holds the events, the read
//! models and the index together, and a batch that does not commit makes the writer forget what
//! it remembered ([`forget_known`]).

use super::rows::{sql_error, to_sql_int};
use crate::search::text::{QueryTerm, terms};
use crate::store::{TermHit, found};
use rusqlite::{Connection, OptionalExtension, params};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use ticketd_events::StoreError;
use ticketd_projections::{Change, TicketView};

/// Bits of a message row's rowid that hold its version in the ticket's stream.
pub(super) const SEQ_BITS: u32 = 24;

/// Most terms the writer remembers, over all tickets (a 16-byte fingerprint each, about 32
/// bytes with its table's room): past it, the tickets remembered longest are forgotten first.
const KNOWN_TERMS: usize = 500_000;

/// Most tickets the writer remembers (their positions by id, and their terms): a ticket is
/// remembered from its first post, words or not.
const KNOWN_TICKETS: usize = 100_000;

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

/// Migration 12: message rows not yet moved into `search_messages` (see [`flush`]), one row per
/// batch that wrote any: `lines` holds a line per message, `<rowid> <b|n> <terms>` (`b` for its
/// `body` column, `n` for `note`; all the message's distinct terms), and `messages` counts them.
pub(super) const PENDING_SCHEMA: &str = "
    CREATE TABLE search_pending (
        id       INTEGER PRIMARY KEY,
        messages INTEGER NOT NULL,
        lines    TEXT    NOT NULL
    );
";

/// Message rows held in `search_pending` before a batch moves them all into FTS5 at once: more
/// makes posts cheaper (fewer FTS5 segments, and fewer scattered size rows, per commit) and
/// every search dearer (each query term reads them all).
const PENDING_ROWS: usize = 4096;

/// The hasher of the writer's maps by ticket, which every post looks up: quicker than the
/// standard SipHash, and seeded at random per map all the same, so ids cannot be chosen to
/// collide.
type Fast = foldhash::fast::RandomState;

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

/// The distinct terms of a message, space-separated: what the writer needs of a post, computed
/// before the post reaches it ([`offer`]).
pub(crate) fn message_terms(content: &str) -> String {
    terms(content).join(" ")
}

/// A term's 128 bits, from two hashes seeded at random once per process: what the writer
/// remembers a term by ([`Known`]). A set of fingerprints is looked up in one probe of a
/// compact table, where a set of strings cost a cache miss and a comparison per word (most of
/// the index's cost to a post). Two words of one ticket share a fingerprint with odds below
/// 2^-88 even at a million words (the birthday bound of 128 random bits), and the seeds are
/// unknown outside the process, so words cannot be chosen to collide; a collision would leave
/// one word of one message out of the index.
fn fingerprint(term: &str) -> u128 {
    static SEEDS: std::sync::OnceLock<[foldhash::quality::RandomState; 2]> =
        std::sync::OnceLock::new();
    let [high, low] = SEEDS.get_or_init(Default::default);
    (u128::from(high.hash_one(term)) << 64) | u128::from(low.hash_one(term))
}

/// Hashes a fingerprint by taking its low bits: it is a hash already.
#[derive(Default)]
struct PrintHasher(u64);

impl std::hash::Hasher for PrintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u128(&mut self, print: u128) {
        self.0 = print as u64;
    }
}

/// A set of term fingerprints.
type Prints = HashSet<u128, std::hash::BuildHasherDefault<PrintHasher>>;

/// The terms of one message, and where they go.
struct MessageTerms {
    /// The ticket's id and position.
    ticket: (String, i64),
    /// The message's version in the ticket's stream.
    seq: i64,
    /// Whether it is an internal note.
    internal: bool,
    /// Its distinct terms, space-separated.
    terms: String,
}

/// What the writer knows of a recent ticket's message rows: the terms they hold, public and
/// internal apart.
struct KnownTicket {
    id: String,
    terms: [Prints; 2],
}

/// The terms the writer knows each recent ticket's message rows to hold, and where those
/// tickets are. Only ever a subset of what the index holds (it is filled as rows are written,
/// and emptied when a batch fails), so a term it does not know is merely written again.
#[derive(Default)]
struct Known {
    /// By ticket position.
    tickets: HashMap<i64, KnownTicket, Fast>,
    /// The positions of the same tickets by id, so a post needs no look-up.
    positions: HashMap<String, i64, Fast>,
    /// The tickets in the order they were first remembered, to forget the oldest first.
    order: VecDeque<i64>,
    terms: usize,
}

impl Known {
    fn ticket(&mut self, position: i64, id: &str) -> &mut KnownTicket {
        self.tickets.entry(position).or_insert_with(|| {
            self.order.push_back(position);
            self.positions.insert(id.to_owned(), position);
            KnownTicket {
                id: id.to_owned(),
                terms: Default::default(),
            }
        })
    }

    /// Of a message row's `terms` (space-separated) for the ticket at `position`, those not
    /// known yet for it, now known, space-separated; all of them when the ticket is not
    /// remembered (it was forgotten, or its first post since a restart was not flushed here).
    fn learn<'a>(&mut self, position: i64, internal: bool, terms: &'a str) -> Cow<'a, str> {
        let Some(ticket) = self.tickets.get_mut(&position) else {
            return Cow::Borrowed(terms);
        };
        let set = &mut ticket.terms[usize::from(internal)];
        let mut new = String::new();
        let mut added = 0;
        for term in terms.split(' ').filter(|t| !t.is_empty()) {
            if set.insert(fingerprint(term)) {
                if !new.is_empty() {
                    new.push(' ');
                }
                new.push_str(term);
                added += 1;
            }
        }
        self.terms += added;
        self.trim();
        Cow::Owned(new)
    }

    /// Remembers a ticket's complete sets, as a rebuild wrote them.
    fn replace(&mut self, position: i64, id: &str, terms: [Prints; 2]) {
        let ticket = self.ticket(position, id);
        let old = ticket.terms.iter().map(HashSet::len).sum::<usize>();
        ticket.terms = terms;
        let new = ticket.terms.iter().map(HashSet::len).sum::<usize>();
        self.terms = self.terms + new - old;
        self.trim();
    }

    fn position(&self, id: &str) -> Option<i64> {
        self.positions.get(id).copied()
    }

    fn trim(&mut self) {
        while self.terms > KNOWN_TERMS || self.order.len() > KNOWN_TICKETS {
            let Some(position) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.tickets.remove(&position) {
                self.terms -= old.terms.iter().map(HashSet::len).sum::<usize>();
                self.positions.remove(&old.id);
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
    /// How many rows `search_pending` holds as the writer thread counted them (none when not
    /// counted yet, or after a batch that did not commit).
    static PENDING: RefCell<Option<usize>> = const { RefCell::new(None) };
    /// The terms of the message the event being projected posts, computed on the caller's
    /// task ([`offer`]).
    static OFFERED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Hands the terms of the message the next event posts, computed before it reached the
/// writer, to its projection (`None` after it, or for an event that posts none): the writer
/// is the one thread every append waits for, and splitting and folding words is work any
/// thread can do.
pub(super) fn offer(terms: Option<String>) {
    OFFERED.with(|offered| *offered.borrow_mut() = terms);
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
    PENDING.with(|pending| *pending.borrow_mut() = None);
}

/// Counts `delta` more (or fewer) rows in `search_pending`, if they are being counted.
fn count_pending(delta: isize) {
    PENDING.with(|pending| {
        if let Some(n) = pending.borrow_mut().as_mut() {
            *n = n.saturating_add_signed(delta);
        }
    });
}

/// Applies every held write; the batch fails if one fails. The batch's new message rows go to
/// `search_pending` as one row, and once that holds [`PENDING_ROWS`] or more they all move into
/// FTS5 at once. A ticket rebuilt in the batch is rebuilt once, after its other writes, from
/// the messages as the batch leaves them, which already hold its posts.
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
    let (mut lines, mut messages) = (String::new(), 0usize);
    for op in &ops {
        match op {
            Op::Add(message) if rebuilt.contains(&message.ticket.1) => {}
            Op::Add(message) => {
                let (id, position) = &message.ticket;
                KNOWN.with(|known| {
                    if let Some(known) = known.borrow_mut().as_mut() {
                        known.ticket(*position, id);
                        known.trim();
                    }
                });
                if !message.terms.is_empty() {
                    let rowid = row_id(*position, message.seq);
                    let column = if message.internal { 'n' } else { 'b' };
                    // Writing to a String cannot fail.
                    let _ = writeln!(lines, "{rowid} {column} {}", message.terms);
                    messages += 1;
                }
            }
            Op::Rebuild(_) => {}
            op => run(conn, op)?,
        }
    }
    if messages > 0 {
        let count = i64::try_from(messages).unwrap_or(i64::MAX);
        conn.prepare_cached("INSERT INTO search_pending (messages, lines) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![count, lines]))
            .map_err(sql_error)?;
        count_pending(messages.try_into().unwrap_or(isize::MAX));
    }
    for position in rebuilt {
        rebuild_ticket(conn, position, true)?;
    }
    let pending = match PENDING.with(|p| *p.borrow()) {
        Some(n) => n,
        None => conn
            .query_row(
                "SELECT coalesce(sum(messages), 0) FROM search_pending",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(sql_error)?,
    };
    let pending = if pending >= PENDING_ROWS {
        move_pending(conn)?;
        0
    } else {
        pending
    };
    PENDING.with(|p| *p.borrow_mut() = Some(pending));
    Ok(())
}

/// Pending message rows worth a move of their own while the writer has nothing else to do: a
/// request that arrives meanwhile waits for at most a move of this size, and fewer would write
/// FTS5 segments too small to be worth their commit.
const IDLE_ROWS: usize = 1024;

/// Whether the writer, idle, should move the pending rows ([`move_when_idle`]): the index is
/// kept and the rows it counted reach [`IDLE_ROWS`] (none counted yet: no).
pub(super) fn worth_moving_when_idle() -> bool {
    enabled() && PENDING.with(|p| p.borrow().is_some_and(|n| n >= IDLE_ROWS))
}

/// Moves every pending row into FTS5, in the caller's transaction, and counts none pending
/// (forgotten again by [`forget_known`] if the transaction does not commit).
pub(super) fn move_when_idle(conn: &Connection) -> Result<(), StoreError> {
    move_pending(conn)?;
    PENDING.with(|p| *p.borrow_mut() = Some(0));
    Ok(())
}

/// A line of `search_pending`: the message row's rowid, whether it is an internal note, and
/// its terms.
fn parse_line(line: &str) -> Option<(i64, bool, &str)> {
    let (rowid, rest) = line.split_once(' ')?;
    let (column, terms) = rest.split_once(' ')?;
    Some((rowid.parse().ok()?, column == "n", terms))
}

/// The rowid and kind (internal or not) of each of a pending row's `lines` holding `term`.
/// Only the lines where the word occurs are read: a line holds all its message's words, and a
/// search reads every pending row for each word of the query.
fn pending_matches<'a>(
    lines: &'a str,
    term: &'a QueryTerm,
) -> impl Iterator<Item = (i64, bool)> + 'a {
    let mut next_line = 0;
    lines
        .match_indices(term.term.as_str())
        .filter_map(move |(at, word)| {
            if at < next_line {
                return None;
            }
            let start = lines[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = lines[at..].find('\n').map_or(lines.len(), |i| at + i);
            let (rowid, internal, terms) = parse_line(&lines[start..end])?;
            let terms_start = end - terms.len();
            // The word must start a term (an occurrence in the rowid is before the terms), and
            // end it unless matched as a prefix.
            if at < terms_start || !(at == terms_start || lines[..at].ends_with(' ')) {
                return None;
            }
            let after = &lines[at + word.len()..end];
            if !(term.prefix || after.is_empty() || after.starts_with(' ')) {
                return None;
            }
            next_line = end;
            Some((rowid, internal))
        })
}

/// Calls `each` with every pending row's id and lines.
fn pending_rows(
    conn: &Connection,
    mut each: impl FnMut(i64, &str) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id, lines FROM search_pending")
        .map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let id = row.get(0).map_err(sql_error)?;
        let lines = row
            .get_ref(1)
            .and_then(|v| v.as_str().map_err(Into::into))
            .map_err(sql_error)?;
        each(id, lines)?;
    }
    Ok(())
}

/// Moves every pending message row into `search_messages`, in one FTS5 write, each with the
/// terms new to its ticket ([`Known::learn`]). The rows are taken in rowid order, a ticket's
/// together, so each ticket's remembered terms are looked up while they are in the cache: done
/// per post, those look-ups missed it nearly every time. Each message keeps a row of its own:
/// writing a ticket's nearby messages as one row made moves cheaper but excerpts dearer (the
/// row stands for its first message, so they were looked for too early: p99 20.4 ms against
/// 15.9 ms on the benchmark's million messages).
fn move_pending(conn: &Connection) -> Result<(), StoreError> {
    let mut rows: Vec<(i64, bool, String)> = Vec::new();
    pending_rows(conn, |_, lines| {
        rows.extend(
            lines
                .lines()
                .filter_map(parse_line)
                .map(|(rowid, internal, terms)| (rowid, internal, terms.to_owned())),
        );
        Ok(())
    })?;
    rows.sort_unstable_by_key(|row| row.0);
    let mut insert = conn
        .prepare_cached("INSERT INTO search_messages (rowid, body, note) VALUES (?1, ?2, ?3)")
        .map_err(sql_error)?;
    KNOWN.with(|known| {
        let mut known = known.borrow_mut();
        for (rowid, internal, terms) in &rows {
            let new = match known.as_mut() {
                Some(known) => known.learn(rowid >> SEQ_BITS, *internal, terms),
                None => Cow::Borrowed(terms.as_str()),
            };
            if new.is_empty() {
                continue;
            }
            let (body, note) = if *internal { ("", &*new) } else { (&*new, "") };
            insert
                .execute(params![rowid, body, note])
                .map_err(sql_error)?;
        }
        Ok::<_, StoreError>(())
    })?;
    conn.execute_batch("DELETE FROM search_pending")
        .map_err(sql_error)
}

/// Removes the pending lines with rowids from `low` to `high`; answers how many went.
fn drop_pending(conn: &Connection, low: i64, high: i64) -> Result<usize, StoreError> {
    let mut changed: Vec<(i64, usize, String)> = Vec::new();
    let mut dropped = 0;
    pending_rows(conn, |id, lines| {
        let keep: Vec<&str> = lines
            .lines()
            .filter(|line| {
                parse_line(line).is_none_or(|(rowid, ..)| !(low..=high).contains(&rowid))
            })
            .collect();
        let gone = lines.lines().count() - keep.len();
        if gone > 0 {
            dropped += gone;
            let kept = keep.iter().map(|line| format!("{line}\n")).collect();
            changed.push((id, keep.len(), kept));
        }
        Ok(())
    })?;
    for (id, messages, lines) in changed {
        if messages == 0 {
            conn.prepare_cached("DELETE FROM search_pending WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(sql_error)?;
        } else {
            conn.prepare_cached(
                "UPDATE search_pending SET messages = ?2, lines = ?3 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    i64::try_from(messages).unwrap_or(i64::MAX),
                    lines
                ])
            })
            .map_err(sql_error)?;
        }
    }
    Ok(dropped)
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

/// Applies one write at once: every write on a thread that does not hold them back (a
/// migration's, a replay's), and a ticket's row on the writer's.
fn run(conn: &Connection, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::Add(message) => insert_row(
            conn,
            row_id(message.ticket.1, message.seq),
            &message.terms,
            message.internal,
        ),
        Op::Rebuild(position) => rebuild_ticket(conn, *position, true),
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
/// Its pending lines go too when `pending` (there may be some: the table exists and is not
/// emptied already).
fn rebuild_ticket(conn: &Connection, position: i64, pending: bool) -> Result<(), StoreError> {
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
    if pending {
        let dropped = drop_pending(conn, low, high)?;
        count_pending(-isize::try_from(dropped).unwrap_or(isize::MAX));
    }
    let Some(id) = conn
        .prepare_cached("SELECT id FROM tickets WHERE position = ?1")
        .and_then(|mut s| {
            s.query_row([position], |r| r.get::<_, String>(0))
                .optional()
        })
        .map_err(sql_error)?
    else {
        return Ok(());
    };
    let mut seen: [Prints; 2] = Default::default();
    let mut stmt = conn
        .prepare_cached(
            // Through the events' stream index: `messages` has none by ticket (ADR 0003).
            "SELECT m.seq, m.internal, m.content FROM events e \
             CROSS JOIN messages m ON m.position = e.position \
             WHERE e.stream_id = ?1 AND m.deleted_at IS NULL ORDER BY e.version",
        )
        .map_err(sql_error)?;
    let mut rows = stmt.query([&id]).map_err(sql_error)?;
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
            .filter(|t| set.insert(fingerprint(t)))
            .collect();
        if !new.is_empty() {
            insert_row(conn, row_id(position, seq), &new.join(" "), internal)?;
        }
    }
    KNOWN.with(|known| {
        if let Some(known) = known.borrow_mut().as_mut() {
            known.replace(position, &id, seen);
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
            let known = KNOWN.with(|known| {
                known
                    .borrow()
                    .as_ref()
                    .and_then(|known| known.position(&message.ticket_id))
            });
            let position = match known {
                Some(position) => position,
                None => match ticket_position(conn, &message.ticket_id)? {
                    Some(position) => position,
                    None => return Ok(()),
                },
            };
            let seq = to_sql_int(message.seq)?;
            if !fits(position, seq) {
                return Ok(());
            }
            let terms = OFFERED
                .with(|offered| offered.borrow_mut().take())
                .unwrap_or_else(|| message_terms(&message.content));
            submit(
                conn,
                Op::Add(MessageTerms {
                    ticket: (message.ticket_id.clone(), position),
                    seq,
                    internal: message.internal,
                    terms,
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
         INSERT INTO search_messages (search_messages) VALUES ('delete-all'); \
         DELETE FROM search_pending;",
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
/// (migration 11, and `ticketd replay` once the read models are rebuilt). The pending rows go
/// too, unless `pending_table` says there is no such table yet (migration 11).
pub(super) fn rebuild_messages(conn: &Connection, pending_table: bool) -> Result<(), StoreError> {
    conn.execute_batch("INSERT INTO search_messages (search_messages) VALUES ('delete-all');")
        .map_err(sql_error)?;
    if pending_table {
        conn.execute_batch("DELETE FROM search_pending;")
            .map_err(sql_error)?;
    }
    let positions: Vec<i64> = conn
        .prepare("SELECT position FROM tickets ORDER BY position")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sql_error)?;
    for position in positions {
        rebuild_ticket(conn, position, false)?;
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
    pending_rows(conn, |_, lines| {
        for (rowid, internal) in pending_matches(lines, term) {
            if internal && !include_internal {
                continue;
            }
            let position = u64::try_from(rowid >> SEQ_BITS).unwrap_or(0);
            let seq = u64::try_from(rowid & ((1 << SEQ_BITS) - 1)).unwrap_or(0);
            let entry = found.entry(position).or_default();
            entry.0 |= found::MESSAGE;
            entry.1 = Some(entry.1.map_or(seq, |s| s.min(seq)));
        }
        Ok(())
    })?;
    Ok(found
        .into_iter()
        .map(|(position, (bits, first_message))| TermHit {
            position,
            found: bits,
            first_message,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(lines: &str, word: &str, prefix: bool) -> Vec<(i64, bool)> {
        let term = QueryTerm {
            term: word.into(),
            prefix,
        };
        pending_matches(lines, &term).collect()
    }

    const LINES: &str = "16777217 b walrus 404 walrus alpha\n\
                         16777218 n walruses\n\
                         33554433 b beta walrus\n\
                         33554434 b 1677\n";

    #[test]
    fn a_pending_line_matches_a_whole_term_once() {
        assert_eq!(
            matches(LINES, "walrus", false),
            [(16_777_217, false), (33_554_433, false)]
        );
        assert_eq!(matches(LINES, "alpha", false), [(16_777_217, false)]);
        assert_eq!(matches(LINES, "alph", false), []);
        assert_eq!(matches(LINES, "lrus", true), []);
    }

    #[test]
    fn a_prefix_matches_longer_terms_and_internal_lines_say_so() {
        assert_eq!(
            matches(LINES, "walru", true),
            [(16_777_217, false), (16_777_218, true), (33_554_433, false)]
        );
    }

    #[test]
    fn digits_of_a_rowid_are_not_a_term() {
        assert_eq!(matches(LINES, "1677", true), [(33_554_434, false)]);
        assert_eq!(matches(LINES, "404", false), [(16_777_217, false)]);
        assert_eq!(matches(LINES, "b", true), [(33_554_433, false)]);
    }
}
