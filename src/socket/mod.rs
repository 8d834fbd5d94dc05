//! Socket.IO on the REST port: customers and staff receive their tickets' events live. A socket
//! is authorized by a token in the handshake (`auth.token` or `query.token`) or by the
//! `authorize` event; until then it receives nothing, and it is dropped if it stays anonymous.
//! What reaches it is decided by the [`broadcaster`], which follows the global event stream.

mod authorize;
pub mod broadcaster;

use crate::app::AppState;
use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::Response;
use socketioxide::SocketIo;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;

/// The room every staff socket joins.
pub const STAFF_ROOM: &str = "staff";

/// The room every socket of one user joins.
pub fn user_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The Socket.IO layer for the router, and the handle the broadcaster emits through.
pub fn layer(state: AppState) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .with_state(state)
        .max_payload(16 * 1024)
        // Sockets mostly receive; their own frames are small `authorize` events.
        .ws_read_buffer_size(1024)
        .build_layer();
    io.ns("/", authorize::on_connect.with(authorize::prepare));
    (layer, io)
}

/// Gives a Socket.IO request its own copies of the URI and headers. A socket keeps its request
/// parts for its whole life, and hyper's parts are slices of the connection's read buffer
/// (8 KiB or more), which would otherwise stay alive once per idle socket.
pub async fn compact_request(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/socket.io/") {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    if let Ok(uri) = parts.uri.to_string().parse::<Uri>() {
        parts.uri = uri;
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.append(name.clone(), value);
        }
    }
    parts.headers = headers;
    if let Some(OriginalUri(original)) = parts.extensions.remove::<OriginalUri>()
        && let Ok(copy) = original.to_string().parse::<Uri>()
    {
        parts.extensions.insert(OriginalUri(copy));
    }
    next.run(Request::from_parts(parts, body)).await
}
