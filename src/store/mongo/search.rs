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
            let ticket = in_session!(
                c.tickets
                    .find_one(doc! {"_id": &message.ticket_id})
                    .projection(doc! {"position": 1}),
                session
            )?;
            let Some(p) = ticket.and_then(|t| t.get_i64("position").ok()) else {
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
    if let Some(filter) = remove {
        in_session!(index.delete_many(filter), session)?;
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
