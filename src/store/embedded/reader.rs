//! The read side: a few read-only connections. Listings and scans run on tokio's blocking pool so
//! SQLite never stalls an async worker; lookups by key run in place, being cheaper than the hop. In WAL mode a reader's statement sees every transaction committed
//! before it started and is never blocked by the writer, so reads need no coordination with it.

use super::rows::{
    EVENT_COLUMNS, MESSAGE_COLUMNS, TICKET_COLUMNS, event_from_row, message_from_row, sql_error,
    ticket_from_row, to_sql_int, to_sql_limit,
};
use super::schema::open_reader;
use crate::store::{Bookkeeping, SlaFilter, TicketFilter};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use ticketd_events::{EventEnvelope, StoreError};
use ticketd_projections::{MessageView, TicketView};
use tokio::sync::Semaphore;

/// A fixed number of read connections shared by every query.
pub(super) struct Readers {
    /// Where to open a replacement when a query panicked with a connection in hand.
    path: PathBuf,
    /// Connections not in use; never more than the permits.
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection, so a query waits asynchronously instead of holding a blocking
    /// thread while all connections are busy.
    permits: Arc<Semaphore>,
}

impl Readers {
    /// Opens `count` (at least one) read-only connections to `path`.
    pub(super) fn open(path: PathBuf, count: usize) -> Result<Self, StoreError> {
        let count = count.max(1);
        let idle = (0..count)
            .map(|_| open_reader(&path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Readers {
            path,
            idle: Mutex::new(idle),
            permits: Arc::new(Semaphore::new(count)),
        })
    }

    /// Runs `query` on a free connection on the blocking pool.
    pub(super) async fn run<T, F>(self: &Arc<Self>, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("reader pool closed".into()))?;
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // Held until the connection is back, even if the caller stopped waiting.
            let _permit = permit;
            let conn = readers.take()?;
            let result = query(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    /// Runs a lookup by primary key right here on the async worker when a connection is idle:
    /// it takes microseconds, less than handing it to the blocking pool and back would. With
    /// every connection busy it queues like any other query.
    pub(super) async fn run_point<T, F>(self: &Arc<Self>, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Ok(permit) = self.permits.try_acquire() else {
            return self.run(query).await;
        };
        let conn = self.take()?;
        let result = query(&conn);
        self.give_back(conn);
        drop(permit);
        result
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let spare = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match spare {
            Some(conn) => Ok(conn),
            // A query panicked and its connection went with it: replace it.
            None => open_reader(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}

/// Events of one stream after a version, in version order.
pub(super) fn read_stream(
    conn: &Connection,
    stream_id: &str,
    after_version: u64,
) -> Result<Vec<EventEnvelope>, StoreError> {
    read_stream_page(conn, stream_id, after_version, usize::MAX)
}

/// Up to `limit` of a stream's events after a version, in order.
pub(super) fn read_stream_page(
    conn: &Connection,
    stream_id: &str,
    after_version: u64,
    limit: usize,
) -> Result<Vec<EventEnvelope>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ?1 AND version > ?2 \
             ORDER BY version LIMIT ?3"
        ))
        .map_err(sql_error)?;
    let rows = stmt
        .query_map(
            params![stream_id, to_sql_int(after_version)?, to_sql_limit(limit)],
            event_from_row,
        )
        .map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(|ticket| ticket))
        .collect()
}

/// Up to `limit` events after a position, in position order.
pub(super) fn read_all(
    conn: &Connection,
    after_position: u64,
    limit: usize,
) -> Result<Vec<EventEnvelope>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
        ))
        .map_err(sql_error)?;
    let rows = stmt
        .query_map(
            params![to_sql_int(after_position)?, to_sql_limit(limit)],
            event_from_row,
        )
        .map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(|ticket| ticket))
        .collect()
}

