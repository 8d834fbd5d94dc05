//! The read side: every query the API and the projectors make, each answered from an index
//! created in [`super::schema`]. The database handle reads with majority read concern, so a
//! projector never acts on an event that a failover could still roll back.

use super::docs::{
    Failure, classify, envelope_from_doc, message_from_doc, ticket_from_doc, to_i64, to_limit,
    unavailable,
};
use super::schema::{Collections, EVENTS_COUNTER};
use crate::store::{Bookkeeping, SlaFilter, TicketFilter};
use bson::{Document, doc};
use mongodb::Cursor;
use ticketd_events::{EventEnvelope, StoreError};
use ticketd_projections::{MessageView, TicketView};

/// Drains a cursor, decoding each document with `decode`.
async fn collect<T>(
    mut cursor: Cursor<Document>,
    decode: impl Fn(&Document) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut items = Vec::new();
    while cursor.advance().await.map_err(unavailable)? {
        let document: Document = cursor.deserialize_current().map_err(unavailable)?;
        items.push(decode(&document)?);
    }
    Ok(items)
}

/// Events of one stream after a version, in version order.
pub(super) async fn read_stream(
    c: &Collections,
    stream_id: &str,
    after_version: u64,
) -> Result<Vec<EventEnvelope>, StoreError> {
    read_stream_page(c, stream_id, after_version, usize::MAX).await
}

/// Up to `limit` of a stream's events after a version, in order (`usize::MAX`: all of them).
pub(super) async fn read_stream_page(
    c: &Collections,
    stream_id: &str,
    after_version: u64,
    limit: usize,
) -> Result<Vec<EventEnvelope>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let find = c
        .events
        .find(doc! {"stream_id": stream_id, "version": {"$gt": to_i64(after_version)?}})
        .sort(doc! {"stream_id": 1, "version": 1});
    let find = match limit {
        usize::MAX => find,
        limit => find.limit(to_limit(limit)),
    };
    collect(find.await.map_err(unavailable)?, envelope_from_doc).await
}

/// Up to `limit` events after a position, in position order, stopping before any hole: positions
/// are taken in commit order, so a hole can only be a commit not yet visible here, and a reader
/// must wait for it rather than skip it.
pub(super) async fn read_all(
    c: &Collections,
    after_position: u64,
    limit: usize,
) -> Result<Vec<EventEnvelope>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let cursor = c
        .events
        .find(doc! {"_id": {"$gt": to_i64(after_position)?}})
        .sort(doc! {"_id": 1})
        .limit(to_limit(limit))
        .await
        .map_err(unavailable)?;
    let mut events = collect(cursor, envelope_from_doc).await?;
    let contiguous = events
        .iter()
        .zip(after_position + 1..)
        .take_while(|(e, expected)| e.position == *expected)
        .count();
    if contiguous < events.len() {
        tracing::debug!(
            after_position,
            hole_at = after_position + 1 + contiguous as u64,
            "read_all stopped at a position not yet visible"
        );
        events.truncate(contiguous);
    }
    Ok(events)
}

/// The last committed position, from the counter document the appends increment.
pub(super) async fn head(c: &Collections) -> Result<u64, StoreError> {
    let counter = c
        .counters
        .find_one(doc! {"_id": EVENTS_COUNTER})
        .await
        .map_err(unavailable)?;
    Ok(counter
        .and_then(|d| d.get_i64("position").ok())
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(0))
}

/// One ticket by id.
pub(super) async fn get_ticket(
    c: &Collections,
    ticket_id: &str,
) -> Result<Option<TicketView>, StoreError> {
    c.tickets
        .find_one(doc! {"_id": ticket_id})
        .await
        .map_err(unavailable)?
        .map(|d| ticket_from_doc(&d))
        .transpose()
}

