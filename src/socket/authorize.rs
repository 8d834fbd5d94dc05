//! Who a socket is. The token may come with the handshake or later in an `authorize` event; the
//! same JWT rules as REST apply. Attempts are rate limited per client address, an anonymous
//! socket is disconnected after the configured timeout, and a token's `exp` ends the
//! authorization it granted.
//!
//! The handshake is handled in a connect middleware, which socketioxide runs before it tells
//! the client it is connected: a client that emits `authorize` right after `connect` is
//! therefore always heard, and a handshake token's rooms are joined before any event can pass.

use crate::app::AppState;
use crate::auth::Principal;
use crate::socket::{STAFF_ROOM, user_room};
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::debug;

/// The current authorization of a socket; the generation tells stale timers apart.
#[derive(Debug, Clone)]
struct Authorization {
    generation: u64,
    principal: Option<Principal>,
}

/// Why the handshake token was refused, to tell the client once it is connected.
#[derive(Debug, Clone)]
struct HandshakeRefused(String);

/// Fires when the socket goes away, so its timers stop holding it.
#[derive(Debug, Clone)]
struct Gone(Arc<watch::Sender<bool>>);

/// Runs before the client is told it is connected: reads a handshake token, registers
/// `authorize` and the disconnect hook.
pub async fn prepare(
    socket: SocketRef,
    TryData(auth): TryData<Value>,
    State(state): State<AppState>,
) -> Result<(), Infallible> {
    socket.extensions.insert(Authorization {
        generation: 0,
        principal: None,
    });
    socket
        .extensions
        .insert(Gone(Arc::new(watch::channel(false).0)));
    socket.on("authorize", on_authorize);
    socket.on_disconnect(async |socket: SocketRef| {
        if let Some(Gone(gone)) = socket.extensions.get::<Gone>() {
            gone.send_replace(true);
        }
    });
    let token = auth
        .ok()
        .and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_string))
        .or_else(|| query_token(&socket));
    if let Some(token) = token
        && let Err(message) = authorize(&socket, &state, &token)
    {
        socket.extensions.insert(HandshakeRefused(message));
    }
    Ok(())
}

/// Runs once the client knows it is connected: reports a refused handshake token, and arms
/// the timeout of a socket that is still anonymous.
pub async fn on_connect(socket: SocketRef, State(state): State<AppState>) {
    if let Some(HandshakeRefused(message)) = socket.extensions.get::<HandshakeRefused>() {
        let _ = socket.emit("error", &json!({ "message": message }));
    }
    let now = current(&socket);
    match now.principal {
        Some(principal) => arm_expiry(&socket, &state, &principal, now.generation),
        None => arm_timeout(&socket, &state, now.generation),
    }
}

async fn on_authorize(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(state): State<AppState>,
) {
    let token = data
        .ok()
        .and_then(|d| d.get("token").and_then(Value::as_str).map(str::to_string));
    let outcome = match token {
        Some(token) => authorize(&socket, &state, &token),
        None => Err("authorize needs {\"token\": \"<jwt>\"}".to_string()),
    };
    match outcome {
        Ok(principal) => {
            arm_expiry(&socket, &state, &principal, current(&socket).generation);
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
/// New rooms are joined before old ones are left, so a re-authorization misses no event.
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
    let principal = state
        .verifier
        .verify(token)
        .map_err(|e| format!("Unauthorized: {e}"))?;
    let mut rooms = vec![user_room(&principal.id)];
    if principal.is_staff() {
        rooms.push(STAFF_ROOM.to_string());
    }
    socket.join(rooms.clone());
    let stale: Vec<_> = socket
        .rooms()
        .into_iter()
        .filter(|r| !rooms.iter().any(|n| n.as_str() == r.as_ref()))
        .collect();
    if !stale.is_empty() {
        socket.leave(stale);
    }
    let generation = current(socket).generation + 1;
    socket.extensions.insert(Authorization {
        generation,
        principal: Some(principal.clone()),
    });
    debug!(sid = %socket.id, user = %principal.id, "socket authorized");
    Ok(principal)
}

fn current(socket: &SocketRef) -> Authorization {
    socket
        .extensions
        .get::<Authorization>()
        .unwrap_or(Authorization {
            generation: 0,
            principal: None,
        })
}

/// Resolves when the socket disconnects (or at once if it already has).
async fn gone(socket: &SocketRef) {
    match socket.extensions.get::<Gone>() {
        Some(Gone(sender)) => {
            let mut receiver = sender.subscribe();
            let _ = receiver.wait_for(|gone| *gone).await;
        }
        None => std::future::pending().await,
    }
}

/// Ends the authorization granted at `generation` when its token's `exp` passes.
fn arm_expiry(socket: &SocketRef, state: &AppState, principal: &Principal, generation: u64) {
    let Some(exp) = principal.expires_at else {
        return;
    };
    let socket = socket.clone();
    let state = state.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(until(exp)) => {}
            () = gone(&socket) => return,
        }
        if current(&socket).generation == generation && socket.connected() {
            socket.leave_all();
            socket.extensions.insert(Authorization {
                generation: generation + 1,
                principal: None,
            });
            let _ = socket.emit(
                "error",
                &json!({ "message": "Token expired; authorize again" }),
            );
            arm_timeout(&socket, &state, generation + 1);
        }
    });
}

/// Disconnects the socket if it is still anonymous (at `generation`) when the timeout passes.
fn arm_timeout(socket: &SocketRef, state: &AppState, generation: u64) {
    let socket = socket.clone();
    let timeout = state.config.socket_auth_timeout;
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(timeout) => {}
            () = gone(&socket) => return,
        }
        let now = current(&socket);
        if now.generation == generation && now.principal.is_none() && socket.connected() {
            let _ = socket.emit(
                "error",
                &json!({ "message": "Not authorized in time; disconnecting" }),
            );
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
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(exp_secs).saturating_sub(now)
}
