//! Socket.IO on the REST port: customers and staff receive their tickets' events live. A socket
//! is authorized by a token in the handshake (`auth.token` or `query.token`) or by the
//! `authorize` event; until then it receives nothing, and it is dropped if it stays anonymous.
//! What reaches it is decided by the [`broadcaster`], which follows the global event stream.

mod authorize;
pub mod broadcaster;

use crate::app::AppState;
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
        .build_layer();
    io.ns("/", authorize::on_connect.with(authorize::prepare));
    (layer, io)
}
