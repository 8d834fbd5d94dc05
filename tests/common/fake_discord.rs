//! A fake Discord on loopback for the bridge's tests: the HTTP API (the routes the bridge uses,
//! every call recorded) and a gateway WebSocket (HELLO → IDENTIFY → READY → GUILD_CREATE,
//! heartbeats acknowledged) that the real serenity client talks to through `DISCORD_API_URL`.
//! Tests inject what members do (messages, edits, deletions, slash commands, button clicks) as
//! gateway dispatches, can make the API answer 500 or 429 for a number of calls, and can drop
//! the gateway connection. [`WebhookSink`] stands in for the error webhooks.
//!
//! Every payload is complete enough for serenity 0.12.5: a dispatch that does not deserialize is
//! silently dropped by serenity, so `payload_samples` lists one of each for a test to check
//! against serenity's own types.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The guild; also the id of its `@everyone` role.
pub const GUILD: u64 = 81_000_000_000_000_001;
/// The bot's user id, which is also its application id.
pub const BOT: u64 = 81_000_000_000_000_002;
/// `SUPPORT_TEAM_ROLE_ID`, `DEVELOPER_ROLE_ID`, `MANAGER_ROLE_ID`, `ADMIN_ROLE_ID`.
pub const ROLES: [u64; 4] = [
    81_000_000_000_000_011,
    81_000_000_000_000_012,
    81_000_000_000_000_013,
    81_000_000_000_000_014,
];
/// `GENERAL_`, `URGENT_`, `CRITICAL_TICKET_CATEGORY_ID`.
pub const CATEGORIES: [u64; 3] = [
    81_000_000_000_000_021,
    81_000_000_000_000_022,
    81_000_000_000_000_023,
];
/// `TRANSCRIPT_CHANNEL_ID`.
pub const TRANSCRIPTS: u64 = 81_000_000_000_000_031;
/// A member of the support team (holds `SUPPORT_TEAM_ROLE_ID`).
pub const STAFF: u64 = 81_000_000_000_000_041;
/// A member without any support role.
pub const OUTSIDER: u64 = 81_000_000_000_000_042;
/// A member holding `MANAGER_ROLE_ID`.
pub const MANAGER: u64 = 81_000_000_000_000_043;
/// A member holding `ADMIN_ROLE_ID`.
pub const ADMIN: u64 = 81_000_000_000_000_044;
/// Another guild, whose events the bridge must ignore.
pub const OTHER_GUILD: u64 = 81_000_000_000_000_051;

const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
/// Not a frame: tells a gateway session to drop its connection.
const DROP: &str = "\u{0}drop";
const TIMESTAMP: &str = "2025-01-01T00:00:00.000000+00:00";

/// One HTTP call the bridge made.
#[derive(Debug, Clone)]
pub struct Call {
    /// GET, POST, …
    pub method: String,
    /// The path without the `/api/v10` prefix, e.g. `/guilds/1/channels`.
    pub path: String,
    /// The JSON body (`Null` when none; the multipart text as a string when not JSON).
    pub body: Value,
    /// What the fake answered.
    pub status: u16,
}

#[derive(Default)]
struct World {
    calls: Vec<Call>,
    /// Channels by id, as Discord would return them.
    channels: HashMap<u64, Value>,
    /// Messages by id (with their `channel_id`); removed when deleted.
    messages: HashMap<u64, Value>,
    /// `(channel, nonce)` → message id, for `enforce_nonce`.
    nonces: HashMap<(u64, String), u64>,
    /// Answer the next `fail.0` API calls with status `fail.1`.
    fail: (usize, u16),
    /// Open gateway sessions.
    sessions: Vec<mpsc::UnboundedSender<String>>,
    /// How many IDENTIFYs the gateway got.
    identified: usize,
}

