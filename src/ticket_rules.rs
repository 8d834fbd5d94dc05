//! The two rules of issue 15 an operator sets per deployment: how many tickets one user may
//! have open (`MAX_OPEN_TICKETS_PER_USER`) and when a ticket waiting on its customer closes by
//! itself (`AUTO_CLOSE_AFTER_HOURS`, `AUTO_CLOSE_WARNING_HOURS`). Kept apart from `config.rs` so
//! the settings, their parsing and their tests sit together.

use crate::config::{ConfigError, invalid};
use std::time::Duration;

/// The warning's default lead before an auto-close, in hours.
const DEFAULT_WARNING_HOURS: f64 = 24.0;

/// Limits on tickets themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketRules {
    /// `MAX_OPEN_TICKETS_PER_USER` (0: no limit): a user with this many open tickets cannot
    /// open another (ADR 0023).
    pub max_open_per_user: u64,
    /// `AUTO_CLOSE_AFTER_HOURS` (0: off) and its warning; `None` when off (ADR 0022).
    pub auto_close: Option<AutoClose>,
}

/// When inactive tickets close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoClose {
    /// How long after the last staff message, unanswered by the customer, the ticket closes.
    pub after: Duration,
    /// How long before the close the warning is posted; at most half of `after`.
    pub warning: Duration,
}

impl TicketRules {
    /// Reads the three variables through `get` (trimmed, empty counts as unset).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let max_open_per_user = match get("MAX_OPEN_TICKETS_PER_USER") {
            None => 0,
            Some(v) => v.parse::<u64>().map_err(|_| {
                invalid(
                    "MAX_OPEN_TICKETS_PER_USER",
                    "expected a whole number of tickets (0: no limit)",
                )
            })?,
        };
        let after = hours(get, "AUTO_CLOSE_AFTER_HOURS", 0.0, "0: off")?;
        let warning = hours(
            get,
            "AUTO_CLOSE_WARNING_HOURS",
            DEFAULT_WARNING_HOURS,
            "above 0",
        )?;
        if get("AUTO_CLOSE_WARNING_HOURS").is_some() && warning.is_zero() {
            return Err(invalid(
                "AUTO_CLOSE_WARNING_HOURS",
                "expected a number of hours above 0",
            ));
        }
        let auto_close = (!after.is_zero()).then(|| AutoClose {
            after,
            // A warning longer than half the delay would reach the customer before they had
            // had much time to answer at all.
            warning: warning.min(after / 2),
        });
        Ok(TicketRules {
            max_open_per_user,
            auto_close,
        })
    }
}

/// A duration given in hours, decimals allowed (`0.002` is 7.2 s), rounded to milliseconds.
fn hours(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: f64,
    zero: &str,
) -> Result<Duration, ConfigError> {
    let value = match get(name) {
        None => default,
        Some(v) => v.parse::<f64>().map_err(|_| {
            invalid(
                name,
                format!("expected a number of hours such as 48 or 0.5 ({zero})"),
            )
        })?,
    };
    // Ten years is beyond any sensible setting and keeps the conversion finite.
    if !value.is_finite() || !(0.0..=87_600.0).contains(&value) {
        return Err(invalid(
            name,
            format!("expected a number of hours from 0 to 87600 ({zero})"),
        ));
    }
    Ok(Duration::from_millis((value * 3_600_000.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn rules(vars: &[(&str, &str)]) -> Result<TicketRules, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TicketRules::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_no_limit_and_no_auto_close() {
        assert_eq!(rules(&[]).unwrap(), TicketRules::default());
        assert_eq!(
            rules(&[("AUTO_CLOSE_AFTER_HOURS", "0")])
                .unwrap()
                .auto_close,
            None
        );
    }

    #[test]
    fn settings_table() {
        let ms = Duration::from_millis;
        // (settings, the limit, the auto-close delay and warning)
        type Case<'a> = (&'a [(&'a str, &'a str)], u64, Option<(Duration, Duration)>);
        let cases: &[Case] = &[
            (&[("MAX_OPEN_TICKETS_PER_USER", "3")], 3, None),
            (
                &[("AUTO_CLOSE_AFTER_HOURS", "72")],
                0,
                Some((ms(72 * 3_600_000), ms(24 * 3_600_000))),
            ),
            // 0.002 h is 7.2 s; the default 24 h warning is capped at half of it.
            (
                &[("AUTO_CLOSE_AFTER_HOURS", "0.002")],
                0,
                Some((ms(7_200), ms(3_600))),
            ),
            (
                &[
                    ("AUTO_CLOSE_AFTER_HOURS", "0.002"),
                    ("AUTO_CLOSE_WARNING_HOURS", "0.001"),
                ],
                0,
                Some((ms(7_200), ms(3_600))),
            ),
            (
                &[
                    ("AUTO_CLOSE_AFTER_HOURS", "48"),
                    ("AUTO_CLOSE_WARNING_HOURS", "1.5"),
                ],
                0,
                Some((ms(48 * 3_600_000), ms(5_400_000))),
            ),
        ];
        for (vars, max_open, auto_close) in cases {
            let got = rules(vars).unwrap();
            assert_eq!(got.max_open_per_user, *max_open, "{vars:?}");
            assert_eq!(
                got.auto_close.map(|a| (a.after, a.warning)),
                *auto_close,
                "{vars:?}"
            );
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        for (name, value) in [
            ("MAX_OPEN_TICKETS_PER_USER", "-1"),
            ("MAX_OPEN_TICKETS_PER_USER", "two"),
            ("AUTO_CLOSE_AFTER_HOURS", "-3"),
            ("AUTO_CLOSE_AFTER_HOURS", "NaN"),
            ("AUTO_CLOSE_AFTER_HOURS", "soon"),
            ("AUTO_CLOSE_WARNING_HOURS", "0"),
        ] {
            let err = rules(&[(name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
        }
    }
}
