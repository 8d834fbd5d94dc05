//! Messages over HTTP against a real server: post, list (oldest first, pagination through
//! `Link: rel="next"`), edit and delete, each answering the seed's Message object with its keys
//! in order; deleted messages leave the listing; a closed ticket refuses changes with 409; and
//! 50 concurrent posts to one ticket all land exactly once in one consistent order.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

async fn ticket(server: &TestServer, token: &str) -> String {
    server
        .create_ticket(token, "Help", "Something is wrong")
        .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn post_answers_the_seed_message_object(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let id = ticket(&server, &ann).await;
    let before = now_ms();
    let attachments = json!([
        "http://example.com/attachment1.png",
        "https://example.com/a/b.pdf?x=1"
    ]);
    let (status, headers, msg) = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &ann,
            json!({"content": "Hello there", "attachments": attachments}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_request_id(&headers);
    assert_eq!(
        keys(&msg),
        MESSAGE_KEYS,
        "Message keys and their order, no `internal` on a public message"
    );
    assert_uuid(&msg["id"]);
    assert_eq!(msg["ticket_id"], json!(id));
    assert_eq!(msg["author_id"], "ann");
    assert_eq!(msg["author_name"], "ann");
    assert_eq!(msg["content"], "Hello there");
    assert_eq!(msg["attachments"], attachments);
    let created = msg["created_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("created_at is not an integer: {msg}"));
    let updated = msg["updated_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("updated_at is not an integer: {msg}"));
    assert!(
        created >= before - 60_000 && created <= now_ms() + 60_000,
        "created_at {created} is not now in epoch ms"
    );
    assert!(updated >= created);

    // Attachments are optional and default to an empty list.
    let (status, _, plain) = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &ann,
            json!({"content": "no files"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    assert_eq!(plain["attachments"], json!([]));
    assert_eq!(keys(&plain), MESSAGE_KEYS);

    // Staff write in a customer's ticket under their own name.
    let agent = server.token("ada", "AGENT");
    let reply = server.post_message(&agent, &id, "We are on it").await;
    assert_eq!(
        (reply["author_id"].as_str(), reply["author_name"].as_str()),
        (Some("ada"), Some("ada"))
    );
    assert_eq!(keys(&reply), MESSAGE_KEYS);
}

async fn list_right_after_post_is_oldest_first(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("ada", "AGENT");
    let id = ticket(&server, &ann).await;
    let path = format!("/api/v1/tickets/{id}/messages");

    let (status, headers, empty) = server.get(&path, &ann).await;
    assert_eq!((status, empty), (StatusCode::OK, json!([])));
    assert_eq!(next_link(&headers), None);

    let mut posted = Vec::new();
    for (i, token) in [&ann, &agent, &ann, &agent, &ann].into_iter().enumerate() {
        posted.push(
            server
                .post_message(token, &id, &format!("message {i}"))
                .await,
        );
        let (status, _, list) = server.get(&path, &ann).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            list,
            Value::Array(posted.clone()),
            "the listing right after post {i}"
        );
    }
    let (_, _, by_staff) = server.get(&path, &agent).await;
    assert_eq!(by_staff, Value::Array(posted.clone()));
    let times: Vec<i64> = posted
        .iter()
        .map(|m| m["created_at"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "created_at not ascending: {times:?}"
    );
}

async fn pagination_walks_every_message_once_oldest_first(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let id = ticket(&server, &ann).await;
    let path = format!("/api/v1/tickets/{id}/messages");
    let mut posted = Vec::new();
    for i in 0..8 {
        posted.push(
            server.post_message(&ann, &id, &format!("m{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let (status, headers, page) = server.get(&format!("{path}?limit=3"), &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&page), posted[..3]);
    assert!(
        next_link(&headers).is_some(),
        "Link rel=\"next\" while there is more"
    );

    let (items, pages) = server.walk(&format!("{path}?limit=3"), &ann).await;
    assert_eq!(pages, 3);
    assert_eq!(
        ids(&items),
        posted,
        "every message exactly once, oldest first"
    );

    // A message posted during the walk shows up at its end, nothing repeats.
    let (_, headers, first) = server.get(&format!("{path}?limit=3"), &ann).await;
    let late = server.post_message(&ann, &id, "late").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (rest, _) = server.walk(&next_link(&headers).unwrap(), &ann).await;
    let mut walked = body_ids(&first);
    walked.extend(ids(&rest));
    let mut want = posted.clone();
    want.push(late);
    assert_eq!(walked, want);

    // limit bounds apply to messages too.
    let (status, _, page) = server.get(&format!("{path}?limit=200"), &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.as_array().unwrap().len(), 9);
    let reply = server.get(&format!("{path}?limit=201"), &ann).await;
    assert_field_error(&reply, "query.limit", "invalid_query");
}

async fn default_message_page_is_50(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let id = ticket(&server, &ann).await;
    let path = format!("/api/v1/tickets/{id}/messages");
    let mut posted = Vec::new();
    for i in 0..52 {
        posted.push(
            server.post_message(&ann, &id, &format!("m{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let (status, headers, page) = server.get(&path, &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&page), posted[..50]);
    let (status, headers, page) = server
        .get(&next_link(&headers).expect("Link after 50"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&page), posted[50..]);
    assert_eq!(next_link(&headers), None);
}

async fn edit_changes_content_and_keeps_identity(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let id = ticket(&server, &ann).await;
    let msg = server.post_message(&ann, &id, "typo here").await;
    let mid = msg["id"].as_str().unwrap();
    let path = format!("/api/v1/tickets/{id}/messages/{mid}");

    let (status, headers, edited) = server
        .patch_json(&path, &ann, json!({"content": "fixed"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_request_id(&headers);
    assert_eq!(keys(&edited), MESSAGE_KEYS);
    assert_eq!(edited["content"], "fixed");
    for key in [
        "id",
        "ticket_id",
        "author_id",
        "author_name",
        "attachments",
        "created_at",
    ] {
        assert_eq!(edited[key], msg[key], "{key} unchanged by an edit");
    }
    assert!(edited["updated_at"].as_i64().unwrap() >= msg["updated_at"].as_i64().unwrap());

    let (_, _, list) = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
        .await;
    assert_eq!(list, json!([edited]), "read your writes after an edit");

    // Attachments can be replaced with the text.
    let (status, _, edited) = server
        .patch_json(
            &path,
            &ann,
            json!({"content": "with file", "attachments": ["https://files.example.com/x.png"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(
        edited["attachments"],
        json!(["https://files.example.com/x.png"])
    );
    let (_, _, list) = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
        .await;
    assert_eq!(list, json!([edited]));

    // An edit is validated like a post.
    let reply = server.patch_json(&path, &ann, json!({"content": ""})).await;
    assert_field_error(&reply, "content", "empty");
    let reply = server.patch_json(&path, &ann, json!({})).await;
    assert_field_error(&reply, "content", "missing");
}

async fn deleted_messages_leave_the_listing(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("ada", "AGENT");
    let id = ticket(&server, &ann).await;
    let m1 = server.post_message(&ann, &id, "one").await;
    let m2 = server.post_message(&ann, &id, "two").await;
    let m3 = server.post_message(&ann, &id, "three").await;
    let path = |m: &Value| {
        format!(
            "/api/v1/tickets/{id}/messages/{}",
            m["id"].as_str().unwrap()
        )
    };

    let (status, headers, body) = server.delete(&path(&m2), &ann).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null, "204 has no body");
    assert_request_id(&headers);

    for token in [&ann, &agent] {
        let (status, _, list) = server
            .get(&format!("/api/v1/tickets/{id}/messages"), token)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            list,
            json!([m1, m3]),
            "the deleted message is gone for everyone"
        );
    }
    // A deleted message can be neither deleted again nor edited.
    let reply = server.delete(&path(&m2), &ann).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    let reply = server
        .patch_json(&path(&m2), &agent, json!({"content": "back"}))
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");

    // Deleting all of them leaves an empty, still working listing.
    for m in [&m1, &m3] {
        let (status, _, _) = server.delete(&path(m), &agent).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (status, _, list) = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
        .await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));
    // Pagination skips deleted messages too.
    let m4 = server.post_message(&ann, &id, "four").await;
    let m5 = server.post_message(&ann, &id, "five").await;
    let (items, _) = server
        .walk(&format!("/api/v1/tickets/{id}/messages?limit=1"), &ann)
        .await;
    assert_eq!(items, vec![m4, m5]);
}

async fn a_closed_ticket_refuses_message_changes_with_409(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("ada", "AGENT");
    let id = ticket(&server, &ann).await;
    let msg = server.post_message(&ann, &id, "before closing").await;
    let mpath = format!(
        "/api/v1/tickets/{id}/messages/{}",
        msg["id"].as_str().unwrap()
    );
    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK);

    for token in [&ann, &agent] {
        let reply = server
            .post_json(
                &format!("/api/v1/tickets/{id}/messages"),
                token,
                json!({"content": "after"}),
            )
            .await;
        assert_error(&reply, StatusCode::CONFLICT, "CONFLICT");
        let reply = server
            .patch_json(&mpath, token, json!({"content": "edited"}))
            .await;
        assert_error(&reply, StatusCode::CONFLICT, "CONFLICT");
        let reply = server.delete(&mpath, token).await;
        assert_error(&reply, StatusCode::CONFLICT, "CONFLICT");
    }
    // Nothing changed, and the history is still readable.
    let (status, _, list) = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
        .await;
    assert_eq!((status, list), (StatusCode::OK, json!([msg])));

    // Reopened, it takes messages again.
    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{id}/reopen"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK);
    let again = server.post_message(&ann, &id, "after reopening").await;
    let (_, _, list) = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
        .await;
    assert_eq!(list, json!([msg, again]));
}

async fn fifty_concurrent_posts_all_land_once_in_one_order(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("ada", "AGENT");
    let id = ticket(&server, &ann).await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let api: Api = (*server).clone();
        let token = if i % 2 == 0 {
            ann.clone()
        } else {
            agent.clone()
        };
        let path = format!("/api/v1/tickets/{id}/messages");
        tasks.spawn(async move {
            let (status, _, body) = api
                .post_json(&path, &token, json!({"content": format!("race {i}")}))
                .await;
            (i, status, body)
        });
    }
    let mut posted = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, status, body) = joined.expect("a posting task panicked");
        assert_eq!(status, StatusCode::OK, "post {i}: {body}");
        assert_eq!(body["content"], json!(format!("race {i}")));
        posted.push(body);
    }
    let posted_ids: HashSet<String> = ids(&posted).into_iter().collect();
    assert_eq!(posted_ids.len(), 50, "50 distinct message ids");

    let path = format!("/api/v1/tickets/{id}/messages?limit=200");
    let (status, _, first) = server.get(&path, &ann).await;
    assert_eq!(status, StatusCode::OK);
    let listed = first.as_array().unwrap();
    assert_eq!(listed.len(), 50, "all 50 posts are listed");
    let listed_ids = ids(listed);
    assert_eq!(
        listed_ids.iter().collect::<HashSet<_>>().len(),
        50,
        "no duplicates in the listing"
    );
    assert_eq!(
        listed_ids.iter().cloned().collect::<HashSet<_>>(),
        posted_ids,
        "the listed are the posted"
    );
    for m in listed {
        let mine = posted.iter().find(|p| p["id"] == m["id"]).unwrap();
        assert_eq!(m, mine, "listed message equals what its POST answered");
    }
    let times: Vec<i64> = listed
        .iter()
        .map(|m| m["created_at"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: created_at not ascending: {times:?}"
    );

    // Every reader sees the same order, page by page too.
    let (_, _, again) = server.get(&path, &agent).await;
    assert_eq!(again, first, "a second reader sees the same order");
    let (walked, pages) = server
        .walk(&format!("/api/v1/tickets/{id}/messages?limit=7"), &ann)
        .await;
    assert_eq!(pages, 8);
    assert_eq!(
        ids(&walked),
        listed_ids,
        "paging gives the same order, each message once"
    );
}

async fn a_long_history_comes_in_linked_pages_of_events(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let admin = server.token("root", "ADMIN");
    let id = ticket(&server, &ann).await;
    for i in 0..6 {
        server.post_message(&ann, &id, &format!("m{i}")).await;
    }
    let path = format!("/api/v1/tickets/{id}/events");
    // One page by default: the opening and six messages.
    let (status, headers, all) = server.get(&path, &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 7);
    assert_eq!(next_link(&headers), None);

    let (items, pages) = server.walk(&format!("{path}?limit=3"), &admin).await;
    assert_eq!(pages, 3, "3 + 3 + 1 events");
    let versions: Vec<u64> = items
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (1..=7).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert_eq!(&Value::Array(items), &all);

    // Past the end of a ticket that exists: an empty page, not a 404.
    let (status, _, empty) = server.get(&format!("{path}?cursor=7"), &admin).await;
    assert_eq!((status, empty), (StatusCode::OK, json!([])));
    let reply = server.get(&format!("{path}?limit=1001"), &admin).await;
    assert_field_error(&reply, "query.limit", "invalid_query");
    let unknown = "0190f5c4-0000-7000-8000-000000000000";
    let reply = server
        .get(
            &format!("/api/v1/tickets/{unknown}/events?cursor=3"),
            &admin,
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
}

/// Posts `content` to `ticket` with an `Idempotency-Key` header.
async fn post_keyed(
    server: &TestServer,
    token: &str,
    ticket: &str,
    key: &str,
    content: &str,
) -> Reply {
    server
        .send(
            server
                .client
                .post(server.url(&format!("/api/v1/tickets/{ticket}/messages")))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({ "content": content })),
        )
        .await
}

async fn a_retried_post_with_the_same_idempotency_key_is_not_doubled(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let bob = server.token("bob", "CUSTOMER");
    let agent = server.token("agent", "AGENT");
    let id = ticket(&server, &ann).await;
    let path = format!("/api/v1/tickets/{id}/messages");

    let (status, _, first) = post_keyed(&server, &ann, &id, "try-1", "hello").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // Others write in between; the retry still answers with the first message, unchanged.
    server.post_message(&agent, &id, "an agent's answer").await;
    let (status, _, again) = post_keyed(&server, &ann, &id, "try-1", "hello").await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    let (_, _, listed) = server.get(&path, &ann).await;
    let texts: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello", "an agent's answer"], "posted once");

    // Another key is another message; the same key from another user or on another ticket too.
    let (_, _, other) = post_keyed(&server, &ann, &id, "try-2", "hello").await;
    assert_ne!(other["id"], first["id"]);
    let agents = post_keyed(&server, &agent, &id, "try-1", "hello").await.2;
    assert_ne!(agents["id"], first["id"]);
    let bobs_ticket = ticket(&server, &bob).await;
    let bobs = post_keyed(&server, &bob, &bobs_ticket, "try-1", "hello")
        .await
        .2;
    assert_ne!(bobs["id"], first["id"]);

    // A retry that arrives after the ticket closed still gets its message, not a 409.
    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, late) = post_keyed(&server, &ann, &id, "try-1", "hello").await;
    assert_eq!((status, &late), (StatusCode::OK, &first));

    // A key must be 1-200 visible ASCII characters.
    let reply = post_keyed(&server, &ann, &bobs_ticket, &"k".repeat(201), "x").await;
    assert_field_error(&reply, "header.Idempotency-Key", "invalid_header");
    let reply = post_keyed(&server, &bob, &bobs_ticket, "has space", "x").await;
    assert_field_error(&reply, "header.Idempotency-Key", "invalid_header");
}

async fn a_retried_post_never_brings_back_a_message_deleted_since(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let id = ticket(&server, &ann).await;
    let path = format!("/api/v1/tickets/{id}/messages");

    let (status, _, first) = post_keyed(&server, &ann, &id, "k", "to be deleted").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let message = first["id"].as_str().unwrap();
    let (status, _, _) = server.delete(&format!("{path}/{message}"), &ann).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let reply = post_keyed(&server, &ann, &id, "k", "to be deleted").await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    assert_eq!(reply.2["message"], "Message not found");
    let (_, _, listed) = server.get(&path, &ann).await;
    assert_eq!(listed, json!([]), "the deleted message stays deleted");
    let agent = server.token("agent", "AGENT");
    let (_, _, seen_by_staff) = server.get(&path, &agent).await;
    assert_eq!(seen_by_staff, json!([]));
}

/// Schemathesis found it: the key that opened a ticket, sent again to post in it, named the
/// post's event like the opening's, so the post answered 500 and the ticket then refused every
/// change with 503 until the store's cache of stream versions was cleared.
async fn one_key_may_open_a_ticket_and_post_in_it(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let (status, _, ticket) = server.create_ticket_keyed(&ann, "same-key", "Keyed").await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    let id = ticket["id"].as_str().unwrap();
    let (status, _, posted) = post_keyed(&server, &ann, id, "same-key", "first words").await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    assert_eq!(posted["content"], "first words");
    let (status, _, again) = post_keyed(&server, &ann, id, "same-key", "first words").await;
    assert_eq!(
        (status, &again),
        (StatusCode::OK, &posted),
        "the retry answers the post"
    );
    let path = format!(
        "/api/v1/tickets/{id}/messages/{}",
        posted["id"].as_str().unwrap()
    );
    let (status, _, edited) = server
        .patch_json(&path, &ann, json!({"content": "edited words"}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the ticket still takes changes: {edited}"
    );
}

on_both_stores!(
    one_key_may_open_a_ticket_and_post_in_it,
    post_answers_the_seed_message_object,
    list_right_after_post_is_oldest_first,
    pagination_walks_every_message_once_oldest_first,
    default_message_page_is_50,
    edit_changes_content_and_keeps_identity,
    deleted_messages_leave_the_listing,
    a_closed_ticket_refuses_message_changes_with_409,
    fifty_concurrent_posts_all_land_once_in_one_order,
    a_long_history_comes_in_linked_pages_of_events,
    a_retried_post_with_the_same_idempotency_key_is_not_doubled,
    a_retried_post_never_brings_back_a_message_deleted_since,
);
