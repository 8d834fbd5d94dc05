//! The OpenAPI document at `/api/v1/openapi.json` against the real server: served without a
//! token and equal to the one the harness checks every answer against (`common::contract`);
//! every route of docs/api.md is in it; what its parameters and bodies allow is exactly what the
//! server takes; and the contract check refuses what the document does not list.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every route the router serves under /api/v1 (docs/api.md), as the document spells it.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/tickets"),
    ("get", "/api/v1/tickets"),
    ("get", "/api/v1/tickets/{ticket_id}"),
    ("patch", "/api/v1/tickets/{ticket_id}"),
    ("post", "/api/v1/tickets/{ticket_id}/close"),
    ("post", "/api/v1/tickets/{ticket_id}/reopen"),
    ("post", "/api/v1/tickets/{ticket_id}/feedback"),
    ("post", "/api/v1/tickets/{ticket_id}/claim"),
    ("post", "/api/v1/tickets/{ticket_id}/unclaim"),
    ("post", "/api/v1/tickets/{ticket_id}/messages"),
    ("get", "/api/v1/tickets/{ticket_id}/messages"),
    ("get", "/api/v1/tickets/{ticket_id}/events"),
    ("get", "/api/v1/events"),
    ("patch", "/api/v1/tickets/{ticket_id}/messages/{message_id}"),
    (
        "delete",
        "/api/v1/tickets/{ticket_id}/messages/{message_id}",
    ),
    ("post", "/api/v1/dev/token"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/replies"),
    ("put", "/api/v1/replies/{name}"),
    ("delete", "/api/v1/replies/{name}"),
    ("get", "/api/v1/blocks"),
    ("put", "/api/v1/blocks/{user_id}"),
    ("delete", "/api/v1/blocks/{user_id}"),
    ("get", "/api/v1/search"),
    ("get", "/api/v1/reports"),
];

