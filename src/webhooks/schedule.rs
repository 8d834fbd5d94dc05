//! How long to wait before retrying an event the partner did not take: the waits of
//! `WEBHOOK_RETRY_SCHEDULE` one after the other, the last one repeated for as long as it takes
//! (an event is never skipped), unless the partner says itself with `Retry-After` on a 429 or a
//! 503. Decimals are accepted so tests can retry within milliseconds.

use std::time::Duration;

/// The Standard Webhooks schedule, in seconds: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, then 10 h.
pub const DEFAULT_SCHEDULE: [f64; 6] = [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0];
/// Longest wait a schedule or a `Retry-After` may ask for: a bad header must not stall delivery
/// for days.
pub const MAX_WAIT: Duration = Duration::from_secs(36_000);

/// The waits after the first, second, … failure of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(DEFAULT_SCHEDULE.iter().map(|s| seconds(*s)).collect())
    }
}

impl RetrySchedule {
    /// Reads `5, 300, 1800` (seconds, decimals allowed, each at most [`MAX_WAIT`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let waits = text
            .split(',')
            .map(|part| {
                let part = part.trim();
                match part.parse::<f64>() {
                    Ok(secs) if secs.is_finite() && secs >= 0.0 => {
                        if secs > MAX_WAIT.as_secs_f64() {
                            Err(format!("{part} is longer than {} s", MAX_WAIT.as_secs()))
                        } else {
                            Ok(seconds(secs))
                        }
                    }
                    _ => Err(format!(
                        "expected seconds separated by commas (such as 5,300,1800 or 0.05,0.1), got {part:?}"
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetrySchedule(waits))
    }

    /// The wait after the `failures`-th failure in a row of one event (1 for the first); past
    /// the end of the schedule, its last wait.
    pub fn wait(&self, failures: u32) -> Duration {
        let index = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
        self.0
            .get(index)
            .or(self.0.last())
            .copied()
            .unwrap_or(MAX_WAIT)
    }
}

/// How long a 429 or 503 asks to wait with `Retry-After` in seconds (decimals tolerated), at
/// most [`MAX_WAIT`]. `None` for other statuses, an absent header or an HTTP date: the schedule
/// applies then.
pub fn retry_after(status: u16, header: Option<&str>) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    let secs = header?.trim().parse::<f64>().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(seconds(secs.min(MAX_WAIT.as_secs_f64())))
}

fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_standard_webhooks_schedule_then_its_last_wait() {
        let schedule = RetrySchedule::default();
        let waits: Vec<u64> = (1..=8).map(|n| schedule.wait(n).as_secs()).collect();
        assert_eq!(waits, [5, 300, 1800, 7200, 18000, 36000, 36000, 36000]);
    }

    #[test]
    fn parses_decimals_and_repeats_the_last_wait() {
        let schedule = RetrySchedule::parse(" 0.05, 0.1 ").unwrap();
        assert_eq!(schedule.wait(1), Duration::from_millis(50));
        assert_eq!(schedule.wait(2), Duration::from_millis(100));
        assert_eq!(schedule.wait(50), Duration::from_millis(100));
        assert_eq!(RetrySchedule::parse("0").unwrap().wait(3), Duration::ZERO);
    }

    #[test]
    fn refuses_what_is_not_a_list_of_seconds() {
        for bad in ["", "5,,6", "-1", "soon", "5s", "NaN", "inf", "36001"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn retry_after_applies_to_429_and_503_only() {
        assert_eq!(retry_after(429, Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(503, Some(" 0.25 ")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(500, Some("3")), None);
        assert_eq!(retry_after(429, None), None);
        assert_eq!(
            retry_after(429, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(retry_after(429, Some("-4")), None);
        assert_eq!(retry_after(503, Some("999999999")), Some(MAX_WAIT));
    }
}
