//! The changes feed, `GET /api/v1/events`, seen from outside on both stores: ADMIN only, every
//! event once in log order across pages, a long poll woken by a new event or answering `[]` when
//! none comes, and out-of-range parameters refused without effect.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

fn positions(events: &Value) -> Vec<u64> {
    events
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["position"].as_u64().expect("a position"))
        .collect()
}

async fn only_admins_read_the_feed(store: &Backend) {
    let server = store.start().await;
    for role in ["TEMP_USER", "CUSTOMER", "AGENT"] {
        let token = server.token("someone", role);
        let reply = server.get("/api/v1/events", &token).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    let reply = server.get("/api/v1/events", "not-a-token").await;
    assert_eq!(reply.0, StatusCode::UNAUTHORIZED);
}

async fn paging_covers_every_event_once_in_log_order(store: &Backend) {
    let server = store.start().await;
    let admin = server.token("ada", "ADMIN");
    let customer = server.token("cy", "CUSTOMER");
    for t in 0..3 {
        let ticket = server.create_ticket(&customer, &format!("T{t}"), "d").await;
        let id = ticket["id"].as_str().unwrap().to_string();
        for m in 0..4 {
            server.post_message(&customer, &id, &format!("m{m}")).await;
        }
    }
    // 3 openings and 12 messages.
    let (first, _, all) = server.get("/api/v1/events?limit=1000", &admin).await;
    assert_eq!(first, StatusCode::OK);
    assert_eq!(positions(&all), (1..=15).collect::<Vec<_>>());
    assert_eq!(all[0]["type"], "TicketOpened");
    assert_eq!(all[1]["type"], "MessagePosted");
    assert!(all[1]["hash"].as_str().is_some_and(|h| !h.is_empty()));

    let mut seen = Vec::new();
    let mut next = Some("/api/v1/events?limit=4".to_string());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let (status, headers, page) = server.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        pages += 1;
        assert!(pages <= 5, "the pages never end");
        seen.extend(page.as_array().unwrap().iter().cloned());
        next = next_link(&headers);
        if page.as_array().unwrap().len() < 4 {
            assert_eq!(next, None, "a short page is the last");
        }
    }
    assert_eq!(
        Value::Array(seen),
        all,
        "paging gives every event once, in order"
    );

    let (_, headers, tail) = server.get("/api/v1/events?after=13", &admin).await;
    assert_eq!(positions(&tail), vec![14, 15]);
    assert_eq!(next_link(&headers), None);
    let (_, _, beyond) = server.get("/api/v1/events?after=99", &admin).await;
    assert_eq!(beyond, Value::Array(vec![]));
    // Beyond the head there is nothing to wait for: a 30 s long poll answers within the
    // request's 10 s limit, or this fails.
    let quick = server
        .client
        .get(server.url("/api/v1/events?after=99&wait=30"))
        .bearer_auth(&admin)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .expect("a long poll beyond the head answers at once");
    assert_eq!(quick.status(), StatusCode::OK);
}

async fn a_long_poll_wakes_on_a_new_event_and_times_out_empty(store: &Backend) {
    let server = store.start().await;
    let admin = server.token("ada", "ADMIN");
    let customer = server.token("cy", "CUSTOMER");
    server.create_ticket(&customer, "T", "d").await;

    let started = Instant::now();
    let (status, _, empty) = server.get("/api/v1/events?after=1&wait=1", &admin).await;
    assert_eq!((status, empty), (StatusCode::OK, Value::Array(vec![])));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "wait=1 held the request for {:?}",
        started.elapsed()
    );

    let api = (*server).clone();
    let token = admin.clone();
    let poll = tokio::spawn(async move { api.get("/api/v1/events?after=1&wait=30", &token).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "the long poll answered before any event"
    );
    let ticket = server.create_ticket(&customer, "T2", "d").await;
    let (status, _, events) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long poll woke up")
        .expect("the task ran");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(positions(&events), vec![2]);
    assert_eq!(events[0]["stream_id"], ticket["id"]);
}

async fn out_of_range_parameters_are_refused(store: &Backend) {
    let server = store.start().await;
    let admin = server.token("ada", "ADMIN");
    for (query, location) in [
        ("limit=0", "query.limit"),
        ("limit=1001", "query.limit"),
        ("limit=ten", "query.limit"),
        ("wait=31", "query.wait"),
        ("wait=-1", "query.wait"),
        ("wait=1.5", "query.wait"),
        ("after=-1", "query.after"),
        ("after=9223372036854775808", "query.after"),
        ("after=%2B5", "query.after"),
    ] {
        let reply = server.get(&format!("/api/v1/events?{query}"), &admin).await;
        assert_field_error(&reply, location, "invalid_query");
    }
}

on_both_stores!(
    only_admins_read_the_feed,
    paging_covers_every_event_once_in_log_order,
    a_long_poll_wakes_on_a_new_event_and_times_out_empty,
    out_of_range_parameters_are_refused,
);