/// Tickets matching every set field of `filter`, newest first, below `before_position`.
pub(super) async fn list_tickets(
    c: &Collections,
    filter: &TicketFilter,
    before_position: Option<u64>,
    limit: usize,
) -> Result<Vec<TicketView>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut query = Document::new();
    if let Some(user_id) = &filter.user_id {
        query.insert("user_id", user_id);
    }
    if let Some(status) = filter.status {
        query.insert("status", status.as_str());
    }
    if let Some(level) = filter.issue_level {
        query.insert("issue_level", level.as_str());
    }
    if let Some(role) = filter.support_role {
        query.insert("support_role", role.as_str());
    }
    if let Some(assignee) = &filter.assignee {
        // `null` also matches documents from before tickets had holders.
        query.insert("assignee_id", assignee.as_deref());
    }
    if !filter.tags.is_empty() {
        query.insert("tags", doc! {"$all": &filter.tags});
    }
    match filter.sla {
        Some(SlaFilter::Breached) => {
            query.insert("sla_breached", true);
        }
        Some(SlaFilter::DueBy(by)) => {
            query.insert("sla_breached", false);
            query.insert("sla_next_due", doc! {"$ne": null, "$lte": by});
        }
        None => {}
    }
    if let Some(before) = before_position {
        query.insert("position", doc! {"$lt": to_i64(before)?});
    }
    let cursor = c
        .tickets
        .find(query)
        .sort(doc! {"position": -1})
        .limit(to_limit(limit))
        .await
        .map_err(unavailable)?;
    collect(cursor, ticket_from_doc).await
}

/// Tickets whose countdown started at or before `started_by`, oldest first, from the
/// `countdown.since` index (tickets waiting on nobody lack the field).
pub(super) async fn due_countdowns(
    c: &Collections,
    started_by: i64,
    limit: usize,
) -> Result<Vec<TicketView>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let cursor = c
        .tickets
        .find(doc! {"countdown.since": {"$lte": started_by}})
        .sort(doc! {"countdown.since": 1})
        .limit(to_limit(limit))
        .await
        .map_err(unavailable)?;
    collect(cursor, ticket_from_doc).await
}

/// Tickets with a service-level target to record missed by `by`, earliest first, from the
/// `sla_sweep_at` index (ADR 0025).
pub(super) async fn due_sla(
    c: &Collections,
    by: i64,
    limit: usize,
) -> Result<Vec<TicketView>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let cursor = c
        .tickets
        .find(doc! {"sla_sweep_at": {"$ne": null, "$lte": by}})
        .sort(doc! {"sla_sweep_at": 1})
        .limit(to_limit(limit))
        .await
        .map_err(unavailable)?;
    collect(cursor, ticket_from_doc).await
}

/// One message by id, deleted or not.
pub(super) async fn get_message(
    c: &Collections,
    message_id: &str,
) -> Result<Option<MessageView>, StoreError> {
    c.messages
        .find_one(doc! {"_id": message_id})
        .await
        .map_err(unavailable)?
        .map(|d| message_from_doc(&d))
        .transpose()
}

/// A ticket's live messages in posting order after `after_seq`, or newest first before
/// `before_seq`; both walk the `(ticket_id, seq)` index.
pub(super) async fn list_messages(
    c: &Collections,
    ticket_id: &str,
    seq_bound: Option<(&str, u64)>,
    newest_first: bool,
    limit: usize,
    include_internal: bool,
) -> Result<Vec<MessageView>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut query = doc! {"ticket_id": ticket_id, "deleted_at": null};
    if let Some((operator, seq)) = seq_bound {
        query.insert("seq", doc! {operator: to_i64(seq)?});
    }
    if !include_internal {
        query.insert("internal", false);
    }
    let direction = if newest_first { -1 } else { 1 };
    let cursor = c
        .messages
        .find(query)
        .sort(doc! {"ticket_id": 1, "seq": direction})
        .limit(to_limit(limit))
        .await
        .map_err(unavailable)?;
    collect(cursor, message_from_doc).await
}

