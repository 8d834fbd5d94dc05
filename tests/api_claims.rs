//! Claim, release, assign and tag, seen from outside on both stores: who may do what, what each
//! answer and every later read shows (the holder to everyone, the tags to staff only), the
//! listing's filters, and bad input refused without effect.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// A token whose username differs from its id, so names and ids cannot be confused.
fn named(id: &str, username: &str, role: &str) -> String {
    sign_claims(
        &json!({"id": id, "username": username, "email": format!("{id}@example.com"),
                "role": role, "iat": now_secs()}),
        SECRET,
    )
}

fn holder(ticket: &Value) -> (Value, Value) {
    (
        ticket["assignee_id"].clone(),
        ticket["assignee_name"].clone(),
    )
}

async fn claiming_and_releasing(store: &Backend) {
    let server = store.start().await;
    let ann = named("ann", "Ann", "CUSTOMER");
    let ada = named("ada", "Ada Agent", "AGENT");
    let bob = named("bob", "Bob Agent", "AGENT");
    let root = named("root", "Root Admin", "ADMIN");
    let ticket = server.create_ticket(&ann, "Printer", "On fire").await;
    let id = id_of(&ticket);
    assert_eq!(
        holder(&ticket),
        (Value::Null, Value::Null),
        "nobody holds a new ticket"
    );
    let claim = format!("/api/v1/tickets/{id}/claim");
    let unclaim = format!("/api/v1/tickets/{id}/unclaim");

    for path in [&claim, &unclaim] {
        let reply = server.post_empty(path, &ann).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    let (status, _, claimed) = server.post_empty(&claim, &ada).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(holder(&claimed), (json!("ada"), json!("Ada Agent")));
    let (status, _, again) = server.post_empty(&claim, &ada).await;
    assert_eq!(
        (status, holder(&again)),
        (StatusCode::OK, holder(&claimed)),
        "a claim of my own ticket is a no-op"
    );
    let (_, _, seen) = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_eq!(
        holder(&seen),
        (json!("ada"), json!("Ada Agent")),
        "the customer sees who holds it"
    );

    let taken = server.post_empty(&claim, &bob).await;
    assert_error(&taken, StatusCode::CONFLICT, "CONFLICT");
    assert!(
        taken.2["message"].as_str().unwrap().contains("Ada Agent"),
        "{}",
        taken.2
    );
    let released_by_other = server.post_empty(&unclaim, &bob).await;
    assert_error(&released_by_other, StatusCode::FORBIDDEN, "FORBIDDEN");

    let (status, _, taken_over) = server.post_empty(&claim, &root).await;
    assert_eq!(
        (status, holder(&taken_over)),
        (StatusCode::OK, (json!("root"), json!("Root Admin"))),
        "an admin takes over"
    );
    let (status, _, released) = server.post_empty(&unclaim, &root).await;
    assert_eq!(
        (status, holder(&released)),
        (StatusCode::OK, (Value::Null, Value::Null))
    );
    let (status, _, nothing) = server.post_empty(&unclaim, &ada).await;
    assert_eq!(
        (status, holder(&nothing)),
        (StatusCode::OK, (Value::Null, Value::Null)),
        "releasing nobody's ticket is a no-op"
    );

    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK);
    let closed = server.post_empty(&claim, &ada).await;
    assert_error(&closed, StatusCode::CONFLICT, "CONFLICT");
    let unknown = server
        .post_empty(
            "/api/v1/tickets/0190a000-0000-7000-8000-000000000000/claim",
            &ada,
        )
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND");
}

