//! The saved replies and blocks in the SQLite file (ADR 0021): how their changes are written
//! by the inline projection and how they are listed. Kept apart from the ticket tables' SQL, so
//! the streams beside the tickets stay in one place.

use super::rows::sql_error;
use rusqlite::{Connection, Row, params};
use ticketd_events::StoreError;
use ticketd_projections::{BlockView, Change, ReplyView};

/// Applies one reply or block change; any other change is not ours and is left alone.
pub(super) fn apply(conn: &Connection, change: Change) -> Result<usize, StoreError> {
    let (sql, args): (&str, Vec<rusqlite::types::Value>) = match change {
        Change::PutReply(reply) => (
            "INSERT OR REPLACE INTO saved_replies (name, content, updated_at) \
             VALUES (?1, ?2, ?3)",
            vec![
                reply.name.into(),
                reply.content.into(),
                reply.updated_at.into(),
            ],
        ),
        Change::DeleteReply { name } => (
            "DELETE FROM saved_replies WHERE name = ?1",
            vec![name.into()],
        ),
        Change::PutBlock(block) => (
            "INSERT OR REPLACE INTO blocks (user_id, reason, created_at) VALUES (?1, ?2, ?3)",
            vec![
                block.user_id.into(),
                block.reason.into(),
                block.created_at.into(),
            ],
        ),
        Change::DeleteBlock { user_id } => (
            "DELETE FROM blocks WHERE user_id = ?1",
            vec![user_id.into()],
        ),
        _ => return Ok(0),
    };
    let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
    stmt.execute(rusqlite::params_from_iter(args))
        .map_err(sql_error)
}

/// Every saved reply, by name.
pub(super) fn list_replies(conn: &Connection) -> Result<Vec<ReplyView>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT name, content, updated_at FROM saved_replies ORDER BY name")
        .map_err(sql_error)?;
    let rows = stmt
        .query_map(params![], |row: &Row<'_>| {
            Ok(ReplyView {
                name: row.get(0)?,
                content: row.get(1)?,
                updated_at: row.get(2)?,
            })
        })
        .map_err(sql_error)?;
    rows.collect::<Result<_, _>>().map_err(sql_error)
}

/// Every block, by user id.
pub(super) fn list_blocks(conn: &Connection) -> Result<Vec<BlockView>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT user_id, reason, created_at FROM blocks ORDER BY user_id")
        .map_err(sql_error)?;
    let rows = stmt
        .query_map(params![], |row: &Row<'_>| {
            Ok(BlockView {
                user_id: row.get(0)?,
                reason: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .map_err(sql_error)?;
    rows.collect::<Result<_, _>>().map_err(sql_error)
}
