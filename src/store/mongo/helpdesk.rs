//! The saved replies and blocks in MongoDB (ADR 0021): their documents and how they are listed,
//! by the server and, inside a snapshot session, by `ticketd verify`.

use super::docs::unavailable;
use bson::{Bson, Document, doc};
use mongodb::{ClientSession, Collection};
use ticketd_events::StoreError;
use ticketd_projections::{BlockView, ReplyView};

/// A saved reply's document; `_id` is its name.
pub(super) fn reply_doc(reply: &ReplyView) -> Document {
    doc! {"_id": &reply.name, "content": &reply.content, "updated_at": reply.updated_at}
}

/// A block's document; `_id` is the user id.
pub(super) fn block_doc(block: &BlockView) -> Document {
    doc! {"_id": &block.user_id, "reason": block.reason.as_deref(), "created_at": block.created_at}
}

fn corrupt(what: &str, document: &Document) -> StoreError {
    StoreError::Corrupt {
        position: 0,
        reason: format!("{what} document {:?} cannot be read", document.get("_id")),
    }
}

fn reply_from_doc(document: &Document) -> Result<ReplyView, StoreError> {
    let bad = || corrupt("saved reply", document);
    Ok(ReplyView {
        name: document.get_str("_id").map_err(|_| bad())?.to_owned(),
        content: document.get_str("content").map_err(|_| bad())?.to_owned(),
        updated_at: document.get_i64("updated_at").map_err(|_| bad())?,
    })
}

fn block_from_doc(document: &Document) -> Result<BlockView, StoreError> {
    let bad = || corrupt("block", document);
    Ok(BlockView {
        user_id: document.get_str("_id").map_err(|_| bad())?.to_owned(),
        reason: match document.get("reason") {
            None | Some(Bson::Null) => None,
            Some(Bson::String(reason)) => Some(reason.clone()),
            Some(_) => return Err(bad()),
        },
        created_at: document.get_i64("created_at").map_err(|_| bad())?,
    })
}

/// Every document of `collection` sorted by `_id`, through `session` when given.
async fn all(
    collection: &Collection<Document>,
    session: Option<&mut ClientSession>,
) -> Result<Vec<Document>, StoreError> {
    let find = collection.find(doc! {}).sort(doc! {"_id": 1});
    match session {
        None => {
            let mut cursor = find.await.map_err(unavailable)?;
            let mut out = Vec::new();
            while cursor.advance().await.map_err(unavailable)? {
                out.push(cursor.deserialize_current().map_err(unavailable)?);
            }
            Ok(out)
        }
        Some(session) => {
            let mut cursor = find.session(&mut *session).await.map_err(unavailable)?;
            let mut out = Vec::new();
            while cursor.advance(&mut *session).await.map_err(unavailable)? {
                out.push(cursor.deserialize_current().map_err(unavailable)?);
            }
            Ok(out)
        }
    }
}

/// Every saved reply, by name.
pub(super) async fn list_replies(
    collection: &Collection<Document>,
    session: Option<&mut ClientSession>,
) -> Result<Vec<ReplyView>, StoreError> {
    all(collection, session)
        .await?
        .iter()
        .map(reply_from_doc)
        .collect()
}

/// Whether `user_id` has a block document: one lookup by key.
pub(super) async fn is_blocked(
    collection: &Collection<Document>,
    user_id: &str,
) -> Result<bool, StoreError> {
    let found = collection
        .find_one(doc! {"_id": user_id})
        .projection(doc! {"_id": 1})
        .await
        .map_err(unavailable)?;
    Ok(found.is_some())
}

/// Every block, by user id.
pub(super) async fn list_blocks(
    collection: &Collection<Document>,
    session: Option<&mut ClientSession>,
) -> Result<Vec<BlockView>, StoreError> {
    all(collection, session)
        .await?
        .iter()
        .map(block_from_doc)
        .collect()
}
