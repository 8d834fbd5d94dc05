//! The OpenAPI 3.1 document of the REST API, served at `GET /api/v1/openapi.json` without a
//! token. The schemas of the Ticket, Message and EventEnvelope objects are generated from the
//! very types the handlers serialize; the paths table follows docs/api.md.

use crate::app::AppState;
use axum::Router;
use axum::response::Json;
use axum::routing::get;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;
use ticketd_events::EventEnvelope;
use ticketd_projections::{MessageView, TicketView};

/// `GET /api/v1/openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi))
}

async fn openapi() -> Json<Value> {
    Json(DOCUMENT.clone())
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(document);

/// Moves a generated schema's `$defs` into `schemas` and points its `$ref`s there.
fn component(schemas: &mut Map<String, Value>, name: &str, mut schema: Value) {
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        if let Some(Value::Object(defs)) = object.remove("$defs") {
            for (def, mut value) in defs {
                rewrite_refs(&mut value);
                schemas.entry(def).or_insert(value);
            }
        }
    }
    rewrite_refs(&mut schema);
    schemas.insert(name.to_string(), schema);
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "$ref"
                    && let Value::String(s) = v
                    && let Some(rest) = s.strip_prefix("#/$defs/")
                {
                    *s = format!("#/components/schemas/{rest}");
                } else {
                    rewrite_refs(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn body_of(schema: Value) -> Value {
    json!({"content": {"application/json": {"schema": schema}}})
}

fn ok(description: &str, schema: Value) -> Value {
    let mut response = body_of(schema);
    response["description"] = json!(description);
    response
}

fn error(description: &str) -> Value {
    ok(description, reference("Error"))
}

/// The responses of an authenticated route: `answers` plus 400, 401, 403, 404, 409, 429, 500, 503
/// as listed (`codes`).
fn responses(answers: Value, codes: &[u16]) -> Value {
    let mut map = answers.as_object().cloned().unwrap_or_default();
    for code in codes {
        let value = match code {
            400 => ok("Invalid body or query", reference("BadRequest")),
            401 => error("Missing, malformed, expired or wrongly signed token"),
            403 => error("Another user's ticket, or a staff-only command"),
            404 => error("Unknown ticket, message or route"),
            409 => error("The ticket's state does not allow the command"),
            429 => error("Over the route's quota; `Retry-After` says when to retry"),
            500 => error("A fault of ours; `request_id` matches the log line"),
            503 => error("The store cannot take the request now"),
            _ => continue,
        };
        map.insert(code.to_string(), value);
    }
    Value::Object(map)
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string"}})
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": schema})
}

fn ticket_id() -> Value {
    path_param("ticket_id", "The ticket id (UUID v7)")
}

fn message_id() -> Value {
    path_param("message_id", "The message id (UUID v7)")
}

fn limit() -> Value {
    query_param(
        "limit",
        "Page size, 1–200 (default 50)",
        json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
    )
}

fn cursor() -> Value {
    query_param(
        "cursor",
        "Opaque; take it from the `Link` header's `rel=\"next\"` URL",
        json!({"type": "string"}),
    )
}

fn as_of() -> Value {
    query_param(
        "as_of",
        "Answer with the state at this instant, epoch milliseconds",
        json!({"type": "integer", "minimum": 0}),
    )
}

fn link_header() -> Value {
    json!({"Link": {"description": "`<…>; rel=\"next\"` when there is more",
                     "schema": {"type": "string"}}})
}

fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": reference(name)})
}

fn enum_names(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

fn document() -> Value {
    let mut schemas = Map::new();
    component(
        &mut schemas,
        "Ticket",
        serde_json::to_value(schemars::schema_for!(TicketView)).unwrap_or_default(),
    );
    component(
        &mut schemas,
        "Message",
        serde_json::to_value(schemars::schema_for!(MessageView)).unwrap_or_default(),
    );
    component(
        &mut schemas,
        "EventEnvelope",
        serde_json::to_value(schemars::schema_for!(EventEnvelope)).unwrap_or_default(),
    );
    schemas.insert(
        "Error".into(),
        json!({
            "description": "The seed's error envelope.",
            "type": "object",
            "properties": {
                "error": {"type": "string", "description": "UNAUTHORIZED, FORBIDDEN, NOT_FOUND, METHOD_NOT_ALLOWED, CONFLICT, RATELIMIT, INTERNAL_SERVER_ERROR or SERVICE_UNAVAILABLE"},
                "message": {"type": "string"},
                "request_id": {"type": "string", "description": "On a 500 only"}
            },
            "required": ["error", "message"]
        }),
    );
    schemas.insert(
        "FieldError".into(),
        json!({
            "description": "One invalid field.",
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The field, `query.<name>`, or `body`"},
                "message": {"type": "string"},
                "type": enum_names(&["missing", "type", "empty", "too_long", "unknown_field",
                    "invalid_value", "invalid_url", "too_many", "json_invalid", "too_large",
                    "invalid_query"]),
                "context": {"description": "The limit or the allowed values, when there is one (else null)"}
            },
            "required": ["location", "message", "type", "context"]
        }),
    );
    schemas.insert(
        "BadRequest".into(),
        json!({
            "description": "The 400 envelope with its field errors.",
            "type": "object",
            "properties": {
                "error": {"type": "string", "const": "BAD_REQUEST"},
                "message": {"type": "string"},
                "errors": array_of("FieldError")
            },
            "required": ["error", "message", "errors"]
        }),
    );

    let roles = ["TEMP_USER", "CUSTOMER", "AGENT", "ADMIN"];
    let attachments = json!({"type": "array", "items": {"type": "string", "format": "uri"}});
    let authed = [400, 401, 403, 404, 429, 500, 503];
    let writes = [400, 401, 403, 404, 409, 429, 500, 503];
    let ticket_ok = json!({"200": ok("The ticket", reference("Ticket"))});
    let message_ok = json!({"200": ok("The message", reference("Message"))});

    let paths = json!({
        "/api/v1/tickets": {
            "post": {
                "operationId": "createTicket", "summary": "Open a ticket", "tags": ["tickets"],
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false,
                    "description": "1–200 visible ASCII characters; a retry with the same key (same user) answers with the ticket the first try opened instead of opening another",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"topic": {"type": "string"}, "description": {"type": "string"}},
                    "required": ["topic", "description"]}}}},
                "responses": responses(ticket_ok.clone(), &[400, 401, 429, 500, 503])
            },
            "get": {
                "operationId": "listTickets", "summary": "List tickets, newest first (customers: their own)",
                "tags": ["tickets"],
                "parameters": [limit(), cursor(),
                    query_param("status", "Filter", enum_names(&["OPEN", "CLOSED"])),
                    query_param("issue_level", "Filter", json!({"type": "string"})),
                    query_param("support_role", "Filter", json!({"type": "string"})),
                    query_param("user_id", "Filter (staff)", json!({"type": "string"}))],
                "responses": responses(json!({"200": {
                    "description": "A page of tickets", "headers": link_header(),
                    "content": {"application/json": {"schema": array_of("Ticket")}}}}),
                    &[400, 401, 429, 500, 503])
            }
        },
        "/api/v1/tickets/{ticket_id}": {
            "parameters": [ticket_id()],
            "get": {
                "operationId": "getTicket", "summary": "Read a ticket (owner, staff)", "tags": ["tickets"],
                "parameters": [as_of()],
                "responses": responses(ticket_ok.clone(), &authed)
            },
            "patch": {
                "operationId": "updateTicket", "summary": "Re-route a ticket (staff)", "tags": ["tickets"],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false, "minProperties": 1,
                    "properties": {"support_role": {"type": "string"}, "issue_level": {"type": "string"}}}}}},
                "responses": responses(ticket_ok.clone(), &writes)
            }
        },
        "/api/v1/tickets/{ticket_id}/close": {
            "parameters": [ticket_id()],
            "post": {
                "operationId": "closeTicket", "summary": "Close a ticket (owner, staff)", "tags": ["tickets"],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"reason": {"type": "string"}}}}}},
                "responses": responses(ticket_ok.clone(), &writes)
            }
        },
        "/api/v1/tickets/{ticket_id}/reopen": {
            "parameters": [ticket_id()],
            "post": {
                "operationId": "reopenTicket", "summary": "Reopen a ticket (staff)", "tags": ["tickets"],
                "responses": responses(ticket_ok, &writes)
            }
        },
        "/api/v1/tickets/{ticket_id}/messages": {
            "parameters": [ticket_id()],
            "post": {
                "operationId": "postMessage", "summary": "Post a message (owner, staff; `internal`: staff only)",
                "tags": ["messages"],
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false,
                    "description": "1–200 visible ASCII characters; a retry with the same key (same user, same ticket) answers with the message the first try posted instead of posting it again",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"content": {"type": "string"}, "attachments": attachments.clone(),
                                   "internal": {"type": "boolean"}},
                    "required": ["content"]}}}},
                "responses": responses(message_ok.clone(), &writes)
            },
            "get": {
                "operationId": "listMessages", "summary": "List messages, oldest first (`order=desc`: newest first)",
                "tags": ["messages"],
                "parameters": [limit(), cursor(), as_of(),
                    query_param("order", "asc (default) or desc", enum_names(&["asc", "desc"]))],
                "responses": responses(json!({"200": {
                    "description": "A page of messages", "headers": link_header(),
                    "content": {"application/json": {"schema": array_of("Message")}}}}), &authed)
            }
        },
        "/api/v1/tickets/{ticket_id}/messages/{message_id}": {
            "parameters": [ticket_id(), message_id()],
            "patch": {
                "operationId": "editMessage", "summary": "Edit a message (author, staff)", "tags": ["messages"],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"content": {"type": "string"}, "attachments": attachments},
                    "required": ["content"]}}}},
                "responses": responses(message_ok, &writes)
            },
            "delete": {
                "operationId": "deleteMessage", "summary": "Delete a message (author, staff)", "tags": ["messages"],
                "responses": responses(json!({"204": {"description": "Deleted"}}), &writes)
            }
        },
        "/api/v1/tickets/{ticket_id}/events": {
            "parameters": [ticket_id()],
            "get": {
                "operationId": "ticketEvents", "summary": "The ticket's events in stream order (ADMIN)",
                "tags": ["history"],
                "parameters": [query_param(
                    "limit",
                    "Page size, 1–1000 (default 1000)",
                    json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000}),
                ), cursor()],
                "responses": responses(json!({"200": {
                    "description": "A page of the events", "headers": link_header(),
                    "content": {"application/json": {"schema": array_of("EventEnvelope")}}}}), &authed)
            }
        },
        "/api/v1/dev/token": {
            "post": {
                "operationId": "devToken", "summary": "Sign a token (DEVELOPMENT only; 404 in PRODUCTION)",
                "tags": ["development"], "security": [],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"username": {"type": "string", "minLength": 1, "maxLength": 64},
                                   "role": enum_names(&roles),
                                   "id": {"type": "string", "maxLength": 64}},
                    "required": ["username", "role"]}}}},
                "responses": responses(json!({"200": ok("The token", json!({
                    "type": "object",
                    "properties": {
                        "token": {"type": "string"},
                        "user": {"type": "object", "properties": {
                            "id": {"type": "string"}, "username": {"type": "string"},
                            "email": {"type": "string"}, "role": enum_names(&roles)},
                            "required": ["id", "username", "email", "role"]},
                        "expires_in": {"type": "integer", "description": "Seconds"}
                    },
                    "required": ["token", "user", "expires_in"]}))}), &[400, 404, 429, 500])
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi", "summary": "This document", "tags": ["meta"], "security": [],
                "responses": {"200": ok("The OpenAPI document", json!({"type": "object"}))}
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz", "summary": "Liveness", "tags": ["meta"], "security": [],
                "responses": {"200": ok("Alive", json!({"type": "object",
                    "properties": {"status": {"type": "string", "const": "ok"}}, "required": ["status"]}))}
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz", "summary": "Readiness", "tags": ["meta"], "security": [],
                "responses": {
                    "200": ok("The store answers", json!({"type": "object",
                        "properties": {"status": {"type": "string", "const": "ready"},
                                       "position": {"type": "integer", "description": "The last committed event"},
                                       "socket_deadlines": {"type": "integer", "description": "Sockets of this instance with a deadline pending: anonymous ones (the authorization timeout) and those whose token has an `exp`"}},
                        "required": ["status", "position", "socket_deadlines"]})),
                    "503": error("The store cannot be used")
                }
            }
        }
    });

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ticketd REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Event-sourced support tickets. Every response carries `x-request-id`. See docs/api.md."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "HS256; claims `id`, `username`, `email`, `role`"}
            }
        }
    })
}
