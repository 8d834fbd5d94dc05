//! Rate limits with the server started `RATE_LIMITS=on`: the quota is per user and per route,
//! an over-quota request answers 429 `{"error":"RATELIMIT","message":...}` with a positive
//! integer `Retry-After` and changes nothing; requests without a valid token are limited per
//! client address (60 a minute) without locking out valid users; `RATE_LIMITS=off` lifts it all.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const ON: &[(&str, &str)] = &[("RATE_LIMITS", "on")];

/// Asserts a 429 in the seed's shape and returns its `Retry-After` seconds.
fn assert_ratelimited(reply: &Reply) -> u64 {
    assert_error(reply, StatusCode::TOO_MANY_REQUESTS, "RATELIMIT");
    let retry = reply
        .1
        .get("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", reply.1))
        .to_str()
        .unwrap()
        .trim()
        .to_string();
    let secs: u64 = retry
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {retry:?} is not an integer"));
    assert!(secs >= 1, "Retry-After {secs} is not positive");
    assert!(
        secs <= 60,
        "Retry-After {secs} is longer than the one-minute window"
    );
    secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourth_ticket_in_a_minute_is_429_for_that_user_only() {
    let server = TestServer::start_with(ON).await;
    let ann = server.token("ann", "CUSTOMER");
    let bob = server.token("bob", "CUSTOMER");
    let mut made = Vec::new();
    for i in 0..3 {
        let (status, _, t) = server
            .post_json(
                "/api/v1/tickets",
                &ann,
                json!({"topic": format!("t{i}"), "description": "d"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "create {i} of 3 is within quota: {t}"
        );
        made.push(t);
    }
    let reply = server
        .post_json(
            "/api/v1/tickets",
            &ann,
            json!({"topic": "t4", "description": "d"}),
        )
        .await;
    assert_eq!(
        reply.0,
        StatusCode::TOO_MANY_REQUESTS,
        "4th create: {}",
        reply.2
    );
    assert_ratelimited(&reply);
    // Still limited on the next try.
    let reply = server
        .post_json(
            "/api/v1/tickets",
            &ann,
            json!({"topic": "t5", "description": "d"}),
        )
        .await;
    assert_ratelimited(&reply);

    // The refused creates did not happen.
    let (status, _, list) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(status, StatusCode::OK);
    made.reverse();
    assert_eq!(list, json!(made));

    // Another user, and another route for the same user, still get through.
    let (status, _, t) = server
        .post_json(
            "/api/v1/tickets",
            &bob,
            json!({"topic": "bob", "description": "d"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another user is not limited by ann's quota: {t}"
    );
    let id = made[0]["id"].as_str().unwrap();
    let (status, _, m) = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &ann,
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "ann's message quota is separate: {m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_quota_is_per_route() {
    let server = TestServer::start_with(ON).await;
    let ann = server.token("ann", "CUSTOMER");
    let bob = server.token("bob", "CUSTOMER");
    let id = server.create_ticket(&ann, "t", "d").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..30 {
        let (status, _, body) = server.get("/api/v1/tickets", &ann).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "list {i} of 30 is within quota: {body}"
        );
    }
    // The quota refills over the minute, so allow a couple of refills on a slow machine.
    let mut limited = None;
    for _ in 0..3 {
        let reply = server.get("/api/v1/tickets", &ann).await;
        if reply.0 == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.0, StatusCode::OK, "{}", reply.2);
    }
    let limited = limited.expect("GET /api/v1/tickets past 30 a minute answers 429");
    assert_ratelimited(&limited);

    let (status, _, _) = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_eq!(status, StatusCode::OK, "GET one ticket has its own quota");
    let (status, _, _) = server.get("/api/v1/tickets", &bob).await;
    assert_eq!(status, StatusCode::OK, "another user has their own quota");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_are_limited_per_address() {
    let server = TestServer::start_with(ON).await;
    for i in 0..60 {
        let auth = format!("Bearer garbage-{i}");
        let reply = server
            .raw(
                Method::GET,
                "/api/v1/tickets",
                &[("authorization", auth.as_str())],
                None,
            )
            .await;
        assert_eq!(
            reply.0,
            StatusCode::UNAUTHORIZED,
            "bad token {i} of 60 is answered 401: {}",
            reply.2
        );
    }
    // The 61st in the minute is refused (a slow machine may see a refill or two first).
    let mut limited = None;
    for _ in 0..3 {
        let reply = server
            .raw(
                Method::GET,
                "/api/v1/tickets",
                &[("authorization", "Bearer garbage-again")],
                None,
            )
            .await;
        if reply.0 == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.0, StatusCode::UNAUTHORIZED, "{}", reply.2);
    }
    let limited = limited.expect("the 61st bad-token request in a minute answers 429");
    assert_ratelimited(&limited);
    // A request with no token at all, to another route, counts against the same address.
    let reply = server
        .raw(Method::POST, "/api/v1/tickets", &[], Some(b"{}".to_vec()))
        .await;
    assert_eq!(
        reply.0,
        StatusCode::TOO_MANY_REQUESTS,
        "missing token after the flood: {}",
        reply.2
    );
    assert_ratelimited(&reply);

    // A valid user on the same address is not locked out by someone else's bad tokens.
    let ann = server.token("ann", "CUSTOMER");
    let (status, _, body) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "valid token after a bad-token flood from the same address: {body}"
    );
    let (status, _, _) = server.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "health checks stay reachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_off_lets_everything_through() {
    let server = TestServer::start_with(&[("RATE_LIMITS", "off")]).await;
    let ann = server.token("ann", "CUSTOMER");
    for i in 0..10 {
        server.create_ticket(&ann, &format!("t{i}"), "d").await;
    }
    for i in 0..70 {
        let reply = server
            .raw(
                Method::GET,
                "/api/v1/tickets",
                &[("authorization", "Bearer nope")],
                None,
            )
            .await;
        assert_eq!(
            reply.0,
            StatusCode::UNAUTHORIZED,
            "bad token {i} with limits off: {}",
            reply.2
        );
    }
    let (status, _, list) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 10);
}
