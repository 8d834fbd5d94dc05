//! Socket.IO on the REST port: customers and staff receive their tickets' events live. A socket
//! is authorized by a token in the handshake (`auth.token` or `query.token`) or by the
//! `authorize` event; until then it receives nothing, and it is dropped if it stays anonymous.
//! What reaches it is decided by the [`broadcaster`], which follows the global event stream.

mod authorize;
pub mod broadcaster;
pub mod resume;

use crate::app::AppState;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{CONTENT_TYPE, SEC_WEBSOCKET_KEY};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{ParserConfig, SocketIo};
use std::net::SocketAddr;

/// The largest message a client may send, on every transport: an HTTP long-polling body, a
/// WebSocket message, and a single WebSocket frame. What clients send is a handshake, an
/// `authorize` event with a token (~350 bytes) and pongs, so 16 KiB leaves room for long
/// tokens and nothing for floods. Over WebSocket, tungstenite refuses a frame whose header
/// announces more before reading its payload, and a fragmented message once its parts add up
/// to more; engineioxide then closes the session and the connection, authorized or not.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// The room every staff socket joins.
pub const STAFF_ROOM: &str = "staff";

/// The room every socket of one user joins.
pub fn user_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The twin of `room` for sockets that asked for positions: the broadcaster emits each event
/// to both, with the event's position as a second argument only here. A prefix, not a
/// suffix: user ids are the partner's strings, and `user:<id>` plus a suffix could be another
/// user's room.
pub fn positioned(room: &str) -> String {
    format!("positions:{room}")
}

/// The Socket.IO layer for the router, and the handle the broadcaster emits through. Spawns
/// the task that keeps the sockets' deadlines, so it must be called inside a Tokio runtime.
pub fn layer(state: AppState) -> (SocketIoLayer, SocketIo) {
    let (deadlines, commands) = authorize::Deadlines::new(
        state.config.socket_auth_timeout,
        state.socket_deadlines.clone(),
    );
    let (layer, io) = SocketIo::builder()
        .with_state(state.clone())
        .with_state(deadlines)
        .max_payload(MAX_MESSAGE_BYTES as u64)
        // A session that never sends a Socket.IO CONNECT is closed when an anonymous socket
        // would be. socketioxide waits 45 s by default, and its timer keeps the session (about
        // 12 KiB) alive that long even after the client has gone: a stream of tokenless
        // upgrades held memory in proportion to its rate times 45 s (ADR 0030).
        .connect_timeout(state.config.socket_auth_timeout)
        .ws_max_message_size(MAX_MESSAGE_BYTES)
        .ws_max_frame_size(MAX_MESSAGE_BYTES)
        // Our events carry no binary attachments; accepting them would let a socket pile up to
        // 10,000 attachments (10 MB by default) waiting for the packet they complete.
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(0)
                .max_incoming_binary_buf_size(MAX_MESSAGE_BYTES),
        )
        // Sockets mostly receive; what they send is a handshake or an `authorize` event with a
        // token (~350 bytes) and pongs. The read buffer starts at this size and grows to the
        // largest frame read, then stays for the socket's life: 64 bytes keeps it near one
        // token (~0.4 KiB) where 1,024 kept 1 KiB per socket; a bigger frame takes a few more
        // reads (ADR 0013).
        .ws_read_buffer_size(64)
        .build_layer();
    io.ns("/", authorize::on_connect.with(authorize::prepare));
    state.spawn(authorize::run_deadlines(commands, io.clone()));
    (layer, io)
}

/// The request headers a Socket.IO transport reads after this middleware: the key of a
/// WebSocket upgrade and the content type of a polling POST.
const KEPT_HEADERS: [HeaderName; 2] = [SEC_WEBSOCKET_KEY, CONTENT_TYPE];

/// Gives a Socket.IO request its own small copy of what the transports and our handlers read:
/// the URI (a query `token`), the [`KEPT_HEADERS`], the client address ([`ConnectInfo`]) and
/// hyper's upgrade handle. A socket keeps its request parts for its whole life, and hyper's
/// parts are slices of the connection's read buffer (8 KiB or more), which would otherwise stay
/// alive once per idle socket; the other headers and extensions (a browser sends a dozen
/// headers) would cost about a kilobyte per socket that nothing reads. Handlers therefore see
/// only these in `socket.req_parts()` (ADR 0013).
pub async fn compact_request(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/socket.io/") {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    if let Ok(uri) = parts.uri.to_string().parse::<Uri>() {
        parts.uri = uri;
    }
    let kept: Vec<_> = KEPT_HEADERS
        .into_iter()
        .filter_map(|name| {
            let value = HeaderValue::from_bytes(parts.headers.get(&name)?.as_bytes()).ok()?;
            Some((name, value))
        })
        .collect();
    let mut headers = HeaderMap::with_capacity(kept.len());
    headers.extend(kept);
    parts.headers = headers;
    let mut extensions = Extensions::new();
    if let Some(info) = parts.extensions.remove::<ConnectInfo<SocketAddr>>() {
        extensions.insert(info);
    }
    if let Some(upgrade) = parts.extensions.remove::<OnUpgrade>() {
        extensions.insert(upgrade);
    }
    parts.extensions = extensions;
    next.run(Request::from_parts(parts, body)).await
}
