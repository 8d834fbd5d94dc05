//! Error webhooks: server errors (every 500, panics included) go to `ERROR_WEBHOOK_URL`, Discord
//! bridge errors to `ERROR_BOT_WEBHOOK_URL`, as Discord webhook messages.
//!
//! An error storm must neither flood the channel nor slow the requests that fail, so reporting
//! is a `try_send` into a bounded queue (full: the report is dropped and counted, the caller never
//! waits) and one task per webhook posts at most one message every [`INTERVAL`], folding all
//! that arrived meanwhile into it ("12 errors in the last 2 s: …, and 9 more"). The posts honour
//! Discord's 429 `Retry-After`, a failed post is retried a few times and then dropped with a log
//! line. Webhook URLs carry a token: they are never logged, and known secrets are scrubbed from
//! every cause before it leaves.

use crate::config::Config;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{debug, warn};

/// At most one message per webhook this often: Discord allows a channel 30 webhook messages a
/// minute, and one message every 2 s is all a person can read during a storm anyway.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Reports waiting for their webhook's task; beyond this they are dropped and counted.
const QUEUE: usize = 1024;
/// Reports kept word for word in one message; the rest are only counted.
const KEPT: usize = 40;
/// Longest cause kept, in characters.
const CAUSE_MAX: usize = 240;
/// Discord's limit for a message's content, in characters.
const CONTENT_MAX: usize = 2000;
/// Attempts to post one message before it is dropped.
const ATTEMPTS: u32 = 4;
/// First pause after a failed post; doubled after each further failure.
const BACKOFF: Duration = Duration::from_millis(500);
/// Longest `Retry-After` honoured: a longer one is treated as this, so a bad header cannot
/// silence reporting for hours.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The two reporters; cheap to clone, and both no-ops when their variable is empty.
#[derive(Clone, Default)]
pub struct Alerts {
    /// Server errors, to `ERROR_WEBHOOK_URL`.
    pub server: Reporter,
    /// Discord bridge errors, to `ERROR_BOT_WEBHOOK_URL`.
    pub bridge: Reporter,
    /// Reports dropped because a queue was full, by webhook, for `/metrics`.
    pub drops: Family<Dropped, Counter>,
}

/// The label of a dropped report: which webhook's queue was full (`server` or `bridge`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Dropped {
    /// `server` or `bridge`.
    pub webhook: &'static str,
}

/// A task that posts one webhook's reports; the caller runs it until shutdown.
pub type Delivery = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl Alerts {
    /// The reporters `config` asks for, and the delivery tasks to run for them.
    pub fn new(config: &Config) -> (Alerts, Vec<Delivery>) {
        let mut secrets: Vec<String> = [&config.error_webhook_url, &config.error_bot_webhook_url]
            .into_iter()
            .flatten()
            .map(|url| url.expose())
            .flat_map(|url| [url.to_string(), webhook_token(url).to_string()])
            .collect();
        secrets.push(String::from_utf8_lossy(config.jwt_secret.expose()).into_owned());
        if let Some(token) = &config.metrics_token {
            secrets.push(String::from_utf8_lossy(token.expose()).into_owned());
        }
        if let Some(discord) = &config.discord {
            secrets.push(String::from_utf8_lossy(discord.bot_token.expose()).into_owned());
        }
        // A short "secret" would blank out ordinary words; real tokens are long.
        secrets.retain(|s| s.len() >= 8);
        let pace = Pace::default();
        let mut deliveries = Vec::new();
        let drops: Family<Dropped, Counter> = Family::default();
        let mut reporter = |url: &Option<crate::config::SecretUrl>,
                            title: &'static str,
                            webhook: &'static str| match url {
            None => Reporter::default(),
            Some(url) => {
                let (reporter, delivery) = Reporter::with_delivery(
                    url.expose().to_string(),
                    title,
                    secrets.clone(),
                    pace,
                    drops.get_or_create_owned(&Dropped { webhook }),
                );
                deliveries.push(delivery);
                reporter
            }
        };
        let server = reporter(&config.error_webhook_url, "server error", "server");
        let bridge = reporter(
            &config.error_bot_webhook_url,
            "Discord bridge error",
            "bridge",
        );
        let alerts = Alerts {
            server,
            bridge,
            drops,
        };
        (alerts, deliveries)
    }
}

