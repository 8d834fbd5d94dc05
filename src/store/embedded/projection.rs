//! The inline projection: the read-model changes of each appended event, written in the same
//! savepoint as the event, so a client that reads after its append returns sees its write and a
//! rejected append leaves no trace in the read models either. What to change is decided by
//! [`ticketd_projections::changes`]; this file only says how in SQL, mirroring
//! [`ticketd_projections::MemoryReadModel`] (an insert replaces, a change to a missing row is a
//! no-op) so a replay into memory equals the tables.

use super::rows::{TICKET_COLUMNS, sql_error, ticket_from_row, to_sql_int};
use rusqlite::{Connection, OptionalExtension, ToSql, params};
use ticketd_events::{EventEnvelope, SlaPolicy, StoreError};
use ticketd_projections::{Change, CountdownChange, SlaChange, TicketPatch, changes};

/// Applies everything `envelope` changes in the read models, and refreshes the ticket's
/// service-level columns under `policy` when the event moved them (ADR 0025).
pub(super) fn project(
    conn: &Connection,
    envelope: &EventEnvelope,
    policy: &SlaPolicy,
) -> Result<(), StoreError> {
    let mut sla_moved = false;
    for change in changes(envelope) {
        sla_moved |= moves_sla(&change);
        apply(conn, change)?;
    }
    if sla_moved {
        refresh_sla(conn, &envelope.stream_id, policy)?;
    }
    super::reports::project(conn, envelope)
}

/// Whether `change` may move a ticket's due times, breaches or next due time.
pub(super) fn moves_sla(change: &Change) -> bool {
    match change {
        Change::InsertTicket(_) | Change::Sla { .. } => true,
        Change::UpdateTicket { patch, .. } => patch.issue_level.is_some() || patch.status.is_some(),
        _ => false,
    }
}

