//! The ticket routes: open, list, read, re-route (staff), close and reopen.

use crate::app::AppState;
use crate::http::RequestId;
use crate::http::access::{TicketId, as_of, context, visible_ticket};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{
    Auth, Fields, Query, idempotency_key, json_object, required_json_object,
};
use crate::http::history;
use crate::http::pagination::{Page, link_next};
use crate::http::write::{execute, ticket_now};
use crate::rate_limit::Route;
use crate::store::{ReadModels, TicketFilter};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use ticketd_events::{Command, IssueLevel, SupportRole, TicketStatus, limits};
use ticketd_projections::TicketView;

/// Routes under `/api/v1/tickets` that act on tickets themselves.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tickets", post(create).get(list))
        .route("/api/v1/tickets/{ticket_id}", get(show).patch(update))
        .route("/api/v1/tickets/{ticket_id}/close", post(close))
        .route("/api/v1/tickets/{ticket_id}/reopen", post(reopen))
}

/// Runs a ticket command and answers with the ticket as it now is (read-your-writes).
async fn run_command(
    state: &AppState,
    auth: &Auth,
    request_id: &RequestId,
    ticket: &TicketId,
    commands: &[Command],
) -> Result<Json<TicketView>, ApiError> {
    execute(state, &context(auth, request_id), ticket, commands).await?;
    ticket_now(state, ticket.as_str()).await
}

async fn create(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::CreateTicket, &auth.0.id)?;
    let key = idempotency_key(&headers)?;
    let mut fields = Fields::new(required_json_object(body).await?);
    let topic = fields.string("topic", limits::TOPIC_MAX);
    let description = fields.string("description", limits::DESCRIPTION_MAX);
    fields.finish()?;
    let command = Command::OpenTicket {
        topic,
        description,
        email: auth.0.email.clone(),
    };
    let ticket_id = state
        .executor
        .open_ticket(&context(&auth, &request_id), command, key)
        .await?;
    ticket_now(&state, &ticket_id).await
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Response, ApiError> {
    state.limits.check_user(Route::ListTickets, &auth.0.id)?;
    let page = Page::from_query(&query)?;
    let mut errors = Vec::new();
    let mut filter = TicketFilter {
        user_id: query
            .get("user_id")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        status: parse_query::<TicketStatus>(&query, "status", &mut errors),
        issue_level: parse_query::<IssueLevel>(&query, "issue_level", &mut errors),
        support_role: parse_query::<SupportRole>(&query, "support_role", &mut errors),
    };
    if !errors.is_empty() {
        return Err(ApiError::BadRequest(errors));
    }
    if !auth.0.is_staff() {
        if filter.user_id.as_deref().is_some_and(|id| id != auth.0.id) {
            return Err(ApiError::Forbidden(
                "Only staff may list other users' tickets".into(),
            ));
        }
        filter.user_id = Some(auth.0.id.clone());
    }
    let mut tickets = state
        .store
        .list_tickets(&filter, page.cursor, page.limit + 1)
        .await?;
    let mut headers = HeaderMap::new();
    if tickets.len() > page.limit {
        tickets.truncate(page.limit);
        if let Some(last) = tickets.last() {
            link_next(
                &mut headers,
                "/api/v1/tickets",
                &query,
                page.limit,
                last.position,
            );
        }
    }
    Ok((headers, Json(tickets)).into_response())
}

fn parse_query<T: std::str::FromStr<Err = ticketd_events::roles::UnknownValue>>(
    query: &Query,
    name: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let text = query.get(name).filter(|v| !v.is_empty())?;
    match text.parse() {
        Ok(value) => Some(value),
        Err(unknown) => {
            errors.push(
                FieldError::new(
                    format!("query.{name}"),
                    "invalid_value",
                    format!("{name} must be one of {}", unknown.allowed.join(", ")),
                )
                .with_context(serde_json::json!({"allowed": unknown.allowed})),
            );
            None
        }
    }
}

async fn show(
    State(state): State<AppState>,
    auth: Auth,
    ticket: TicketId,
    query: Query,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::GetTicket, &auth.0.id)?;
    if let Some(as_of) = as_of(&query)? {
        let (view, _) = history::ticket_as_of(&state, &auth, &ticket, as_of).await?;
        return Ok(Json(view));
    }
    visible_ticket(&state, &auth, &ticket).await.map(Json)
}

async fn update(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    ticket: TicketId,
    body: Body,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::UpdateTicket, &auth.0.id)?;
    let mut fields = Fields::new(required_json_object(body).await?);
    let support_role = fields.optional_enum::<SupportRole>("support_role");
    let issue_level = fields.optional_enum::<IssueLevel>("issue_level");
    fields.finish()?;
    let mut commands = Vec::new();
    commands.extend(support_role.map(|to| Command::ChangeSupportRole { to }));
    commands.extend(issue_level.map(|to| Command::ChangeIssueLevel { to }));
    if commands.is_empty() {
        return Err(ApiError::field(
            FieldError::new("body", "missing", "Give support_role, issue_level or both")
                .with_context(serde_json::json!({"fields": ["support_role", "issue_level"]})),
        ));
    }
    run_command(&state, &auth, &request_id, &ticket, &commands).await
}

async fn close(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    ticket: TicketId,
    body: Body,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::CloseTicket, &auth.0.id)?;
    let reason = match json_object(body).await? {
        None => None,
        Some(map) => {
            let mut fields = Fields::new(map);
            let reason = fields.optional_string("reason", limits::REASON_MAX);
            fields.finish()?;
            reason
        }
    };
    run_command(
        &state,
        &auth,
        &request_id,
        &ticket,
        &[Command::CloseTicket { reason }],
    )
    .await
}

async fn reopen(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    ticket: TicketId,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::ReopenTicket, &auth.0.id)?;
    run_command(
        &state,
        &auth,
        &request_id,
        &ticket,
        &[Command::ReopenTicket],
    )
    .await
}