/// Looks up stored events by id; used to answer a retried append with what the first try wrote.
pub(super) fn events_by_id(
    conn: &Connection,
    event_ids: &[&str],
) -> Result<Vec<Option<EventEnvelope>>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?1"
        ))
        .map_err(sql_error)?;
    event_ids
        .iter()
        .map(|id| {
            stmt.query_row([id], event_from_row)
                .optional()
                .map_err(sql_error)?
                .transpose()
        })
        .collect()
}

/// One ticket by id.
pub(super) fn get_ticket(
    conn: &Connection,
    ticket_id: &str,
) -> Result<Option<TicketView>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"
        ))
        .map_err(sql_error)?;
    stmt.query_row([ticket_id], ticket_from_row)
        .optional()
        .map_err(sql_error)?
        .transpose()
}

/// The tickets at `positions`, in any order (the search's candidates, ADR 0024).
pub(super) fn tickets_at(
    conn: &Connection,
    positions: &[u64],
) -> Result<Vec<TicketView>, StoreError> {
    let list = serde_json::to_string(positions)
        .map_err(|e| StoreError::Unavailable(format!("positions: {e}")))?;
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets \
             WHERE position IN (SELECT value FROM json_each(?1))"
        ))
        .map_err(sql_error)?;
    let rows = stmt.query_map([list], ticket_from_row).map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(|ticket| ticket))
        .collect()
}

/// Tickets whose countdown started at or before `started_by`, oldest first; reads the partial
/// `tickets_by_countdown` index, which holds waiting tickets only.
pub(super) fn due_countdowns(
    conn: &Connection,
    started_by: i64,
    limit: usize,
) -> Result<Vec<TicketView>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets INDEXED BY tickets_by_countdown \
             WHERE countdown_since IS NOT NULL AND countdown_since <= ?1 \
             ORDER BY countdown_since LIMIT ?2"
        ))
        .map_err(sql_error)?;
    let rows = stmt
        .query_map(params![started_by, to_sql_limit(limit)], ticket_from_row)
        .map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(|ticket| ticket))
        .collect()
}

/// Tickets matching every set field of `filter`, newest first, below `before_position`.
pub(super) fn list_tickets(
    conn: &Connection,
    filter: &TicketFilter,
    before_position: Option<u64>,
    limit: usize,
) -> Result<Vec<TicketView>, StoreError> {
    // One SQL text per combination of filters (at most 32), so each is prepared once and SQLite
    // plans it with the index that fits, instead of one catch-all query that can use none.
    let mut sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    // `?` in a condition stands for its value's parameter.
    let mut condition = |template: &str, value: Value| {
        args.push(value);
        let parameter = format!("?{}", args.len());
        sql.push_str(&format!(" AND {}", template.replace('?', &parameter)));
    };
    // A user's tickets are few and every customer listing filters by user, so that index must
    // win; without statistics SQLite may pick a status index instead and walk every open ticket.
    // A unary `+` keeps a column's condition but takes its index out of the running.
    let other = if filter.user_id.is_some() { "+" } else { "" };
    if let Some(user_id) = &filter.user_id {
        condition("user_id = ?", Value::Text(user_id.clone()));
    }
    if let Some(status) = filter.status {
        condition(
            &format!("{other}status = ?"),
            Value::Text(status.as_str().into()),
        );
    }
    if let Some(level) = filter.issue_level {
        condition(
            &format!("{other}issue_level = ?"),
            Value::Text(level.as_str().into()),
        );
    }
    if let Some(role) = filter.support_role {
        condition(
            &format!("{other}support_role = ?"),
            Value::Text(role.as_str().into()),
        );
    }
    if let Some(assignee) = &filter.assignee {
        // `IS` matches a NULL parameter too: one text for "held by" and "held by nobody".
        let value = assignee.clone().map_or(Value::Null, Value::Text);
        condition(&format!("{other}assignee_id IS ?"), value);
    }
    // Each tag through its index; the text depends only on how many there are (at most 10).
    for tag in &filter.tags {
        condition(
            "position IN (SELECT position FROM ticket_tags WHERE tag = ?)",
            Value::Text(tag.clone()),
        );
    }
    // Each through its partial index (ADR 0025).
    match filter.sla {
        Some(SlaFilter::Breached) => condition("sla_breached = ?", Value::Integer(1)),
        Some(SlaFilter::DueBy(by)) => condition(
            "sla_breached = 0 AND sla_next_due IS NOT NULL AND sla_next_due <= ?",
            Value::Integer(by),
        ),
        None => {}
    }
    if let Some(before) = before_position {
        condition("position < ?", Value::Integer(to_sql_int(before)?));
    }
    args.push(Value::Integer(to_sql_limit(limit)));
    sql.push_str(&format!(" ORDER BY position DESC LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let rows = stmt
        .query_map(params_from_iter(args), ticket_from_row)
        .map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(|ticket| ticket))
        .collect()
}

/// Tickets with a service-level target to record missed by `by`, earliest first; reads the
/// partial `tickets_by_sla_sweep` index (ADR 0025).
pub(super) fn due_sla(
    conn: &Connection,
    by: i64,
    limit: usize,
) -> Result<Vec<TicketView>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets INDEXED BY tickets_by_sla_sweep \
             WHERE sla_sweep_at IS NOT NULL AND sla_sweep_at <= ?1 \
             ORDER BY sla_sweep_at LIMIT ?2"
        ))
        .map_err(sql_error)?;
    let rows = stmt
        .query_map(params![by, to_sql_limit(limit)], ticket_from_row)
        .map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(|ticket| ticket))
        .collect()
}

