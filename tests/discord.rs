//! The Discord bridge against a fake Discord on loopback (`common/fake_discord.rs`), through the
//! real serenity client: channel placement and overwrites for every level and role, relay both
//! ways with edits, deletes and internal notes, slash commands and buttons with permission
//! refusals, an outage in the middle of a conversation, a dropped gateway connection, restarts
//! that must not make a second channel or message nor forget a channel's removal, and the error
//! webhooks against a local sink (`WebhookSink`).

mod common;
#[path = "common/fake_discord.rs"]
mod fake_discord;

use common::*;
use fake_discord::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use tempfile::TempDir;

/// A ticketd server wired to `fake`, once its bot has registered its commands.
async fn server_for(fake: &Arc<FakeDiscord>, dir: Option<TempDir>) -> TestServer {
    server_with(fake, dir, &[]).await
}

/// The same with extra settings.
async fn server_with(
    fake: &Arc<FakeDiscord>,
    dir: Option<TempDir>,
    extra: &[(&str, &str)],
) -> TestServer {
    let env = fake.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra);
    let before = fake
        .calls_to("PUT", "/applications/*/guilds/*/commands")
        .len();
    let server = match dir {
        Some(dir) => TestServer::start_in(dir, &env).await,
        None => TestServer::start_with(&env).await,
    };
    fake.wait_until("the slash commands to be registered", 20, |f| {
        f.calls_to("PUT", "/applications/*/guilds/*/commands").len() > before
    })
    .await;
    server
}

async fn open_ticket(server: &TestServer, token: &str) -> String {
    server
        .create_ticket(token, "Cannot log in", "The page says *error* <@1>")
        .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The ticket's channel, once there is exactly one for it.
async fn channel_of(fake: &Arc<FakeDiscord>, ticket: &str) -> Value {
    let marker = format!("ticket {ticket}");
    let find = |f: &FakeDiscord| {
        f.ticket_channels()
            .into_iter()
            .filter(|c| c["topic"].as_str().is_some_and(|t| t.starts_with(&marker)))
            .collect::<Vec<_>>()
    };
    fake.wait_until("the ticket's channel", 20, |f| !find(f).is_empty())
        .await;
    let found = find(fake);
    assert_eq!(found.len(), 1, "one channel per ticket: {found:#?}");
    found[0].clone()
}

/// Whether a JSON snowflake string is `id`.
fn is_id(value: &Value, id: u64) -> bool {
    value.as_str().and_then(|s| s.parse().ok()) == Some(id)
}

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_string()
}

/// The bot's messages in a channel whose content contains `text`.
fn bot_messages_with(fake: &FakeDiscord, channel: &str, text: &str) -> Vec<Value> {
    fake.messages_in(channel)
        .into_iter()
        .filter(|m| is_id(&m["author"]["id"], BOT))
        .filter(|m| m["content"].as_str().is_some_and(|c| c.contains(text)))
        .collect()
}

