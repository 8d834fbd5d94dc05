//! Issue 17 parts 2 and 3 from outside, on both stores: a customer rates their closed ticket
//! once (and nobody else may); staff see the first answer and the service levels, customers do
//! not; the due times follow level changes and reopens; the sweeper records a missed target
//! once (with `NORMAL:0.05`, 3 s) and the `sla` filters find it; `ticketd replay` gives the same
//! Ticket Objects.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const MIN: i64 = 60_000;

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn rate(server: &TestServer, token: &str, id: &str, body: Value) -> Reply {
    server
        .post_json(&format!("/api/v1/tickets/{id}/feedback"), token, body)
        .await
}

async fn ticket(server: &TestServer, token: &str, id: &str) -> Value {
    let (status, _, body) = server.get(&format!("/api/v1/tickets/{id}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn listed(server: &TestServer, token: &str, query: &str) -> Vec<String> {
    let (status, _, body) = server.get(&format!("/api/v1/tickets?{query}"), token).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body_ids(&body)
}

async fn feedback_rules_and_statuses(store: &Backend) {
    let server = store.start().await;
    let ann = mint("ann", "CUSTOMER");
    let bob = mint("bob", "CUSTOMER");
    let agent = mint("agent", "AGENT");
    let admin = mint("admin", "ADMIN");
    let t = server.create_ticket(&ann, "Printer", "It jams").await;
    let id = id_of(&t);
    assert_eq!(t["feedback"], Value::Null, "a new ticket has no feedback");

    let good = json!({"rating": 4, "comment": "Quick <b>and</b> kind"});
    assert_error(
        &rate(&server, &ann, &id, good.clone()).await,
        StatusCode::CONFLICT,
        "CONFLICT",
    );
    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK);

    for (who, token) in [("agent", &agent), ("admin", &admin), ("bob", &bob)] {
        let reply = rate(&server, token, &id, good.clone()).await;
        assert_eq!(reply.0, StatusCode::FORBIDDEN, "{who}: {}", reply.2);
    }
    for bad in [
        json!({"rating": 0}),
        json!({"rating": 6}),
        json!({"rating": "5"}),
        json!({"rating": 2.5}),
    ] {
        assert_field_error(
            &rate(&server, &ann, &id, bad).await,
            "rating",
            "invalid_value",
        );
    }
    assert_field_error(
        &rate(&server, &ann, &id, json!({})).await,
        "rating",
        "missing",
    );
    let long = "x".repeat(1_001);
    assert_field_error(
        &rate(&server, &ann, &id, json!({"rating": 3, "comment": long})).await,
        "comment",
        "too_long",
    );
    assert_field_error(
        &rate(&server, &ann, &id, json!({"rating": 3, "stars": 2})).await,
        "stars",
        "unknown_field",
    );
    assert_eq!(
        ticket(&server, &ann, &id).await["feedback"],
        Value::Null,
        "refusals change nothing"
    );
    let missing = "01890000-0000-7000-8000-000000000000";
    assert_eq!(
        rate(&server, &ann, missing, good.clone()).await.0,
        StatusCode::NOT_FOUND
    );

    let (status, _, rated) = rate(&server, &ann, &id, good.clone()).await;
    assert_eq!(status, StatusCode::OK, "{rated}");
    assert_eq!(rated["feedback"]["rating"], 4);
    assert_eq!(rated["feedback"]["comment"], "Quick <b>and</b> kind");
    assert!(rated["feedback"]["created_at"].as_i64().unwrap() >= t["created_at"].as_i64().unwrap());
    assert!(rated.get("sla").is_none() && rated.get("first_response_at").is_none());
    assert_eq!(
        ticket(&server, &agent, &id).await["feedback"],
        rated["feedback"]
    );

    // Once ever: again, and after a reopen and a new close.
    let again = json!({"rating": 1});
    assert_error(
        &rate(&server, &ann, &id, again.clone()).await,
        StatusCode::CONFLICT,
        "CONFLICT",
    );
    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{id}/reopen"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &rate(&server, &ann, &id, again).await,
        StatusCode::CONFLICT,
        "CONFLICT",
    );
    assert_eq!(ticket(&server, &ann, &id).await["feedback"]["rating"], 4);

    // Without a comment, the comment is null.
    let other = server.create_ticket(&bob, "Scanner", "Dead").await;
    let other = id_of(&other);
    server
        .post_empty(&format!("/api/v1/tickets/{other}/close"), &agent)
        .await;
    let (status, _, rated) = rate(&server, &bob, &other, json!({"rating": 5})).await;
    assert_eq!(status, StatusCode::OK, "{rated}");
    assert_eq!(rated["feedback"]["comment"], Value::Null);
    let events = server
        .get(&format!("/api/v1/tickets/{other}/events"), &admin)
        .await
        .2;
    let list = events.get("events").cloned().unwrap_or(events);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "FeedbackGiven" && e["data"]["rating"] == 5),
        "{list}"
    );
}

