//! Who a socket is. The token may come with the handshake or later in an `authorize` event; the
//! same JWT rules as REST apply. Attempts are rate limited per client address, an anonymous
//! socket is disconnected after the configured timeout, and a token's `exp` ends the
//! authorization it granted.

use crate::app::AppState;
use crate::auth::Principal;
use crate::socket::{STAFF_ROOM, user_room};
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::debug;

/// The current authorization of a socket; the generation tells stale timers apart.
#[derive(Debug, Clone)]
struct Authorization {
    generation: u64,
    principal: Option<Principal>,
}

/// Handles a new connection: reads a handshake token, registers `authorize`, arms the timeout.
pub async fn on_connect(socket: SocketRef, TryData(auth): TryData<Value>, State(state): State<AppState>) {
    socket.extensions.insert(Authorization { generation: 0, principal: None });
    socket.on("authorize", on_authorize);
    let token = auth
        .ok()
        .and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_string))
        .or_else(|| query_token(&socket));
    match token {
        Some(token) => {
            if let Err(message) = authorize(&socket, &state, &token) {
                let _ = socket.emit("error", &json!({ "message": message }));
                arm_timeout(&socket, &state, 0);
            }
        }
        None => arm_timeout(&socket, &state, 0),
    }
}

async fn on_authorize(socket: SocketRef, TryData(data): TryData<Value>, ack: AckSender, State(state): State<AppState>) {
    let token = data.ok().and_then(|d| d.get("token").and_then(Value::as_str).map(str::to_string));
    let outcome = match token {
        Some(token) => authorize(&socket, &state, &token),
        None => Err("authorize needs {\"token\": \"<jwt>\"}".to_string()),
    };
    match outcome {
        Ok(principal) => {
            let _ = ack.send(&json!({
                "ok": true,
                "user": {"id": principal.id, "username": principal.username, "role": principal.role},
            }));
        }
        Err(message) => {
            let _ = ack.send(&json!({ "ok": false, "error": message }));
            let _ = socket.emit("error", &json!({ "message": message }));
        }
    }
}

/// Verifies `token` and, when good, puts the socket in its user's room (and the staff room).
fn authorize(socket: &SocketRef, state: &AppState, token: &str) -> Result<Principal, String> {
    let addr = socket
        .req_parts()
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if state.limits.check_socket_authorize(addr).is_err() {
        return Err("Too many authorization attempts; try again later".into());
    }
    let principal = state.verifier.verify(token).map_err(|e| format!("Unauthorized: {e}"))?;
    let generation = current(socket).generation + 1;
    socket.leave_all();
    socket.join(user_room(&principal.id));
    if principal.is_staff() {
        socket.join(STAFF_ROOM);
    }
    socket.extensions.insert(Authorization { generation, principal: Some(principal.clone()) });
    debug!(sid = %socket.id, user = %principal.id, "socket authorized");
    if let Some(exp) = principal.expires_at {
        let socket = socket.clone();
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(until(exp)).await;
            if current(&socket).generation == generation && socket.connected() {
                socket.leave_all();
                socket.extensions.insert(Authorization { generation: generation + 1, principal: None });
                let _ = socket.emit("error", &json!({ "message": "Token expired; authorize again" }));
                arm_timeout(&socket, &state, generation + 1);
            }
        });
    }
    Ok(principal)
}

fn current(socket: &SocketRef) -> Authorization {
    socket.extensions.get::<Authorization>().unwrap_or(Authorization { generation: 0, principal: None })
}

/// Disconnects the socket if it is still anonymous (at `generation`) when the timeout passes.
fn arm_timeout(socket: &SocketRef, state: &AppState, generation: u64) {
    let socket = socket.clone();
    let timeout = state.config.socket_auth_timeout;
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let now = current(&socket);
        if now.generation == generation && now.principal.is_none() && socket.connected() {
            let _ = socket.emit("error", &json!({ "message": "Not authorized in time; disconnecting" }));
            let _ = socket.disconnect();
        }
    });
}

fn query_token(socket: &SocketRef) -> Option<String> {
    let query = socket.req_parts().uri.query()?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&format!("/?{query}").parse().ok()?)
        .ok()?
        .0
        .into_iter()
        .rev()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

fn until(exp_secs: u64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_secs(exp_secs).saturating_sub(now)
}
