//! What the benchmarks share: a free loopback port and a bare HTTP/1.1 keep-alive client on
//! hyper, so every benchmark measures the server the same way.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// One open HTTP/1.1 connection.
pub type Sender = SendRequest<Full<Bytes>>;

/// A port nobody listens on right now, on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Opens a keep-alive connection to `addr`; its driver runs on its own task.
pub async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A request with the headers the server needs, and a JSON body when given.
pub fn request(
    method: Method,
    uri: Uri,
    auth: Option<&HeaderValue>,
    body: Option<Bytes>,
) -> Request<Full<Bytes>> {
    let has_body = body.is_some();
    let mut req = Request::new(Full::new(body.unwrap_or_default()));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.insert(HOST, HeaderValue::from_static("127.0.0.1"));
    if let Some(auth) = auth {
        headers.insert(AUTHORIZATION, auth.clone());
    }
    if has_body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    req
}
