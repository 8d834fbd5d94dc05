//! The inline projection: the read-model changes of each appended event, written in the append's
//! transaction, so a client that reads after its append returns sees its write and a refused
//! append leaves no trace. What to change is decided by [`ticketd_projections::changes`]; this
//! file only says how in MongoDB, mirroring [`ticketd_projections::MemoryReadModel`] (an insert
//! replaces, a change to a missing document is a no-op) like the embedded store's SQL does.

use super::docs::{countdown_doc, feedback_doc, message_doc, ticket_doc, ticket_from_doc};
use super::helpdesk::{block_doc, reply_doc};
use super::schema::Collections;
use bson::{Bson, Document, doc};
use mongodb::ClientSession;
use ticketd_events::SlaTarget;
use ticketd_events::{EventEnvelope, StoreError};
use ticketd_projections::{Change, Countdown, CountdownChange, SlaChange, changes};

/// Why a projection did not apply.
#[derive(Debug)]
pub(super) enum ProjectError {
    /// The database refused or failed; the writer decides from it whether to retry.
    Driver(mongodb::error::Error),
    /// A value did not fit its document (a number beyond int64).
    Encode(StoreError),
}

impl From<mongodb::error::Error> for ProjectError {
    fn from(error: mongodb::error::Error) -> Self {
        ProjectError::Driver(error)
    }
}

/// Applies everything `envelope` changes in the read models, inside `session`'s transaction.
pub(super) async fn project(
    collections: &Collections,
    session: &mut ClientSession,
    envelope: &EventEnvelope,
) -> Result<(), ProjectError> {
    let mut sla_moved = false;
    for change in changes(envelope) {
        super::search::apply(collections, Some(&mut *session), &change).await?;
        sla_moved |= moves_sla(&change);
        let (target, filter, update) =
            operation(collections, change).map_err(ProjectError::Encode)?;
        match update {
            Write::Replace(document) => {
                target
                    .replace_one(filter, document)
                    .upsert(true)
                    .session(&mut *session)
                    .await?;
            }
            Write::Update(update) => {
                target
                    .update_one(filter, update)
                    .session(&mut *session)
                    .await?;
            }
            Write::Delete => {
                target.delete_one(filter).session(&mut *session).await?;
            }
        }
    }
    if sla_moved && collections.sla.is_enabled() {
        let id = doc! {"_id": &envelope.stream_id};
        let found = collections
            .tickets
            .find_one(id.clone())
            .session(&mut *session)
            .await?;
        if let Some(set) = found.map(|d| sla_fields(collections, &d)).transpose()? {
            collections
                .tickets
                .update_one(id, doc! {"$set": set})
                .session(&mut *session)
                .await?;
        }
    }
    super::reports::project(collections, Some(session), envelope).await
}

/// Brings every ticket's service-level fields in line with the store's policy when they were
/// computed under another one (or by a replay): at start-up, like the embedded store.
pub(super) async fn sync_sla_fields(collections: &Collections) -> Result<(), ProjectError> {
    let policy = &collections.sla;
    // Without targets the fields are not read: a tool connecting (or an instance with service
    // levels off) leaves them for the instances that have targets.
    if !policy.is_enabled() {
        return Ok(());
    }
    let fingerprint = format!("{policy:?}");
    let id = doc! {"_id": SLA_POLICY};
    let stored = collections.counters.find_one(id.clone()).await?;
    let stored = stored
        .as_ref()
        .and_then(|d| d.get_str("fingerprint").ok())
        .unwrap_or("");
    if stored == fingerprint {
        return Ok(());
    }
    let mut cursor = collections.tickets.find(doc! {}).await?;
    while cursor.advance().await? {
        let document = cursor.deserialize_current()?;
        let set = sla_fields(collections, &document)?;
        let ticket_id = document.get("_id").cloned().unwrap_or(Bson::Null);
        collections
            .tickets
            .update_one(doc! {"_id": ticket_id}, doc! {"$set": set})
            .await?;
    }
    collections
        .counters
        .update_one(id, doc! {"$set": {"fingerprint": fingerprint}})
        .upsert(true)
        .await?;
    Ok(())
}

/// The `counters` document naming the policy the tickets' `sla_*` fields were computed with.
pub(super) const SLA_POLICY: &str = "sla_policy";

/// Whether `change` may move a ticket's due times, breaches or next due time.
fn moves_sla(change: &Change) -> bool {
    match change {
        Change::InsertTicket(_) | Change::Sla { .. } => true,
        Change::UpdateTicket { patch, .. } => patch.issue_level.is_some() || patch.status.is_some(),
        _ => false,
    }
}

/// The policy-dependent fields of a ticket document: what the `sla` filters and the breach
/// sweeper read through their indexes (ADR 0025).
fn sla_fields(collections: &Collections, document: &Document) -> Result<Document, ProjectError> {
    let ticket = ticket_from_doc(document).map_err(ProjectError::Encode)?;
    let clock = ticket.sla_clock();
    let policy = &collections.sla;
    let or_null = |v: Option<i64>| v.map_or(Bson::Null, Bson::Int64);
    Ok(doc! {
        "sla_next_due": or_null(clock.next_due(policy)),
        "sla_sweep_at": or_null(clock.sweep_at(policy)),
        "sla_breached": !clock.recorded.is_empty(),
    })
}

