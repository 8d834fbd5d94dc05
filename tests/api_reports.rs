//! Reports (issue 17 part 4, ADR 0026) seen from outside on both stores: admins only; the
//! figures of a scripted history (open, customer message, internal note, staff answer, level
//! change, claim, close, reopen, close) in every grouping; each answer equal to the
//! recomputation from the events feed (whole days from the counters, part days from the facts,
//! `as_of`); CSV; bad parameters refused; the same answers after `ticketd replay`, and
//! `ticketd verify` clean before and after.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketd_events::EventEnvelope;
use ticketd_projections::reports::{
    DAY_MS, GroupBy, Report, ReportQuery, date_key, day_start, recompute,
};

/// Every event, through the admin's changes feed.
async fn all_events(server: &TestServer, admin: &str) -> Vec<EventEnvelope> {
    let (status, _, body) = server.get("/api/v1/events?limit=1000", admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).expect("the feed's envelopes")
}

async fn report(server: &TestServer, admin: &str, query: &str) -> Report {
    let (status, _, body) = server.get(&format!("/api/v1/reports?{query}"), admin).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    serde_json::from_value(body).expect("a report")
}

/// The query string of `q`.
fn query_string(q: &ReportQuery) -> String {
    let mut text = format!("from={}&to={}&group_by={}", q.from, q.to, q.group_by);
    if let Some(as_of) = q.as_of {
        text.push_str(&format!("&as_of={as_of}"));
    }
    text
}