async fn messages(server: &TestServer, token: &str, ticket: &str) -> Vec<Value> {
    let (status, _, body) = server
        .get(&format!("/api/v1/tickets/{ticket}/messages"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

async fn wait_messages(
    server: &TestServer,
    token: &str,
    ticket: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..400 {
        let list = messages(server, token, ticket).await;
        if check(&list) {
            return list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "timed out waiting for {what}: {:#?}",
        messages(server, token, ticket).await
    );
}

async fn ticket_status(server: &TestServer, token: &str, ticket: &str) -> Value {
    let (status, _, body) = server
        .get(&format!("/api/v1/tickets/{ticket}"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn role_overwrites(channel: &Value) -> Vec<(String, u64, String, String)> {
    let mut list: Vec<_> = channel["permission_overwrites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_string(),
                o["type"].as_u64().unwrap(),
                o["allow"].as_str().unwrap().to_string(),
                o["deny"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    list.sort();
    list
}

const VIEW_CHANNEL: u64 = 1 << 10;

fn visible_roles(channel: &Value) -> Vec<u64> {
    let mut roles: Vec<u64> = role_overwrites(channel)
        .into_iter()
        .filter(|(id, kind, allow, _)| {
            *kind == 0
                && id != &GUILD.to_string()
                && allow.parse::<u64>().unwrap() & VIEW_CHANNEL != 0
        })
        .map(|(id, ..)| id.parse().unwrap())
        .collect();
    roles.sort();
    roles
}

#[test]
fn every_fake_payload_deserializes_into_serenity_types() {
    use serenity::all::{CurrentUser, Event, GatewayEvent, GuildChannel, Message};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeDiscord::start());
    let samples = fake.payload_samples();
    for (name, frame) in [
        ("READY", &samples.ready),
        ("GUILD_CREATE", &samples.guild_create),
        ("MESSAGE_CREATE", &samples.message_create),
        ("MESSAGE_UPDATE", &samples.message_update),
        ("MESSAGE_DELETE", &samples.message_delete),
        ("INTERACTION_CREATE (slash)", &samples.slash),
        ("INTERACTION_CREATE (button)", &samples.button),
    ] {
        let event: GatewayEvent = serde_json::from_value(frame.clone())
            .unwrap_or_else(|e| panic!("{name} does not deserialize: {e}"));
        match event {
            GatewayEvent::Dispatch(_, Event::Unknown(_)) => panic!("{name} became Event::Unknown"),
            GatewayEvent::Dispatch(..) => {}
            other => panic!("{name} is not a dispatch: {other:?}"),
        }
        // The untagged form serenity's shard actually uses goes through the event's own type.
        let data = frame["d"].clone();
        let parsed = match name {
            "READY" => serde_json::from_value::<serenity::all::Ready>(data).map(drop),
            "GUILD_CREATE" => serde_json::from_value::<serenity::all::Guild>(data).map(drop),
            "MESSAGE_CREATE" => serde_json::from_value::<Message>(data).map(drop),
            "MESSAGE_UPDATE" => {
                serde_json::from_value::<serenity::all::MessageUpdateEvent>(data).map(drop)
            }
            "MESSAGE_DELETE" => {
                serde_json::from_value::<serenity::all::MessageDeleteEvent>(data).map(drop)
            }
            _ => serde_json::from_value::<serenity::all::Interaction>(data).map(drop),
        };
        parsed.unwrap_or_else(|e| panic!("{name}'s data does not deserialize: {e}"));
    }
    serde_json::from_value::<GuildChannel>(samples.channel).expect("a REST channel");
    serde_json::from_value::<Message>(samples.message).expect("a REST message");
    serde_json::from_value::<CurrentUser>(samples.current_user).expect("GET /users/@me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ticket_gets_one_hidden_channel_in_its_category_with_an_opening_message() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = channel_of(&fake, &ticket).await;
    assert_eq!(channel["parent_id"], CATEGORIES[0].to_string());
    assert!(
        channel["name"]
            .as_str()
            .unwrap()
            .starts_with("ticket-cannot-log-in-")
    );
    let overwrites = role_overwrites(&channel);
    let everyone = overwrites
        .iter()
        .find(|(id, ..)| id == &GUILD.to_string())
        .expect("an @everyone overwrite");
    assert_eq!(everyone.1, 0);
    assert_ne!(
        everyone.3.parse::<u64>().unwrap() & VIEW_CHANNEL,
        0,
        "hidden from @everyone"
    );
    assert!(
        overwrites
            .iter()
            .any(|(id, kind, allow, _)| id == &BOT.to_string()
                && *kind == 1
                && allow.parse::<u64>().unwrap() & VIEW_CHANNEL != 0),
        "the bot sees its channel: {overwrites:?}"
    );
    assert_eq!(
        visible_roles(&channel),
        ROLES.to_vec(),
        "GENERAL: every role"
    );

    let channel_id = id(&channel);
    fake.wait_until("the opening message", 20, |f| {
        !bot_messages_with(f, &channel_id, "New ticket").is_empty()
    })
    .await;
    let opening = bot_messages_with(&fake, &channel_id, "New ticket");
    assert_eq!(opening.len(), 1);
    let text = opening[0]["content"].as_str().unwrap();
    for part in [
        "ann",
        "ann\\@example\\.com",
        "CUSTOMER",
        "Cannot log in",
        "NORMAL",
        "\\*error\\*",
        "\\<\\@1\\>",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    let buttons: Vec<&str> = opening[0]["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        buttons,
        [
            format!("claim:{ticket}"),
            format!("escalate:{ticket}"),
            format!("close:{ticket}")
        ]
    );
    assert_eq!(opening[0]["allowed_mentions"]["parse"], json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_edits_and_deletions_cross_both_ways() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);

    // Customer → Discord: escaped, no pings, attachment links.
    let (status, _, posted) = server
        .post_json(
            &format!("/api/v1/tickets/{ticket}/messages"),
            &ann,
            json!({"content": "@everyone look **here**", "attachments": ["https://files.example/shot.png"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    fake.wait_until("the customer's message in Discord", 20, |f| {
        !bot_messages_with(f, &channel, "look").is_empty()
    })
    .await;
    let copy = bot_messages_with(&fake, &channel, "look").remove(0);
    let text = copy["content"].as_str().unwrap();
    assert!(text.contains("**ann** (CUSTOMER)"), "{text}");
    assert!(text.contains("\\@everyone look \\*\\*here\\*\\*"), "{text}");
    assert!(text.contains("<https://files.example/shot.png>"), "{text}");
    assert_eq!(
        copy["allowed_mentions"],
        json!({"parse": [], "users": [], "roles": []})
    );

    // The customer's edit and deletion follow.
    let message_path = format!("/api/v1/tickets/{ticket}/messages/{}", id(&posted));
    let (status, _, body) = server
        .patch_json(&message_path, &ann, json!({"content": "look there"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    fake.wait_until("the edit in Discord", 20, |f| {
        !bot_messages_with(f, &channel, "look there").is_empty()
    })
    .await;
    let (status, _, body) = server.delete(&message_path, &ann).await;
    assert!(status.is_success(), "{body}");
    fake.wait_until("the deletion in Discord", 20, |f| {
        bot_messages_with(f, &channel, "look").is_empty()
    })
    .await;

    // Discord → customer: a staff message, its edit, its deletion; a note never reaches them.
    let said = fake.member_says(
        STAFF,
        &channel,
        "Hello, we are on it",
        &["https://cdn.example/fix.txt"],
    );
    let list = wait_messages(&server, &ann, &ticket, "the staff message", |l| {
        l.iter().any(|m| m["content"] == "Hello, we are on it")
    })
    .await;
    let staff = list
        .iter()
        .find(|m| m["content"] == "Hello, we are on it")
        .unwrap();
    assert_eq!(staff["author_name"], "Sam from Support");
    assert_eq!(staff["author_id"], STAFF.to_string());
    assert_eq!(staff["attachments"], json!(["https://cdn.example/fix.txt"]));

    fake.member_says(STAFF, &channel, "!note customer seems confused", &[]);
    let agent = server.token("agent", "AGENT");
    wait_messages(&server, &agent, &ticket, "the note for staff", |l| {
        l.iter()
            .any(|m| m["content"] == "customer seems confused" && m["internal"] == true)
    })
    .await;
    assert!(
        messages(&server, &ann, &ticket)
            .await
            .iter()
            .all(|m| m["content"] != "customer seems confused"),
        "notes are not for the customer"
    );

    fake.member_edits(STAFF, &channel, &said, "Hello, it is fixed");
    wait_messages(&server, &ann, &ticket, "the staff edit", |l| {
        l.iter().any(|m| m["content"] == "Hello, it is fixed")
    })
    .await;
    fake.member_deletes(&channel, &said);
    wait_messages(&server, &ann, &ticket, "the staff deletion", |l| {
        l.iter().all(|m| m["content"] != "Hello, it is fixed")
    })
    .await;

    // Ignored: members without a support role, other guilds; and the bot's own echoes made
    // nothing either (the customer sees no message they did not write or staff did not post).
    fake.member_says(OUTSIDER, &channel, "I should not be here", &[]);
    fake.member_says_in(OTHER_GUILD, STAFF, &channel, "wrong guild", &[]);
    fake.member_says(STAFF, &channel, "last one", &[]);
    let list = wait_messages(&server, &agent, &ticket, "the last staff message", |l| {
        l.iter().any(|m| m["content"] == "last one")
    })
    .await;
    let contents: Vec<&str> = list
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["customer seems confused", "last one"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slash_commands_and_buttons_are_for_staff_only() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let registered = fake.calls_to("PUT", "/applications/*/guilds/*/commands");
    let names: Vec<&str> = registered[0]
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "close", "escalate", "level", "reopen", "claim", "unclaim", "assign", "tag", "reply",
            "block", "search"
        ]
    );

    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);

    // An outsider is refused, politely and privately.
    let asked = fake.slash(OUTSIDER, &channel, "close", json!([]));
    let answer = fake.answer(&asked).await;
    assert_eq!(answer["type"], 4);
    assert_eq!(answer["data"]["flags"], 64, "ephemeral: {answer}");
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .contains("only the support team")
    );
    assert_eq!(
        ticket_status(&server, &ann, &ticket).await["status"],
        "OPEN"
    );

    // Level: the channel moves to the CRITICAL category.
    let asked = fake.slash(
        STAFF,
        &channel,
        "level",
        json!([{"name": "level", "type": 3, "value": "CRITICAL"}]),
    );
    fake.answer(&asked).await;
    fake.wait_until("the move to CRITICAL", 20, |f| {
        f.ticket_channels()
            .iter()
            .any(|c| c["id"] == channel && is_id(&c["parent_id"], CATEGORIES[2]))
    })
    .await;
    assert_eq!(
        ticket_status(&server, &ann, &ticket).await["issue_level"],
        "CRITICAL"
    );

    // Escalate: only MANAGER and ADMIN roles see it now.
    let asked = fake.slash(
        STAFF,
        &channel,
        "escalate",
        json!([{"name": "role", "type": 3, "value": "MANAGER"}]),
    );
    fake.answer(&asked).await;
    fake.wait_until("the new overwrites", 20, |f| {
        f.ticket_channels()
            .iter()
            .any(|c| c["id"] == channel && visible_roles(c) == ROLES[2..].to_vec())
    })
    .await;

    // The close button closes; /reopen opens again.
    let clicked = fake.click(STAFF, &channel, &format!("close:{ticket}"));
    fake.answer(&clicked).await;
    assert_eq!(
        ticket_status(&server, &ann, &ticket).await["status"],
        "CLOSED"
    );
    fake.wait_until("the close notice", 20, |f| {
        !bot_messages_with(f, &channel, "Ticket closed").is_empty()
    })
    .await;
    let asked = fake.slash(STAFF, &channel, "reopen", json!([]));
    let answer = fake.answer(&asked).await;
    assert_eq!(
        ticket_status(&server, &ann, &ticket).await["status"],
        "OPEN"
    );
    assert_eq!(answer["data"]["flags"], 64);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_escalate_button_and_close_with_a_reason_work_for_staff() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);

    // The button moves the ticket one step up the ladder, GENERAL to TECHNICAL, and the
    // support team's own role no longer sees the channel.
    let clicked = fake.click(STAFF, &channel, &format!("escalate:{ticket}"));
    assert_eq!(fake.answer(&clicked).await["data"]["flags"], 64);
    assert_eq!(
        ticket_status(&server, &ann, &ticket).await["support_role"],
        "TECHNICAL"
    );
    fake.wait_until("the TECHNICAL overwrites", 20, |f| {
        f.ticket_channels()
            .iter()
            .any(|c| c["id"] == channel && visible_roles(c) == ROLES[1..].to_vec())
    })
    .await;

    // /close with a reason closes the ticket, and the transcript keeps the reason.
    let asked = fake.slash(
        STAFF,
        &channel,
        "close",
        json!([{"name": "reason", "type": 3, "value": "fixed by a restart"}]),
    );
    fake.answer(&asked).await;
    assert_eq!(
        ticket_status(&server, &ann, &ticket).await["status"],
        "CLOSED"
    );
    let transcripts = format!("/channels/{TRANSCRIPTS}/messages");
    fake.wait_until("the transcript", 20, |f| {
        !f.calls_to("POST", &transcripts).is_empty()
    })
    .await;
    let post = fake.calls_to("POST", &transcripts).remove(0).body;
    let text = post["_files"][1]["content"].as_str().unwrap();
    assert!(text.contains("fixed by a restart"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_delays_work_but_everything_lands_once() {
    let fake = FakeDiscord::start().await;
    let bot_webhook = WebhookSink::start().await;
    let server = server_with(
        &fake,
        None,
        &[("ERROR_BOT_WEBHOOK_URL", bot_webhook.url.as_str())],
    )
    .await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    fake.wait_until("the opening message", 20, |f| {
        !bot_messages_with(f, &channel, "New ticket").is_empty()
    })
    .await;

    fake.fail_next(6, 500);
    for i in 0..3 {
        server
            .post_message(&ann, &ticket, &format!("during the outage {i}"))
            .await;
    }
    fake.wait_until("the outage to pass", 30, |f| {
        !bot_messages_with(f, &channel, "during the outage 0").is_empty()
    })
    .await;
    fake.fail_next(3, 429);
    server
        .post_message(&ann, &ticket, "while rate limited")
        .await;
    fake.wait_until("every message", 30, |f| {
        !bot_messages_with(f, &channel, "while rate limited").is_empty()
    })
    .await;
    let copies: Vec<String> = fake
        .messages_in(&channel)
        .iter()
        .filter(|m| is_id(&m["author"]["id"], BOT))
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    let expected = [
        "New ticket",
        "during the outage 0",
        "during the outage 1",
        "during the outage 2",
        "while rate limited",
    ];
    assert_eq!(copies.len(), expected.len(), "{copies:#?}");
    for (copy, text) in copies.iter().zip(expected) {
        assert!(copy.contains(text), "{copy} should contain {text}");
    }
    assert!(
        fake.calls().iter().any(|c| c.status == 500)
            && fake.calls().iter().any(|c| c.status == 429),
        "the outage happened"
    );
    // The bridge's failures reached ERROR_BOT_WEBHOOK_URL, without pings or the bot's token.
    let report = bot_webhook.wait_for("HTTP 500", 10).await;
    assert_eq!(report["allowed_mentions"], json!({"parse": []}));
    bot_webhook.wait_for("HTTP 429", 10).await;
    let contents = bot_webhook.contents().join("\n");
    assert!(contents.contains("post a message failed"), "{contents}");
    assert!(!contents.contains("fake-token"), "{contents}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_even_before_links_were_recorded_makes_no_second_channel_or_message() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    server
        .post_message(&ann, &ticket, "before the restart")
        .await;
    fake.wait_until("the message", 20, |f| {
        !bot_messages_with(f, &channel, "before the restart").is_empty()
    })
    .await;

    // A plain restart: the checkpoint and links carry on.
    let dir = server.stop().await;
    let server = server_for(&fake, Some(dir)).await;
    server
        .post_message(&ann, &ticket, "after the restart")
        .await;
    fake.wait_until("the next message", 20, |f| {
        !bot_messages_with(f, &channel, "after the restart").is_empty()
    })
    .await;

    // A crash right after the Discord calls, before anything was recorded: forget the links and
    // the checkpoint, as if the process died between creating and recording.
    let dir = server.stop().await;
    {
        let db = rusqlite::Connection::open(dir.path().join("ticketd.db")).unwrap();
        db.execute("DELETE FROM links", []).unwrap();
        db.execute("DELETE FROM checkpoints WHERE name = 'discord'", [])
            .unwrap();
    }
    // Each of the three posts is replayed: found among the channel's messages (the first event
    // after a start is searched for) or deduplicated by its nonce.
    let replayed = |f: &FakeDiscord| {
        f.calls_to("POST", "/channels/*/messages").len()
            + f.calls_to("GET", "/channels/*/messages").len()
    };
    let posts_before = replayed(&fake);
    let server = server_for(&fake, Some(dir)).await;
    // Everything is replayed; wait until the replay reached the last event.
    fake.wait_until("the replay", 20, |f| replayed(f) >= posts_before + 3)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    channel_of(&fake, &ticket).await;
    assert_eq!(fake.ticket_channels().len(), 1, "no second channel");
    let bot: Vec<Value> = fake
        .messages_in(&channel)
        .into_iter()
        .filter(|m| is_id(&m["author"]["id"], BOT))
        .collect();
    assert_eq!(bot.len(), 3, "opening + two copies, none doubled: {bot:#?}");

    // The links are back, so staff messages still reach the ticket.
    fake.member_says(STAFF, &channel, "still here", &[]);
    wait_messages(&server, &ann, &ticket, "the staff message", |l| {
        l.iter().any(|m| m["content"] == "still here")
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_discord_api_url_fails_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let data = dir.path().to_string_lossy().into_owned();
    let vars = [
        ("JWT_SECRET_KEY", SECRET),
        ("DATA_DIR", data.as_str()),
        ("DISCORD_BOT_TOKEN", "t"),
        ("GUILD_ID", "1"),
        ("DISCORD_API_URL", url.as_str()),
    ];
    let config = ticketd::config::Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        ticketd::run(listener, config, std::future::pending()),
    )
    .await
    .expect("start-up gives up instead of hanging");
    let err = result.expect_err("an unreachable DISCORD_API_URL is an error");
    assert!(matches!(err, ticketd::RunError::Discord(_)), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closing_posts_a_transcript_then_removes_the_channel() {
    let fake = FakeDiscord::start().await;
    let server = server_with(&fake, None, &[("DISCORD_CHANNEL_GRACE_SECS", "1")]).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    let posted = server
        .post_message(&ann, &ticket, "<b>bold</b> & more")
        .await;
    server.post_message(&ann, &ticket, "typo").await;
    server
        .patch_json(
            &format!("/api/v1/tickets/{ticket}/messages/{}", id(&posted)),
            &ann,
            json!({"content": "<i>fixed</i>"}),
        )
        .await;
    let said = fake.member_says(STAFF, &channel, "Done on our side", &[]);
    wait_messages(&server, &ann, &ticket, "the staff answer", |l| l.len() == 3).await;
    fake.member_deletes(&channel, &said);
    wait_messages(&server, &ann, &ticket, "the deletion", |l| l.len() == 2).await;

    // Closed over REST, by the customer.
    let (status, _, body) = server
        .post_json(
            &format!("/api/v1/tickets/{ticket}/close"),
            &ann,
            json!({"reason": "solved <3"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let transcripts = format!("/channels/{TRANSCRIPTS}/messages");
    fake.wait_until("the transcript", 20, |f| {
        !f.calls_to("POST", &transcripts).is_empty()
    })
    .await;
    let post = fake.calls_to("POST", &transcripts).remove(0).body;
    let summary = post["content"].as_str().unwrap();
    for part in [
        &ticket[..],
        "ann",
        "Messages: 3",
        "Level: NORMAL",
        "Role: GENERAL",
        "by ann",
    ] {
        assert!(summary.contains(part), "{part} in {summary}");
    }
    assert_eq!(post["allowed_mentions"]["parse"], json!([]));
    let files = post["_files"].as_array().unwrap();
    let names: Vec<&str> = files
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("transcript-{ticket}.html"),
            format!("transcript-{ticket}.txt")
        ]
    );
    let html = files[0]["content"].as_str().unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("<b>bold") && !html.contains("<i>fixed"),
        "user text is escaped"
    );
    assert!(html.contains("&lt;i&gt;fixed&lt;/i&gt;") && html.contains("edited"));
    assert!(html.contains("Done on our side") && html.contains("deleted"));
    assert!(html.contains("solved &lt;3"));
    let text = files[1]["content"].as_str().unwrap();
    assert!(
        text.contains("<i>fixed</i> ") || text.contains("<i>fixed</i>\n"),
        "{text}"
    );
    assert!(text.contains("[deleted"), "{text}");

    // After the grace period the channel goes; a reopen makes a new one.
    fake.wait_until("the channel's removal", 20, |f| {
        f.ticket_channels()
            .iter()
            .all(|c| c["id"] != channel.as_str())
    })
    .await;
    let agent = server.token("agent", "AGENT");
    let (status, _, body) = server
        .post_empty(&format!("/api/v1/tickets/{ticket}/reopen"), &agent)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reopened = channel_of(&fake, &ticket).await;
    assert_ne!(id(&reopened), channel);
    server.stop().await;
}

/// The channels whose topic names `ticket`.
fn channels_for(fake: &FakeDiscord, ticket: &str) -> usize {
    let marker = format!("ticket {ticket}");
    fake.ticket_channels()
        .iter()
        .filter(|c| c["topic"].as_str().is_some_and(|t| t.starts_with(&marker)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_mongodb_one_instance_bridges_and_another_takes_over_when_it_stops() {
    let Some(mongo) = TestMongo::new("discord_lease") else {
        return;
    };
    let fake = FakeDiscord::start().await;
    let env = fake.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("MONGO_URI", mongo.uri.as_str()));
    env.push(("DB_NAME", mongo.db.as_str()));
    // `a` registers its commands, so it is the one holding the lease; `b` only waits for it.
    let a = server_with(&fake, None, &env[env.len() - 2..]).await;
    let b = TestServer::start_mongo(&mongo, &env[..env.len() - 2]).await;
    let registrations = || {
        fake.calls_to("PUT", "/applications/*/guilds/*/commands")
            .len()
    };
    assert_eq!(registrations(), 1, "only the holder runs the bridge");

    let ann = b.token("ann", "CUSTOMER");
    let first = open_ticket(&b, &ann).await;
    channel_of(&fake, &first).await;
    // Give a second bridge, were there one, time to make its channel too.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(channels_for(&fake, &first), 1, "one channel per ticket");
    assert_eq!(registrations(), 1, "still only one bridge");

    a.stop().await;
    fake.wait_until("the other instance to take the bridge over", 10, |_| {
        registrations() == 2
    })
    .await;
    let second = open_ticket(&b, &ann).await;
    let started = std::time::Instant::now();
    channel_of(&fake, &second).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "bridged within seconds"
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        channels_for(&fake, &second),
        1,
        "one channel for the new ticket"
    );
    assert_eq!(
        channels_for(&fake, &first),
        1,
        "no second channel for the first"
    );
    b.stop().await;
    mongo.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_mongodb_a_killed_holders_lease_expires_and_another_instance_takes_over() {
    let Some(mongo) = TestMongo::new("discord_lease_kill") else {
        return;
    };
    let fake = FakeDiscord::start().await;
    let env = fake.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("MONGO_URI", mongo.uri.as_str()));
    env.push(("DB_NAME", mongo.db.as_str()));
    let registrations = || {
        fake.calls_to("PUT", "/applications/*/guilds/*/commands")
            .len()
    };
    // `a` is the real binary, so it can die without a word (no release of the lease).
    let dir = tempfile::tempdir().unwrap();
    let a = BinaryServer::spawn_with(dir.path(), &env).await;
    fake.wait_until("the holder's bridge", 20, |_| registrations() == 1)
        .await;
    let b = TestServer::start_mongo(&mongo, &env[..env.len() - 2]).await;
    let ann = b.token("ann", "CUSTOMER");
    let first = open_ticket(&b, &ann).await;
    channel_of(&fake, &first).await;

    a.kill9();
    let killed = std::time::Instant::now();
    // The lease expires 10 s after its last renewal; `b` tries every second.
    fake.wait_until("the other instance to take the bridge over", 20, |_| {
        registrations() == 2
    })
    .await;
    assert!(
        killed.elapsed() < std::time::Duration::from_secs(15),
        "taken over within one lease, after {:?}",
        killed.elapsed()
    );
    let second = open_ticket(&b, &ann).await;
    channel_of(&fake, &second).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        channels_for(&fake, &second),
        1,
        "one channel for the new ticket"
    );
    assert_eq!(
        channels_for(&fake, &first),
        1,
        "no second channel for the first"
    );
    b.stop().await;
    mongo.drop_database().await;
}

/// How many errors a webhook post says it folds (`**ticketd: N …**`).
fn reported_total(content: &str) -> u64 {
    let head = content.lines().next().unwrap_or_default();
    head.trim_start_matches("**ticketd: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {head:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_reach_the_error_webhook_with_their_request_id_and_a_storm_is_folded() {
    let webhook = WebhookSink::start().await;
    let env = [
        ("ERROR_WEBHOOK_URL", webhook.url.as_str()),
        ("RATE_LIMITS", "off"),
    ];
    let server = TestServer::start_with(&env).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    // A damaged event makes reading the ticket's events a 500, as a broken store would.
    let dir = server.stop().await;
    {
        let db = rusqlite::Connection::open(dir.path().join("ticketd.db")).unwrap();
        db.execute(
            "UPDATE events SET data = '{\"type\":\"Nope\"}' WHERE stream_id = ?1",
            [&ticket],
        )
        .unwrap();
    }
    let server = TestServer::start_in(dir, &env).await;
    let admin = server.token("root", "ADMIN");
    let events = format!("/api/v1/tickets/{ticket}/events");
    let (status, headers, body) = server.get(&events, &admin).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let request_id = body["request_id"].as_str().unwrap().to_string();
    assert_eq!(headers["x-request-id"], request_id.as_str());
    let post = webhook.wait_for(&request_id, 10).await;
    let content = post["content"].as_str().unwrap();
    assert!(content.contains("**ticketd: 1 server error**"), "{content}");
    assert!(content.contains(&format!("GET {events}")), "{content}");
    assert_eq!(post["allowed_mentions"], json!({"parse": []}));
    assert!(!content.contains(SINK_TOKEN), "{content}");

    // A storm of 200 failing requests while the webhook takes 3 s to answer each post: every
    // request is still answered at once, and a handful of posts tell of all of them.
    webhook.answer_slowly(std::time::Duration::from_secs(3));
    let posts_before = webhook.posts().len();
    let started = std::time::Instant::now();
    let mut slowest = std::time::Duration::ZERO;
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (api, admin, events) = (Api::clone(&server), admin.clone(), events.clone());
        storm.spawn(async move {
            let mut slowest = std::time::Duration::ZERO;
            for _ in 0..25 {
                let asked = std::time::Instant::now();
                let (status, _, _) = api.get(&events, &admin).await;
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
                slowest = slowest.max(asked.elapsed());
            }
            slowest
        });
    }
    while let Some(done) = storm.join_next().await {
        slowest = slowest.max(done.unwrap());
    }
    let storm_took = started.elapsed();
    assert!(
        slowest < std::time::Duration::from_secs(2),
        "the slowest failing request took {slowest:?}: reporting waited for the webhook"
    );
    let storm_posts = || webhook.contents()[posts_before..].to_vec();
    for _ in 0..600 {
        if storm_posts().iter().map(|c| reported_total(c)).sum::<u64>() >= 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let posts = storm_posts();
    let total: u64 = posts.iter().map(|c| reported_total(c)).sum();
    assert_eq!(total, 200, "every error counted once: {posts:#?}");
    // At most one post every 2 s (plus the one that opens the storm).
    let allowed = 2 + storm_took.as_secs() as usize / 2;
    assert!(
        posts.len() <= allowed,
        "{} posts for a storm of {storm_took:?}: {posts:#?}",
        posts.len()
    );
    for content in &posts {
        assert!(content.chars().count() <= 2000);
    }
    assert!(
        posts.iter().any(|c| c.contains("more")),
        "a folded post says how many it did not list: {posts:#?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_inside_the_grace_period_still_removes_the_channel_once() {
    let fake = FakeDiscord::start().await;
    let grace = [("DISCORD_CHANNEL_GRACE_SECS", "6")];
    let server = server_with(&fake, None, &grace).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    let (status, _, body) = server
        .post_empty(&format!("/api/v1/tickets/{ticket}/close"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let closed = std::time::Instant::now();
    fake.wait_until("the close notice", 20, |f| {
        !bot_messages_with(f, &channel, "Ticket closed").is_empty()
    })
    .await;
    let dir = server.stop().await;
    let exists = |f: &FakeDiscord| f.ticket_channels().iter().any(|c| c["id"] == channel);
    assert!(
        exists(&fake),
        "stopped inside the grace period, so the channel is still there"
    );

    let server = server_with(&fake, Some(dir), &grace).await;
    fake.wait_until("the channel's removal after the restart", 20, |f| {
        !exists(f)
    })
    .await;
    assert!(
        // The close was recorded a moment before its answer came back.
        closed.elapsed() >= std::time::Duration::from_millis(5500),
        "not before its time"
    );
    // Another restart finds nothing left to do.
    let dir = server.stop().await;
    let server = server_with(&fake, Some(dir), &grace).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let deleted = fake.calls_to("DELETE", &format!("/channels/{channel}"));
    assert_eq!(deleted.len(), 1, "removed exactly once");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_level_and_support_role_places_the_channel_and_sets_who_sees_it() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let agent = server.token("agent", "AGENT");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    // NORMAL / GENERAL is the opening placement (checked above); every other level and role:
    for (level, role, category, visible) in [
        ("URGENT", "TECHNICAL", CATEGORIES[1], &ROLES[1..]),
        ("CRITICAL", "MANAGER", CATEGORIES[2], &ROLES[2..]),
        ("NORMAL", "ADMIN", CATEGORIES[0], &ROLES[3..]),
        ("URGENT", "GENERAL", CATEGORIES[1], &ROLES[..]),
    ] {
        let (status, _, body) = server
            .patch_json(
                &format!("/api/v1/tickets/{ticket}"),
                &agent,
                json!({"issue_level": level, "support_role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let placed = |c: &Value| {
            c["id"] == channel.as_str()
                && is_id(&c["parent_id"], category)
                && visible_roles(c) == visible.to_vec()
        };
        fake.wait_until(&format!("{level} / {role}"), 20, |f| {
            f.ticket_channels().iter().any(placed)
        })
        .await;
        let now = channel_of(&fake, &ticket).await;
        let overwrites = role_overwrites(&now);
        let everyone = overwrites
            .iter()
            .find(|(id, ..)| id == &GUILD.to_string())
            .unwrap_or_else(|| panic!("{level} / {role}: no @everyone overwrite"));
        assert_ne!(
            everyone.3.parse::<u64>().unwrap() & VIEW_CHANNEL,
            0,
            "{level} / {role}: hidden from @everyone"
        );
        assert!(
            overwrites
                .iter()
                .any(|(id, kind, allow, _)| id == &BOT.to_string()
                    && *kind == 1
                    && allow.parse::<u64>().unwrap() & VIEW_CHANNEL != 0),
            "{level} / {role}: the bot still sees it"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outsiders_are_refused_every_command_and_button_and_nothing_changes() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    let before = ticket_status(&server, &ann, &ticket).await;
    let asked = [
        fake.slash(
            OUTSIDER,
            &channel,
            "close",
            json!([{"name": "reason", "type": 3, "value": "bye"}]),
        ),
        fake.slash(
            OUTSIDER,
            &channel,
            "escalate",
            json!([{"name": "role", "type": 3, "value": "ADMIN"}]),
        ),
        fake.slash(
            OUTSIDER,
            &channel,
            "level",
            json!([{"name": "level", "type": 3, "value": "CRITICAL"}]),
        ),
        fake.slash(OUTSIDER, &channel, "reopen", json!([])),
        fake.click(OUTSIDER, &channel, &format!("close:{ticket}")),
        fake.click(OUTSIDER, &channel, &format!("escalate:{ticket}")),
    ];
    for (i, interaction) in asked.iter().enumerate() {
        let answer = fake.answer(interaction).await;
        assert_eq!(answer["type"], 4, "{i}: {answer}");
        assert_eq!(answer["data"]["flags"], 64, "{i}: ephemeral: {answer}");
        let text = answer["data"]["content"].as_str().unwrap();
        assert_eq!(text, "Sorry, only the support team can do that.", "{i}");
    }
    let after = ticket_status(&server, &ann, &ticket).await;
    for field in ["status", "issue_level", "support_role", "updated_at"] {
        assert_eq!(after[field], before[field], "{field} unchanged");
    }
    assert!(
        fake.calls_to("PATCH", &format!("/channels/{channel}"))
            .is_empty(),
        "the channel did not move"
    );
    assert!(
        bot_messages_with(&fake, &channel, "Ticket closed").is_empty()
            && bot_messages_with(&fake, &channel, "Escalated").is_empty()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_reconnects_by_itself_after_the_connection_drops() {
    let fake = FakeDiscord::start().await;
    let bot_webhook = WebhookSink::start().await;
    let server = server_with(
        &fake,
        None,
        &[("ERROR_BOT_WEBHOOK_URL", bot_webhook.url.as_str())],
    )
    .await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    assert_eq!(fake.identified(), 1);

    fake.drop_gateway();
    fake.wait_until("the bot to connect again", 30, |f| f.identified() >= 2)
        .await;
    fake.member_says(STAFF, &channel, "Back after the drop", &[]);
    wait_messages(&server, &ann, &ticket, "the staff message", |l| {
        l.iter().any(|m| m["content"] == "Back after the drop")
    })
    .await;
    bot_webhook.wait_for("connection lost", 10).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_not_recorded_before_a_crash_is_not_doubled_once_discord_forgot_its_nonce() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    // Two copies with the same text: the search must take the unclaimed one.
    server.post_message(&ann, &ticket, "same words").await;
    let second = server.post_message(&ann, &ticket, "same words").await;
    fake.wait_until("both copies", 20, |f| {
        bot_messages_with(f, &channel, "same words").len() == 2
    })
    .await;

    // As if the process died right after Discord took the second copy: nothing about it was
    // recorded, the checkpoint is one event back, and by the restart Discord forgot the nonce.
    let dir = server.stop().await;
    {
        let db = rusqlite::Connection::open(dir.path().join("ticketd.db")).unwrap();
        let (position, event_id): (i64, String) = db
            .query_row(
                "SELECT position, event_id FROM events ORDER BY position DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        let forgotten = db
            .execute(
                "DELETE FROM links WHERE (kind = 'discord.event_message' AND key = ?1)
                 OR (kind = 'discord.posted_for' AND value = ?1)
                 OR (kind = 'discord.message' AND key = ?2)",
                [&event_id, &id(&second)],
            )
            .unwrap();
        assert_eq!(forgotten, 3, "the second copy's three links");
        db.execute(
            "UPDATE checkpoints SET position = ?1 WHERE name = 'discord'",
            [position - 1],
        )
        .unwrap();
    }
    fake.forget_nonces();
    let server = server_for(&fake, Some(dir)).await;
    server
        .post_message(&ann, &ticket, "after the restart")
        .await;
    fake.wait_until("the next copy", 20, |f| {
        !bot_messages_with(f, &channel, "after the restart").is_empty()
    })
    .await;
    assert_eq!(
        bot_messages_with(&fake, &channel, "same words").len(),
        2,
        "not doubled"
    );

    // The second copy is linked again (not the first): the customer's edit lands on it.
    let (status, _, body) = server
        .patch_json(
            &format!("/api/v1/tickets/{ticket}/messages/{}", id(&second)),
            &ann,
            json!({"content": "other words"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    fake.wait_until("the edit", 20, |f| {
        !bot_messages_with(f, &channel, "other words").is_empty()
    })
    .await;
    let copies: Vec<String> = fake
        .messages_in(&channel)
        .iter()
        .filter(|m| is_id(&m["author"]["id"], BOT))
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(copies.len(), 4, "{copies:#?}");
    assert!(
        copies[1].contains("same words")
            && copies[2].contains("other words")
            && copies[3].contains("after the restart"),
        "{copies:#?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_claim_assign_and_tag_from_discord_and_the_topic_names_the_holder() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    let topic = |f: &FakeDiscord| {
        f.ticket_channels()
            .iter()
            .find(|c| c["id"] == channel)
            .and_then(|c| c["topic"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    assert!(topic(&fake).contains("unclaimed"), "{}", topic(&fake));

    // The Claim button: the member who clicks holds the ticket, under discord:<id>.
    let clicked = fake.click(STAFF, &channel, &format!("claim:{ticket}"));
    let answer = fake.answer(&clicked).await;
    assert_eq!(answer["data"]["flags"], 64, "{answer}");
    let seen = ticket_status(&server, &ann, &ticket).await;
    assert_eq!(seen["assignee_id"], format!("discord:{STAFF}"), "{seen}");
    assert!(seen["assignee_name"].is_string(), "{seen}");
    fake.wait_until("the topic to name the holder", 20, |f| {
        topic(f).contains("held by")
    })
    .await;

    // /unclaim lets go; /claim takes it again; an outsider cannot.
    let asked = fake.slash(STAFF, &channel, "unclaim", json!([]));
    fake.answer(&asked).await;
    assert_eq!(
        ticket_status(&server, &ann, &ticket).await["assignee_id"],
        Value::Null
    );
    let asked = fake.slash(OUTSIDER, &channel, "claim", json!([]));
    fake.answer(&asked).await;
    assert_eq!(
        ticket_status(&server, &ann, &ticket).await["assignee_id"],
        Value::Null
    );
    fake.wait_until("the topic to say nobody holds it", 20, |f| {
        topic(f).contains("unclaimed")
    })
    .await;

    // /assign <member> hands it to another member, named as the guild shows them.
    let asked = fake.slash(
        STAFF,
        &channel,
        "assign",
        json!([{"name": "member", "type": 6, "value": OUTSIDER.to_string()}]),
    );
    fake.answer(&asked).await;
    assert_eq!(
        ticket_status(&server, &ann, &ticket).await["assignee_id"],
        format!("discord:{OUTSIDER}")
    );

    // /tag add and remove; staff see the tags, the customer does not.
    let tag = |action: &str, value: &str| json!([{"name": action, "type": 1, "options": [{"name": "tag", "type": 3, "value": value}]}]);
    for (action, value) in [("add", "VIP"), ("add", "billing"), ("remove", "billing")] {
        let asked = fake.slash(STAFF, &channel, "tag", tag(action, value));
        fake.answer(&asked).await;
    }
    let asked = fake.slash(STAFF, &channel, "tag", tag("add", "not a tag"));
    assert!(
        fake.answer(&asked).await["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("A tag is"),
        "a bad tag is refused with a reason"
    );
    let admin = server.token("root", "ADMIN");
    assert_eq!(
        ticket_status(&server, &admin, &ticket).await["tags"],
        json!(["vip"])
    );
    assert!(
        ticket_status(&server, &ann, &ticket)
            .await
            .get("tags")
            .is_none()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_post_saved_replies_and_managers_block_from_discord() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let root = server.token("root", "ADMIN");
    for (name, content) in [
        ("refund", "Your refund is on its way."),
        ("reboot", "Turn it off and on."),
    ] {
        let (status, _, body) = server
            .request(
                reqwest::Method::PUT,
                &format!("/api/v1/replies/{name}"),
                Some(&root),
                Some(&json!({"content": content})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);

    // Autocomplete offers the names that start with what was typed (interaction type 4,
    // answered with type 8); an outsider learns none.
    let asked = fake.autocomplete(STAFF, &channel, "reply", "name", "re");
    let answer = fake.answer(&asked).await;
    assert_eq!(answer["type"], 8, "{answer}");
    let offered: Vec<&str> = answer["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["reboot", "refund"]);
    let asked = fake.autocomplete(STAFF, &channel, "reply", "name", "ref");
    assert_eq!(
        fake.answer(&asked).await["data"]["choices"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let asked = fake.autocomplete(OUTSIDER, &channel, "reply", "name", "");
    assert_eq!(fake.answer(&asked).await["data"]["choices"], json!([]));

    // /reply posts the saved text as the member's own message; the customer reads it.
    let asked = fake.slash(
        STAFF,
        &channel,
        "reply",
        json!([{"name": "name", "type": 3, "value": "Refund"}]),
    );
    let answer = fake.answer(&asked).await;
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Your refund is on its way."),
        "{answer}"
    );
    let (_, _, messages) = server
        .get(&format!("/api/v1/tickets/{ticket}/messages"), &ann)
        .await;
    let last = messages
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["content"], "Your refund is on its way.", "{messages}");
    assert_eq!(last["author_id"], format!("discord:{STAFF}"));
    let asked = fake.slash(
        STAFF,
        &channel,
        "reply",
        json!([{"name": "name", "type": 3, "value": "nothing"}]),
    );
    assert!(
        fake.answer(&asked).await["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("no saved reply"),
    );
    let asked = fake.slash(
        OUTSIDER,
        &channel,
        "reply",
        json!([{"name": "name", "type": 3, "value": "refund"}]),
    );
    fake.answer(&asked).await;
    let (_, _, after) = server
        .get(&format!("/api/v1/tickets/{ticket}/messages"), &ann)
        .await;
    assert_eq!(after, messages, "an outsider posts nothing");

    // /block: a plain support member is refused; a manager blocks the owner; an admin too.
    let asked = fake.slash(STAFF, &channel, "block", json!([]));
    let refused = fake.answer(&asked).await;
    assert!(
        refused["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("only managers and admins"),
        "{refused}"
    );
    assert_eq!(
        server.get("/api/v1/blocks", &root).await.2,
        json!([]),
        "nobody was blocked"
    );
    let asked = fake.slash(
        MANAGER,
        &channel,
        "block",
        json!([{"name": "reason", "type": 3, "value": "Spam"}]),
    );
    fake.answer(&asked).await;
    let listed = server.get("/api/v1/blocks", &root).await.2;
    assert_eq!(
        (listed[0]["user_id"].clone(), listed[0]["reason"].clone()),
        (json!("ann"), json!("Spam")),
        "{listed}"
    );
    let reply = server
        .post_json(
            &format!("/api/v1/tickets/{ticket}/messages"),
            &ann,
            json!({"content": "hi"}),
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "FORBIDDEN");
    let asked = fake.slash(ADMIN, &channel, "block", json!([]));
    fake.answer(&asked).await;
    assert_eq!(
        server.get("/api/v1/blocks", &root).await.2[0]["reason"],
        Value::Null,
        "the admin's block replaced it"
    );
    server.stop().await;
}

/// Issue 17: a missed service level is said once in the ticket's channel; the customer's
/// rating goes to the transcript channel after the transcript, escaped and pinging nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_breach_is_said_once_and_a_rating_follows_the_transcript() {
    let fake = FakeDiscord::start().await;
    let server = server_with(
        &fake,
        None,
        &[("SLA_FIRST_RESPONSE_MINUTES", "NORMAL:0.05")],
    )
    .await;
    let ann = server.token("ann", "CUSTOMER");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    let in_channel = format!("/channels/{channel}/messages");
    let breaches = |f: &FakeDiscord| {
        f.calls_to("POST", &in_channel)
            .iter()
            .filter(|c| {
                c.body["content"]
                    .as_str()
                    .is_some_and(|t| t.contains("Service level missed"))
            })
            .count()
    };
    fake.wait_until("the breach notice", 20, |f| breaches(f) > 0)
        .await;
    // Later sweeps record nothing more, so nothing more is said.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(breaches(&fake), 1);

    let (status, _, _) = server
        .post_empty(&format!("/api/v1/tickets/{ticket}/close"), &ann)
        .await;
    assert_eq!(status, StatusCode::OK);
    let transcripts = format!("/channels/{TRANSCRIPTS}/messages");
    fake.wait_until("the transcript", 20, |f| {
        !f.calls_to("POST", &transcripts).is_empty()
    })
    .await;
    let (status, _, body) = server
        .post_json(
            &format!("/api/v1/tickets/{ticket}/feedback"),
            &ann,
            json!({"rating": 5, "comment": "@everyone <b>great</b>"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    fake.wait_until("the rating", 20, |f| {
        f.calls_to("POST", &transcripts).len() > 1
    })
    .await;
    let posts = fake.calls_to("POST", &transcripts);
    assert!(
        posts[0].body["content"]
            .as_str()
            .unwrap()
            .contains("Transcript")
    );
    let rating = &posts[1].body;
    let text = rating["content"].as_str().unwrap();
    assert!(text.contains(&ticket) && text.contains("5/5"), "{text}");
    assert!(
        text.contains("\\@everyone") && text.contains("\\<b\\>"),
        "{text}"
    );
    assert_eq!(rating["allowed_mentions"]["parse"], json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_search_from_discord_and_get_links_to_the_ticket_channels() {
    let fake = FakeDiscord::start().await;
    let server = server_for(&fake, None).await;
    let ann = server.token("ann", "CUSTOMER");
    let ada = server.token("ada", "AGENT");
    let ticket = open_ticket(&server, &ann).await;
    let channel = id(&channel_of(&fake, &ticket).await);
    let other = server
        .create_ticket(&ann, "Printer <@&1> @everyone", "Café out of paper")
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other_channel = id(&channel_of(&fake, &other).await);
    let (status, _, _) = server
        .post_json(
            &format!("/api/v1/tickets/{ticket}/messages"),
            &ada,
            json!({"content": "known walrus issue", "internal": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Words of a description, accents folded, the last one a prefix: a link to the channel.
    let asked = fake.slash(
        STAFF,
        &channel,
        "search",
        json!([{"name": "words", "type": 3, "value": "cafe pap"}]),
    );
    let answer = fake.answer(&asked).await;
    assert_eq!(answer["data"]["flags"], 64, "ephemeral: {answer}");
    assert_eq!(
        answer["data"]["allowed_mentions"]["parse"],
        json!([]),
        "nobody is pinged: {answer}"
    );
    let content = answer["data"]["content"].as_str().unwrap_or_default();
    assert!(
        content.contains(&format!("<#{other_channel}>")),
        "{content}"
    );
    assert!(
        !content.contains(&format!("<#{channel}>")),
        "only the match: {content}"
    );
    assert!(
        content.contains(r"\<\@&1\>") && content.contains(r"\@everyone"),
        "mention syntax in a topic is escaped: {content}"
    );

    // Staff visibility: internal notes are searched.
    let asked = fake.slash(
        STAFF,
        &other_channel,
        "search",
        json!([{"name": "words", "type": 3, "value": "walrus"}]),
    );
    let content = fake.answer(&asked).await["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(content.contains(&format!("<#{channel}>")), "{content}");

    // No match, bad words, and an outsider.
    let asked = fake.slash(
        STAFF,
        &channel,
        "search",
        json!([{"name": "words", "type": 3, "value": "zebra"}]),
    );
    let content = fake.answer(&asked).await["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(content.contains("No ticket matches"), "{content}");
    let asked = fake.slash(
        STAFF,
        &channel,
        "search",
        json!([{"name": "words", "type": 3, "value": "?!"}]),
    );
    let content = fake.answer(&asked).await["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(content.contains("words of letters or digits"), "{content}");
    let asked = fake.slash(
        OUTSIDER,
        &channel,
        "search",
        json!([{"name": "words", "type": 3, "value": "cafe"}]),
    );
    let content = fake.answer(&asked).await["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(content.contains("only the support team"), "{content}");
    assert!(
        !content.contains("<#"),
        "an outsider learns nothing: {content}"
    );
    server.stop().await;
}
