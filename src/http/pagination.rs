//! Listing pages: `limit` (default 50, at most 200) and an opaque `cursor`, with the next page's
//! URL in a `Link` header so clients never build cursors themselves.

use crate::http::error::{ApiError, FieldError};
use crate::http::extract::Query;
use axum::http::{HeaderMap, HeaderValue, header};
use serde_json::json;

/// Items per page unless asked otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// Most items per page.
pub const MAX_LIMIT: usize = 200;

/// A page request.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Items wanted.
    pub limit: usize,
    /// Where the previous page stopped.
    pub cursor: Option<u64>,
}

impl Page {
    /// Reads `limit` and `cursor` from the query.
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        Self::from_query_within(query, DEFAULT_LIMIT, MAX_LIMIT)
    }

    /// Reads `limit` (`default` when absent, at most `max`) and `cursor` from the query.
    pub fn from_query_within(query: &Query, default: usize, max: usize) -> Result<Self, ApiError> {
        let limit = match query.get("limit") {
            None => default,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    return Err(ApiError::field(
                        FieldError::new(
                            "query.limit",
                            "invalid_query",
                            format!("limit must be a whole number from 1 to {max}"),
                        )
                        .with_context(json!({"min": 1, "max": max})),
                    ));
                }
            },
        };
        let cursor = match query.get("cursor") {
            None | Some("") => None,
            // Cursors are positions and versions, which both stores keep as signed 64-bit
            // integers: anything larger was never given out and is the client's mistake.
            Some(text) => Some(
                text.parse::<u64>()
                    .ok()
                    .filter(|&cursor| i64::try_from(cursor).is_ok())
                    .ok_or_else(|| {
                        ApiError::field(
                            FieldError::new(
                                "query.cursor",
                                "invalid_query",
                                "cursor is not one this server gave out",
                            )
                            .with_context(json!({"max": i64::MAX})),
                        )
                    })?,
            ),
        };
        Ok(Page { limit, cursor })
    }
}

/// Adds `Link: <path?query&cursor=next>; rel="next"`, keeping the caller's other parameters.
pub fn link_next(headers: &mut HeaderMap, path: &str, query: &Query, limit: usize, next: u64) {
    let mut params: Vec<String> = query
        .0
        .iter()
        .filter(|(k, _)| k != "cursor" && k != "limit")
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    params.push(format!("limit={limit}"));
    params.push(format!("cursor={next}"));
    let link = format!("<{path}?{}>; rel=\"next\"", params.join("&"));
    if let Ok(value) = HeaderValue::from_str(&link) {
        headers.insert(header::LINK, value);
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_keeps_filters_and_encodes_them() {
        let query = Query(vec![
            ("user_id".into(), "a b&c".into()),
            ("cursor".into(), "9".into()),
        ]);
        let mut headers = HeaderMap::new();
        link_next(&mut headers, "/api/v1/tickets", &query, 50, 7);
        assert_eq!(
            headers[header::LINK],
            "</api/v1/tickets?user_id=a%20b%26c&limit=50&cursor=7>; rel=\"next\""
        );
    }

    #[test]
    fn limits_are_checked() {
        let page = |v: &str| Page::from_query(&Query(vec![("limit".into(), v.into())]));
        assert_eq!(page("200").map(|p| p.limit).ok(), Some(200));
        assert!(page("0").is_err() && page("201").is_err() && page("ten").is_err());
    }
}