/// The scripted history; answers the ticket ids and the admin's token.
async fn history(server: &TestServer) -> (String, String) {
    let root = server.token("root", "ADMIN");
    let ada = server.token("ada", "AGENT");
    let ann = server.token("ann", "CUSTOMER");
    let ticket = server.create_ticket(&ann, "Refund", "Please").await;
    let id = ticket["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tickets/{id}");
    server.post_message(&ann, &id, "Any news?").await;
    let (status, _, _) = server
        .post_json(
            &format!("{path}/messages"),
            &ada,
            json!({"content": "note to self", "internal": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.post_message(&ada, &id, "On it").await;
    let (status, _, _) = server
        .patch_json(&path, &root, json!({"issue_level": "URGENT"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.post_empty(&format!("{path}/claim"), &ada).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.post_empty(&format!("{path}/close"), &ada).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.post_empty(&format!("{path}/reopen"), &root).await;
    assert_eq!(status, StatusCode::OK);
    server.post_message(&ann, &id, "Still broken").await;
    let (status, _, _) = server.post_empty(&format!("{path}/close"), &root).await;
    assert_eq!(status, StatusCode::OK);
    server.create_ticket(&ann, "Another", "Thing").await;
    (id, root)
}

/// Sums a figure over every group.
fn total(
    report: &Report,
    figure: impl Fn(&ticketd_projections::reports::ReportGroup) -> u64,
) -> u64 {
    report.groups.iter().map(figure).sum()
}

fn group<'a>(
    report: &'a Report,
    key: Option<&str>,
) -> &'a ticketd_projections::reports::ReportGroup {
    report
        .groups
        .iter()
        .find(|g| g.key.as_deref() == key)
        .unwrap_or_else(|| panic!("no group {key:?} in {report:?}"))
}

async fn only_admins_read_reports(store: &Backend) {
    let server = store.start().await;
    for role in ["AGENT", "CUSTOMER", "TEMP_USER"] {
        let token = server.token("someone", role);
        let reply = server.get("/api/v1/reports", &token).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    let reply = server
        .request(reqwest::Method::GET, "/api/v1/reports", None, None)
        .await;
    assert_eq!(reply.0, StatusCode::UNAUTHORIZED);
    let root = server.token("root", "ADMIN");
    let empty = report(&server, &root, "").await;
    assert_eq!((empty.group_by, empty.groups.len()), (GroupBy::Day, 30));
    assert_eq!(empty.to - empty.from, 30 * DAY_MS);
    assert_eq!(empty.to, day_start(now_ms()) + DAY_MS);
    assert!(
        empty
            .groups
            .iter()
            .all(|g| g.opened == 0 && g.first_response.median_s.is_none())
    );
    server.stop().await;
}

async fn a_scripted_history_in_every_grouping(store: &Backend) {
    let server = store.start().await;
    let (_, root) = history(&server).await;
    let events = all_events(&server, &root).await;
    let today = date_key(events[0].recorded_at);

    // The default window: whole days, read from the counters.
    let by_day = report(&server, &root, "").await;
    assert_eq!(
        by_day.groups.last().unwrap().key.as_deref(),
        Some(date_key(now_ms()).as_str())
    );
    let day = group(&by_day, Some(&today));
    assert_eq!((day.opened, day.closed, day.reopened), (2, 2, 1));
    assert_eq!(
        (day.messages.customer, day.messages.staff),
        (2, 1),
        "the note is not counted"
    );
    assert_eq!(
        day.first_response.count, 1,
        "the note is no answer, the staff message is"
    );
    assert_eq!(day.resolution.count, 2);
    assert_eq!((day.sla_breaches, day.feedback.count), (0, 0));
    assert_eq!(total(&by_day, |g| g.opened), 2);

    // Grouped by what the ticket was then: the level changed and the claim came after the
    // answer, before both closes, the reopen and the last customer message.
    let by_level = report(&server, &root, "group_by=issue_level").await;
    let keys: Vec<_> = by_level
        .groups
        .iter()
        .map(|g| g.key.clone().unwrap())
        .collect();
    assert_eq!(keys, ["NORMAL", "URGENT", "CRITICAL"]);
    let normal = group(&by_level, Some("NORMAL"));
    assert_eq!(
        (normal.opened, normal.closed, normal.first_response.count),
        (2, 0, 1)
    );
    assert_eq!((normal.messages.customer, normal.messages.staff), (1, 1));
    let urgent = group(&by_level, Some("URGENT"));
    assert_eq!((urgent.opened, urgent.closed, urgent.reopened), (0, 2, 1));
    assert_eq!((urgent.resolution.count, urgent.messages.customer), (2, 1));
    let by_holder = report(&server, &root, "group_by=assignee").await;
    let keys: Vec<_> = by_holder.groups.iter().map(|g| g.key.clone()).collect();
    assert_eq!(keys, [None, Some("ada".to_string())]);
    let ada = group(&by_holder, Some("ada"));
    assert_eq!(
        (ada.opened, ada.closed, ada.reopened, ada.resolution.count),
        (0, 2, 1, 2)
    );
    let nobody = group(&by_holder, None);
    assert_eq!((nobody.opened, nobody.first_response.count), (2, 1));
    let by_team = report(&server, &root, "group_by=support_role").await;
    assert_eq!(by_team.groups.len(), 4);
    assert_eq!(total(&by_team, |g| g.closed), 2);
    let by_week = report(&server, &root, "group_by=week").await;
    assert_eq!(total(&by_week, |g| g.messages.customer), 2);

    // Every answer equals the recomputation from the events: windows of whole days (counters)
    // and windows cut inside a day (facts at the edges), each grouping, and `as_of` instants.
    let first = events.first().unwrap().recorded_at;
    let last = events.last().unwrap().recorded_at;
    let closed_at = events
        .iter()
        .find(|e| e.event.type_name() == "TicketClosed")
        .unwrap()
        .recorded_at;
    let whole = (day_start(first) - 2 * DAY_MS, day_start(last) + DAY_MS);
    for (from, to) in [
        whole,
        (first, last + 1),
        (first + 1, last),
        (closed_at, whole.1),
    ] {
        for group_by in GroupBy::ALL {
            for as_of in [None, Some(closed_at), Some(first - 1), Some(last)] {
                let q = ReportQuery {
                    from,
                    to,
                    group_by,
                    as_of,
                };
                let answer = report(&server, &root, &query_string(&q)).await;
                assert_eq!(answer, recompute(&events, &q), "{q:?}");
            }
        }
    }

    // As the data stood at the first close: one close, no reopen, one ticket (unless the
    // reopen was recorded in the same millisecond).
    let q = format!("from={}&to={}&as_of={closed_at}", whole.0, whole.1);
    let then = report(&server, &root, &q).await;
    let after_close = events.iter().filter(|e| e.recorded_at > closed_at).count();
    if events.len() - after_close == 7 {
        assert_eq!(total(&then, |g| g.closed), 1);
        assert_eq!(total(&then, |g| g.reopened), 0);
        assert_eq!(total(&then, |g| g.opened), 1);
    }
    let q = format!("from={}&to={}&as_of={}", whole.0, whole.1, first - 1);
    assert_eq!(total(&report(&server, &root, &q).await, |g| g.opened), 0);
    server.stop().await;
}

async fn csv_when_asked(store: &Backend) {
    let server = store.start().await;
    let (_, root) = history(&server).await;
    let auth = format!("Bearer {root}");
    let (status, headers, body) = server
        .raw(
            reqwest::Method::GET,
            "/api/v1/reports?group_by=issue_level",
            &[("authorization", &auth), ("accept", "text/csv")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{headers:?}"
    );
    let text = body.as_str().expect("CSV text");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with(
            "key,opened,closed,reopened,first_response_count,first_response_median_s,"
        )
    );
    assert!(lines[0].ends_with("feedback_distribution_5,messages_customer,messages_staff"));
    let urgent: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(urgent.len(), 20);
    assert_eq!(&urgent[..4], ["URGENT", "0", "2", "1"]);
    assert_eq!(&urgent[18..], ["1", "0"]);
    let critical: Vec<&str> = lines[3].split(',').collect();
    assert_eq!(critical[5], "", "no median without samples");
    server.stop().await;
}

async fn bad_parameters_are_400s(store: &Backend) {
    let server = store.start().await;
    let root = server.token("root", "ADMIN");
    let year = 367 * DAY_MS;
    for (query, location) in [
        ("from=10&to=5".to_string(), "query.from"),
        ("group_by=month".into(), "query.group_by"),
        ("from=yesterday".into(), "query.from"),
        ("to=1.5".into(), "query.to"),
        ("as_of=-1".into(), "query.as_of"),
        (format!("from=0&to={year}"), "query.to"),
    ] {
        let reply = server.get(&format!("/api/v1/reports?{query}"), &root).await;
        assert_field_error(&reply, location, "invalid_query");
    }
    // The same span is fine by week.
    let (status, _, _) = server
        .get(
            &format!("/api/v1/reports?from=0&to={year}&group_by=week"),
            &root,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

async fn replay_answers_the_same(store: &Backend) {
    let server = store.start().await;
    let (_, root) = history(&server).await;
    let queries = [
        "",
        "group_by=assignee",
        "group_by=issue_level",
        "group_by=week",
    ];
    let mut before: Vec<Value> = Vec::new();
    for q in queries {
        before.push(server.get(&format!("/api/v1/reports?{q}"), &root).await.2);
    }
    let mongo = store.current_mongo();
    let dir = server.stop().await;
    ticketd_cli(dir.path(), mongo.as_ref(), &["verify"], true);
    ticketd_cli(dir.path(), mongo.as_ref(), &["replay"], true);
    ticketd_cli(dir.path(), mongo.as_ref(), &["verify"], true);
    let server = match &mongo {
        None => TestServer::start_in(dir, &[]).await,
        Some(mongo) => TestServer::start_mongo(mongo, &[]).await,
    };
    for (q, was) in queries.iter().zip(&before) {
        let now = server.get(&format!("/api/v1/reports?{q}"), &root).await.2;
        assert_eq!(&now, was, "{q}");
    }
    server.stop().await;
}

on_both_stores!(
    only_admins_read_reports,
    a_scripted_history_in_every_grouping,
    csv_when_asked,
    bad_parameters_are_400s,
    replay_answers_the_same,
);

/// `ticketd verify` notices a counter that no longer adds up its facts (embedded store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_damaged_report_counter() {
    let server = TestServer::start().await;
    history(&server).await;
    let dir = server.stop().await;
    ticketd_cli(dir.path(), None, &["verify"], true);
    let db = rusqlite::Connection::open(dir.path().join("ticketd.db")).unwrap();
    db.execute(
        "UPDATE report_counts SET n = n + 1 WHERE kind = 'opened'",
        [],
    )
    .unwrap();
    drop(db);
    let out = ticketd_cli(dir.path(), None, &["verify"], false);
    assert!(out.contains("report counters differ"), "{out}");
}
