//! The search index in MongoDB (ADR 0024): a term collection of our own, one document per
//! (normalised term, document of a ticket), written in the append's transaction beside the
//! other read models. `$text` is not used: it cannot match by prefix, folds accents only by its
//! own language rules, and the test server does not have it; a range on the `term` index works
//! on any replica set and gives the very same words as the embedded store's FTS5 tables.
//!
//! A document: `{t: term, p: ticket position, s: 0 for the ticket's own text or the message's
//! version, f: "t" topic | "d" description | "m" message | "n" internal note}`.

use super::docs::{ticket_from_doc, to_i64, unavailable};
use super::schema::Collections;
use crate::search::text::{QueryTerm, terms};
use crate::store::{TermHit, found};
use bson::{Bson, Document, doc};
use mongodb::{ClientSession, Collection};
use std::collections::BTreeMap;
use ticketd_events::StoreError;
use ticketd_projections::{Change, MessageView, TicketView};

/// Runs a driver action in the session when there is one.
macro_rules! in_session {
    ($action:expr, $session:expr) => {
        match $session.as_deref_mut() {
            Some(session) => $action.session(session).await,
            None => $action.await,
        }
    };
}

/// Most ticket positions remembered; past it they are all forgotten and looked up again.
const POSITIONS: usize = 100_000;

/// Tickets' positions by id, which a post's terms are filed under: looking one up was a round
/// trip of every post's transaction. A position never changes once its ticket is committed, but
/// one read inside a transaction may be of a ticket opened in that very transaction, which may
/// yet abort and be opened again elsewhere in the log; so what a transaction looked up is
/// remembered only once it commits ([`positions_committed`]).
#[derive(Debug, Default)]
pub(crate) struct TicketPositions {
    committed: std::collections::HashMap<String, i64>,
    tentative: Vec<(String, i64)>,
}

/// The writer's transaction committed: what it looked up is remembered.
pub(super) fn positions_committed(c: &Collections) {
    if let Ok(mut positions) = c.ticket_positions.lock() {
        let tentative = std::mem::take(&mut positions.tentative);
        if positions.committed.len() + tentative.len() > POSITIONS {
            positions.committed.clear();
        }
        positions.committed.extend(tentative);
    }
}

/// The writer's transaction did not commit (or is starting): what it looked up is forgotten.
pub(super) fn positions_aborted(c: &Collections) {
    if let Ok(mut positions) = c.ticket_positions.lock() {
        positions.tentative.clear();
    }
}

/// The position of a ticket, remembered or looked up (in `session`'s transaction when there is
/// one); `None` for a ticket not there.
async fn ticket_position(
    c: &Collections,
    mut session: Option<&mut ClientSession>,
    ticket_id: &str,
) -> Result<Option<i64>, mongodb::error::Error> {
    let known = c
        .ticket_positions
        .lock()
        .ok()
        .and_then(|positions| positions.committed.get(ticket_id).copied());
    if known.is_some() {
        return Ok(known);
    }
    let ticket = in_session!(
        c.tickets
            .find_one(doc! {"_id": ticket_id})
            .projection(doc! {"position": 1}),
        session
    )?;
    let position = ticket.and_then(|t| t.get_i64("position").ok());
    if let (Some(p), Ok(mut positions)) = (position, c.ticket_positions.lock()) {
        if session.is_some() {
            positions.tentative.push((ticket_id.to_owned(), p));
        } else if positions.committed.len() < POSITIONS {
            // Without a transaction (an import, a rebuild) what is read is committed.
            positions.committed.insert(ticket_id.to_owned(), p);
        }
    }
    Ok(position)
}

/// The term documents of a ticket's own text.
pub(super) fn ticket_docs(ticket: &TicketView) -> Result<Vec<Document>, StoreError> {
    let p = to_i64(ticket.position)?;
    Ok([("t", &ticket.topic), ("d", &ticket.description)]
        .into_iter()
        .flat_map(|(f, text)| {
            terms(text)
                .into_iter()
                .map(move |t| doc! {"t": t, "p": p, "s": 0_i64, "f": f})
        })
        .collect())
}

/// The term documents of a live message of the ticket at `position` (none once deleted).
pub(super) fn message_docs(
    position: i64,
    message: &MessageView,
) -> Result<Vec<Document>, StoreError> {
    if message.deleted_at.is_some() {
        return Ok(Vec::new());
    }
    Ok(text_docs(
        position,
        to_i64(message.seq)?,
        &message.content,
        message.internal,
    ))
}

fn text_docs(p: i64, s: i64, content: &str, internal: bool) -> Vec<Document> {
    let f = if internal { "n" } else { "m" };
    terms(content)
        .into_iter()
        .map(|t| doc! {"t": t, "p": p, "s": s, "f": f})
        .collect()
}

/// Keeps the index up with one read-model change, before the change itself is written; in
/// `session`'s transaction when there is one.
pub(super) async fn apply(
    c: &Collections,
    mut session: Option<&mut ClientSession>,
    change: &Change,
) -> Result<(), mongodb::error::Error> {
    if !c.search_kept.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    let index = &c.search;
    let (remove, add): (Option<Document>, Vec<Document>) = match change {
        Change::InsertTicket(ticket) => {
            let (Ok(p), Ok(docs)) = (to_i64(ticket.position), ticket_docs(ticket)) else {
                return Ok(());
            };
            (Some(doc! {"p": p, "s": 0_i64}), docs)
        }
        Change::InsertMessage(message) => {
            let Some(p) = ticket_position(c, session.as_deref_mut(), &message.ticket_id).await?
            else {
                return Ok(());
            };
            let Ok(docs) = message_docs(p, message) else {
                return Ok(());
            };
            let Ok(s) = to_i64(message.seq) else {
                return Ok(());
            };
            (Some(doc! {"p": p, "s": s}), docs)
        }
        Change::EditMessage {
            message_id,
            content,
            ..
        } => return rewrite(c, session, message_id, Some(content)).await,
        Change::DeleteMessage { message_id, .. } => {
            return rewrite(c, session, message_id, None).await;
        }
        _ => return Ok(()),
    };
    // An insert replaces, for a projection run again without a transaction (an import, a
    // rebuild). In the append's transaction the event is new: nothing is filed under it yet.
    if let (Some(filter), None) = (remove, &session) {
        index.delete_many(filter).await?;
    }
    if !add.is_empty() {
        in_session!(index.insert_many(add), session)?;
    }
    Ok(())
}

