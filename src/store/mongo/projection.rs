//! The inline projection: the read-model changes of each appended event, written in the append's
//! transaction, so a client that reads after its append returns sees its write and a refused
//! append leaves no trace. What to change is decided by [`ticketd_projections::changes`]; this
//! file only says how in MongoDB, mirroring [`ticketd_projections::MemoryReadModel`] (an insert
//! replaces, a change to a missing document is a no-op) like the embedded store's SQL does.

use super::docs::{countdown_doc, message_doc, ticket_doc};
use super::helpdesk::{block_doc, reply_doc};
use super::schema::Collections;
use bson::{Bson, Document, doc};
use mongodb::ClientSession;
use ticketd_events::{EventEnvelope, StoreError};
use ticketd_projections::{Change, Countdown, CountdownChange, changes};

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
    for change in changes(envelope) {
        super::search::apply(collections, Some(&mut *session), &change).await?;
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
    super::reports::project(collections, Some(session), envelope).await
}

/// Applies `envelope`'s changes without a transaction (import and rebuilds run alone).
pub(super) async fn project_alone(
    collections: &Collections,
    envelope: &EventEnvelope,
) -> Result<(), ProjectError> {
    for change in changes(envelope) {
        super::search::apply(collections, None, &change).await?;
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
