//! The reports projection's rules as a table over a history spread across days (ADR 0026):
//! what each event counts as, in which day and group, and what `as_of` keeps.

use ticketd_events::fixtures::{EnvelopeFixture, envelope};
use ticketd_events::service_level::SlaTarget;
use ticketd_events::{EventEnvelope, IssueLevel, SupportRole, TicketEvent, UserRole};
use ticketd_projections::reports::{
    DAY_MS, FactKind, GroupBy, ReportQuery, build_report, day_counters, facts_of, recompute,
};

/// Monday 2026-12-07 00:00 UTC.
const MONDAY: i64 = 1_796_601_600_000;
const HOUR: i64 = 3_600_000;

fn post(author: &str, role: UserRole, internal: bool) -> TicketEvent {
    TicketEvent::MessagePosted {
        message_id: format!("m-{author}-{internal}"),
        author_id: author.into(),
        author_name: author.into(),
        author_role: role,
        content: "text".into(),
        attachments: vec![],
        internal,
    }
}

/// One ticket's history, an event per row: (hours after Monday 00:00, event).
fn history() -> Vec<EventEnvelope> {
    let rows: Vec<(i64, TicketEvent)> = vec![
        (
            1,
            TicketEvent::TicketOpened {
                user_id: "ann".into(),
                user_name: "Ann".into(),
                user_email: "ann@example.com".into(),
                user_role: UserRole::Customer,
                topic: "t".into(),
                description: "d".into(),
                support_role: SupportRole::General,
                issue_level: IssueLevel::Normal,
            },
        ),
        (2, post("ann", UserRole::Customer, false)),
        (3, post("ada", UserRole::Agent, true)),
        // The system's auto-close warning is a staff message but no answer.
        (4, post("system", UserRole::Admin, false)),
        (5, post("ada", UserRole::Agent, false)),
        (
            6,
            TicketEvent::IssueLevelChanged {
                from: IssueLevel::Normal,
                to: IssueLevel::Critical,
            },
        ),
        (
            7,
            TicketEvent::AssigneeChanged {
                from: None,
                to: Some("ada".into()),
                to_name: None,
            },
        ),
        (30, TicketEvent::TicketClosed { reason: None }),
        (
            31,
            TicketEvent::FeedbackGiven {
                rating: 2,
                comment: None,
            },
        ),
        (50, TicketEvent::TicketReopened {}),
        // Recorded on Wednesday, due on Tuesday.
        (
            52,
            TicketEvent::SlaBreached {
                target: SlaTarget::Resolution,
                due_at: MONDAY + 40 * HOUR,
            },
        ),
        (53, post("bob", UserRole::Admin, false)),
        (60, TicketEvent::TicketClosed { reason: None }),
    ];
    rows.into_iter()
        .enumerate()
        .map(|(i, (hours, event))| {
            envelope(event)
                .version(i as u64 + 1)
                .position(i as u64 + 1)
                .at(MONDAY + hours * HOUR)
        })
        .collect()
}

#[test]
fn each_event_counts_as_what_and_when() {
    let facts = facts_of(&history());
    let kinds: Vec<(FactKind, i64, i64)> = facts
        .iter()
        .map(|f| (f.kind, (f.at - MONDAY) / HOUR, f.value))
        .collect();
    assert_eq!(
        kinds,
        [
            (FactKind::Opened, 1, 0),
            (FactKind::MessageCustomer, 2, 0),
            (FactKind::MessageStaff, 4, 0),
            (FactKind::MessageStaff, 5, 0),
            (FactKind::FirstResponse, 5, 4 * HOUR),
            (FactKind::Closed, 30, 0),
            (FactKind::Resolution, 30, 29 * HOUR),
            (FactKind::Feedback, 31, 2),
            (FactKind::Reopened, 50, 0),
            (FactKind::SlaBreach, 40, 0),
            (FactKind::MessageStaff, 53, 0),
            (FactKind::Closed, 60, 0),
            (FactKind::Resolution, 60, 10 * HOUR),
        ]
    );
    // Grouped by what the ticket was then.
    let close = &facts[5];
    assert_eq!(close.dims.issue_level, IssueLevel::Critical);
    assert_eq!(close.dims.assignee.as_deref(), Some("ada"));
    assert_eq!(facts[0].dims.assignee, None);
}

#[test]
fn days_weeks_and_as_of() {
    let events = history();
    let week = ReportQuery {
        from: MONDAY,
        to: MONDAY + 7 * DAY_MS,
        group_by: GroupBy::Day,
        as_of: None,
    };
    let report = recompute(&events, &week);
    let days: Vec<_> = report
        .groups
        .iter()
        .map(|g| g.key.clone().unwrap())
        .collect();
    assert_eq!(days.first().map(String::as_str), Some("2026-12-07"));
    assert_eq!(days.len(), 7);
    let (mon, tue, wed) = (&report.groups[0], &report.groups[1], &report.groups[2]);
    assert_eq!(
        (mon.opened, mon.messages.customer, mon.messages.staff),
        (1, 1, 2)
    );
    assert_eq!(mon.first_response.median_s, Some(4.0 * 3600.0));
    assert_eq!(
        (tue.closed, tue.feedback.count, tue.sla_breaches),
        (1, 1, 1)
    );
    assert_eq!(tue.feedback.distribution, [0, 1, 0, 0, 0]);
    assert_eq!(tue.feedback.average, Some(2.0));
    assert_eq!((wed.reopened, wed.closed, wed.resolution.count), (1, 1, 1));
    assert_eq!(wed.resolution.p90_s, Some(10.0 * 3600.0));

    // As of Wednesday 01:00: the breach (recorded at 04:00) is not known yet, though due on
    // Tuesday; as of 05:00 it is.
    let then = recompute(
        &events,
        &ReportQuery {
            as_of: Some(MONDAY + 49 * HOUR),
            ..week
        },
    );
    assert_eq!(then.groups[1].sla_breaches, 0);
    assert_eq!(then.groups[2].reopened, 0);
    let later = recompute(
        &events,
        &ReportQuery {
            as_of: Some(MONDAY + 52 * HOUR),
            ..week
        },
    );
    assert_eq!(later.groups[1].sla_breaches, 1);

    let by_week = recompute(
        &events,
        &ReportQuery {
            group_by: GroupBy::Week,
            ..week
        },
    );
    assert_eq!(by_week.groups.len(), 1);
    assert_eq!(by_week.groups[0].key.as_deref(), Some("2026-12-07"));
    assert_eq!(by_week.groups[0].resolution.count, 2);
    assert_eq!(by_week.groups[0].resolution.median_s, Some(10.0 * 3600.0));
}

#[test]
fn counters_add_up_to_the_same_report() {
    let events = history();
    let facts = facts_of(&events);
    let q = ReportQuery {
        from: MONDAY,
        to: MONDAY + 7 * DAY_MS,
        group_by: GroupBy::IssueLevel,
        as_of: None,
    };
    // What a store does for whole days: the counters, plus every sampled fact.
    let rows = day_counters(&facts).into_iter().chain(
        facts
            .iter()
            .filter(|f| !f.kind.is_counted())
            .map(Into::into),
    );
    assert_eq!(build_report(&q, rows), recompute(&events, &q));
}
