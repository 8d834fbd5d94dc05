//! A representative slice of the black-box API tests in MongoDB mode (`MONGO_URI` set), through
//! the same harness: tickets, messages, access rules, a race of 50 posts, two instances on one
//! database answering alike, and moving a store's history from the embedded file to MongoDB.
//! Runs against the SecantusDB server `scripts/test` starts (`TICKETD_TEST_MONGO_URI`); each
//! test uses a database of its own and drops it.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

async fn ticket(server: &Api, token: &str, topic: &str) -> String {
    let created = server.create_ticket(token, topic, "It is on fire").await;
    created["id"].as_str().expect("ticket id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_create_get_list_filter_and_page() {
    let Some(mongo) = TestMongo::new("api_tickets") else {
        return;
    };
    let server = TestServer::start_mongo(&mongo, &[]).await;
    let (status, _, ready) = server
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready");

    let ann = server.token("ann", "CUSTOMER");
    let bob = server.token("bob", "CUSTOMER");
    let agent = server.token("ada", "AGENT");
    let created = server.create_ticket(&ann, "Printer", "It is on fire").await;
    assert_eq!(keys(&created), TICKET_KEYS);
    assert_eq!(created["status"], "OPEN");
    assert_eq!(created["user_id"], "ann");
    let first = assert_uuid(&created["id"]);
    let (status, _, got) = server.get(&format!("/api/v1/tickets/{first}"), &ann).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created, "GET answers what POST answered");

    let mut anns = vec![first.clone()];
    for i in 0..6 {
        anns.push(ticket(&server, &ann, &format!("ann {i}")).await);
    }
    let bobs = ticket(&server, &bob, "bob's").await;
    let (status, _, listed) = server.get("/api/v1/tickets?limit=100", &ann).await;
    assert_eq!(status, StatusCode::OK);
    let newest_first: Vec<String> = anns.iter().rev().cloned().collect();
    assert_eq!(body_ids(&listed), newest_first, "customers list their own");

    let (all, pages) = server.walk("/api/v1/tickets?limit=3", &agent).await;
    assert_eq!(pages, 3, "8 tickets by 3");
    let mut everyone = vec![bobs.clone()];
    everyone.extend(newest_first.iter().cloned());
    assert_eq!(
        ids(&all),
        everyone,
        "staff walk every ticket once, newest first"
    );

    let (status, _, closed) = server
        .post_empty(&format!("/api/v1/tickets/{}/close", anns[2]), &agent)
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "CLOSED");
    let (_, _, only_closed) = server.get("/api/v1/tickets?status=CLOSED", &agent).await;
    assert_eq!(body_ids(&only_closed), [anns[2].clone()]);
    let (status, _, patched) = server
        .patch_json(
            &format!("/api/v1/tickets/{}", anns[3]),
            &agent,
            json!({"issue_level": "URGENT"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (_, _, urgent) = server.get("/api/v1/tickets?issue_level=URGENT", &ann).await;
    assert_eq!(body_ids(&urgent), [anns[3].clone()]);

    server.stop().await;
    mongo.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_post_edit_delete_and_list() {
    let Some(mongo) = TestMongo::new("api_messages") else {
        return;
    };
    let server = TestServer::start_mongo(&mongo, &[]).await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("ada", "AGENT");
    let id = ticket(&server, &ann, "Printer").await;
    let path = format!("/api/v1/tickets/{id}/messages");
    let m1 = server.post_message(&ann, &id, "first").await;
    assert_eq!(keys(&m1), MESSAGE_KEYS);
    let m2 = server.post_message(&agent, &id, "second").await;
    let (status, _, note) = server
        .post_json(
            &path,
            &agent,
            json!({"content": "staff only", "internal": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{note}");
    let (_, _, listed) = server.get(&path, &ann).await;
    assert_eq!(
        listed,
        json!([m1, m2]),
        "customers never see internal notes"
    );
    let (_, _, listed) = server.get(&path, &agent).await;
    assert_eq!(body_ids(&listed).len(), 3, "staff do");

    let m1_id = m1["id"].as_str().unwrap();
    let (status, _, edited) = server
        .patch_json(
            &format!("{path}/{m1_id}"),
            &ann,
            json!({"content": "first, edited"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["content"], "first, edited");
    assert_eq!(edited["created_at"], m1["created_at"]);
    let (status, _, _) = server
        .delete(&format!("{path}/{}", m2["id"].as_str().unwrap()), &agent)
        .await;
    assert!(status.is_success(), "delete answered {status}");
    let (_, _, listed) = server.get(&path, &ann).await;
    assert_eq!(listed, json!([edited]));

    let posted: Vec<String> = {
        let mut posted = Vec::new();
        for i in 0..7 {
            posted.push(
                server.post_message(&ann, &id, &format!("page {i}")).await["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        posted
    };
    let (walked, pages) = server.walk(&format!("{path}?limit=3"), &ann).await;
    assert_eq!(pages, 3);
    let mut expected = vec![m1_id.to_string()];
    expected.extend(posted);
    assert_eq!(ids(&walked), expected, "pages walk every live message once");

    server.stop().await;
    mongo.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_cannot_touch_another_users_ticket() {
    let Some(mongo) = TestMongo::new("api_access") else {
        return;
    };
    let server = TestServer::start_mongo(&mongo, &[]).await;
    let ann = server.token("ann", "CUSTOMER");
    let eve = server.token("eve", "TEMP_USER");
    let admin = server.token("root", "ADMIN");
    let id = ticket(&server, &ann, "Mine").await;
    let reply = server.get(&format!("/api/v1/tickets/{id}"), &eve).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &eve,
            json!({"content": "let me in"}),
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let reply = server
        .post_empty(&format!("/api/v1/tickets/{id}/close"), &ann)
        .await;
    assert!(reply.0.is_success() || reply.0 == StatusCode::FORBIDDEN);
    let (_, _, listed) = server.get("/api/v1/tickets", &eve).await;
    assert_eq!(listed, json!([]), "eve lists nothing of ann's");
    let reply = server
        .get(
            "/api/v1/tickets/0190f0e4-0000-7000-8000-000000000000",
            &admin,
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "NOT_FOUND");
    server.stop().await;
    mongo.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_posts_all_land_contiguous() {
    let Some(mongo) = TestMongo::new("api_fifty") else {
        return;
    };
    let server = TestServer::start_mongo(&mongo, &[]).await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("ada", "AGENT");
    let admin = server.token("root", "ADMIN");
    let id = ticket(&server, &ann, "Race").await;
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
    let mut posted = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, status, body) = joined.expect("a posting task panicked");
        assert_eq!(status, StatusCode::OK, "post {i}: {body}");
        posted.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(posted.len(), 50);
    let (_, _, listed) = server
        .get(&format!("/api/v1/tickets/{id}/messages?limit=200"), &ann)
        .await;
    let listed = body_ids(&listed);
    assert_eq!(listed.len(), 50, "all 50 listed, none twice");
    assert_eq!(listed.iter().cloned().collect::<HashSet<_>>(), posted);
    let (status, _, events) = server
        .get(&format!("/api/v1/tickets/{id}/events"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let versions: Vec<u64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (1..=51).collect::<Vec<_>>(),
        "contiguous versions"
    );
    let positions: Vec<u64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        (1..=51).collect::<Vec<_>>(),
        "gap-free positions"
    );
    server.stop().await;
    mongo.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_answer_alike() {
    let Some(mongo) = TestMongo::new("api_two_instances") else {
        return;
    };
    let a = TestServer::start_mongo(&mongo, &[]).await;
    let b = TestServer::start_mongo(&mongo, &[]).await;
    let ann = a.token("ann", "CUSTOMER");
    let agent = a.token("ada", "AGENT");
    let id = ticket(&a, &ann, "Seen everywhere").await;
    let on_b = b.post_message(&agent, &id, "answered through B").await;
    let on_a = a.post_message(&ann, &id, "thanks, through A").await;
    for server in [&a, &b] {
        let (status, _, listed) = server
            .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            listed,
            json!([on_b, on_a]),
            "{} reads every write",
            server.base
        );
    }
    // Racing posts through both instances to one ticket all land.
    let instances: [Api; 2] = [(*a).clone(), (*b).clone()];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let api = instances[i % 2].clone();
        let (token, id) = (ann.clone(), id.clone());
        tasks.spawn(async move { api.post_message(&token, &id, &format!("race {i}")).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a posting task panicked");
    }
    let (_, _, from_a) = a
        .get(&format!("/api/v1/tickets/{id}/messages?limit=100"), &ann)
        .await;
    let (_, _, from_b) = b
        .get(&format!("/api/v1/tickets/{id}/messages?limit=100"), &ann)
        .await;
    assert_eq!(from_a.as_array().unwrap().len(), 22);
    assert_eq!(from_a, from_b);
    // One Idempotency-Key retried on both instances at once opens one ticket.
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..6 {
        let api = instances[i % 2].clone();
        let token = ann.clone();
        racers.spawn(async move { api.create_ticket_keyed(&token, "open-once", "Keyed").await });
    }
    let mut keyed = HashSet::new();
    while let Some(done) = racers.join_next().await {
        let (status, _, body) = done.expect("an opening task panicked");
        assert_eq!(status, StatusCode::OK, "{body}");
        keyed.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(keyed.len(), 1, "one ticket for one key: {keyed:?}");
    let (_, _, listed) = a.get("/api/v1/tickets", &ann).await;
    assert_eq!(body_ids(&listed).len(), 2, "{listed}");
    a.stop().await;
    b.stop().await;
    mongo.drop_database().await;
}

/// The answers a client gets about `tickets`, for comparing two servers.
async fn answers(server: &Api, tickets: &[String]) -> Vec<Value> {
    let agent = server.token("ada", "AGENT");
    let admin = server.token("root", "ADMIN");
    let mut out = Vec::new();
    out.push(
        server
            .walk("/api/v1/tickets?limit=2", &agent)
            .await
            .0
            .into(),
    );
    for id in tickets {
        out.push(server.get(&format!("/api/v1/tickets/{id}"), &agent).await.2);
        out.push(
            server
                .get(&format!("/api/v1/tickets/{id}/messages?limit=200"), &agent)
                .await
                .2,
        );
        out.push(
            server
                .get(&format!("/api/v1/tickets/{id}/events"), &admin)
                .await
                .2,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_from_embedded_import_into_mongo_and_back_answers_alike() {
    let Some(mongo) = TestMongo::new("api_export_import") else {
        return;
    };
    // A history on the embedded store: tickets, messages, edits, a deletion, a close.
    let embedded = TestServer::start().await;
    let ann = embedded.token("ann", "CUSTOMER");
    let agent = embedded.token("ada", "AGENT");
    let mut tickets = Vec::new();
    for i in 0..3 {
        let id = ticket(&embedded, &ann, &format!("moved {i}")).await;
        for j in 0..4 {
            let token = if j % 2 == 0 { &ann } else { &agent };
            embedded
                .post_message(token, &id, &format!("message {j}"))
                .await;
        }
        tickets.push(id);
    }
    let m = embedded
        .post_message(&ann, &tickets[0], "to be edited")
        .await;
    let m_path = format!(
        "/api/v1/tickets/{}/messages/{}",
        tickets[0],
        m["id"].as_str().unwrap()
    );
    let (status, _, _) = embedded
        .patch_json(&m_path, &ann, json!({"content": "edited"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = embedded.delete(&m_path, &agent).await;
    assert!(status.is_success());
    let (status, _, _) = embedded
        .post_empty(&format!("/api/v1/tickets/{}/close", tickets[1]), &agent)
        .await;
    assert_eq!(status, StatusCode::OK);
    // A ticket opened with an Idempotency-Key: its key moves with the store.
    let (status, _, keyed) = embedded.create_ticket_keyed(&ann, "open-1", "keyed").await;
    assert_eq!(status, StatusCode::OK, "{keyed}");
    tickets.push(keyed["id"].as_str().unwrap().to_owned());
    let before = answers(&embedded, &tickets).await;
    let data_dir = embedded.stop().await;

    let files = tempfile::tempdir().unwrap();
    let export = files.path().join("events.jsonl");
    let export_arg = export.to_str().unwrap();
    ticketd_cli(
        data_dir.path(),
        None,
        &["export", "--output", export_arg],
        true,
    );
    let lines = std::fs::read_to_string(&export).unwrap();
    assert_eq!(
        lines.lines().count(),
        3 * 5 + 4 + 1 + 1,
        "one line per event, then one for the ticket key"
    );
    let events_only = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with(r#"{"link""#) && !l.starts_with(r#"{"checkpoint""#))
            .map(|l| format!("{l}\n"))
            .collect()
    };

    ticketd_cli(
        data_dir.path(),
        Some(&mongo),
        &["import", "--input", export_arg],
        true,
    );
    let refused = ticketd_cli(
        data_dir.path(),
        Some(&mongo),
        &["import", "--input", export_arg],
        false,
    );
    assert!(
        refused.contains("not empty"),
        "a second import is refused: {refused}"
    );

    let on_mongo = TestServer::start_mongo(&mongo, &[]).await;
    assert_eq!(
        answers(&on_mongo, &tickets).await,
        before,
        "MongoDB answers like the embedded store did"
    );
    let (status, _, retried) = on_mongo.create_ticket_keyed(&ann, "open-1", "keyed").await;
    assert_eq!(
        (status, &retried["id"]),
        (StatusCode::OK, &keyed["id"]),
        "a retried open answers the moved ticket"
    );
    // The imported store carries on: the next event chains to the imported ones.
    on_mongo
        .post_message(&ann, &tickets[0], "after the move")
        .await;
    on_mongo.stop().await;

    // And back: MongoDB to a fresh data directory.
    let back = files.path().join("back.jsonl");
    let back_arg = back.to_str().unwrap();
    ticketd_cli(
        data_dir.path(),
        Some(&mongo),
        &["export", "--output", back_arg],
        true,
    );
    let exported_back = std::fs::read_to_string(&back).unwrap();
    assert!(
        events_only(&exported_back).starts_with(&events_only(&lines)),
        "MongoDB keeps every byte of the history"
    );
    let key_line = lines.lines().last().unwrap();
    assert!(
        exported_back.lines().any(|l| l == key_line),
        "and the ticket key: {key_line}"
    );
    let fresh_dir = tempfile::tempdir().unwrap();
    ticketd_cli(
        fresh_dir.path(),
        None,
        &["import", "--input", back_arg],
        true,
    );
    let embedded_again = TestServer::start_in(fresh_dir, &[]).await;
    let on_mongo = TestServer::start_mongo(&mongo, &[]).await;
    assert_eq!(
        answers(&embedded_again, &tickets).await,
        answers(&on_mongo, &tickets).await,
        "the embedded store answers like MongoDB after the move back"
    );
    let (status, _, retried) = embedded_again
        .create_ticket_keyed(&ann, "open-1", "keyed")
        .await;
    assert_eq!((status, &retried["id"]), (StatusCode::OK, &keyed["id"]));
    ticketd_cli(
        embedded_again.data_dir(),
        None,
        &["import", "--input", back_arg],
        false,
    );
    embedded_again.stop().await;
    on_mongo.stop().await;

    // A tampered export is refused before anything is written.
    let tampered = files.path().join("tampered.jsonl");
    std::fs::write(&tampered, lines.replacen("message 1", "message X", 1)).unwrap();
    let empty_dir = tempfile::tempdir().unwrap();
    let refused = ticketd_cli(
        empty_dir.path(),
        None,
        &["import", "--input", tampered.to_str().unwrap()],
        false,
    );
    assert!(refused.contains("hash"), "{refused}");
    mongo.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_on_instance_b_receives_a_message_posted_on_a() {
    let Some(mongo) = TestMongo::new("api_sockets_two_instances") else {
        return;
    };
    let socket_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/socket");
    assert!(
        socket_dir
            .join("node_modules/socket.io-client/package.json")
            .is_file(),
        "run `npm ci --prefix tests/socket` first (scripts/test does it)"
    );
    let a = TestServer::start_mongo(&mongo, &[]).await;
    let b = TestServer::start_mongo(&mongo, &[]).await;
    let child = tokio::process::Command::new("node")
        .arg(socket_dir.join("scenarios.mjs"))
        .arg("two_instances")
        .env("BASE_URL", &a.base)
        .env("BASE_URL_B", &b.base)
        .env("JWT_SECRET", SECRET)
        .env("NODE_NO_WARNINGS", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` (Node.js 18+ is needed): {e}"));
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the scenario finished within 60 s")
        .expect("wait for node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scenario two_instances failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    println!("{stdout}");
    a.stop().await;
    b.stop().await;
    mongo.drop_database().await;
}

/// A SecantusDB of the test's own (beside the shared one), to stop and start.
struct OwnServer {
    child: std::process::Child,
}

impl OwnServer {
    /// Starts `secantusd-py` from `.venv-mongo` on `port` with `args`; waits until it accepts.
    async fn start(port: u16, args: &[&str]) -> Self {
        let exe =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-mongo/bin/secantusd-py");
        assert!(
            exe.is_file(),
            "{} is missing: run scripts/mongo-test-server once (scripts/test does)",
            exe.display()
        );
        let mut child = std::process::Command::new(exe)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start secantusd-py");
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return OwnServer { child };
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("secantusd-py did not listen on {port} within 15 s");
    }

    /// SIGTERM, which SecantusDB answers by flushing and stopping; waits for it.
    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_by_itself() {
    let Some(shared) = TestMongo::new("api_outage") else {
        return;
    };
    let storage = tempfile::tempdir().unwrap();
    let storage_arg = storage.path().to_str().unwrap().to_string();
    let port = free_port();
    let db = OwnServer::start(port, &["--storage-path", &storage_arg]).await;
    let mongo = TestMongo {
        uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
        db: shared.db.clone(),
    };
    let server = TestServer::start_mongo(&mongo, &[]).await;
    let ann = server.token("ann", "CUSTOMER");
    let id = ticket(&server, &ann, "Through an outage").await;
    let before = server.post_message(&ann, &id, "before").await;

    db.stop();
    let reply = server
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(
        reply.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "readyz during the outage: {}",
        reply.2
    );
    let reply = server
        .post_json(
            &format!("/api/v1/tickets/{id}/messages"),
            &ann,
            json!({"content": "during"}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
    );
    let reply = server.get(&format!("/api/v1/tickets/{id}"), &ann).await;
    assert_error(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
    );

    let db = OwnServer::start(port, &["--storage-path", &storage_arg]).await;
    let mut ready = false;
    for _ in 0..120 {
        let (status, _, _) = server
            .request(reqwest::Method::GET, "/readyz", None, None)
            .await;
        if status == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        ready,
        "readyz answers 200 again within 30 s of the database's return"
    );
    let after = server.post_message(&ann, &id, "after").await;
    let (status, _, listed) = server
        .get(&format!("/api/v1/tickets/{id}/messages"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!([before, after]),
        "nothing lost, nothing doubled"
    );
    server.stop().await;
    db.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_a_replica_set_is_refused_at_start_up() {
    if TestMongo::new("api_standalone").is_none() {
        return;
    }
    let port = free_port();
    let db = OwnServer::start(port, &["--storage-path", ":memory:", "--standalone"]).await;
    let err = ticketd::store::MongoStore::connect(
        &format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
        "standalone",
    )
    .await
    .expect_err("a standalone server is refused");
    assert!(err.to_string().contains("not a replica set"), "{err}");
    db.stop();
}
