//! Who a socket is. The token may come with the handshake or later in an `authorize` event; the
//! same JWT rules as REST apply. Attempts are rate limited per client address, an anonymous
//! socket is disconnected after the configured timeout, and a token's `exp` ends the
//! authorization it granted.
//!
//! The handshake is handled in a connect middleware, which socketioxide runs before it tells
//! the client it is connected: a client that emits `authorize` right after `connect` is
//! therefore always heard, and a handshake token's rooms are joined before any event can pass.
//!
//! Beside the token a client may ask for positions (`positions: true`) and hand over the last
//! position it saw (`since`, which implies positions): the socket then joins its rooms only
//! once [`resume`](crate::socket::resume) has replayed what it missed.
//!
//! The deadlines (a token's `exp`, the anonymous timeout) of every socket are kept by one task,
//! [`run_deadlines`], rather than a task and a channel per socket: an idle socket then costs
//! an entry in an ordered map instead of about 0.8 KiB (ADR 0013).

use crate::app::AppState;
use crate::auth::Principal;
use crate::socket::resume::{self, Viewer};
use crate::socket::{STAFF_ROOM, positioned, user_room};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::socket::Sid;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

/// The current authorization of a socket; the generation tells stale deadlines apart.
#[derive(Debug, Clone, Copy)]
struct Authorization {
    generation: u64,
    authorized: bool,
    /// The token's `exp` (epoch seconds), when it has one.
    expires_at: Option<u64>,
    /// When the socket's pending deadline is due, so that it can be replaced or forgotten.
    deadline: Option<Instant>,
    /// Events carry their position; once asked, for the socket's life, since its handlers
    /// take the second argument from then on.
    positions: bool,
}

impl Authorization {
    const ANONYMOUS: Authorization = Authorization {
        generation: 0,
        authorized: false,
        expires_at: None,
        deadline: None,
        positions: false,
    };
}

/// What a client asked for beside its token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Wants {
    positions: bool,
    since: Option<u64>,
}

/// Reads `positions` and `since` from a handshake's `auth` or an `authorize` payload.
fn wants(data: &Value) -> Result<Wants, String> {
    let positions = match data.get("positions") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(on)) => *on,
        Some(_) => return Err("positions must be true or false".to_string()),
    };
    let since = match data.get("since") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or(
            "since must be a non-negative integer: the position of the last event received",
        )?),
    };
    Ok(Wants {
        positions: positions || since.is_some(),
        since,
    })
}

/// A replay to run once the socket may receive events (after the connection or the ack).
#[derive(Debug, Clone)]
struct PendingResume {
    since: u64,
    viewer: Viewer,
    rooms: Vec<String>,
    generation: u64,
}

/// Why the handshake token was refused, to tell the client once it is connected.
#[derive(Debug, Clone)]
struct HandshakeRefused(String);

/// What happens when a deadline passes.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// The token's `exp`: the authorization granted at that generation ends.
    Expiry,
    /// The anonymous timeout: the socket is disconnected if still anonymous at that generation.
    Timeout,
}

/// One socket's pending deadline, ordered by when it is due.
type Key = (Instant, Sid);

#[derive(Debug)]
enum Command {
    Arm { key: Key, generation: u64, due: Due },
    Forget(Key),
}

/// The handle (a socketioxide state) through which sockets hand their deadlines to
/// [`run_deadlines`].
#[derive(Debug, Clone)]
pub struct Deadlines {
    commands: mpsc::UnboundedSender<Command>,
    timeout: Duration,
}

impl Deadlines {
    /// The handle, and the receiving end for [`run_deadlines`], which keeps `gauge` at the
    /// number of deadlines pending.
    pub fn new(timeout: Duration, gauge: Arc<AtomicUsize>) -> (Self, DeadlineCommands) {
        let (commands, receiver) = mpsc::unbounded_channel();
        (
            Deadlines { commands, timeout },
            DeadlineCommands {
                commands: receiver,
                timeout,
                gauge,
            },
        )
    }
}

/// What [`run_deadlines`] reads.
#[derive(Debug)]
pub struct DeadlineCommands {
    commands: mpsc::UnboundedReceiver<Command>,
    timeout: Duration,
    gauge: Arc<AtomicUsize>,
}