async fn assigning_by_patch(store: &Backend) {
    let server = store.start().await;
    let ann = named("ann", "Ann", "CUSTOMER");
    let ada = named("ada", "Ada Agent", "AGENT");
    let bob = named("bob", "Bob Agent", "AGENT");
    let root = named("root", "Root Admin", "ADMIN");
    let ticket = server.create_ticket(&ann, "Printer", "On fire").await;
    let id = id_of(&ticket);
    let path = format!("/api/v1/tickets/{id}");
    // Bob acts once, so ticketd knows his name.
    server.post_message(&bob, &id, "looking").await;

    let reply = server
        .patch_json(&path, &ann, json!({"assignee_id": "ada"}))
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, _, to_bob) = server
        .patch_json(&path, &ada, json!({"assignee_id": "bob"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{to_bob}");
    assert_eq!(
        holder(&to_bob),
        (json!("bob"), json!("Bob Agent")),
        "a known id shows the name it acted under"
    );
    let reply = server
        .patch_json(&path, &ada, json!({"assignee_id": "ada"}))
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, _, to_stranger) = server
        .patch_json(&path, &root, json!({"assignee_id": "never-seen"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{to_stranger}");
    assert_eq!(
        holder(&to_stranger),
        (json!("never-seen"), json!("never-seen")),
        "an unknown id shows itself"
    );
    let (status, _, nobody) = server
        .patch_json(&path, &root, json!({"assignee_id": null}))
        .await;
    assert_eq!(
        (status, holder(&nobody)),
        (StatusCode::OK, (Value::Null, Value::Null))
    );

    for (body, location, kind) in [
        (
            json!({"assignee_id": "x".repeat(129)}),
            "assignee_id",
            "too_long",
        ),
        (json!({"assignee_id": ""}), "assignee_id", "empty"),
        (json!({"assignee_id": 7}), "assignee_id", "type"),
    ] {
        let reply = server.patch_json(&path, &root, body).await;
        assert_field_error(&reply, location, kind);
    }
    let (_, _, after) = server.get(&path, &root).await;
    assert_eq!(
        holder(&after),
        (Value::Null, Value::Null),
        "refused input changed nothing"
    );
    let (status, _, long) = server
        .patch_json(&path, &root, json!({"assignee_id": "y".repeat(128)}))
        .await;
    assert_eq!(status, StatusCode::OK, "128 characters is an id: {long}");
}

async fn filtering_by_holder(store: &Backend) {
    let server = store.start().await;
    let ann = named("ann", "Ann", "CUSTOMER");
    let ada = named("ada", "Ada Agent", "AGENT");
    let bob = named("bob", "Bob Agent", "AGENT");
    let mut ids = Vec::new();
    for topic in ["one", "two", "three"] {
        ids.push(id_of(&server.create_ticket(&ann, topic, "d").await));
    }
    server
        .post_empty(&format!("/api/v1/tickets/{}/claim", ids[0]), &ada)
        .await;
    server
        .post_empty(&format!("/api/v1/tickets/{}/claim", ids[1]), &bob)
        .await;
    let listed = |query: &'static str, token: String| {
        let server = &server;
        async move {
            let (status, _, body) = server
                .get(&format!("/api/v1/tickets?{query}"), &token)
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body_ids(&body)
        }
    };
    assert_eq!(
        listed("assignee_id=me", ada.clone()).await,
        [ids[0].clone()]
    );
    assert_eq!(
        listed("assignee_id=bob", ada.clone()).await,
        [ids[1].clone()]
    );
    assert_eq!(
        listed("assignee_id=none", ada.clone()).await,
        [ids[2].clone()]
    );
    assert_eq!(
        listed("assignee_id=ada", ann.clone()).await,
        [ids[0].clone()],
        "a customer filters their own tickets"
    );
    assert_eq!(
        listed("assignee_id=", ada.clone()).await.len(),
        3,
        "empty is no filter"
    );
    let reply = server
        .get(
            &format!("/api/v1/tickets?assignee_id={}", "x".repeat(129)),
            &ada,
        )
        .await;
    assert_field_error(&reply, "query.assignee_id", "invalid_query");
}

async fn tags_for_staff_only(store: &Backend) {
    let server = store.start().await;
    let ann = named("ann", "Ann", "CUSTOMER");
    let ada = named("ada", "Ada Agent", "AGENT");
    let first = server.create_ticket(&ann, "one", "d").await;
    let second = server.create_ticket(&ann, "two", "d").await;
    assert!(
        first.get("tags").is_none(),
        "a customer's answer has no tags: {first}"
    );
    let path = |t: &Value| format!("/api/v1/tickets/{}", id_of(t));

    let (status, _, tagged) = server
        .patch_json(
            &path(&first),
            &ada,
            json!({"tags": ["VIP", "billing", "vip"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tagged}");
    assert_eq!(
        tagged["tags"],
        json!(["vip", "billing"]),
        "lower-case, order kept, once each"
    );
    let (_, _, by_staff) = server.get(&path(&first), &ada).await;
    assert_eq!(by_staff["tags"], json!(["vip", "billing"]));
    assert_eq!(
        by_staff["updated_at"], first["updated_at"],
        "tags alone do not touch updated_at"
    );
    server
        .patch_json(&path(&second), &ada, json!({"tags": ["billing"]}))
        .await;

    let (_, _, by_owner) = server.get(&path(&first), &ann).await;
    assert!(
        by_owner.get("tags").is_none(),
        "the owner never sees tags: {by_owner}"
    );
    let (_, _, owner_list) = server.get("/api/v1/tickets", &ann).await;
    assert!(
        owner_list
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("tags").is_none()),
        "{owner_list}"
    );
    let reply = server
        .patch_json(&path(&first), &ann, json!({"tags": ["mine"]}))
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");

    let listed = |query: String| {
        let server = &server;
        let ada = ada.clone();
        async move {
            let (status, _, body) = server.get(&format!("/api/v1/tickets?{query}"), &ada).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body_ids(&body)
        }
    };
    assert_eq!(
        listed("tag=billing".into()).await,
        [id_of(&second), id_of(&first)]
    );
    assert_eq!(
        listed("tag=BILLING&tag=vip".into()).await,
        [id_of(&first)],
        "every tag must match, any case"
    );
    assert!(listed("tag=nothing".into()).await.is_empty());
    let reply = server.get("/api/v1/tickets?tag=vip", &ann).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = server.get("/api/v1/tickets?tag=a%20b", &ada).await;
    assert_field_error(&reply, "query.tag", "invalid_query");

    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    for (body, location, kind) in [
        (
            json!({"tags": ["ok", "not ok"]}),
            "tags[1]",
            "invalid_value",
        ),
        (json!({"tags": ["café"]}), "tags[0]", "invalid_value"),
        (
            json!({"tags": ["x".repeat(33)]}),
            "tags[0]",
            "invalid_value",
        ),
        (json!({"tags": [""]}), "tags[0]", "invalid_value"),
        (json!({"tags": [1]}), "tags[0]", "type"),
        (json!({"tags": "vip"}), "tags", "type"),
        (json!({"tags": eleven}), "tags", "too_many"),
    ] {
        let reply = server.patch_json(&path(&first), &ada, body).await;
        assert_field_error(&reply, location, kind);
    }
    let (_, _, unchanged) = server.get(&path(&first), &ada).await;
    assert_eq!(
        unchanged["tags"],
        json!(["vip", "billing"]),
        "refused input changed nothing"
    );
    let (status, _, cleared) = server
        .patch_json(&path(&first), &ada, json!({"tags": []}))
        .await;
    assert_eq!(
        (status, cleared["tags"].clone()),
        (StatusCode::OK, json!([]))
    );
    assert!(
        listed("tag=vip".into()).await.is_empty(),
        "an untagged ticket leaves the filter"
    );
}

on_both_stores!(
    claiming_and_releasing,
    assigning_by_patch,
    filtering_by_holder,
    tags_for_staff_only,
);
