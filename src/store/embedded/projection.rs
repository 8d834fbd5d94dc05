//! The inline projection: the read-model changes of each appended event, written in the same
//! savepoint as the event, so a client that reads after its append returns sees its write and a
//! rejected append leaves no trace in the read models either. What to change is decided by
//! [`ticketd_projections::changes`]; this file only says how in SQL, mirroring
//! [`ticketd_projections::MemoryReadModel`] (an insert replaces, a change to a missing row is a
//! no-op) so a replay into memory equals the tables.

use super::rows::{sql_error, to_sql_int};
use rusqlite::{Connection, ToSql, params};
use ticketd_events::{EventEnvelope, StoreError};
use ticketd_projections::{Change, CountdownChange, changes};

/// Applies everything `envelope` changes in the read models.
pub(super) fn project(conn: &Connection, envelope: &EventEnvelope) -> Result<(), StoreError> {
    for change in changes(envelope) {
        apply(conn, change)?;
    }
    super::reports::project(conn, envelope)
}

pub(super) fn apply(conn: &Connection, change: Change) -> Result<(), StoreError> {
    // The search index reads the rows as they were before the change (ADR 0024).
    super::search::apply(conn, &change)?;
    // Answers how many rows the statement changed.
    let run = |sql: &str, args: &[&dyn ToSql]| -> Result<usize, StoreError> {
        let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
        stmt.execute(args).map_err(sql_error)
    };
    match change {
        Change::InsertTicket(t) => run(
            "INSERT OR REPLACE INTO tickets (position, id, user_id, topic, description, status, \
             created_at, updated_at, user_role, support_role, issue_level, assignee_id, \
             assignee_name, tags, countdown_message, countdown_since, countdown_warned_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                to_sql_int(t.position)?,
                t.id,
                t.user_id,
                t.topic,
                t.description,
                t.status.as_str(),
                t.created_at,
                t.updated_at,
                t.user_role.as_str(),
                t.support_role.as_str(),
                t.issue_level.as_str(),
                t.assignee_id,
                t.assignee_name,
                tags_json(t.tags.as_deref().unwrap_or_default())?,
                t.countdown.as_ref().map(|c| c.message_id.as_str()),
                t.countdown.as_ref().map(|c| c.since),
                t.countdown.as_ref().and_then(|c| c.warned_at),
            ],
        ),
        Change::UpdateTicket {
            ticket_id,
            patch,
            updated_at,
        } => {
            let holder = patch.assignee.clone().map(|h| h.unzip());
            run(
                "UPDATE tickets SET status = COALESCE(?1, status), \
                 support_role = COALESCE(?2, support_role), \
                 issue_level = COALESCE(?3, issue_level), updated_at = ?4, \
                 assignee_id = CASE WHEN ?6 THEN ?7 ELSE assignee_id END, \
                 assignee_name = CASE WHEN ?6 THEN ?8 ELSE assignee_name END WHERE id = ?5",
                params![
                    patch.status.map(|s| s.as_str()),
                    patch.support_role.map(|r| r.as_str()),
                    patch.issue_level.map(|l| l.as_str()),
                    updated_at,
                    ticket_id,
                    holder.is_some(),
                    holder.as_ref().and_then(|(id, _)| id.clone()),
                    holder.and_then(|(_, name)| name),
                ],
            )
        }
        // The tags are kept twice: in the row, as the ticket shows them, and one row per tag
        // in `ticket_tags`, the index the `tag` filter reads.
        Change::SetTags { ticket_id, tags } => {
            let changed = run(
                "UPDATE tickets SET tags = ?1 WHERE id = ?2",
                params![tags_json(&tags)?, ticket_id],
            )?;
            run(
                "DELETE FROM ticket_tags WHERE position = \
                 (SELECT position FROM tickets WHERE id = ?1)",
                params![ticket_id],
            )?;
            for tag in &tags {
                run(
                    "INSERT OR IGNORE INTO ticket_tags (tag, position) \
                     SELECT ?1, position FROM tickets WHERE id = ?2",
                    params![tag, ticket_id],
                )?;
            }
            Ok(changed)
        }
        // The row takes its posting event's position as key: rows append at the table's end,
        // and a ticket's messages are found through the events' stream index, the one page of
        // the ticket a post writes (ADR 0003).
        Change::InsertMessage(m) => {
            let inserted = run(
                "INSERT OR REPLACE INTO messages (position, id, ticket_id, author_id, \
                 author_name, content, attachments, created_at, updated_at, internal, seq, \
                 deleted_at) \
                 SELECT position, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 \
                 FROM events WHERE stream_id = ?2 AND version = ?10",
                params![
                    m.id,
                    m.ticket_id,
                    m.author_id,
                    m.author_name,
                    m.content,
                    attachments_json(&m.attachments)?,
                    m.created_at,
                    m.updated_at,
                    m.internal,
                    to_sql_int(m.seq)?,
                    m.deleted_at,
                ],
            )?;
            if inserted != 1 {
                return Err(StoreError::Corrupt {
                    position: 0,
                    reason: format!(
                        "message {} has no posting event at version {} of ticket {}",
                        m.id, m.seq, m.ticket_id
                    ),
                });
            }
            Ok(inserted)
        }
        Change::EditMessage {
            message_id,
            content,
            attachments,
            updated_at,
        } => run(
            "UPDATE messages SET content = ?1, attachments = COALESCE(?2, attachments), \
             updated_at = ?3 WHERE id = ?4",
            params![
                content,
                attachments.as_deref().map(attachments_json).transpose()?,
                updated_at,
                message_id,
            ],
        ),
        Change::DeleteMessage {
            message_id,
            deleted_at,
        } => run(
            "UPDATE messages SET deleted_at = ?1 WHERE id = ?2",
            params![deleted_at, message_id],
        ),
        // Mirrors `ticketd_projections::next_countdown`: a start replaces, a warning marks
        // only a running countdown, a stop clears.
        Change::Countdown { ticket_id, change } => match change {
            CountdownChange::Start { message_id, since } => run(
                "UPDATE tickets SET countdown_message = ?1, countdown_since = ?2, \
                 countdown_warned_at = NULL WHERE id = ?3",
                params![message_id, since, ticket_id],
            ),
            CountdownChange::Warned { at } => run(
                "UPDATE tickets SET countdown_warned_at = ?1 \
                 WHERE id = ?2 AND countdown_since IS NOT NULL",
                params![at, ticket_id],
            ),
            CountdownChange::Stop => run(
                "UPDATE tickets SET countdown_message = NULL, countdown_since = NULL, \
                 countdown_warned_at = NULL WHERE id = ?1 AND countdown_since IS NOT NULL",
                params![ticket_id],
            ),
        },
        change @ (Change::PutReply(_)
        | Change::DeleteReply { .. }
        | Change::PutBlock(_)
        | Change::DeleteBlock { .. }) => super::helpdesk::apply(conn, change),
    }
    .map(drop)
}

fn attachments_json(attachments: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(attachments)
        .map_err(|e| StoreError::Unavailable(format!("attachments: {e}")))
}

fn tags_json(tags: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(tags).map_err(|e| StoreError::Unavailable(format!("tags: {e}")))
}
