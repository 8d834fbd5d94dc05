//! Tickets over HTTP against a real server: create, get, list (newest first, filters,
//! pagination through `Link: rel="next"`), PATCH routing, close and reopen, each answering the
//! seed's Ticket object with its keys in the seed's order; plus `/healthz`, `/readyz` and the
//! `x-request-id` header.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn health_and_readiness_answer_200(store: &Backend) {
    let server = store.start().await;
    let (status, headers, body) = server
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
    assert_request_id(&headers);
    let (status, headers, body) = server
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready", "{body}");
    assert_request_id(&headers);
}

async fn create_answers_the_seed_ticket_object(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let before = now_ms();
    let (status, headers, ticket) = server
        .post_json(
            "/api/v1/tickets",
            &ann,
            json!({"topic": "Printer", "description": "It is on fire"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    assert_request_id(&headers);
    assert_eq!(keys(&ticket), TICKET_KEYS, "Ticket keys and their order");
    assert_uuid(&ticket["id"]);
    assert_eq!(ticket["user_id"], "ann");
    assert_eq!(ticket["topic"], "Printer");
    assert_eq!(ticket["description"], "It is on fire");
    assert_eq!(ticket["status"], "OPEN");
    assert_eq!(ticket["user_role"], "CUSTOMER");
    assert_eq!(ticket["support_role"], "GENERAL");
    assert_eq!(ticket["issue_level"], "NORMAL");
    let created = ticket["created_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("created_at is not an integer: {ticket}"));
    let updated = ticket["updated_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("updated_at is not an integer: {ticket}"));
    // Epoch milliseconds from a sane clock (a generous window: this is not a latency check).
    assert!(
        created >= before - 60_000 && created <= now_ms() + 60_000,
        "created_at {created} is not now in epoch ms"
    );
    assert!(
        updated >= created,
        "updated_at {updated} before created_at {created}"
    );

    // The role in the ticket is the opener's.
    let guest = server.token("gus", "TEMP_USER");
    let t = server.create_ticket(&guest, "Guest", "No account").await;
    assert_eq!(t["user_role"], "TEMP_USER");
    let agent = server.token("ada", "AGENT");
    let t = server
        .create_ticket(&agent, "Internal", "Agent-opened")
        .await;
    assert_eq!(
        (t["user_role"].as_str(), t["user_id"].as_str()),
        (Some("AGENT"), Some("ada"))
    );
}

async fn get_right_after_create_shows_the_same_ticket(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let created = server.create_ticket(&ann, "Login", "Cannot log in").await;
    let id = created["id"].as_str().unwrap();
    let (status, headers, got) = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_request_id(&headers);
    assert_eq!(got, created);
    assert_eq!(keys(&got), TICKET_KEYS);
    // Staff see the identical object.
    let admin = server.token("root", "ADMIN");
    let (status, _, by_admin) = server.get(&format!("/api/v1/tickets/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        by_admin,
        as_staff_sees(&created),
        "with its tags, for staff"
    );
    // And the listing shows it at once.
    let (status, _, list) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([created]));
}

async fn list_is_newest_first_with_seed_objects(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(server.create_ticket(&ann, &format!("topic {i}"), "d").await);
    }
    let (status, headers, list) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        next_link(&headers),
        None,
        "no Link when everything fits in one page"
    );
    let list = list.as_array().unwrap().clone();
    created.reverse();
    assert_eq!(list, created, "newest first, identical objects");
    for t in &list {
        assert_eq!(keys(t), TICKET_KEYS);
    }
    let times: Vec<i64> = list
        .iter()
        .map(|t| t["created_at"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "created_at not descending: {times:?}"
    );
}

async fn pagination_walks_every_ticket_once_newest_first(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            server.create_ticket(&ann, &format!("t{i}"), "d").await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    created.reverse();

    let (status, headers, page) = server.get("/api/v1/tickets?limit=3", &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&page), created[..3]);
    let next = next_link(&headers).expect("Link rel=\"next\" while there is more");
    assert!(
        next.contains("/api/v1/tickets"),
        "next link {next} points at the listing"
    );

    let (items, pages) = server.walk("/api/v1/tickets?limit=3", &ann).await;
    assert_eq!(pages, 3, "7 tickets in pages of 3");
    assert_eq!(
        ids(&items),
        created,
        "every ticket exactly once, newest first"
    );

    // An exact fit: the last full page may not promise more than it has.
    let (items, pages) = server.walk("/api/v1/tickets?limit=7", &ann).await;
    assert_eq!(ids(&items), created);
    assert!(pages <= 2, "{pages} pages for 7 tickets at limit 7");
    if pages == 2 {
        let (_, headers, _) = server.get("/api/v1/tickets?limit=7", &ann).await;
        let (status, _, last) = server.get(&next_link(&headers).unwrap(), &ann).await;
        assert_eq!((status, last), (StatusCode::OK, json!([])));
    }

    // Writes between pages do not make the walk repeat or skip older tickets.
    let (_, headers, first) = server.get("/api/v1/tickets?limit=3", &ann).await;
    server.create_ticket(&ann, "newer", "d").await;
    let (rest, _) = server.walk(&next_link(&headers).unwrap(), &ann).await;
    let mut walked = body_ids(&first);
    walked.extend(ids(&rest));
    assert_eq!(
        walked, created,
        "a new ticket does not shift the pages of a walk in progress"
    );
}

async fn limit_defaults_to_50_and_accepts_up_to_200(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let mut created = Vec::new();
    for i in 0..55 {
        created.push(
            server.create_ticket(&ann, &format!("t{i}"), "d").await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    created.reverse();
    let (status, headers, page) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body_ids(&page),
        created[..50],
        "the default page is the newest 50"
    );
    let next = next_link(&headers).expect("Link when more than 50");
    let (status, headers, page) = server.get(&next, &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&page), created[50..]);
    assert_eq!(next_link(&headers), None);

    let (status, headers, page) = server.get("/api/v1/tickets?limit=200", &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&page), created);
    assert_eq!(next_link(&headers), None);
    let (status, _, page) = server.get("/api/v1/tickets?limit=1", &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&page), created[..1]);
}

async fn staff_patch_support_role_and_issue_level(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("ada", "AGENT");
    let ticket = server.create_ticket(&ann, "Crash", "App crashes").await;
    let id = ticket["id"].as_str().unwrap();
    let path = format!("/api/v1/tickets/{id}");

    let (status, headers, patched) = server
        .patch_json(&path, &agent, json!({"support_role": "TECHNICAL"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_request_id(&headers);
    assert_eq!(keys(&patched), STAFF_TICKET_KEYS);
    assert_eq!(patched["support_role"], "TECHNICAL");
    assert_eq!(patched["issue_level"], "NORMAL");
    assert_eq!(patched["created_at"], ticket["created_at"]);
    assert!(patched["updated_at"].as_i64().unwrap() >= ticket["updated_at"].as_i64().unwrap());
    for key in [
        "id",
        "user_id",
        "topic",
        "description",
        "status",
        "user_role",
    ] {
        assert_eq!(patched[key], ticket[key], "{key} unchanged by PATCH");
    }

    let admin = server.token("root", "ADMIN");
    let (status, _, patched) = server
        .patch_json(
            &path,
            &admin,
            json!({"support_role": "MANAGER", "issue_level": "CRITICAL"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (
            patched["support_role"].as_str(),
            patched["issue_level"].as_str()
        ),
        (Some("MANAGER"), Some("CRITICAL"))
    );

    // Read your writes: the owner sees the new routing at once, in the ticket and the list.
    let (status, _, got) = server.get(&path, &ann).await;
    assert_eq!(status, StatusCode::OK);
    let mut seen_by_ann = patched.clone();
    for staff_only in ["tags", "first_response_at", "sla"] {
        seen_by_ann.as_object_mut().unwrap().remove(staff_only);
    }
    assert_eq!(got, seen_by_ann, "the same ticket, without its tags");
    let (_, _, list) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(list, json!([seen_by_ann]));

    // Setting the same values again is fine and changes nothing the user can see but time.
    let (status, _, again) = server
        .patch_json(&path, &agent, json!({"issue_level": "CRITICAL"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["issue_level"], "CRITICAL");
    assert_eq!(again["support_role"], "MANAGER");

    // At least one field.
    let reply = server.patch_json(&path, &agent, json!({})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    assert!(
        reply.2["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{}",
        reply.2
    );
}

async fn close_and_reopen(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("ada", "AGENT");
    let ticket = server.create_ticket(&ann, "Refund", "Want my money").await;
    let id = ticket["id"].as_str().unwrap();

    // The owner closes without a body.
    let (status, headers, closed) = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_request_id(&headers);
    assert_eq!(keys(&closed), TICKET_KEYS);
    assert_eq!(closed["status"], "CLOSED");
    assert_eq!(closed["id"], ticket["id"]);
    let (_, _, got) = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_eq!(got["status"], "CLOSED", "read your writes");

    // Closing again conflicts; so does reopening an open ticket.
    let reply = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &agent)
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "CONFLICT");

    let (status, _, reopened) = server
        .post_empty(&format!("/api/v1/tickets/{id}/reopen"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK, "{reopened}");
    assert_eq!(keys(&reopened), STAFF_TICKET_KEYS);
    assert_eq!(reopened["status"], "OPEN");
    let (_, _, got) = server.get(&format!("/api/v1/tickets/{id}"), &agent).await;
    assert_eq!(got, reopened);

    let reply = server
        .post_empty(&format!("/api/v1/tickets/{id}/reopen"), &agent)
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "CONFLICT");

    // Staff close with a reason; the reopened ticket takes messages again in between.
    server.post_message(&ann, id, "still broken").await;
    let (status, _, closed) = server
        .post_json(
            &format!("/api/v1/tickets/{id}/close"),
            &agent,
            json!({"reason": "resolved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "CLOSED");

    // Routing a closed ticket conflicts.
    let reply = server
        .patch_json(
            &format!("/api/v1/tickets/{id}"),
            &agent,
            json!({"issue_level": "URGENT"}),
        )
        .await;
    assert_error(&reply, StatusCode::CONFLICT, "CONFLICT");
}

async fn staff_filter_the_listing(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let bob = server.token("bob", "TEMP_USER");
    let agent = server.token("ada", "AGENT");
    let a1 = server.create_ticket(&ann, "a1", "d").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a2 = server.create_ticket(&ann, "a2", "d").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b1 = server.create_ticket(&bob, "b1", "d").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b2 = server.create_ticket(&bob, "b2", "d").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (s, _, _) = server
        .patch_json(
            &format!("/api/v1/tickets/{a2}"),
            &agent,
            json!({"issue_level": "URGENT"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = server
        .patch_json(
            &format!("/api/v1/tickets/{b1}"),
            &agent,
            json!({"support_role": "TECHNICAL"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{b2}/close"), &bob)
        .await;
    assert_eq!(s, StatusCode::OK);

    for role in ["AGENT", "ADMIN"] {
        let staff = server.token(&format!("staff-{role}"), role);
        let cases: [(&str, Vec<&String>); 9] = [
            ("", vec![&b2, &b1, &a2, &a1]),
            ("?status=OPEN", vec![&b1, &a2, &a1]),
            ("?status=CLOSED", vec![&b2]),
            ("?issue_level=URGENT", vec![&a2]),
            ("?issue_level=NORMAL", vec![&b2, &b1, &a1]),
            ("?support_role=TECHNICAL", vec![&b1]),
            ("?support_role=GENERAL", vec![&b2, &a2, &a1]),
            ("?user_id=bob", vec![&b2, &b1]),
            ("?user_id=ann&issue_level=NORMAL", vec![&a1]),
        ];
        for (query, want) in cases {
            let (status, _, body) = server.get(&format!("/api/v1/tickets{query}"), &staff).await;
            assert_eq!(status, StatusCode::OK, "{role} {query}: {body}");
            let want: Vec<String> = want.into_iter().cloned().collect();
            assert_eq!(body_ids(&body), want, "{role} GET /api/v1/tickets{query}");
        }
        let (status, _, body) = server.get("/api/v1/tickets?user_id=nobody", &staff).await;
        assert_eq!((status, body), (StatusCode::OK, json!([])));
        // Filters survive pagination.
        let (items, pages) = server
            .walk("/api/v1/tickets?status=OPEN&limit=2", &staff)
            .await;
        assert_eq!(
            ids(&items),
            vec![b1.clone(), a2.clone(), a1.clone()],
            "{role} filtered walk"
        );
        assert_eq!(pages, 2);
    }
}

async fn next_links_keep_filters_with_awkward_characters(store: &Backend) {
    let server = store.start().await;
    let odd_id = "ann smith&co=1/é";
    let odd = sign_claims(
        &json!({"id": odd_id, "username": "Ann Smith", "email": "ann.smith@example.com", "role": "CUSTOMER"}),
        SECRET,
    );
    let ann = server.token("ann", "CUSTOMER");
    let admin = server.token("root", "ADMIN");
    let mut mine = Vec::new();
    for i in 0..5 {
        mine.push(
            server.create_ticket(&odd, &format!("o{i}"), "d").await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        server.create_ticket(&ann, &format!("a{i}"), "d").await;
    }
    mine.reverse();
    let (items, pages) = server
        .walk(
            "/api/v1/tickets?user_id=ann%20smith%26co%3D1%2F%C3%A9&limit=2",
            &admin,
        )
        .await;
    assert_eq!(ids(&items), mine, "the filter survives every next link");
    assert_eq!(pages, 3);
    assert!(items.iter().all(|t| t["user_id"] == odd_id));
    // The owner's own walk.
    let (items, _) = server.walk("/api/v1/tickets?limit=2", &odd).await;
    assert_eq!(ids(&items), mine);
}

/// The tickets `token` can list, newest first (at most 200).
async fn listed_ids(server: &Api, token: &str) -> Vec<String> {
    let (status, _, body) = server.get("/api/v1/tickets?limit=200", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body_ids(&body)
}

async fn a_retried_open_with_the_same_idempotency_key_opens_one_ticket(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let bob = server.token("bob", "CUSTOMER");

    let (status, _, first) = server.create_ticket_keyed(&ann, "open-1", "Printer").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let id = assert_uuid(&first["id"]);
    // A retry answers with the ticket the first try opened, as it is now, whatever its body says.
    server.post_message(&ann, &id, "more detail").await;
    let (status, _, again) = server.create_ticket_keyed(&ann, "open-1", "Other").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["topic"], "Printer");
    assert_eq!(listed_ids(&server, &ann).await, [id], "opened once");

    // Racing retries of one key all answer the same ticket, and only one is opened.
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (api, token) = ((*server).clone(), ann.clone());
        racers.spawn(async move { api.create_ticket_keyed(&token, "open-race", "Race").await });
    }
    let mut raced = std::collections::HashSet::new();
    while let Some(done) = racers.join_next().await {
        let (status, _, body) = done.expect("a racing request panicked");
        assert_eq!(status, StatusCode::OK, "{body}");
        raced.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        raced.len(),
        1,
        "racing retries answer one ticket: {raced:?}"
    );
    assert_eq!(listed_ids(&server, &ann).await.len(), 2);

    // Another key is another ticket; the same key from another user too.
    let other = server
        .create_ticket_keyed(&ann, "open-2", "Printer")
        .await
        .2;
    assert_ne!(other["id"], first["id"]);
    let bobs = server
        .create_ticket_keyed(&bob, "open-1", "Printer")
        .await
        .2;
    assert_ne!(bobs["id"], first["id"]);
    assert_eq!(bobs["user_id"], "bob");

    // A bad key is a 400 and opens nothing.
    let reply = server
        .create_ticket_keyed(&ann, &"k".repeat(201), "x")
        .await;
    assert_field_error(&reply, "header.Idempotency-Key", "invalid_header");
    let reply = server.create_ticket_keyed(&ann, "has space", "x").await;
    assert_field_error(&reply, "header.Idempotency-Key", "invalid_header");
    assert_eq!(listed_ids(&server, &ann).await.len(), 3);

    // The key outlives a restart.
    let server = store.restart(server).await;
    let (status, _, after) = server.create_ticket_keyed(&ann, "open-1", "Printer").await;
    assert_eq!((status, &after["id"]), (StatusCode::OK, &first["id"]));
    assert_eq!(listed_ids(&server, &ann).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_first_try_stopped_before_opening_is_finished_by_the_retry() {
    use ticketd::commands::{IdempotencySeed, TICKET_KEYS};
    use ticketd::store::{EmbeddedOptions, EmbeddedStore, Links};
    // The first try claimed its key and stopped (a crash) before its ticket was stored.
    let dir = tempfile::tempdir().unwrap();
    let claimed = uuid::Uuid::now_v7().to_string();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let key = IdempotencySeed::ticket_key("ann", "open-1");
    store.claim_link(TICKET_KEYS, &key, &claimed).await.unwrap();
    store.shutdown().await;
    drop(store);

    let server = TestServer::start_in(dir, &[]).await;
    let ann = server.token("ann", "CUSTOMER");
    let (status, _, opened) = server.create_ticket_keyed(&ann, "open-1", "Printer").await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    assert_eq!(
        opened["id"],
        claimed.as_str(),
        "the retry opens the claimed ticket"
    );
    assert_eq!(opened["topic"], "Printer");
    let (status, _, again) = server.create_ticket_keyed(&ann, "open-1", "Printer").await;
    assert_eq!((status, &again), (StatusCode::OK, &opened));
    assert_eq!(listed_ids(&server, &ann).await, [claimed]);
}

on_both_stores!(
    health_and_readiness_answer_200,
    create_answers_the_seed_ticket_object,
    get_right_after_create_shows_the_same_ticket,
    list_is_newest_first_with_seed_objects,
    pagination_walks_every_ticket_once_newest_first,
    limit_defaults_to_50_and_accepts_up_to_200,
    staff_patch_support_role_and_issue_level,
    close_and_reopen,
    staff_filter_the_listing,
    next_links_keep_filters_with_awkward_characters,
    a_retried_open_with_the_same_idempotency_key_opens_one_ticket,
);
