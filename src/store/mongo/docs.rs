//! How envelopes and read-model views map to BSON documents and back, and what a driver error
//! means for us. The writer (answering an idempotent retry), the readers and the import decode
//! the same documents, so the shapes live here once. A document that does not decode is
//! reported as corrupt, never skipped or defaulted.
//!
//! An event keeps its actor and its tagged event as the JSON texts that were hashed (see
//! `ticketd_events::chain`), not as sub-documents: re-encoding BSON to JSON could reorder or
//! retype a field and break a hash that verified when it was written.

use crate::store::audit_source::RawEvent;
use bson::{Bson, Document, doc};
use mongodb::error::{
    ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use std::str::FromStr;
use ticketd_events::{EventEnvelope, StoreError};
use ticketd_projections::{Countdown, FeedbackView, MessageView, SlaFacts, TicketView};

/// Duplicate key: a unique index refused a write.
pub(super) const DUPLICATE_KEY: i32 = 11000;
/// Two transactions wrote the same document; the later one must run again.
pub(super) const WRITE_CONFLICT: i32 = 112;
/// The server already aborted the transaction (after an error inside it, or a restart).
pub(super) const NO_SUCH_TRANSACTION: i32 = 251;

/// What a failed database call means for whoever made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// A conflict or a lost transaction: running the whole transaction again is safe.
    Transient,
    /// The commit may or may not have happened: retry, and let idempotency by event id decide.
    UnknownCommit,
    /// A unique index refused a write; the text names the index.
    Duplicate(String),
    /// Anything else: the database is unreachable, or refuses for a reason retrying won't fix
    /// soon.
    Other,
}

/// Sorts a driver error into the [`Failure`] that decides what to do next. In driver 3.9 the
/// numeric code is only public inside the error's kind, so it is read from there.
pub(super) fn classify(error: &mongodb::error::Error) -> Failure {
    if let Some((code, message)) = write_code(error)
        && code == DUPLICATE_KEY
    {
        return Failure::Duplicate(message);
    }
    if error.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) {
        return Failure::UnknownCommit;
    }
    if error.contains_label(TRANSIENT_TRANSACTION_ERROR) {
        return Failure::Transient;
    }
    match write_code(error) {
        Some((WRITE_CONFLICT | NO_SUCH_TRANSACTION, _)) => Failure::Transient,
        _ => Failure::Other,
    }
}

/// The server's error code and message, wherever the driver put them.
fn write_code(error: &mongodb::error::Error) -> Option<(i32, String)> {
    match error.kind.as_ref() {
        ErrorKind::Command(command) => Some((command.code, command.message.clone())),
        ErrorKind::Write(WriteFailure::WriteError(write)) => {
            Some((write.code, write.message.clone()))
        }
        ErrorKind::InsertMany(insert) => insert
            .write_errors
            .as_ref()
            .and_then(|errors| errors.first())
            .map(|e| (e.code, e.message.clone())),
        _ => None,
    }
}

/// A driver failure as the callers of the store see it: unavailable, maybe for a while.
pub(super) fn unavailable(error: mongodb::error::Error) -> StoreError {
    StoreError::Unavailable(format!("mongodb: {error}"))
}

/// Numbers are stored as BSON int64; positions and versions never come near `i64::MAX`, but a
/// caller's cursor might, and that must be an error rather than a wrapped value.
pub(super) fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Unavailable(format!("{value} does not fit a BSON int64")))
}

/// Clamps a caller's page size to what a find's limit takes.
pub(super) fn to_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// An event document: `_id` is the global position, so the collection's own primary index is
/// the global order and a position can never be taken twice.
#[allow(clippy::too_many_arguments)]
pub(super) fn event_doc(
    envelope: &EventEnvelope,
    actor_json: &str,
    data_json: &str,
) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": to_i64(envelope.position)?,
        "event_id": &envelope.event_id,
        "stream_id": &envelope.stream_id,
        "version": to_i64(envelope.version)?,
        "recorded_at": envelope.recorded_at,
        "event_type": envelope.event.type_name(),
        "schema_version": i64::from(envelope.schema_version),
        "actor": actor_json,
        "correlation_id": &envelope.correlation_id,
        "causation_id": &envelope.causation_id,
        "data": data_json,
        "prev_hash": &envelope.prev_hash,
        "hash": &envelope.hash,
        "global_hash": &envelope.global_hash,
    })
}

/// Decodes an event document written by [`event_doc`].
pub(super) fn envelope_from_doc(document: &Document) -> Result<EventEnvelope, StoreError> {
    raw_from_doc(document)?.into_envelope()
}

