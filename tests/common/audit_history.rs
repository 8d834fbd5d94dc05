//! The history the auditing tests build and compare, on whichever store a server runs: two
//! tickets with messages, an edit, a deletion, a note and a change of urgency, and everything
//! the API answers about them. Shared by `tests/audit.rs` (SQLite) and `tests/audit_mongo.rs`
//! (MongoDB), so both stores are held to the same story.

use crate::common::Api;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Events the history makes: per ticket, the opening, three posts, an edit, a deletion, a note
/// and a change of urgency.
pub const EVENTS: u64 = 16;

/// Builds the history through `server`'s API.
pub async fn make_history(server: &Api) {
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("agent", "AGENT");
    for topic in ["Printer", "Scanner"] {
        let ticket = server.create_ticket(&ann, topic, "Broken").await;
        let id = ticket["id"].as_str().unwrap();
        let messages = format!("/api/v1/tickets/{id}/messages");
        let m1 = server.post_message(&ann, id, "hello there").await;
        let m2 = server
            .post_message(&agent, id, "hello, how can we help")
            .await;
        server.post_message(&ann, id, "it broke").await;
        let (status, _, _) = server
            .patch_json(
                &format!("{messages}/{}", m1["id"].as_str().unwrap()),
                &ann,
                json!({"content": "hello again"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = server
            .delete(
                &format!("{messages}/{}", m2["id"].as_str().unwrap()),
                &agent,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, _) = server
            .post_json(
                &messages,
                &agent,
                json!({"content": "escalate", "internal": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = server
            .patch_json(
                &format!("/api/v1/tickets/{id}"),
                &agent,
                json!({"issue_level": "URGENT"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

/// Everything the API answers an agent: every ticket and every ticket's messages.
pub async fn everything(server: &Api) -> Value {
    let agent = server.token("agent", "AGENT");
    let (tickets, _) = server.walk("/api/v1/tickets?limit=1", &agent).await;
    let mut all = Vec::new();
    for ticket in tickets {
        let id = ticket["id"].as_str().unwrap();
        let (_, _, shown) = server.get(&format!("/api/v1/tickets/{id}"), &agent).await;
        let (messages, _) = server
            .walk(&format!("/api/v1/tickets/{id}/messages?limit=2"), &agent)
            .await;
        all.push(json!({"listed": ticket, "shown": shown, "messages": messages}));
    }
    Value::Array(all)
}

/// Checks the timeline `ticketd audit` printed for one of the history's tickets.
pub fn assert_timeline(out: &str) {
    assert_eq!(out.lines().count(), 9, "a heading and 8 events:\n{out}");
    assert!(out.contains("deleted message"), "{out}");
    assert!(
        out.contains("changed the urgency from NORMAL to URGENT"),
        "{out}"
    );
}

/// Saved replies and blocks made through `server`'s API (ADR 0021): two replies saved, one
/// replaced and one deleted; two users blocked and one of them unblocked. Seven events on three
/// streams beside the tickets.
pub async fn make_helpdesk_history(server: &Api) {
    let root = server.token("root", "ADMIN");
    for (method, path, body) in [
        (
            reqwest::Method::PUT,
            "/api/v1/replies/refund",
            json!({"content": "Refunded."}),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/replies/hello",
            json!({"content": "Hello!"}),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/replies/refund",
            json!({"content": "Refund sent."}),
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/replies/hello",
            Value::Null,
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/blocks/ann",
            json!({"reason": "spam"}),
        ),
        (reqwest::Method::PUT, "/api/v1/blocks/zed", Value::Null),
        (reqwest::Method::DELETE, "/api/v1/blocks/zed", Value::Null),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (status, _, answer) = server
            .request(method.clone(), path, Some(&root), body.as_ref())
            .await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
    }
}

/// The saved replies and blocks as the API lists them to an admin.
pub async fn helpdesk_state(server: &Api) -> Value {
    let root = server.token("root", "ADMIN");
    let (_, _, replies) = server.get("/api/v1/replies", &root).await;
    let (_, _, blocks) = server.get("/api/v1/blocks", &root).await;
    assert_eq!(replies.as_array().map(Vec::len), Some(1), "{replies}");
    assert_eq!(blocks.as_array().map(Vec::len), Some(1), "{blocks}");
    json!({"replies": replies, "blocks": blocks})
}
