//! What the server acknowledged stays acknowledged: after a graceful stop and a restart on the
//! same DATA_DIR every ticket and message reads back byte-for-byte identical and new writes carry
//! on; after `kill -9` of the real `ticketd` binary every message answered 200 is still there.
//! Also checks the binary's `token` subcommand mints tokens the server accepts.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Everything each reader can read, as ("reader GET path -> status", body), in a fixed order.
async fn snapshot(api: &Api, readers: &[&str], tickets: &[String]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (r, token) in readers.iter().enumerate() {
        let mut paths = vec!["/api/v1/tickets?limit=200".to_string()];
        for id in tickets {
            paths.push(format!("/api/v1/tickets/{id}"));
            paths.push(format!("/api/v1/tickets/{id}/messages?limit=200"));
        }
        for path in paths {
            let (status, _, body) = api.get(&path, token).await;
            out.push((format!("reader {r} GET {path} -> {status}"), body));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_everything_and_writes_continue() {
    let server = TestServer::start().await;
    let ann = server.token("ann", "CUSTOMER");
    let gus = server.token("gus", "TEMP_USER");
    let ada = server.token("ada", "AGENT");

    let t1 = id_of(&server.create_ticket(&ann, "Printer", "On fire").await);
    let t2 = id_of(&server.create_ticket(&gus, "Login", "Locked out").await);
    let t3 = id_of(&server.create_ticket(&ann, "Refund", "Please").await);
    server.post_message(&ann, &t1, "first").await;
    let edited = server.post_message(&ann, &t1, "typo").await;
    let (s, _, _) = server
        .patch_json(
            &format!("/api/v1/tickets/{t1}/messages/{}", id_of(&edited)),
            &ann,
            json!({"content": "fixed", "attachments": ["https://example.com/shot.png"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let deleted = server.post_message(&ada, &t1, "wrong ticket").await;
    let (s, _, _) = server
        .delete(
            &format!("/api/v1/tickets/{t1}/messages/{}", id_of(&deleted)),
            &ada,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = server
        .post_json(
            &format!("/api/v1/tickets/{t1}/messages"),
            &ada,
            json!({"content": "note", "internal": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = server
        .patch_json(
            &format!("/api/v1/tickets/{t2}"),
            &ada,
            json!({"support_role": "TECHNICAL", "issue_level": "URGENT"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    server.post_message(&gus, &t2, "any news?").await;
    let (s, _, _) = server
        .post_json(
            &format!("/api/v1/tickets/{t3}/close"),
            &ann,
            json!({"reason": "solved"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let tickets = [t1.clone(), t2.clone(), t3.clone()];
    let readers = [ada.as_str(), ann.as_str(), gus.as_str()];
    let before = snapshot(&server, &readers, &tickets).await;
    // Sanity: the snapshot holds what we wrote.
    let ada_t1_messages = &before[2].1;
    assert_eq!(
        ada_t1_messages.as_array().map(Vec::len),
        Some(3),
        "{ada_t1_messages}"
    );

    let dir = server.stop().await;
    let server = TestServer::start_in(dir, &[]).await;
    let after = snapshot(&server, &readers, &tickets).await;
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a, b, "after a restart");
    }

    // New writes continue where the old ones stopped.
    let t4 = server
        .create_ticket(&ann, "After restart", "Still works")
        .await;
    let (_, _, list) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(
        body_ids(&list),
        [id_of(&t4), t3.clone(), t1.clone()],
        "the new ticket is the newest"
    );
    let m = server.post_message(&ann, &t1, "after restart").await;
    let (_, _, msgs) = server
        .get(&format!("/api/v1/tickets/{t1}/messages"), &ann)
        .await;
    let msgs = msgs.as_array().unwrap();
    assert_eq!(msgs.last(), Some(&m), "the new message is the last");
    assert_eq!(
        ids(msgs)
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        msgs.len(),
        "no id reused"
    );
    let (s, _, reopened) = server
        .post_empty(&format!("/api/v1/tickets/{t3}/reopen"), &ada)
        .await;
    assert_eq!(
        (s, reopened["status"].as_str()),
        (StatusCode::OK, Some("OPEN"))
    );

    // And those survive another restart as well.
    let tickets = [t1, t2, t3, id_of(&t4)];
    let before = snapshot(&server, &readers, &tickets).await;
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, &[]).await;
    let after = snapshot(&server, &readers, &tickets).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a, b, "after a second restart");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(data.path()).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = server
        .create_ticket(&ann, "Crash test", "Pull the plug")
        .await;
    let id = id_of(&ticket);
    let mut acked = Vec::new();
    for i in 0..20 {
        let (status, _, m) = server
            .post_json(
                &format!("/api/v1/tickets/{id}/messages"),
                &ann,
                json!({"content": format!("m{i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "message {i}: {m}");
        acked.push(m);
    }
    let (_, _, ticket_before) = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    server.kill9();

    let server = BinaryServer::spawn(data.path()).await;
    let (status, _, got) = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the ticket survives kill -9: {got}\n{}",
        server.log_text()
    );
    assert_eq!(got, ticket_before);
    let (items, _) = server
        .walk(&format!("/api/v1/tickets/{id}/messages?limit=200"), &ann)
        .await;
    assert_eq!(
        items.len(),
        20,
        "all 20 acknowledged messages survive kill -9"
    );
    assert_eq!(items, acked, "identical, in order");

    // The restarted server takes new writes.
    let m = server.post_message(&ann, &id, "after the crash").await;
    let (_, _, list) = server
        .get(&format!("/api/v1/tickets/{id}/messages?limit=200"), &ann)
        .await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 21);
    assert_eq!(list.last(), Some(&m));
    let (_, _, tickets) = server.get("/api/v1/tickets", &ann).await;
    assert_eq!(body_ids(&tickets), [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_subcommand_mints_tokens_the_server_accepts() {
    let server = TestServer::start().await;
    let cwd = tempfile::tempdir().unwrap();
    let out = binary_command(server.data_dir(), cwd.path())
        .args([
            "token",
            "--id",
            "u-42",
            "--username",
            "Ann",
            "--email",
            "ann@example.com",
            "--role",
            "CUSTOMER",
        ])
        .output()
        .expect("run ticketd token");
    assert!(
        out.status.success(),
        "ticketd token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let ticket = server
        .create_ticket(&token, "From the CLI", "Token works")
        .await;
    assert_eq!(ticket["user_id"], "u-42");
    assert_eq!(ticket["user_role"], "CUSTOMER");
    let m = server.post_message(&token, &id_of(&ticket), "hi").await;
    assert_eq!(m["author_name"], "Ann");

    let out = binary_command(server.data_dir(), cwd.path())
        .args([
            "token",
            "--id",
            "u",
            "--username",
            "A",
            "--email",
            "a@example.com",
            "--role",
            "ROOT",
        ])
        .output()
        .expect("run ticketd token");
    assert!(!out.status.success(), "an unknown role is refused");
    assert!(
        out.stdout.is_empty(),
        "no token printed for an unknown role"
    );

    // A short-lived token minted with --ttl is accepted while valid.
    let out = binary_command(server.data_dir(), cwd.path())
        .args([
            "token",
            "--id",
            "u-7",
            "--username",
            "B",
            "--email",
            "b@example.com",
            "--role",
            "AGENT",
            "--ttl",
            "3600",
        ])
        .output()
        .expect("run ticketd token");
    assert!(out.status.success());
    let agent = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, _, list) = server.get("/api/v1/tickets", &agent).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body_ids(&list),
        [id_of(&ticket)],
        "the agent sees the customer's ticket"
    );
}