/// An event document's fields exactly as stored, for the hash checks of auditors and for
/// [`envelope_from_doc`].
pub(super) fn raw_from_doc(document: &Document) -> Result<RawEvent, StoreError> {
    let position = document
        .get_i64("_id")
        .ok()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(0);
    read_raw(document, position).map_err(|reason| StoreError::Corrupt { position, reason })
}

fn read_raw(document: &Document, position: u64) -> Result<RawEvent, String> {
    if position == 0 {
        return Err("_id is not a positive int64".into());
    }
    Ok(RawEvent {
        position,
        event_id: text(document, "event_id")?,
        stream_id: text(document, "stream_id")?,
        version: unsigned(int(document, "version")?, "version")?,
        recorded_at: int(document, "recorded_at")?,
        event_type: text(document, "event_type")?,
        schema_version: int(document, "schema_version")?,
        actor: text(document, "actor")?,
        correlation_id: text(document, "correlation_id")?,
        causation_id: text(document, "causation_id")?,
        data: text(document, "data")?,
        prev_hash: text(document, "prev_hash")?,
        hash: text(document, "hash")?,
        global_hash: text(document, "global_hash")?,
    })
}

/// A `streams` document: the stream id, and its version and last hash as the writer recorded
/// them.
pub(super) fn stream_tip_from_doc(
    document: &Document,
) -> Result<(String, (u64, String)), StoreError> {
    let id = document.get_str("_id").unwrap_or_default().to_owned();
    let version = document
        .get_i64("version")
        .ok()
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| StoreError::Corrupt {
            position: 0,
            reason: format!("stream {id} has no valid version"),
        })?;
    let hash = document.get_str("hash").unwrap_or_default().to_owned();
    Ok((id, (version, hash)))
}

/// A ticket document; `_id` is the ticket id.
pub(super) fn ticket_doc(ticket: &TicketView) -> Result<Document, StoreError> {
    let mut document = doc! {
        "_id": &ticket.id,
        "position": to_i64(ticket.position)?,
        "user_id": &ticket.user_id,
        "topic": &ticket.topic,
        "description": &ticket.description,
        "status": ticket.status.as_str(),
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "user_role": ticket.user_role.as_str(),
        "support_role": ticket.support_role.as_str(),
        "issue_level": ticket.issue_level.as_str(),
        "assignee_id": ticket.assignee_id.as_deref(),
        "assignee_name": ticket.assignee_name.as_deref(),
        "tags": ticket.tags.clone().unwrap_or_default(),
    };
    if let Some(countdown) = &ticket.countdown {
        document.insert("countdown", countdown_doc(countdown));
    }
    if let Some(feedback) = &ticket.feedback {
        document.insert("feedback", feedback_doc(feedback));
    }
    let f = &ticket.sla_facts;
    document.insert("sla_from", f.resolution_from);
    for (key, value) in [
        ("first_response_at", f.first_response_at),
        ("resolved_at", f.resolved_at),
        ("sla_fr_breached", f.first_response_breached),
        ("sla_res_breached", f.resolution_breached),
    ] {
        if let Some(value) = value {
            document.insert(key, value);
        }
    }
    Ok(document)
}

/// A ticket's auto-close countdown (ADR 0022), absent from the ticket while it waits on nobody:
/// the `countdown.since` index then holds the waiting tickets only.
pub(super) fn countdown_doc(countdown: &Countdown) -> Document {
    let mut document = doc! {"message_id": &countdown.message_id, "since": countdown.since};
    if let Some(at) = countdown.warned_at {
        document.insert("warned_at", at);
    }
    document
}

/// A ticket's rating.
pub(super) fn feedback_doc(feedback: &FeedbackView) -> Document {
    doc! {
        "rating": i32::from(feedback.rating),
        "comment": feedback.comment.as_deref(),
        "created_at": feedback.created_at,
    }
}

fn decode_feedback(document: &Document) -> Result<Option<FeedbackView>, String> {
    let Ok(feedback) = document.get_document("feedback") else {
        return Ok(None);
    };
    let rating = feedback
        .get_i32("rating")
        .ok()
        .and_then(|r| u8::try_from(r).ok())
        .ok_or("feedback.rating: not a rating")?;
    Ok(Some(FeedbackView {
        rating,
        comment: feedback.get_str("comment").ok().map(str::to_string),
        created_at: int(feedback, "created_at").map_err(|e| format!("feedback: {e}"))?,
    }))
}

fn decode_countdown(document: &Document) -> Result<Option<Countdown>, String> {
    let Ok(countdown) = document.get_document("countdown") else {
        return Ok(None);
    };
    Ok(Some(Countdown {
        message_id: text(countdown, "message_id").map_err(|e| format!("countdown: {e}"))?,
        since: int(countdown, "since").map_err(|e| format!("countdown: {e}"))?,
        warned_at: countdown.get_i64("warned_at").ok(),
    }))
}