/// Where one kind of error goes: a bounded queue to its webhook's task, or nowhere.
#[derive(Clone, Default)]
pub struct Reporter(Option<Arc<Queue>>);

struct Queue {
    /// Into the webhook's task.
    sender: mpsc::Sender<Report>,
    /// Reports dropped because the queue was full, told in the next message.
    dropped: AtomicU64,
    /// The same, never reset, for `/metrics`.
    dropped_total: Counter,
}

/// One error as reported.
#[derive(Debug)]
struct Report {
    /// What failed: a request id, or the bridge part.
    source: String,
    /// A short cause.
    cause: String,
}

/// How a delivery task paces itself; tests shorten it.
#[derive(Debug, Clone, Copy)]
struct Pace {
    interval: Duration,
    backoff: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            interval: INTERVAL,
            backoff: BACKOFF,
        }
    }
}

impl Reporter {
    fn with_delivery(
        url: String,
        title: &'static str,
        secrets: Vec<String>,
        pace: Pace,
        dropped_total: Counter,
    ) -> (Reporter, Delivery) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let queue = Arc::new(Queue {
            sender,
            dropped: AtomicU64::new(0),
            dropped_total,
        });
        let delivery = Box::pin(deliver(
            Webhook {
                url,
                title,
                secrets,
                pace,
            },
            receiver,
            Arc::clone(&queue),
        ));
        (Reporter(Some(queue)), delivery)
    }

    /// Whether reports go anywhere.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Reports an error; never waits. `source` says what failed (a request id, a bridge part),
    /// `cause` why, briefly: never a secret, never customer text.
    pub fn report(&self, source: impl Into<String>, cause: impl Display) {
        let Some(queue) = &self.0 else {
            return;
        };
        let report = Report {
            source: source.into(),
            cause: cause.to_string(),
        };
        if queue.sender.try_send(report).is_err() {
            queue.dropped.fetch_add(1, Ordering::Relaxed);
            queue.dropped_total.inc();
        }
    }
}

/// One webhook and how to post to it.
struct Webhook {
    /// The webhook URL; never logged.
    url: String,
    /// What its messages are about ("server error").
    title: &'static str,
    /// Strings that must not leave: tokens, the JWT secret, the webhook URLs.
    secrets: Vec<String>,
    pace: Pace,
}

/// Reports gathered for one message.
#[derive(Debug, Default)]
struct Batch {
    /// How many errors, kept or not.
    count: u64,
    /// The first [`KEPT`] reports.
    kept: Vec<Report>,
}

impl Batch {
    fn add(&mut self, report: Report) {
        self.count += 1;
        if self.kept.len() < KEPT {
            self.kept.push(report);
        }
    }
}

/// Posts the queue's reports to `webhook`, one folded message at a time, until the queue closes.
async fn deliver(webhook: Webhook, mut receiver: mpsc::Receiver<Report>, queue: Arc<Queue>) {
    let client = match webhook_client::Client::builder()
        .timeout(POST_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            warn!(
                webhook = webhook.title,
                "cannot build the error webhook's HTTP client: {}",
                e.without_url()
            );
            return;
        }
    };
    let mut next_post = Instant::now();
    loop {
        let Some(first) = receiver.recv().await else {
            return;
        };
        let since = Instant::now();
        let mut batch = Batch::default();
        batch.add(first);
        // Fold in whatever arrives until the webhook may be posted to again.
        let mut open = true;
        while open {
            tokio::select! {
                report = receiver.recv() => match report {
                    Some(report) => batch.add(report),
                    None => open = false,
                },
                _ = sleep_until(next_post) => break,
            }
        }
        while let Ok(report) = receiver.try_recv() {
            batch.add(report);
        }
        let dropped = queue.dropped.swap(0, Ordering::Relaxed);
        let content = render(&webhook, &batch, dropped, since.elapsed());
        next_post = post(&client, &webhook, &content, batch.count + dropped).await;
        if !open {
            return;
        }
    }
}

