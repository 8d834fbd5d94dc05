//! What only MongoDB mode has (`MONGO_URI` set): two instances on one database answering alike,
//! a socket on one instance hearing a post on the other, moving a store's history from the
//! embedded file to MongoDB and back, a database outage, and a server that is not a replica set.
//! The API tests themselves (tickets, messages, access, errors) run on both stores from one
//! source (`on_both_stores!` in tests/api_*.rs).
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
        3 * 5 + 4 + 1 + 1 + 2,
        "one line per event, then one for the ticket key and one per person's name (ann, ada)"
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
