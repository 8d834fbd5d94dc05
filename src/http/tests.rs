//! The request middleware's promises that cannot be provoked from outside: a panic or an
//! internal error becomes the API's 500 envelope carrying the request id, with its cause shown
//! in DEVELOPMENT and hidden in PRODUCTION.

use super::{ApiError, wrap};
use crate::app::AppState;
use crate::config::Config;
use crate::store::{EmbeddedOptions, EmbeddedStore};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use tower::ServiceExt;

async fn answer(mode: &str, path: &str) -> (StatusCode, String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().to_string_lossy().to_string();
    let config = Config::from_lookup(|name| match name {
        "SERVER_MODE" => Some(mode.to_string()),
        "JWT_SECRET_KEY" => Some("0123456789abcdef0123456789abcdef".into()),
        "DATA_DIR" => Some(data_dir.clone()),
        _ => None,
    })
    .expect("config");
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("store");
    let state = AppState::new(config, store.clone());
    let (socket, _io) = crate::socket::layer(state.clone());
    let routes = Router::new().route("/panic", get(boom)).route(
        "/internal",
        get(|| async { ApiError::Internal("database detail".into()) }),
    );
    let response = wrap(routes, state.clone(), socket)
        .oneshot(
            // As hyper hands it over: an HTTP/1.1 request names its host (`super::host`).
            Request::get(path)
                .header("host", "localhost")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let status = response.status();
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii id")
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    state.stop_background();
    store.shutdown().await;
    (
        status,
        id,
        serde_json::from_slice(&bytes).expect("json body"),
    )
}

async fn boom() -> &'static str {
    panic!("kaboom: secret detail")
}

#[tokio::test]
async fn a_panic_is_a_500_envelope_with_the_request_id() {
    let (status, id, body) = answer("DEVELOPMENT", "/panic").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "INTERNAL_SERVER_ERROR");
    assert_eq!(body["request_id"], id.as_str());
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("kaboom")),
        "{body}"
    );
}

#[tokio::test]
async fn production_hides_the_cause() {
    for path in ["/panic", "/internal"] {
        let (status, id, body) = answer("PRODUCTION", path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["request_id"], id.as_str());
        assert_eq!(body["message"], "Internal server error");
        assert!(!body.to_string().contains("detail"), "{body}");
    }
}
