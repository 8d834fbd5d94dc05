//! The web console: plain HTML, CSS and JavaScript modules from `web/`, compiled into the binary
//! so that it works offline on a fresh machine. `/` is the page; its assets live under
//! `/console/<build>/…`, where `<build>` is a hash of every asset, so browsers may keep them for
//! a year and a new binary is fetched afresh. The page itself is revalidated on every load.
//!
//! In DEVELOPMENT only, `POST /api/v1/dev/token` mints a token for a chosen name and role (the
//! console's "try it" form); in PRODUCTION that route does not exist (404, like any unknown one).

use crate::app::AppState;
use crate::auth::mint;
use crate::config::ServerMode;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::Path;
use crate::http::extract::{Fields, required_json_object};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::LazyLock;
use ticketd_events::UserRole;

/// The page's Content-Security-Policy: only our own scripts, styles and connections (the
/// Socket.IO websocket included); no inline script or style, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// How long a token from the "try it" form lasts.
const DEV_TOKEN_TTL_SECS: u64 = 12 * 3600;

/// One compiled-in file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/dom.js"),
    },
    Asset {
        name: "history.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/history.js"),
    },
    Asset {
        name: "reports.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/reports.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../web/icon.svg"),
    },
    Asset {
        name: "vendor/socket.io.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/vendor/socket.io.min.js"),
    },
];

const INDEX: &str = include_str!("../../web/index.html");

/// FNV-1a, 64 bits: enough to tell builds apart, and no dependency.
fn fnv(parts: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The build tag in asset paths: a hash of every asset.
static BUILD: LazyLock<String> = LazyLock::new(|| {
    let mut parts: Vec<&[u8]> = Vec::new();
    for asset in ASSETS {
        parts.push(asset.name.as_bytes());
        parts.push(asset.body);
    }
    fnv(&parts)
});

/// The page for each mode, with its ETag.
static PAGES: LazyLock<[(String, String); 2]> = LazyLock::new(|| {
    let page = |mode: &str| {
        let body = INDEX.replace("{{build}}", &BUILD).replace("{{mode}}", mode);
        let etag = format!("\"{}\"", fnv(&[body.as_bytes()]));
        (body, etag)
    };
    [page("DEVELOPMENT"), page("PRODUCTION")]
});

/// `/`, `/console/{build}/{*asset}` and, in DEVELOPMENT, `POST /api/v1/dev/token`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/console/{build}/{*asset}", get(asset))
        .route("/api/v1/dev/token", post(dev_token))
}

/// The asset path prefix of this build, e.g. `/console/0123456789abcdef`.
pub fn asset_prefix() -> String {
    format!("/console/{}", *BUILD)
}

fn not_modified(request_headers: &HeaderMap, etag: &str) -> bool {
    request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (body, etag) = match state.config.mode {
        ServerMode::Development => &PAGES[0],
        ServerMode::Production => &PAGES[1],
    };
    let mut response = if not_modified(&headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.clone().into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, value);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn asset(Path((build, name)): Path<(String, String)>) -> Result<Response, ApiError> {
    let found = ASSETS.iter().find(|a| a.name == name);
    let Some(asset) = found.filter(|_| build == *BUILD) else {
        return Err(ApiError::NotFound("No such console file".into()));
    };
    let mut response = asset.body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The build tag changes whenever any asset does: this URL's content never changes.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// `POST /api/v1/dev/token {id?, username, role}` → `{token, user}`: DEVELOPMENT only.
async fn dev_token(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    if state.config.mode != ServerMode::Development {
        return Err(ApiError::NotFound("No such route".into()));
    }
    let addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    state.limits.check_anonymous(addr)?;
    let map = required_json_object(request.into_body()).await?;
    let role_given = map.get("role").is_some_and(|v| !v.is_null());
    let mut fields = Fields::new(map);
    let id = fields.optional_string("id", 64);
    let username = fields.string("username", 64);
    let role = fields.optional_enum::<UserRole>("role");
    let mut errors = match fields.finish() {
        Ok(()) => Vec::new(),
        Err(ApiError::BadRequest(errors)) => errors,
        Err(other) => return Err(other),
    };
    if !role_given {
        errors.push(FieldError::new("role", "missing", "role is required"));
    }
    let Some(role) = role.filter(|_| errors.is_empty()) else {
        return Err(ApiError::BadRequest(errors));
    };
    let username = username.trim().to_string();
    let id = id
        .map(|id| id.trim().to_string())
        .unwrap_or_else(|| format!("dev-{}", slug(&username)));
    let email = format!("{}@example.com", slug(&id));
    let token = mint(
        &state.config.jwt_secret,
        &id,
        &username,
        &email,
        role,
        Some(DEV_TOKEN_TTL_SECS),
    )
    .map_err(|e| ApiError::Internal(format!("cannot sign a token: {e}")))?;
    Ok(Json(json!({
        "token": token,
        "user": {"id": id, "username": username, "email": email, "role": role.as_str()},
        "expires_in": DEV_TOKEN_TTL_SECS,
    })))
}

/// Lower-case letters, digits, `.`, `_` and `-`; anything else becomes `-`.
fn slug(text: &str) -> String {
    let slug: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.trim_matches(|c| c == '-' || c == '.').to_string();
    if slug.is_empty() { "user".into() } else { slug }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_this_build_and_mode() {
        let (dev, dev_tag) = &PAGES[0];
        let (prod, prod_tag) = &PAGES[1];
        assert!(dev.contains(&asset_prefix()) && !dev.contains("{{"));
        assert!(dev.contains("DEVELOPMENT") && prod.contains("PRODUCTION"));
        assert_ne!(dev_tag, prod_tag);
    }

    #[test]
    fn slugs_make_safe_ids_and_emails() {
        assert_eq!(slug("Ann Lee"), "ann-lee");
        assert_eq!(slug("  "), "user");
        assert_eq!(slug("bob@x"), "bob-x");
        assert!(crate::auth::is_email(&format!(
            "{}@example.com",
            slug("Zoë!")
        )));
    }
}
