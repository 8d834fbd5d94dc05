//! The OpenAPI 3.1 document of the REST API, served at `GET /api/v1/openapi.json` without a
//! token. The schemas of the Ticket, Message and EventEnvelope objects are generated from the
//! very types the handlers serialize; the paths table follows docs/api.md.
//!
//! The document is exactly as strict as the server, no looser and no narrower: clients generate
//! code from it and property-based testers (`scripts/api-fuzz`) derive requests from it, so every
//! value it allows must be taken and every answer the server can give must be listed. Limits and
//! vocabularies therefore come from the constants the handlers check against, and the patterns
//! below mirror the parsers they stand for. The black-box tests check every answer they get
//! against this document (`tests/common/contract.rs`).

use crate::app::AppState;
use crate::http::feed::{
    DEFAULT_LIMIT as FEED_DEFAULT, MAX_LIMIT as FEED_MAX, MAX_WAIT_SECS as FEED_MAX_WAIT,
};
use crate::http::history::EVENTS_PAGE;
use crate::http::pagination::{DEFAULT_LIMIT, MAX_LIMIT};
use axum::Router;
use axum::response::Json;
use axum::routing::get;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;
use ticketd_events::{EventEnvelope, IssueLevel, SupportRole, TicketStatus, UserRole, limits};
use ticketd_projections::{BlockView, MessageView, ReplyView, TicketView};

/// `GET /api/v1/openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi))
}

async fn openapi() -> Json<Value> {
    Json(document().clone())
}

/// The document as served; the tests' harness checks answers against this very value.
pub fn document() -> &'static Value {
    &DOCUMENT
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// Moves a generated schema's `$defs` into `schemas` and points its `$ref`s there.
fn component(schemas: &mut Map<String, Value>, name: &str, mut schema: Value) {
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        if let Some(Value::Object(defs)) = object.remove("$defs") {
            for (def, mut value) in defs {
                rewrite_refs(&mut value);
                close_objects(&mut value, false);
                schemas.entry(def).or_insert(value);
            }
        }
    }
    rewrite_refs(&mut schema);
    close_objects(&mut schema, false);
    schemas.insert(name.to_string(), schema);
}

