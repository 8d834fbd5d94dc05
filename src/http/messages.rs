//! The message routes of a ticket: post, list, edit and delete. Internal notes are visible to
//! staff only; for a customer they do not exist.

use crate::app::AppState;
use crate::commands::IdempotencySeed;
use crate::http::RequestId;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::Path;
use crate::http::extract::{Auth, Fields, Query, idempotency_key, is_id, required_json_object};
use crate::http::history;
use crate::http::pagination::{Page, link_next};
use crate::http::tickets::{context, visible_ticket};
use crate::rate_limit::Route;
use crate::store::ReadModels;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{patch, post};
use axum::{Extension, Router};
use serde_json::json;
use ticketd_events::{Command, limits};
use ticketd_projections::{Change, MessageView, changes};

/// Routes under `/api/v1/tickets/{ticket_id}/messages`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tickets/{ticket_id}/messages", post(send).get(list))
        .route(
            "/api/v1/tickets/{ticket_id}/messages/{message_id}",
            patch(edit).delete(remove),
        )
}

/// The message as it now is, after a command on it (read-your-writes).
async fn current_message(
    state: &AppState,
    ticket_id: &str,
    message_id: &str,
) -> Result<Json<MessageView>, ApiError> {
    match state.store.get_message(message_id).await? {
        Some(message) if message.ticket_id == ticket_id => Ok(Json(message)),
        _ => Err(ApiError::Internal(format!(
            "message {message_id} missing from the read model after a command"
        ))),
    }
}

async fn send(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path(ticket_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<MessageView>, ApiError> {
    state.limits.check_user(Route::PostMessage, &auth.0.id)?;
    let key = idempotency_key(&headers)?;
    let mut fields = Fields::new(required_json_object(body).await?);
    let content = fields.string("content", limits::MESSAGE_MAX);
    let attachments = fields
        .optional_attachments("attachments")
        .unwrap_or_default();
    let internal = fields.optional_bool("internal").unwrap_or(false);
    fields.finish()?;
    if !is_id(&ticket_id) {
        return Err(ApiError::NotFound("Ticket not found".into()));
    }
    let mut context = context(&auth, &request_id);
    context.idempotency = key.map(|key| IdempotencySeed::new(&auth.0.id, &ticket_id, key));
    // A retry with the same key names the same message, so it is answered with the first one.
    let message_id = match &context.idempotency {
        Some(seed) => seed.id("message"),
        None => uuid::Uuid::now_v7().to_string(),
    };
    let command = Command::PostMessage {
        message_id: message_id.clone(),
        content,
        attachments,
        internal,
    };
    let outcome = state
        .executor
        .execute(&ticket_id, &context, &[command])
        .await?;
    // The committed event already holds the whole message: no read needed to answer.
    let posted = outcome
        .events
        .iter()
        .flat_map(changes)
        .find_map(|change| match change {
            Change::InsertMessage(message) if message.id == message_id => Some(message),
            _ => None,
        });
    match posted {
        Some(message) => Ok(Json(message)),
        None => current_message(&state, &ticket_id, &message_id).await,
    }
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(ticket_id): Path<String>,
    query: Query,
) -> Result<Response, ApiError> {
    state.limits.check_user(Route::ListMessages, &auth.0.id)?;
    let page = Page::from_query(&query)?;
    let newest_first = newest_first(&query)?;
    if let Some(as_of) = history::as_of(&query)? {
        return history::messages_as_of(&state, &auth, &ticket_id, as_of, page, &query).await;
    }
    visible_ticket(&state, &auth, &ticket_id).await?;
    let staff = auth.0.is_staff();
    let mut messages = if newest_first {
        state
            .store
            .list_messages_newest_first(&ticket_id, page.cursor, page.limit + 1, staff)
            .await?
    } else {
        state
            .store
            .list_messages(&ticket_id, page.cursor, page.limit + 1, staff)
            .await?
    };
    let mut headers = HeaderMap::new();
    if messages.len() > page.limit {
        messages.truncate(page.limit);
        if let Some(last) = messages.last() {
            let path = format!("/api/v1/tickets/{ticket_id}/messages");
            link_next(&mut headers, &path, &query, page.limit, last.seq);
        }
    }
    Ok((headers, Json(messages)).into_response())
}

/// The `order` query parameter of a message listing: `asc` (the default, oldest first) or
/// `desc` (newest first; the cursor then pages towards older messages).
pub(crate) fn newest_first(query: &Query) -> Result<bool, ApiError> {
    match query.get("order") {
        None | Some("") | Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        Some(_) => Err(ApiError::field(
            FieldError::new("query.order", "invalid_query", "order must be asc or desc")
                .with_context(json!({"allowed": ["asc", "desc"]})),
        )),
    }
}

async fn edit(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path((ticket_id, message_id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<MessageView>, ApiError> {
    state.limits.check_user(Route::EditMessage, &auth.0.id)?;
    let mut fields = Fields::new(required_json_object(body).await?);
    let content = fields.string("content", limits::MESSAGE_MAX);
    let attachments = fields.optional_attachments("attachments");
    fields.finish()?;
    if !is_id(&ticket_id) {
        return Err(ApiError::NotFound("Ticket not found".into()));
    }
    let command = Command::EditMessage {
        message_id: message_id.clone(),
        content,
        attachments,
    };
    state
        .executor
        .execute(&ticket_id, &context(&auth, &request_id), &[command])
        .await?;
    current_message(&state, &ticket_id, &message_id).await
}

async fn remove(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path((ticket_id, message_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.limits.check_user(Route::DeleteMessage, &auth.0.id)?;
    if !is_id(&ticket_id) {
        return Err(ApiError::NotFound("Ticket not found".into()));
    }
    let command = Command::DeleteMessage { message_id };
    state
        .executor
        .execute(&ticket_id, &context(&auth, &request_id), &[command])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
