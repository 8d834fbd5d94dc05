//! The REST API: one router per resource, merged here, wrapped in the request middleware that
//! gives every request an id, logs it, and turns every 500 (panics included) into the API's
//! envelope carrying that id.

mod access;
mod blocks;
mod body_timeout;
pub mod console;
pub mod error;
pub mod extract;
mod feed;
mod feedback;
mod health;
mod history;
mod host;
mod messages;
mod metrics;
pub mod openapi;
pub mod pagination;
mod replies;
mod reports;
pub mod search;
mod tickets;
mod write;

use crate::app::AppState;
use crate::config::ServerMode;
use crate::http::error::{ApiError, InternalCause};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{debug, error, info, warn};

/// The id of one request, in every log line about it and in the `x-request-id` header.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface; Socket.IO (`/socket.io/`) is served by `socket` in front of the routes.
pub fn router(state: AppState, socket: socketioxide::layer::SocketIoLayer) -> Router {
    let routes = Router::new()
        .merge(health::router())
        .merge(tickets::router())
        .merge(messages::router())
        .merge(history::router())
        .merge(replies::router())
        .merge(blocks::router())
        .merge(search::router())
        .merge(feed::router())
        .merge(reports::router())
        .merge(feedback::router())
        .merge(console::router())
        .merge(metrics::router())
        .merge(openapi::router());
    wrap(routes, state, socket)
}

/// The layers every route shares: 404/405 envelopes, panics as 500s, Socket.IO, CORS and the
/// request middleware.
fn wrap(
    routes: Router<AppState>,
    state: AppState,
    socket: socketioxide::layer::SocketIoLayer,
) -> Router {
    let mut router = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(socket)
        // Per route, outside the panic catcher and Socket.IO: every answer is counted.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(middleware::from_fn(crate::socket::compact_request))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            body_timeout::body_timeout,
        ));
    if let Some(cors) = cors(&state.config.cors_origins) {
        router = router.layer(cors);
    }
    // Before anything reads the request, Socket.IO included.
    router = router.layer(middleware::from_fn(host::require_host));
    // Outermost, so that every answer (CORS preflights and Socket.IO included) carries an id.
    router = router.layer(middleware::from_fn_with_state(
        state.clone(),
        request_context,
    ));
    router.with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("No such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let cause = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    ApiError::Internal(format!("panic: {cause}")).into_response()
}

/// Gives the request its id, logs it (path only: the query could hold a token), and completes
/// 500 bodies with the id — their cause shown only in DEVELOPMENT.
async fn request_context(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = uuid::Uuid::now_v7().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        let cause = response
            .extensions_mut()
            .remove::<InternalCause>()
            .map(|c| c.0)
            .unwrap_or_else(|| "unknown".into());
        error!(request_id = %id, %method, %path, %cause, "request failed");
        state.alerts.server.report(
            format!("request {id}"),
            format_args!("{method} {path}: {cause}"),
        );
        let message = match state.config.mode {
            ServerMode::Development => cause,
            ServerMode::Production => "Internal server error".to_string(),
        };
        let body = json!({"error": "INTERNAL_SERVER_ERROR", "message": message, "request_id": id});
        response = (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
    } else if status.is_server_error() {
        warn!(request_id = %id, %method, %path, status = status.as_u16(), "request not served");
    } else if path.starts_with("/socket.io/") {
        debug!(request_id = %id, %method, %path, status = status.as_u16(), "socket.io transport");
    } else {
        info!(request_id = %id, %method, %path, status = status.as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([REQUEST_ID, header::LINK, header::RETRY_AFTER]),
    )
}

#[cfg(test)]
mod tests;