/// Drops a message's terms and, for an edit of a live message, adds those of its new text.
async fn rewrite(
    c: &Collections,
    mut session: Option<&mut ClientSession>,
    message_id: &str,
    edited: Option<&String>,
) -> Result<(), mongodb::error::Error> {
    let message = in_session!(c.messages.find_one(doc! {"_id": message_id}), session)?;
    let Some(message) = message else {
        return Ok(());
    };
    let ticket_id = message.get_str("ticket_id").unwrap_or_default().to_owned();
    let ticket = in_session!(
        c.tickets
            .find_one(doc! {"_id": &ticket_id})
            .projection(doc! {"position": 1}),
        session
    )?;
    let (Some(p), Ok(s)) = (
        ticket.and_then(|t| t.get_i64("position").ok()),
        message.get_i64("seq"),
    ) else {
        return Ok(());
    };
    let live = matches!(message.get("deleted_at"), None | Some(Bson::Null));
    let internal = message.get_bool("internal").unwrap_or(false);
    in_session!(c.search.delete_many(doc! {"p": p, "s": s}), session)?;
    let add = match edited {
        Some(text) if live => text_docs(p, s, text, internal),
        _ => Vec::new(),
    };
    if !add.is_empty() {
        in_session!(c.search.insert_many(add), session)?;
    }
    Ok(())
}

/// See [`crate::store::SearchIndex::search_term`]: one walk of the `term` index, by equality
/// or, for a prefix, by the range of words starting with it.
pub(super) async fn search_term(
    c: &Collections,
    term: &QueryTerm,
    include_internal: bool,
) -> Result<Vec<TermHit>, StoreError> {
    let mut filter = if term.prefix {
        let mut end = term.term.clone();
        end.push(char::MAX);
        doc! {"t": {"$gte": &term.term, "$lt": end}}
    } else {
        doc! {"t": &term.term}
    };
    if !include_internal {
        filter.insert("f", doc! {"$ne": "n"});
    }
    let mut cursor = c
        .search
        .find(filter)
        .projection(doc! {"_id": 0, "p": 1, "f": 1, "s": 1})
        .await
        .map_err(unavailable)?;
    let mut found: BTreeMap<u64, (u8, Option<u64>)> = BTreeMap::new();
    while cursor.advance().await.map_err(unavailable)? {
        let document: Document = cursor.deserialize_current().map_err(unavailable)?;
        let Some(p) = document
            .get_i64("p")
            .ok()
            .and_then(|p| u64::try_from(p).ok())
        else {
            continue;
        };
        let bit = match document.get_str("f").unwrap_or_default() {
            "t" => found::TOPIC,
            "d" => found::DESCRIPTION,
            _ => found::MESSAGE,
        };
        let entry = found.entry(p).or_default();
        entry.0 |= bit;
        if bit == found::MESSAGE
            && let Some(s) = document
                .get_i64("s")
                .ok()
                .and_then(|s| u64::try_from(s).ok())
        {
            // One document per live message holding the term: the least is the first.
            entry.1 = Some(entry.1.map_or(s, |first| first.min(s)));
        }
    }
    Ok(found
        .into_iter()
        .map(|(position, (bits, first_message))| TermHit {
            position,
            found: bits,
            first_message,
        })
        .collect())
}

/// See [`crate::store::SearchIndex::tickets_at`].
pub(super) async fn tickets_at(
    tickets: &Collection<Document>,
    positions: &[u64],
) -> Result<Vec<TicketView>, StoreError> {
    let positions = positions
        .iter()
        .map(|p| to_i64(*p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut cursor = tickets
        .find(doc! {"position": {"$in": positions}})
        .await
        .map_err(unavailable)?;
    let mut out = Vec::new();
    while cursor.advance().await.map_err(unavailable)? {
        let document: Document = cursor.deserialize_current().map_err(unavailable)?;
        out.push(ticket_from_doc(&document)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn looked_up(c: &Collections, id: &str, position: i64) {
        if let Ok(mut positions) = c.ticket_positions.lock() {
            positions.tentative.push((id.to_owned(), position));
        }
    }

    fn remembered(c: &Collections, id: &str) -> Option<i64> {
        c.ticket_positions
            .lock()
            .ok()
            .and_then(|positions| positions.committed.get(id).copied())
    }

    #[tokio::test]
    async fn a_position_read_in_a_transaction_is_remembered_only_once_it_commits() {
        // The driver connects lazily: nothing listens there, and nothing is asked of it.
        let client = mongodb::Client::with_uri_str("mongodb://127.0.0.1:9")
            .await
            .expect("a client");
        let c = Collections::new(&client.database("unused"));
        looked_up(&c, "opened-then-aborted", 7);
        positions_aborted(&c);
        positions_committed(&c);
        assert_eq!(remembered(&c, "opened-then-aborted"), None);
        looked_up(&c, "committed", 9);
        positions_committed(&c);
        assert_eq!(remembered(&c, "committed"), Some(9));
    }
}
