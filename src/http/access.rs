//! Who may see what, and how a reader asks for it. Every route that names a ticket takes its id
//! through [`TicketId`] (so an id that cannot exist is 404 in one place), reads it through
//! [`visible_ticket`] (owner and staff only), and reads the options the live and the
//! historical listings share ([`as_of`], [`newest_first`]) from here, so the resource modules
//! never need each other.

use crate::app::AppState;
use crate::commands::Context;
use crate::http::RequestId;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{Auth, Path, Query, is_id};
use crate::store::ReadModels;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::json;
use std::collections::HashMap;
use ticketd_events::Via;
use ticketd_projections::TicketView;

/// The context a command from this request runs in.
pub fn context(auth: &Auth, request_id: &RequestId) -> Context {
    Context {
        actor: auth.0.actor(Via::Web),
        correlation_id: request_id.0.clone(),
        idempotency: None,
    }
}

/// The `{ticket_id}` of the path, checked to be one of our ids: any other cannot name a
/// ticket, so it answers 404 before anything is read.
#[derive(Debug, Clone)]
pub struct TicketId(pub String);

impl TicketId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TicketId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        match params.get("ticket_id") {
            Some(id) if is_id(id) => Ok(TicketId(id.clone())),
            _ => Err(ApiError::ticket_not_found()),
        }
    }
}

/// The `{message_id}` of the path. Not checked here: an unknown message is the ticket's rules'
/// to refuse, like any other.
#[derive(Debug, Clone)]
pub struct MessageId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for MessageId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(mut params) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        params
            .remove("message_id")
            .map(MessageId)
            .ok_or_else(|| ApiError::NotFound("Message not found".into()))
    }
}

/// The ticket as the caller may see it: 404 when unknown, 403 when someone else's.
pub async fn visible_ticket(
    state: &AppState,
    auth: &Auth,
    ticket: &TicketId,
) -> Result<TicketView, ApiError> {
    let view = state
        .store
        .get_ticket(ticket.as_str())
        .await?
        .ok_or_else(ApiError::ticket_not_found)?;
    may_see(auth, &view)?;
    Ok(view.seen_by(auth.0.is_staff()).with_sla(&state.config.sla))
}

/// Staff see every ticket; anybody else only their own (403 for the others).
pub fn may_see(auth: &Auth, ticket: &TicketView) -> Result<(), ApiError> {
    if auth.0.is_staff() || ticket.user_id == auth.0.id {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "This ticket belongs to another user".into(),
        ))
    }
}

/// The `as_of` query parameter: an instant in epoch milliseconds, or `None` for "now".
pub fn as_of(query: &Query) -> Result<Option<i64>, ApiError> {
    match query.get("as_of") {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(at) if at >= 0 => Ok(Some(at)),
            _ => Err(ApiError::field(
                FieldError::new(
                    "query.as_of",
                    "invalid_query",
                    "as_of must be a time in epoch milliseconds (a whole number, 0 or more)",
                )
                .with_context(json!({"expected": "epoch milliseconds"})),
            )),
        },
    }
}

/// The `order` query parameter of a message listing: `asc` (the default, oldest first) or
/// `desc` (newest first; the cursor then pages towards older messages).
pub fn newest_first(query: &Query) -> Result<bool, ApiError> {
    match query.get("order") {
        None | Some("") | Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        Some(_) => Err(ApiError::field(
            FieldError::new("query.order", "invalid_query", "order must be asc or desc")
                .with_context(json!({"allowed": ["asc", "desc"]})),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, value: &str) -> Query {
        Query(vec![(name.into(), value.into())])
    }

    #[test]
    fn as_of_is_epoch_milliseconds() {
        assert_eq!(as_of(&Query(vec![])).ok(), Some(None));
        assert_eq!(as_of(&query("as_of", "")).ok(), Some(None));
        assert_eq!(
            as_of(&query("as_of", "1700000000000")).ok(),
            Some(Some(1_700_000_000_000))
        );
        for bad in [
            "-1",
            "soon",
            "1.5",
            "2024-01-01T00:00:00Z",
            "99999999999999999999",
        ] {
            match as_of(&query("as_of", bad)) {
                Err(ApiError::BadRequest(errors)) => {
                    assert_eq!(errors[0].location, "query.as_of");
                    assert_eq!(errors[0].kind, "invalid_query");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn order_is_asc_or_desc() {
        assert_eq!(newest_first(&Query(vec![])).ok(), Some(false));
        assert_eq!(newest_first(&query("order", "asc")).ok(), Some(false));
        assert_eq!(newest_first(&query("order", "desc")).ok(), Some(true));
        assert!(newest_first(&query("order", "DESC")).is_err());
    }
}
