//! Full-text search (issue 17 part 1, ADR 0024) seen from outside, on both stores: who finds
//! what (customers their own tickets, internal notes for staff only), edits and deletions
//! reflected at once, accents and case folded, the last word as a prefix, every word required,
//! best match first, pages linked, listing filters, 400s that change nothing, and excerpts that
//! are escaped text with only `<mark>` added.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn search_path(q: &str, extra: &str) -> String {
    let q: String = q
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("/api/v1/search?q={q}{extra}")
}

/// The ids of the hits, in order, and the whole answer.
async fn search(server: &TestServer, token: &str, q: &str, extra: &str) -> (Vec<String>, Value) {
    let (status, _, body) = server.get(&search_path(q, extra), token).await;
    assert_eq!(status, StatusCode::OK, "search {q:?}: {body}");
    (body_ids(&body), body)
}

fn id(ticket: &Value) -> String {
    ticket["id"].as_str().unwrap().to_string()
}

async fn post_note(server: &TestServer, token: &str, ticket: &str, content: &str) -> Value {
    let (status, _, body) = server
        .post_json(
            &format!("/api/v1/tickets/{ticket}/messages"),
            token,
            json!({"content": content, "internal": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn visibility(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let bob = server.token("bob", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let a = server
        .create_ticket(&ann, "Printer on fire", "It smokes")
        .await;
    let b = server
        .create_ticket(&bob, "Printer jammed", "Paper stuck")
        .await;
    post_note(&server, &ada, &id(&a), "escalate to facilities").await;

    let (found, body) = search(&server, &ann, "printer", "").await;
    assert_eq!(found, [id(&a)], "a customer finds only their own tickets");
    assert!(body[0].get("tags").is_none(), "the customer view: {body}");
    let (found, body) = search(&server, &ada, "printer", "").await;
    assert_eq!(found.len(), 2, "staff find everybody's");
    assert!(found.contains(&id(&a)) && found.contains(&id(&b)));
    assert_eq!(body[0]["tags"], json!([]), "the staff view shows tags");

    let (found, _) = search(&server, &ada, "facilities", "").await;
    assert_eq!(found, [id(&a)], "staff search internal notes");
    let (found, _) = search(&server, &ann, "facilities", "").await;
    assert!(found.is_empty(), "a customer never finds a note's words");
    let (_, body) = search(&server, &ada, "printer facilities", "").await;
    assert!(
        body[0]["highlights"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h.as_str().unwrap().contains("<mark>facilities</mark>")),
        "staff see the note's excerpt: {body}"
    );
    let (_, body) = search(&server, &ann, "printer", "").await;
    assert!(
        !body.to_string().contains("facilities"),
        "nor does a note show in a customer's excerpts: {body}"
    );
    server.stop().await;
}

async fn edits_and_deletions(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let t = server
        .create_ticket(&ann, "Login trouble", "Cannot sign in")
        .await;
    let m = server
        .post_message(&ann, &id(&t), "my password is walrus")
        .await;
    let path = format!("/api/v1/tickets/{}/messages/{}", id(&t), id(&m));
    assert_eq!(search(&server, &ada, "walrus", "").await.0, [id(&t)]);

    let (status, _, _) = server
        .patch_json(&path, &ann, json!({"content": "my password is narwhal"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        search(&server, &ada, "walrus", "").await.0.is_empty(),
        "the old text is gone"
    );
    assert_eq!(search(&server, &ann, "narwhal", "").await.0, [id(&t)]);

    let (status, _, _) = server.delete(&path, &ann).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(search(&server, &ada, "narwhal", "").await.0.is_empty());
    assert_eq!(
        search(&server, &ada, "login", "").await.0,
        [id(&t)],
        "the ticket's own text stays"
    );
    server.stop().await;
}

async fn accents_case_prefixes_and_every_word(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let cafe = server
        .create_ticket(&ann, "Le Café est fermé", "Crème brûlée missing")
        .await;
    let plain = server
        .create_ticket(&ann, "CAFE opening hours", "When do you open")
        .await;
    server
        .post_message(&ann, &id(&plain), "also the naïve question")
        .await;

    let (found, _) = search(&server, &ada, "cafe", "").await;
    assert_eq!(found.len(), 2, "accents and case ignored: {found:?}");
    let (found, _) = search(&server, &ada, "FERME", "").await;
    assert_eq!(found, [id(&cafe)]);
    let (found, _) = search(&server, &ada, "café brûl", "").await;
    assert_eq!(found, [id(&cafe)], "the last word is also a prefix");
    let (found, _) = search(&server, &ada, "brul cafe", "").await;
    assert!(found.is_empty(), "only the last word: {found:?}");
    let (found, _) = search(&server, &ada, "cafe naive", "").await;
    assert_eq!(
        found,
        [id(&plain)],
        "every word must match, across topic, description and messages"
    );
    let (found, _) = search(&server, &ada, "cafe zebra", "").await;
    assert!(
        found.is_empty(),
        "a word that matches nothing leaves nothing"
    );
    let (_, body) = search(&server, &ada, "cafe", "").await;
    let highlights = body[0]["highlights"].as_array().unwrap();
    assert!(!highlights.is_empty());
    assert!(
        body.to_string().contains("<mark>Café</mark>")
            && body.to_string().contains("<mark>CAFE</mark>"),
        "the original words are marked: {body}"
    );
    server.stop().await;
}

async fn best_match_first_and_pages(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let in_message = server.create_ticket(&ann, "Question", "A question").await;
    server
        .post_message(&ann, &id(&in_message), "about the modem")
        .await;
    let in_topic = server.create_ticket(&ann, "Modem broken", "Help").await;
    let in_description = server
        .create_ticket(&ann, "Internet", "The modem blinks")
        .await;
    let (found, _) = search(&server, &ada, "modem", "").await;
    assert_eq!(
        found,
        [id(&in_topic), id(&in_description), id(&in_message)],
        "topic, then description, then messages"
    );

    let mut all = Vec::new();
    for n in 0..5 {
        all.push(id(&server
            .create_ticket(&ann, &format!("Router {n}"), "router trouble")
            .await));
    }
    all.reverse(); // one score: newest first
    let first = search_path("router", "&limit=2");
    let (status, headers, page) = server.get(&first, &ada).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body_ids(&page), all[..2]);
    let next = next_link(&headers).expect("a next page");
    assert!(
        next.starts_with("/api/v1/search?q=router&limit=2&cursor="),
        "{next}"
    );
    let (walked, pages) = server.walk(&first, &ada).await;
    assert_eq!(ids(&walked), all, "every hit once, in order");
    assert_eq!(pages, 3);
    server.stop().await;
}

async fn filters(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let open = server.create_ticket(&ann, "Refund please", "order 1").await;
    let closed = server.create_ticket(&ann, "Refund again", "order 2").await;
    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{}/close", id(&closed)), &ann)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server
        .patch_json(
            &format!("/api/v1/tickets/{}", id(&open)),
            &ada,
            json!({"tags": ["billing"], "issue_level": "URGENT"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(
        search(&server, &ada, "refund", "&status=CLOSED").await.0,
        [id(&closed)]
    );
    assert_eq!(
        search(&server, &ada, "refund", "&status=OPEN").await.0,
        [id(&open)]
    );
    assert_eq!(
        search(&server, &ada, "refund", "&tag=billing").await.0,
        [id(&open)]
    );
    assert_eq!(
        search(&server, &ada, "refund", "&issue_level=URGENT")
            .await
            .0,
        [id(&open)]
    );
    assert_eq!(
        search(&server, &ada, "refund", "&assignee_id=none")
            .await
            .0
            .len(),
        2
    );
    assert!(
        search(&server, &ada, "refund", "&assignee_id=me")
            .await
            .0
            .is_empty()
    );
    assert_eq!(
        search(&server, &ann, "refund", "&status=CLOSED").await.0,
        [id(&closed)],
        "customers filter too"
    );
    let reply = server
        .get(&search_path("refund", "&tag=billing"), &ann)
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = server
        .get(&search_path("refund", "&user_id=bob"), &ann)
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    server.stop().await;
}

async fn bad_queries(store: &Backend) {
    let server = store.start().await;
    let ada = server.token("ada", "AGENT");
    server.create_ticket(&ada, "Anything", "at all").await;
    for path in [
        "/api/v1/search".to_string(),
        "/api/v1/search?q=".to_string(),
        search_path("   ", ""),
        search_path("?!.", ""),
        search_path(&"a".repeat(201), ""),
        search_path("a b c d e f g h i j k", ""),
    ] {
        let reply = server.get(&path, &ada).await;
        assert_field_error(&reply, "query.q", "invalid_query");
    }
    for (extra, location, kind) in [
        ("&limit=0", "query.limit", "invalid_query"),
        ("&limit=201", "query.limit", "invalid_query"),
        ("&cursor=x", "query.cursor", "invalid_query"),
        ("&status=SHUT", "query.status", "invalid_value"),
        ("&issue_level=LOW", "query.issue_level", "invalid_value"),
        ("&tag=no%20spaces", "query.tag", "invalid_query"),
    ] {
        let reply = server.get(&search_path("anything", extra), &ada).await;
        assert_field_error(&reply, location, kind);
    }
    let reply = server
        .request(Method::GET, &search_path("anything", ""), None, None)
        .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    server.stop().await;
}

async fn highlights_are_escaped(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let t = server
        .create_ticket(&ann, "XSS <b>attempt</b>", "quotes \" and ' & stuff")
        .await;
    server
        .post_message(&ann, &id(&t), "<script>alert('attempt')</script>")
        .await;
    let (found, body) = search(&server, &ann, "attempt", "").await;
    assert_eq!(found, [id(&t)]);
    let highlights: Vec<&str> = body[0]["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(
        highlights,
        [
            "XSS &lt;b&gt;<mark>attempt</mark>&lt;/b&gt;",
            "&lt;script&gt;alert(&#39;<mark>attempt</mark>&#39;)&lt;/script&gt;",
        ]
    );
    for h in &highlights {
        let without_marks = h.replace("<mark>", "").replace("</mark>", "");
        assert!(!without_marks.contains('<'), "only <mark> tags: {h}");
    }
    let (_, body) = search(&server, &ann, "quotes", "").await;
    assert_eq!(
        body[0]["highlights"],
        json!(["<mark>quotes</mark> &quot; and &#39; &amp; stuff"])
    );
    server.stop().await;
}

/// Excerpts come from the first matching messages in posting order, at most three, however
/// far into a long conversation they are, and an internal note counts for staff only.
async fn excerpts_from_the_first_matching_messages(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let t = server
        .create_ticket(&ann, "Quiet topic", "Nothing here")
        .await;
    for i in 1..=20 {
        if i == 12 {
            post_note(&server, &ada, &id(&t), "walrus note").await;
        }
        let content = if [10, 15, 16, 17].contains(&i) {
            format!("walrus {i}")
        } else {
            format!("filler {i}")
        };
        server.post_message(&ann, &id(&t), &content).await;
    }
    let (found, body) = search(&server, &ann, "walrus", "").await;
    assert_eq!(found, [id(&t)]);
    assert_eq!(
        body[0]["highlights"],
        json!([
            "<mark>walrus</mark> 10",
            "<mark>walrus</mark> 15",
            "<mark>walrus</mark> 16"
        ])
    );
    let (_, body) = search(&server, &ada, "walrus", "").await;
    assert_eq!(
        body[0]["highlights"],
        json!([
            "<mark>walrus</mark> 10",
            "<mark>walrus</mark> note",
            "<mark>walrus</mark> 15"
        ])
    );
    server.stop().await;
}

/// `ticketd replay` rebuilds the index: the answers are the same after it, and a message posted
/// while the index was off (`SEARCH_INDEX=off`, when search answers 503) is found after it.
async fn replay_rebuilds_the_index(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let a = server
        .create_ticket(&ann, "Café printer", "Paper jam in tray two")
        .await;
    let b = server
        .create_ticket(&ann, "Printer again", "Toner low")
        .await;
    server.post_message(&ann, &id(&a), "still jammed").await;
    post_note(&server, &ada, &id(&b), "order toner cartridges").await;
    let m = server.post_message(&ann, &id(&b), "walrus words").await;
    let path = format!("/api/v1/tickets/{}/messages/{}", id(&b), id(&m));
    let (status, _, _) = server
        .patch_json(&path, &ann, json!({"content": "narwhal words"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let queries = [
        "printer", "cafe jam", "toner", "cart", "walrus", "narwhal", "words",
    ];
    let mut before = Vec::new();
    for q in queries {
        for token in [&ann, &ada] {
            before.push(search(&server, token, q, "").await.1);
        }
    }
    assert_eq!(before[6], json!([]), "a customer does not find the note");
    assert_eq!(body_ids(&before[7]), [id(&b)], "staff do");

    let server = store.restart_with(server, &[("SEARCH_INDEX", "off")]).await;
    let reply = server.get(&search_path("printer", ""), &ada).await;
    assert_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
    );
    server.post_message(&ann, &id(&a), "zeppelin").await;
    let dir = server.stop().await;
    let mongo = store.current_mongo();
    ticketd_cli(dir.path(), mongo.as_ref(), &["replay"], true);
    let server = match &mongo {
        Some(mongo) => TestServer::start_mongo(mongo, &[]).await,
        None => TestServer::start_in(dir, &[]).await,
    };
    let mut after = Vec::new();
    for q in queries {
        for token in [&ann, &ada] {
            after.push(search(&server, token, q, "").await.1);
        }
    }
    assert_eq!(after, before, "the same answers after the rebuild");
    assert_eq!(
        search(&server, &ada, "zeppelin", "").await.0,
        [id(&a)],
        "what was written while the index was off is in the rebuilt one"
    );
    server.stop().await;
}

/// A word stays found while any live message of the ticket holds it, whichever of them goes;
/// excerpts start at the first live message holding it, also after an earlier message is
/// edited to hold it; a restart (the writer forgets which words each ticket holds) neither
/// loses a word nor lists the ticket twice.
async fn a_word_lives_while_any_message_holds_it(store: &Backend) {
    let server = store.start().await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let t = server.create_ticket(&ann, "Quiet topic", "Nothing").await;
    let mut ids = Vec::new();
    for content in ["walrus one", "filler two", "walrus three", "filler four"] {
        ids.push(id(&server.post_message(&ann, &id(&t), content).await));
    }
    let path = |m: &str| format!("/api/v1/tickets/{}/messages/{m}", id(&t));
    let highlights = |body: &Value| body[0]["highlights"].clone();

    let (status, _, _) = server.delete(&path(&ids[0]), &ann).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (found, body) = search(&server, &ada, "walrus", "").await;
    assert_eq!(found, [id(&t)], "message three still holds it");
    assert_eq!(highlights(&body), json!(["<mark>walrus</mark> three"]));

    let (status, _, _) = server
        .patch_json(&path(&ids[1]), &ann, json!({"content": "walrus two"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = search(&server, &ada, "walrus", "").await;
    assert_eq!(
        highlights(&body),
        json!(["<mark>walrus</mark> two", "<mark>walrus</mark> three"]),
        "the edited earlier message comes first"
    );

    let server = store.restart(server).await;
    server.post_message(&ann, &id(&t), "walrus five").await;
    let (found, body) = search(&server, &ada, "walrus", "").await;
    assert_eq!(found, [id(&t)], "once, after a restart");
    assert_eq!(
        highlights(&body),
        json!([
            "<mark>walrus</mark> two",
            "<mark>walrus</mark> three",
            "<mark>walrus</mark> five"
        ])
    );
    for m in [&ids[1], &ids[2]] {
        let (status, _, _) = server.delete(&path(m), &ann).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (found, body) = search(&server, &ada, "walrus", "").await;
    assert_eq!(found, [id(&t)], "message five still holds it");
    assert_eq!(highlights(&body), json!(["<mark>walrus</mark> five"]));
    let last = body_ids(
        &server
            .get(&format!("/api/v1/tickets/{}/messages", id(&t)), &ann)
            .await
            .2,
    );
    for m in last.iter().filter(|m| !ids.contains(m)) {
        let (status, _, _) = server.delete(&path(m), &ann).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    assert!(
        search(&server, &ada, "walrus", "").await.0.is_empty(),
        "no message holds it"
    );
    assert_eq!(search(&server, &ada, "filler", "").await.0, [id(&t)]);
    server.stop().await;
}

on_both_stores!(
    a_word_lives_while_any_message_holds_it,
    replay_rebuilds_the_index,
    visibility,
    edits_and_deletions,
    accents_case_prefixes_and_every_word,
    best_match_first_and_pages,
    filters,
    bad_queries,
    highlights_are_escaped,
    excerpts_from_the_first_matching_messages,
);