/// One message by id, deleted or not.
pub(super) fn get_message(
    conn: &Connection,
    message_id: &str,
) -> Result<Option<MessageView>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"
        ))
        .map_err(sql_error)?;
    stmt.query_row([message_id], message_from_row)
        .optional()
        .map_err(sql_error)?
        .transpose()
}

/// Which of a ticket's messages a query reads, in which order.
#[derive(Clone, Copy)]
enum MessagePage {
    /// Live messages after a `seq`, oldest first.
    After { include_internal: bool },
    /// Live messages before a `seq`, newest first.
    Before { include_internal: bool },
    /// Every row, deleted ones and internal notes included, oldest first.
    All,
}

/// The statement reading one [`MessagePage`] of ticket `?1` (bound to `seq` `?2` and limit `?3`
/// where the page has them). A ticket's messages are found through the events'
/// `(stream_id, version)` index: a message's `seq` is its posting event's version and its row is
/// keyed by that event's position, so the read model needs no per-ticket index of its own and a
/// post writes one page of its ticket, not two (ADR 0003). `CROSS JOIN` keeps the events index
/// as the outer loop.
fn message_page_sql(page: MessagePage) -> String {
    let internal = |include: bool| if include { "" } else { " AND internal = 0" };
    let (condition, order) = match page {
        MessagePage::After { include_internal } => (
            format!(
                " AND e.version > ?2 AND deleted_at IS NULL{}",
                internal(include_internal)
            ),
            "e.version LIMIT ?3",
        ),
        MessagePage::Before { include_internal } => (
            format!(
                " AND e.version < ?2 AND deleted_at IS NULL{}",
                internal(include_internal)
            ),
            "e.version DESC LIMIT ?3",
        ),
        MessagePage::All => (String::new(), "e.version"),
    };
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM events e CROSS JOIN messages m ON m.position = e.position \
         WHERE e.stream_id = ?1{condition} ORDER BY {order}"
    )
}

/// A ticket's live messages in posting order after `after_seq`.
pub(super) fn list_messages(
    conn: &Connection,
    ticket_id: &str,
    after_seq: u64,
    limit: usize,
    include_internal: bool,
) -> Result<Vec<MessageView>, StoreError> {
    let sql = message_page_sql(MessagePage::After { include_internal });
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let rows = stmt
        .query_map(
            params![ticket_id, to_sql_int(after_seq)?, to_sql_limit(limit)],
            message_from_row,
        )
        .map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(|ticket| ticket))
        .collect()
}

