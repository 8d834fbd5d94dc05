//! The message routes of a ticket: post, list, edit and delete. Internal notes are visible to
//! staff only; for a customer they do not exist.

use crate::app::AppState;
use crate::commands::IdempotencySeed;
use crate::http::RequestId;
use crate::http::access::{MessageId, TicketId, as_of, context, newest_first, visible_ticket};
use crate::http::error::ApiError;
use crate::http::extract::{Auth, Fields, Query, idempotency_key, required_json_object};
use crate::http::history;
use crate::http::pagination::{Page, link_next};
use crate::http::write::{execute, message_now};
use crate::rate_limit::Route;
use crate::store::ReadModels;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{patch, post};
use axum::{Extension, Router};
use ticketd_events::{Command, limits};
use ticketd_projections::MessageView;

/// Routes under `/api/v1/tickets/{ticket_id}/messages`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tickets/{ticket_id}/messages", post(send).get(list))
        .route(
            "/api/v1/tickets/{ticket_id}/messages/{message_id}",
            patch(edit).delete(remove),
        )
}

async fn send(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    ticket: TicketId,
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
    let mut context = context(&auth, &request_id);
    // The scope names the route as well as the ticket: the same key may have opened this very
    // ticket, and its events' ids must not meet the opening's (ADR 0014).
    let scope = format!("POST /api/v1/tickets/{}/messages", ticket.as_str());
    context.idempotency = key.map(|key| IdempotencySeed::new(&auth.0.id, &scope, key));
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
    let outcome = execute(&state, &context, &ticket, &[command]).await?;
    message_now(&state, &ticket, &message_id, &outcome).await
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ticket: TicketId,
    query: Query,
) -> Result<Response, ApiError> {
    state.limits.check_user(Route::ListMessages, &auth.0.id)?;
    let page = Page::from_query(&query)?;
    let newest_first = newest_first(&query)?;
    if let Some(as_of) = as_of(&query)? {
        return history::messages_as_of(&state, &auth, &ticket, as_of, page, &query).await;
    }
    visible_ticket(&state, &auth, &ticket).await?;
    let ticket_id = ticket.as_str();
    let staff = auth.0.is_staff();
    let mut messages = if newest_first {
        state
            .store
            .list_messages_newest_first(ticket_id, page.cursor, page.limit + 1, staff)
            .await?
    } else {
        state
            .store
            .list_messages(ticket_id, page.cursor, page.limit + 1, staff)
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

async fn edit(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    ticket: TicketId,
    MessageId(message_id): MessageId,
    body: Body,
) -> Result<Json<MessageView>, ApiError> {
    state.limits.check_user(Route::EditMessage, &auth.0.id)?;
    let mut fields = Fields::new(required_json_object(body).await?);
    let content = fields.string("content", limits::MESSAGE_MAX);
    let attachments = fields.optional_attachments("attachments");
    fields.finish()?;
    let command = Command::EditMessage {
        message_id: message_id.clone(),
        content,
        attachments,
    };
    let context = context(&auth, &request_id);
    let outcome = execute(&state, &context, &ticket, &[command]).await?;
    message_now(&state, &ticket, &message_id, &outcome).await
}

async fn remove(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    ticket: TicketId,
    MessageId(message_id): MessageId,
) -> Result<StatusCode, ApiError> {
    state.limits.check_user(Route::DeleteMessage, &auth.0.id)?;
    let command = Command::DeleteMessage { message_id };
    execute(&state, &context(&auth, &request_id), &ticket, &[command]).await?;
    Ok(StatusCode::NO_CONTENT)
}
