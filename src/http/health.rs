//! Liveness and readiness for load balancers and orchestrators; no authentication.

use crate::app::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;
use std::sync::atomic::Ordering;
use ticketd_events::EventStore;

/// `/healthz` and `/readyz`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the store answers. Also says how many sockets have a deadline pending (token
/// expiry or anonymous timeout), which follows the connected sockets.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.head().await {
        Ok(head) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "position": head,
                "socket_deadlines": state.socket_deadlines.load(Ordering::Relaxed),
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "SERVICE_UNAVAILABLE", "message": e.to_string()})),
        ),
    }
}