/// Runs before the client is told it is connected: reads a handshake token, registers
/// `authorize` and the disconnect hook.
pub async fn prepare(
    socket: SocketRef,
    TryData(auth): TryData<Value>,
    State(state): State<AppState>,
) -> Result<(), Infallible> {
    socket.extensions.insert(Authorization::ANONYMOUS);
    // The only event a client sends: a fallback handler is a zero-sized box where `on` would
    // give every socket its own handler map (~0.2 KiB).
    socket.on_fallback(on_event);
    socket.on_disconnect(on_disconnect);
    // Down again in `on_disconnect`; this middleware never refuses, so every socket it sees
    // connects and later disconnects.
    state.metrics.sockets.inc();
    let auth = auth.unwrap_or(Value::Null);
    let token = auth
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| query_token(&socket));
    let outcome = wants(&auth).and_then(|wants| {
        let token = token.ok_or("a resume (since) or positions need a token")?;
        authorize(&socket, &state, &token, wants)
    });
    match outcome {
        Ok((_, Some(pending))) => {
            socket.extensions.insert(pending);
        }
        Ok((_, None)) => {}
        // Nothing asked, nothing refused: the socket may still emit `authorize`.
        Err(_) if token_absent(&auth, &socket) => {}
        Err(message) => {
            socket.extensions.insert(HandshakeRefused(message));
        }
    }
    Ok(())
}

/// Whether the handshake brought neither a token nor anything else to act on.
fn token_absent(auth: &Value, socket: &SocketRef) -> bool {
    auth.get("token").is_none()
        && auth.get("since").is_none()
        && auth.get("positions").is_none()
        && query_token(socket).is_none()
}

/// Runs once the client knows it is connected: reports a refused handshake token, arms the
/// socket's deadline (its token's `exp`, or the timeout of a socket still anonymous) and
/// replays what a resuming socket missed.
pub async fn on_connect(
    socket: SocketRef,
    State(deadlines): State<Deadlines>,
    State(state): State<AppState>,
) {
    if let Some(HandshakeRefused(message)) = socket.extensions.get::<HandshakeRefused>() {
        let _ = socket.emit("error", &json!({ "message": message }));
    }
    let now = current(&socket);
    if now.authorized {
        arm_expiry(&socket, &deadlines, now);
    } else {
        arm(
            &socket,
            &deadlines,
            now,
            Instant::now() + deadlines.timeout,
            Due::Timeout,
        );
    }
    if let Some(pending) = socket.extensions.remove::<PendingResume>() {
        run_resume(socket, &state, pending).await;
    }
}

/// Replays what the socket missed, then joins its rooms at the seam; a socket authorized again
/// meanwhile (or whose authorization ended) is left to that newer authorization.
async fn run_resume(socket: SocketRef, state: &AppState, pending: PendingResume) {
    let PendingResume {
        since,
        viewer,
        rooms,
        generation,
    } = pending;
    let joining = socket.clone();
    let join_rooms = rooms.clone();
    let join = move || join_if_current(&joining, join_rooms, generation);
    let outcome = resume::resume(
        &state.store,
        &state.broadcast_cursor,
        &socket,
        &viewer,
        since,
        state.config.socket_resume_max_events,
        join,
    )
    .await;
    if let Err(e) = outcome {
        // The client cannot have its replay; it is told to re-read the REST API and gets the
        // live events from here, as a socket too far behind would.
        warn!(sid = %socket.id, "cannot replay to a resuming socket: {e}");
        let held = state.broadcast_cursor.hold().await;
        let position = held.position().unwrap_or(since);
        let _ = socket.emit("resync_required", &json!({ "position": position }));
        join_if_current(&socket, rooms, generation);
        drop(held);
    }
}

/// Joins `rooms` if the socket is still authorized at `generation`.
fn join_if_current(socket: &SocketRef, rooms: Vec<String>, generation: u64) -> bool {
    let is_current = |s: &SocketRef| {
        let now = current(s);
        now.generation == generation && now.authorized && s.connected()
    };
    if !is_current(socket) {
        return false;
    }
    socket.join(rooms.clone());
    // The token's expiry may have ended the authorization between the check and the join.
    if !is_current(socket) {
        socket.leave(rooms);
        return false;
    }
    true
}

/// The socket is gone: its pending deadline is forgotten.
async fn on_disconnect(
    socket: SocketRef,
    State(deadlines): State<Deadlines>,
    State(state): State<AppState>,
) {
    state.metrics.sockets.dec();
    if let Some(at) = current(&socket).deadline {
        let _ = deadlines.commands.send(Command::Forget((at, socket.id)));
    }
}

