//! How envelopes and read-model views map to SQLite rows and back. The writer (answering an
//! idempotent retry) and the readers decode the same rows, so the column lists and decoders live
//! here once. A row that does not decode is reported as corrupt, never skipped or defaulted.

use rusqlite::Row;
use std::str::FromStr;
use ticketd_events::{Actor, EventEnvelope, StoreError, TicketEvent};
use ticketd_projections::{Countdown, MessageView, SlaFacts, TicketView};

/// The `events` columns [`event_from_row`] expects, in its order.
pub(super) const EVENT_COLUMNS: &str = "position, event_id, stream_id, version, recorded_at, \
     event_type, schema_version, actor, correlation_id, causation_id, data, prev_hash, hash, \
     global_hash";

/// The `tickets` columns [`ticket_from_row`] expects, in its order.
pub(super) const TICKET_COLUMNS: &str = "position, id, user_id, topic, description, status, \
     created_at, updated_at, user_role, support_role, issue_level, assignee_id, assignee_name, \
     tags, countdown_message, countdown_since, countdown_warned_at, feedback, first_response_at, \
     sla_from, resolved_at, sla_fr_breached, sla_res_breached";

/// The `messages` columns [`message_from_row`] expects, in its order.
pub(super) const MESSAGE_COLUMNS: &str = "id, ticket_id, author_id, author_name, content, \
     attachments, created_at, updated_at, internal, seq, deleted_at";

/// SQLite failures are the store being unavailable to the caller; the text is for the logs.
pub(super) fn sql_error(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {err}"))
}

/// SQLite integers are signed; positions and versions never come near `i64::MAX`, but a caller's
/// cursor might, and that must be an error rather than a wrapped value.
pub(super) fn to_sql_int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Unavailable(format!("{value} does not fit a SQLite integer")))
}

/// Clamps a caller's page size to what SQLite's LIMIT takes.
pub(super) fn to_sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Decodes an event row selected with [`EVENT_COLUMNS`]. The outer error is SQLite's (the row
/// could not be read at all), the inner one names the position of a row that is damaged.
pub(super) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Result<EventEnvelope, StoreError>> {
    let position: i64 = row.get(0)?;
    let position = u64::try_from(position).unwrap_or(0);
    Ok(decode_event(row, position).map_err(|reason| StoreError::Corrupt { position, reason }))
}

fn decode_event(row: &Row<'_>, position: u64) -> Result<EventEnvelope, String> {
    let text = |i: usize| {
        row.get::<_, String>(i)
            .map_err(|e| format!("column {i}: {e}"))
    };
    let int = |i: usize| row.get::<_, i64>(i).map_err(|e| format!("column {i}: {e}"));
    let event_type = text(5)?;
    let actor: Actor = serde_json::from_str(&text(7)?).map_err(|e| format!("actor: {e}"))?;
    let event: TicketEvent = serde_json::from_str(&text(10)?).map_err(|e| format!("data: {e}"))?;
    if event.type_name() != event_type {
        return Err(format!(
            "event_type {event_type} but data holds {}",
            event.type_name()
        ));
    }
    Ok(EventEnvelope {
        event_id: text(1)?,
        stream_id: text(2)?,
        version: unsigned(int(3)?, "version")?,
        position,
        recorded_at: int(4)?,
        actor,
        correlation_id: text(8)?,
        causation_id: text(9)?,
        schema_version: u32::try_from(int(6)?).map_err(|e| format!("schema_version: {e}"))?,
        event,
        prev_hash: text(11)?,
        hash: text(12)?,
        global_hash: text(13)?,
    })
}

/// Decodes a ticket row selected with [`TICKET_COLUMNS`].
pub(super) fn ticket_from_row(row: &Row<'_>) -> rusqlite::Result<Result<TicketView, StoreError>> {
    let position: i64 = row.get(0)?;
    let position = u64::try_from(position).unwrap_or(0);
    Ok(
        decode_ticket(row, position).map_err(|reason| StoreError::Corrupt {
            position,
            reason: format!("tickets row: {reason}"),
        }),
    )
}

