//! What the writers measure about their group commits, for `/metrics` (ADR 0027). The store
//! owns these handles, since it exists before the server's state does; the state's registry
//! registers clones of them, which share the same atomics. Recorded once per committed batch,
//! never per request, so the writer's hot loop gains a few atomic additions.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::time::Duration;

/// The writer's instruments; clones share them.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    /// Events committed (on MongoDB an append retried after an unknown commit and answered
    /// from its stored events counts again).
    pub events: Counter,
    /// Write requests committed, what the queue delivered: appends (refused ones included) and,
    /// on the embedded store, checkpoints and links too.
    pub requests: Counter,
    /// Requests per committed batch: how much the group commit groups.
    pub batch_requests: Histogram,
    /// Seconds from the start of a batch's transaction to its commit (the fsync included).
    pub commit_seconds: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            events: Counter::default(),
            requests: Counter::default(),
            // 1, 2, 4 … 256: the largest batch either writer takes is 256 requests.
            batch_requests: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            // 100 µs … about 3.3 s.
            commit_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
        }
    }
}

impl StoreMetrics {
    /// Records one committed batch of `requests` requests that stored `events` new events.
    pub fn committed(&self, requests: usize, events: u64, took: Duration) {
        self.requests.inc_by(requests as u64);
        self.events.inc_by(events);
        self.batch_requests.observe(requests as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }
}
