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
        .route("/api/v1/tickets/{ticket_id}/claim", post(claim))
        .route("/api/v1/tickets/{ticket_id}/unclaim", post(unclaim))
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
    ticket_now(state, ticket.as_str(), auth.0.is_staff()).await
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
    state
        .people
        .remember(&state.store, &auth.0.id, &auth.0.username)
        .await?;
    let ticket_id = state
        .executor
        .open_ticket(
            &context(&auth, &request_id),
            command,
            key,
            state.config.tickets.max_open_per_user,
        )
        .await?;
    ticket_now(&state, &ticket_id, auth.0.is_staff()).await
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Response, ApiError> {
    state.limits.check_user(Route::ListTickets, &auth.0.id)?;
    let page = Page::from_query(&query)?;
    let filter = listing_filter(&query, &auth)?;
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
    let staff = auth.0.is_staff();
    let tickets: Vec<_> = tickets
        .into_iter()
        .map(|t| t.seen_by(staff).with_sla(&state.config.sla))
        .collect();
    Ok((headers, Json(tickets)).into_response())
}

/// The listing's filters from the query (`user_id`, `status`, `issue_level`, `support_role`,
/// `assignee_id`, `tag`), with the caller's limits: `tag` is for staff, and a customer's filter
/// is always their own tickets. The search route filters the same way.
pub(crate) fn listing_filter(query: &Query, auth: &Auth) -> Result<TicketFilter, ApiError> {
    let mut errors = Vec::new();
    let mut filter = TicketFilter {
        user_id: query
            .get("user_id")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        status: parse_query::<TicketStatus>(query, "status", &mut errors),
        issue_level: parse_query::<IssueLevel>(query, "issue_level", &mut errors),
        support_role: parse_query::<SupportRole>(query, "support_role", &mut errors),
        assignee: assignee_filter(query, auth, &mut errors),
        tags: tag_filter(query, &mut errors),
        sla: crate::http::feedback::sla_filter(query, &mut errors),
    };
    if !errors.is_empty() {
        return Err(ApiError::BadRequest(errors));
    }
    if filter.sla.is_some() && !auth.0.is_staff() {
        return Err(ApiError::Forbidden(
            "Only staff may filter tickets by service level".into(),
        ));
    }
    if !filter.tags.is_empty() && !auth.0.is_staff() {
        return Err(ApiError::Forbidden(
            "Only staff may filter tickets by tag".into(),
        ));
    }
    if !auth.0.is_staff() {
        if filter.user_id.as_deref().is_some_and(|id| id != auth.0.id) {
            return Err(ApiError::Forbidden(
                "Only staff may list other users' tickets".into(),
            ));
        }
        filter.user_id = Some(auth.0.id.clone());
    }
    Ok(filter)
}

/// `assignee_id=<id>`, `me` (the caller) or `none` (held by nobody); empty means no filter.
fn assignee_filter(
    query: &Query,
    auth: &Auth,
    errors: &mut Vec<FieldError>,
) -> Option<Option<String>> {
    match query.get("assignee_id")? {
        "" => None,
        "me" => Some(Some(auth.0.id.clone())),
        "none" => Some(None),
        id if id.chars().count() <= limits::ASSIGNEE_ID_MAX => Some(Some(id.to_string())),
        _ => {
            errors.push(
                FieldError::new(
                    "query.assignee_id",
                    "invalid_query",
                    format!(
                        "assignee_id is a user id of at most {} characters, me or none",
                        limits::ASSIGNEE_ID_MAX
                    ),
                )
                .with_context(serde_json::json!({"max_length": limits::ASSIGNEE_ID_MAX})),
            );
            None
        }
    }
}

/// Every `tag=` of the query (all must match), lower-cased; empty ones are ignored.
fn tag_filter(query: &Query, errors: &mut Vec<FieldError>) -> Vec<String> {
    let given: Vec<&str> = query
        .0
        .iter()
        .filter(|(k, v)| k == "tag" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    if given.iter().any(|t| !limits::is_tag(t)) {
        errors.push(
            FieldError::new(
                "query.tag",
                "invalid_query",
                format!(
                    "a tag is 1 to {} ASCII letters, digits, - or _",
                    limits::TAG_MAX
                ),
            )
            .with_context(serde_json::json!({"max_length": limits::TAG_MAX})),
        );
        return Vec::new();
    }
    let mut tags: Vec<String> = given.iter().map(|t| t.to_ascii_lowercase()).collect();
    tags.sort();
    tags.dedup();
    tags
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

/// `POST /tickets/{id}/claim`: the caller (staff) holds the ticket.
async fn claim(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    ticket: TicketId,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::Claim, &auth.0.id)?;
    let command = Command::Claim {
        assignee_id: auth.0.id.clone(),
        assignee_name: auth.0.username.clone(),
    };
    run_command(&state, &auth, &request_id, &ticket, &[command]).await
}

/// `POST /tickets/{id}/unclaim`: its holder (or an ADMIN) lets go of the ticket.
async fn unclaim(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    ticket: TicketId,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::Claim, &auth.0.id)?;
    run_command(&state, &auth, &request_id, &ticket, &[Command::Unclaim]).await
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
    let assignee = fields.nullable_string("assignee_id", limits::ASSIGNEE_ID_MAX);
    let tags = fields.optional_tags("tags");
    fields.finish()?;
    // Tags first: a staff-only change is announced within the change after it (fanout).
    let mut commands: Vec<Command> = tags
        .map(|tags| Command::SetTags { tags })
        .into_iter()
        .collect();
    commands.extend(support_role.map(|to| Command::ChangeSupportRole { to }));
    commands.extend(issue_level.map(|to| Command::ChangeIssueLevel { to }));
    if let Some(assignee_id) = assignee {
        let assignee_name = match &assignee_id {
            Some(id) if *id == auth.0.id => Some(auth.0.username.clone()),
            Some(id) => Some(state.people.name_of(&state.store, id).await?),
            None => None,
        };
        commands.push(Command::Assign {
            assignee_id,
            assignee_name,
        });
    }
    if commands.is_empty() {
        let fields = ["support_role", "issue_level", "assignee_id", "tags"];
        return Err(ApiError::field(
            FieldError::new(
                "body",
                "missing",
                "Give at least one of support_role, issue_level, assignee_id and tags",
            )
            .with_context(serde_json::json!({ "fields": fields })),
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