/// Posts one message, honouring 429s and retrying failures; returns when the next may go.
async fn post(
    client: &webhook_client::Client,
    webhook: &Webhook,
    content: &str,
    errors: u64,
) -> Instant {
    let body = serde_json::json!({"content": content, "allowed_mentions": {"parse": []}});
    let body = body.to_string();
    let mut backoff = webhook.pace.backoff;
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(&webhook.url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let pause = match sent {
            Ok(response) if response.status().is_success() => {
                debug!(webhook = webhook.title, errors, "reported to the webhook");
                return Instant::now() + webhook.pace.interval;
            }
            Ok(response) if response.status().as_u16() == 429 => {
                let wait = retry_after(response).await;
                warn!(
                    webhook = webhook.title,
                    attempt,
                    ?wait,
                    "the error webhook is rate limited"
                );
                wait
            }
            Ok(response) if response.status().is_server_error() => {
                warn!(
                    webhook = webhook.title,
                    attempt,
                    status = response.status().as_u16(),
                    "the error webhook failed"
                );
                backoff
            }
            Ok(response) => {
                // A 4xx other than 429 (a deleted webhook, a bad URL) will not heal by retrying.
                warn!(
                    webhook = webhook.title,
                    status = response.status().as_u16(),
                    errors,
                    "the error webhook refused a report; dropped it"
                );
                return Instant::now() + webhook.pace.interval;
            }
            Err(e) => {
                warn!(
                    webhook = webhook.title,
                    attempt,
                    "cannot reach the error webhook: {}",
                    e.without_url()
                );
                backoff
            }
        };
        if attempt < ATTEMPTS {
            sleep(pause).await;
        }
        backoff *= 2;
    }
    warn!(
        webhook = webhook.title,
        errors, "dropped a report after {ATTEMPTS} failed attempts"
    );
    Instant::now() + webhook.pace.interval
}

/// How long a 429 asks to wait: Discord's JSON `retry_after` (seconds, fractional), else the
/// `Retry-After` header, else one second; at most [`RETRY_AFTER_MAX`].
async fn retry_after(response: webhook_client::Response) -> Duration {
    let header = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let body = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["retry_after"].as_f64());
    let secs = body.or(header).unwrap_or(1.0);
    if secs.is_finite() && secs > 0.0 {
        Duration::from_secs_f64(secs).min(RETRY_AFTER_MAX)
    } else {
        Duration::from_secs(1).min(RETRY_AFTER_MAX)
    }
}

/// The message for a batch: a bold summary line, then the kept reports, one per line, in a code
/// block (so no text can format or mention), then how many did not fit. At most
/// [`CONTENT_MAX`] characters.
fn render(webhook: &Webhook, batch: &Batch, dropped: u64, window: Duration) -> String {
    let total = batch.count + dropped;
    let title = webhook.title;
    let header = if total == 1 {
        format!("**ticketd: 1 {title}**")
    } else {
        let secs = window.as_secs_f64().ceil().max(1.0) as u64;
        format!("**ticketd: {total} {title}s in the last {secs} s**")
    };
    // Room for the header, the fences and the "…and N more" line.
    let budget = CONTENT_MAX - header.chars().count() - 60;
    let mut body = String::new();
    let mut used = 0;
    let mut shown = 0u64;
    for report in &batch.kept {
        let line = format!(
            "{} {}",
            scrub(&report.source, &webhook.secrets, 80),
            scrub(&report.cause, &webhook.secrets, CAUSE_MAX)
        );
        let length = line.chars().count() + 1;
        if used + length > budget {
            break;
        }
        used += length;
        shown += 1;
        body.push_str(&line);
        body.push('\n');
    }
    let mut content = format!("{header}\n```\n{body}```");
    if total > shown {
        let more = total - shown;
        content.push_str(&format!("\n…and {more} more"));
        if dropped > 0 {
            content.push_str(&format!(" ({dropped} dropped: the queue was full)"));
        }
    }
    content
}

