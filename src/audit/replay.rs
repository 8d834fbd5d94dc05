//! `ticketd replay`: drop the read models and rebuild them from the events, showing progress,
//! then say how much was rebuilt and how fast. The rebuild itself is the store's, and either
//! way a failed or interrupted replay leaves the previous read models in place: the SQLite
//! file rebuilds in one transaction ([`crate::store::embedded::audit::replay`]; it takes the
//! data directory's lock and refuses while a server holds it), MongoDB into fresh collections
//! renamed over the live ones at the end ([`crate::store::mongo::audit::replay`]; it gives up
//! if an instance appended meanwhile). Both need every server stopped.

use crate::store::audit_source::ReplaySummary;
use crate::store::embedded::audit;
use crate::store::mongo::audit as mongo_audit;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::time::{Duration, Instant};
use ticketd_events::StoreError;

/// What a replay did and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replayed {
    /// What was rebuilt.
    pub summary: ReplaySummary,
    /// Wall time, opening and committing included.
    pub elapsed: Duration,
}

impl Replayed {
    /// Events folded per second.
    pub fn events_per_second(&self) -> f64 {
        self.summary.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Rebuilds the read models in `dir`, drawing a progress bar on stderr when `show_progress`.
pub fn run(dir: &Path, show_progress: bool) -> Result<Replayed, StoreError> {
    let progress = Progress::start(show_progress);
    let summary = audit::replay(dir, |done, total| progress.show(done, total));
    progress.finish(summary)
}

/// Rebuilds the read models of MongoDB database `db` the same way.
pub async fn run_mongo(uri: &str, db: &str, show_progress: bool) -> Result<Replayed, StoreError> {
    let progress = Progress::start(show_progress);
    let summary = mongo_audit::replay(uri, db, |done, total| progress.show(done, total)).await;
    progress.finish(summary)
}

/// The progress bar and the clock of one replay, whichever store it runs on.
struct Progress {
    /// Hidden unless asked for (indicatif draws nothing when stderr is not a terminal anyway).
    bar: ProgressBar,
    /// When the replay began, opening included.
    started: Instant,
}

impl Progress {
    fn start(show: bool) -> Self {
        let bar = if show {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events \
                 ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    fn show(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    fn finish(self, summary: Result<ReplaySummary, StoreError>) -> Result<Replayed, StoreError> {
        self.bar.finish_and_clear();
        Ok(Replayed {
            summary: summary?,
            elapsed: self.started.elapsed(),
        })
    }
}

/// The closing line of `ticketd replay`.
pub fn summary_line(replayed: &Replayed) -> String {
    let s = replayed.summary;
    format!(
        "replayed {} events into {} tickets and {} messages in {:.2} s ({:.0} events/s)",
        s.events,
        s.tickets,
        s.messages,
        replayed.elapsed.as_secs_f64(),
        replayed.events_per_second()
    )
}
