//! The one harness every black-box test uses: a real `ticketd` server on a loopback port, either
//! in-process (`TestServer`, through `ticketd::run`) or as the real binary in a subprocess
//! (`BinaryServer`, for the kill -9 test), plus a small HTTP client that hands back
//! `(status, headers, json)` and helpers that check the seed's error envelope. Every answer the
//! client hands back has been checked against the OpenAPI document (`contract`).
#![allow(dead_code)]

pub mod contract;
pub mod webhook_receiver;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The JWT secret every test server is started with.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// What every helper returns: the status, the headers and the body as JSON (`Null` when the
/// body is empty, a JSON string holding the raw text when it is not JSON).
pub type Reply = (StatusCode, HeaderMap, Value);

/// A cheap, clonable handle to talk HTTP to one server; `TestServer` and `BinaryServer`
/// dereference to it, and it can be moved into spawned tasks.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client (plain http, no proxy).
    pub client: Client,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        // A safety net so a hung server fails the test instead of hanging it; never asserted on.
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build the HTTP client")
}

impl Api {
    fn new(port: u16) -> Self {
        Api {
            client: client(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// An absolute URL for `path` (a path starting with `/`, or an absolute URL left as is).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// A token signed with the test secret for user `id` (username = id, email = id@example.com).
    pub fn token(&self, id: &str, role: &str) -> String {
        mint(id, role)
    }

    /// Sends a request with optional bearer token and optional JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        self.send(req).await
    }

    /// Sends a request built on `self.client` and reads the answer, failing the test when the
    /// answer is not one the OpenAPI document lists for it. Every helper goes through here.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = request.build().expect("build the request");
        let method = request.method().clone();
        let url = request.url().to_string();
        let resp = self
            .client
            .execute(request)
            .await
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        let reply = read(resp).await;
        if let Err(e) = contract::check(&method, &url, &reply) {
            panic!("{method} {url}: the answer breaks the OpenAPI document: {e}");
        }
        reply
    }

    /// Sends a request with exactly these headers and raw body bytes.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        self.send(req).await
    }

    /// GET with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    /// POST a JSON body with a bearer token.
    pub async fn post_json(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(token), Some(&body))
            .await
    }

    /// POST without a body (close, reopen).
    pub async fn post_empty(&self, path: &str, token: &str) -> Reply {
        self.request(Method::POST, path, Some(token), None).await
    }

    /// PATCH a JSON body with a bearer token.
    pub async fn patch_json(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(&body))
            .await
    }

    /// DELETE with a bearer token.
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// Creates a ticket and returns it, asserting 200.
    pub async fn create_ticket(&self, token: &str, topic: &str, description: &str) -> Value {
        let (status, _, body) = self
            .post_json(
                "/api/v1/tickets",
                token,
                json!({"topic": topic, "description": description}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "create ticket: {body}");
        body
    }

    /// `POST /api/v1/tickets` with an `Idempotency-Key` header; the answer whatever it is.
    pub async fn create_ticket_keyed(&self, token: &str, key: &str, topic: &str) -> Reply {
        self.send(
            self.client
                .post(self.url("/api/v1/tickets"))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"topic": topic, "description": "Sent with a key"})),
        )
        .await
    }

    /// Posts a message and returns it, asserting 200.
    pub async fn post_message(&self, token: &str, ticket_id: &str, content: &str) -> Value {
        let (status, _, body) = self
            .post_json(
                &format!("/api/v1/tickets/{ticket_id}/messages"),
                token,
                json!({"content": content}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "post message: {body}");
        body
    }

    /// GETs `first` and follows `Link: rel="next"` until it is absent, asserting 200 on every
    /// page; returns every item in order and the number of pages.
    pub async fn walk(&self, first: &str, token: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(first.to_string());
        while let Some(path) = next {
            pages += 1;
            assert!(pages <= 1000, "pagination does not end");
            let (status, headers, body) = self.get(&path, token).await;
            assert_eq!(status, StatusCode::OK, "page {pages} ({path}): {body}");
            let page = body
                .as_array()
                .unwrap_or_else(|| panic!("page {pages} is not an array: {body}"));
            items.extend(page.iter().cloned());
            next = next_link(&headers);
        }
        (items, pages)
    }
}

