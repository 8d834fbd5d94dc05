//! Input from requests: the caller from the bearer token, JSON bodies with every bad field
//! reported at once, and query parameters. Each failure is an [`ApiError`] in the API's envelope.

use crate::app::AppState;
use crate::auth::{AuthError, Principal};
use crate::http::error::{ApiError, FieldError};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use ticketd_events::limits;

/// Largest request body, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The authenticated caller.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        let verified = match token {
            Some(token) => state.verifier.verify(token),
            None => Err(AuthError::Missing),
        };
        verified.map(Auth).map_err(|e| {
            let addr = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            match state.limits.check_anonymous(addr) {
                Err(limited) => limited.into(),
                Ok(()) => ApiError::Unauthorized(e.to_string()),
            }
        })
    }
}

/// Path parameters, like axum's `Path`, with its refusals (a segment that is not valid UTF-8)
/// answered in our envelope instead of the framework's plain text.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::field(FieldError::new(
            "path",
            "invalid_path",
            "A segment of the path is not valid percent-encoded UTF-8",
        ))
    }
}

/// Reads a JSON object body of at most [`BODY_LIMIT`] bytes. An empty body is `None`.
pub async fn json_object(body: Body) -> Result<Option<Map<String, Value>>, ApiError> {
    // A Content-Length over the limit is refused before a byte of the body is read: reading
    // could only end in the same answer, or in a 408 after the body time-out for a body that
    // is never sent (and a client that sent `Expect: 100-continue` need not send it at all).
    if http_body::Body::size_hint(&body).lower() > BODY_LIMIT as u64 {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|e| body_read_error(e.into_inner()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(ApiError::field(FieldError::new(
            "body",
            "type",
            "Body must be a JSON object",
        ))),
        Err(e) => Err(ApiError::field(
            FieldError::new("body", "json_invalid", "Body is not valid JSON")
                .with_context(json!({"line": e.line(), "column": e.column()})),
        )),
    }
}

/// Why a body could not be read: too large, or broken on the wire (a malformed chunked
/// encoding, a connection closed mid-body). A body that arrives too slowly fails here too, and
/// the body time-out (`body_timeout.rs`) then answers 408 in place of this.
fn body_read_error(cause: axum::BoxError) -> ApiError {
    if cause.is::<http_body_util::LengthLimitError>() {
        return too_large();
    }
    ApiError::field(FieldError::new(
        "body",
        "malformed",
        "The body could not be read: its transfer encoding is malformed or it ended early",
    ))
}

fn too_large() -> ApiError {
    ApiError::field(
        FieldError::new(
            "body",
            "too_large",
            format!("Body is larger than {BODY_LIMIT} bytes"),
        )
        .with_context(json!({"limit": BODY_LIMIT})),
    )
}

/// Like [`json_object`], but a body is required.
pub async fn required_json_object(body: Body) -> Result<Map<String, Value>, ApiError> {
    json_object(body).await?.ok_or_else(|| {
        ApiError::field(FieldError::new(
            "body",
            "missing",
            "A JSON body is required",
        ))
    })
}

/// Validates the fields of a JSON object, collecting every error before answering.
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    /// Starts validating `map`.
    pub fn new(map: Map<String, Value>) -> Self {
        Fields {
            map,
            errors: Vec::new(),
        }
    }

    /// A required string of 1..=`max` characters (after trimming for emptiness).
    pub fn string(&mut self, name: &'static str, max: usize) -> String {
        match self.map.remove(name) {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(
                    name,
                    "missing",
                    format!("{name} is required"),
                ));
                String::new()
            }
            Some(value) => self.check_string(name, value, max).unwrap_or_default(),
        }
    }

    /// An optional string of 1..=`max` characters; `null` counts as absent.
    pub fn optional_string(&mut self, name: &'static str, max: usize) -> Option<String> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(value) => self.check_string(name, value, max),
        }
    }

    fn check_string(&mut self, name: &'static str, value: Value, max: usize) -> Option<String> {
        let Value::String(text) = value else {
            self.errors.push(
                FieldError::new(name, "type", format!("{name} must be a string"))
                    .with_context(json!({"expected": "string", "got": type_name(&value)})),
            );
            return None;
        };
        if text.trim().is_empty() {
            self.errors.push(FieldError::new(
                name,
                "empty",
                format!("{name} must not be empty"),
            ));
            return None;
        }
        let length = text.chars().count();
        if length > max {
            self.errors.push(
                FieldError::new(
                    name,
                    "too_long",
                    format!("{name} must be at most {max} characters"),
                )
                .with_context(json!({"max": max, "length": length})),
            );
            return None;
        }
        Some(text)
    }

    /// A string of 1..=`max` characters that may be `null`: `None` when absent, `Some(None)`
    /// for `null`.
    pub fn nullable_string(&mut self, name: &'static str, max: usize) -> Option<Option<String>> {
        match self.map.remove(name)? {
            Value::Null => Some(None),
            value => self.check_string(name, value, max).map(Some),
        }
    }

    /// Optional tags: an array of at most [`limits::TAGS_MAX`] tags, each 1–32 ASCII
    /// letters, digits, `-` or `_`; answered lower-case, each once at its first place.
    pub fn optional_tags(&mut self, name: &'static str) -> Option<Vec<String>> {
        let items = match self.map.remove(name)? {
            Value::Null => return None,
            Value::Array(items) => items,
            other => {
                self.errors.push(
                    FieldError::new(name, "type", format!("{name} must be an array of tags"))
                        .with_context(json!({"expected": "array", "got": type_name(&other)})),
                );
                return None;
            }
        };
        if items.len() > limits::TAGS_MAX {
            self.errors.push(
                FieldError::new(
                    name,
                    "too_many",
                    format!("at most {} tags", limits::TAGS_MAX),
                )
                .with_context(json!({"max": limits::TAGS_MAX, "count": items.len()})),
            );
            return None;
        }
        let before = self.errors.len();
        let mut tags = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(tag) if limits::is_tag(tag) => tags.push(tag.as_str()),
                Value::String(_) => self.errors.push(
                    FieldError::new(
                        format!("{name}[{i}]"),
                        "invalid_value",
                        format!(
                            "a tag is 1 to {} ASCII letters, digits, - or _",
                            limits::TAG_MAX
                        ),
                    )
                    .with_context(
                        json!({"max_length": limits::TAG_MAX, "pattern": "^[A-Za-z0-9_-]{1,32}$"}),
                    ),
                ),
                other => self.errors.push(
                    FieldError::new(format!("{name}[{i}]"), "type", "tags must be strings")
                        .with_context(json!({"expected": "string", "got": type_name(other)})),
                ),
            }
        }
        if self.errors.len() != before {
            return None;
        }
        // Every item is a tag and there are at most TAGS_MAX of them: this cannot refuse.
        limits::normalize_tags(tags)
    }

    /// A required whole number within `range`.
    pub fn integer_in(
        &mut self,
        name: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let value = self.map.remove(name);
        let (min, max) = (*range.start(), *range.end());
        match value {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(
                    name,
                    "missing",
                    format!("{name} is required"),
                ));
                None
            }
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| range.contains(&n)) => n.as_i64(),
            Some(other) => {
                self.errors.push(
                    FieldError::new(
                        name,
                        "invalid_value",
                        format!("{name} must be a whole number from {min} to {max}"),
                    )
                    .with_context(json!({"min": min, "max": max, "got": type_name(&other)})),
                );
                None
            }
        }
    }

    /// An optional boolean.
    pub fn optional_bool(&mut self, name: &'static str) -> Option<bool> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(other) => {
                self.errors.push(
                    FieldError::new(name, "type", format!("{name} must be true or false"))
                        .with_context(json!({"expected": "boolean", "got": type_name(&other)})),
                );
                None
            }
        }
    }

    /// An optional value of a closed vocabulary.
    pub fn optional_enum<T: std::str::FromStr<Err = ticketd_events::roles::UnknownValue>>(
        &mut self,
        name: &'static str,
    ) -> Option<T> {
        let value = self.map.remove(name)?;
        let Value::String(text) = &value else {
            if !value.is_null() {
                self.errors.push(FieldError::new(
                    name,
                    "type",
                    format!("{name} must be a string"),
                ));
            }
            return None;
        };
        match text.parse::<T>() {
            Ok(v) => Some(v),
            Err(unknown) => {
                self.errors.push(
                    FieldError::new(
                        name,
                        "invalid_value",
                        format!("{name} must be one of {}", unknown.allowed.join(", ")),
                    )
                    .with_context(json!({"allowed": unknown.allowed})),
                );
                None
            }
        }
    }

    /// Optional attachment links: an array of at most 10 absolute http(s) URLs.
    pub fn optional_attachments(&mut self, name: &'static str) -> Option<Vec<String>> {
        let value = self.map.remove(name)?;
        let items = match value {
            Value::Null => return None,
            Value::Array(items) => items,
            other => {
                self.errors.push(
                    FieldError::new(name, "type", format!("{name} must be an array of URLs"))
                        .with_context(json!({"expected": "array", "got": type_name(&other)})),
                );
                return None;
            }
        };
        if items.len() > limits::ATTACHMENTS_MAX {
            self.errors.push(
                FieldError::new(
                    name,
                    "too_many",
                    format!("at most {} attachments", limits::ATTACHMENTS_MAX),
                )
                .with_context(json!({"max": limits::ATTACHMENTS_MAX, "count": items.len()})),
            );
            return None;
        }
        let before = self.errors.len();
        let mut urls = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let location = format!("{name}[{i}]");
            match item {
                Value::String(url)
                    if url.chars().count() <= limits::ATTACHMENT_URL_MAX
                        && limits::is_http_url(&url) =>
                {
                    urls.push(url)
                }
                Value::String(_) => self.errors.push(
                    FieldError::new(
                        location,
                        "invalid_url",
                        "attachments must be absolute http or https URLs",
                    )
                    .with_context(json!({"max_length": limits::ATTACHMENT_URL_MAX})),
                ),
                other => self.errors.push(
                    FieldError::new(location, "type", "attachments must be strings")
                        .with_context(json!({"expected": "string", "got": type_name(&other)})),
                ),
            }
        }
        (self.errors.len() == before).then_some(urls)
    }

    /// Reports what went wrong, including fields nobody asked for.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let mut unknown: Vec<_> = std::mem::take(&mut self.map)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        unknown.sort();
        for name in unknown {
            self.errors.push(FieldError::new(
                name.clone(),
                "unknown_field",
                format!("{name} is not a known field"),
            ));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::BadRequest(self.errors))
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Query parameters, refusing what we cannot read.
pub struct Query(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        serde_urlencoded_pairs(raw).map(Query).ok_or_else(|| {
            ApiError::field(FieldError::new(
                "query",
                "invalid_query",
                "the query string cannot be read",
            ))
        })
    }
}

fn serde_urlencoded_pairs(raw: &str) -> Option<Vec<(String, String)>> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&format!("/?{raw}").parse().ok()?)
        .ok()
        .map(|q| q.0)
}

impl Query {
    /// The last value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether `id` looks like one of our ids (a UUID); others cannot exist, so they are 404.
pub fn is_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok()
}

/// Longest `Idempotency-Key` taken, in bytes.
const IDEMPOTENCY_KEY_MAX: usize = 200;

/// The `Idempotency-Key` header, if any: 1–200 visible ASCII characters.
/// The request's `Idempotency-Key`, if it sent one: a retry with the same key is answered
/// with the first request's result instead of acting twice (ADR 0014).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if (1..=IDEMPOTENCY_KEY_MAX).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key))
        }
        _ => Err(ApiError::field(
            FieldError::new(
                "header.Idempotency-Key",
                "invalid_header",
                format!(
                    "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"
                ),
            )
            .with_context(json!({"max_length": IDEMPOTENCY_KEY_MAX})),
        )),
    }
}