/// A projector's last finished position, 0 when it never saved one.
pub(super) async fn load_checkpoint(c: &Collections, name: &str) -> Result<u64, StoreError> {
    let saved = c
        .checkpoints
        .find_one(doc! {"_id": name})
        .await
        .map_err(unavailable)?;
    let position = saved.and_then(|d| d.get_i64("position").ok()).unwrap_or(0);
    u64::try_from(position).map_err(|_| StoreError::Corrupt {
        position: 0,
        reason: format!("checkpoint {name} is negative ({position})"),
    })
}

/// Every link and checkpoint (what `ticketd export` carries beside the events).
pub(super) async fn bookkeeping(c: &Collections) -> Result<Bookkeeping, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        position: 0,
        reason,
    };
    let cursor = c
        .links
        .find(doc! {})
        .sort(doc! {"_id.kind": 1, "_id.key": 1})
        .await
        .map_err(unavailable)?;
    let links = collect(cursor, |d| {
        let text = |value: Result<&str, _>| {
            value
                .map(str::to_owned)
                .map_err(|e| corrupt(format!("links document {d}: {e}")))
        };
        let id = |field: &str| text(d.get_document("_id").and_then(|id| id.get_str(field)));
        Ok((id("kind")?, id("key")?, text(d.get_str("value"))?))
    })
    .await?;
    let cursor = c
        .checkpoints
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .map_err(unavailable)?;
    let checkpoints = collect(cursor, |d| {
        let name = d
            .get_str("_id")
            .map_err(|e| corrupt(format!("checkpoints document {d}: {e}")))?;
        let position = d
            .get_i64("position")
            .ok()
            .and_then(|p| u64::try_from(p).ok())
            .ok_or_else(|| corrupt(format!("checkpoint {name}: no valid position")))?;
        Ok((name.to_owned(), position))
    })
    .await?;
    Ok(Bookkeeping { links, checkpoints })
}

/// Records a projector's checkpoint.
pub(super) async fn save_checkpoint(
    c: &Collections,
    name: &str,
    position: u64,
) -> Result<(), StoreError> {
    c.checkpoints
        .update_one(
            doc! {"_id": name},
            doc! {"$set": {"position": to_i64(position)?}},
        )
        .upsert(true)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// The value linked to `key` under `kind`.
pub(super) async fn load_link(
    c: &Collections,
    kind: &str,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let found = c
        .links
        .find_one(doc! {"_id": {"kind": kind, "key": key}})
        .await
        .map_err(unavailable)?;
    Ok(found.and_then(|d| d.get_str("value").ok().map(str::to_owned)))
}

/// Records, replaces or (with `None`) removes a link.
pub(super) async fn save_link(
    c: &Collections,
    kind: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(), StoreError> {
    let id = doc! {"kind": kind, "key": key};
    match value {
        Some(value) => c
            .links
            .update_one(doc! {"_id": id}, doc! {"$set": {"value": value}})
            .upsert(true)
            .await
            .map(drop),
        None => c.links.delete_one(doc! {"_id": id}).await.map(drop),
    }
    .map_err(unavailable)
}

/// Links `key` to `value` unless a link exists; answers the value that holds. The insert is
/// the atomic step: `_id` is unique, so of racing claimants one inserts and the others get a
/// duplicate key and read the winner's value.
pub(super) async fn claim_link(
    c: &Collections,
    kind: &str,
    key: &str,
    value: &str,
) -> Result<String, StoreError> {
    let id = doc! {"kind": kind, "key": key};
    // Twice: a link removed between a lost insert and the read is claimed again, once.
    for _ in 0..2 {
        match c
            .links
            .insert_one(doc! {"_id": id.clone(), "value": value})
            .await
        {
            Ok(_) => return Ok(value.to_owned()),
            Err(e) if matches!(classify(&e), Failure::Duplicate(_)) => {}
            Err(e) => return Err(unavailable(e)),
        }
        if let Some(held) = load_link(c, kind, key).await? {
            return Ok(held);
        }
    }
    Err(StoreError::Unavailable(format!(
        "link {kind}/{key} could not be claimed"
    )))
}
