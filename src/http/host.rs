//! Refuses an HTTP/1.1 request without exactly one `Host` header (RFC 9112, section 3.2: a
//! server must answer 400), which hyper serves as it is. A request that names no host, or two,
//! is a broken or hostile client, and two hosts are how a request smuggled between a proxy and
//! a server that read different ones looks. HTTP/1.0 may omit it, but not repeat it.

use super::error::{ApiError, FieldError};
use axum::extract::Request;
use axum::http::{Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub(super) async fn require_host(request: Request, next: Next) -> Response {
    let hosts = request.headers().get_all(header::HOST).iter().count();
    let allowed = match request.version() {
        Version::HTTP_11 => hosts == 1,
        Version::HTTP_10 | Version::HTTP_09 => hosts <= 1,
        // HTTP/2 names the host in `:authority`.
        _ => true,
    };
    if allowed {
        return next.run(request).await;
    }
    ApiError::field(FieldError::new(
        "header.Host",
        "invalid_header",
        format!(
            "A request needs exactly one Host header (HTTP/1.0: at most one); this one has {hosts}"
        ),
    ))
    .into_response()
}