/// A ticket's live messages newest first, before `before_seq` when given (same index as
/// [`list_messages`], walked backwards).
pub(super) fn list_messages_newest_first(
    conn: &Connection,
    ticket_id: &str,
    before_seq: Option<u64>,
    limit: usize,
    include_internal: bool,
) -> Result<Vec<MessageView>, StoreError> {
    let before = match before_seq {
        Some(seq) => to_sql_int(seq)?,
        None => i64::MAX,
    };
    let sql = message_page_sql(MessagePage::Before { include_internal });
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let rows = stmt
        .query_map(
            params![ticket_id, before, to_sql_limit(limit)],
            message_from_row,
        )
        .map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(|ticket| ticket))
        .collect()
}

/// Every message row of a ticket in posting order, deleted ones and internal notes included;
/// for audits, which compare the whole read model with a replay.
pub(super) fn all_messages_of(
    conn: &Connection,
    ticket_id: &str,
) -> Result<Vec<MessageView>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&message_page_sql(MessagePage::All))
        .map_err(sql_error)?;
    let rows = stmt
        .query_map([ticket_id], message_from_row)
        .map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(|ticket| ticket))
        .collect()
}

/// A projector's last finished position, 0 when it never saved one.
pub(super) fn load_checkpoint(conn: &Connection, name: &str) -> Result<u64, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT position FROM checkpoints WHERE name = ?1")
        .map_err(sql_error)?;
    let position: Option<i64> = stmt
        .query_row([name], |row| row.get(0))
        .optional()
        .map_err(sql_error)?;
    checkpoint_position(name, position.unwrap_or(0))
}

fn checkpoint_position(name: &str, position: i64) -> Result<u64, StoreError> {
    u64::try_from(position).map_err(|_| StoreError::Corrupt {
        position: 0,
        reason: format!("checkpoint {name} is negative ({position})"),
    })
}

/// Every link and checkpoint (what `ticketd export` carries beside the events).
pub(super) fn bookkeeping(conn: &Connection) -> Result<Bookkeeping, StoreError> {
    let links = conn
        .prepare("SELECT kind, key, value FROM links ORDER BY kind, key")
        .map_err(sql_error)?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    let checkpoints = conn
        .prepare("SELECT name, position FROM checkpoints ORDER BY name")
        .map_err(sql_error)?
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))
        .map_err(sql_error)?
        .map(|row| {
            let (name, position) = row.map_err(sql_error)?;
            let position = checkpoint_position(&name, position)?;
            Ok((name, position))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Bookkeeping { links, checkpoints })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each message page must walk the events' stream index and fetch message rows by key: a
    /// scan, a sort or a temporary B-tree would make a page of a 10,000-message ticket cost the
    /// whole ticket.
    #[test]
    fn a_page_of_messages_walks_the_stream_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::schema::open_writer(&dir.path().join("t.db"), true).unwrap();
        let pages = [
            MessagePage::After {
                include_internal: false,
            },
            MessagePage::After {
                include_internal: true,
            },
            MessagePage::Before {
                include_internal: false,
            },
            MessagePage::Before {
                include_internal: true,
            },
            MessagePage::All,
        ];
        for page in pages {
            let sql = message_page_sql(page);
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let unbound = vec![Value::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(params_from_iter(unbound), |row| row.get::<_, String>(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(plan.len(), 2, "{sql}: {plan:?}");
            assert!(
                plan[0].starts_with("SEARCH e USING COVERING INDEX sqlite_autoindex_events_2"),
                "{sql}: {plan:?}"
            );
            assert!(
                plan[1].starts_with("SEARCH m USING INTEGER PRIMARY KEY"),
                "{sql}: {plan:?}"
            );
        }
    }
}
