//! The OpenAPI document at `/api/v1/openapi.json` against the real server: served without a
//! token; every route of docs/api.md is in it; and real answers (success and error) match the
//! schemas it declares for their path, method and status, keys and value types alike.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

/// Every route the router serves under /api/v1 (docs/api.md), as the document spells it.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/tickets"),
    ("get", "/api/v1/tickets"),
    ("get", "/api/v1/tickets/{ticket_id}"),
    ("patch", "/api/v1/tickets/{ticket_id}"),
    ("post", "/api/v1/tickets/{ticket_id}/close"),
    ("post", "/api/v1/tickets/{ticket_id}/reopen"),
    ("post", "/api/v1/tickets/{ticket_id}/messages"),
    ("get", "/api/v1/tickets/{ticket_id}/messages"),
    ("get", "/api/v1/tickets/{ticket_id}/events"),
    ("patch", "/api/v1/tickets/{ticket_id}/messages/{message_id}"),
    (
        "delete",
        "/api/v1/tickets/{ticket_id}/messages/{message_id}",
    ),
    ("post", "/api/v1/dev/token"),
    ("get", "/api/v1/openapi.json"),
];

async fn document(server: &TestServer) -> Value {
    let (status, headers, doc) = server
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "openapi.json: {doc}");
    assert_request_id(&headers);
    doc
}

/// Follows a `$ref` into the document's components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external $ref {r}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
            resolve(doc, target)
        }
        None => schema,
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("unknown schema type {other}"),
    }
}

