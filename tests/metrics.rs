//! `GET /metrics` seen from outside (issue 19 part 6): a few requests, a post, a rate-limit
//! refusal and a socket move the series they should, under the route template and never an id;
//! the store's commits and the broadcaster's position show on both stores; `METRICS_TOKEN` is
//! enforced with the API's 401 envelope, and without it the route is open. With the Discord
//! bridge (the fake Discord) and partner webhooks on, their projectors show their positions and
//! a Discord outage shows as retries.

mod common;
#[path = "common/fake_discord.rs"]
mod fake_discord;

use common::webhook_receiver::{Receiver, WEBHOOK_SECRET};
use common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const METRICS_TOKEN: &str = "metrics-token-for-the-test-0123456789";

/// Scrapes with `token` (if any) and returns the status and the body as text.
async fn scrape(server: &TestServer, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = server.client.get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let (status, headers, body) = server.send(request).await;
    if status == StatusCode::OK {
        let kind = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    }
    (status, body)
}

async fn text(server: &TestServer) -> String {
    let (status, body) = scrape(server, Some(METRICS_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_str().expect("the exposition is text").to_string()
}

/// The value of the sample named exactly `series` (name and labels as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no sample `{series}` in:\n{text}"))
}

fn requests(method: &str, route: &str, status: u16) -> String {
    format!(
        "ticketd_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
    )
}

/// A Socket.IO client over WebSocket, connected to "/" without a token.
async fn socket(server: &TestServer) -> WebSocketStream<TcpStream> {
    let addr = server.base.trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket upgrade");
    let open = ws.next().await.expect("open packet").expect("a frame");
    assert!(open.to_text().unwrap_or("").starts_with('0'), "{open:?}");
    ws.send(Message::text("40{}")).await.expect("send connect");
    loop {
        let frame = ws.next().await.expect("connect answer").expect("a frame");
        if frame.to_text().unwrap_or("").starts_with("40") {
            return ws;
        }
    }
}

/// Scrapes until `check` holds (the broadcaster and disconnects are asynchronous), 10 s at most.
async fn eventually(server: &TestServer, what: &str, check: impl Fn(&str) -> bool) -> String {
    for _ in 0..200 {
        let now = text(server).await;
        if check(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s:\n{}", text(server).await);
}

async fn series_move_with_the_right_labels(store: &Backend) {
    let server = store
        .start_with(&[
            ("RATE_LIMITS", "on"),
            ("METRICS_TOKEN", METRICS_TOKEN),
            // Nothing listens there; configured, its queue's drops show (as 0).
            (
                "ERROR_WEBHOOK_URL",
                "http://127.0.0.1:9/api/webhooks/1/unused",
            ),
        ])
        .await;
    let before = text(&server).await;
    assert_eq!(must(&before, "ticketd_store_events_total"), 0.0);
    assert_eq!(must(&before, "ticketd_socketio_connected_sockets"), 0.0);

    let ann = server.token("ann", "CUSTOMER");
    let ticket = server.create_ticket(&ann, "Printer", "It jams").await;
    let id = ticket["id"].as_str().expect("ticket id").to_string();
    server.post_message(&ann, &id, "Still jammed").await;
    let (status, _, _) = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_eq!(status, StatusCode::OK);
    // Three openings a minute: the fourth is refused.
    for n in 0..2 {
        server.create_ticket(&ann, &format!("More {n}"), "x").await;
    }
    let (status, _, _) = server
        .post_json(
            "/api/v1/tickets",
            &ann,
            serde_json::json!({"topic": "One too many", "description": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let mut ws = socket(&server).await;

    let now = eventually(&server, "the broadcaster catches up", |t| {
        value(t, "ticketd_projector_lag_events{projector=\"socketio\"}") == Some(0.0)
            && value(t, "ticketd_store_head_position").is_some_and(|h| h >= 4.0)
    })
    .await;
    assert_eq!(must(&now, &requests("POST", "/api/v1/tickets", 200)), 3.0);
    assert_eq!(must(&now, &requests("POST", "/api/v1/tickets", 429)), 1.0);
    assert_eq!(
        must(
            &now,
            &requests("POST", "/api/v1/tickets/{ticket_id}/messages", 200)
        ),
        1.0
    );
    assert_eq!(
        must(&now, &requests("GET", "/api/v1/tickets/{ticket_id}", 200)),
        1.0
    );
    // The scrape before; the one answering is counted once answered.
    assert!(must(&now, &requests("GET", "/metrics", 200)) >= 1.0);
    assert!(!now.contains(&id), "an id became a label:\n{now}");
    assert_eq!(
        must(
            &now,
            "ticketd_rate_limit_refusals_total{route=\"create_ticket\"}"
        ),
        1.0
    );
    // Three openings and a message; the refused opening stored nothing.
    assert_eq!(must(&now, "ticketd_store_events_total"), 4.0);
    assert_eq!(must(&now, "ticketd_store_head_position"), 4.0);
    assert_eq!(
        must(&now, "ticketd_projector_position{projector=\"socketio\"}"),
        4.0
    );
    assert!(must(&now, "ticketd_store_write_requests_total") >= 4.0);
    assert!(must(&now, "ticketd_store_commit_seconds_count") >= 1.0);
    assert!(must(&now, "ticketd_store_batch_requests_count") >= 1.0);
    assert!(must(&now, "ticketd_store_commit_seconds_sum") > 0.0);
    assert_eq!(must(&now, "ticketd_socketio_connected_sockets"), 1.0);
    assert_eq!(must(&now, "ticketd_discord_retries_total"), 0.0);
    assert_eq!(
        must(&now, "ticketd_alert_drops_total{webhook=\"server\"}"),
        0.0
    );
    assert!(
        !now.contains("webhook=\"bridge\""),
        "not configured:\n{now}"
    );
    if cfg!(target_os = "linux") {
        assert!(must(&now, "process_resident_memory_bytes") > 1e6);
        assert!(must(&now, "process_open_fds") >= 3.0);
    }

    ws.close(None).await.expect("close the socket");
    eventually(&server, "the socket is gone", |t| {
        value(t, "ticketd_socketio_connected_sockets") == Some(0.0)
    })
    .await;
    server.stop().await;
}

async fn the_token_is_enforced(store: &Backend) {
    let server = store.start_with(&[("METRICS_TOKEN", METRICS_TOKEN)]).await;
    for token in [None, Some("wrong"), Some(&METRICS_TOKEN[1..])] {
        let (status, body) = scrape(&server, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert_eq!(body["error"], "UNAUTHORIZED", "{body}");
    }
    // A user's JWT is not the metrics token.
    let admin = server.token("root", "ADMIN");
    let (status, _) = scrape(&server, Some(&admin)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = scrape(&server, Some(METRICS_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The refusals were counted as requests too, under the route.
    let now = text(&server).await;
    assert_eq!(must(&now, &requests("GET", "/metrics", 401)), 4.0);
    server.stop().await;
}

on_both_stores!(series_move_with_the_right_labels, the_token_is_enforced);

#[tokio::test]
async fn without_a_token_the_route_is_open() {
    let server = TestServer::start().await;
    let (status, body) = scrape(&server, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = body.as_str().expect("text");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE ticketd_store_commit_seconds histogram"));
}

#[tokio::test]
async fn guessing_the_token_is_rate_limited_like_guessing_a_jwt() {
    let server =
        TestServer::start_with(&[("RATE_LIMITS", "on"), ("METRICS_TOKEN", METRICS_TOKEN)]).await;
    let mut statuses = Vec::new();
    for _ in 0..70 {
        statuses.push(scrape(&server, Some("guess")).await.0);
    }
    assert!(
        statuses[..60]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED)
    );
    assert_eq!(statuses[69], StatusCode::TOO_MANY_REQUESTS);
    // The right token still passes, and is not limited.
    for _ in 0..5 {
        assert_eq!(scrape(&server, Some(METRICS_TOKEN)).await.0, StatusCode::OK);
    }
    let now = text(&server).await;
    assert_eq!(
        must(
            &now,
            "ticketd_rate_limit_refusals_total{route=\"anonymous\"}"
        ),
        10.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discord_and_webhook_projectors_show_positions_and_retries() {
    let fake = fake_discord::FakeDiscord::start().await;
    let partner = Receiver::start().await;
    let partner_url = partner.url();
    let mut env: Vec<(String, String)> = fake.env();
    env.extend(
        [
            ("METRICS_TOKEN", METRICS_TOKEN),
            ("WEBHOOK_URL", partner_url.as_str()),
            ("WEBHOOK_SECRET", WEBHOOK_SECRET),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = TestServer::start_with(&env).await;
    fake.wait_until("the slash commands to be registered", 30, |f| {
        !f.calls_to("PUT", "/applications/*/guilds/*/commands")
            .is_empty()
    })
    .await;
    let ann = server.token("ann", "CUSTOMER");
    // Discord fails the next calls: the bridge retries until they land.
    fake.fail_next(3, 500);
    let ticket = server.create_ticket(&ann, "Printer", "It jams").await;
    let id = ticket["id"].as_str().expect("ticket id");
    server.post_message(&ann, id, "Still jammed").await;
    let now = eventually(&server, "every projector at the head", |t| {
        ["socketio", "discord", "webhooks"].iter().all(|p| {
            value(
                t,
                &format!("ticketd_projector_lag_events{{projector=\"{p}\"}}"),
            ) == Some(0.0)
                && value(
                    t,
                    &format!("ticketd_projector_position{{projector=\"{p}\"}}"),
                ) == Some(2.0)
        })
    })
    .await;
    assert_eq!(must(&now, "ticketd_store_head_position"), 2.0);
    assert!(must(&now, "ticketd_discord_retries_total") >= 3.0, "{now}");
    assert_eq!(fake.failures_left(), 0);
    server.stop().await;
}
