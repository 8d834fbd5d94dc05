//! Service levels (issue 17, ADR 0025), without a clock: the targets per issue level
//! ([`SlaPolicy`]) and the fold of a ticket's events with their times ([`SlaClock`]) that says
//! when a first answer and a resolution are due, when they came, and which targets were missed.
//! The sweeper that records a missed target (`ticketd::sla`) supplies the time.

use crate::event::TicketEvent;
use crate::inactivity::{self, CountdownEffect};
use crate::roles::IssueLevel;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One target a ticket is measured against.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SlaTarget {
    /// The first public staff answer.
    FirstResponse,
    /// The close.
    Resolution,
}

impl SlaTarget {
    /// Both targets, in the order they are listed.
    pub const ALL: [SlaTarget; 2] = [SlaTarget::FirstResponse, SlaTarget::Resolution];

    /// The spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaTarget::FirstResponse => "first_response",
            SlaTarget::Resolution => "resolution",
        }
    }
}

impl fmt::Display for SlaTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Minutes per issue level for one target; a level absent has no target.
pub type LevelTargets = BTreeMap<IssueLevel, f64>;

/// The configured targets: `SLA_FIRST_RESPONSE_MINUTES` and `SLA_RESOLUTION_MINUTES`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlaPolicy {
    /// Minutes to the first public staff answer, from the opening.
    pub first_response: LevelTargets,
    /// Minutes to the close, from the opening (or the last reopen).
    pub resolution: LevelTargets,
}

/// Why a targets string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

/// Parses `NORMAL:240,URGENT:60,CRITICAL:15` (minutes, decimals allowed, each level at most once;
/// an empty string has no targets).
pub fn parse_targets(text: &str) -> Result<LevelTargets, PolicyError> {
    let mut targets = LevelTargets::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (level, minutes) = part
            .split_once(':')
            .ok_or_else(|| PolicyError(format!("`{part}` is not LEVEL:MINUTES")))?;
        let level: IssueLevel = level.trim().parse().map_err(|_| {
            PolicyError(format!(
                "`{}` is not an issue level (NORMAL, URGENT, CRITICAL)",
                level.trim()
            ))
        })?;
        let minutes: f64 = minutes
            .trim()
            .parse()
            .ok()
            .filter(|m: &f64| m.is_finite() && *m > 0.0 && *m <= 1e9)
            .ok_or_else(|| {
                PolicyError(format!(
                    "`{}` is not a positive number of minutes",
                    minutes.trim()
                ))
            })?;
        if targets.insert(level, minutes).is_some() {
            return Err(PolicyError(format!("{level} is given twice")));
        }
    }
    Ok(targets)
}

impl SlaPolicy {
    /// The policy from the two variables' values (`None` when unset).
    pub fn parse(
        first_response: Option<&str>,
        resolution: Option<&str>,
    ) -> Result<Self, PolicyError> {
        Ok(SlaPolicy {
            first_response: parse_targets(first_response.unwrap_or(""))?,
            resolution: parse_targets(resolution.unwrap_or(""))?,
        })
    }

    /// Whether any target is configured; without one, tickets carry no `sla` at all.
    pub fn is_enabled(&self) -> bool {
        !self.first_response.is_empty() || !self.resolution.is_empty()
    }

    /// The target for `level`, in milliseconds.
    pub fn target_ms(&self, target: SlaTarget, level: IssueLevel) -> Option<i64> {
        let table = match target {
            SlaTarget::FirstResponse => &self.first_response,
            SlaTarget::Resolution => &self.resolution,
        };
        table.get(&level).map(|m| (m * 60_000.0).round() as i64)
    }
}

/// A ticket's service-level facts, folded from its events and their `recorded_at` times. It holds
/// no policy: the due times are asked with one, so the same fold serves any configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlaClock {
    /// When the ticket opened; `None` before its first event.
    pub opened_at: Option<i64>,
    /// Its level now: a change recomputes both due times from the opening.
    pub level: Option<IssueLevel>,
    /// Where the resolution clock starts: the opening, or the last reopen.
    pub resolution_from: i64,
    /// The first public staff message.
    pub first_response_at: Option<i64>,
    /// The close that ended the current period, while closed.
    pub resolved_at: Option<i64>,
    /// The targets recorded missed (by `SlaBreached`) in their current period, with the due time
    /// they missed; a reopen starts a new resolution period.
    pub recorded: BTreeMap<SlaTarget, i64>,
}