/// `text` on one line, without secrets or backticks (which could close the code block), cut to
/// `max` characters.
fn scrub(text: &str, secrets: &[String], max: usize) -> String {
    let mut text = text.to_string();
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "[redacted]");
        }
    }
    let clean: String = text
        .chars()
        .map(|c| match c {
            '`' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let cut: String = clean.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The token part of a Discord webhook URL (`…/webhooks/{id}/{token}`), to scrub on its own too.
fn webhook_token(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(secrets: &[&str]) -> Webhook {
        Webhook {
            url: "http://127.0.0.1:1/api/webhooks/1/tok".into(),
            title: "server error",
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            pace: Pace::default(),
        }
    }

    fn batch(n: usize, cause: &str) -> Batch {
        let mut batch = Batch::default();
        for i in 0..n {
            batch.add(Report {
                source: format!("request r{i}"),
                cause: cause.to_string(),
            });
        }
        batch
    }

    #[test]
    fn one_error_is_one_line_in_a_code_block() {
        let text = render(&webhook(&[]), &batch(1, "GET /x: boom"), 0, Duration::ZERO);
        assert_eq!(
            text,
            "**ticketd: 1 server error**\n```\nrequest r0 GET /x: boom\n```"
        );
    }

    #[test]
    fn a_storm_fits_in_one_message_and_counts_the_rest() {
        let mut storm = batch(300, &"x".repeat(500));
        storm.count += 700; // reported beyond what a batch keeps
        let text = render(&webhook(&[]), &storm, 25, Duration::from_millis(1500));
        assert!(text.chars().count() <= CONTENT_MAX, "{}", text.len());
        assert!(text.starts_with("**ticketd: 1025 server errors in the last 2 s**"));
        let shown = text.lines().filter(|l| l.starts_with("request r")).count() as u64;
        assert!(shown >= 5, "{text}");
        assert!(
            text.ends_with(&format!(
                "…and {} more (25 dropped: the queue was full)",
                1025 - shown
            )),
            "{text}"
        );
    }

    #[test]
    fn secrets_backticks_and_newlines_do_not_get_through() {
        let url = "https://discord.com/api/webhooks/123/very-secret-token";
        let text = render(
            &webhook(&[url, webhook_token(url), "bot-token-123"]),
            &batch(
                1,
                "failed ``` @everyone\nat very-secret-token with bot-token-123",
            ),
            0,
            Duration::ZERO,
        );
        assert!(!text.contains("very-secret-token") && !text.contains("bot-token-123"));
        assert_eq!(text.matches("```").count(), 2, "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
        assert_eq!(webhook_token(url), "very-secret-token");
    }

    /// A webhook on loopback that answers the first post 429 (`retry_after` 0.3 s) and the rest
    /// 204, recording when each post came and what it said.
    async fn sink() -> (
        String,
        Arc<std::sync::Mutex<Vec<(Instant, u16, serde_json::Value)>>>,
    ) {
        use axum::extract::State;
        type Posts = Arc<std::sync::Mutex<Vec<(Instant, u16, serde_json::Value)>>>;
        async fn take(
            State(posts): State<Posts>,
            axum::Json(body): axum::Json<serde_json::Value>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            let mut posts = posts.lock().unwrap();
            let status = if posts.is_empty() { 429 } else { 204 };
            posts.push((Instant::now(), status, body));
            match status {
                429 => (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    axum::Json(serde_json::json!({"retry_after": 0.3, "global": false})),
                )
                    .into_response(),
                _ => axum::http::StatusCode::NO_CONTENT.into_response(),
            }
        }
        let posts: Posts = Arc::default();
        let app = axum::Router::new()
            .route("/api/webhooks/1/tok", axum::routing::post(take))
            .with_state(Arc::clone(&posts));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/api/webhooks/1/tok",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, posts)
    }

    #[tokio::test]
    async fn a_storm_is_one_message_that_waits_out_a_429_then_the_pace_holds() {
        let (url, posts) = sink().await;
        let pace = Pace {
            interval: Duration::from_millis(400),
            backoff: Duration::from_millis(10),
        };
        let (reporter, delivery) =
            Reporter::with_delivery(url, "server error", vec![], pace, Counter::default());
        let task = tokio::spawn(delivery);
        for i in 0..500 {
            reporter.report(format!("request r{i}"), "GET /x: boom");
        }
        let wait_for = |n: usize| {
            let posts = Arc::clone(&posts);
            async move {
                for _ in 0..200 {
                    if posts.lock().unwrap().len() >= n {
                        return;
                    }
                    sleep(Duration::from_millis(10)).await;
                }
                panic!("fewer than {n} posts: {:?}", posts.lock().unwrap());
            }
        };
        wait_for(2).await;
        let later = Instant::now();
        reporter.report("request late-1", "GET /y: boom");
        reporter.report("request late-2", "GET /y: boom");
        wait_for(3).await;
        sleep(Duration::from_millis(600)).await;
        task.abort();
        let posts = posts.lock().unwrap();
        assert_eq!(posts.len(), 3, "{posts:?}");
        let content = |i: usize| posts[i].2["content"].as_str().unwrap().to_string();
        assert_eq!(posts[0].1, 429);
        assert_eq!(content(0), content(1), "the refused message is sent again");
        assert!(
            content(1).starts_with("**ticketd: 500 server errors"),
            "{}",
            content(1)
        );
        assert!(
            posts[1].0 - posts[0].0 >= Duration::from_millis(300),
            "retry_after was honoured"
        );
        assert_eq!(
            posts[1].2["allowed_mentions"],
            serde_json::json!({"parse": []})
        );
        // The two late reports come together, one interval after the storm's message.
        assert!(
            content(2).starts_with("**ticketd: 2 server errors"),
            "{}",
            content(2)
        );
        assert!(posts[2].0 - posts[1].0 >= Duration::from_millis(350));
        assert!(posts[2].0 > later);
    }

    #[test]
    fn only_the_webhooks_that_are_set_report_and_a_bad_url_is_refused() {
        let config = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([("JWT_SECRET_KEY".into(), "k".repeat(32))])
                .collect();
            Config::from_lookup(move |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
        };
        let (alerts, deliveries) = Alerts::new(&config(&[]).unwrap());
        assert!(!alerts.server.is_on() && !alerts.bridge.is_on() && deliveries.is_empty());
        let url = "https://discord.com/api/webhooks/1/secret-token";
        let (alerts, deliveries) = Alerts::new(&config(&[("ERROR_BOT_WEBHOOK_URL", url)]).unwrap());
        assert!(!alerts.server.is_on() && alerts.bridge.is_on() && deliveries.len() == 1);
        let refused = config(&[(
            "ERROR_WEBHOOK_URL",
            "discord.com/api/webhooks/1/secret-token",
        )])
        .expect_err("not an http(s) URL")
        .to_string();
        assert!(refused.starts_with("ERROR_WEBHOOK_URL"), "{refused}");
        assert!(!refused.contains("secret-token"), "{refused}");
    }

    #[tokio::test]
    async fn reporting_never_waits_and_counts_what_it_drops() {
        let (reporter, _delivery) = Reporter::with_delivery(
            "http://127.0.0.1:1/".into(),
            "t",
            vec![],
            Pace::default(),
            Counter::default(),
        );
        // Nobody runs the delivery: the queue fills, and the rest are counted.
        for i in 0..QUEUE + 10 {
            reporter.report("r", i);
        }
        let queue = reporter.0.as_ref().unwrap();
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 10);
        assert_eq!(queue.dropped_total.get(), 10);
        Reporter::default().report("r", "nowhere");
    }
}