/// Every event the client emits: `authorize` is heard; anything else is answered with an
/// `error` event (and a refusal as the ack, when one is asked for), so a client that misspells
/// an event learns it instead of waiting.
async fn on_event(
    socket: SocketRef,
    Event(event): Event,
    data: TryData<Value>,
    ack: AckSender,
    state: State<AppState>,
    deadlines: State<Deadlines>,
) {
    if event == "authorize" {
        on_authorize(socket, data, ack, state, deadlines).await;
        return;
    }
    let message = unknown_event(&event);
    let _ = ack.send(&json!({ "ok": false, "error": message }));
    let _ = socket.emit("error", &json!({ "message": message }));
}

/// Names are echoed back only while short, so an answer never grows with what a client sends.
fn unknown_event(event: &str) -> String {
    const SHOWN: usize = 64;
    if event.chars().count() <= SHOWN {
        format!("Unknown event {event:?}; a client may only emit `authorize`")
    } else {
        "Unknown event; a client may only emit `authorize`".to_string()
    }
}

async fn on_authorize(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(state): State<AppState>,
    State(deadlines): State<Deadlines>,
) {
    let data = data.unwrap_or(Value::Null);
    let token = data
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_string);
    let outcome = match token {
        Some(token) => wants(&data).and_then(|wants| authorize(&socket, &state, &token, wants)),
        None => Err("authorize needs {\"token\": \"<jwt>\"}".to_string()),
    };
    match outcome {
        Ok((principal, pending)) => {
            arm_expiry(&socket, &deadlines, current(&socket));
            let _ = ack.send(&json!({
                "ok": true,
                "user": {"id": principal.id, "username": principal.username, "role": principal.role},
            }));
            if let Some(pending) = pending {
                run_resume(socket, &state, pending).await;
            }
        }
        Err(message) => {
            // A socket that asked to be someone else and failed is nobody: keeping the earlier
            // user's events flowing would let a client believe its new token works. It gets the
            // anonymous timeout from now to authorize again; an anonymous socket keeps the
            // timeout it has, so failed attempts cannot extend it.
            let now = current(&socket);
            if now.authorized {
                socket.leave_all();
                let ended = Authorization {
                    generation: now.generation + 1,
                    authorized: false,
                    expires_at: None,
                    ..now
                };
                let at = Instant::now() + deadlines.timeout;
                arm(&socket, &deadlines, ended, at, Due::Timeout);
                debug!(sid = %socket.id, "socket authorization ended by a refused token");
            }
            let _ = ack.send(&json!({ "ok": false, "error": message }));
            let _ = socket.emit("error", &json!({ "message": message }));
        }
    }
}

/// Verifies `token` and, when good, puts the socket in its user's room (and the staff room),
/// or, when it asks to resume, answers the replay to run before it joins them. New rooms are
/// joined before old ones are left, so a re-authorization misses no event.
fn authorize(
    socket: &SocketRef,
    state: &AppState,
    token: &str,
    wants: Wants,
) -> Result<(Principal, Option<PendingResume>), String> {
    let addr = socket
        .req_parts()
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if let Err(limited) = state.limits.check_socket_authorize(addr) {
        return Err(format!(
            "Too many authorization attempts; try again in {} s",
            limited.retry_after_secs
        ));
    }
    let principal = state
        .verifier
        .verify(token)
        .map_err(|e| format!("Unauthorized: {e}"))?;
    let now = current(socket);
    let positions = now.positions || wants.positions;
    let mut rooms = vec![user_room(&principal.id)];
    if principal.is_staff() {
        rooms.push(STAFF_ROOM.to_string());
    }
    if positions {
        rooms = rooms.iter().map(|r| positioned(r)).collect();
    }
    if wants.since.is_some() {
        // Live events wait until the replay has caught up with them.
        socket.leave_all();
    } else {
        socket.join(rooms.clone());
        let stale: Vec<_> = socket
            .rooms()
            .into_iter()
            .filter(|r| !rooms.iter().any(|n| n.as_str() == r.as_ref()))
            .collect();
        if !stale.is_empty() {
            socket.leave(stale);
        }
    }
    let generation = now.generation + 1;
    socket.extensions.insert(Authorization {
        generation,
        authorized: true,
        expires_at: principal.expires_at,
        deadline: now.deadline,
        positions,
    });
    debug!(sid = %socket.id, user = %principal.id, "socket authorized");
    let pending = wants.since.map(|since| PendingResume {
        since,
        viewer: Viewer {
            user_id: principal.id.clone(),
            staff: principal.is_staff(),
            sla: std::sync::Arc::new(state.config.sla.clone()),
        },
        rooms,
        generation,
    });
    Ok((principal, pending))
}