async fn read(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("read the response body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}

/// Mints a token with the test secret the way a partner backend would.
pub fn mint(id: &str, role: &str) -> String {
    let role = role
        .parse::<ticketd_events::UserRole>()
        .unwrap_or_else(|_| panic!("unknown role {role}"));
    let secret = ticketd::config::Secret::new(SECRET);
    ticketd::auth::mint(&secret, id, id, &format!("{id}@example.com"), role, None)
        .expect("mint a token")
}

/// Signs arbitrary claims with HS256 and `secret`.
pub fn sign_claims(claims: &Value, secret: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    ticketd::hs256::install();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign claims")
}

/// An unsigned token with `alg: none`.
pub fn alg_none_token(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The target of the `Link` header's `rel="next"` entry, if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all("link") {
        let value = value.to_str().expect("Link header is text");
        for part in value.split(',') {
            let part = part.trim();
            let is_next = part
                .split(';')
                .skip(1)
                .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
            if is_next {
                let start = part.find('<').expect("Link target starts with <") + 1;
                let end = part.find('>').expect("Link target ends with >");
                return Some(part[start..end].to_string());
            }
        }
    }
    None
}

/// Asserts the seed's error envelope: `status`, `{"error": code, "message": <non-empty text>}`
/// and an `x-request-id` header.
pub fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    let (got, headers, body) = reply;
    assert_eq!(*got, status, "status; body: {body}");
    assert_eq!(body["error"], json!(code), "error code; body: {body}");
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("`message` is not a string: {body}"));
    assert!(!message.trim().is_empty(), "empty error message: {body}");
    assert_request_id(headers);
}

