//! Saved replies and blocks (issue 15, parts 3 and 4), seen from outside on both stores: who
//! may read and change them, their answers and order, bad input refused without effect, and a
//! blocked customer refused exactly the open, post and edit, until unblocked.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn put(server: &TestServer, path: &str, token: &str, body: Option<Value>) -> Reply {
    server
        .request(Method::PUT, path, Some(token), body.as_ref())
        .await
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

async fn saved_replies(store: &Backend) {
    let server = store.start().await;
    let root = server.token("root", "ADMIN");
    let ada = server.token("ada", "AGENT");
    let ann = server.token("ann", "CUSTOMER");

    let (status, _, empty) = server.get("/api/v1/replies", &ada).await;
    assert_eq!((status, empty), (StatusCode::OK, json!([])));

    let before = now_ms();
    let (status, _, saved) = put(
        &server,
        "/api/v1/replies/Refund",
        &root,
        Some(json!({"content": "We refunded you."})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(keys(&saved), ["name", "content", "updated_at"]);
    assert_eq!(saved["name"], "refund", "names are stored lower-case");
    assert_eq!(saved["content"], "We refunded you.");
    assert!(saved["updated_at"].as_i64().unwrap() >= before);
    for (name, content) in [("greeting", "Hello!"), ("a-b_c", "Letters")] {
        let (status, _, _) = put(
            &server,
            &format!("/api/v1/replies/{name}"),
            &root,
            Some(json!({"content": content})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, replaced) = put(
        &server,
        "/api/v1/replies/REFUND",
        &root,
        Some(json!({"content": "Refund sent."})),
    )
    .await;
    assert_eq!(
        (status, replaced["content"].clone()),
        (StatusCode::OK, json!("Refund sent."))
    );

    let (status, _, list) = server.get("/api/v1/replies", &ada).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        names(&list),
        ["a-b_c", "greeting", "refund"],
        "sorted by name"
    );
    assert_eq!(list[2]["content"], "Refund sent.");

    // Customers never see them; agents may read but not change them.
    assert_error(
        &server.get("/api/v1/replies", &ann).await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    );
    for token in [&ann, &ada] {
        let reply = put(
            &server,
            "/api/v1/replies/x",
            token,
            Some(json!({"content": "no"})),
        )
        .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
        let reply = server.delete("/api/v1/replies/refund", token).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    }

    // Bad input: a 400 naming each field, and nothing changes.
    let long_name = format!("/api/v1/replies/{}", "n".repeat(33));
    for (path, body, location, kind) in [
        (
            "/api/v1/replies/bad.name",
            json!({"content": "x"}),
            "path.name",
            "invalid_value",
        ),
        (
            long_name.as_str(),
            json!({"content": "x"}),
            "path.name",
            "invalid_value",
        ),
        ("/api/v1/replies/ok", json!({}), "content", "missing"),
        (
            "/api/v1/replies/ok",
            json!({"content": "  "}),
            "content",
            "empty",
        ),
        (
            "/api/v1/replies/ok",
            json!({"content": "x".repeat(4001)}),
            "content",
            "too_long",
        ),
        (
            "/api/v1/replies/ok",
            json!({"content": 5}),
            "content",
            "type",
        ),
        (
            "/api/v1/replies/ok",
            json!({"content": "x", "extra": 1}),
            "extra",
            "unknown_field",
        ),
        (
            "/api/v1/replies/bad.name",
            json!({"content": ""}),
            "content",
            "empty",
        ),
    ] {
        let reply = put(&server, path, &root, Some(body)).await;
        assert_field_error(&reply, location, kind);
    }
    let reply = put(&server, "/api/v1/replies/ok", &root, None).await;
    assert_field_error(&reply, "body", "missing");
    let (_, _, after) = server.get("/api/v1/replies", &root).await;
    assert_eq!(after, list, "refused input changed nothing");
    let (status, _, ok) = put(
        &server,
        "/api/v1/replies/ok",
        &root,
        Some(json!({"content": "x".repeat(4000)})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "4,000 characters fit: {ok}");
    let (status, _, _) = server.delete("/api/v1/replies/ok", &root).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Delete: 204, then 404 for a name no longer (or never) there.
    let (status, _, _) = server.delete("/api/v1/replies/Greeting", &root).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for name in ["greeting", "never"] {
        let reply = server
            .delete(&format!("/api/v1/replies/{name}"), &root)
            .await;
        assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    }
    let reply = server.delete("/api/v1/replies/bad.name", &root).await;
    assert_field_error(&reply, "path.name", "invalid_value");
    let (_, _, list) = server.get("/api/v1/replies", &ada).await;
    assert_eq!(names(&list), ["a-b_c", "refund"]);

    // They are events: the changes feed shows them, outside any ticket.
    let (_, _, feed) = server.get("/api/v1/events?limit=1000", &root).await;
    let replies: Vec<(&str, &str)> = feed
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stream_id"] == "replies")
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        replies,
        [
            ("ReplySaved", "refund"),
            ("ReplySaved", "greeting"),
            ("ReplySaved", "a-b_c"),
            ("ReplySaved", "refund"),
            ("ReplySaved", "ok"),
            ("ReplyDeleted", "ok"),
            ("ReplyDeleted", "greeting"),
        ]
    );

    // And the read model survives a restart.
    let server = store.restart(server).await;
    let (_, _, again) = server.get("/api/v1/replies", &ada).await;
    assert_eq!(names(&again), ["a-b_c", "refund"]);
}

async fn blocking_a_customer(store: &Backend) {
    let server = store.start().await;
    let root = server.token("root", "ADMIN");
    let ada = server.token("ada", "AGENT");
    let ann = server.token("ann", "CUSTOMER");
    let bob = server.token("bob", "CUSTOMER");

    let ticket = server.create_ticket(&ann, "Printer", "On fire").await;
    let id = ticket["id"].as_str().unwrap().to_string();
    let first = server.post_message(&ann, &id, "first").await;
    let second = server.post_message(&ann, &id, "second").await;
    let message = |m: &Value| {
        format!(
            "/api/v1/tickets/{id}/messages/{}",
            m["id"].as_str().unwrap()
        )
    };

    // Only an admin blocks; customers may not even list.
    let reply = put(&server, "/api/v1/blocks/ann", &ada, None).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = put(&server, "/api/v1/blocks/ann", &bob, None).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_error(
        &server.get("/api/v1/blocks", &ann).await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    );

    let before = now_ms();
    let (status, _, block) = put(
        &server,
        "/api/v1/blocks/ann",
        &root,
        Some(json!({"reason": "Abusive language"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{block}");
    assert_eq!(keys(&block), ["user_id", "reason", "created_at"]);
    assert_eq!(
        (block["user_id"].clone(), block["reason"].clone()),
        (json!("ann"), json!("Abusive language"))
    );
    assert!(block["created_at"].as_i64().unwrap() >= before);
    let (status, _, without) = put(&server, "/api/v1/blocks/zed", &root, None).await;
    assert_eq!(
        (status, without["reason"].clone()),
        (StatusCode::OK, Value::Null),
        "the reason is optional"
    );
    let (status, _, list) = server.get("/api/v1/blocks", &ada).await;
    assert_eq!(status, StatusCode::OK);
    let blocked: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(blocked, ["ann", "zed"], "staff list the blocks by user id");

    // Refused: opening, posting, editing.
    let refused = [
        server
            .post_json(
                "/api/v1/tickets",
                &ann,
                json!({"topic": "Again", "description": "x"}),
            )
            .await,
        server
            .post_json(
                &format!("/api/v1/tickets/{id}/messages"),
                &ann,
                json!({"content": "hello?"}),
            )
            .await,
        server
            .patch_json(&message(&first), &ann, json!({"content": "edited"}))
            .await,
    ];
    for reply in &refused {
        assert_error(reply, StatusCode::FORBIDDEN, "FORBIDDEN");
        assert!(
            reply.2["message"].as_str().unwrap().contains("blocked"),
            "{}",
            reply.2
        );
    }
    let (_, _, tickets) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(tickets.as_array().unwrap().len(), 1, "nothing was opened");

    // Still allowed: reading, deleting their own message, closing.
    let (status, _, _) = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, messages) = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
        .await;
    assert_eq!(
        (status, body_ids(&messages).len()),
        (StatusCode::OK, 2),
        "nothing was posted"
    );
    assert_eq!(messages[0]["content"], "first", "nothing was edited");
    let (status, _, _) = server.delete(&message(&second), &ann).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Other customers and staff are untouched.
    server.create_ticket(&bob, "Mine", "fine").await;
    let (status, _, _) = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &ada,
            json!({"content": "staff still write"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Unblocking restores them at once; a second unblock is 404.
    let (status, _, _) = server.delete("/api/v1/blocks/ann", &root).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let reply = server.delete("/api/v1/blocks/ann", &root).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, _, edited) = server
        .patch_json(&message(&first), &ann, json!({"content": "edited"}))
        .await;
    assert_eq!(
        (status, edited["content"].clone()),
        (StatusCode::OK, json!("edited"))
    );
    server.post_message(&ann, &id, "back again").await;

    // Blocked again, they may still close their ticket.
    put(&server, "/api/v1/blocks/ann", &root, None).await;
    let (status, _, closed) = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &ann)
        .await;
    assert_eq!(
        (status, closed["status"].clone()),
        (StatusCode::OK, json!("CLOSED"))
    );
    let (_, _, list) = server.get("/api/v1/blocks", &root).await;
    assert_eq!(
        list[0]["reason"],
        Value::Null,
        "a new block replaces the reason"
    );

    // Bad input changes nothing.
    for (path, body, location, kind) in [
        (
            "/api/v1/blocks/bob",
            json!({"reason": "r".repeat(1001)}),
            "reason",
            "too_long",
        ),
        (
            "/api/v1/blocks/bob",
            json!({"reason": " "}),
            "reason",
            "empty",
        ),
        (
            "/api/v1/blocks/bob",
            json!({"why": "x"}),
            "why",
            "unknown_field",
        ),
        (
            "/api/v1/blocks/%20",
            json!({}),
            "path.user_id",
            "invalid_value",
        ),
    ] {
        let reply = put(&server, path, &root, Some(body)).await;
        assert_field_error(&reply, location, kind);
    }
    let (_, _, after) = server.get("/api/v1/blocks", &root).await;
    assert_eq!(
        after.as_array().unwrap().len(),
        2,
        "bob was not blocked: {after}"
    );

    // The block is an event on the user's own stream.
    let (_, _, feed) = server.get("/api/v1/events?limit=1000", &root).await;
    let on_ann: Vec<&str> = feed
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stream_id"] == "user:ann")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(on_ann, ["UserBlocked", "UserUnblocked", "UserBlocked"]);

    // Blocks outlive a restart, and so does a lifted one: ann (blocked again) and zed stay
    // refused, bob was never blocked.
    put(&server, "/api/v1/blocks/zed", &root, None).await;
    server.delete("/api/v1/blocks/zed", &root).await;
    let server = store.restart(server).await;
    let zed = server.token("zed", "CUSTOMER");
    let opens = |token: String| {
        let server = &server;
        async move {
            server
                .post_json(
                    "/api/v1/tickets",
                    &token,
                    json!({"topic": "After", "description": "the restart"}),
                )
                .await
        }
    };
    assert_error(
        &opens(server.token("ann", "CUSTOMER")).await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    );
    assert_eq!(opens(zed).await.0, StatusCode::OK, "zed was unblocked");
    assert_eq!(
        opens(server.token("bob", "CUSTOMER")).await.0,
        StatusCode::OK
    );
}

on_both_stores!(saved_replies, blocking_a_customer);
