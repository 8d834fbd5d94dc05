//! The saved replies (issue 15, part 3): texts the support team reuses, kept by admins under a
//! name and read by every staff member. Each change is an event on the `replies` stream, so
//! their history is audited like a ticket's (ADR 0021).

use crate::app::AppState;
use crate::http::RequestId;
use crate::http::access::context;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{Auth, Fields, Path, required_json_object};
use crate::rate_limit::Route;
use crate::store::HelpdeskModels;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::{get, put};
use axum::{Extension, Router};
use serde_json::json;
use std::collections::HashMap;
use ticketd_events::{ReplyCommand, SavedReplies, limits, streams};
use ticketd_projections::ReplyView;

/// `/api/v1/replies` and `/api/v1/replies/{name}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/replies", get(list))
        .route("/api/v1/replies/{name}", put(save).delete(remove))
}

/// Staff only: customers never see the team's canned texts.
fn staff_only(auth: &Auth) -> Result<(), ApiError> {
    if auth.0.is_staff() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Only staff may use saved replies".into(),
        ))
    }
}

/// The `{name}` of the path in its stored form (lower-case), or the 400 of a name that breaks
/// the tag rules.
fn reply_name(params: HashMap<String, String>) -> Result<String, ApiError> {
    match params.get("name") {
        Some(name) if limits::is_tag(name) => Ok(name.to_ascii_lowercase()),
        _ => Err(ApiError::field(
            FieldError::new(
                "path.name",
                "invalid_value",
                format!(
                    "A reply's name is 1 to {} ASCII letters, digits, - or _",
                    limits::TAG_MAX
                ),
            )
            .with_context(json!({"max": limits::TAG_MAX})),
        )),
    }
}

/// `GET /replies`: every saved reply, by name.
async fn list(State(state): State<AppState>, auth: Auth) -> Result<Json<Vec<ReplyView>>, ApiError> {
    state.limits.check_user(Route::Helpdesk, &auth.0.id)?;
    staff_only(&auth)?;
    Ok(Json(state.store.list_replies().await?))
}

/// `PUT /replies/{name}` `{content}`: creates or replaces a reply (ADMIN).
async fn save(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path(params): Path<HashMap<String, String>>,
    body: Body,
) -> Result<Json<ReplyView>, ApiError> {
    state.limits.check_user(Route::Helpdesk, &auth.0.id)?;
    staff_only(&auth)?;
    let name = reply_name(params);
    let mut fields = Fields::new(required_json_object(body).await?);
    let content = fields.string("content", limits::REPLY_MAX);
    // Every bad field at once: the name's error joins the body's.
    let (name, fields) = match name {
        Ok(name) => (name, fields.finish()),
        Err(ApiError::BadRequest(mut errors)) => {
            if let Err(ApiError::BadRequest(more)) = fields.finish() {
                errors.extend(more);
            }
            return Err(ApiError::BadRequest(errors));
        }
        Err(other) => return Err(other),
    };
    fields?;
    let command = ReplyCommand::Save {
        name: name.clone(),
        content,
    };
    state
        .executor
        .execute_on::<SavedReplies>(streams::REPLIES, &context(&auth, &request_id), &command)
        .await?;
    let saved = state.store.list_replies().await?;
    saved
        .into_iter()
        .find(|r| r.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::Internal(format!("reply {name} missing after saving it")))
}

/// `DELETE /replies/{name}`: removes a reply (ADMIN); 404 for an unknown name.
async fn remove(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    state.limits.check_user(Route::Helpdesk, &auth.0.id)?;
    staff_only(&auth)?;
    let name = reply_name(params)?;
    state
        .executor
        .execute_on::<SavedReplies>(
            streams::REPLIES,
            &context(&auth, &request_id),
            &ReplyCommand::Delete { name },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