/// Brings every ticket's service-level columns in line with `policy` when they were computed
/// under another one (or by a replay, which forgets which): at start-up, so a changed target
/// applies to every ticket at once and the filters stay exact.
pub(super) fn sync_sla_columns(
    conn: &mut Connection,
    policy: &SlaPolicy,
) -> Result<(), StoreError> {
    // Without targets the columns are not read: a tool opening the store (or a server with
    // service levels off) leaves them for the next server that has targets.
    if !policy.is_enabled() {
        return Ok(());
    }
    let fingerprint = format!("{policy:?}");
    let stored: Option<String> = conn
        .query_row("SELECT fingerprint FROM sla_policy WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql_error)?;
    if stored.as_deref().unwrap_or("") == fingerprint {
        return Ok(());
    }
    let tx = conn.transaction().map_err(sql_error)?;
    tx.execute(
        "UPDATE tickets SET sla_next_due = NULL, sla_sweep_at = NULL, sla_breached = 0",
        [],
    )
    .map_err(sql_error)?;
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM tickets")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql_error)?;
    for id in ids {
        refresh_sla(&tx, &id, policy)?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO sla_policy (id, fingerprint) VALUES (1, ?1)",
        params![fingerprint],
    )
    .map_err(sql_error)?;
    tx.commit().map_err(sql_error)
}

/// Recomputes the policy-dependent columns of one ticket from its row: what the `sla` filters
/// and the breach sweeper read. Without a target configured they stay empty.
pub(super) fn refresh_sla(
    conn: &Connection,
    ticket_id: &str,
    policy: &SlaPolicy,
) -> Result<(), StoreError> {
    if !policy.is_enabled() {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"
        ))
        .map_err(sql_error)?;
    let Some(ticket) = stmt
        .query_row(params![ticket_id], ticket_from_row)
        .optional()
        .map_err(sql_error)?
    else {
        return Ok(());
    };
    let clock = ticket?.sla_clock();
    conn.prepare_cached(
        "UPDATE tickets SET sla_next_due = ?1, sla_sweep_at = ?2, sla_breached = ?3 WHERE id = ?4",
    )
    .map_err(sql_error)?
    .execute(params![
        clock.next_due(policy),
        clock.sweep_at(policy),
        !clock.recorded.is_empty(),
        ticket_id
    ])
    .map_err(sql_error)?;
    Ok(())
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
        Change::InsertTicket(t) => {
            // An insert replaces, tag index included: a replay or an import inserts tickets as
            // they ended, tags and all, with no `SetTags` to fill it.
            let position = to_sql_int(t.position)?;
            run(
                "DELETE FROM ticket_tags WHERE position = ?1",
                params![position],
            )?;
            for tag in t.tags.as_deref().unwrap_or_default() {
                run(
                    "INSERT OR IGNORE INTO ticket_tags (tag, position) VALUES (?1, ?2)",
                    params![tag, position],
                )?;
            }
            run(
            "INSERT OR REPLACE INTO tickets (position, id, user_id, topic, description, status, \
             created_at, updated_at, user_role, support_role, issue_level, assignee_id, \
             assignee_name, tags, countdown_message, countdown_since, countdown_warned_at, \
             feedback, first_response_at, sla_from, resolved_at, sla_fr_breached, \
             sla_res_breached) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20, ?21, ?22, ?23)",
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
                t.feedback.as_ref().map(feedback_json).transpose()?,
                t.sla_facts.first_response_at,
                t.sla_facts.resolution_from,
                t.sla_facts.resolved_at,
                t.sla_facts.first_response_breached,
                t.sla_facts.resolution_breached,
            ],
        )
        }
        Change::UpdateTicket {
            ticket_id,
            patch,
            updated_at,
        } => {
            let TicketPatch { feedback, .. } = &patch;
            let feedback = feedback.as_ref().map(feedback_json).transpose()?;
            let holder = patch.assignee.clone().map(|h| h.unzip());
            run(
                "UPDATE tickets SET status = COALESCE(?1, status), \
                 support_role = COALESCE(?2, support_role), \
                 issue_level = COALESCE(?3, issue_level), updated_at = ?4, \
                 assignee_id = CASE WHEN ?6 THEN ?7 ELSE assignee_id END, \
                 assignee_name = CASE WHEN ?6 THEN ?8 ELSE assignee_name END, \
                 feedback = COALESCE(?9, feedback) WHERE id = ?5",
                params![
                    patch.status.map(|s| s.as_str()),
                    patch.support_role.map(|r| r.as_str()),
                    patch.issue_level.map(|l| l.as_str()),
                    updated_at,
                    ticket_id,
                    holder.is_some(),
                    holder.as_ref().and_then(|(id, _)| id.clone()),
                    holder.and_then(|(_, name)| name),
                    feedback,
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
        // Mirrors `ticketd_projections::next_sla`.
        Change::Sla { ticket_id, change } => match change {
            SlaChange::Answered { at } => run(
                "UPDATE tickets SET first_response_at = ?1 \
                 WHERE id = ?2 AND first_response_at IS NULL",
                params![at, ticket_id],
            ),
            SlaChange::Resolved { at } => run(
                "UPDATE tickets SET resolved_at = ?1 WHERE id = ?2",
                params![at, ticket_id],
            ),
            SlaChange::Reopened { at } => run(
                "UPDATE tickets SET sla_from = ?1, resolved_at = NULL, sla_res_breached = NULL \
                 WHERE id = ?2",
                params![at, ticket_id],
            ),
            SlaChange::Breached { target, due_at } => match target {
                ticketd_events::SlaTarget::FirstResponse => run(
                    "UPDATE tickets SET sla_fr_breached = ?1 WHERE id = ?2",
                    params![due_at, ticket_id],
                ),
                ticketd_events::SlaTarget::Resolution => run(
                    "UPDATE tickets SET sla_res_breached = ?1 WHERE id = ?2",
                    params![due_at, ticket_id],
                ),
            },
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

fn feedback_json(feedback: &ticketd_projections::FeedbackView) -> Result<String, StoreError> {
    serde_json::to_string(feedback).map_err(|e| StoreError::Unavailable(format!("feedback: {e}")))
}

fn tags_json(tags: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(tags).map_err(|e| StoreError::Unavailable(format!("tags: {e}")))
}