/// Applies `envelope`'s changes without a transaction (import and rebuilds run alone).
pub(super) async fn project_alone(
    collections: &Collections,
    envelope: &EventEnvelope,
) -> Result<(), ProjectError> {
    let mut sla_moved = false;
    for change in changes(envelope) {
        super::search::apply(collections, None, &change).await?;
        sla_moved |= moves_sla(&change);
        let (target, filter, update) =
            operation(collections, change).map_err(ProjectError::Encode)?;
        match update {
            Write::Replace(document) => {
                target.replace_one(filter, document).upsert(true).await?;
            }
            Write::Update(update) => {
                target.update_one(filter, update).await?;
            }
            Write::Delete => {
                target.delete_one(filter).await?;
            }
        }
    }
    if sla_moved && collections.sla.is_enabled() {
        let id = doc! {"_id": &envelope.stream_id};
        let found = collections.tickets.find_one(id.clone()).await?;
        if let Some(set) = found.map(|d| sla_fields(collections, &d)).transpose()? {
            collections
                .tickets
                .update_one(id, doc! {"$set": set})
                .await?;
        }
    }
    super::reports::project(collections, None, envelope).await
}

enum Write {
    /// Insert or replace the whole document.
    Replace(Document),
    /// Change some fields of an existing document.
    Update(Document),
    /// Remove the document, if there is one.
    Delete,
}

/// The collection, filter and write for one change.
fn operation(
    collections: &Collections,
    change: Change,
) -> Result<(&mongodb::Collection<Document>, Document, Write), StoreError> {
    Ok(match change {
        Change::InsertTicket(ticket) => (
            &collections.tickets,
            doc! {"_id": &ticket.id},
            Write::Replace(ticket_doc(&ticket)?),
        ),
        Change::UpdateTicket {
            ticket_id,
            patch,
            updated_at,
        } => {
            let mut set = doc! {"updated_at": updated_at};
            if let Some(status) = patch.status {
                set.insert("status", status.as_str());
            }
            if let Some(role) = patch.support_role {
                set.insert("support_role", role.as_str());
            }
            if let Some(level) = patch.issue_level {
                set.insert("issue_level", level.as_str());
            }
            if let Some(holder) = patch.assignee {
                let (id, name) = holder.unzip();
                set.insert("assignee_id", id);
                set.insert("assignee_name", name);
            }
            if let Some(feedback) = &patch.feedback {
                set.insert("feedback", feedback_doc(feedback));
            }
            (
                &collections.tickets,
                doc! {"_id": ticket_id},
                Write::Update(doc! {"$set": set}),
            )
        }
        Change::SetTags { ticket_id, tags } => (
            &collections.tickets,
            doc! {"_id": ticket_id},
            Write::Update(doc! {"$set": {"tags": tags}}),
        ),
        Change::InsertMessage(message) => (
            &collections.messages,
            doc! {"_id": &message.id},
            Write::Replace(message_doc(&message)?),
        ),
        Change::EditMessage {
            message_id,
            content,
            attachments,
            updated_at,
        } => {
            let mut set = doc! {"content": content, "updated_at": updated_at};
            if let Some(attachments) = attachments {
                set.insert(
                    "attachments",
                    attachments
                        .into_iter()
                        .map(Bson::String)
                        .collect::<Vec<_>>(),
                );
            }
            (
                &collections.messages,
                doc! {"_id": message_id},
                Write::Update(doc! {"$set": set}),
            )
        }
        Change::DeleteMessage {
            message_id,
            deleted_at,
        } => (
            &collections.messages,
            doc! {"_id": message_id},
            Write::Update(doc! {"$set": {"deleted_at": deleted_at}}),
        ),
        // Mirrors `ticketd_projections::next_countdown`.
        Change::Countdown { ticket_id, change } => match change {
            CountdownChange::Start { message_id, since } => (
                &collections.tickets,
                doc! {"_id": ticket_id},
                Write::Update(doc! {"$set": {"countdown": countdown_doc(&Countdown {
                    message_id,
                    since,
                    warned_at: None,
                })}}),
            ),
            CountdownChange::Warned { at } => (
                &collections.tickets,
                doc! {"_id": ticket_id, "countdown": {"$exists": true}},
                Write::Update(doc! {"$set": {"countdown.warned_at": at}}),
            ),
            CountdownChange::Stop => (
                &collections.tickets,
                doc! {"_id": ticket_id},
                Write::Update(doc! {"$unset": {"countdown": ""}}),
            ),
        },
        // Mirrors `ticketd_projections::next_sla`.
        Change::Sla { ticket_id, change } => match change {
            SlaChange::Answered { at } => (
                &collections.tickets,
                doc! {"_id": ticket_id, "first_response_at": {"$exists": false}},
                Write::Update(doc! {"$set": {"first_response_at": at}}),
            ),
            SlaChange::Resolved { at } => (
                &collections.tickets,
                doc! {"_id": ticket_id},
                Write::Update(doc! {"$set": {"resolved_at": at}}),
            ),
            SlaChange::Reopened { at } => (
                &collections.tickets,
                doc! {"_id": ticket_id},
                Write::Update(doc! {
                    "$set": {"sla_from": at},
                    "$unset": {"resolved_at": "", "sla_res_breached": ""},
                }),
            ),
            SlaChange::Breached { target, due_at } => {
                let key = match target {
                    SlaTarget::FirstResponse => "sla_fr_breached",
                    SlaTarget::Resolution => "sla_res_breached",
                };
                (
                    &collections.tickets,
                    doc! {"_id": ticket_id},
                    Write::Update(doc! {"$set": {key: due_at}}),
                )
            }
        },
        Change::PutReply(reply) => (
            &collections.replies,
            doc! {"_id": &reply.name},
            Write::Replace(reply_doc(&reply)),
        ),
        Change::DeleteReply { name } => (&collections.replies, doc! {"_id": name}, Write::Delete),
        Change::PutBlock(block) => (
            &collections.blocks,
            doc! {"_id": &block.user_id},
            Write::Replace(block_doc(&block)),
        ),
        Change::DeleteBlock { user_id } => {
            (&collections.blocks, doc! {"_id": user_id}, Write::Delete)
        }
    })
}