/// Marks every generated object as having no keys but its own: the server sends nothing else,
/// and a key it started sending must reach the document too. `unevaluatedProperties` rather than
/// `additionalProperties`, so that the keys a `oneOf` branch adds (an event's `type` and `data`
/// beside its envelope) count; the branches themselves are left open for the same reason.
fn close_objects(schema: &mut Value, branch: bool) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if !branch && object.contains_key("properties") && !object.contains_key("additionalProperties")
    {
        object.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
    for (key, value) in object.iter_mut() {
        match key.as_str() {
            "properties" => value
                .as_object_mut()
                .into_iter()
                .flat_map(|p| p.values_mut())
                .for_each(|v| close_objects(v, false)),
            "items" => close_objects(value, false),
            "oneOf" | "anyOf" | "allOf" => value
                .as_array_mut()
                .into_iter()
                .flatten()
                .for_each(|v| close_objects(v, true)),
            _ => {}
        }
    }
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

/// Every `type` a field error can have: what `FieldError::new` is called with across `src/http`.
const FIELD_ERROR_TYPES: &[&str] = &[
    "missing",
    "type",
    "empty",
    "too_long",
    "unknown_field",
    "invalid_value",
    "invalid_url",
    "too_many",
    "json_invalid",
    "too_large",
    "malformed",
    "invalid_query",
    "invalid_header",
    "invalid_path",
];

/// The characters Rust's `char::is_whitespace` (Unicode `White_Space`) matches, as a regex
/// class body. ECMA-262's `\s` is close but not the same (it has U+FEFF, lacks U+0085).
const WHITE_SPACE: &str =
    r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// A text field: the handlers refuse one that is empty or only white space (`empty`).
fn not_blank() -> String {
    format!("[^{WHITE_SPACE}]")
}

/// `limits::is_http_url`: `http://` or `https://`; an ASCII host name or IPv4 address (not
/// starting with `.` or `-`; no bracketed IPv6 literal); an optional port of 1 to 5 digits; no
/// user info; and no white space or control character anywhere (Unicode `White_Space`, category
/// `Cc`).
fn http_url() -> String {
    let bad = r"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
    let host = r"[A-Za-z0-9_~%][A-Za-z0-9._~%-]*";
    format!(r"^https?://{host}(:[0-9]{{1,5}})?([/?#][^{bad}]*)?$")
}

/// The decimal numerals of 0..=`max` as Rust's integer parsers read them (an optional `+`, any
/// number of leading zeros), or the empty string, which the server takes as "no cursor".
fn numeral_up_to(max: u64) -> String {
    let digits = max.to_string();
    let n = digits.len();
    let mut alternatives = Vec::new();
    if n > 1 {
        alternatives.push(format!("[0-9]{{1,{}}}", n - 1));
    }
    // Numerals of `n` digits below `max`: its first `i` digits, a smaller one, then any.
    for (i, digit) in digits.bytes().map(|b| b - b'0').enumerate() {
        let lowest = u8::from(i == 0 && n > 1);
        if digit > lowest {
            let smaller = if digit - 1 == lowest {
                lowest.to_string()
            } else {
                format!("[{lowest}-{}]", digit - 1)
            };
            let rest = n - i - 1;
            let any = if rest == 0 {
                String::new()
            } else {
                format!("[0-9]{{{rest}}}")
            };
            alternatives.push(format!("{}{smaller}{any}", &digits[..i]));
        }
    }
    alternatives.push(digits);
    format!(r"^(\+?0*({}))?$", alternatives.join("|"))
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn body_of(schema: Value) -> Value {
    json!({"content": {"application/json": {"schema": schema}}})
}

/// Every answer carries `x-request-id`.
fn request_id() -> Value {
    json!({"$ref": "#/components/headers/RequestId"})
}

fn ok(description: &str, schema: Value) -> Value {
    let mut response = body_of(schema);
    response["description"] = json!(description);
    response["headers"] = json!({"x-request-id": request_id()});
    response
}

fn no_content(description: &str) -> Value {
    json!({"description": description, "headers": {"x-request-id": request_id()}})
}

/// The response of one error status, its envelope with that status's `error` code.
fn failure(code: u16) -> Option<Value> {
    let (description, schema) = match code {
        400 => (
            "Invalid body, query, header or path; `errors` lists each field",
            "BadRequest",
        ),
        401 => (
            "Missing, malformed, expired or wrongly signed token",
            "Unauthorized",
        ),
        403 => (
            "Another user's ticket, a staff-only command, (customers) another user's tickets in a listing, or a blocked user's open, post or edit",
            "Forbidden",
        ),
        404 => ("Unknown ticket or message", "NotFound"),
        408 => (
            "The body did not arrive within HTTP_BODY_TIMEOUT_SECS; the connection is closed",
            "RequestTimeout",
        ),
        409 => (
            "The ticket's state does not allow the command (closed, or not closed for reopen)",
            "Conflict",
        ),
        429 => (
            "Over the route's quota; `Retry-After` says when to retry",
            "RateLimited",
        ),
        500 => (
            "A fault of ours; `request_id` matches the log line",
            "InternalError",
        ),
        503 => (
            "The store cannot take the request now; retry later",
            "Unavailable",
        ),
        _ => return None,
    };
    let mut response = ok(description, reference(schema));
    if code == 429 {
        response["headers"]["Retry-After"] = json!({"required": true,
            "description": "Seconds until a request would pass",
            "schema": {"type": "integer", "minimum": 0}});
    }
    Some(response)
}

/// The responses of a route: `answers` plus the error statuses in `codes`, exactly those the
/// route's handler can give.
fn responses(answers: Value, codes: &[u16]) -> Value {
    let mut map = answers.as_object().cloned().unwrap_or_default();
    for code in codes {
        if let Some(response) = failure(*code) {
            map.insert(code.to_string(), response);
        }
    }
    Value::Object(map)
}

/// An error envelope whose `error` is `code`.
fn envelope(code: &str, description: &str) -> Value {
    json!({
        "description": description,
        "type": "object", "additionalProperties": false,
        "properties": {
            "error": {"type": "string", "const": code},
            "message": {"type": "string", "minLength": 1}
        },
        "required": ["error", "message"]
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "minLength": 1}})
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": schema})
}

fn ticket_id() -> Value {
    path_param(
        "ticket_id",
        "The ticket id (a UUID v7); any other text is 404",
    )
}

fn message_id() -> Value {
    path_param(
        "message_id",
        "The message id (a UUID v7); any other text is 404",
    )
}

fn limit(default: usize, max: usize) -> Value {
    query_param(
        "limit",
        &format!("Page size, 1–{max} (default {default})"),
        json!({"type": "integer", "minimum": 1, "maximum": max, "default": default}),
    )
}

fn cursor() -> Value {
    query_param(
        "cursor",
        "Take it from the `Link` header's `rel=\"next\"` URL; empty means the first page. \
         Anything else is a 400 at `query.cursor`",
        json!({"type": "string", "pattern": numeral_up_to(i64::MAX as u64)}),
    )
}

fn as_of() -> Value {
    query_param(
        "as_of",
        "Answer with the state at this instant, epoch milliseconds",
        json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
    )
}

/// A query filter over a closed vocabulary; empty means no filter.
fn filter(name: &str, values: &[&str]) -> Value {
    let mut allowed: Vec<&str> = values.to_vec();
    allowed.push("");
    query_param(
        name,
        "Filter (empty: none); another value is a 400 of type `invalid_value`",
        enum_names(&allowed),
    )
}

/// `extract::idempotency_key`: 1–200 bytes, each visible ASCII.
fn idempotency_key(description: &str) -> Value {
    json!({"name": "Idempotency-Key", "in": "header", "required": false,
           "description": description,
           "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"}})
}

fn link_header() -> Value {
    json!({"x-request-id": request_id(),
           "Link": {"description": "`<…>; rel=\"next\"` when there is more",
                    "schema": {"type": "string", "pattern": "^<[^>]+>; rel=\"next\"$"}}})
}

fn page_of(description: &str, item: &str) -> Value {
    json!({"description": description, "headers": link_header(),
           "content": {"application/json": {"schema": array_of(item)}}})
}

fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": reference(name)})
}