async fn service_levels_are_for_staff_and_follow_level_and_reopen(store: &Backend) {
    let env = [
        ("SLA_FIRST_RESPONSE_MINUTES", "NORMAL:60,URGENT:10"),
        ("SLA_RESOLUTION_MINUTES", "NORMAL:600,URGENT:120"),
    ];
    let server = store.start_with(&env).await;
    let ann = mint("ann", "CUSTOMER");
    let agent = mint("agent", "AGENT");
    let opened = server.create_ticket(&ann, "Printer", "It jams").await;
    let id = id_of(&opened);
    let at = opened["created_at"].as_i64().unwrap();
    assert!(opened.get("sla").is_none() && opened.get("first_response_at").is_none());

    let seen = ticket(&server, &agent, &id).await;
    assert_eq!(seen["first_response_at"], Value::Null);
    assert_eq!(
        seen["sla"],
        json!({"first_response_due_at": at + 60 * MIN, "resolution_due_at": at + 600 * MIN,
               "breached": []})
    );
    // An internal note is no answer; a public staff message is.
    let note = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &agent,
            json!({"content": "looking", "internal": true}),
        )
        .await;
    assert_eq!(note.0, StatusCode::OK, "{}", note.2);
    assert_eq!(
        ticket(&server, &agent, &id).await["first_response_at"],
        Value::Null
    );
    let answer = server.post_message(&agent, &id, "Try this").await;
    server.post_message(&agent, &id, "And this").await;
    let seen = ticket(&server, &agent, &id).await;
    assert_eq!(seen["first_response_at"], answer["created_at"]);

    // A level change recomputes from the opening, and the met due time stays.
    let (status, _, patched) = server
        .patch_json(
            &format!("/api/v1/tickets/{id}"),
            &agent,
            json!({"issue_level": "URGENT"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["sla"]["first_response_due_at"], at + 10 * MIN);
    assert_eq!(patched["sla"]["resolution_due_at"], at + 120 * MIN);

    // A reopen counts the resolution from the reopen.
    server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &agent)
        .await;
    let (status, _, reopened) = server
        .post_empty(&format!("/api/v1/tickets/{id}/reopen"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK, "{reopened}");
    let reopened_at = reopened["updated_at"].as_i64().unwrap();
    assert_eq!(
        reopened["sla"]["resolution_due_at"],
        reopened_at + 120 * MIN
    );
    assert_eq!(reopened["sla"]["first_response_due_at"], at + 10 * MIN);

    // The customer's every view is without them: ticket, listing.
    let mine = server.get("/api/v1/tickets", &ann).await.2;
    for t in mine
        .as_array()
        .unwrap()
        .iter()
        .chain([&ticket(&server, &ann, &id).await])
    {
        assert!(
            t.get("sla").is_none() && t.get("first_response_at").is_none(),
            "{t}"
        );
    }
    // Listing by level finds it for staff, with the fields.
    let staff_list = server
        .get("/api/v1/tickets?issue_level=URGENT", &agent)
        .await
        .2;
    assert_eq!(staff_list[0]["sla"], reopened["sla"]);

    // Without targets, staff see `sla: null`.
    let plain = store.restart(server).await;
    let seen = ticket(&plain, &agent, &id).await;
    assert_eq!(seen["sla"], Value::Null);
    assert_eq!(seen["first_response_at"], answer["created_at"]);
}

async fn a_missed_target_is_recorded_once_and_filtered(store: &Backend) {
    let env = [
        ("SLA_FIRST_RESPONSE_MINUTES", "NORMAL:0.05"),
        ("SLA_RESOLUTION_MINUTES", "NORMAL:600"),
    ];
    let server = store.start_with(&env).await;
    let ann = mint("ann", "CUSTOMER");
    let agent = mint("agent", "AGENT");
    let late = id_of(&server.create_ticket(&ann, "Late", "Nobody answers").await);
    let fine = id_of(&server.create_ticket(&ann, "Fine", "Answered").await);
    server.post_message(&agent, &fine, "On it").await;

    assert_eq!(
        listed(&server, &agent, "sla=due_within:1").await,
        vec![late.clone()]
    );
    assert!(
        listed(&server, &agent, "sla=due_within:700")
            .await
            .contains(&fine)
    );
    assert!(listed(&server, &agent, "sla=breached").await.is_empty());
    for bad in [
        "sla=soon",
        "sla=due_within:",
        "sla=due_within:x",
        "sla=due_within:-1",
    ] {
        assert_field_error(
            &server.get(&format!("/api/v1/tickets?{bad}"), &agent).await,
            "query.sla",
            "invalid_query",
        );
    }
    assert_error(
        &server.get("/api/v1/tickets?sla=breached", &ann).await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    );

    // The sweeper records the miss soon after the 3 s due time.
    let deadline = Instant::now() + Duration::from_secs(20);
    let breached = loop {
        let seen = ticket(&server, &agent, &late).await;
        if seen["sla"]["breached"] == json!(["first_response"]) {
            break seen;
        }
        assert!(Instant::now() < deadline, "no breach recorded: {seen}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        ticket(&server, &agent, &fine).await["sla"]["breached"],
        json!([])
    );
    assert_eq!(
        listed(&server, &agent, "sla=breached").await,
        vec![late.clone()]
    );
    assert!(listed(&server, &agent, "sla=due_within:1").await.is_empty());
    assert!(
        !listed(&server, &agent, "sla=due_within:700")
            .await
            .contains(&late)
    );
    // Answering late keeps the breach; more sweeps record nothing more.
    server.post_message(&agent, &late, "Sorry").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let admin = mint("admin", "ADMIN");
    let events = server
        .get(&format!("/api/v1/tickets/{late}/events"), &admin)
        .await
        .2;
    let list = events.get("events").cloned().unwrap_or(events);
    let records: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "SlaBreached")
        .collect();
    assert_eq!(records.len(), 1, "{list}");
    assert_eq!(records[0]["data"]["target"], "first_response");
    assert_eq!(
        records[0]["data"]["due_at"],
        breached["sla"]["first_response_due_at"]
    );
    assert_eq!(records[0]["actor"]["id"], "system");

    // `ticketd replay` rebuilds the same Ticket Objects.
    let before = (
        ticket(&server, &agent, &late).await,
        ticket(&server, &agent, &fine).await,
        listed(&server, &agent, "sla=breached").await,
    );
    let dir = server.stop().await;
    let mongo = store.current_mongo();
    ticketd_cli(dir.path(), mongo.as_ref(), &["replay"], true);
    let server = match &mongo {
        None => TestServer::start_in(dir, &env).await,
        Some(mongo) => TestServer::start_mongo(mongo, &env).await,
    };
    let after = (
        ticket(&server, &agent, &late).await,
        ticket(&server, &agent, &fine).await,
        listed(&server, &agent, "sla=breached").await,
    );
    assert_eq!(before, after);
}

on_both_stores!(
    feedback_rules_and_statuses,
    service_levels_are_for_staff_and_follow_level_and_reopen,
    a_missed_target_is_recorded_once_and_filtered,
);
