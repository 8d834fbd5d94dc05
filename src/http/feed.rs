//! The changes feed: the global log after a position, with full envelopes, for a partner backend
//! that mirrors everything (ADMIN only). `wait` turns a read at the head into a long poll, so a
//! mirror learns of a new event as it is stored instead of polling.

use crate::app::AppState;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{Auth, Query};
use crate::http::pagination::encode;
use crate::rate_limit::Route;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use std::time::Duration;
use ticketd_events::{EventStore, UserRole};

/// `GET /api/v1/events`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events", get(feed))
}

/// Events per page unless asked otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Most events per page.
pub const MAX_LIMIT: usize = 1000;
/// The longest `wait`, in seconds: under the usual 60 s idle time-out of proxies.
pub const MAX_WAIT_SECS: u64 = 30;

/// The events after `after` (default 0) in log order, at most `limit`; with `wait`, an empty
/// read waits that long for the first new event and answers `[]` if none comes. The next
/// page's URL is in the `Link` header when the page is full.
async fn feed(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Response, ApiError> {
    state.limits.check_user(Route::Events, &auth.0.id)?;
    if auth.0.role != UserRole::Admin {
        return Err(ApiError::Forbidden(
            "Only admins may read the events feed".into(),
        ));
    }
    // Positions are signed 64-bit integers in both stores.
    let after = number(&query, "after", 0, i64::MAX as u64)?.unwrap_or(0);
    let limit = number(&query, "limit", 1, MAX_LIMIT as u64)?.map_or(DEFAULT_LIMIT, |n| n as usize);
    let wait = number(&query, "wait", 0, MAX_WAIT_SECS)?.unwrap_or(0);
    let mut events = state.store.read_all(after, limit).await?;
    // Waiting makes sense at the head; a position beyond it was never given out, and waiting
    // for the log to grow past it could hold the request for ever.
    if events.is_empty() && wait > 0 && after <= state.store.head().await? {
        let mut stopping = state.stopping();
        tokio::select! {
            () = state.store.wait_beyond(after) => {}
            () = tokio::time::sleep(Duration::from_secs(wait)) => {}
            // A held request must not hold up a shutdown.
            _ = stopping.wait_for(|stopping| *stopping) => {}
        }
        events = state.store.read_all(after, limit).await?;
    }
    let mut headers = HeaderMap::new();
    if events.len() == limit
        && let Some(last) = events.last()
    {
        let mut link = format!("</api/v1/events?after={}&limit={limit}", last.position);
        if let Some(wait) = query.get("wait") {
            link.push_str(&format!("&wait={}", encode(wait)));
        }
        link.push_str(">; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, value);
        }
    }
    Ok((headers, Json(events)).into_response())
}

/// The query parameter `name` as a whole number (digits only) from `min` to `max`, if given.
fn number(query: &Query, name: &'static str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) && text.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(n))
        }
        _ => Err(ApiError::field(
            FieldError::new(
                format!("query.{name}"),
                "invalid_query",
                format!("{name} must be a whole number from {min} to {max}"),
            )
            .with_context(json!({"min": min, "max": max})),
        )),
    }
}
