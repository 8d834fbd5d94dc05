//! The ticket routes: open, list, read, re-route (staff), close and reopen.

use crate::app::AppState;
use crate::commands::{CommandError, Context, IdempotencySeed, TICKET_KEYS};
use crate::http::RequestId;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::Path;
use crate::http::extract::{
    Auth, Fields, Query, idempotency_key, is_id, json_object, required_json_object,
};
use crate::http::history;
use crate::http::pagination::{Page, link_next};
use crate::rate_limit::Route;
use crate::store::{Links, ReadModels, TicketFilter};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use ticketd_events::{Command, IssueLevel, SupportRole, TicketError, TicketStatus, Via, limits};
use ticketd_projections::TicketView;

/// Routes under `/api/v1/tickets` that act on tickets themselves.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tickets", post(create).get(list))
        .route("/api/v1/tickets/{ticket_id}", get(show).patch(update))
        .route("/api/v1/tickets/{ticket_id}/close", post(close))
        .route("/api/v1/tickets/{ticket_id}/reopen", post(reopen))
}

/// The context a command from this request runs in.
pub(crate) fn context(auth: &Auth, request_id: &RequestId) -> Context {
    Context {
        actor: auth.0.actor(Via::Web),
        correlation_id: request_id.0.clone(),
        idempotency: None,
    }
}

/// The ticket as the caller may see it: 404 when unknown, 403 when someone else's.
pub(crate) async fn visible_ticket(
    state: &AppState,
    auth: &Auth,
    ticket_id: &str,
) -> Result<TicketView, ApiError> {
    if !is_id(ticket_id) {
        return Err(ApiError::NotFound("Ticket not found".into()));
    }
    let ticket = state
        .store
        .get_ticket(ticket_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("Ticket not found".into()))?;
    if !auth.0.is_staff() && ticket.user_id != auth.0.id {
        return Err(ApiError::Forbidden(
            "This ticket belongs to another user".into(),
        ));
    }
    Ok(ticket)
}

/// Runs a ticket command and answers with the ticket as it now is (read-your-writes).
async fn run_command(
    state: &AppState,
    auth: &Auth,
    request_id: &RequestId,
    ticket_id: &str,
    commands: &[Command],
) -> Result<Json<TicketView>, ApiError> {
    if !is_id(ticket_id) {
        return Err(ApiError::NotFound("Ticket not found".into()));
    }
    state
        .executor
        .execute(ticket_id, &context(auth, request_id), commands)
        .await?;
    current_ticket(state, ticket_id).await
}

/// The ticket as it is right after a command on it.
async fn current_ticket(state: &AppState, ticket_id: &str) -> Result<Json<TicketView>, ApiError> {
    let ticket = state.store.get_ticket(ticket_id).await?;
    ticket.map(Json).ok_or_else(|| {
        ApiError::Internal(format!(
            "ticket {ticket_id} missing from the read model after a command"
        ))
    })
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
    let fresh_id = uuid::Uuid::now_v7().to_string();
    let command = Command::OpenTicket {
        topic,
        description,
        email: auth.0.email.clone(),
    };
    let Some(key) = key else {
        return run_command(&state, &auth, &request_id, &fresh_id, &[command]).await;
    };
    // The key is claimed before the ticket is opened, so a retry (or a racing twin) finds the
    // same ticket id, and the ticket keeps a time-ordered v7 id.
    let ticket_id = state
        .store
        .claim_link(
            TICKET_KEYS,
            &IdempotencySeed::ticket_key(&auth.0.id, key),
            &fresh_id,
        )
        .await?;
    // A retry opens the claimed ticket again: "already exists" means an earlier try (or a racing
    // twin) opened it. A first try that stopped between claim and open is finished here, with the
    // event ids it used, so the store recognises an append it did finish.
    let mut context = context(&auth, &request_id);
    context.idempotency = Some(IdempotencySeed::new(&auth.0.id, &ticket_id, key));
    match state
        .executor
        .execute(&ticket_id, &context, &[command])
        .await
    {
        Ok(_) | Err(CommandError::Rejected(TicketError::TicketAlreadyExists)) => {}
        Err(e) => return Err(e.into()),
    }
    current_ticket(&state, &ticket_id).await
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
    Path(ticket_id): Path<String>,
    query: Query,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::GetTicket, &auth.0.id)?;
    if let Some(as_of) = history::as_of(&query)? {
        let (ticket, _) = history::ticket_as_of(&state, &auth, &ticket_id, as_of).await?;
        return Ok(Json(ticket));
    }
    visible_ticket(&state, &auth, &ticket_id).await.map(Json)
}

async fn update(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path(ticket_id): Path<String>,
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
    run_command(&state, &auth, &request_id, &ticket_id, &commands).await
}

async fn close(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path(ticket_id): Path<String>,
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
        &ticket_id,
        &[Command::CloseTicket { reason }],
    )
    .await
}

async fn reopen(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path(ticket_id): Path<String>,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::ReopenTicket, &auth.0.id)?;
    run_command(
        &state,
        &auth,
        &request_id,
        &ticket_id,
        &[Command::ReopenTicket],
    )
    .await
}
