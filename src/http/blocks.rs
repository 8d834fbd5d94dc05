//! Blocks (issue 15, part 4): an admin stops a user from opening tickets and writing. A block
//! is an event on the user's own stream (`user:<id>`); the executor reads it before a
//! customer's open, post or edit (ADR 0021). Staff may list the blocks.

use crate::app::AppState;
use crate::http::RequestId;
use crate::http::access::context;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{Auth, Fields, Path, json_object};
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
use ticketd_events::{AccountCommand, UserAccount, limits, streams};
use ticketd_projections::BlockView;

/// `/api/v1/blocks` and `/api/v1/blocks/{user_id}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/blocks", get(list))
        .route("/api/v1/blocks/{user_id}", put(block).delete(unblock))
}

fn staff_only(auth: &Auth) -> Result<(), ApiError> {
    if auth.0.is_staff() {
        Ok(())
    } else {
        Err(ApiError::Forbidden("Only staff may see blocks".into()))
    }
}

/// The `{user_id}` of the path: any id a token may carry (1–256 characters, not blank).
fn user_id(params: &HashMap<String, String>) -> Result<String, ApiError> {
    match params.get("user_id") {
        Some(id) if !id.trim().is_empty() && id.chars().count() <= limits::USER_ID_MAX => {
            Ok(id.clone())
        }
        _ => Err(ApiError::field(
            FieldError::new(
                "path.user_id",
                "invalid_value",
                format!(
                    "A user id is 1 to {} characters, not only white space",
                    limits::USER_ID_MAX
                ),
            )
            .with_context(json!({"max": limits::USER_ID_MAX})),
        )),
    }
}

/// `GET /blocks`: every block, by user id (staff).
async fn list(State(state): State<AppState>, auth: Auth) -> Result<Json<Vec<BlockView>>, ApiError> {
    state.limits.check_user(Route::Helpdesk, &auth.0.id)?;
    staff_only(&auth)?;
    Ok(Json(state.store.list_blocks().await?))
}

/// `PUT /blocks/{user_id}` with an optional `{reason}`: blocks the user (ADMIN).
async fn block(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path(params): Path<HashMap<String, String>>,
    body: Body,
) -> Result<Json<BlockView>, ApiError> {
    state.limits.check_user(Route::Helpdesk, &auth.0.id)?;
    staff_only(&auth)?;
    let mut errors = Vec::new();
    let user_id = match user_id(&params) {
        Ok(id) => Some(id),
        Err(ApiError::BadRequest(e)) => {
            errors.extend(e);
            None
        }
        Err(other) => return Err(other),
    };
    let reason = match json_object(body).await? {
        None => None,
        Some(map) => {
            let mut fields = Fields::new(map);
            let reason = fields.optional_string("reason", limits::BLOCK_REASON_MAX);
            match fields.finish() {
                Ok(()) => {}
                Err(ApiError::BadRequest(e)) => errors.extend(e),
                Err(other) => return Err(other),
            }
            reason
        }
    };
    let Some(user_id) = user_id.filter(|_| errors.is_empty()) else {
        return Err(ApiError::BadRequest(errors));
    };
    let command = AccountCommand::Block {
        user_id: user_id.clone(),
        reason,
    };
    state
        .executor
        .execute_on::<UserAccount>(
            &streams::user(&user_id),
            &context(&auth, &request_id),
            &command,
        )
        .await?;
    let blocks = state.store.list_blocks().await?;
    blocks
        .into_iter()
        .find(|b| b.user_id == user_id)
        .map(Json)
        .ok_or_else(|| ApiError::Internal(format!("block of {user_id} missing after blocking")))
}

/// `DELETE /blocks/{user_id}`: lifts the block (ADMIN); 404 when the user is not blocked.
async fn unblock(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    state.limits.check_user(Route::Helpdesk, &auth.0.id)?;
    staff_only(&auth)?;
    let user_id = user_id(&params)?;
    state
        .executor
        .execute_on::<UserAccount>(
            &streams::user(&user_id),
            &context(&auth, &request_id),
            &AccountCommand::Unblock {
                user_id: user_id.clone(),
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
