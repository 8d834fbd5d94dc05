//! `ticketd replay`: drop the read models and rebuild them from the events, showing progress,
//! then say how much was rebuilt and how fast. The rebuild itself is the store's
//! ([`crate::store::embedded::audit::replay`]): one transaction, so a failed or interrupted replay
//! leaves the previous read models in place. It needs the server stopped; it takes the data
//! directory's lock and refuses while a server holds it.

use crate::store::embedded::audit::{self, ReplaySummary};
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

/// Rebuilds the read models in `dir`, drawing a progress bar on stderr when `show_progress`
/// (indicatif draws nothing when stderr is not a terminal).
pub fn run(dir: &Path, show_progress: bool) -> Result<Replayed, StoreError> {
    let bar = if show_progress {
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
    let started = Instant::now();
    let summary = audit::replay(dir, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    Ok(Replayed {
        summary: summary?,
        elapsed: started.elapsed(),
    })
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