async fn document(server: &TestServer) -> Value {
    let (status, headers, doc) = server
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "openapi.json: {doc}");
    assert_request_id(&headers);
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_match_the_document() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    assert_eq!(
        &doc,
        contract::document(),
        "served and checked documents differ"
    );
    assert_eq!(doc["openapi"], json!("3.1.0"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        json!("bearer")
    );
    for name in ["Ticket", "Message", "EventEnvelope", "Error", "BadRequest"] {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "no schema {name}"
        );
    }
    // `#[serde(skip)]` fields never reach clients, so they are not in the schemas either.
    let ticket = &doc["components"]["schemas"]["Ticket"]["properties"];
    assert!(ticket.get("position").is_none(), "{ticket}");
    let message = &doc["components"]["schemas"]["Message"]["properties"];
    assert!(
        message.get("seq").is_none() && message.get("deleted_at").is_none(),
        "{message}"
    );

    let ann = server.token("ann", "CUSTOMER");
    let admin = server.token("root", "ADMIN");
    let agent = server.token("sam", "AGENT");

    let created = server
        .post_json(
            "/api/v1/tickets",
            &ann,
            json!({"topic": "Help", "description": "Something is wrong"}),
        )
        .await;
    assert_eq!(created.0, StatusCode::OK, "{}", created.2);
    let id = created.2["id"].as_str().unwrap().to_string();

    let shown = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_eq!(shown.0, StatusCode::OK);

    let listed = server.get("/api/v1/tickets?limit=5", &ann).await;
    assert_eq!(listed.0, StatusCode::OK);
    assert!(!listed.2.as_array().unwrap().is_empty());

    let posted = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &ann,
            json!({"content": "hello", "attachments": ["https://example.com/a.png"]}),
        )
        .await;
    assert_eq!(posted.0, StatusCode::OK, "{}", posted.2);
    let message_id = posted.2["id"].as_str().unwrap().to_string();

    // A staff note carries `internal: true`.
    let note = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &agent,
            json!({"content": "note", "internal": true}),
        )
        .await;
    assert_eq!(note.0, StatusCode::OK, "{}", note.2);
    assert_eq!(note.2["internal"], json!(true));

    let edited = server
        .patch_json(
            &format!("/api/v1/tickets/{id}/messages/{message_id}"),
            &ann,
            json!({"content": "hello again"}),
        )
        .await;
    assert_eq!(edited.0, StatusCode::OK, "{}", edited.2);

    let list = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &agent)
        .await;
    assert_eq!(list.0, StatusCode::OK);
    assert_eq!(list.2.as_array().unwrap().len(), 2);

    let events = server
        .get(&format!("/api/v1/tickets/{id}/events"), &admin)
        .await;
    assert_eq!(events.0, StatusCode::OK, "{}", events.2);
    assert_eq!(events.2.as_array().unwrap().len(), 4);

    let bad = server
        .post_json("/api/v1/tickets", &ann, json!({"topic": ""}))
        .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST, "{}", bad.2);

    let bad_query = server
        .get(
            &format!("/api/v1/tickets/{id}/messages?order=sideways"),
            &ann,
        )
        .await;
    assert_eq!(bad_query.0, StatusCode::BAD_REQUEST, "{}", bad_query.2);

    let unauthorized = server
        .request(Method::GET, "/api/v1/tickets", None, None)
        .await;
    assert_error(&unauthorized, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    let missing = server
        .get("/api/v1/tickets/0190a000-0000-7000-8000-000000000000", &ann)
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "NOT_FOUND");

    let forbidden = server
        .get(&format!("/api/v1/tickets/{id}/events"), &ann)
        .await;
    assert_error(&forbidden, StatusCode::FORBIDDEN, "FORBIDDEN");

    let deleted = server
        .delete(&format!("/api/v1/tickets/{id}/messages/{message_id}"), &ann)
        .await;
    assert_eq!(deleted.0, StatusCode::NO_CONTENT, "{}", deleted.2);

    let health = server.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.0, StatusCode::OK, "{}", health.2);
    let ready = server.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.0, StatusCode::OK, "{}", ready.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_in_the_document() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} not in the document"
        );
    }
    // And nothing under /api/v1 that the router does not serve.
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/api/v1")) {
        for method in ["get", "post", "patch", "put", "delete"] {
            if item.get(method).is_some() {
                assert!(
                    ROUTES.contains(&(method, path.as_str())),
                    "{method} {path} is documented but not a route"
                );
            }
        }
    }
    // Each documented route answers something other than "no such route" (a concrete id in
    // place of each path parameter; 405 would mean the method is wrong).
    let token = server.token("ann", "CUSTOMER");
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{ticket_id}", "0190a000-0000-7000-8000-000000000000")
            .replace("{message_id}", "0190a000-0000-7000-8000-000000000001");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, _, body) = server
            .request(method.clone(), &concrete, Some(&token), Some(&json!({})))
            .await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}: {body}"
        );
        if status == StatusCode::NOT_FOUND {
            assert_ne!(
                body["message"],
                json!("No such route"),
                "{method} {concrete}"
            );
        }
    }
}