/// Asserts a 400 BAD_REQUEST whose `errors` has an entry at `location` (exact, or a prefix
/// when `location` ends with `*`) of type `kind`; every entry must carry
/// `location`, `message`, `type` and `context`. Returns the matching entry.
pub fn assert_field_error(reply: &Reply, location: &str, kind: &str) -> Value {
    assert_error(reply, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    let body = &reply.2;
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("`errors` is not an array: {body}"));
    assert!(!errors.is_empty(), "`errors` is empty: {body}");
    for e in errors {
        for key in ["location", "message", "type", "context"] {
            assert!(
                e.get(key).is_some(),
                "field error lacks `{key}`: {e} in {body}"
            );
        }
        assert!(
            e["location"].is_string() && e["message"].is_string() && e["type"].is_string(),
            "field error shape: {e}"
        );
    }
    let matches_location = |l: &str| match location.strip_suffix('*') {
        Some(prefix) => l.starts_with(prefix),
        None => l == location,
    };
    errors
        .iter()
        .find(|e| {
            matches_location(e["location"].as_str().unwrap_or("")) && e["type"] == json!(kind)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no field error at `{location}` of type `{kind}` in {body}"))
}

/// Asserts a non-empty `x-request-id` header.
pub fn assert_request_id(headers: &HeaderMap) {
    let id = headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id header among {headers:?}"))
        .to_str()
        .expect("x-request-id is text");
    assert!(!id.trim().is_empty(), "empty x-request-id");
}

/// Asserts `value` is a UUID string and returns it.
pub fn assert_uuid(value: &Value) -> String {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {value}"));
    uuid::Uuid::parse_str(s).unwrap_or_else(|e| panic!("id {s} is not a UUID: {e}"));
    s.to_string()
}

/// The object's keys, in the order the server sent them.
pub fn keys(value: &Value) -> Vec<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// The Ticket keys a customer receives, in order: the seed's, then who holds it, then the
/// owner's rating.
pub const TICKET_KEYS: [&str; 13] = [
    "id",
    "user_id",
    "topic",
    "description",
    "status",
    "created_at",
    "updated_at",
    "user_role",
    "support_role",
    "issue_level",
    "assignee_id",
    "assignee_name",
    "feedback",
];

/// The Ticket keys staff receive: a customer's with the tags before the rating, then the first
/// answer and the service levels (ADR 0025).
pub const STAFF_TICKET_KEYS: [&str; 16] = [
    "id",
    "user_id",
    "topic",
    "description",
    "status",
    "created_at",
    "updated_at",
    "user_role",
    "support_role",
    "issue_level",
    "assignee_id",
    "assignee_name",
    "tags",
    "feedback",
    "first_response_at",
    "sla",
];

/// The Ticket keys a partner's webhook receives: staff's, without the service levels, which
/// are computed under the serving instance's targets.
pub const WEBHOOK_TICKET_KEYS: [&str; 15] = [
    "id",
    "user_id",
    "topic",
    "description",
    "status",
    "created_at",
    "updated_at",
    "user_role",
    "support_role",
    "issue_level",
    "assignee_id",
    "assignee_name",
    "tags",
    "feedback",
    "first_response_at",
];

/// `ticket` as staff see it: with its tags (`[]` when the answer came to a customer), and
/// without a staff answer nor service-level targets, `first_response_at` and `sla` `null`.
pub fn as_staff_sees(ticket: &Value) -> Value {
    let mut ticket = ticket.clone();
    if let Some(object) = ticket.as_object_mut() {
        object.entry("tags").or_insert(Value::Array(Vec::new()));
        object.entry("first_response_at").or_insert(Value::Null);
        object.entry("sla").or_insert(Value::Null);
    }
    ticket
}

/// The seed's Message keys, in order (internal notes add `internal` after them).
pub const MESSAGE_KEYS: [&str; 8] = [
    "id",
    "ticket_id",
    "author_id",
    "author_name",
    "content",
    "attachments",
    "created_at",
    "updated_at",
];

/// The ids of a list of objects, in order.
pub fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}

/// The ids of a JSON array body, in order.
pub fn body_ids(body: &Value) -> Vec<String> {
    ids(body
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {body}")))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `ticketd::run` server in this process, on its own data directory.
pub struct TestServer {
    api: Api,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ticketd::RunError>>>,
    dir: Option<TempDir>,
}

impl Deref for TestServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestServer {
    /// A server on a fresh data directory, rate limits off.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A server on a fresh data directory with extra settings, e.g. `[("RATE_LIMITS", "on")]`.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("make a data directory");
        Self::start_in(dir, env).await
    }

    /// A server on an existing data directory (from `stop`).
    pub async fn start_in(dir: TempDir, env: &[(&str, &str)]) -> Self {
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert("JWT_SECRET_KEY".into(), SECRET.into());
        vars.insert("DATA_DIR".into(), dir.path().to_string_lossy().into_owned());
        vars.insert("RATE_LIMITS".into(), "off".into());
        vars.insert("SERVER_MODE".into(), "DEVELOPMENT".into());
        for (k, v) in env {
            vars.insert(k.to_string(), v.to_string());
        }
        let config = ticketd::config::Config::from_lookup(move |name| vars.get(name).cloned())
            .expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(ticketd::run(listener, config, async move {
            let _ = rx.await;
        }));
        let mut server = TestServer {
            api: Api::new(port),
            shutdown: Some(tx),
            task: Some(task),
            dir: Some(dir),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        for _ in 0..600 {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let result = self.task.take().unwrap().await;
                panic!("the server stopped while starting: {result:?}");
            }
            if let Ok(resp) = self.client.get(self.url("/healthz")).send().await
                && resp.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not answer /healthz with 200 within 30 s");
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Asks the server to stop, waits until it has (the store is flushed) and hands back the
    /// data directory for `start_in`.
    pub async fn stop(mut self) -> TempDir {
        // Drop our idle keep-alive connections so graceful shutdown has nothing to wait for.
        self.api.client = client();
        let _ = self.shutdown.take().unwrap().send(());
        let result = self
            .task
            .take()
            .unwrap()
            .await
            .expect("the server task panicked");
        result.expect("the server stopped with an error");
        self.dir.take().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The real `ticketd` binary serving on a free port over `data_dir`.
pub struct BinaryServer {
    api: Api,
    child: Child,
    log: PathBuf,
    _log_dir: TempDir,
}

impl Deref for BinaryServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The binary with the test environment set (secret, data dir, rate limits off) and its
/// working directory away from the repository so no `.env` is picked up.
pub fn binary_command(data_dir: &Path, cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketd"));
    cmd.current_dir(cwd)
        .env("DATA_DIR", data_dir)
        .env("JWT_SECRET_KEY", SECRET)
        .env("RATE_LIMITS", "off")
        .env("SERVER_MODE", "DEVELOPMENT")
        .env_remove("MONGO_URI")
        .env_remove("DISCORD_BOT_TOKEN")
        .env_remove("GUILD_ID")
        .env_remove("ERROR_WEBHOOK_URL")
        .env_remove("ERROR_BOT_WEBHOOK_URL");
    cmd
}

/// Runs `ticketd <args>` over `data_dir` (and MongoDB when `mongo` is given); panics with its
/// output unless it exits as `succeed` says.
pub fn ticketd_cli(
    data_dir: &std::path::Path,
    mongo: Option<&TestMongo>,
    args: &[&str],
    succeed: bool,
) -> String {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = binary_command(data_dir, cwd.path());
    if let Some(mongo) = mongo {
        cmd.env("MONGO_URI", &mongo.uri).env("DB_NAME", &mongo.db);
    }
    let output = cmd.args(args).output().expect("run the ticketd binary");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.success(),
        succeed,
        "ticketd {args:?} exited with {}:\n{stderr}",
        output.status
    );
    stderr
}

impl BinaryServer {
    /// Starts `ticketd serve` over `data_dir` and waits until `/healthz` answers 200.
    pub async fn spawn(data_dir: &Path) -> Self {
        Self::spawn_with(data_dir, &[]).await
    }

    /// The same with extra settings in its environment.
    pub async fn spawn_with(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let log_dir = tempfile::tempdir().expect("make a log directory");
        let log = log_dir.path().join("ticketd.log");
        let port = free_port();
        let out = std::fs::File::create(&log).expect("create the log file");
        let child = binary_command(data_dir, log_dir.path())
            .arg("serve")
            .env("WEB_SERVER_PORT", port.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn the ticketd binary");
        let mut server = BinaryServer {
            api: Api::new(port),
            child,
            log,
            _log_dir: log_dir,
        };
        for _ in 0..600 {
            if let Some(status) = server.child.try_wait().expect("poll the child") {
                panic!(
                    "ticketd exited with {status} while starting:\n{}",
                    server.log_text()
                );
            }
            if let Ok(resp) = server.client.get(server.url("/healthz")).send().await
                && resp.status() == StatusCode::OK
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "ticketd did not answer /healthz with 200 within 30 s:\n{}",
            server.log_text()
        );
    }

    /// What the server printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no graceful shutdown, no flush.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9 the server");
        self.child.wait().expect("reap the server");
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The MongoDB test server's URI from `TICKETD_TEST_MONGO_URI` (`scripts/test` starts one). When
/// it is not set the test fails, saying how to start one, unless `TICKETD_SKIP_MONGO=1` is set
/// outside CI: then this returns `None` and the test returns early, saying so.
pub fn mongo_test_uri() -> Option<String> {
    if let Ok(uri) = std::env::var("TICKETD_TEST_MONGO_URI")
        && !uri.trim().is_empty()
    {
        return Some(uri);
    }
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    if !in_ci && std::env::var("TICKETD_SKIP_MONGO").as_deref() == Ok("1") {
        eprintln!("TICKETD_SKIP_MONGO=1: skipping a MongoDB test");
        return None;
    }
    panic!(
        "TICKETD_TEST_MONGO_URI is not set, and this test needs a MongoDB server. Run \
         `scripts/test`, which starts one, or start SecantusDB yourself with \
         `port=$(scripts/mongo-test-server)` and \
         `export TICKETD_TEST_MONGO_URI=\"mongodb://127.0.0.1:$port/?directConnection=true\"` \
         (stop it with `kill $(cat .venv-mongo/server.pid)`). To skip the MongoDB tests on your \
         own machine, set TICKETD_SKIP_MONGO=1 (ignored when CI is set)."
    )
}

/// A database of its own for one test on the MongoDB test server: unique per test and run.
pub struct TestMongo {
    /// The server's URI (`TICKETD_TEST_MONGO_URI`).
    pub uri: String,
    /// The database's name.
    pub db: String,
}

impl TestMongo {
    /// A fresh database name for `test`, or `None` when MongoDB tests are skipped (see
    /// [`mongo_test_uri`]).
    pub fn new(test: &str) -> Option<Self> {
        let uri = mongo_test_uri()?;
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        let unique = uuid::Uuid::now_v7().simple().to_string();
        Some(TestMongo {
            uri,
            db: format!("t_{short}_{}", &unique[unique.len() - 10..]),
        })
    }

    /// Drops the database; call at the end of the test.
    pub async fn drop_database(&self) {
        let client = mongodb::Client::with_uri_str(&self.uri)
            .await
            .expect("connect to the MongoDB test server");
        client
            .database(&self.db)
            .drop()
            .await
            .expect("drop the test database");
    }
}

impl TestServer {
    /// A server in MongoDB mode on `mongo`'s database (and a fresh data directory for its
    /// development files), rate limits off, with extra settings.
    pub async fn start_mongo(mongo: &TestMongo, env: &[(&str, &str)]) -> Self {
        let mut settings = vec![
            ("MONGO_URI", mongo.uri.as_str()),
            ("DB_NAME", mongo.db.as_str()),
        ];
        settings.extend_from_slice(env);
        Self::start_with(&settings).await
    }
}

/// The store an API test runs on. The API tests are written once, as `async fn name(store:
/// &Backend)`, and [`on_both_stores!`] makes each a test on the embedded store and one on
/// MongoDB, so neither store's answers can drift from the other's.
pub enum Backend {
    /// A fresh data directory per server.
    Embedded,
    /// A fresh database per server on the MongoDB test server; `restart` keeps the last one.
    Mongo {
        /// The test's name, for the database names.
        test: &'static str,
        /// Every database made so far, the last one in use; dropped by `finish`.
        databases: std::sync::Mutex<Vec<TestMongo>>,
    },
}

impl Backend {
    /// MongoDB for `test`, or `None` when MongoDB tests are skipped (see [`mongo_test_uri`]).
    pub fn mongo(test: &'static str) -> Option<Self> {
        mongo_test_uri()?;
        Some(Backend::Mongo {
            test,
            databases: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A server on an empty store, rate limits off.
    pub async fn start(&self) -> TestServer {
        self.start_with(&[]).await
    }

    /// A server on an empty store with extra settings.
    pub async fn start_with(&self, env: &[(&str, &str)]) -> TestServer {
        match self {
            Backend::Embedded => TestServer::start_with(env).await,
            Backend::Mongo { test, databases } => {
                let mongo = TestMongo::new(test).expect("the MongoDB test server");
                let server = TestServer::start_mongo(&mongo, env).await;
                databases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(mongo);
                server
            }
        }
    }

    /// Stops `server` and starts another on the same store, as a restart would.
    pub async fn restart(&self, server: TestServer) -> TestServer {
        self.restart_with(server, &[]).await
    }

    /// The same, the new server with extra settings.
    pub async fn restart_with(&self, server: TestServer, env: &[(&str, &str)]) -> TestServer {
        let dir = server.stop().await;
        match self {
            Backend::Embedded => TestServer::start_in(dir, env).await,
            Backend::Mongo { databases, .. } => {
                let (uri, db) = {
                    let databases = databases.lock().unwrap_or_else(|p| p.into_inner());
                    let last = databases.last().expect("a server was started");
                    (last.uri.clone(), last.db.clone())
                };
                TestServer::start_mongo(&TestMongo { uri, db }, env).await
            }
        }
    }

    /// The database in use on MongoDB (for `ticketd_cli` and a second server), `None` on the
    /// embedded store.
    pub fn current_mongo(&self) -> Option<TestMongo> {
        match self {
            Backend::Embedded => None,
            Backend::Mongo { databases, .. } => {
                let databases = databases.lock().unwrap_or_else(|p| p.into_inner());
                let last = databases.last().expect("a server was started");
                Some(TestMongo {
                    uri: last.uri.clone(),
                    db: last.db.clone(),
                })
            }
        }
    }

    /// Drops the databases the test made.
    pub async fn finish(self) {
        if let Backend::Mongo { databases, .. } = self {
            let databases = databases.into_inner().unwrap_or_else(|p| p.into_inner());
            for mongo in databases {
                mongo.drop_database().await;
            }
        }
    }
}

/// Turns each `async fn name(store: &Backend)` named into two tests, `embedded::name` and
/// `mongo::name`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&crate::common::Backend::Embedded).await;
                }
            )+
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = crate::common::Backend::mongo(stringify!($name)) else {
                        return;
                    };
                    super::$name(&store).await;
                    store.finish().await;
                }
            )+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_stores;
