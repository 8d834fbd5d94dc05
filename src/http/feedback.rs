//! Issue 17 at the REST door: the owner's rating of a closed ticket
//! (`POST /api/v1/tickets/{id}/feedback`) and the staff listing's `sla` filter (ADR 0025).

use crate::app::AppState;
use crate::http::RequestId;
use crate::http::access::{TicketId, context};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{Auth, Fields, Query, required_json_object};
use crate::http::write::{execute, ticket_now};
use crate::rate_limit::Route;
use crate::store::SlaFilter;
use axum::body::Body;
use axum::extract::State;
use axum::response::Json;
use axum::routing::post;
use axum::{Extension, Router};
use ticketd_events::{Command, limits};
use ticketd_projections::TicketView;

/// The feedback route.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/tickets/{ticket_id}/feedback", post(give))
}

/// `POST /tickets/{id}/feedback` `{rating, comment?}`: the owner rates their closed ticket,
/// once ever; answers the ticket with its `feedback`.
async fn give(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    auth: Auth,
    ticket: TicketId,
    body: Body,
) -> Result<Json<TicketView>, ApiError> {
    state.limits.check_user(Route::Feedback, &auth.0.id)?;
    let mut fields = Fields::new(required_json_object(body).await?);
    let range = i64::from(*limits::RATING.start())..=i64::from(*limits::RATING.end());
    let rating = fields.integer_in("rating", range);
    let comment = fields.optional_string("comment", limits::FEEDBACK_COMMENT_MAX);
    fields.finish()?;
    let rating = rating
        .and_then(|r| u8::try_from(r).ok())
        .ok_or_else(|| ApiError::Internal("a checked rating did not fit".into()))?;
    let command = Command::GiveFeedback { rating, comment };
    execute(&state, &context(&auth, &request_id), &ticket, &[command]).await?;
    ticket_now(&state, ticket.as_str(), auth.0.is_staff()).await
}

/// `sla=breached` or `sla=due_within:<minutes>` (decimals allowed, counted from now); empty
/// means no filter.
pub fn sla_filter(query: &Query, errors: &mut Vec<FieldError>) -> Option<SlaFilter> {
    let text = query.get("sla").filter(|v| !v.is_empty())?;
    if text == "breached" {
        return Some(SlaFilter::Breached);
    }
    let minutes = text
        .strip_prefix("due_within:")
        .and_then(|m| m.parse::<f64>().ok())
        .filter(|m| m.is_finite() && (0.0..=1e9).contains(m));
    match minutes {
        Some(minutes) => {
            let now = crate::autoclose::Clock::now_ms(&crate::autoclose::SystemClock);
            Some(SlaFilter::DueBy(
                now.saturating_add((minutes * 60_000.0).round() as i64),
            ))
        }
        None => {
            errors.push(
                FieldError::new(
                    "query.sla",
                    "invalid_query",
                    "sla is breached or due_within:<minutes>",
                )
                .with_context(serde_json::json!({
                    "allowed": ["breached", "due_within:<minutes>"]
                })),
            );
            None
        }
    }
}
