//! The one mapping from our errors to HTTP: the API's JSON envelope `{error, message}` for
//! every failure, field errors on 400, `Retry-After` on 429. A 500 keeps its cause out of the
//! body here; the request middleware logs it with the request id and decides what to show.

use crate::commands::CommandError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use ticketd_events::{StoreError, TicketError};

/// One invalid field, as the seed's 400 body lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field (`topic`, `attachments[2]`), `query.<name>`, or `body` for the whole body.
    pub location: String,
    /// What is wrong, for a person.
    pub message: String,
    /// What is wrong, for a program: `missing`, `type`, `empty`, `too_long`, `unknown_field`,
    /// `invalid_value`, `invalid_url`, `too_many`, `json_invalid`, `too_large`, `malformed`,
    /// `invalid_query`, `invalid_header`, `invalid_path`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The limit or the allowed values, when there is one.
    pub context: Option<serde_json::Value>,
}

impl FieldError {
    /// A field error without context.
    pub fn new(
        location: impl Into<String>,
        kind: &'static str,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            location: location.into(),
            message: message.into(),
            kind,
            context: None,
        }
    }

    /// Adds the limit or the allowed values.
    pub fn with_context(mut self, context: serde_json::Value) -> Self {
        self.context = Some(context);
        self
    }
}

/// Every way a request can fail.
#[derive(Debug)]
pub enum ApiError {
    /// Returns 400 with the field errors.
    BadRequest(Vec<FieldError>),
    /// Returns 401.
    Unauthorized(String),
    /// Returns 403.
    Forbidden(String),
    /// Returns 404.
    NotFound(String),
    /// Returns 405.
    MethodNotAllowed,
    /// Returns 409: the ticket's state does not allow the command.
    Conflict(String),
    /// Returns 408: the request's body did not arrive in time.
    RequestTimeout(String),
    /// Returns 429 with `Retry-After`.
    RateLimited {
        /// The route's quota.
        per_minute: u32,
        /// Seconds until the next request would pass.
        retry_after_secs: u64,
    },
    /// Returns 503: the store cannot take the request now; retrying later is safe.
    Unavailable(String),
    /// Returns 500; the cause is logged, not shown in PRODUCTION.
    Internal(String),
}

/// Marks a 500 response with its cause, for the request middleware to log.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

impl ApiError {
    /// A 400 for a single field.
    pub fn field(error: FieldError) -> Self {
        ApiError::BadRequest(vec![error])
    }

    /// The 404 of a ticket that does not exist (or whose id cannot be one of ours).
    pub fn ticket_not_found() -> Self {
        ApiError::NotFound("Ticket not found".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::BadRequest(errors) => {
                let body = json!({
                    "error": "BAD_REQUEST",
                    "message": "Invalid form of body",
                    "errors": errors,
                });
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "FORBIDDEN", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "NOT_FOUND", m),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Method not allowed on this route".to_string(),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "CONFLICT", m),
            ApiError::RequestTimeout(m) => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", m),
            ApiError::RateLimited {
                per_minute,
                retry_after_secs,
            } => {
                let body = json!({
                    "error": "RATELIMIT",
                    "message": format!("You are being ratelimited only {per_minute} request are allowed per minute"),
                });
                let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                return response;
            }
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", m),
            ApiError::Internal(cause) => {
                let body =
                    json!({"error": "INTERNAL_SERVER_ERROR", "message": "Internal server error"});
                let mut response = (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
                response.extensions_mut().insert(InternalCause(cause));
                return response;
            }
        };
        (status, Json(json!({"error": code, "message": message}))).into_response()
    }
}

impl From<crate::rate_limit::Limited> for ApiError {
    fn from(limited: crate::rate_limit::Limited) -> Self {
        ApiError::RateLimited {
            per_minute: limited.per_minute,
            retry_after_secs: limited.retry_after_secs,
        }
    }
}

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::TicketNotFound => ApiError::ticket_not_found(),
            TicketError::MessageNotFound => ApiError::NotFound("Message not found".into()),
            TicketError::Forbidden(why) => ApiError::Forbidden(capitalize(why)),
            TicketError::TicketAlreadyExists => ApiError::Conflict("Ticket already exists".into()),
            TicketError::TicketClosed => ApiError::Conflict("Ticket is closed".into()),
            TicketError::TicketNotClosed => ApiError::Conflict("Ticket is not closed".into()),
            TicketError::TooManyTags => ApiError::Conflict(format!(
                "A ticket has at most {} tags",
                ticketd_events::limits::TAGS_MAX
            )),
            TicketError::CountdownMoved => {
                ApiError::Conflict("The ticket no longer waits on its customer".into())
            }
            TicketError::HeldByAnother { by } => ApiError::Conflict(format!(
                "Ticket is held by {by}; only an admin may take it over"
            )),
            TicketError::ReplyNotFound => ApiError::NotFound("Saved reply not found".into()),
            TicketError::NotBlocked => ApiError::NotFound("This user is not blocked".into()),
            TicketError::FeedbackAlreadyGiven => {
                ApiError::Conflict("This ticket has been rated already".into())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WrongExpectedVersion { .. } => {
                ApiError::Unavailable("The ticket is busy; retry the request".into())
            }
            StoreError::Unavailable(cause) => {
                tracing::error!(%cause, "store unavailable");
                ApiError::Unavailable("The store is unavailable; retry the request later".into())
            }
            StoreError::ShuttingDown => ApiError::Unavailable("The server is shutting down".into()),
            StoreError::OpenTicketLimit { open, limit } => ApiError::Conflict(format!(
                "You have {open} open tickets, the most one user may have open is {limit}; \
                 close one to open another"
            )),
            corrupt @ StoreError::Corrupt { .. } => ApiError::Internal(corrupt.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Rejected(e) => e.into(),
            CommandError::Store(e) => e.into(),
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