fn current(socket: &SocketRef) -> Authorization {
    socket
        .extensions
        .get::<Authorization>()
        .unwrap_or(Authorization::ANONYMOUS)
}

/// Ends the authorization `now` describes when its token's `exp` passes; a token without `exp`
/// only forgets the socket's pending deadline.
fn arm_expiry(socket: &SocketRef, deadlines: &Deadlines, now: Authorization) {
    match now.expires_at {
        Some(exp) => arm(
            socket,
            deadlines,
            now,
            Instant::now() + until(exp),
            Due::Expiry,
        ),
        None => {
            if let Some(at) = now.deadline {
                let _ = deadlines.commands.send(Command::Forget((at, socket.id)));
                socket.extensions.insert(Authorization {
                    deadline: None,
                    ..now
                });
            }
        }
    }
}

/// Replaces the socket's pending deadline with `due` at `at`, for the generation of `now`.
fn arm(socket: &SocketRef, deadlines: &Deadlines, now: Authorization, at: Instant, due: Due) {
    if let Some(old) = now.deadline {
        let _ = deadlines.commands.send(Command::Forget((old, socket.id)));
    }
    socket.extensions.insert(Authorization {
        deadline: Some(at),
        ..now
    });
    let _ = deadlines.commands.send(Command::Arm {
        key: (at, socket.id),
        generation: now.generation,
        due,
    });
}

/// The one task that keeps every socket's deadline: it sleeps until the earliest is due, then
/// looks the socket up and ends its authorization or disconnects it, as the spawned timers
/// of earlier versions did. A background task of the app: it holds the [`SocketIo`], whose
/// state holds a [`Deadlines`], so it runs until the app stops it.
pub async fn run_deadlines(commands: DeadlineCommands, io: SocketIo) {
    let DeadlineCommands {
        mut commands,
        timeout: auth_timeout,
        gauge,
    } = commands;
    let mut pending: BTreeMap<Key, (u64, Due)> = BTreeMap::new();
    let alarm = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(alarm);
    loop {
        let next = pending.first_key_value().map(|((at, _), _)| *at);
        if let Some(at) = next
            && alarm.deadline() != at
        {
            alarm.as_mut().reset(at);
        }
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Arm { key, generation, due }) => {
                    // A socket that went away before its deadline reached this task stays out.
                    if io.get_socket(key.1).is_some_and(|s| s.connected()) {
                        pending.insert(key, (generation, due));
                    }
                }
                Some(Command::Forget(key)) => {
                    pending.remove(&key);
                }
                None => return,
            },
            () = &mut alarm, if next.is_some() => {
                let now = Instant::now();
                while let Some(entry) = pending.first_entry()
                    && entry.key().0 <= now
                {
                    let ((_, sid), (generation, due)) = entry.remove_entry();
                    if let Some(socket) = io.get_socket(sid) {
                        fire(&socket, &mut pending, generation, due, auth_timeout);
                    }
                }
            }
        }
        // A disconnected socket whose entry stayed would show here (and in `/readyz`).
        gauge.store(pending.len(), Ordering::Relaxed);
    }
}

/// A due deadline of `socket`, armed at `generation`: ends its authorization (and arms the
/// anonymous timeout) or disconnects it, unless it has been authorized again since.
fn fire(
    socket: &SocketRef,
    pending: &mut BTreeMap<Key, (u64, Due)>,
    generation: u64,
    due: Due,
    timeout: Duration,
) {
    let now = current(socket);
    if now.generation != generation || !socket.connected() {
        return;
    }
    match due {
        Due::Expiry => {
            socket.leave_all();
            let at = Instant::now() + timeout;
            socket.extensions.insert(Authorization {
                generation: generation + 1,
                authorized: false,
                expires_at: None,
                deadline: Some(at),
                positions: now.positions,
            });
            let _ = socket.emit(
                "error",
                &json!({ "message": "Token expired; authorize again" }),
            );
            pending.insert((at, socket.id), (generation + 1, Due::Timeout));
        }
        Due::Timeout if !now.authorized => {
            let _ = socket.emit(
                "error",
                &json!({ "message": "Not authorized in time; disconnecting" }),
            );
            let _ = socket.clone().disconnect();
        }
        Due::Timeout => {}
    }
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
