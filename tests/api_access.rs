//! Who may do what, seen from outside: TEMP_USER and CUSTOMER reach only their own tickets
//! (403 on another's, own-only listings); AGENT and ADMIN reach every ticket; only staff route
//! and reopen; owner or staff close; author or staff edit and delete messages; internal notes
//! are posted and seen by staff only and do not exist for customers.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CUSTOMER_ROLES: [&str; 2] = ["TEMP_USER", "CUSTOMER"];
const STAFF_ROLES: [&str; 2] = ["AGENT", "ADMIN"];

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn customers_cannot_touch_another_users_ticket(store: &Backend) {
    for role in CUSTOMER_ROLES {
        let server = store.start().await;
        let owner = server.token("owner", "CUSTOMER");
        let other = server.token("other", role);
        let ticket = server.create_ticket(&owner, "Mine", "Private").await;
        let id = id_of(&ticket);
        let msg = server.post_message(&owner, &id, "private words").await;
        let mpath = format!("/api/v1/tickets/{id}/messages/{}", id_of(&msg));

        let replies = vec![
            (
                "GET ticket",
                server.get(&format!("/api/v1/tickets/{id}"), &other).await,
            ),
            (
                "GET messages",
                server
                    .get(&format!("/api/v1/tickets/{id}/messages"), &other)
                    .await,
            ),
            (
                "POST message",
                server
                    .post_json(
                        &format!("/api/v1/tickets/{id}/messages"),
                        &other,
                        json!({"content": "hi"}),
                    )
                    .await,
            ),
            (
                "POST close",
                server
                    .post_empty(&format!("/api/v1/tickets/{id}/close"), &other)
                    .await,
            ),
            (
                "PATCH message",
                server
                    .patch_json(&mpath, &other, json!({"content": "mine now"}))
                    .await,
            ),
            ("DELETE message", server.delete(&mpath, &other).await),
        ];
        for (what, reply) in &replies {
            assert_eq!(
                reply.0,
                StatusCode::FORBIDDEN,
                "{role} {what} on another's ticket: {}",
                reply.2
            );
            assert_error(reply, StatusCode::FORBIDDEN, "FORBIDDEN");
        }
        // Nothing leaked into their listing, and nothing changed for the owner.
        let (status, _, list) = server.get("/api/v1/tickets", &other).await;
        assert_eq!(
            (status, list),
            (StatusCode::OK, json!([])),
            "{role} listing"
        );
        // (updated_at moved with the owner's message; everything else is as created.)
        let (_, _, mut got) = server.get(&format!("/api/v1/tickets/{id}"), &owner).await;
        assert!(got["updated_at"].as_i64() >= ticket["updated_at"].as_i64());
        got["updated_at"] = ticket["updated_at"].clone();
        assert_eq!(got, ticket);
        let (_, _, msgs) = server
            .get(&format!("/api/v1/tickets/{id}/messages"), &owner)
            .await;
        assert_eq!(msgs, json!([msg]));
    }
}

async fn customers_list_only_their_own_tickets(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let gus = server.token("gus", "TEMP_USER");
    let a1 = id_of(&server.create_ticket(&ann, "a1", "d").await);
    let g1 = id_of(&server.create_ticket(&gus, "g1", "d").await);
    let a2 = id_of(&server.create_ticket(&ann, "a2", "d").await);
    let g2 = id_of(&server.create_ticket(&gus, "g2", "d").await);

    let (status, _, list) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&list), [a2.clone(), a1.clone()]);
    let (status, _, list) = server.get("/api/v1/tickets", &gus).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&list), [g2.clone(), g1.clone()]);
    let (items, _) = server.walk("/api/v1/tickets?limit=1", &ann).await;
    assert_eq!(
        ids(&items),
        [a2.clone(), a1.clone()],
        "paging shows only own tickets too"
    );

    // Asking for another user's tickets never reveals them.
    let reply = server.get("/api/v1/tickets?user_id=gus", &ann).await;
    if reply.0 == StatusCode::OK {
        let got = body_ids(&reply.2);
        assert!(
            !got.contains(&g1) && !got.contains(&g2),
            "user_id=gus showed gus's tickets to ann: {}",
            reply.2
        );
    } else {
        assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    }
}

