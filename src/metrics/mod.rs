//! The server's instruments for `/metrics` (ADR 0027): one registry per [`crate::app::AppState`],
//! so several servers in one process (the tests) never mix their counts. Counters and
//! histograms that move on the hot path are atomics owned by whoever moves them (the store's
//! writer, the rate limiters, the alert queues) and registered here as clones that share them;
//! what is only worth knowing at scrape time (projector positions, memory, descriptors) is read
//! then, by [`Metrics::scrape`].
//!
//! Label policy: only bounded sets. An HTTP request is labelled by its route template
//! (`/tickets/{id}`), never its path, so ids, user names and tokens never become labels.

pub mod process;

use crate::alerts::Alerts;
use crate::rate_limit::RateLimits;
use crate::store::metrics::StoreMetrics;
use axum::extract::MatchedPath;
use axum::http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// The content type of the exposition: OpenMetrics text, which Prometheus asks for first.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every instrument of one server, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    /// Request latencies by method, route template and status; the histogram's `_count` is
    /// the request count.
    http: Family<HttpLabels, Histogram, fn() -> Histogram>,
    /// Socket.IO sockets connected now.
    pub sockets: Gauge,
    /// Discord calls that failed and are being tried again.
    pub discord_retries: Counter,
    /// The last event position committed.
    head: Gauge,
    /// How far each projector has got.
    position: Family<Projector, Gauge>,
    /// How many events each projector is behind the head.
    lag: Family<Projector, Gauge>,
    /// Resident memory of the process, in bytes.
    rss: Gauge,
    /// File descriptors open now, and the soft limit.
    fds: Gauge,
    max_fds: Gauge,
}

/// The labels of one HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HttpLabels {
    /// The method, or `other` for one no route serves.
    pub method: &'static str,
    /// The route template, `/socket.io/`, or `unmatched`.
    pub route: RouteLabel,
    /// The status of the answer.
    pub status: u16,
}

/// A route template as the router matched it: a clone of axum's, so labelling a request
/// allocates nothing.
#[derive(Debug, Clone)]
pub enum RouteLabel {
    /// A route of the router.
    Matched(MatchedPath),
    /// `/socket.io/` or `unmatched`.
    Fixed(&'static str),
}

impl RouteLabel {
    fn as_str(&self) -> &str {
        match self {
            RouteLabel::Matched(path) => path.as_str(),
            RouteLabel::Fixed(name) => name,
        }
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl Hash for RouteLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// The label of a projector: `socketio`, `discord` or `webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Projector {
    /// Which projector.
    pub projector: &'static str,
}

/// What a scrape reads that no counter keeps: the head and where each running projector is.
#[derive(Debug, Default)]
pub struct Positions {
    /// The last committed position.
    pub head: u64,
    /// `(projector, position)` for each projector this server runs.
    pub projectors: Vec<(&'static str, u64)>,
}

fn http_histogram() -> Histogram {
    // 0.5 ms … about 8 s.
    Histogram::new(exponential_buckets(0.000_5, 2.0, 15))
}

/// The method as a label: the ones the API serves by name, the rest as `other`, so a client
/// inventing methods cannot grow the label set.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn as_gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Registers every instrument, the store's, the limiters' and the alert queues' included.
    pub fn new(store: &StoreMetrics, limits: &RateLimits, alerts: &Alerts) -> Self {
        let mut registry = Registry::default();
        let http: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(http_histogram);
        registry.register(
            "ticketd_http_request_duration_seconds",
            "HTTP requests by method, route template and status: seconds until the answer's head",
            http.clone(),
        );
        registry.register(
            "ticketd_store_events",
            "Events committed to the store",
            store.events.clone(),
        );
        registry.register(
            "ticketd_store_write_requests",
            "Write requests the writer committed: appends (refused ones included) and, on the embedded store, checkpoints and links",
            store.requests.clone(),
        );
        registry.register(
            "ticketd_store_batch_requests",
            "Write requests per group commit",
            store.batch_requests.clone(),
        );
        registry.register(
            "ticketd_store_commit_seconds",
            "Seconds per group commit, from the transaction's start to its durable commit",
            store.commit_seconds.clone(),
        );
        let head = Gauge::default();
        registry.register(
            "ticketd_store_head_position",
            "Position of the last committed event",
            head.clone(),
        );
        let position = Family::<Projector, Gauge>::default();
        registry.register(
            "ticketd_projector_position",
            "Last event position each projector has finished",
            position.clone(),
        );
        let lag = Family::<Projector, Gauge>::default();
        registry.register(
            "ticketd_projector_lag_events",
            "Events each projector is behind the store's head",
            lag.clone(),
        );
        let sockets = Gauge::default();
        registry.register(
            "ticketd_socketio_connected_sockets",
            "Socket.IO sockets connected now",
            sockets.clone(),
        );
        registry.register(
            "ticketd_rate_limit_refusals",
            "Requests refused by a rate limit, by quota",
            limits.refusals().clone(),
        );
        let discord_retries = Counter::default();
        registry.register(
            "ticketd_discord_retries",
            "Discord calls that failed and were tried again",
            discord_retries.clone(),
        );
        registry.register(
            "ticketd_alert_drops",
            "Error-webhook reports dropped because their queue was full",
            alerts.drops.clone(),
        );
        let rss = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            rss.clone(),
        );
        let fds = Gauge::default();
        registry.register("process_open_fds", "Open file descriptors", fds.clone());
        let max_fds = Gauge::default();
        registry.register(
            "process_max_fds",
            "Soft limit of open file descriptors",
            max_fds.clone(),
        );
        Metrics {
            registry,
            http,
            sockets,
            discord_retries,
            head,
            position,
            lag,
            rss,
            fds,
            max_fds,
        }
    }

    /// Records one answered HTTP request; a read lock and an atomic add in the common case.
    pub fn request(&self, labels: &HttpLabels, took: Duration) {
        self.http.get_or_create(labels).observe(took.as_secs_f64());
    }

    /// The exposition, with the scrape-time values set from `positions` and `/proc`.
    pub fn scrape(&self, positions: &Positions) -> Result<String, std::fmt::Error> {
        self.head.set(as_gauge(positions.head));
        for (projector, at) in &positions.projectors {
            let label = Projector { projector };
            self.position.get_or_create(&label).set(as_gauge(*at));
            self.lag
                .get_or_create(&label)
                .set(as_gauge(positions.head.saturating_sub(*at)));
        }
        let process = process::read();
        if let Some(bytes) = process.rss_bytes {
            self.rss.set(as_gauge(bytes));
        }
        if let Some(open) = process.open_fds {
            self.fds.set(as_gauge(open));
        }
        if let Some(max) = process.max_fds {
            self.max_fds.set(as_gauge(max));
        }
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