/// The schema the document gives parameter `name` of `method path` (its own or its path's).
fn parameter(method: &str, path: &str, name: &str) -> Value {
    let item = &contract::document()["paths"][path];
    let own = item[method]["parameters"].as_array().into_iter().flatten();
    let shared = item["parameters"].as_array().into_iter().flatten();
    own.chain(shared)
        .find(|p| p["name"] == json!(name))
        .map(|p| p["schema"].clone())
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

/// The schema of the JSON request body of `method path`.
fn request_body(method: &str, path: &str) -> Value {
    contract::document()["paths"][path][method]["requestBody"]["content"]["application/json"]
        ["schema"]
        .clone()
}

fn allows(schema: &Value, value: &Value) -> bool {
    jsonschema::is_valid(schema, value)
}

/// Asserts that the server takes `value` (answers `ok`) exactly when the document allows it,
/// and otherwise answers 400.
fn same_verdict(what: &str, schema: &Value, value: &Value, reply: &Reply, ok: StatusCode) {
    let allowed = allows(schema, value);
    let (status, _, body) = reply;
    if allowed {
        assert_eq!(
            *status, ok,
            "{what} {value}: the document allows it: {body}"
        );
    } else {
        assert_eq!(
            *status,
            StatusCode::BAD_REQUEST,
            "{what} {value}: the document refuses it: {body}"
        );
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_parameters_allow_exactly_what_the_server_takes() {
    let server = TestServer::start().await;
    let ann = server.token("ann", "CUSTOMER");
    let admin = server.token("root", "ADMIN");
    let ticket = server
        .create_ticket(&ann, "Help", "Something is wrong")
        .await;
    let id = ticket["id"].as_str().unwrap().to_string();
    for text in ["one", "two", "three"] {
        server.post_message(&ann, &id, text).await;
    }
    let tickets = "/api/v1/tickets";
    let messages = "/api/v1/tickets/{ticket_id}/messages";
    let events = "/api/v1/tickets/{ticket_id}/events";
    let concrete = |path: &str| path.replace("{ticket_id}", &id);

    let cursors = [
        "",
        "0",
        "7",
        "+7",
        "007",
        "9223372036854775807",
        "18446744073709551616",
        "abc",
        "-1",
        "1.5",
        " 1",
        "+",
        "0x10",
    ];
    let mut cases: Vec<(&str, &str, &str, Value)> = Vec::new();
    for path in [tickets, messages, events] {
        for cursor in cursors {
            cases.push((path, "cursor", cursor, json!(cursor)));
        }
    }
    for status in ["OPEN", "CLOSED", "", "open", "LOST"] {
        cases.push((tickets, "status", status, json!(status)));
    }
    for level in ["NORMAL", "URGENT", "CRITICAL", "", "normal", "LOW"] {
        cases.push((tickets, "issue_level", level, json!(level)));
    }
    for role in ["GENERAL", "TECHNICAL", "MANAGER", "ADMIN", "", "AGENT"] {
        cases.push((tickets, "support_role", role, json!(role)));
    }
    for order in ["asc", "desc", "", "ASC", "sideways"] {
        cases.push((messages, "order", order, json!(order)));
    }
    for path in [tickets, messages] {
        for (raw, value) in [
            ("1", json!(1)),
            ("200", json!(200)),
            ("201", json!(201)),
            ("0", json!(0)),
            ("ten", json!("ten")),
            ("-5", json!(-5)),
        ] {
            cases.push((path, "limit", raw, value));
        }
    }
    for (raw, value) in [
        ("1000", json!(1000)),
        ("1001", json!(1001)),
        ("1", json!(1)),
    ] {
        cases.push((events, "limit", raw, value));
    }
    // Instants after the ticket was opened (before it, the ticket did not exist: 404).
    let now = now_ms() + 1;
    let (soon, later) = (now.to_string(), (now + 1_000_000).to_string());
    for (raw, value) in [
        (soon.as_str(), json!(now)),
        (later.as_str(), json!(now + 1_000_000)),
        ("-1", json!(-1)),
        ("soon", json!("soon")),
        ("1.5", json!(1.5)),
    ] {
        cases.push((messages, "as_of", raw, value.clone()));
        cases.push(("/api/v1/tickets/{ticket_id}", "as_of", raw, value));
    }
    let reports = "/api/v1/reports";
    for group_by in [
        "day",
        "week",
        "issue_level",
        "support_role",
        "assignee",
        "",
        "DAY",
        "month",
    ] {
        cases.push((reports, "group_by", group_by, json!(group_by)));
    }
    let recent = (now - 1_000_000).to_string();
    for name in ["from", "to", "as_of"] {
        for (raw, value) in [
            (recent.as_str(), json!(now - 1_000_000)),
            ("-1", json!(-1)),
            ("soon", json!("soon")),
            ("1.5", json!(1.5)),
            ("253402300800000", json!(253_402_300_800_000_i64)),
        ] {
            cases.push((reports, name, raw, value));
        }
    }
    for (path, name, raw, value) in cases {
        let schema = parameter("get", path, name);
        let url = format!("{}?{name}={}", concrete(path), encode(raw));
        let reply = server.get(&url, &admin).await;
        same_verdict(
            &format!("GET {url}:"),
            &schema,
            &value,
            &reply,
            StatusCode::OK,
        );
    }

    // The cursors the server hands out are ones the document allows.
    let (status, headers, _) = server
        .get(&format!("/api/v1/tickets/{id}/messages?limit=1"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK);
    let next = next_link(&headers).expect("a next page");
    let cursor = next.split("cursor=").nth(1).expect("a cursor in the link");
    assert!(
        allows(&parameter("get", messages, "cursor"), &json!(cursor)),
        "{next}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_headers_allow_exactly_what_the_server_takes() {
    let server = TestServer::start().await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("sam", "AGENT");
    let long = |n: usize| "é".repeat(n);

    let open = request_body("post", "/api/v1/tickets");
    for body in [
        json!({"topic": "Help", "description": "x"}),
        json!({"topic": long(200), "description": long(5000)}),
        json!({"topic": long(201), "description": "x"}),
        json!({"topic": "Help", "description": long(5001)}),
        json!({"topic": " \t", "description": "x"}),
        json!({"topic": "\u{85}\u{3000}", "description": "x"}),
        json!({"topic": "\u{feff}", "description": "x"}),
        json!({"topic": null, "description": "x"}),
        json!({"topic": 5, "description": "x"}),
        json!({"topic": "Help"}),
        json!({"topic": "Help", "description": "x", "extra": 1}),
    ] {
        let reply = server
            .post_json("/api/v1/tickets", &ann, body.clone())
            .await;
        same_verdict("POST /api/v1/tickets", &open, &body, &reply, StatusCode::OK);
    }
    let id = server.create_ticket(&ann, "Help", "x").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let post = request_body("post", "/api/v1/tickets/{ticket_id}/messages");
    let eleven: Vec<String> = (0..11)
        .map(|i| format!("https://example.com/{i}"))
        .collect();
    for body in [
        json!({"content": "hi"}),
        json!({"content": "hi", "attachments": null, "internal": null}),
        json!({"content": "hi", "attachments": [], "internal": true}),
        json!({"content": "hi", "attachments": ["https://cdn.example.com:8443/a.png?x=1#y"]}),
        json!({"content": "hi", "attachments": ["ftp://example.com/a"]}),
        json!({"content": "hi", "attachments": ["https://user@example.com/a"]}),
        json!({"content": "hi", "attachments": ["https://exa mple.com/"]}),
        json!({"content": "hi", "attachments": [format!("https://x/{}", "a".repeat(2040))]}),
        json!({"content": "hi", "attachments": [format!("https://x/{}", "a".repeat(2039))]}),
        json!({"content": "hi", "attachments": eleven}),
        json!({"content": "hi", "attachments": "https://example.com"}),
        json!({"content": "hi", "internal": "yes"}),
        json!({"content": long(4000)}),
        json!({"content": long(4001)}),
        json!({"content": ""}),
    ] {
        let path = format!("/api/v1/tickets/{id}/messages");
        let reply = server.post_json(&path, &agent, body.clone()).await;
        same_verdict(
            &format!("POST {path}"),
            &post,
            &body,
            &reply,
            StatusCode::OK,
        );
    }

    let route = request_body("patch", "/api/v1/tickets/{ticket_id}");
    for body in [
        json!({"support_role": "TECHNICAL"}),
        json!({"issue_level": "URGENT", "support_role": null}),
        json!({"support_role": null}),
        json!({}),
        json!({"issue_level": "urgent"}),
        json!({"issue_level": 1}),
        json!({"issue_level": "CRITICAL", "status": "CLOSED"}),
    ] {
        let path = format!("/api/v1/tickets/{id}");
        let reply = server.patch_json(&path, &agent, body.clone()).await;
        same_verdict(
            &format!("PATCH {path}"),
            &route,
            &body,
            &reply,
            StatusCode::OK,
        );
    }

    let close = request_body("post", "/api/v1/tickets/{ticket_id}/close");
    for body in [
        json!({}),
        json!({"reason": null}),
        json!({"reason": "done"}),
        json!({"reason": " "}),
        json!({"reason": long(1000)}),
        json!({"reason": long(1001)}),
        json!({"why": "done"}),
    ] {
        let fresh = server.create_ticket(&ann, "Close me", "x").await;
        let path = format!("/api/v1/tickets/{}/close", fresh["id"].as_str().unwrap());
        let reply = server.post_json(&path, &ann, body.clone()).await;
        same_verdict(
            &format!("POST {path}"),
            &close,
            &body,
            &reply,
            StatusCode::OK,
        );
    }

    let token = request_body("post", "/api/v1/dev/token");
    for body in [
        json!({"username": "ann", "role": "AGENT"}),
        json!({"username": "ann", "role": "AGENT", "id": null}),
        json!({"username": "ann", "role": "AGENT", "id": "a".repeat(64)}),
        json!({"username": "ann", "role": "AGENT", "id": "a".repeat(65)}),
        json!({"username": "ann", "role": "agent"}),
        json!({"username": "ann", "role": null}),
        json!({"username": "ann"}),
        json!({"username": " ", "role": "ADMIN"}),
        json!({"username": long(65), "role": "ADMIN"}),
    ] {
        let reply = server
            .request(Method::POST, "/api/v1/dev/token", None, Some(&body))
            .await;
        same_verdict(
            "POST /api/v1/dev/token",
            &token,
            &body,
            &reply,
            StatusCode::OK,
        );
    }

    let key = parameter("post", "/api/v1/tickets", "Idempotency-Key");
    let wide = "k".repeat(200);
    let too_wide = "k".repeat(201);
    for value in ["k-1", "a b", "x\ty", wide.as_str(), too_wide.as_str()] {
        let reply = server.create_ticket_keyed(&ann, value, "Keyed").await;
        same_verdict(
            "Idempotency-Key",
            &key,
            &json!(value),
            &reply,
            StatusCode::OK,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_listing_another_users_tickets_is_a_documented_403() {
    let server = TestServer::start().await;
    let ann = server.token("ann", "CUSTOMER");
    let reply = server.get("/api/v1/tickets?user_id=gus", &ann).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let own = server.get("/api/v1/tickets?user_id=ann", &ann).await;
    assert_eq!(own.0, StatusCode::OK, "{}", own.2);
}

/// A reply as the harness reads it: JSON with `x-request-id`.
fn reply(status: u16, body: Value) -> Reply {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-request-id",
        "0190a000-0000-7000-8000-000000000000".parse().unwrap(),
    );
    if !body.is_null() {
        headers.insert("content-type", "application/json".parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), headers, body)
}

/// The contract check itself: what it must refuse, next to what it must let through, so that
/// a check that accepted everything would fail here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_refuses_answers_the_document_does_not_list() {
    let server = TestServer::start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = server
        .create_ticket(&ann, "Help", "Something is wrong")
        .await;
    let id = ticket["id"].as_str().unwrap();
    let show = format!("/api/v1/tickets/{id}");
    let check = |method: Method, path: &str, reply: &Reply| contract::check(&method, path, reply);

    check(Method::GET, &show, &reply(200, ticket.clone())).expect("the real ticket");
    let mut extra = ticket.clone();
    extra["position"] = json!(1);
    assert!(
        check(Method::GET, &show, &reply(200, extra)).is_err(),
        "unknown key"
    );
    let mut missing = ticket.clone();
    missing.as_object_mut().unwrap().remove("topic");
    assert!(
        check(Method::GET, &show, &reply(200, missing)).is_err(),
        "missing key"
    );
    let mut wrong = ticket.clone();
    wrong["created_at"] = json!("yesterday");
    assert!(
        check(Method::GET, &show, &reply(200, wrong)).is_err(),
        "wrong type"
    );
    let mut lost = ticket.clone();
    lost["status"] = json!("LOST");
    assert!(
        check(Method::GET, &show, &reply(200, lost)).is_err(),
        "not an allowed value"
    );

    // Statuses: one the route cannot answer, and 409 on a read.
    let teapot = json!({"error": "TEAPOT", "message": "no"});
    assert!(check(Method::GET, &show, &reply(418, teapot)).is_err());
    let conflict = json!({"error": "CONFLICT", "message": "Ticket is closed"});
    check(
        Method::POST,
        &format!("{show}/close"),
        &reply(409, conflict.clone()),
    )
    .expect("409");
    assert!(
        check(Method::GET, &show, &reply(409, conflict)).is_err(),
        "409 on a read"
    );
    // The envelope's code must be the status's.
    let not_found = json!({"error": "NOT_FOUND", "message": "Ticket not found"});
    check(Method::GET, &show, &reply(404, not_found.clone())).expect("404");
    assert!(check(Method::GET, &show, &reply(403, not_found.clone())).is_err());
    // A field error type the document does not list.
    let bad = |kind: &str| {
        json!({"error": "BAD_REQUEST", "message": "Invalid form of body",
        "errors": [{"location": "query.cursor", "message": "no", "type": kind, "context": null}]})
    };
    check(
        Method::GET,
        "/api/v1/tickets?cursor=x",
        &reply(400, bad("invalid_query")),
    )
    .expect("400");
    assert!(
        check(
            Method::GET,
            "/api/v1/tickets",
            &reply(400, bad("invalid_cursor"))
        )
        .is_err()
    );
    // Headers: every answer has `x-request-id`; a 429 has `Retry-After`, a whole number.
    let mut anonymous = reply(200, ticket.clone());
    anonymous.1.remove("x-request-id");
    assert!(
        check(Method::GET, &show, &anonymous).is_err(),
        "no request id"
    );
    let limited = json!({"error": "RATELIMIT", "message": "slow down"});
    let mut retry = reply(429, limited.clone());
    assert!(check(Method::GET, &show, &retry).is_err(), "no Retry-After");
    retry.1.insert("retry-after", "soon".parse().unwrap());
    assert!(
        check(Method::GET, &show, &retry).is_err(),
        "Retry-After: soon"
    );
    retry.1.insert("retry-after", "12".parse().unwrap());
    check(Method::GET, &show, &retry).expect("Retry-After: 12");
    // Bodies and content types.
    let deleted = format!("{show}/messages/{id}");
    check(Method::DELETE, &deleted, &reply(204, Value::Null)).expect("204");
    assert!(
        check(Method::DELETE, &deleted, &reply(204, json!({}))).is_err(),
        "a body on 204"
    );
    let mut html = reply(200, ticket.clone());
    html.1.insert("content-type", "text/html".parse().unwrap());
    assert!(check(Method::GET, &show, &html).is_err(), "content type");
    // Paths and methods the document does not have.
    let nope = json!({"error": "NOT_FOUND", "message": "No such route"});
    check(Method::GET, "/api/v1/nope", &reply(404, nope)).expect("unknown path, 404");
    assert!(check(Method::GET, "/api/v1/nope", &reply(200, json!({}))).is_err());
    let wrong_method = json!({"error": "METHOD_NOT_ALLOWED", "message": "no"});
    check(Method::PUT, &show, &reply(405, wrong_method)).expect("405");
    assert!(
        check(Method::PUT, &show, &reply(200, ticket)).is_err(),
        "undocumented method"
    );
}
