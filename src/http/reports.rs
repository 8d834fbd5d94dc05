//! Reports (issue 17 part 4, ADR 0026): how many tickets were opened, closed and reopened, how
//! fast staff answered and resolved, how customers rated, over a window grouped by day, week,
//! level, team or holder; for admins, as JSON or (`Accept: text/csv`) CSV. The figures come
//! from the reports projection ([`crate::store::Reports`]), never from a scan of the events.

use crate::app::AppState;
use crate::autoclose::{Clock, SystemClock};
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{Auth, Query};
use crate::rate_limit::Route;
use crate::store::Reports;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use ticketd_events::UserRole;
use ticketd_projections::reports::{DAY_MS, GroupBy, ReportQuery, day_start, to_csv};

/// `GET /api/v1/reports`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/reports", get(report))
}

/// The days a window covers by default.
pub const DEFAULT_DAYS: i64 = 30;
/// The longest window grouped by day: a year of day buckets (a leap year's too).
pub const MAX_DAYS_BY_DAY: i64 = 366;
/// The longest window grouped otherwise: ten years.
pub const MAX_DAYS: i64 = 3_660;
/// The latest instant a time may name: 9999-12-31T23:59:59.999Z, so every day has a date.
pub const MAX_TIME: i64 = 253_402_300_799_999;

/// `GET /reports`: the figures of a window (admins).
async fn report(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.limits.check_user(Route::Reports, &auth.0.id)?;
    if auth.0.role != UserRole::Admin {
        return Err(ApiError::Forbidden("Only admins may read reports".into()));
    }
    let query = parse(&query, SystemClock.now_ms())?;
    let report = state.store.report(&query).await?;
    if wants_csv(&headers) {
        let mut response = to_csv(&report).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(Json(report).into_response())
}

/// Whether the client asked for CSV (`Accept` naming `text/csv`).
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"))
        })
}

/// The report's parameters, every bad one a 400 naming it; `now` sets the default window:
/// the 30 UTC days up to and including today.
pub fn parse(query: &Query, now: i64) -> Result<ReportQuery, ApiError> {
    let mut errors = Vec::new();
    let mut time = |name: &'static str| match query.get(name) {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (0..=MAX_TIME).contains(&n) && text.bytes().all(|b| b.is_ascii_digit()) => {
                Some(n)
            }
            _ => {
                errors.push(
                    FieldError::new(
                        format!("query.{name}"),
                        "invalid_query",
                        format!(
                            "{name} must be a time in epoch milliseconds, a whole number from 0 \
                             to {MAX_TIME}"
                        ),
                    )
                    .with_context(json!({"min": 0, "max": MAX_TIME})),
                );
                None
            }
        },
    };
    let (from, to, as_of) = (time("from"), time("to"), time("as_of"));
    let group_by = match query.get("group_by") {
        None => Some(GroupBy::Day),
        Some(text) => {
            let parsed = text.parse::<GroupBy>().ok();
            if parsed.is_none() {
                let allowed: Vec<&str> = GroupBy::ALL.iter().map(|g| g.as_str()).collect();
                errors.push(
                    FieldError::new(
                        "query.group_by",
                        "invalid_query",
                        format!("group_by must be one of {}", allowed.join(", ")),
                    )
                    .with_context(json!({"allowed": allowed})),
                );
            }
            parsed
        }
    };
    let (Some(group_by), true) = (group_by, errors.is_empty()) else {
        return Err(ApiError::BadRequest(errors));
    };
    let to = to.unwrap_or(day_start(now) + DAY_MS);
    let from = from.unwrap_or(to - DEFAULT_DAYS * DAY_MS).max(0);
    if from > to {
        return Err(ApiError::field(FieldError::new(
            "query.from",
            "invalid_query",
            "from must not be after to",
        )));
    }
    let max_days = if group_by == GroupBy::Day {
        MAX_DAYS_BY_DAY
    } else {
        MAX_DAYS
    };
    if to - from > max_days * DAY_MS {
        return Err(ApiError::field(
            FieldError::new(
                "query.to",
                "invalid_query",
                format!("a report grouped by {group_by} spans at most {max_days} days"),
            )
            .with_context(json!({"max_days": max_days})),
        ));
    }
    Ok(ReportQuery {
        from,
        to,
        group_by,
        as_of,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Query {
        Query(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_default_window_is_thirty_whole_utc_days_to_the_end_of_today() {
        let now = 1_796_601_600_000 + 5 * 3_600_000;
        let q = parse(&query(&[]), now).unwrap();
        assert_eq!(q.to, 1_796_601_600_000 + DAY_MS);
        assert_eq!(q.to - q.from, 30 * DAY_MS);
        assert_eq!((q.group_by, q.as_of), (GroupBy::Day, None));
    }

    #[test]
    fn bad_parameters_are_refused() {
        for pairs in [
            &[("from", "1.5")][..],
            &[("to", "-3")],
            &[("as_of", "soon")],
            &[("group_by", "month")],
            &[("from", "10"), ("to", "5")],
            &[("from", "0"), ("to", &(367 * DAY_MS).to_string())],
        ] {
            assert!(
                matches!(parse(&query(pairs), 0), Err(ApiError::BadRequest(_))),
                "{pairs:?}"
            );
        }
        let long = (367 * DAY_MS).to_string();
        let q = parse(
            &query(&[("from", "0"), ("to", &long), ("group_by", "week")]),
            0,
        )
        .unwrap();
        assert_eq!(q.group_by, GroupBy::Week);
    }

    #[test]
    fn csv_is_asked_for_by_accept() {
        let mut headers = HeaderMap::new();
        assert!(!wants_csv(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0.5, text/csv"),
        );
        assert!(wants_csv(&headers));
    }
}
