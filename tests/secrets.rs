//! Secrets stay secret (issue 19 part 7): the real binary runs at `RUST_LOG=trace` with every
//! secret configured — the JWT secret, a Discord bot token (against the fake Discord), both
//! error-webhook URLs, the partner webhook URL and secret, `METRICS_TOKEN` — while every door is
//! used: REST with valid and invalid JWTs, Socket.IO (token in the handshake, in the query, in
//! `authorize`, valid and not), Discord gateway traffic both ways, a partner webhook delivery, a
//! bridge error alert, `/metrics` with the right and a wrong token. Then everything the process
//! printed is searched for each secret and each JWT used; any hit fails the test.

mod common;
#[path = "common/fake_discord.rs"]
mod fake_discord;

use common::webhook_receiver::{Receiver, WEBHOOK_SECRET};
use common::*;
use fake_discord::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const BOT_TOKEN: &str = "MTAxMjM0NTY3ODkw.bot-token-never-logged.x9Q2vL7pR4sT";
const METRICS_TOKEN: &str = "metrics-token-never-logged-7Yk3fP0qZ";

/// Connects a Socket.IO client over WebSocket (`query` appended to the URL) and sends the
/// namespace connect with `auth`; returns the socket and the first packets it got.
async fn socket(
    server: &BinaryServer,
    query: &str,
    auth: &Value,
) -> (tokio_tungstenite::WebSocketStream<TcpStream>, Vec<String>) {
    let addr = server.base.trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket{query}");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket upgrade");
    ws.send(Message::text(format!("40{auth}")))
        .await
        .expect("send connect");
    let mut seen = Vec::new();
    // The open packet, the connect answer and whatever follows within a moment.
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(Duration::from_millis(500), ws.next()).await
    {
        if let Ok(text) = frame.to_text() {
            seen.push(text.to_string());
        }
    }
    (ws, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_and_no_token_reaches_readable_logs_at_trace_level() {
    every_door_then_search_the_log("pretty").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_and_no_token_reaches_json_logs_at_trace_level() {
    every_door_then_search_the_log("json").await;
}

/// Runs every door on a server logging in `format` (`LOG_FORMAT`) at trace level, then fails on
/// any secret or JWT in its output.
async fn every_door_then_search_the_log(format: &str) {
    let fake = FakeDiscord::start().await;
    let server_errors = WebhookSink::start().await;
    let bridge_errors = WebhookSink::start().await;
    let partner = Receiver::start().await;
    let partner_url = partner.url();
    let mut env: Vec<(String, String)> = fake
        .env()
        .into_iter()
        .filter(|(k, _)| k != "DISCORD_BOT_TOKEN")
        .collect();
    env.extend(
        [
            ("DISCORD_BOT_TOKEN", BOT_TOKEN),
            ("RUST_LOG", "trace"),
            ("LOG_FORMAT", format),
            ("RATE_LIMITS", "on"),
            ("METRICS_TOKEN", METRICS_TOKEN),
            ("ERROR_WEBHOOK_URL", server_errors.url.as_str()),
            ("ERROR_BOT_WEBHOOK_URL", bridge_errors.url.as_str()),
            ("WEBHOOK_URL", partner_url.as_str()),
            ("WEBHOOK_SECRET", WEBHOOK_SECRET),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = tempfile::tempdir().expect("a data directory");
    let server = BinaryServer::spawn_with(dir.path(), &env).await;
    fake.wait_until("the slash commands to be registered", 30, |f| {
        !f.calls_to("PUT", "/applications/*/guilds/*/commands")
            .is_empty()
    })
    .await;

    // REST with valid tokens.
    let ann = server.token("ann", "CUSTOMER");
    let staff = server.token("sam", "AGENT");
    let ticket = server.create_ticket(&ann, "Cannot log in", "Help").await["id"]
        .as_str()
        .expect("ticket id")
        .to_string();
    server.post_message(&ann, &ticket, "hello from REST").await;
    let (status, _, _) = server
        .get(&format!("/api/v1/tickets/{ticket}"), &staff)
        .await;
    assert_eq!(status, StatusCode::OK);
    // REST with invalid ones: another key, expired, garbage.
    let forged = sign_claims(
        &json!({"id": "eve", "username": "eve", "email": "e@x.io", "role": "ADMIN"}),
        "another-secret-0123456789abcdef0123456789",
    );
    let expired = sign_claims(
        &json!({"id": "ann", "username": "ann", "email": "a@x.io", "role": "CUSTOMER", "exp": 1}),
        SECRET,
    );
    let garbage = "eyJhbGciOiJIUzI1NiJ9.not-json-at-all.c2lnbmF0dXJlLW5vdC12YWxpZA";
    for bad in [forged.as_str(), expired.as_str(), garbage] {
        let (status, _, body) = server.get("/api/v1/tickets", bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }

    // Socket.IO: a token in the handshake, in the query, in `authorize`; valid and not.
    let (ws_auth, seen) = socket(&server, "", &json!({"token": ann})).await;
    assert!(seen.iter().any(|p| p.starts_with("40")), "{seen:?}");
    let (ws_query, _) = socket(&server, &format!("&token={staff}"), &json!({})).await;
    let (_, refused) = socket(&server, "", &json!({"token": forged})).await;
    assert!(refused.iter().any(|p| p.contains("error")), "{refused:?}");
    let (mut ws_later, _) = socket(&server, "", &json!({})).await;
    ws_later
        .send(Message::text(format!(
            r#"42["authorize",{{"token":"{expired}"}}]"#
        )))
        .await
        .expect("send authorize");
    ws_later
        .send(Message::text(format!(
            r#"42["authorize",{{"token":"{staff}"}}]"#
        )))
        .await
        .expect("send authorize");

    // Discord, both ways: the customer's message reaches the channel, a staff reply comes back.
    let marker = format!("ticket {ticket}");
    let find = |f: &FakeDiscord| {
        f.ticket_channels()
            .into_iter()
            .find(|c| c["topic"].as_str().is_some_and(|t| t.starts_with(&marker)))
    };
    fake.wait_until("the ticket's channel", 30, |f| find(f).is_some())
        .await;
    let channel = find(&fake).expect("the channel")["id"]
        .as_str()
        .expect("channel id")
        .to_string();
    fake.member_says(STAFF, &channel, "hello from Discord", &[]);
    for _ in 0..100 {
        let (_, _, body) = server
            .get(&format!("/api/v1/tickets/{ticket}/messages"), &ann)
            .await;
        if body.to_string().contains("hello from Discord") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An outage: the bridge retries, and its errors go to ERROR_BOT_WEBHOOK_URL.
    fake.fail_next(3, 500);
    server
        .post_message(&ann, &ticket, "during the outage")
        .await;
    bridge_errors.wait_for("retrying", 30).await;

    // A partner webhook delivery.
    partner.wait_taken(2, Duration::from_secs(30)).await;

    // /metrics with the right and a wrong token.
    let scrape = |token: &str| {
        server
            .client
            .get(server.url("/metrics"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        scrape(METRICS_TOKEN).await.expect("scrape").status(),
        StatusCode::OK
    );
    assert_eq!(
        scrape("metrics-token-wrong")
            .await
            .expect("scrape")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    drop((ws_auth, ws_query, ws_later));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = server.log_text();
    server.kill9();
    // The levels below `info` are on (the payload-printing libraries stay at `info`).
    assert!(
        (log.contains(" DEBUG ") || log.contains(r#""level":"DEBUG""#))
            && log.contains("socket authorized"),
        "expected debug lines in:\n{log}"
    );
    // The search reads what the server printed about this run: the ticket's requests are there.
    assert!(
        log.contains(&ticket),
        "the log does not show the run:\n{log}"
    );
    let secret_key = WEBHOOK_SECRET.trim_start_matches("whsec_");
    let secrets = [
        ("JWT secret", SECRET),
        ("bot token", BOT_TOKEN),
        ("metrics token", METRICS_TOKEN),
        ("error webhook token", SINK_TOKEN),
        ("error webhook URL", server_errors.url.as_str()),
        ("bridge error webhook URL", bridge_errors.url.as_str()),
        ("partner webhook URL", partner_url.as_str()),
        ("partner webhook URL's token", "tok-5e3c2e7"),
        ("partner webhook secret", WEBHOOK_SECRET),
        ("partner webhook key", secret_key),
        ("customer JWT", ann.as_str()),
        ("staff JWT", staff.as_str()),
        ("forged JWT", forged.as_str()),
        ("expired JWT", expired.as_str()),
        ("garbage JWT", garbage),
    ];
    let mut leaks = Vec::new();
    for (what, secret) in secrets {
        for line in log.lines().filter(|l| l.contains(secret)) {
            leaks.push(format!("{what}: {line}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} log lines carry a secret:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
