//! The reports projection (issue 17 part 4, ADR 0026), as pure functions: what each event adds
//! to the figures ([`report_step`] turns an event and its ticket's report state into
//! [`ReportFact`]s), how facts add up into a [`Report`] ([`build_report`]), and the
//! recomputation from the events alone ([`recompute`]) that the stores' answers, `ticketd
//! verify` and the tests are held to.
//!
//! A fact is grouped by what its ticket was when it happened (level, team, holder then), so the
//! state a step needs is per ticket only: a stream can be folded on its own, and the stores keep
//! that state beside the facts. The stores keep per-day counters of the frequent facts too, so a
//! report of whole days never reads the facts one by one; they feed [`build_report`] the same
//! [`ReportRow`]s a recomputation does, which is what makes both answers equal.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use ticketd_events::inactivity::{CountdownEffect, message_effect};
use ticketd_events::{EventEnvelope, IssueLevel, SupportRole, TicketEvent};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// UTC calendar days.
    Day,
    /// Weeks from Monday 00:00 UTC.
    Week,
    /// The ticket's urgency when the fact happened.
    IssueLevel,
    /// The ticket's support team when the fact happened.
    SupportRole,
    /// The ticket's holder when the fact happened (`null`: nobody).
    Assignee,
}

impl GroupBy {
    /// Every value, as the API spells them.
    pub const ALL: [GroupBy; 5] = [
        GroupBy::Day,
        GroupBy::Week,
        GroupBy::IssueLevel,
        GroupBy::SupportRole,
        GroupBy::Assignee,
    ];

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Week => "week",
            GroupBy::IssueLevel => "issue_level",
            GroupBy::SupportRole => "support_role",
            GroupBy::Assignee => "assignee",
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupBy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        GroupBy::ALL.into_iter().find(|g| g.as_str() == s).ok_or(())
    }
}

/// What a report covers: facts that happened in `[from, to)` (epoch ms), as recorded at or
/// before `as_of` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportQuery {
    /// The window's start, inclusive.
    pub from: i64,
    /// The window's end, exclusive.
    pub to: i64,
    /// How the facts are grouped.
    pub group_by: GroupBy,
    /// Only events recorded at or before this instant.
    pub as_of: Option<i64>,
}

impl ReportQuery {
    /// The end of the window for facts that happen when they are recorded (all but SLA
    /// breaches): `as_of` cuts the window there.
    pub fn recorded_end(&self) -> i64 {
        match self.as_of {
            Some(as_of) => self.to.min(as_of.saturating_add(1)),
            None => self.to,
        }
    }

    /// Whether `fact` counts in this report.
    pub fn covers(&self, fact: &ReportFact) -> bool {
        if fact.kind == FactKind::SlaBreach {
            fact.at >= self.from
                && fact.at < self.to
                && self.as_of.is_none_or(|as_of| fact.recorded_at <= as_of)
        } else {
            fact.at >= self.from && fact.at < self.recorded_end()
        }
    }
}

/// What kind of fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// A ticket was opened.
    Opened,
    /// A ticket was closed.
    Closed,
    /// A ticket was reopened.
    Reopened,
    /// A public customer (non-staff) message.
    MessageCustomer,
    /// A public staff message.
    MessageStaff,
    /// A rating; `value` is the rating, 1 to 5.
    Feedback,
    /// A ticket's first public staff message; `value` is the ms since its opening.
    FirstResponse,
    /// A close; `value` is the ms since its opening or latest reopen.
    Resolution,
    /// A missed service-level target; `at` is its due time, not when it was recorded.
    SlaBreach,
}

impl FactKind {
    /// Every kind.
    pub const ALL: [FactKind; 9] = [
        FactKind::Opened,
        FactKind::Closed,
        FactKind::Reopened,
        FactKind::MessageCustomer,
        FactKind::MessageStaff,
        FactKind::Feedback,
        FactKind::FirstResponse,
        FactKind::Resolution,
        FactKind::SlaBreach,
    ];

    /// The kinds the stores also count per day: they happen when they are recorded and only
    /// their number matters (a rating's value is part of its counter's key).
    pub const COUNTED: [FactKind; 6] = [
        FactKind::Opened,
        FactKind::Closed,
        FactKind::Reopened,
        FactKind::MessageCustomer,
        FactKind::MessageStaff,
        FactKind::Feedback,
    ];

