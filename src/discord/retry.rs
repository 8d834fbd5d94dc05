//! Waiting out Discord. With a proxy serenity's rate limiter is off and it never retries, so a
//! 429 or a 5xx comes back as an error; without one, an outage does too. The projector must not
//! skip an event, so every call is retried with a growing, jittered delay until it lands. Only an
//! answer that says the target is gone (404) ends the attempts, because the work is moot then.
//! Every failure also goes to `ERROR_BOT_WEBHOOK_URL` (batched there), so an outage is seen.

use crate::alerts::Reporter;
use prometheus_client::metrics::counter::Counter;
use serenity::all::{Error, HttpError};
use std::future::Future;
use std::time::Duration;
use tracing::warn;

/// First delay after a failure.
const FIRST: Duration = Duration::from_millis(100);
/// Longest delay between attempts.
const LONGEST: Duration = Duration::from_secs(10);

/// The target of a call no longer exists on Discord (a deleted message or channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// The HTTP status of a failed call, if Discord (or the proxy) answered.
pub fn status(error: &Error) -> Option<u16> {
    match error {
        Error::Http(HttpError::UnsuccessfulRequest(response)) => {
            Some(response.status_code.as_u16())
        }
        _ => None,
    }
}

/// Runs `call` until it succeeds or reports the target gone; `what` names it in the logs and in
/// the reports to `alerts`; each retry counts in `retries` (`/metrics`).
pub async fn until_done<T, F, Fut>(
    (alerts, retries): (&Reporter, &Counter),
    what: &str,
    mut call: F,
) -> Result<T, Gone>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut delay = FIRST;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if status(&e) == Some(404) => return Err(Gone),
            Err(e) => {
                // 4xx other than 404 and 429 mean a setting is wrong (a permission, an id): it
                // will not fix itself, but an operator can fix it, and the event must not be lost.
                warn!(attempt, ?delay, "Discord call {what} failed: {e}; retrying");
                let status = status(&e).map_or_else(|| "no answer".into(), |s| format!("HTTP {s}"));
                alerts.report(
                    "discord",
                    format_args!("{what} failed ({status}, attempt {attempt}): {e}; retrying"),
                );
                retries.inc();
                let jitter = rand::random::<u64>() % (delay.as_millis() as u64 / 2 + 1);
                tokio::time::sleep(delay + Duration::from_millis(jitter)).await;
                delay = (delay * 2).min(LONGEST);
            }
        }
    }
}
