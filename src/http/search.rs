//! `GET /api/v1/search`: full-text search over the tickets the caller may see (ADR 0024),
//! filtered and paged like the ticket listing, each hit with highlighted excerpts.

use crate::app::AppState;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{Auth, Query};
use crate::http::pagination::{Page, link_next};
use crate::http::tickets::listing_filter;
use crate::rate_limit::Route;
use crate::search::{MAX_WORDS, SearchRequest, search, text};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// Longest query, in characters.
pub const Q_MAX: usize = 200;

/// The search route.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/search", get(find))
}

async fn find(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Response, ApiError> {
    state.limits.check_user(Route::Search, &auth.0.id)?;
    let terms = query_words(query.get("q").unwrap_or_default())?;
    let page = Page::from_query(&query)?;
    let filter = listing_filter(&query, &auth)?;
    // Hits are filtered by their rows as read, and a service level is a matter of the clock:
    // the listing answers `sla=` from its own indexes.
    if filter.sla.is_some() {
        return Err(ApiError::BadRequest(vec![FieldError::new(
            "query.sla",
            "unsupported",
            "search does not filter by service level; list tickets with sla= instead",
        )]));
    }
    if !state.store.search_index() {
        return Err(ApiError::Unavailable(
            "Search is turned off on this server (SEARCH_INDEX=off)".into(),
        ));
    }
    let staff = auth.0.is_staff();
    let found = search(
        &state.store,
        &SearchRequest {
            terms,
            filter,
            staff,
            cursor: page.cursor,
            limit: page.limit,
        },
    )
    .await?;
    let mut headers = HeaderMap::new();
    if found.more
        && let Some(last) = found.hits.last()
    {
        link_next(
            &mut headers,
            "/api/v1/search",
            &query,
            page.limit,
            last.cursor,
        );
    }
    let hits = found
        .hits
        .into_iter()
        .map(|hit| {
            let mut ticket = serde_json::to_value(hit.ticket.seen_by(staff))
                .map_err(|e| ApiError::Internal(format!("ticket: {e}")))?;
            if let Value::Object(fields) = &mut ticket {
                fields.insert("highlights".into(), json!(hit.highlights));
            }
            Ok(ticket)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok((headers, Json(hits)).into_response())
}

/// The words of `q`: at least one letter or digit, at most [`Q_MAX`] characters and
/// [`MAX_WORDS`] distinct words.
fn query_words(q: &str) -> Result<Vec<text::QueryTerm>, ApiError> {
    let bad = |message: String| {
        ApiError::field(
            FieldError::new("query.q", "invalid_query", message)
                .with_context(json!({"max_length": Q_MAX, "max_words": MAX_WORDS})),
        )
    };
    if q.chars().count() > Q_MAX {
        return Err(bad(format!("q is at most {Q_MAX} characters")));
    }
    let terms = text::query_terms(q);
    if terms.is_empty() {
        return Err(bad("q must contain at least one word".into()));
    }
    if terms.len() > MAX_WORDS {
        return Err(bad(format!("q has at most {MAX_WORDS} words")));
    }
    Ok(terms)
}