    /// The kinds whose every fact a report reads: the durations (medians need each sample)
    /// and the breaches (counted at their due time).
    pub const SAMPLED: [FactKind; 3] = [
        FactKind::FirstResponse,
        FactKind::Resolution,
        FactKind::SlaBreach,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Opened => "opened",
            FactKind::Closed => "closed",
            FactKind::Reopened => "reopened",
            FactKind::MessageCustomer => "message_customer",
            FactKind::MessageStaff => "message_staff",
            FactKind::Feedback => "feedback",
            FactKind::FirstResponse => "first_response",
            FactKind::Resolution => "resolution",
            FactKind::SlaBreach => "sla_breach",
        }
    }

    /// Whether the stores count it per day (see [`FactKind::COUNTED`]).
    pub fn is_counted(self) -> bool {
        FactKind::COUNTED.contains(&self)
    }
}

impl FromStr for FactKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        FactKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// What a ticket was when a fact happened: the keys of the non-time groupings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dims {
    /// Its urgency.
    pub issue_level: IssueLevel,
    /// Its support team.
    pub support_role: SupportRole,
    /// Its holder, if any.
    pub assignee: Option<String>,
}

/// One thing that happened, as a report counts it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReportFact {
    /// What.
    pub kind: FactKind,
    /// When it counts, epoch ms (the event's time; a breach's due time).
    pub at: i64,
    /// The event's position; with `kind`, a fact's identity.
    pub position: u64,
    /// When its event was recorded (for `as_of`).
    pub recorded_at: i64,
    /// What the ticket was then.
    pub dims: Dims,
    /// A duration in ms, a rating, or 0.
    pub value: i64,
}

/// What a ticket's next facts depend on; kept per ticket by the stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportTicket {
    /// When it was opened.
    pub opened_at: i64,
    /// When its current cycle started: the opening, or the latest reopen.
    pub cycle_start: i64,
    /// Whether staff have answered it publicly yet.
    pub answered: bool,
    /// What it is now.
    pub dims: Dims,
}

/// What one event does to the reports projection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportStep {
    /// The ticket's new report state, when it changed.
    pub state: Option<ReportTicket>,
    /// The facts it adds.
    pub facts: Vec<ReportFact>,
}

/// The facts `envelope` adds, given its ticket's report state before it (`None` before the
/// opening, and for the streams beside the tickets).
pub fn report_step(state: Option<&ReportTicket>, envelope: &EventEnvelope) -> ReportStep {
    let at = envelope.recorded_at;
    let fact = |kind, dims: &Dims, value| ReportFact {
        kind,
        at,
        position: envelope.position,
        recorded_at: at,
        dims: dims.clone(),
        value,
    };
    if let TicketEvent::TicketOpened {
        support_role,
        issue_level,
        ..
    } = &envelope.event
    {
        let ticket = ReportTicket {
            opened_at: at,
            cycle_start: at,
            answered: false,
            dims: Dims {
                issue_level: *issue_level,
                support_role: *support_role,
                assignee: None,
            },
        };
        return ReportStep {
            facts: vec![fact(FactKind::Opened, &ticket.dims, 0)],
            state: Some(ticket),
        };
    }
    let Some(current) = state else {
        return ReportStep::default();
    };
    let dims = &current.dims;
    let changed = |change: &dyn Fn(&mut ReportTicket)| {
        let mut next = current.clone();
        change(&mut next);
        Some(next)
    };
    match &envelope.event {
        // Internal notes are not part of the conversation with the customer: they count
        // neither as messages nor as an answer (ADR 0026).
        TicketEvent::MessagePosted {
            author_id,
            author_role,
            internal: false,
            ..
        } => {
            if !author_role.is_staff() {
                return ReportStep {
                    state: None,
                    facts: vec![fact(FactKind::MessageCustomer, dims, 0)],
                };
            }
            let mut facts = vec![fact(FactKind::MessageStaff, dims, 0)];
            // The same answer the SLA clock stops at: a public staff message, not the
            // system's auto-close warning (`ticketd_events::service_level`).
            let answers = message_effect(author_id, *author_role, false) == CountdownEffect::Start;
            if current.answered || !answers {
                return ReportStep { state: None, facts };
            }
            facts.push(fact(FactKind::FirstResponse, dims, at - current.opened_at));
            ReportStep {
                state: changed(&|t| t.answered = true),
                facts,
            }
        }
        TicketEvent::TicketClosed { .. } => ReportStep {
            state: None,
            facts: vec![
                fact(FactKind::Closed, dims, 0),
                fact(FactKind::Resolution, dims, at - current.cycle_start),
            ],
        },
        TicketEvent::TicketReopened {} => ReportStep {
            state: changed(&|t| t.cycle_start = at),
            facts: vec![fact(FactKind::Reopened, dims, 0)],
        },
        TicketEvent::IssueLevelChanged { to, .. } => ReportStep {
            state: changed(&|t| t.dims.issue_level = *to),
            facts: vec![],
        },
        TicketEvent::SupportRoleChanged { to, .. } => ReportStep {
            state: changed(&|t| t.dims.support_role = *to),
            facts: vec![],
        },
        TicketEvent::AssigneeChanged { to, .. } => ReportStep {
            state: changed(&|t| t.dims.assignee = to.clone()),
            facts: vec![],
        },
        TicketEvent::FeedbackGiven { rating, .. } => ReportStep {
            state: None,
            facts: vec![fact(FactKind::Feedback, dims, i64::from(*rating))],
        },
        // Counted at the due time it missed, grouped as the ticket was when it was recorded.
        TicketEvent::SlaBreached { due_at, .. } => ReportStep {
            state: None,
            facts: vec![ReportFact {
                at: *due_at,
                ..fact(FactKind::SlaBreach, dims, 0)
            }],
        },
        _ => ReportStep::default(),
    }
}