/// Decodes a ticket document written by [`ticket_doc`].
pub(super) fn ticket_from_doc(document: &Document) -> Result<TicketView, StoreError> {
    let position = document
        .get_i64("position")
        .ok()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(0);
    decode_ticket(document, position).map_err(|reason| StoreError::Corrupt {
        position,
        reason: format!("tickets document: {reason}"),
    })
}

fn decode_ticket(document: &Document, position: u64) -> Result<TicketView, String> {
    Ok(TicketView {
        id: text(document, "_id")?,
        user_id: text(document, "user_id")?,
        topic: text(document, "topic")?,
        description: text(document, "description")?,
        status: vocabulary(&text(document, "status")?)?,
        created_at: int(document, "created_at")?,
        updated_at: int(document, "updated_at")?,
        user_role: vocabulary(&text(document, "user_role")?)?,
        support_role: vocabulary(&text(document, "support_role")?)?,
        issue_level: vocabulary(&text(document, "issue_level")?)?,
        // Documents written before tickets had holders and tags lack these fields.
        assignee_id: document.get_str("assignee_id").ok().map(str::to_string),
        assignee_name: document.get_str("assignee_name").ok().map(str::to_string),
        tags: Some(match document.get_array("tags") {
            Ok(tags) => tags
                .iter()
                .map(|t| t.as_str().map(str::to_string).ok_or("tags: not a string"))
                .collect::<Result<_, _>>()?,
            Err(_) => Vec::new(),
        }),
        position,
        countdown: decode_countdown(document)?,
        feedback: decode_feedback(document)?,
        first_response_at: None,
        sla: None,
        // Documents written before service levels start the resolution clock at the opening.
        sla_facts: SlaFacts {
            first_response_at: document.get_i64("first_response_at").ok(),
            resolution_from: document
                .get_i64("sla_from")
                .unwrap_or(int(document, "created_at")?),
            resolved_at: document.get_i64("resolved_at").ok(),
            first_response_breached: document.get_i64("sla_fr_breached").ok(),
            resolution_breached: document.get_i64("sla_res_breached").ok(),
        },
    })
}

/// A message document; `_id` is the message id, `deleted_at` null while it is live.
pub(super) fn message_doc(message: &MessageView) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": &message.id,
        "ticket_id": &message.ticket_id,
        "author_id": &message.author_id,
        "author_name": &message.author_name,
        "content": &message.content,
        "attachments": &message.attachments,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "internal": message.internal,
        "seq": to_i64(message.seq)?,
        "deleted_at": message.deleted_at.map_or(Bson::Null, Bson::Int64),
    })
}

/// Decodes a message document written by [`message_doc`].
pub(super) fn message_from_doc(document: &Document) -> Result<MessageView, StoreError> {
    let id = document.get_str("_id").unwrap_or_default().to_owned();
    decode_message(document, &id).map_err(|reason| StoreError::Corrupt {
        position: 0,
        reason: format!("messages document {id}: {reason}"),
    })
}

fn decode_message(document: &Document, id: &str) -> Result<MessageView, String> {
    let attachments = document
        .get_array("attachments")
        .map_err(|e| format!("attachments: {e}"))?
        .iter()
        .map(|a| {
            a.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("attachment {a} is not a string"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let deleted_at = match document.get("deleted_at") {
        None | Some(Bson::Null) => None,
        Some(Bson::Int64(at)) => Some(*at),
        Some(other) => return Err(format!("deleted_at: {other} is not an int64")),
    };
    Ok(MessageView {
        id: id.to_owned(),
        ticket_id: text(document, "ticket_id")?,
        author_id: text(document, "author_id")?,
        author_name: text(document, "author_name")?,
        content: text(document, "content")?,
        attachments,
        created_at: int(document, "created_at")?,
        updated_at: int(document, "updated_at")?,
        internal: document
            .get_bool("internal")
            .map_err(|e| format!("internal: {e}"))?,
        seq: unsigned(int(document, "seq")?, "seq")?,
        deleted_at,
    })
}

/// A string field, or what is wrong with it.
fn text(document: &Document, key: &str) -> Result<String, String> {
    document
        .get_str(key)
        .map(str::to_owned)
        .map_err(|e| format!("{key}: {e}"))
}

/// An int64 field, or what is wrong with it.
fn int(document: &Document, key: &str) -> Result<i64, String> {
    document.get_i64(key).map_err(|e| format!("{key}: {e}"))
}

fn unsigned(value: i64, what: &str) -> Result<u64, String> {
    u64::try_from(value).map_err(|_| format!("{what} {value} is negative"))
}

/// Parses one of the contract's closed vocabularies from its stored spelling.
fn vocabulary<T: FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("unknown value {text:?}"))
}
