//! A ticket's past, for auditors: its events with their full envelopes (admins only), and the
//! ticket and its messages as they were at an instant (`as_of`, epoch ms), by folding the
//! stream's events recorded up to then through the same projection the live read models use.
//! The live handlers in `tickets.rs` and `messages.rs` hand over here when `as_of` is given.

use crate::app::AppState;
use crate::http::access::{TicketId, may_see, newest_first};
use crate::http::error::ApiError;
use crate::http::extract::{Auth, Query};
use crate::http::pagination::{Page, link_next};
use crate::rate_limit::Route;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use ticketd_events::{EventStore, UserRole};
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
    ticket: TicketId,
    query: Query,
) -> Result<Response, ApiError> {
    state.limits.check_user(Route::TicketEvents, &auth.0.id)?;
    let ticket_id = ticket.as_str();
    if auth.0.role != UserRole::Admin {
        return Err(ApiError::Forbidden(
            "Only admins may read a ticket's events".into(),
        ));
    }
    let page = Page::from_query_within(&query, EVENTS_PAGE, EVENTS_PAGE)?;
    let after = page.cursor.unwrap_or(0);
    let mut events = state
        .store
        .read_stream_page(ticket_id, after, page.limit + 1)
        .await?;
    // An empty page past the end of a ticket that exists is an answer, not a 404.
    if events.is_empty()
        && (after == 0
            || state
                .store
                .read_stream_page(ticket_id, 0, 1)
                .await?
                .is_empty())
    {
        return Err(ApiError::ticket_not_found());
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

/// The ticket and its read models as they were at `as_of`, if the caller may see it: 404 when
/// it did not exist yet, 403 when it is someone else's.
pub(crate) async fn ticket_as_of(
    state: &AppState,
    auth: &Auth,
    ticket: &TicketId,
    as_of: i64,
) -> Result<(TicketView, MemoryReadModel), ApiError> {
    let ticket_id = ticket.as_str();
    let events = state.store.read_stream(ticket_id, 0).await?;
    // `recorded_at` never decreases along a stream, so the instant cuts it in two.
    let then = events.partition_point(|e| e.recorded_at <= as_of);
    let mut model = MemoryReadModel::from_events(&events[..then]);
    let view = model
        .tickets
        .remove(ticket_id)
        .ok_or_else(ApiError::ticket_not_found)?;
    may_see(auth, &view)?;
    Ok((
        view.seen_by(auth.0.is_staff()).with_sla(&state.config.sla),
        model,
    ))
}

/// `GET /tickets/{id}/messages?as_of=`: the messages live at `as_of`, in the text they had
/// then, paged by the same cursor as the live listing.
pub(crate) async fn messages_as_of(
    state: &AppState,
    auth: &Auth,
    ticket: &TicketId,
    as_of: i64,
    page: Page,
    query: &Query,
) -> Result<Response, ApiError> {
    let (_, model) = ticket_as_of(state, auth, ticket, as_of).await?;
    let ticket_id = ticket.as_str();
    let mut live = model.live_messages(ticket_id, auth.0.is_staff());
    let cursor = page.cursor;
    if newest_first(query)? {
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