impl SlaClock {
    /// Folds a whole history of `(event, recorded_at)`, in order.
    pub fn from_events<'a>(events: impl IntoIterator<Item = (&'a TicketEvent, i64)>) -> Self {
        let mut clock = SlaClock::default();
        for (event, at) in events {
            clock.apply(event, at);
        }
        clock
    }

    /// Folds one event in, recorded at `at`.
    pub fn apply(&mut self, event: &TicketEvent, at: i64) {
        match event {
            TicketEvent::TicketOpened { issue_level, .. } => {
                self.opened_at = Some(at);
                self.resolution_from = at;
                self.level = Some(*issue_level);
            }
            TicketEvent::MessagePosted {
                author_id,
                author_role,
                internal,
                ..
            } if self.first_response_at.is_none()
                && inactivity::message_effect(author_id, *author_role, *internal)
                    == CountdownEffect::Start =>
            {
                self.first_response_at = Some(at);
            }
            TicketEvent::IssueLevelChanged { to, .. } => self.level = Some(*to),
            TicketEvent::TicketClosed { .. } => {
                self.resolved_at.get_or_insert(at);
            }
            TicketEvent::TicketReopened {} => {
                self.resolution_from = at;
                self.resolved_at = None;
                self.recorded.remove(&SlaTarget::Resolution);
            }
            TicketEvent::SlaBreached { target, due_at } => {
                self.recorded.insert(*target, *due_at);
            }
            _ => {}
        }
    }

    /// When `target` is due under `policy`; `None` where the level has no target. Kept once met.
    pub fn due_at(&self, policy: &SlaPolicy, target: SlaTarget) -> Option<i64> {
        let level = self.level?;
        let from = match target {
            SlaTarget::FirstResponse => self.opened_at?,
            SlaTarget::Resolution => {
                self.opened_at?;
                self.resolution_from
            }
        };
        policy
            .target_ms(target, level)
            .map(|ms| from.saturating_add(ms))
    }

    /// When `target` was met in its current period, if it was.
    pub fn met_at(&self, target: SlaTarget) -> Option<i64> {
        match target {
            SlaTarget::FirstResponse => self.first_response_at,
            SlaTarget::Resolution => self.resolved_at,
        }
    }

    /// The targets missed as of `now`: due, and not met by their due time.
    pub fn missed(&self, policy: &SlaPolicy, now: i64) -> Vec<SlaTarget> {
        SlaTarget::ALL
            .into_iter()
            .filter(|t| match self.due_at(policy, *t) {
                Some(due) => self.met_at(*t).unwrap_or(now) > due,
                None => false,
            })
            .collect()
    }

    /// The targets recorded missed in their current period: what the Ticket Object's `breached`
    /// lists (ADR 0025).
    pub fn breached(&self) -> Vec<SlaTarget> {
        self.recorded.keys().copied().collect()
    }

    /// The missed targets as of `now` not yet recorded, with their due times: what the sweeper
    /// appends.
    pub fn unrecorded(&self, policy: &SlaPolicy, now: i64) -> Vec<(SlaTarget, i64)> {
        self.missed(policy, now)
            .into_iter()
            .filter(|t| !self.recorded.contains_key(t))
            .filter_map(|t| self.due_at(policy, t).map(|due| (t, due)))
            .collect()
    }

    /// The earliest due time not yet met nor recorded missed: the staff inbox's countdown and the
    /// `sla=due_within` filter.
    pub fn next_due(&self, policy: &SlaPolicy) -> Option<i64> {
        SlaTarget::ALL
            .into_iter()
            .filter(|t| self.met_at(*t).is_none() && !self.recorded.contains_key(t))
            .filter_map(|t| self.due_at(policy, t))
            .min()
    }

    /// The earliest instant at which the sweeper may have something to record: a target not
    /// recorded, due, and either unmet or met late. `None`: nothing will ever be due.
    pub fn sweep_at(&self, policy: &SlaPolicy) -> Option<i64> {
        SlaTarget::ALL
            .into_iter()
            .filter(|t| !self.recorded.contains_key(t))
            .filter_map(|t| {
                let due = self.due_at(policy, t)?;
                match self.met_at(t) {
                    Some(met) if met <= due => None,
                    _ => Some(due),
                }
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_decimals_and_refuse_nonsense() {
        let t = parse_targets("NORMAL:240, URGENT:60,CRITICAL:0.05").unwrap();
        assert_eq!(t.get(&IssueLevel::Critical), Some(&0.05));
        assert_eq!(t.len(), 3);
        assert!(parse_targets("").unwrap().is_empty());
        for bad in [
            "LOW:5",
            "NORMAL:abc",
            "NORMAL",
            "NORMAL:-1",
            "NORMAL:0",
            "NORMAL:inf",
            "NORMAL:1,NORMAL:2",
        ] {
            assert!(parse_targets(bad).is_err(), "{bad}");
        }
        let policy = SlaPolicy::parse(Some("CRITICAL:0.05"), None).unwrap();
        assert_eq!(
            policy.target_ms(SlaTarget::FirstResponse, IssueLevel::Critical),
            Some(3_000)
        );
        assert!(policy.is_enabled());
        assert!(!SlaPolicy::parse(None, Some("")).unwrap().is_enabled());
    }

    #[test]
    fn targets_spell_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&SlaTarget::FirstResponse).unwrap(),
            "\"first_response\""
        );
        assert_eq!(
            serde_json::to_string(&SlaTarget::Resolution).unwrap(),
            "\"resolution\""
        );
    }
}