/// The fake; cheap to share.
pub struct FakeDiscord {
    world: Mutex<World>,
    /// The last snowflake's increment.
    counter: AtomicU64,
    /// The gateway's sequence number.
    seq: AtomicU64,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl FakeDiscord {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = Arc::new(FakeDiscord {
            world: Mutex::new(World::default()),
            counter: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            base: format!("http://127.0.0.1:{port}"),
        });
        {
            let mut world = fake.world.lock().unwrap();
            world.channels.insert(
                TRANSCRIPTS,
                channel(TRANSCRIPTS, "transcripts", 0, None, None, json!([])),
            );
            for (i, id) in CATEGORIES.iter().enumerate() {
                let name = ["general", "urgent", "critical"][i];
                world
                    .channels
                    .insert(*id, channel(*id, name, 4, None, None, json!([])));
            }
        }
        let app = Router::new()
            .route("/gateway", get(gateway))
            .fallback(api)
            .with_state(Arc::clone(&fake));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    /// The settings a ticketd server needs to use this fake.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("DISCORD_BOT_TOKEN".into(), "fake-token".into()),
            ("GUILD_ID".into(), GUILD.to_string()),
            ("TRANSCRIPT_CHANNEL_ID".into(), TRANSCRIPTS.to_string()),
            ("DISCORD_API_URL".into(), self.base.clone()),
        ];
        for (name, id) in ["GENERAL", "URGENT", "CRITICAL"].iter().zip(CATEGORIES) {
            env.push((format!("{name}_TICKET_CATEGORY_ID"), id.to_string()));
        }
        for (name, id) in ["SUPPORT_TEAM", "DEVELOPER", "MANAGER", "ADMIN"]
            .iter()
            .zip(ROLES)
        {
            env.push((format!("{name}_ROLE_ID"), id.to_string()));
        }
        env
    }

    /// A fresh snowflake with the current time in it, as Discord makes them.
    pub fn snowflake(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let increment = self.counter.fetch_add(1, Ordering::SeqCst) & 0xFFF;
        ((now - DISCORD_EPOCH_MS) << 22) | (1 << 17) | increment
    }

    /// Every API call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.world.lock().unwrap().calls.clone()
    }

    /// Successful calls with this method whose path matches `path` (`*` matches one segment).
    pub fn calls_to(&self, method: &str, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.status < 300 && path_matches(path, &c.path))
            .collect()
    }

    /// The ticket channels (text channels other than the transcript channel).
    pub fn ticket_channels(&self) -> Vec<Value> {
        let world = self.world.lock().unwrap();
        let mut channels: Vec<Value> = world
            .channels
            .values()
            .filter(|c| {
                c["type"] == 0 && c["id"].as_str() != Some(TRANSCRIPTS.to_string().as_str())
            })
            .cloned()
            .collect();
        channels.sort_by_key(|c| c["id"].as_str().unwrap().parse::<u64>().unwrap());
        channels
    }

    /// The live messages of a channel, oldest first.
    pub fn messages_in(&self, channel: &str) -> Vec<Value> {
        let world = self.world.lock().unwrap();
        let mut messages: Vec<Value> = world
            .messages
            .values()
            .filter(|m| m["channel_id"] == channel)
            .cloned()
            .collect();
        messages.sort_by_key(|m| m["id"].as_str().unwrap().parse::<u64>().unwrap());
        messages
    }

    /// Makes the next `count` API calls answer `status` (500, 429, …).
    pub fn fail_next(&self, count: usize, status: u16) {
        self.world.lock().unwrap().fail = (count, status);
    }

    /// How many of the injected failures are still to come.
    pub fn failures_left(&self) -> usize {
        self.world.lock().unwrap().fail.0
    }

    /// How many times a client identified on the gateway.
    pub fn identified(&self) -> usize {
        self.world.lock().unwrap().identified
    }

    /// Forgets every nonce, as Discord does a few minutes after a post.
    pub fn forget_nonces(&self) {
        self.world.lock().unwrap().nonces.clear();
    }

    /// Drops every gateway connection without a close frame, as a network failure would.
    pub fn drop_gateway(&self) {
        let mut world = self.world.lock().unwrap();
        for session in world.sessions.drain(..) {
            let _ = session.send(DROP.into());
        }
    }

    /// Polls `check` until it holds or `secs` pass; panics with `what` then.
    pub async fn wait_until(&self, what: &str, secs: u64, check: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !check(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; calls: {:#?}",
                self.calls()
                    .iter()
                    .map(|c| format!("{} {} {}", c.method, c.path, c.status))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends a dispatch to every open gateway session; returns its frame.
    pub fn dispatch(&self, event: &str, data: Value) -> Value {
        let frame = json!({
            "op": 0,
            "t": event,
            "s": self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            "d": data,
        });
        let text = frame.to_string();
        let mut world = self.world.lock().unwrap();
        world.sessions.retain(|s| s.send(text.clone()).is_ok());
        frame
    }

    /// A member writes in a channel (MESSAGE_CREATE); returns the message id.
    pub fn member_says(
        &self,
        user: u64,
        channel: &str,
        content: &str,
        attachments: &[&str],
    ) -> String {
        self.member_says_in(GUILD, user, channel, content, attachments)
    }

    /// The same in any guild.
    pub fn member_says_in(
        &self,
        guild: u64,
        user: u64,
        channel: &str,
        content: &str,
        attachments: &[&str],
    ) -> String {
        let id = self.snowflake();
        let files: Vec<Value> = attachments
            .iter()
            .enumerate()
            .map(|(i, url)| attachment(id + i as u64, url))
            .collect();
        let mut message = message(id, channel, user_json(user), content, files);
        message["guild_id"] = json!(guild.to_string());
        message["member"] = partial_member(user);
        self.world
            .lock()
            .unwrap()
            .messages
            .insert(id, message.clone());
        self.dispatch("MESSAGE_CREATE", message);
        id.to_string()
    }

    /// A member edits their message (MESSAGE_UPDATE).
    pub fn member_edits(&self, user: u64, channel: &str, id: &str, content: &str) {
        let mut message = message(
            id.parse().unwrap(),
            channel,
            user_json(user),
            content,
            vec![],
        );
        message["guild_id"] = json!(GUILD.to_string());
        message["member"] = partial_member(user);
        message["edited_timestamp"] = json!(TIMESTAMP);
        self.dispatch("MESSAGE_UPDATE", message);
    }

    /// A message is deleted in Discord (MESSAGE_DELETE).
    pub fn member_deletes(&self, channel: &str, id: &str) {
        self.world
            .lock()
            .unwrap()
            .messages
            .remove(&id.parse::<u64>().unwrap());
        self.dispatch(
            "MESSAGE_DELETE",
            json!({"id": id, "channel_id": channel, "guild_id": GUILD.to_string()}),
        );
    }

    /// A member runs a slash command in a channel; returns the interaction id.
    pub fn slash(&self, user: u64, channel: &str, name: &str, options: Value) -> String {
        let id = self.snowflake();
        let data = json!({"id": self.snowflake().to_string(), "name": name, "type": 1, "options": options});
        self.dispatch(
            "INTERACTION_CREATE",
            interaction(id, 2, channel, user, data, None),
        );
        id.to_string()
    }

    /// A member types into the focused option `option` of slash command `name` (an
    /// autocomplete interaction, type 4); returns the interaction id. The bot's answer is a
    /// callback of type 8 with `data.choices`.
    pub fn autocomplete(
        &self,
        user: u64,
        channel: &str,
        name: &str,
        option: &str,
        typed: &str,
    ) -> String {
        let id = self.snowflake();
        let data = json!({"id": self.snowflake().to_string(), "name": name, "type": 1,
            "options": [{"name": option, "type": 3, "value": typed, "focused": true}]});
        self.dispatch(
            "INTERACTION_CREATE",
            interaction(id, 4, channel, user, data, None),
        );
        id.to_string()
    }

    /// A member clicks a button of a message; returns the interaction id.
    pub fn click(&self, user: u64, channel: &str, custom_id: &str) -> String {
        let id = self.snowflake();
        let host = message(self.snowflake(), channel, user_json(BOT), "x", vec![]);
        let data = json!({"custom_id": custom_id, "component_type": 2});
        self.dispatch(
            "INTERACTION_CREATE",
            interaction(id, 3, channel, user, data, Some(host)),
        );
        id.to_string()
    }

    /// What the bot answered to an interaction (its callback body).
    pub fn answer_to(&self, interaction: &str) -> Option<Value> {
        self.calls_to("POST", &format!("/interactions/{interaction}/*/callback"))
            .pop()
            .map(|c| c.body)
    }

    /// Waits (up to 20 s) for the bot's answer to an interaction, and returns it.
    pub async fn answer(&self, interaction: &str) -> Value {
        self.wait_until(
            &format!("the answer to interaction {interaction}"),
            20,
            |f| f.answer_to(interaction).is_some(),
        )
        .await;
        self.answer_to(interaction).unwrap_or_default()
    }

    fn handle(&self, method: &Method, path: &str, body: Value) -> (u16, Value) {
        let mut world = self.world.lock().unwrap();
        let unlimited = path == "/gateway" || path == "/gateway/bot" || path == "/users/@me";
        if world.fail.0 > 0 && !unlimited {
            world.fail.0 -= 1;
            let status = world.fail.1;
            let reply = json!({"code": 0, "message": "injected failure", "retry_after": 0.05, "global": false});
            world.calls.push(Call {
                method: method.to_string(),
                path: path.into(),
                body,
                status,
            });
            return (status, reply);
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (status, reply) = match (method.as_str(), segments.as_slice()) {
            ("GET", ["gateway"]) => (200, json!({"url": self.gateway_url()})),
            ("GET", ["gateway", "bot"]) => (
                200,
                json!({"url": self.gateway_url(), "shards": 1, "session_start_limit": {
                    "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}}),
            ),
            ("GET", ["users", "@me"]) => (200, current_user()),
            ("GET", ["guilds", _, "channels"]) => {
                let mut list: Vec<Value> = world.channels.values().cloned().collect();
                list.sort_by_key(|c| c["id"].as_str().unwrap().to_string());
                (200, Value::Array(list))
            }
            ("POST", ["guilds", _, "channels"]) => {
                let id = self.snowflake();
                let created = channel(
                    id,
                    body["name"].as_str().unwrap_or("?"),
                    body["type"].as_u64().unwrap_or(0),
                    body["parent_id"].as_str(),
                    body["topic"].as_str(),
                    body["permission_overwrites"].clone(),
                );
                world.channels.insert(id, created.clone());
                (201, created)
            }
            ("PATCH", ["channels", id]) => match world.channels.get_mut(&id.parse().unwrap_or(0)) {
                Some(found) => {
                    if let Some(parent) = body.get("parent_id") {
                        found["parent_id"] = parent.clone();
                    }
                    if let Some(overwrites) = body.get("permission_overwrites") {
                        found["permission_overwrites"] = overwrites.clone();
                    }
                    if let Some(topic) = body.get("topic") {
                        found["topic"] = topic.clone();
                    }
                    (200, found.clone())
                }
                None => (404, json!({"code": 10003, "message": "Unknown Channel"})),
            },
            ("DELETE", ["channels", id]) => match world.channels.remove(&id.parse().unwrap_or(0)) {
                Some(found) => (200, found),
                None => (404, json!({"code": 10003, "message": "Unknown Channel"})),
            },
            // Newest first, at most 100, as Discord answers `?limit=100`.
            ("GET", ["channels", channel_id, "messages"]) => {
                let channel_id = channel_id.to_string();
                let mut list: Vec<Value> = world
                    .messages
                    .values()
                    .filter(|m| m["channel_id"] == channel_id.as_str())
                    .cloned()
                    .collect();
                list.sort_by_key(|m| {
                    std::cmp::Reverse(m["id"].as_str().unwrap().parse::<u64>().unwrap())
                });
                list.truncate(100);
                (200, Value::Array(list))
            }
            ("POST", ["channels", channel_id, "messages"]) => {
                let channel_id: u64 = channel_id.parse().unwrap_or(0);
                if !world.channels.contains_key(&channel_id) {
                    (404, json!({"code": 10003, "message": "Unknown Channel"}))
                } else {
                    let nonce = body["nonce"].as_str().map(str::to_string);
                    let known = nonce
                        .as_ref()
                        .filter(|_| body["enforce_nonce"] == true)
                        .and_then(|n| world.nonces.get(&(channel_id, n.clone())))
                        .and_then(|id| world.messages.get(id))
                        .cloned();
                    match known {
                        Some(message) => (200, message),
                        None => {
                            let id = self.snowflake();
                            let mut created = message(
                                id,
                                &channel_id.to_string(),
                                user_json(BOT),
                                body["content"].as_str().unwrap_or(""),
                                vec![],
                            );
                            created["guild_id"] = json!(GUILD.to_string());
                            created["components"] = body["components"].clone();
                            if created["components"].is_null() {
                                created["components"] = json!([]);
                            }
                            created["allowed_mentions"] = body["allowed_mentions"].clone();
                            if let Some(nonce) = nonce {
                                world.nonces.insert((channel_id, nonce), id);
                            }
                            world.messages.insert(id, created.clone());
                            let mut echo = created.clone();
                            echo.as_object_mut().unwrap().remove("allowed_mentions");
                            drop(world);
                            // Discord echoes the bot's own messages over the gateway.
                            self.dispatch("MESSAGE_CREATE", echo);
                            world = self.world.lock().unwrap();
                            (200, created)
                        }
                    }
                }
            }
            ("PATCH", ["channels", _, "messages", id]) => {
                match world.messages.get_mut(&id.parse().unwrap_or(0)) {
                    Some(found) => {
                        if let Some(content) = body.get("content") {
                            found["content"] = content.clone();
                        }
                        found["edited_timestamp"] = json!(TIMESTAMP);
                        found["allowed_mentions"] = body["allowed_mentions"].clone();
                        (200, found.clone())
                    }
                    None => (404, json!({"code": 10008, "message": "Unknown Message"})),
                }
            }
            ("DELETE", ["channels", _, "messages", id]) => {
                match world.messages.remove(&id.parse().unwrap_or(0)) {
                    Some(_) => (204, Value::Null),
                    None => (404, json!({"code": 10008, "message": "Unknown Message"})),
                }
            }
            ("PUT", ["applications", app, "guilds", guild, "commands"]) => {
                let commands: Vec<Value> = body
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut c| {
                        c["id"] = json!(self.snowflake().to_string());
                        c["application_id"] = json!(app);
                        c["guild_id"] = json!(guild);
                        c["version"] = json!("1");
                        c["type"] = json!(1);
                        c["default_member_permissions"] = Value::Null;
                        c
                    })
                    .collect();
                (200, Value::Array(commands))
            }
            ("POST", ["interactions", _, _, "callback"]) => (204, Value::Null),
            _ => (404, json!({"code": 0, "message": "404: Not Found"})),
        };
        world.calls.push(Call {
            method: method.to_string(),
            path: path.into(),
            body,
            status,
        });
        (status, reply)
    }

    fn gateway_url(&self) -> String {
        format!("{}/gateway", self.base.replacen("http://", "ws://", 1))
    }

    /// One of each payload the fake sends, as full gateway frames or REST bodies, for a test to
    /// deserialize into serenity's types.
    pub fn payload_samples(&self) -> PayloadSamples {
        let id = self.snowflake();
        let channel_id = CATEGORIES[0].to_string();
        let mut staff_message = message(
            id,
            &channel_id,
            user_json(STAFF),
            "hi",
            vec![attachment(id, "https://cdn.example/a.png")],
        );
        staff_message["guild_id"] = json!(GUILD.to_string());
        staff_message["member"] = partial_member(STAFF);
        let host = message(self.snowflake(), &channel_id, user_json(BOT), "x", vec![]);
        PayloadSamples {
            ready: frame("READY", ready(&self.gateway_url())),
            guild_create: frame("GUILD_CREATE", guild_create()),
            message_create: frame("MESSAGE_CREATE", staff_message.clone()),
            message_update: frame("MESSAGE_UPDATE", staff_message.clone()),
            message_delete: frame(
                "MESSAGE_DELETE",
                json!({"id": id.to_string(), "channel_id": channel_id, "guild_id": GUILD.to_string()}),
            ),
            slash: frame(
                "INTERACTION_CREATE",
                interaction(
                    id,
                    2,
                    &channel_id,
                    STAFF,
                    json!({"id": "99", "name": "close", "type": 1, "options": [{"name": "reason", "type": 3, "value": "done"}]}),
                    None,
                ),
            ),
            button: frame(
                "INTERACTION_CREATE",
                interaction(
                    id,
                    3,
                    &channel_id,
                    STAFF,
                    json!({"custom_id": "close:x", "component_type": 2}),
                    Some(host),
                ),
            ),
            channel: channel(
                id,
                "ticket-x",
                0,
                Some(&channel_id),
                Some("ticket x"),
                json!([{"id": GUILD.to_string(), "type": 0, "allow": "0", "deny": "1024"}]),
            ),
            message: staff_message,
            current_user: current_user(),
        }
    }
}

/// Samples of every payload shape the fake sends.
pub struct PayloadSamples {
    /// READY frame.
    pub ready: Value,
    /// GUILD_CREATE frame.
    pub guild_create: Value,
    /// MESSAGE_CREATE frame.
    pub message_create: Value,
    /// MESSAGE_UPDATE frame.
    pub message_update: Value,
    /// MESSAGE_DELETE frame.
    pub message_delete: Value,
    /// INTERACTION_CREATE frame of a slash command.
    pub slash: Value,
    /// INTERACTION_CREATE frame of a button click.
    pub button: Value,
    /// A channel as the REST API returns it.
    pub channel: Value,
    /// A message as the REST API returns it.
    pub message: Value,
    /// `GET /users/@me`.
    pub current_user: Value,
}

fn frame(event: &str, data: Value) -> Value {
    json!({"op": 0, "t": event, "s": 1, "d": data})
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let s: Vec<&str> = path.trim_matches('/').split('/').collect();
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

async fn api(State(fake): State<Arc<FakeDiscord>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let boundary = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("boundary=").nth(1))
        .map(|b| b.trim_matches('"').to_string());
    let Some(path) = path.strip_prefix("/api/v10").map(str::to_string) else {
        return (StatusCode::NOT_FOUND, "not the API").into_response();
    };
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let body = if let Some(boundary) = boundary {
        multipart(&String::from_utf8_lossy(&bytes), &boundary)
    } else if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let (status, reply) = fake.handle(&method, &path, body);
    let status = StatusCode::from_u16(status).unwrap();
    if reply.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(reply)).into_response()
    }
}

/// A multipart body as JSON: `payload_json` merged in, files under `_files` as
/// `{filename, content}` (the tests only upload text).
fn multipart(text: &str, boundary: &str) -> Value {
    let mut body = json!({});
    let mut files = Vec::new();
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, content)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        if head.contains("name=\"payload_json\"") {
            if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(content) {
                body.as_object_mut().unwrap().extend(map);
            }
        } else if let Some(name) = head.split("filename=\"").nth(1) {
            let filename = name.split('"').next().unwrap_or("");
            files.push(json!({"filename": filename, "content": content}));
        }
    }
    body["_files"] = Value::Array(files);
    body
}

async fn gateway(State(fake): State<Arc<FakeDiscord>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| session(fake, socket))
}

