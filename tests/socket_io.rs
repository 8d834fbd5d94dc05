//! Socket.IO against a real server, driven by the official `socket.io-client` so the seed's
//! JavaScript example is exercised as a customer would run it. Each test starts its own server
//! and runs one scenario of `tests/socket/scenarios.mjs` with Node.js; the script raises events
//! through REST, checks what every socket received and exits 0 on success. Needs Node.js 18+ and
//! `npm ci --prefix tests/socket` (scripts/test does it).

mod common;

use common::{BinaryServer, SECRET, TestMongo, TestServer};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The longest a scenario may run; the script's own watchdog stops it sooner.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

fn socket_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/socket")
}

/// Starts a server with `env` (rate limits off) and runs `scenario` against it; panics with
/// the script's output unless it exits 0.
async fn run_scenario(scenario: &str, env: &[(&str, &str)]) {
    let dir = socket_dir();
    assert!(
        dir.join("node_modules/socket.io-client/package.json")
            .is_file(),
        "{} is missing socket.io-client: run `npm ci --prefix tests/socket` first \
         (scripts/test does it)",
        dir.join("node_modules").display()
    );
    let mut settings = vec![("RATE_LIMITS", "off")];
    settings.extend_from_slice(env);
    let server = TestServer::start_with(&settings).await;
    run_scenario_against(&server.base, scenario).await;
}

/// Runs `scenario` against the server at `base`; panics with the script's output unless it
/// exits 0.
async fn run_scenario_against(base: &str, scenario: &str) {
    run_phase(base, scenario, Path::new("")).await;
}

/// Runs one half of a two-phase scenario, which hands its state over in `state_file`.
async fn run_phase(base: &str, scenario: &str, state_file: &Path) {
    let dir = socket_dir();
    let child = tokio::process::Command::new("node")
        .arg(dir.join("scenarios.mjs"))
        .arg(scenario)
        .env("BASE_URL", base)
        .env("STATE_FILE", state_file)
        .env("JWT_SECRET", SECRET)
        .env("NODE_NO_WARNINGS", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` (Node.js 18+ is needed): {e}"));
    let output = match tokio::time::timeout(SCENARIO_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("waiting for node failed: {e}")),
        Err(_) => panic!(
            "scenario {scenario} did not finish within {} s (node was killed)",
            SCENARIO_TIMEOUT.as_secs()
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scenario {scenario} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    // Shown with `--nocapture`: what the sockets observed.
    println!("{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_example_receives_every_event_type_as_the_seed_objects() {
    run_scenario("seed_example", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_patch_of_two_fields_never_sends_the_same_ticket_twice() {
    run_scenario("patch_two_fields", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_handshake_auth_authorizes() {
    run_scenario("auth_token_handshake", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorize_ack_says_who_or_why_not() {
    run_scenario("authorize_ack", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_leaks_to_another_customer_while_staff_get_all() {
    run_scenario("no_leak", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ticket_is_announced_to_its_owner_and_staff_only() {
    run_scenario("ticket_opened", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_of_one_user_receives_each_event() {
    run_scenario("two_sockets", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_notes_reach_staff_sockets_only() {
    run_scenario("internal_note", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_gets_an_error_and_no_events() {
    run_scenario("bad_token", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_socket_leaves_no_deadline_behind() {
    run_scenario("deadlines_follow_sockets", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_unauthorized_socket_is_dropped_by_the_server() {
    run_scenario("idle_disconnect", &[("SOCKET_AUTH_TIMEOUT_SECS", "1")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_keeps_receiving() {
    run_scenario("reconnect", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_stops_the_events_with_an_error() {
    run_scenario("token_expiry", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_stream_order_and_never_twice() {
    run_scenario("stream_order", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reauthorization_ends_the_earlier_one() {
    run_scenario("reauthorize_refused", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_events_with_any_name_get_an_error_and_keep_the_socket() {
    run_scenario("odd_event_names", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_refused_by_rest_are_refused_on_the_socket() {
    run_scenario("token_rules", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_the_log_even_at_trace_level() {
    let data = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn_with(data.path(), &[("RUST_LOG", "trace")]).await;
    run_scenario_against(&server.base, "tokens_everywhere").await;
    let log = server.log_text();
    // The run was logged in depth (our own debug lines included), so an absent token means it
    // was kept out, not that nothing was written.
    assert!(
        log.contains("socket authorized"),
        "no socket was logged:\n{log}"
    );
    // Every JWT starts with the base64 of `{"`; the marker is a token that is not a JWT.
    for secret in ["eyJ", "LOGMARKER", SECRET] {
        let leaks: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(secret))
            .take(3)
            .collect();
        assert!(
            leaks.is_empty(),
            "{secret:?} reached the log {} time(s), e.g.:\n{}",
            log.matches(secret).count(),
            leaks.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_are_sent_only_to_sockets_that_ask() {
    run_scenario("positions_opt_in", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_reconnect_recipe_misses_nothing() {
    run_scenario("resume_recipe", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_too_far_behind_is_told_to_resync() {
    run_scenario("resume_far_behind", &[("SOCKET_RESUME_MAX_EVENTS", "3")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_beyond_the_head_or_not_a_position_is_handled() {
    run_scenario("resume_bad_since", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_resumes_on_the_same_instance() {
    let server = TestServer::start_with(&[("RATE_LIMITS", "off")]).await;
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("state.json");
    run_phase(&server.base, "resume_phase1", &file).await;
    run_phase(&server.base, "resume_phase2", &file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_resumes_after_the_server_is_killed_and_restarted() {
    let data = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("state.json");
    let server = BinaryServer::spawn(data.path()).await;
    run_phase(&server.base, "resume_phase1", &file).await;
    server.kill9();
    let server = BinaryServer::spawn(data.path()).await;
    run_phase(&server.base, "resume_phase2", &file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_resumes_on_another_instance_of_one_mongodb() {
    let Some(mongo) = TestMongo::new("socket_resume_instances") else {
        return;
    };
    let env = [
        ("MONGO_URI", mongo.uri.as_str()),
        ("DB_NAME", mongo.db.as_str()),
    ];
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = BinaryServer::spawn_with(one.path(), &env).await;
    let second = BinaryServer::spawn_with(two.path(), &env).await;
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("state.json");
    run_phase(&first.base, "resume_phase1", &file).await;
    run_phase(&second.base, "resume_phase2", &file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_reach_owner_and_staff_and_tags_staff_only() {
    run_scenario("claims_and_tags", &[]).await;
}
