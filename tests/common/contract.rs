//! The OpenAPI document as a contract over every answer the black-box tests receive: the
//! harness hands each reply to [`check`] before the test sees it, so an answer the document does
//! not list (a status, a body shape, a missing header) fails whichever test provoked it, and the
//! document cannot drift from the server unnoticed. Paths the document does not describe (the
//! web console, Socket.IO) are left alone; an unknown API path must be the 404 envelope and a
//! known path with an undocumented method the 405 one, as the document's description says.

use super::Reply;
use jsonschema::Validator;
use reqwest::Method;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// The document the server serves, from the same function.
pub fn document() -> &'static Value {
    ticketd::http::openapi::document()
}

/// Compiled schemas by their place in the document; compiling is the slow part.
static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<Validator>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The validator of the schema at `pointer`, with the document's components in reach of its
/// `$ref`s.
fn validator(pointer: &str) -> Arc<Validator> {
    let mut cache = VALIDATORS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(pointer) {
        return v.clone();
    }
    let doc = document();
    let mut root = doc
        .pointer(pointer)
        .unwrap_or_else(|| panic!("no schema at {pointer}"))
        .clone();
    root.as_object_mut()
        .unwrap_or_else(|| panic!("the schema at {pointer} is not an object"))
        .insert("components".into(), doc["components"].clone());
    let compiled = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"));
    let compiled = Arc::new(compiled);
    cache.insert(pointer.to_string(), compiled.clone());
    compiled
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Follows a `$ref` into the document.
fn resolve(value: &Value) -> (&Value, Option<String>) {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').unwrap_or(r);
            let target = document()
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
            (target, Some(pointer.to_string()))
        }
        None => (value, None),
    }
}

/// The documented path template that `path` (no query) is an instance of, literal paths first.
fn template_of(path: &str) -> Option<(&'static str, &'static Map<String, Value>)> {
    let paths = document()["paths"].as_object()?;
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, &str, &Map<String, Value>)> = None;
    for (template, item) in paths {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut params = 0;
        let fits = parts.iter().zip(&segments).all(|(t, s)| {
            if t.starts_with('{') && t.ends_with('}') {
                params += 1;
                !s.is_empty()
            } else {
                t == s
            }
        });
        if fits && best.is_none_or(|(p, _, _)| params < p) {
            best = item
                .as_object()
                .map(|item| (params, template.as_str(), item));
        }
    }
    best.map(|(_, t, item)| (t, item))
}

/// Checks `body` against the schema at `pointer`.
fn conforms(pointer: &str, body: &Value) -> Result<(), String> {
    let errors: Vec<String> = validator(pointer)
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The path of `target` (a path or an absolute URL) without its query.
fn path_of(target: &str) -> &str {
    let path = match target.find("://") {
        Some(scheme) => {
            let rest = &target[scheme + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        None => target,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

/// Whether `reply` to `method target` is an answer the document lists, with the body and
/// headers it declares for it; `Err` says how it is not.
pub fn check(method: &Method, target: &str, reply: &Reply) -> Result<(), String> {
    let (status, headers, body) = reply;
    let path = path_of(target);
    // The web console and Socket.IO are not part of the REST API the document describes; HEAD
    // and OPTIONS (CORS preflights) are answered by the framework, not by the routes.
    if path == "/"
        || path.starts_with("/console/")
        || path.starts_with("/socket.io/")
        || matches!(*method, Method::HEAD | Method::OPTIONS)
    {
        return Ok(());
    }
    let code = status.as_u16().to_string();
    let Some((template, item)) = template_of(path) else {
        return match status.as_u16() {
            404 => conforms("/components/schemas/NotFound", body),
            _ => Err(format!(
                "{path} is not in the document, yet it answered {code}"
            )),
        };
    };
    let verb = method.as_str().to_ascii_lowercase();
    let Some(operation) = item.get(&verb) else {
        return match status.as_u16() {
            405 => conforms("/components/schemas/MethodNotAllowed", body),
            _ => Err(format!(
                "{method} {template} is not in the document, yet it answered {code}"
            )),
        };
    };
    let Some(response) = operation["responses"].get(&code) else {
        return Err(format!(
            "{method} {template} answered {code}, which the document does not list"
        ));
    };
    let base = format!("/paths/{}/{verb}/responses/{code}", escape(template));
    let (response, moved) = resolve(response);
    let base = moved.unwrap_or(base);
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        let (header, _) = resolve(header);
        let Some(value) = headers.get(name.as_str()) else {
            if header["required"] == Value::Bool(true) {
                return Err(format!("{method} {template} {code}: no `{name}` header"));
            }
            continue;
        };
        let text = value
            .to_str()
            .map_err(|_| format!("{method} {template} {code}: `{name}` is not text"))?;
        let typed = match header["schema"]["type"].as_str() {
            Some("integer") => text
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("{method} {template} {code}: `{name}: {text}`"))?,
            _ => Value::String(text.to_string()),
        };
        let compiled = jsonschema::draft202012::new(&header["schema"])
            .map_err(|e| format!("header `{name}` schema: {e}"))?;
        if let Err(e) = compiled.validate(&typed) {
            return Err(format!("{method} {template} {code}: `{name}: {text}`: {e}"));
        }
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match response.get("content").and_then(Value::as_object) {
        Some(content) => {
            let (media, _) = content
                .iter()
                .find(|(media, _)| content_type.starts_with(media.as_str()))
                .ok_or_else(|| {
                    format!("{method} {template} {code}: content type `{content_type}` is not documented")
                })?;
            let pointer = format!("{base}/content/{}/schema", escape(media));
            conforms(&pointer, body)
                .map_err(|e| format!("{method} {template} {code}: {e}\nbody: {body}"))
        }
        None if body.is_null() => Ok(()),
        None => Err(format!(
            "{method} {template} {code}: a body the document does not declare: {body}"
        )),
    }
}
