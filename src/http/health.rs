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
/// expiry or anonymous timeout), which follows the connected sockets, and, with partner
/// webhooks on, how many events they are behind: from the moment `webhook_lag` shows, the
/// checkpoint exists and every later event will be delivered.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let lag = match &state.config.webhook {
        None => Ok(None),
        Some(_) => crate::webhooks::state::checkpoint(&state.store).await,
    };
    match (state.store.head().await, lag) {
        (Ok(head), Ok(checkpoint)) => {
            let mut body = json!({
                "status": "ready",
                "position": head,
                "socket_deadlines": state.socket_deadlines.load(Ordering::Relaxed),
            });
            if let Some(checkpoint) = checkpoint {
                body["webhook_lag"] = json!(head.saturating_sub(checkpoint));
            }
            (StatusCode::OK, Json(body))
        }
        (Err(e), _) | (_, Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "SERVICE_UNAVAILABLE", "message": e.to_string()})),
        ),
    }
}
