//! `MAX_OPEN_TICKETS_PER_USER`, seen from outside on both stores: past the limit `POST
//! /api/v1/tickets` answers 409 saying how many are open, a close frees a slot, an
//! `Idempotency-Key` retry of a ticket that did open still answers 200 with it, concurrent opens
//! at the limit never all land, staff count too, and two servers on one MongoDB share the count.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn open(server: &TestServer, token: &str, topic: &str) -> Reply {
    server
        .post_json(
            "/api/v1/tickets",
            token,
            json!({"topic": topic, "description": "Something is wrong"}),
        )
        .await
}

fn assert_limited(reply: &Reply, open: u64) {
    assert_error(reply, StatusCode::CONFLICT, "CONFLICT");
    let message = reply.2["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("You have {open} open tickets")) && message.contains("is 2"),
        "the refusal says how many are open and the limit: {message}"
    );
}

async fn the_limit_refuses_frees_and_keeps_retries(store: &Backend) {
    let server = store
        .start_with(&[("MAX_OPEN_TICKETS_PER_USER", "2")])
        .await;
    let ann = server.token("ann", "CUSTOMER");
    let bob = server.token("bob", "CUSTOMER");
    let root = server.token("root", "ADMIN");

    let (status, _, first) = server.create_ticket_keyed(&ann, "key-1", "First").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let second = server.create_ticket(&ann, "Second", "Also wrong").await;
    assert_limited(&open(&server, &ann, "Third").await, 2);

    // A retry of an opening that landed is answered with that ticket, limit or not.
    let (status, _, retried) = server.create_ticket_keyed(&ann, "key-1", "First").await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(id_of(&retried), id_of(&first));
    // A new key is a new ticket, and is refused.
    assert_limited(&server.create_ticket_keyed(&ann, "key-2", "Other").await, 2);

    // Someone else has slots of their own.
    server.create_ticket(&bob, "Bob's", "Mine").await;

    // A close frees a slot, for exactly one more.
    let (status, _, closed) = server
        .post_empty(&format!("/api/v1/tickets/{}/close", id_of(&second)), &ann)
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    let (status, _, third) = open(&server, &ann, "Third").await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_limited(&open(&server, &ann, "Fourth").await, 2);

    // A reopen by staff is not refused: staff decided it; it counts from then on.
    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{}/reopen", id_of(&second)), &root)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_limited(&open(&server, &ann, "Fifth").await, 3);

    // Staff are held to it as well.
    open(&server, &root, "Staff one").await;
    open(&server, &root, "Staff two").await;
    assert_limited(&open(&server, &root, "Staff three").await, 2);

    let (_, _, listed) = server
        .get("/api/v1/tickets?status=OPEN&user_id=ann", &ann)
        .await;
    assert_eq!(body_ids(&listed).len(), 3, "{listed}");
    server.stop().await;
}

async fn concurrent_opens_at_the_limit_never_all_land(store: &Backend) {
    let server = store
        .start_with(&[("MAX_OPEN_TICKETS_PER_USER", "2")])
        .await;
    let ann = server.token("ann", "CUSTOMER");
    server.create_ticket(&ann, "First", "One").await;
    let replies = futures_util::future::join_all(
        (0..6).map(|i| open(&server, &ann, if i % 2 == 0 { "Even" } else { "Odd" })),
    )
    .await;
    let landed = replies
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::OK)
        .count();
    for reply in replies.iter().filter(|r| r.0 != StatusCode::OK) {
        assert_limited(reply, 2);
    }
    assert_eq!(landed, 1, "one slot was left");
    server.stop().await;
}

on_both_stores!(
    the_limit_refuses_frees_and_keeps_retries,
    concurrent_opens_at_the_limit_never_all_land,
);

/// Two servers on one MongoDB database: openings racing through both never exceed the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_count() {
    let Some(mongo) = TestMongo::new("open_limit_two_instances") else {
        return;
    };
    let env = [("MAX_OPEN_TICKETS_PER_USER", "3")];
    let a = TestServer::start_mongo(&mongo, &env).await;
    let b = TestServer::start_mongo(&mongo, &env).await;
    let ann = a.token("ann", "CUSTOMER");
    for round in 0..3 {
        let replies = futures_util::future::join_all((0..8).map(|i| {
            let server = if i % 2 == 0 { &a } else { &b };
            open(server, &ann, "Racing")
        }))
        .await;
        let landed = replies.iter().filter(|r| r.0 == StatusCode::OK).count();
        assert_eq!(landed, 3, "round {round}: exactly the limit lands");
        // Close them again for the next round.
        let (_, _, listed) = a.get("/api/v1/tickets?status=OPEN&user_id=ann", &ann).await;
        let open_ids = body_ids(&listed);
        assert_eq!(open_ids.len(), 3, "round {round}: {listed}");
        for id in open_ids {
            let (status, _, _) = b
                .post_empty(&format!("/api/v1/tickets/{id}/close"), &ann)
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    a.stop().await;
    b.stop().await;
    mongo.drop_database().await;
}