/// Every fact of a log, folded in position order (each ticket's state kept in memory).
pub fn facts_of<'a>(events: impl IntoIterator<Item = &'a EventEnvelope>) -> Vec<ReportFact> {
    let mut folder = ReportFolder::default();
    let mut facts = Vec::new();
    for envelope in events {
        facts.extend(folder.step(envelope));
    }
    facts
}

/// Folds events one at a time, keeping each ticket's report state: for walks that see each
/// event once (verify, the recomputation).
#[derive(Debug, Clone, Default)]
pub struct ReportFolder {
    /// Each ticket's state.
    pub tickets: HashMap<String, ReportTicket>,
}

impl ReportFolder {
    /// The facts `envelope` adds; its ticket's state moves on.
    pub fn step(&mut self, envelope: &EventEnvelope) -> Vec<ReportFact> {
        let step = report_step(self.tickets.get(&envelope.stream_id), envelope);
        if let Some(state) = step.state {
            self.tickets.insert(envelope.stream_id.clone(), state);
        }
        step.facts
    }
}

/// The report the events give for `query`: what every store's answer must equal.
pub fn recompute<'a>(
    events: impl IntoIterator<Item = &'a EventEnvelope>,
    query: &ReportQuery,
) -> Report {
    let facts = facts_of(events);
    build_report(
        query,
        facts
            .iter()
            .filter(|f| query.covers(f))
            .map(ReportRow::from),
    )
}

/// Facts, or a counter of alike facts, as [`build_report`] reads them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReportRow {
    /// What.
    pub kind: FactKind,
    /// When (for a counter, its day's start).
    pub at: i64,
    /// What the ticket was.
    pub dims: Dims,
    /// The facts' common value.
    pub value: i64,
    /// How many.
    pub count: u64,
}

impl From<&ReportFact> for ReportRow {
    fn from(fact: &ReportFact) -> Self {
        ReportRow {
            kind: fact.kind,
            at: fact.at,
            dims: fact.dims.clone(),
            value: fact.value,
            count: 1,
        }
    }
}

/// The per-day counters `facts` make: what the stores keep for [`FactKind::COUNTED`] kinds,
/// sorted.
pub fn day_counters<'a>(facts: impl IntoIterator<Item = &'a ReportFact>) -> Vec<ReportRow> {
    let mut counters: BTreeMap<(i64, FactKind, Dims, i64), u64> = BTreeMap::new();
    for fact in facts.into_iter().filter(|f| f.kind.is_counted()) {
        *counters
            .entry((day_start(fact.at), fact.kind, fact.dims.clone(), fact.value))
            .or_default() += 1;
    }
    counters
        .into_iter()
        .map(|((at, kind, dims, value), count)| ReportRow {
            kind,
            at,
            dims,
            value,
            count,
        })
        .collect()
}

/// A report: the API's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The window's start, epoch ms, inclusive.
    pub from: i64,
    /// The window's end, epoch ms, exclusive.
    pub to: i64,
    /// How the groups are made.
    pub group_by: GroupBy,
    /// One per key.
    pub groups: Vec<ReportGroup>,
}

/// The figures of one group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportGroup {
    /// A day or week (its Monday) as `YYYY-MM-DD`, a level, a team, a holder's id, or `null`
    /// for tickets held by nobody.
    pub key: Option<String>,
    /// Tickets opened.
    pub opened: u64,
    /// Closes.
    pub closed: u64,
    /// Reopens.
    pub reopened: u64,
    /// First public staff answers, by when they happened.
    pub first_response: Durations,
    /// Closes, timed from the opening or the latest reopen.
    pub resolution: Durations,
    /// Missed targets, by their due time.
    pub sla_breaches: u64,
    /// Ratings, by when they were given.
    pub feedback: Feedback,
    /// Public messages by who wrote them.
    pub messages: Messages,
}

