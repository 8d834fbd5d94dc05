//! The one way a request writes: run its commands on one ticket through the executor, then
//! answer with what they changed as it now is, so the writer always reads its own write
//! (ADR 0004). The ticket and message routes differ only in what they read back.

use crate::app::AppState;
use crate::commands::{Context, Outcome};
use crate::http::access::TicketId;
use crate::http::error::ApiError;
use crate::store::ReadModels;
use axum::response::Json;
use ticketd_events::Command;
use ticketd_projections::{Change, MessageView, TicketView, changes};

/// Runs `commands` on `ticket` in `context`; the rules' refusals map to their statuses.
pub async fn execute(
    state: &AppState,
    context: &Context,
    ticket: &TicketId,
    commands: &[Command],
) -> Result<Outcome, ApiError> {
    let actor = &context.actor;
    state
        .people
        .remember(&state.store, &actor.id, &actor.name)
        .await?;
    Ok(state
        .executor
        .execute(ticket.as_str(), context, commands)
        .await?)
}

/// The ticket as it is right after a command on it, as the caller (`staff` or not) sees it.
pub async fn ticket_now(
    state: &AppState,
    ticket_id: &str,
    staff: bool,
) -> Result<Json<TicketView>, ApiError> {
    let ticket = state.store.get_ticket(ticket_id).await?;
    ticket
        .map(|t| Json(t.seen_by(staff).with_sla(&state.config.sla)))
        .ok_or_else(|| {
            ApiError::Internal(format!(
                "ticket {ticket_id} missing from the read model after a command"
            ))
        })
}

/// The message as it is right after a command on it: straight from the committed event when
/// the command posted it (no read needed), else from the read model.
pub async fn message_now(
    state: &AppState,
    ticket: &TicketId,
    message_id: &str,
    outcome: &Outcome,
) -> Result<Json<MessageView>, ApiError> {
    let posted = outcome
        .events
        .iter()
        .flat_map(changes)
        .find_map(|change| match change {
            Change::InsertMessage(message) if message.id == message_id => Some(message),
            _ => None,
        });
    if let Some(message) = posted {
        return Ok(Json(message));
    }
    match state.store.get_message(message_id).await? {
        Some(message) if message.ticket_id == ticket.as_str() => Ok(Json(message)),
        _ => Err(ApiError::Internal(format!(
            "message {message_id} missing from the read model after a command"
        ))),
    }
}