async fn staff_see_and_act_on_every_ticket(store: &Backend) {
    for role in STAFF_ROLES {
        let server = store.start().await;
        let ann = server.token("ann", "CUSTOMER");
        let gus = server.token("gus", "TEMP_USER");
        let staff = server.token("staff", role);
        let a = server.create_ticket(&ann, "a", "d").await;
        let g = server.create_ticket(&gus, "g", "d").await;

        let (status, _, list) = server.get("/api/v1/tickets", &staff).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            list,
            json!([as_staff_sees(&g), as_staff_sees(&a)]),
            "{role} sees every ticket, with its tags"
        );
        for t in [&a, &g] {
            let id = id_of(t);
            let (status, _, got) = server.get(&format!("/api/v1/tickets/{id}"), &staff).await;
            assert_eq!(
                (status, got),
                (StatusCode::OK, as_staff_sees(t)),
                "{role} GET ticket"
            );
            let m = server.post_message(&staff, &id, "staff here").await;
            let (status, _, msgs) = server
                .get(&format!("/api/v1/tickets/{id}/messages"), &staff)
                .await;
            assert_eq!((status, msgs), (StatusCode::OK, json!([m])));
            let (status, _, patched) = server
                .patch_json(
                    &format!("/api/v1/tickets/{id}"),
                    &staff,
                    json!({"issue_level": "URGENT"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{role} PATCH ticket: {patched}");
            let (status, _, closed) = server
                .post_empty(&format!("/api/v1/tickets/{id}/close"), &staff)
                .await;
            assert_eq!(
                (status, closed["status"].as_str()),
                (StatusCode::OK, Some("CLOSED")),
                "{role} close"
            );
            let (status, _, reopened) = server
                .post_empty(&format!("/api/v1/tickets/{id}/reopen"), &staff)
                .await;
            assert_eq!(
                (status, reopened["status"].as_str()),
                (StatusCode::OK, Some("OPEN")),
                "{role} reopen"
            );
        }
    }
}

async fn only_staff_route_and_reopen(store: &Backend) {
    for role in CUSTOMER_ROLES {
        let server = store.start().await;
        let owner = server.token("owner", role);
        let agent = server.token("ada", "AGENT");
        let ticket = server.create_ticket(&owner, "t", "d").await;
        let id = id_of(&ticket);

        for body in [
            json!({"support_role": "TECHNICAL"}),
            json!({"issue_level": "CRITICAL"}),
        ] {
            let reply = server
                .patch_json(&format!("/api/v1/tickets/{id}"), &owner, body.clone())
                .await;
            assert_eq!(
                reply.0,
                StatusCode::FORBIDDEN,
                "{role} PATCH {body} of own ticket: {}",
                reply.2
            );
            assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
        }
        let (_, _, got) = server.get(&format!("/api/v1/tickets/{id}"), &owner).await;
        assert_eq!(got, ticket, "a refused PATCH changes nothing");

        // The owner may close their own ticket but not reopen it.
        let (status, _, closed) = server
            .post_empty(&format!("/api/v1/tickets/{id}/close"), &owner)
            .await;
        assert_eq!(
            (status, closed["status"].as_str()),
            (StatusCode::OK, Some("CLOSED")),
            "{role} closes own"
        );
        let reply = server
            .post_empty(&format!("/api/v1/tickets/{id}/reopen"), &owner)
            .await;
        assert_eq!(reply.0, StatusCode::FORBIDDEN, "{role} reopen: {}", reply.2);
        assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
        let (_, _, got) = server.get(&format!("/api/v1/tickets/{id}"), &owner).await;
        assert_eq!(got["status"], "CLOSED");
        let (status, _, _) = server
            .post_empty(&format!("/api/v1/tickets/{id}/reopen"), &agent)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

async fn author_or_staff_edit_and_delete_messages(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let root = server.token("root", "ADMIN");
    let id = id_of(&server.create_ticket(&ann, "t", "d").await);
    let path = |m: &Value| format!("/api/v1/tickets/{id}/messages/{}", id_of(m));

    // The owner cannot change a staff member's reply in their own ticket.
    let staff_msg = server.post_message(&ada, &id, "from support").await;
    let reply = server
        .patch_json(&path(&staff_msg), &ann, json!({"content": "rewritten"}))
        .await;
    assert_eq!(
        reply.0,
        StatusCode::FORBIDDEN,
        "owner edits staff reply: {}",
        reply.2
    );
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = server.delete(&path(&staff_msg), &ann).await;
    assert_eq!(
        reply.0,
        StatusCode::FORBIDDEN,
        "owner deletes staff reply: {}",
        reply.2
    );
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");

    // The author edits their own; other staff may edit and delete anything.
    let own = server.post_message(&ann, &id, "mine").await;
    let (status, _, edited) = server
        .patch_json(&path(&own), &ann, json!({"content": "mine, edited"}))
        .await;
    assert_eq!(
        (status, edited["content"].as_str()),
        (StatusCode::OK, Some("mine, edited"))
    );
    let (status, _, edited) = server
        .patch_json(&path(&own), &root, json!({"content": "moderated"}))
        .await;
    assert_eq!(
        (status, edited["content"].as_str()),
        (StatusCode::OK, Some("moderated")),
        "staff edit: {edited}"
    );
    assert_eq!(edited["author_id"], "ann", "a staff edit keeps the author");
    let (status, _, edited) = server
        .patch_json(&path(&staff_msg), &root, json!({"content": "corrected"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");

    let (_, _, list) = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
        .await;
    let contents: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["corrected", "moderated"]);

    let (status, _, _) = server.delete(&path(&staff_msg), &ada).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the author deletes");
    let (status, _, _) = server.delete(&path(&own), &ada).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "staff delete a customer's message"
    );
    let own2 = server.post_message(&ann, &id, "again").await;
    let (status, _, _) = server.delete(&path(&own2), &ann).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "the author deletes their own"
    );
    let (_, _, list) = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
        .await;
    assert_eq!(list, json!([]));
}

async fn internal_notes_are_for_staff_only(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let root = server.token("root", "ADMIN");
    let id = id_of(&server.create_ticket(&ann, "t", "d").await);
    let mpath = format!("/api/v1/tickets/{id}/messages");

    let public1 = server.post_message(&ann, &id, "hello").await;
    let tpath = format!("/api/v1/tickets/{id}");
    let (_, _, seen_before_note) = server.get(&tpath, &ann).await;
    let (status, _, note) = server
        .post_json(
            &mpath,
            &ada,
            json!({"content": "customer seems upset", "internal": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{note}");
    let mut want_keys: Vec<&str> = MESSAGE_KEYS.to_vec();
    want_keys.push("internal");
    assert_eq!(
        keys(&note),
        want_keys,
        "an internal note adds `internal` after the seed keys"
    );
    assert_eq!(note["internal"], json!(true));
    // Nothing the customer can read of the ticket gives the note away (not even updated_at).
    let (_, _, seen_after_note) = server.get(&tpath, &ann).await;
    assert_eq!(
        seen_after_note, seen_before_note,
        "an internal note changes the customer's view of the ticket"
    );
    let (_, _, listed) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(listed, json!([seen_before_note]));
    let (status, _, public2) = server
        .post_json(
            &mpath,
            &root,
            json!({"content": "on it", "internal": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&public2),
        MESSAGE_KEYS,
        "`internal: false` is not shown"
    );

    // Staff see the note in place; the customer never does, on any page.
    for staff in [&ada, &root] {
        let (_, _, list) = server.get(&mpath, staff).await;
        assert_eq!(list, json!([public1, note, public2]));
    }
    let (_, _, list) = server.get(&mpath, &ann).await;
    assert_eq!(list, json!([public1, public2]));
    let (items, _) = server.walk(&format!("{mpath}?limit=1"), &ann).await;
    assert_eq!(items, vec![public1.clone(), public2.clone()]);
    assert!(!list.to_string().contains("customer seems upset"));

    // For the customer the note does not exist.
    let note_path = format!("{mpath}/{}", id_of(&note));
    let reply = server
        .patch_json(&note_path, &ann, json!({"content": "peek"}))
        .await;
    assert_eq!(
        reply.0,
        StatusCode::NOT_FOUND,
        "customer edits an internal note: {}",
        reply.2
    );
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    let reply = server.delete(&note_path, &ann).await;
    assert_eq!(
        reply.0,
        StatusCode::NOT_FOUND,
        "customer deletes an internal note: {}",
        reply.2
    );
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");

    // A customer may not post one, even in their own ticket.
    for role in CUSTOMER_ROLES {
        let token = if role == "CUSTOMER" {
            ann.clone()
        } else {
            server.token("gus", role)
        };
        let target = if role == "CUSTOMER" {
            id.clone()
        } else {
            id_of(&server.create_ticket(&token, "guest", "d").await)
        };
        let reply = server
            .post_json(
                &format!("/api/v1/tickets/{target}/messages"),
                &token,
                json!({"content": "x", "internal": true}),
            )
            .await;
        assert_eq!(
            reply.0,
            StatusCode::FORBIDDEN,
            "{role} posts internal: {}",
            reply.2
        );
        assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    }

    // Staff can still edit the note and it stays internal.
    let (_, _, seen_before_edit) = server.get(&tpath, &ann).await;
    let (status, _, edited) = server
        .patch_json(&note_path, &root, json!({"content": "calmer now"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["internal"], json!(true));
    let (_, _, list) = server.get(&mpath, &ann).await;
    assert_eq!(
        list,
        json!([public1, public2]),
        "an edit does not reveal the note"
    );
    let (status, _, _) = server.delete(&note_path, &ada).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, list) = server.get(&mpath, &ada).await;
    assert_eq!(list, json!([public1, public2]));
    let (_, _, seen_after) = server.get(&tpath, &ann).await;
    assert_eq!(
        seen_after, seen_before_edit,
        "editing and deleting a note changes nothing the customer sees"
    );
}

on_both_stores!(
    customers_cannot_touch_another_users_ticket,
    customers_list_only_their_own_tickets,
    staff_see_and_act_on_every_ticket,
    only_staff_route_and_reopen,
    author_or_staff_edit_and_delete_messages,
    internal_notes_are_for_staff_only,
);