fn decode_ticket(row: &Row<'_>, position: u64) -> Result<TicketView, String> {
    let text = |i: usize| {
        row.get::<_, String>(i)
            .map_err(|e| format!("column {i}: {e}"))
    };
    let int = |i: usize| row.get::<_, i64>(i).map_err(|e| format!("column {i}: {e}"));
    Ok(TicketView {
        id: text(1)?,
        user_id: text(2)?,
        topic: text(3)?,
        description: text(4)?,
        status: vocabulary(&text(5)?)?,
        created_at: int(6)?,
        updated_at: int(7)?,
        user_role: vocabulary(&text(8)?)?,
        support_role: vocabulary(&text(9)?)?,
        issue_level: vocabulary(&text(10)?)?,
        assignee_id: row
            .get::<_, Option<String>>(11)
            .map_err(|e| format!("column 11: {e}"))?,
        assignee_name: row
            .get::<_, Option<String>>(12)
            .map_err(|e| format!("column 12: {e}"))?,
        tags: Some(serde_json::from_str(&text(13)?).map_err(|e| format!("column 13: {e}"))?),
        position,
        countdown: decode_countdown(row)?,
        feedback: row
            .get::<_, Option<String>>(17)
            .map_err(|e| format!("column 17: {e}"))?
            .map(|json| serde_json::from_str(&json).map_err(|e| format!("feedback: {e}")))
            .transpose()?,
        first_response_at: None,
        sla: None,
        sla_facts: SlaFacts {
            first_response_at: opt_int(row, 18)?,
            resolution_from: int(19)?,
            resolved_at: opt_int(row, 20)?,
            first_response_breached: opt_int(row, 21)?,
            resolution_breached: opt_int(row, 22)?,
        },
    })
}

fn opt_int(row: &Row<'_>, i: usize) -> Result<Option<i64>, String> {
    row.get::<_, Option<i64>>(i)
        .map_err(|e| format!("column {i}: {e}"))
}

/// The countdown columns (14–16): a message and its time together, or neither.
fn decode_countdown(row: &Row<'_>) -> Result<Option<Countdown>, String> {
    let get = |i: usize| -> Result<Option<String>, String> {
        row.get::<_, Option<String>>(i)
            .map_err(|e| format!("column {i}: {e}"))
    };
    let int = |i: usize| -> Result<Option<i64>, String> {
        row.get::<_, Option<i64>>(i)
            .map_err(|e| format!("column {i}: {e}"))
    };
    match (get(14)?, int(15)?) {
        (Some(message_id), Some(since)) => Ok(Some(Countdown {
            message_id,
            since,
            warned_at: int(16)?,
        })),
        (None, None) => Ok(None),
        _ => Err("countdown_message and countdown_since must be set together".into()),
    }
}

/// Decodes a message row selected with [`MESSAGE_COLUMNS`]. Messages carry no global position;
/// the corrupt error names the message instead and reports position 0.
pub(super) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Result<MessageView, StoreError>> {
    let id: String = row.get(0)?;
    Ok(
        decode_message(row, &id).map_err(|reason| StoreError::Corrupt {
            position: 0,
            reason: format!("messages row {id}: {reason}"),
        }),
    )
}

fn decode_message(row: &Row<'_>, id: &str) -> Result<MessageView, String> {
    let text = |i: usize| {
        row.get::<_, String>(i)
            .map_err(|e| format!("column {i}: {e}"))
    };
    let int = |i: usize| row.get::<_, i64>(i).map_err(|e| format!("column {i}: {e}"));
    let attachments: Vec<String> =
        serde_json::from_str(&text(5)?).map_err(|e| format!("attachments: {e}"))?;
    Ok(MessageView {
        id: id.to_owned(),
        ticket_id: text(1)?,
        author_id: text(2)?,
        author_name: text(3)?,
        content: text(4)?,
        attachments,
        created_at: int(6)?,
        updated_at: int(7)?,
        internal: int(8)? != 0,
        seq: unsigned(int(9)?, "seq")?,
        deleted_at: row
            .get::<_, Option<i64>>(10)
            .map_err(|e| format!("deleted_at: {e}"))?,
    })
}

fn unsigned(value: i64, what: &str) -> Result<u64, String> {
    u64::try_from(value).map_err(|_| format!("{what} {value} is negative"))
}

/// Parses one of the contract's closed vocabularies from its stored spelling.
fn vocabulary<T: FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("unknown value {text:?}"))
}
