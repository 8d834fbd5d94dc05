//! The request body time-out. A client that sends its headers and then trickles (or withholds)
//! its body would hold its connection, and the handler waiting for it, for ever; hyper times
//! out only the headers. Every body gets `HTTP_BODY_TIMEOUT_SECS` from the moment the handler
//! is called; past it, reading fails, and whatever the handler made of the failure is
//! replaced by a 408 in the JSON envelope, sent with `Connection: close` (ADR 0015).

use crate::app::AppState;
use crate::http::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Gives the request body a deadline and answers 408 when it passed.
pub async fn body_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Most requests (every GET) have no body: no deadline to arm, no timer on the hot path.
    if http_body::Body::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let limit = state.config.limits.body_timeout;
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        sleep: Box::pin(tokio::time::sleep(limit)),
        expired: expired.clone(),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    timed_out(limit)
}

fn timed_out(limit: Duration) -> Response {
    let message = format!(
        "The request body did not arrive within {} s",
        limit.as_secs()
    );
    let mut response = ApiError::RequestTimeout(message).into_response();
    // The rest of the body may still be on its way: the connection cannot carry another request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A body that fails once its deadline passes, and says so through `expired`.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body time-out");
            return Poll::Ready(Some(Err(axum::Error::new(late))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