/// How many durations, and their median and 90th percentile (nearest rank), in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    /// How many.
    pub count: u64,
    /// The median (the lower one for an even count); `null` without samples.
    pub median_s: Option<f64>,
    /// The 90th percentile; `null` without samples.
    pub p90_s: Option<f64>,
}

/// Ratings given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// How many.
    pub count: u64,
    /// Their mean; `null` without ratings.
    pub average: Option<f64>,
    /// How many of each rating, 1 to 5.
    pub distribution: [u64; 5],
}

/// Public messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Messages {
    /// By customers (anyone not staff).
    pub customer: u64,
    /// By staff.
    pub staff: u64,
}

/// The start of `at`'s UTC day.
pub fn day_start(at: i64) -> i64 {
    at.div_euclid(DAY_MS) * DAY_MS
}

/// The start of `at`'s week: Monday 00:00 UTC (1970-01-01 was a Thursday).
pub fn week_start(at: i64) -> i64 {
    let day = at.div_euclid(DAY_MS);
    (day - (day + 3).rem_euclid(7)) * DAY_MS
}

/// `at`'s UTC date as `YYYY-MM-DD` (the civil-from-days algorithm).
pub fn date_key(at: i64) -> String {
    let z = at.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The group key of a row under `group_by`.
fn key_of(group_by: GroupBy, row: &ReportRow) -> Option<String> {
    match group_by {
        GroupBy::Day => Some(date_key(row.at)),
        GroupBy::Week => Some(date_key(week_start(row.at))),
        GroupBy::IssueLevel => Some(row.dims.issue_level.as_str().to_owned()),
        GroupBy::SupportRole => Some(row.dims.support_role.as_str().to_owned()),
        GroupBy::Assignee => row.dims.assignee.clone(),
    }
}

/// The groups every report under `query` lists even when empty, in order: each day or week
/// the window touches, each level, each team. Holders are listed as they occur.
fn fixed_keys(query: &ReportQuery) -> Vec<Option<String>> {
    let steps = |start: i64, step: i64| {
        let mut keys = Vec::new();
        let mut at = start;
        while at < query.to {
            keys.push(Some(date_key(at)));
            at += step;
        }
        keys
    };
    match query.group_by {
        GroupBy::Day => steps(day_start(query.from), DAY_MS),
        GroupBy::Week => steps(week_start(query.from), 7 * DAY_MS),
        GroupBy::IssueLevel => IssueLevel::ALL
            .iter()
            .map(|l| Some(l.as_str().to_owned()))
            .collect(),
        GroupBy::SupportRole => SupportRole::ALL
            .iter()
            .map(|r| Some(r.as_str().to_owned()))
            .collect(),
        GroupBy::Assignee => Vec::new(),
    }
}

/// Adds rows up into the report for `query`. The rows must be those the query covers (the
/// stores select them; [`recompute`] filters with [`ReportQuery::covers`]); a counter row
/// stands for `count` alike facts.
pub fn build_report(query: &ReportQuery, rows: impl IntoIterator<Item = ReportRow>) -> Report {
    #[derive(Default)]
    struct Acc {
        group: ReportGroup,
        first_response: Vec<i64>,
        resolution: Vec<i64>,
        rating_sum: u64,
    }
    let mut groups: BTreeMap<Option<String>, Acc> = BTreeMap::new();
    let fixed = fixed_keys(query);
    for key in &fixed {
        groups.entry(key.clone()).or_default();
    }
    // A day's or week's key is made once per bucket, not once per row.
    let mut dates: HashMap<i64, Option<String>> = HashMap::new();
    for row in rows {
        let key = match query.group_by {
            GroupBy::Day | GroupBy::Week => {
                let start = match query.group_by {
                    GroupBy::Day => day_start(row.at),
                    _ => week_start(row.at),
                };
                dates
                    .entry(start)
                    .or_insert_with(|| Some(date_key(start)))
                    .clone()
            }
            _ => key_of(query.group_by, &row),
        };
        let acc = groups.entry(key).or_default();
        let g = &mut acc.group;
        let n = row.count;
        match row.kind {
            FactKind::Opened => g.opened += n,
            FactKind::Closed => g.closed += n,
            FactKind::Reopened => g.reopened += n,
            FactKind::MessageCustomer => g.messages.customer += n,
            FactKind::MessageStaff => g.messages.staff += n,
            FactKind::SlaBreach => g.sla_breaches += n,
            FactKind::Feedback => {
                if let Ok(rating @ 1..=5) = u64::try_from(row.value) {
                    g.feedback.count += n;
                    g.feedback.distribution[(rating - 1) as usize] += n;
                    acc.rating_sum += rating * n;
                }
            }
            FactKind::FirstResponse => {
                acc.first_response
                    .extend(std::iter::repeat_n(row.value, n as usize));
            }
            FactKind::Resolution => {
                acc.resolution
                    .extend(std::iter::repeat_n(row.value, n as usize));
            }
        }
    }
    let mut out: Vec<ReportGroup> = groups
        .into_iter()
        .map(|(key, mut acc)| {
            acc.group.key = key;
            acc.group.first_response = durations(acc.first_response);
            acc.group.resolution = durations(acc.resolution);
            if acc.group.feedback.count > 0 {
                acc.group.feedback.average =
                    Some(acc.rating_sum as f64 / acc.group.feedback.count as f64);
            }
            acc.group
        })
        .collect();
    // Days and weeks sort as dates already; levels and teams keep the contract's order.
    if matches!(query.group_by, GroupBy::IssueLevel | GroupBy::SupportRole) {
        out.sort_by_key(|g| fixed.iter().position(|k| *k == g.key));
    }
    Report {
        from: query.from,
        to: query.to,
        group_by: query.group_by,
        groups: out,
    }
}

/// The count, median and 90th percentile (nearest rank) of durations in ms, in seconds.
fn durations(mut samples: Vec<i64>) -> Durations {
    if samples.is_empty() {
        return Durations::default();
    }
    samples.sort_unstable();
    let n = samples.len();
    let rank = |percent: usize| samples[(percent * n).div_ceil(100).max(1) - 1] as f64 / 1000.0;
    Durations {
        count: n as u64,
        median_s: Some(rank(50)),
        p90_s: Some(rank(90)),
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "key,opened,closed,reopened,first_response_count,\
first_response_median_s,first_response_p90_s,resolution_count,resolution_median_s,\
resolution_p90_s,sla_breaches,feedback_count,feedback_average,feedback_distribution_1,\
feedback_distribution_2,feedback_distribution_3,feedback_distribution_4,\
feedback_distribution_5,messages_customer,messages_staff";

/// The report as CSV (RFC 4180): the header, then one row per group; an absent figure (or
/// key) is an empty field.
pub fn to_csv(report: &Report) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for g in &report.groups {
        let mut fields = vec![
            csv_field(g.key.as_deref().unwrap_or_default()),
            g.opened.to_string(),
            g.closed.to_string(),
            g.reopened.to_string(),
            g.first_response.count.to_string(),
            opt(g.first_response.median_s),
            opt(g.first_response.p90_s),
            g.resolution.count.to_string(),
            opt(g.resolution.median_s),
            opt(g.resolution.p90_s),
            g.sla_breaches.to_string(),
            g.feedback.count.to_string(),
            opt(g.feedback.average),
        ];
        fields.extend(g.feedback.distribution.iter().map(u64::to_string));
        fields.push(g.messages.customer.to_string());
        fields.push(g.messages.staff.to_string());
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A field quoted when it must be, and never read as a formula by a spreadsheet (a holder's
/// id is the partner's text).
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_weeks_in_utc() {
        assert_eq!(date_key(0), "1970-01-01");
        // 2026-12-07 is a Monday.
        let monday = 1_796_601_600_000;
        assert_eq!(date_key(monday), "2026-12-07");
        assert_eq!(week_start(monday + 6 * DAY_MS + 1), monday);
        assert_eq!(week_start(monday - 1), monday - 7 * DAY_MS);
        assert_eq!(date_key(951_782_400_000), "2000-02-29");
        assert_eq!(day_start(-1), -DAY_MS);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let d = durations(vec![4000, 1000, 3000, 2000]);
        assert_eq!(d.count, 4);
        assert_eq!(d.median_s, Some(2.0));
        assert_eq!(d.p90_s, Some(4.0));
        let d = durations((1..=10).map(|s| s * 1000).collect());
        assert_eq!((d.median_s, d.p90_s), (Some(5.0), Some(9.0)));
        assert_eq!(durations(vec![1500]).p90_s, Some(1.5));
        assert_eq!(durations(vec![]), Durations::default());
    }

    #[test]
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(CSV_HEADER.split(',').count(), 20);
    }
}