fn enum_names(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

fn names<T: Copy + std::fmt::Display>(all: &[T]) -> Vec<String> {
    all.iter().map(ToString::to_string).collect()
}

/// A required text field: 1–`max` characters, not only white space.
/// A tag: 1–32 ASCII letters, digits, `-` or `_` (`limits::is_tag`).
const TAG_PATTERN: &str = "^[A-Za-z0-9_-]{1,32}$";
/// A tag, or the empty string a filter ignores.
const TAG_PATTERN_OR_EMPTY: &str = "^[A-Za-z0-9_-]{0,32}$";

fn text(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": not_blank()})
}

/// An optional text field; `null` counts as absent.
fn optional_text(max: usize) -> Value {
    json!({"type": ["string", "null"], "minLength": 1, "maxLength": max, "pattern": not_blank()})
}

/// `attachments`: absent, `null`, or at most 10 absolute http(s) links.
fn attachments() -> Value {
    json!({"type": ["array", "null"], "maxItems": limits::ATTACHMENTS_MAX,
           "items": {"type": "string", "maxLength": limits::ATTACHMENT_URL_MAX,
                     "pattern": http_url()}})
}

fn json_body(required: bool, schema: Value) -> Value {
    json!({"required": required, "content": {"application/json": {"schema": schema}}})
}

// ---- search (issue 17 part 1, ADR 0024) ----

/// `GET /api/v1/search`, and its `SearchHit` schema: the Ticket with `highlights`.
fn search_paths(
    schemas: &mut Map<String, Value>,
    statuses: &[&str],
    issue_levels: &[&str],
    support_roles: &[&str],
) -> Map<String, Value> {
    let mut hit = schemas.get("Ticket").cloned().unwrap_or_default();
    hit["description"] = json!(
        "A search hit: the Ticket Object as the caller's listing shows it, plus `highlights`."
    );
    hit["properties"]["highlights"] = json!({"type": "array", "maxItems": crate::search::MAX_HIGHLIGHTS,
        "description": "Up to three excerpts (topic, description, messages) with the text HTML-escaped and the matched words inside `<mark>…</mark>`",
        "items": {"type": "string"}});
    if let Some(required) = hit["required"].as_array_mut() {
        required.push(json!("highlights"));
    }
    schemas.insert("SearchHit".into(), hit);
    let paths = json!({
        "/api/v1/search": {
            "get": {
                "operationId": "searchTickets", "tags": ["tickets"],
                "summary": "Full-text search, best match first (customers: their own tickets; internal notes for staff only). Every word must match, case and accents ignored, the last word also as a prefix; 503 when SEARCH_INDEX=off",
                "parameters": [
                    {"name": "q", "in": "query", "required": true,
                     "description": format!("The words (at most {} characters and {} words, at least one letter or digit); anything else is a 400 at `query.q`", crate::http::search::Q_MAX, crate::search::MAX_WORDS),
                     "schema": {"type": "string", "minLength": 1, "maxLength": crate::http::search::Q_MAX}},
                    limit(DEFAULT_LIMIT, MAX_LIMIT), cursor(),
                    filter("status", statuses),
                    filter("issue_level", issue_levels),
                    filter("support_role", support_roles),
                    query_param("user_id", "Filter by opener (empty: none). A TEMP_USER or CUSTOMER may only give their own id: another is a 403",
                        json!({"type": "string"})),
                    query_param("assignee_id", "Filter by holder: an id, `me` or `none` (empty: no filter)",
                        json!({"type": "string", "maxLength": limits::ASSIGNEE_ID_MAX})),
                    json!({"name": "tag", "in": "query", "style": "form", "explode": true,
                        "description": "Staff only (a customer using it gets 403): tickets carrying every tag given",
                        "schema": {"type": "array", "items": {"type": "string", "pattern": TAG_PATTERN_OR_EMPTY}}})],
                "responses": responses(json!({"200": page_of("A page of hits", "SearchHit")}), &[400, 401, 403, 429, 500, 503])
            }
        }
    });
    match paths {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

// ---- end of search ----

/// The saved replies and blocks (issue 15, parts 3 and 4; ADR 0021).
fn helpdesk_paths() -> Map<String, Value> {
    let staff_list = [401, 403, 429, 500, 503];
    let put = [400, 401, 403, 408, 429, 500, 503];
    let delete = [400, 401, 403, 404, 429, 500, 503];
    let name = json!({"name": "name", "in": "path", "required": true,
        "description": "1–32 ASCII letters, digits, `-` or `_`, stored lower-case; anything else is a 400 at `path.name`",
        "schema": {"type": "string", "pattern": TAG_PATTERN}});
    let user_id = json!({"name": "user_id", "in": "path", "required": true,
        "description": format!("Any user id a token may carry (1–{} characters, not only white space); anything else is a 400 at `path.user_id`", limits::USER_ID_MAX),
        "schema": {"type": "string", "minLength": 1, "maxLength": limits::USER_ID_MAX, "pattern": not_blank()}});
    let paths = json!({
        "/api/v1/replies": {
            "get": {
                "operationId": "listReplies", "summary": "The saved replies, by name (staff)", "tags": ["replies"],
                "responses": responses(json!({"200": ok("Every saved reply", array_of("Reply"))}), &staff_list)
            }
        },
        "/api/v1/replies/{name}": {
            "parameters": [name],
            "put": {
                "operationId": "saveReply", "summary": "Create or replace a saved reply (ADMIN)", "tags": ["replies"],
                "requestBody": json_body(true, json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {"content": text(limits::REPLY_MAX)},
                    "required": ["content"]})),
                "responses": responses(json!({"200": ok("The reply", reference("Reply"))}), &put)
            },
            "delete": {
                "operationId": "deleteReply", "summary": "Remove a saved reply (ADMIN); 404 for an unknown name", "tags": ["replies"],
                "responses": responses(json!({"204": no_content("Removed")}), &delete)
            }
        },
        "/api/v1/blocks": {
            "get": {
                "operationId": "listBlocks", "summary": "The blocked users, by id (staff)", "tags": ["blocks"],
                "responses": responses(json!({"200": ok("Every block", array_of("Block"))}), &staff_list)
            }
        },
        "/api/v1/blocks/{user_id}": {
            "parameters": [user_id],
            "put": {
                "operationId": "blockUser", "summary": "Block a user from opening tickets and writing (ADMIN)", "tags": ["blocks"],
                "requestBody": json_body(false, json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {"reason": optional_text(limits::BLOCK_REASON_MAX)}})),
                "responses": responses(json!({"200": ok("The block", reference("Block"))}), &put)
            },
            "delete": {
                "operationId": "unblockUser", "summary": "Lift a user's block (ADMIN); 404 when they are not blocked", "tags": ["blocks"],
                "responses": responses(json!({"204": no_content("Unblocked")}), &delete)
            }
        }
    });
    match paths {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Reports (issue 17 part 4; ADR 0026).
fn reports_paths() -> Map<String, Value> {
    use ticketd_projections::reports::{CSV_HEADER, GroupBy};
    let groupings: Vec<&str> = GroupBy::ALL.iter().map(|g| g.as_str()).collect();
    let count = json!({"type": "integer", "minimum": 0});
    let seconds = json!({"type": ["number", "null"], "minimum": 0});
    let durations = |what: &str| {
        json!({"type": "object", "additionalProperties": false,
        "description": what,
        "properties": {"count": count, "median_s": seconds, "p90_s": seconds},
        "required": ["count", "median_s", "p90_s"]})
    };
    let time = |what: &str| {
        query_param(
            "",
            what,
            json!({"type": "integer", "minimum": 0,
        "maximum": crate::http::reports::MAX_TIME}),
        )
    };
    let named = |name: &str, mut param: Value| {
        param["name"] = json!(name);
        param
    };
    let group = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "key": {"type": ["string", "null"], "description": "`YYYY-MM-DD` (a day, or a week's Monday), a level, a team, a holder's id, or null for tickets held by nobody"},
            "opened": count, "closed": count, "reopened": count,
            "first_response": durations("Seconds from opening to the first public staff message, counted when it was posted"),
            "resolution": durations("Seconds from opening (or the latest reopen) to the close, counted at the close"),
            "sla_breaches": count,
            "feedback": {"type": "object", "additionalProperties": false, "properties": {
                "count": count, "average": {"type": ["number", "null"]},
                "distribution": {"type": "array", "items": count, "minItems": 5, "maxItems": 5}},
                "required": ["count", "average", "distribution"]},
            "messages": {"type": "object", "additionalProperties": false,
                "properties": {"customer": count, "staff": count}, "required": ["customer", "staff"]}
        },
        "required": ["key", "opened", "closed", "reopened", "first_response", "resolution",
                     "sla_breaches", "feedback", "messages"]
    });
    let report = json!({
        "type": "object", "additionalProperties": false,
        "properties": {"from": {"type": "integer"}, "to": {"type": "integer"},
            "group_by": enum_names(&groupings),
            "groups": {"type": "array", "items": group}},
        "required": ["from", "to", "group_by", "groups"]
    });
    let mut answer = ok(
        "The report; with `Accept: text/csv`, one CSV row per group",
        report,
    );
    answer["content"]["text/csv"] = json!({"schema": {"type": "string",
        "description": format!("Header `{CSV_HEADER}`, then one row per group")}});
    let paths = json!({
        "/api/v1/reports": {
            "get": {
                "operationId": "report", "tags": ["reports"],
                "summary": "Opened, closed, reopened, answer and resolution times, SLA breaches, ratings and messages over a window (ADMIN)",
                "parameters": [
                    named("from", time("Window start, epoch ms, inclusive (default: `to` minus 30 days)")),
                    named("to", time("Window end, epoch ms, exclusive (default: the end of the current UTC day)")),
                    query_param("group_by", "`day` (UTC, default), `week` (from Monday), `issue_level`, `support_role` or `assignee`: what the ticket was when each fact happened",
                        enum_names(&groupings)),
                    named("as_of", time("Answer as the data stood then: only events recorded at or before it"))
                ],
                "responses": responses(json!({"200": answer}), &[400, 401, 403, 429, 500, 503])
            }
        }
    });
    match paths {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn build() -> Value {
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
        "Reply",
        serde_json::to_value(schemars::schema_for!(ReplyView)).unwrap_or_default(),
    );
    component(
        &mut schemas,
        "Block",
        serde_json::to_value(schemars::schema_for!(BlockView)).unwrap_or_default(),
    );
    component(
        &mut schemas,
        "EventEnvelope",
        serde_json::to_value(schemars::schema_for!(EventEnvelope)).unwrap_or_default(),
    );
    schemas.insert(
        "Error".into(),
        json!({
            "description": "The error envelope of the original API specification.",
            "type": "object",
            "properties": {
                "error": enum_names(&["BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND",
                    "METHOD_NOT_ALLOWED", "REQUEST_TIMEOUT", "CONFLICT", "RATELIMIT",
                    "INTERNAL_SERVER_ERROR",
                    "SERVICE_UNAVAILABLE"]),
                "message": {"type": "string", "minLength": 1},
                "request_id": {"type": "string", "description": "On a 500 only"},
                "errors": {"description": "On a 400 only", "type": "array",
                           "items": reference("FieldError")}
            },
            "required": ["error", "message"]
        }),
    );
    for (name, code, description) in [
        ("Unauthorized", "UNAUTHORIZED", "401"),
        ("Forbidden", "FORBIDDEN", "403"),
        ("NotFound", "NOT_FOUND", "404"),
        ("MethodNotAllowed", "METHOD_NOT_ALLOWED", "405"),
        ("RequestTimeout", "REQUEST_TIMEOUT", "408"),
        ("Conflict", "CONFLICT", "409"),
        ("RateLimited", "RATELIMIT", "429"),
        ("Unavailable", "SERVICE_UNAVAILABLE", "503"),
    ] {
        schemas.insert(
            name.into(),
            envelope(code, &format!("The {description} envelope.")),
        );
    }
    let mut internal = envelope("INTERNAL_SERVER_ERROR", "The 500 envelope.");
    internal["properties"]["request_id"] =
        json!({"type": "string", "minLength": 1, "description": "Matches the log line"});
    internal["required"] = json!(["error", "message", "request_id"]);
    schemas.insert("InternalError".into(), internal);
    schemas.insert(
        "FieldError".into(),
        json!({
            "description": "One invalid field.",
            "type": "object", "additionalProperties": false,
            "properties": {
                "location": {"type": "string",
                    "description": "The field (`topic`, `attachments[2]`; an unknown field as the body spells it, even empty), `query.<name>`, `query`, `header.<name>` or `body`"},
                "message": {"type": "string", "minLength": 1},
                "type": enum_names(FIELD_ERROR_TYPES),
                "context": {"type": ["object", "null"],
                    "description": "The limit or the allowed values, when there is one"}
            },
            "required": ["location", "message", "type", "context"]
        }),
    );
    schemas.insert(
        "BadRequest".into(),
        json!({
            "description": "The 400 envelope with its field errors.",
            "type": "object", "additionalProperties": false,
            "properties": {
                "error": {"type": "string", "const": "BAD_REQUEST"},
                "message": {"type": "string", "minLength": 1},
                "errors": {"type": "array", "minItems": 1, "items": reference("FieldError")}
            },
            "required": ["error", "message", "errors"]
        }),
    );

    let roles = names(UserRole::ALL);
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let support_roles = names(SupportRole::ALL);
    let support_roles: Vec<&str> = support_roles.iter().map(String::as_str).collect();
    let issue_levels = names(IssueLevel::ALL);
    let issue_levels: Vec<&str> = issue_levels.iter().map(String::as_str).collect();
    let statuses = names(TicketStatus::ALL);
    let statuses: Vec<&str> = statuses.iter().map(String::as_str).collect();

    // What each kind of route can answer besides its success.
    // A route that reads a body can also answer 408 (the body time-out).
    // 403: a blocked user's open (ADR 0021); 409: the opener has `MAX_OPEN_TICKETS_PER_USER`
    // tickets open already.
    let create = [400, 401, 403, 408, 409, 429, 500, 503];
    let list = [400, 401, 403, 429, 500, 503];
    let read = [400, 401, 403, 404, 429, 500, 503];
    let write = [400, 401, 403, 404, 409, 429, 500, 503];
    let write_body = [400, 401, 403, 404, 408, 409, 429, 500, 503];
    let ticket_ok = json!({"200": ok("The ticket", reference("Ticket"))});
    let message_ok = json!({"200": ok("The message", reference("Message"))});
    // `null` counts as absent; at least one of the two must be given.
    let routing = |values: &[&str]| {
        let mut allowed: Vec<Value> = values.iter().map(|v| json!(v)).collect();
        allowed.push(Value::Null);
        json!({"type": ["string", "null"], "enum": allowed})
    };

    let mut paths = json!({
        "/api/v1/tickets": {
            "post": {
                "operationId": "createTicket", "summary": "Open a ticket (409 when the opener has as many open as MAX_OPEN_TICKETS_PER_USER allows)", "tags": ["tickets"],
                "parameters": [idempotency_key("1–200 visible ASCII characters; a retry with the same key (same user) answers with the ticket the first try opened instead of opening another; another value is a 400 of type `invalid_header`")],
                "requestBody": json_body(true, json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {"topic": text(limits::TOPIC_MAX),
                                   "description": text(limits::DESCRIPTION_MAX)},
                    "required": ["topic", "description"]})),
                "responses": responses(ticket_ok.clone(), &create)
            },
            "get": {
                "operationId": "listTickets", "summary": "List tickets, newest first (customers: their own)",
                "tags": ["tickets"],
                "parameters": [limit(DEFAULT_LIMIT, MAX_LIMIT), cursor(),
                    filter("status", &statuses),
                    filter("issue_level", &issue_levels),
                    filter("support_role", &support_roles),
                    query_param("user_id", "Filter by opener (empty: none). A TEMP_USER or CUSTOMER may only give their own id: another is a 403",
                        json!({"type": "string"})),
                    query_param("assignee_id", "Filter by holder: an id, `me` or `none` (empty: no filter)",
                        json!({"type": "string", "maxLength": limits::ASSIGNEE_ID_MAX})),
                    json!({"name": "tag", "in": "query", "style": "form", "explode": true,
                        "description": "Staff only (a customer using it gets 403): tickets carrying every tag given (repeat it), case-insensitive; empty values are ignored",
                        "schema": {"type": "array", "items": {"type": "string", "pattern": TAG_PATTERN_OR_EMPTY}}}),
                    query_param("sla", "Staff only (a customer using it gets 403): `breached` (a service-level target recorded missed) or `due_within:<minutes>` (nothing missed, and the earliest due time not yet met within that many minutes from now; decimals allowed); another value is a 400 of type `invalid_query` (ADR 0025)",
                        json!({"type": "string"}))],
                "responses": responses(json!({"200": page_of("A page of tickets", "Ticket")}), &list)
            }
        },
        "/api/v1/tickets/{ticket_id}": {
            "parameters": [ticket_id()],
            "get": {
                "operationId": "getTicket", "summary": "Read a ticket (owner, staff)", "tags": ["tickets"],
                "parameters": [as_of()],
                "responses": responses(ticket_ok.clone(), &read)
            },
            "patch": {
                "operationId": "updateTicket", "summary": "Re-route a ticket (staff)", "tags": ["tickets"],
                "requestBody": json_body(true, json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {"support_role": routing(&support_roles),
                                   "issue_level": routing(&issue_levels),
                                   "assignee_id": {"anyOf": [text(limits::ASSIGNEE_ID_MAX), {"type": "null"}],
                                       "description": "Hand the ticket to this id, or to nobody (`null`). An AGENT only while it is unassigned or theirs; an ADMIN always"},
                                   "tags": {"type": ["array", "null"], "maxItems": limits::TAGS_MAX,
                                       "items": {"type": "string", "pattern": TAG_PATTERN},
                                       "description": "Replace the tags (stored lower-case, a repeated tag kept once); `null` leaves them"}},
                    "anyOf": [
                        {"required": ["support_role"], "properties": {"support_role": {"type": "string"}}},
                        {"required": ["issue_level"], "properties": {"issue_level": {"type": "string"}}},
                        {"required": ["assignee_id"]},
                        {"required": ["tags"], "properties": {"tags": {"type": "array"}}}
                    ]})),
                "responses": responses(ticket_ok.clone(), &write_body)
            }
        },
        "/api/v1/tickets/{ticket_id}/claim": {
            "parameters": [ticket_id()],
            "post": {
                "operationId": "claimTicket", "summary": "Hold a ticket (staff): 409 if another member holds it, unless you are an ADMIN", "tags": ["tickets"],
                "responses": responses(ticket_ok.clone(), &write)
            }
        },
        "/api/v1/tickets/{ticket_id}/unclaim": {
            "parameters": [ticket_id()],
            "post": {
                "operationId": "unclaimTicket", "summary": "Let go of a ticket (its holder, or an ADMIN)", "tags": ["tickets"],
                "responses": responses(ticket_ok.clone(), &write)
            }
        },
        "/api/v1/tickets/{ticket_id}/close": {
            "parameters": [ticket_id()],
            "post": {
                "operationId": "closeTicket", "summary": "Close a ticket (owner, staff)", "tags": ["tickets"],
                "requestBody": json_body(false, json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {"reason": optional_text(limits::REASON_MAX)}})),
                "responses": responses(ticket_ok.clone(), &write_body)
            }
        },
        "/api/v1/tickets/{ticket_id}/reopen": {
            "parameters": [ticket_id()],
            "post": {
                "operationId": "reopenTicket", "summary": "Reopen a ticket (staff)", "tags": ["tickets"],
                "responses": responses(ticket_ok, &write)
            }
        },
        "/api/v1/tickets/{ticket_id}/feedback": {
            "parameters": [ticket_id()],
            "post": {
                "operationId": "giveFeedback", "summary": "Rate a closed ticket (its owner, once ever: 409 again, even after a reopen; 409 while open; 403 for anybody else, staff included)", "tags": ["tickets"],
                "requestBody": json_body(true, json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5},
                                   "comment": optional_text(limits::FEEDBACK_COMMENT_MAX)},
                    "required": ["rating"]})),
                "responses": responses(json!({"200": ok("The ticket, with its `feedback`", reference("Ticket"))}), &write_body)
            }
        },
        "/api/v1/tickets/{ticket_id}/messages": {
            "parameters": [ticket_id()],
            "post": {
                "operationId": "postMessage", "summary": "Post a message (owner, staff; `internal`: staff only)",
                "tags": ["messages"],
                "parameters": [idempotency_key("1–200 visible ASCII characters; a retry with the same key (same user, same ticket) answers with the message the first try posted instead of posting it again; another value is a 400 of type `invalid_header`")],
                "requestBody": json_body(true, json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {"content": text(limits::MESSAGE_MAX), "attachments": attachments(),
                                   "internal": {"type": ["boolean", "null"]}},
                    "required": ["content"]})),
                "responses": responses(message_ok.clone(), &write_body)
            },
            "get": {
                "operationId": "listMessages", "summary": "List messages, oldest first (`order=desc`: newest first)",
                "tags": ["messages"],
                "parameters": [limit(DEFAULT_LIMIT, MAX_LIMIT), cursor(), as_of(),
                    query_param("order", "asc (default; also when empty) or desc; another value is a 400 of type `invalid_query`",
                        enum_names(&["asc", "desc", ""]))],
                "responses": responses(json!({"200": page_of("A page of messages", "Message")}), &read)
            }
        },
        "/api/v1/tickets/{ticket_id}/messages/{message_id}": {
            "parameters": [ticket_id(), message_id()],
            "patch": {
                "operationId": "editMessage", "summary": "Edit a message (author, staff)", "tags": ["messages"],
                "requestBody": json_body(true, json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {"content": text(limits::MESSAGE_MAX), "attachments": attachments()},
                    "required": ["content"]})),
                "responses": responses(message_ok, &write_body)
            },
            "delete": {
                "operationId": "deleteMessage", "summary": "Delete a message (author, staff)", "tags": ["messages"],
                "responses": responses(json!({"204": no_content("Deleted")}), &write)
            }
        },
        "/api/v1/tickets/{ticket_id}/events": {
            "parameters": [ticket_id()],
            "get": {
                "operationId": "ticketEvents", "summary": "The ticket's events in stream order (ADMIN)",
                "tags": ["history"],
                "parameters": [limit(EVENTS_PAGE, EVENTS_PAGE), cursor()],
                "responses": responses(json!({"200": page_of("A page of the events", "EventEnvelope")}), &read)
            }
        },
        "/api/v1/events": {
            "get": {
                "operationId": "eventsFeed",
                "summary": "The global log after a position, with envelopes (ADMIN): the changes feed",
                "tags": ["history"],
                "parameters": [
                    query_param("after", "Events after this position (default 0: from the first)",
                        json!({"type": "integer", "minimum": 0, "maximum": i64::MAX})),
                    query_param("limit", &format!("Page size, 1–{FEED_MAX} (default {FEED_DEFAULT})"),
                        json!({"type": "integer", "minimum": 1, "maximum": FEED_MAX, "default": FEED_DEFAULT})),
                    query_param("wait", "Long poll: when nothing is after `after`, wait up to this many seconds for the first new event (default 0); `[]` when none came",
                        json!({"type": "integer", "minimum": 0, "maximum": FEED_MAX_WAIT, "default": 0}))
                ],
                "responses": responses(json!({"200": page_of("Events in log order; a full page has a `Link` to the next", "EventEnvelope")}), &[400, 401, 403, 429, 500, 503])
            }
        },
        "/api/v1/dev/token": {
            "post": {
                "operationId": "devToken", "summary": "Sign a token (DEVELOPMENT only; 404 in PRODUCTION)",
                "tags": ["development"], "security": [],
                "requestBody": json_body(true, json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {"username": text(64),
                                   "role": enum_names(&roles),
                                   "id": optional_text(64)},
                    "required": ["username", "role"]})),
                "responses": responses(json!({"200": ok("The token", json!({
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "token": {"type": "string", "minLength": 1},
                        "user": {"type": "object", "additionalProperties": false, "properties": {
                            "id": {"type": "string", "minLength": 1}, "username": {"type": "string", "minLength": 1},
                            "email": {"type": "string", "minLength": 1}, "role": enum_names(&roles)},
                            "required": ["id", "username", "email", "role"]},
                        "expires_in": {"type": "integer", "minimum": 1, "description": "Seconds"}
                    },
                    "required": ["token", "user", "expires_in"]}))}), &[400, 404, 408, 429, 500])
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi", "summary": "This document", "tags": ["meta"], "security": [],
                "responses": {"200": ok("The OpenAPI document", json!({"type": "object"}))}
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics", "summary": "Prometheus scrape (OpenMetrics text; docs/metrics.md)", "tags": ["meta"],
                "security": [{"metricsToken": []}, {}],
                "responses": responses(json!({"200": {
                    "description": "Every series; open when METRICS_TOKEN is unset",
                    "headers": {"x-request-id": request_id()},
                    "content": {"application/openmetrics-text": {"schema": {"type": "string", "minLength": 1}}}}}),
                    &[401, 429, 500])
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz", "summary": "Liveness", "tags": ["meta"], "security": [],
                "responses": {"200": ok("Alive", json!({"type": "object", "additionalProperties": false,
                    "properties": {"status": {"type": "string", "const": "ok"}}, "required": ["status"]}))}
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz", "summary": "Readiness", "tags": ["meta"], "security": [],
                "responses": {
                    "200": ok("The store answers", json!({"type": "object", "additionalProperties": false,
                        "properties": {"status": {"type": "string", "const": "ready"},
                                       "position": {"type": "integer", "minimum": 0, "description": "The last committed event"},
                                       "socket_deadlines": {"type": "integer", "minimum": 0, "description": "Sockets of this instance with a deadline pending: anonymous ones (the authorization timeout) and those whose token has an `exp`"},
                                       "webhook_lag": {"type": "integer", "minimum": 0, "description": "With partner webhooks on (WEBHOOK_URL), events after the webhook checkpoint: how far delivery is behind the head. Present once the checkpoint exists; every event after it will be delivered (docs/webhooks.md)"}},
                        "required": ["status", "position", "socket_deadlines"]})),
                    "503": ok("The store cannot be used", reference("Unavailable"))
                }
            }
        }
    });
    if let Some(paths) = paths.as_object_mut() {
        paths.extend(helpdesk_paths());
        paths.extend(search_paths(
            &mut schemas,
            &statuses,
            &issue_levels,
            &support_roles,
        ));
        paths.extend(reports_paths());
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ticketd REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Event-sourced support tickets. Every response carries `x-request-id`. \
                A known path with another method is a 405 `METHOD_NOT_ALLOWED` envelope, an \
                unknown path a 404 `NOT_FOUND` one. See docs/api.md."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "headers": {
                "RequestId": {"required": true, "description": "This request's id, in every log line about it",
                    "schema": {"type": "string", "minLength": 1}}
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "HS256; claims `id`, `username`, `email`, `role`"},
                "metricsToken": {"type": "http", "scheme": "bearer",
                    "description": "METRICS_TOKEN, for /metrics only; not needed when it is unset"}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        matcher(pattern)(text)
    }

    /// Reads `pattern` as a JSON Schema validator does, compiled once.
    fn matcher(pattern: &str) -> impl Fn(&str) -> bool {
        let validator = jsonschema::validator_for(&json!({"type": "string", "pattern": pattern}))
            .expect("the pattern compiles");
        move |text| validator.is_valid(&json!(text))
    }

    /// The cursor pattern takes exactly what `str::parse::<u64>` takes up to the bound.
    #[test]
    fn numerals_up_to_a_bound_are_what_the_parser_takes() {
        for max in [0u64, 1, 7, 9, 10, 19, 20, 99, 100, 101, 205, 1000] {
            let pattern = numeral_up_to(max);
            let allows = matcher(&pattern);
            assert!(allows(""), "{pattern}: empty");
            for n in 0..=1100u64 {
                for text in [n.to_string(), format!("+{n}"), format!("00{n}")] {
                    assert_eq!(allows(&text), n <= max, "{pattern}: {text}");
                }
            }
            for bad in ["+", "-0", " 1", "1 ", "0x1", "1e3", "١"] {
                assert!(!allows(bad), "{pattern}: {bad}");
            }
        }
        let cursor = numeral_up_to(i64::MAX as u64);
        assert!(matches(&cursor, "9223372036854775807"));
        assert!(matches(&cursor, "0009223372036854775807"));
        assert!(matches(&cursor, "8999999999999999999"));
        assert!(!matches(&cursor, "9223372036854775808"));
        assert!(!matches(&cursor, "9300000000000000000"));
        assert!(!matches(&cursor, "10000000000000000000"));
    }

    #[test]
    fn text_must_have_something_besides_white_space() {
        let pattern = not_blank();
        for blank in ["", " ", "\t\n", "\u{85}\u{a0}\u{3000}", "\u{2028}\u{200a}"] {
            assert!(!matches(&pattern, blank), "{blank:?}");
            assert!(blank.trim().is_empty());
        }
        for text in ["a", " a ", "\u{feff}", "\u{200b}"] {
            assert!(matches(&pattern, text), "{text:?}");
            assert!(!text.trim().is_empty());
        }
    }

    #[test]
    fn the_url_pattern_is_is_http_url() {
        let pattern = http_url();
        for url in [
            "http://example.com/a.png",
            "https://cdn.example.com:8443/x?y=1#z",
            "https://x",
            "https://x/@y",
            "javascript:alert(1)",
            "ftp://example.com/x",
            "https://",
            "https:///path",
            "https://:80/",
            "https://user@evil.example/",
            "https://exa mple.com/",
            "https://example.com/\u{7f}",
            "https://example.com/\u{3000}",
            "HTTPS://example.com/",
            "data:text/html,hi",
            "//example.com/x",
            "http://[",
            "http://[]/",
            "http://[:]/",
            "http://[::1]:5000/hook",
            "http://[::1/x",
            "http://[::1]x/",
            "http://[evil.example]/",
            "http://example.com:/",
            "http://example.com:80a/",
            "http://example.com:123456/",
            "http://.example.com/",
            "http://-x.example/",
            "http://exa<mple.com/",
            "https://bücher.example/",
            "https://xn--bcher-kva.example/",
            "http://127.0.0.1/x",
        ] {
            assert_eq!(matches(&pattern, url), limits::is_http_url(url), "{url}");
        }
    }
}
