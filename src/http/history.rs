//! A ticket's past, for auditors: its events with their full envelopes (admins only), and the
//! ticket and its messages as they were at an instant (`as_of`, epoch ms), by folding the
//! stream's events recorded up to then through the same projection the live read models use.
//! The live handlers in `tickets.rs` and `messages.rs` hand over here when `as_of` is given.

use crate::app::AppState;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::Path;
use crate::http::extract::{Auth, Query, is_id};
use crate::http::pagination::{Page, link_next};
use crate::rate_limit::Route;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use ticketd_events::{EventEnvelope, EventStore, UserRole};
use ticketd_projections::{MemoryReadModel, TicketView};

/// `GET /api/v1/tickets/{ticket_id}/events`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/tickets/{ticket_id}/events", get(events))
}

/// Events per page unless asked otherwise, and at most: an auditor reads whole histories, so
/// pages are larger than other listings', and most tickets fit in one.
pub const EVENTS_PAGE: usize = 1000;

/// The ticket's events in stream order, with their envelopes and hashes, a page at a time (the
/// cursor is the last version seen; the next page is in the `Link` header). Returns 403 to
/// anyone but an ADMIN, 404 for an unknown ticket.
async fn events(
    State(state): State<AppState>,
    auth: Auth,
    Path(ticket_id): Path<String>,
    query: Query,
) -> Result<Response, ApiError> {
    state.limits.check_user(Route::TicketEvents, &auth.0.id)?;
    if auth.0.role != UserRole::Admin {
        return Err(ApiError::Forbidden(
            "Only admins may read a ticket's events".into(),
        ));
    }
    let page = Page::from_query_within(&query, EVENTS_PAGE, EVENTS_PAGE)?;
    if !is_id(&ticket_id) {
        return Err(not_found());
    }
    let after = page.cursor.unwrap_or(0);
    let mut events = state
        .store
        .read_stream_page(&ticket_id, after, page.limit + 1)
        .await?;
    // An empty page past the end of a ticket that exists is an answer, not a 404.
    if events.is_empty()
        && (after == 0
            || state
                .store
                .read_stream_page(&ticket_id, 0, 1)
                .await?
                .is_empty())
    {
        return Err(not_found());
    }
    let mut headers = HeaderMap::new();
    if events.len() > page.limit {
        events.truncate(page.limit);
        if let Some(last) = events.last() {
            let path = format!("/api/v1/tickets/{ticket_id}/events");
            link_next(&mut headers, &path, &query, page.limit, last.version);
        }
    }
    Ok((headers, Json(events)).into_response())
}

/// The `as_of` query parameter: an instant in epoch milliseconds, or `None` for "now".
pub(crate) fn as_of(query: &Query) -> Result<Option<i64>, ApiError> {
    match query.get("as_of") {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(at) if at >= 0 => Ok(Some(at)),
            _ => Err(ApiError::field(
                FieldError::new(
                    "query.as_of",
                    "invalid_query",
                    "as_of must be a time in epoch milliseconds (a whole number, 0 or more)",
                )
                .with_context(json!({"expected": "epoch milliseconds"})),
            )),
        },
    }
}

/// The ticket and its read models as they were at `as_of`, if the caller may see it: 404 when
/// it did not exist yet, 403 when it is someone else's.
pub(crate) async fn ticket_as_of(
    state: &AppState,
    auth: &Auth,
    ticket_id: &str,
    as_of: i64,
) -> Result<(TicketView, MemoryReadModel), ApiError> {
    let events = stream(state, ticket_id).await?;
    // `recorded_at` never decreases along a stream, so the instant cuts it in two.
    let then = events.partition_point(|e| e.recorded_at <= as_of);
    let mut model = MemoryReadModel::from_events(&events[..then]);
    let ticket = model.tickets.remove(ticket_id).ok_or_else(not_found)?;
    if !auth.0.is_staff() && ticket.user_id != auth.0.id {
        return Err(ApiError::Forbidden(
            "This ticket belongs to another user".into(),
        ));
    }
    Ok((ticket, model))
}

/// `GET /tickets/{id}/messages?as_of=`: the messages live at `as_of`, in the text they had
/// then, paged by the same cursor as the live listing.
pub(crate) async fn messages_as_of(
    state: &AppState,
    auth: &Auth,
    ticket_id: &str,
    as_of: i64,
    page: Page,
    query: &Query,
) -> Result<Response, ApiError> {
    let (_, model) = ticket_as_of(state, auth, ticket_id, as_of).await?;
    let mut live = model.live_messages(ticket_id, auth.0.is_staff());
    let cursor = page.cursor;
    if crate::http::messages::newest_first(query)? {
        live.reverse();
        live.retain(|m| cursor.is_none_or(|before| m.seq < before));
    } else {
        live.retain(|m| m.seq > cursor.unwrap_or(0));
    }
    let mut messages: Vec<_> = live.into_iter().take(page.limit + 1).cloned().collect();
    let mut headers = HeaderMap::new();
    if messages.len() > page.limit {
        messages.truncate(page.limit);
        if let Some(last) = messages.last() {
            let path = format!("/api/v1/tickets/{ticket_id}/messages");
            link_next(&mut headers, &path, query, page.limit, last.seq);
        }
    }
    Ok((headers, Json(messages)).into_response())
}

async fn stream(state: &AppState, ticket_id: &str) -> Result<Vec<EventEnvelope>, ApiError> {
    if !is_id(ticket_id) {
        return Err(not_found());
    }
    Ok(state.store.read_stream(ticket_id, 0).await?)
}

fn not_found() -> ApiError {
    ApiError::NotFound("Ticket not found".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(value: &str) -> Query {
        Query(vec![("as_of".into(), value.into())])
    }

    #[test]
    fn as_of_is_epoch_milliseconds() {
        assert_eq!(as_of(&Query(vec![])).ok(), Some(None));
        assert_eq!(as_of(&query("")).ok(), Some(None));
        assert_eq!(
            as_of(&query("1700000000000")).ok(),
            Some(Some(1_700_000_000_000))
        );
        for bad in [
            "-1",
            "soon",
            "1.5",
            "2024-01-01T00:00:00Z",
            "99999999999999999999",
        ] {
            match as_of(&query(bad)) {
                Err(ApiError::BadRequest(errors)) => {
                    assert_eq!(errors[0].location, "query.as_of");
                    assert_eq!(errors[0].kind, "invalid_query");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
