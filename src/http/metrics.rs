//! `GET /metrics`, the Prometheus scrape, and the middleware that times every request for it
//! (ADR 0027). With `METRICS_TOKEN` set the scrape needs `Authorization: Bearer <token>`,
//! compared in constant time; a wrong or missing token is a 401 that counts against the
//! address's anonymous quota, so guessing is as slow as guessing a JWT. A right token is never
//! rate limited: a scraper polls every few seconds forever. Unset, the route is open, and the
//! operator keeps the port private.

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::metrics::{CONTENT_TYPE, HttpLabels, Positions, RouteLabel, method_label};
use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;
use ticketd_events::EventStore;

/// `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

/// Times the request and counts it under its route template. Layered per route, where axum
/// has put the [`MatchedPath`]; Socket.IO's transport and unknown paths get fixed names.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => RouteLabel::Matched(path.clone()),
        None if request.uri().path().starts_with("/socket.io/") => RouteLabel::Fixed("/socket.io/"),
        None => RouteLabel::Fixed("unmatched"),
    };
    let method = method_label(request.method());
    let response = next.run(request).await;
    let labels = HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state.metrics.request(&labels, started.elapsed());
    response
}

async fn scrape(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.metrics_token
        && !presents(request.headers(), token.expose())
    {
        let addr = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        state.limits.check_anonymous(addr)?;
        return Err(ApiError::Unauthorized(
            "/metrics needs the METRICS_TOKEN as a bearer token".into(),
        ));
    }
    let positions = positions(&state).await?;
    let body = state
        .metrics
        .scrape(&positions)
        .map_err(|e| ApiError::Internal(format!("cannot render the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

/// Whether the request carries `expected` as its bearer token. Both sides are hashed first, so
/// the comparison takes the same time whatever the lengths and wherever they differ.
fn presents(headers: &HeaderMap, expected: &[u8]) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The head and the position of every projector this server runs: the Socket.IO broadcaster
/// always, the Discord bridge and the partner webhooks when configured. The auto-close timer
/// is a sweep over due tickets, not a follower of the stream, so it has no position.
async fn positions(state: &AppState) -> Result<Positions, ApiError> {
    use crate::store::Checkpoints;
    let head = state.store.head().await?;
    let mut projectors = Vec::with_capacity(3);
    if let Some(at) = state.broadcast_cursor.peek() {
        projectors.push(("socketio", at));
    }
    if state.config.discord.is_some() {
        let at = state
            .store
            .load_checkpoint(crate::discord::CHECKPOINT)
            .await?;
        projectors.push(("discord", at));
    }
    if state.config.webhook.is_some()
        && let Some(at) = crate::webhooks::state::checkpoint(&state.store).await?
    {
        projectors.push(("webhooks", at));
    }
    Ok(Positions { head, projectors })
}