async fn session(fake: Arc<FakeDiscord>, mut socket: WebSocket) {
    let hello = json!({"op": 10, "d": {"heartbeat_interval": 41250}}).to_string();
    if socket.send(WsMessage::Text(hello.into())).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    loop {
        tokio::select! {
            outgoing = rx.recv() => {
                let Some(text) = outgoing else { return };
                if text == DROP {
                    return;
                }
                if socket.send(WsMessage::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { return };
                let WsMessage::Text(text) = message else { continue };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
                match frame["op"].as_u64() {
                    Some(1) => {
                        let ack = json!({"op": 11}).to_string();
                        if socket.send(WsMessage::Text(ack.into())).await.is_err() {
                            return;
                        }
                    }
                    Some(2) => {
                        {
                            let mut world = fake.world.lock().unwrap();
                            world.identified += 1;
                            world.sessions.push(tx.clone());
                        }
                        let _ = tx.send(
                            json!({"op": 0, "t": "READY", "s": fake.seq.fetch_add(1, Ordering::SeqCst) + 1,
                                   "d": ready(&fake.gateway_url())}).to_string(),
                        );
                        let _ = tx.send(
                            json!({"op": 0, "t": "GUILD_CREATE", "s": fake.seq.fetch_add(1, Ordering::SeqCst) + 1,
                                   "d": guild_create()}).to_string(),
                        );
                    }
                    // A resume is refused: the client identifies again (and READY comes again).
                    Some(6) => {
                        let refuse = json!({"op": 9, "d": false}).to_string();
                        if socket.send(WsMessage::Text(refuse.into())).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn user_json(id: u64) -> Value {
    let (name, bot) = match id {
        BOT => ("ticketbot", true),
        STAFF => ("sam", false),
        _ => ("olly", false),
    };
    json!({
        "id": id.to_string(), "username": name, "discriminator": "0", "global_name": null,
        "avatar": null, "bot": bot, "public_flags": 0,
    })
}

fn current_user() -> Value {
    let mut me = user_json(BOT);
    me["verified"] = json!(true);
    me["mfa_enabled"] = json!(false);
    me["flags"] = json!(0);
    me
}

fn member_roles(user: u64) -> Vec<String> {
    match user {
        STAFF => vec![ROLES[0].to_string()],
        MANAGER => vec![ROLES[2].to_string()],
        ADMIN => vec![ROLES[3].to_string()],
        _ => vec![],
    }
}

fn partial_member(user: u64) -> Value {
    let nick = if user == STAFF {
        json!("Sam from Support")
    } else {
        Value::Null
    };
    json!({
        "roles": member_roles(user), "nick": nick, "joined_at": TIMESTAMP, "deaf": false,
        "mute": false, "flags": 0, "pending": false, "premium_since": null,
    })
}

fn full_member(user: u64) -> Value {
    let mut member = partial_member(user);
    member["user"] = user_json(user);
    member["permissions"] = json!("2147483647");
    member["avatar"] = Value::Null;
    member["communication_disabled_until"] = Value::Null;
    member
}

fn attachment(id: u64, url: &str) -> Value {
    json!({
        "id": id.to_string(), "filename": url.rsplit('/').next().unwrap_or("file"),
        "size": 10, "url": url, "proxy_url": url, "content_type": "image/png",
    })
}

fn message(id: u64, channel: &str, author: Value, content: &str, attachments: Vec<Value>) -> Value {
    json!({
        "id": id.to_string(), "channel_id": channel, "author": author, "content": content,
        "timestamp": TIMESTAMP, "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": attachments, "embeds": [],
        "pinned": false, "type": 0, "flags": 0, "components": [],
    })
}

fn channel(
    id: u64,
    name: &str,
    kind: u64,
    parent: Option<&str>,
    topic: Option<&str>,
    overwrites: Value,
) -> Value {
    let overwrites = if overwrites.is_null() {
        json!([])
    } else {
        overwrites
    };
    json!({
        "id": id.to_string(), "type": kind, "guild_id": GUILD.to_string(), "name": name,
        "position": 0, "permission_overwrites": overwrites, "parent_id": parent, "topic": topic,
        "nsfw": false, "last_message_id": null, "rate_limit_per_user": 0, "flags": 0,
    })
}

fn role(id: u64, name: &str, position: u64) -> Value {
    json!({
        "id": id.to_string(), "name": name, "color": 0,
        "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
        "hoist": false, "icon": null, "unicode_emoji": null, "position": position,
        "permissions": "0", "managed": false, "mentionable": false, "flags": 0,
    })
}

fn ready(gateway: &str) -> Value {
    json!({
        "v": 10, "user": current_user(), "guilds": [{"id": GUILD.to_string(), "unavailable": true}],
        "session_id": "fake-session", "resume_gateway_url": gateway, "shard": [0, 1],
        "application": {"id": BOT.to_string(), "flags": 0},
    })
}

fn guild_create() -> Value {
    let mut roles = vec![role(GUILD, "@everyone", 0)];
    for (i, (id, name)) in ROLES
        .iter()
        .zip(["Support", "Developers", "Managers", "Admins"])
        .enumerate()
    {
        roles.push(role(*id, name, i as u64 + 1));
    }
    let mut channels = vec![channel(
        TRANSCRIPTS,
        "transcripts",
        0,
        None,
        None,
        json!([]),
    )];
    for id in CATEGORIES {
        channels.push(channel(id, "category", 4, None, None, json!([])));
    }
    let mut guild = json!({
        "id": GUILD.to_string(), "name": "Support", "icon": null, "icon_hash": null, "splash": null,
        "discovery_splash": null, "owner_id": STAFF.to_string(), "afk_channel_id": null,
        "afk_timeout": 300, "widget_enabled": false, "widget_channel_id": null,
        "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
        "roles": roles, "emojis": [], "features": [], "mfa_level": 0, "application_id": null,
        "system_channel_id": null, "system_channel_flags": 0, "rules_channel_id": null,
        "max_presences": null, "max_members": 1000, "vanity_url_code": null, "description": null,
        "banner": null, "premium_tier": 0, "premium_subscription_count": 0,
        "preferred_locale": "en-US", "public_updates_channel_id": null,
        "max_video_channel_users": 25, "max_stage_video_channel_users": 25, "nsfw_level": 0,
        "stickers": [], "premium_progress_bar_enabled": false, "safety_alerts_channel_id": null,
    });
    let state = json!({
        "joined_at": TIMESTAMP, "large": false, "unavailable": false, "member_count": 2,
        "voice_states": [], "members": [full_member(STAFF), full_member(BOT)],
        "channels": channels, "threads": [], "presences": [], "stage_instances": [],
        "guild_scheduled_events": [],
    });
    guild
        .as_object_mut()
        .unwrap()
        .extend(state.as_object().unwrap().clone());
    guild
}

fn interaction(
    id: u64,
    kind: u64,
    channel: &str,
    user: u64,
    data: Value,
    message: Option<Value>,
) -> Value {
    let mut interaction = json!({
        "id": id.to_string(), "application_id": BOT.to_string(), "type": kind, "data": data,
        "guild_id": GUILD.to_string(), "channel_id": channel,
        "channel": {"id": channel, "type": 0, "name": "ticket", "permissions": "2147483647"},
        "member": full_member(user), "token": format!("token-{id}"), "version": 1,
        "app_permissions": "2147483647", "locale": "en-US", "guild_locale": "en-US",
        "entitlements": [], "authorizing_integration_owners": {"0": GUILD.to_string()},
        "context": 0, "attachment_size_limit": 8_388_608,
    });
    if let Some(message) = message {
        interaction["message"] = message;
    }
    interaction
}

/// A Discord webhook on loopback (`ERROR_WEBHOOK_URL`, `ERROR_BOT_WEBHOOK_URL`): records every
/// post's JSON body and answers 204, as Discord does without `?wait=true`.
pub struct WebhookSink {
    posts: Mutex<Vec<Value>>,
    /// How long each answer takes, in milliseconds: a slow Discord.
    delay_ms: AtomicU64,
    /// The webhook URL, shaped like Discord's (`…/api/webhooks/{id}/{token}`).
    pub url: String,
}

/// The token part of every sink's URL, to check it never shows.
pub const SINK_TOKEN: &str = "sink-token-0123456789";

impl WebhookSink {
    /// Starts a sink on a free loopback port.
    pub async fn start() -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Arc::new(WebhookSink {
            posts: Mutex::new(Vec::new()),
            delay_ms: AtomicU64::new(0),
            url: format!("http://127.0.0.1:{port}/api/webhooks/4242/{SINK_TOKEN}"),
        });
        let app = Router::new()
            .route(
                &format!("/api/webhooks/4242/{SINK_TOKEN}"),
                axum::routing::post(
                    |State(sink): State<Arc<WebhookSink>>, body: Bytes| async move {
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        sink.posts.lock().unwrap().push(body);
                        let delay = sink.delay_ms.load(Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(Arc::clone(&sink));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        sink
    }

    /// Makes every answer take `delay`.
    pub fn answer_slowly(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Every post so far.
    pub fn posts(&self) -> Vec<Value> {
        self.posts.lock().unwrap().clone()
    }

    /// The content of every post so far.
    pub fn contents(&self) -> Vec<String> {
        self.posts()
            .iter()
            .map(|p| p["content"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Polls until some post's content contains `text`, or panics after `secs`.
    pub async fn wait_for(&self, text: &str, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(post) = self
                .posts()
                .into_iter()
                .find(|p| p["content"].as_str().is_some_and(|c| c.contains(text)))
            {
                return post;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no webhook post contains {text:?}; posts: {:#?}",
                self.contents()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