/// Checks `value` against `schema`: `type`, `const`, `enum`, object `properties` / `required`
/// (no key outside `properties`), array `items`, `oneOf` / `anyOf` branches (an object's
/// branch adds its properties and required keys to the base ones), and `$ref`s.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(branches) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        let mut base = schema.as_object().cloned().unwrap_or_default();
        base.remove("oneOf");
        base.remove("anyOf");
        let mut failures = Vec::new();
        for branch in branches {
            let merged = merge(&base, resolve(doc, branch));
            match check(doc, &merged, value, at) {
                Ok(()) => return Ok(()),
                Err(e) => failures.push(e),
            }
        }
        return Err(format!("{at}: no branch matches: {failures:?}"));
    }
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, value) => {
            return Err(format!("{at}: expected {t}, got {value}"));
        }
        Some(Value::Array(ts))
            if !ts
                .iter()
                .any(|t| type_matches(t.as_str().unwrap_or(""), value)) =>
        {
            return Err(format!("{at}: expected one of {ts:?}, got {value}"));
        }
        _ => {}
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        return Err(format!("{at}: expected {c}, got {value}"));
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} not in {allowed:?}"));
    }
    if let (Some(properties), Value::Object(object)) =
        (schema.get("properties").and_then(Value::as_object), value)
    {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{at}: required key `{key}` missing"));
            }
        }
        for (key, v) in object {
            let Some(property) = properties.get(key) else {
                return Err(format!("{at}: key `{key}` not in the schema"));
            };
            check(doc, property, v, &format!("{at}.{key}"))?;
        }
    }
    if let (Some(items), Value::Array(values)) = (schema.get("items"), value) {
        for (i, v) in values.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The base schema with a branch's type, properties and required keys added.
fn merge(base: &Map<String, Value>, branch: &Value) -> Value {
    let mut merged = base.clone();
    let Some(branch) = branch.as_object() else {
        return Value::Object(merged);
    };
    for (key, value) in branch {
        match (key.as_str(), merged.get_mut(key)) {
            ("properties", Some(Value::Object(props))) => {
                if let Value::Object(more) = value {
                    props.extend(more.clone());
                }
            }
            ("required", Some(Value::Array(required))) => {
                if let Value::Array(more) = value {
                    required.extend(more.iter().cloned());
                }
            }
            ("description", _) => {}
            _ => {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(merged)
}

/// Asserts the document declares `method path` answering `status`, and that `body` matches
/// the declared JSON schema (or that none is declared for an empty body).
fn conforms(doc: &Value, method: &str, path: &str, (status, _, body): &Reply) {
    let code = status.as_u16().to_string();
    let operation = doc["paths"][path]
        .get(method)
        .unwrap_or_else(|| panic!("{method} {path} not in the document"));
    let response = operation["responses"]
        .get(&code)
        .unwrap_or_else(|| panic!("{method} {path} has no {code} response; body: {body}"));
    let response = resolve(doc, response);
    match response.pointer("/content/application~1json/schema") {
        Some(schema) => {
            if let Err(e) = check(doc, schema, body, "$") {
                panic!("{method} {path} {code}: {e}\nbody: {body}");
            }
        }
        None => assert!(
            body.is_null(),
            "{method} {path} {code}: undeclared body {body}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_match_the_document() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
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
    conforms(&doc, "post", "/api/v1/tickets", &created);
    let id = created.2["id"].as_str().unwrap().to_string();

    let shown = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_eq!(shown.0, StatusCode::OK);
    conforms(&doc, "get", "/api/v1/tickets/{ticket_id}", &shown);

    let listed = server.get("/api/v1/tickets?limit=5", &ann).await;
    assert_eq!(listed.0, StatusCode::OK);
    assert!(!listed.2.as_array().unwrap().is_empty());
    conforms(&doc, "get", "/api/v1/tickets", &listed);

    let messages = "/api/v1/tickets/{ticket_id}/messages";
    let posted = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &ann,
            json!({"content": "hello", "attachments": ["https://example.com/a.png"]}),
        )
        .await;
    assert_eq!(posted.0, StatusCode::OK, "{}", posted.2);
    conforms(&doc, "post", messages, &posted);
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
    conforms(&doc, "post", messages, &note);

    let edited = server
        .patch_json(
            &format!("/api/v1/tickets/{id}/messages/{message_id}"),
            &ann,
            json!({"content": "hello again"}),
        )
        .await;
    assert_eq!(edited.0, StatusCode::OK, "{}", edited.2);
    conforms(
        &doc,
        "patch",
        "/api/v1/tickets/{ticket_id}/messages/{message_id}",
        &edited,
    );

    let list = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &agent)
        .await;
    assert_eq!(list.0, StatusCode::OK);
    assert_eq!(list.2.as_array().unwrap().len(), 2);
    conforms(&doc, "get", messages, &list);

    let events = server
        .get(&format!("/api/v1/tickets/{id}/events"), &admin)
        .await;
    assert_eq!(events.0, StatusCode::OK, "{}", events.2);
    assert_eq!(events.2.as_array().unwrap().len(), 4);
    conforms(&doc, "get", "/api/v1/tickets/{ticket_id}/events", &events);

    let bad = server
        .post_json("/api/v1/tickets", &ann, json!({"topic": ""}))
        .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST, "{}", bad.2);
    conforms(&doc, "post", "/api/v1/tickets", &bad);

    let bad_query = server
        .get(
            &format!("/api/v1/tickets/{id}/messages?order=sideways"),
            &ann,
        )
        .await;
    assert_eq!(bad_query.0, StatusCode::BAD_REQUEST, "{}", bad_query.2);
    conforms(&doc, "get", messages, &bad_query);

    let unauthorized = server
        .request(Method::GET, "/api/v1/tickets", None, None)
        .await;
    assert_error(&unauthorized, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    conforms(&doc, "get", "/api/v1/tickets", &unauthorized);

    let missing = server
        .get("/api/v1/tickets/0190a000-0000-7000-8000-000000000000", &ann)
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "NOT_FOUND");
    conforms(&doc, "get", "/api/v1/tickets/{ticket_id}", &missing);

    let forbidden = server
        .get(&format!("/api/v1/tickets/{id}/events"), &ann)
        .await;
    assert_error(&forbidden, StatusCode::FORBIDDEN, "FORBIDDEN");
    conforms(
        &doc,
        "get",
        "/api/v1/tickets/{ticket_id}/events",
        &forbidden,
    );

    let deleted = server
        .delete(&format!("/api/v1/tickets/{id}/messages/{message_id}"), &ann)
        .await;
    assert_eq!(deleted.0, StatusCode::NO_CONTENT, "{}", deleted.2);
    conforms(
        &doc,
        "delete",
        "/api/v1/tickets/{ticket_id}/messages/{message_id}",
        &deleted,
    );

    let health = server.request(Method::GET, "/healthz", None, None).await;
    conforms(&doc, "get", "/healthz", &health);
    let ready = server.request(Method::GET, "/readyz", None, None).await;
    conforms(&doc, "get", "/readyz", &ready);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_rejects_what_the_schema_does_not_allow() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = server
        .create_ticket(&ann, "Help", "Something is wrong")
        .await;
    let schema = json!({"$ref": "#/components/schemas/Ticket"});
    check(&doc, &schema, &ticket, "$").expect("the real ticket matches");
    let mut extra = ticket.clone();
    extra["position"] = json!(1);
    assert!(check(&doc, &schema, &extra, "$").is_err(), "unknown key");
    let mut missing = ticket.clone();
    missing.as_object_mut().unwrap().remove("topic");
    assert!(check(&doc, &schema, &missing, "$").is_err(), "missing key");
    let mut wrong = ticket.clone();
    wrong["created_at"] = json!("yesterday");
    assert!(check(&doc, &schema, &wrong, "$").is_err(), "wrong type");
    let mut status = ticket;
    status["status"] = json!("LOST");
    assert!(
        check(&doc, &schema, &status, "$").is_err(),
        "not an allowed value"
    );
    let list = json!({"$ref": "#/components/schemas/EventEnvelope"});
    assert!(check(&doc, &list, &json!({"type": "Nope"}), "$").is_err());
}
