//! Issue 17 in the domain: who may rate a ticket and when, the system's breach records, and the
//! service-level clock over level changes, answers and reopens (ADR 0025).

use ticketd_events::inactivity::system_actor;
use ticketd_events::{
    Actor, Command, IssueLevel, SlaClock, SlaPolicy, SlaTarget, SupportRole, Ticket, TicketError,
    TicketEvent, UserRole, Via,
};

fn actor(id: &str, role: UserRole) -> Actor {
    Actor {
        id: id.into(),
        name: format!("{id}-name"),
        role,
        via: Via::Web,
    }
}

fn opened(level: IssueLevel) -> TicketEvent {
    TicketEvent::TicketOpened {
        user_id: "owner".into(),
        user_name: "owner-name".into(),
        user_email: "o@example.com".into(),
        user_role: UserRole::Customer,
        topic: "t".into(),
        description: "d".into(),
        support_role: SupportRole::General,
        issue_level: level,
    }
}

fn posted(by: &str, role: UserRole, internal: bool) -> TicketEvent {
    TicketEvent::MessagePosted {
        message_id: format!("m-{by}-{internal}"),
        author_id: by.into(),
        author_name: by.into(),
        author_role: role,
        content: "hi".into(),
        attachments: vec![],
        internal,
    }
}

fn closed() -> TicketEvent {
    TicketEvent::TicketClosed { reason: None }
}

fn rated() -> TicketEvent {
    TicketEvent::FeedbackGiven {
        rating: 4,
        comment: None,
    }
}

fn give(rating: u8) -> Command {
    Command::GiveFeedback {
        rating,
        comment: Some("thanks".into()),
    }
}

#[test]
fn feedback_rules() {
    let owner = actor("owner", UserRole::Customer);
    let agent = actor("agent", UserRole::Agent);
    let admin = actor("admin", UserRole::Admin);
    let other = actor("other", UserRole::Customer);
    type Expected = Result<Vec<TicketEvent>, TicketError>;
    let given = || {
        Ok(vec![TicketEvent::FeedbackGiven {
            rating: 5,
            comment: Some("thanks".into()),
        }])
    };
    let cases: Vec<(&str, Vec<TicketEvent>, &Actor, Expected)> = vec![
        (
            "the owner rates a closed ticket",
            vec![opened(IssueLevel::Normal), closed()],
            &owner,
            given(),
        ),
        (
            "an open ticket cannot be rated",
            vec![opened(IssueLevel::Normal)],
            &owner,
            Err(TicketError::TicketNotClosed),
        ),
        (
            "a second rating is refused",
            vec![opened(IssueLevel::Normal), closed(), rated()],
            &owner,
            Err(TicketError::FeedbackAlreadyGiven),
        ),
        (
            "even after a reopen and a new close",
            vec![
                opened(IssueLevel::Normal),
                closed(),
                rated(),
                TicketEvent::TicketReopened {},
                closed(),
            ],
            &owner,
            Err(TicketError::FeedbackAlreadyGiven),
        ),
        (
            "a rated ticket reopened: already rated comes first",
            vec![
                opened(IssueLevel::Normal),
                closed(),
                rated(),
                TicketEvent::TicketReopened {},
            ],
            &owner,
            Err(TicketError::FeedbackAlreadyGiven),
        ),
        (
            "an agent may not rate",
            vec![opened(IssueLevel::Normal), closed()],
            &agent,
            Err(TicketError::Forbidden(
                "only the ticket's owner may rate it",
            )),
        ),
        (
            "nor an admin",
            vec![opened(IssueLevel::Normal), closed()],
            &admin,
            Err(TicketError::Forbidden(
                "only the ticket's owner may rate it",
            )),
        ),
        (
            "another customer is refused as for any other ticket",
            vec![opened(IssueLevel::Normal), closed()],
            &other,
            Err(TicketError::Forbidden(
                "this ticket belongs to another user",
            )),
        ),
        (
            "a missing ticket",
            vec![],
            &owner,
            Err(TicketError::TicketNotFound),
        ),
    ];
    for (name, history, by, expected) in cases {
        let ticket = Ticket::from_events(&history);
        assert_eq!(ticket.decide(&give(5), by), expected, "{name}");
    }
}

#[test]
fn breaches_are_recorded_by_the_system_once_per_period() {
    let record = |target| Command::RecordSlaBreach { target, due_at: 7 };
    let breach = |target| TicketEvent::SlaBreached { target, due_at: 7 };
    let system = system_actor();
    let cases: Vec<(&str, Vec<TicketEvent>, SlaTarget, usize)> = vec![
        (
            "first record",
            vec![opened(IssueLevel::Urgent)],
            SlaTarget::FirstResponse,
            1,
        ),
        (
            "recorded already",
            vec![opened(IssueLevel::Urgent), breach(SlaTarget::FirstResponse)],
            SlaTarget::FirstResponse,
            0,
        ),
        (
            "the other target still may be",
            vec![opened(IssueLevel::Urgent), breach(SlaTarget::FirstResponse)],
            SlaTarget::Resolution,
            1,
        ),
        (
            "a reopen starts a new resolution period",
            vec![
                opened(IssueLevel::Urgent),
                breach(SlaTarget::Resolution),
                closed(),
                TicketEvent::TicketReopened {},
            ],
            SlaTarget::Resolution,
            1,
        ),
        (
            "but not a new first-response period",
            vec![
                opened(IssueLevel::Urgent),
                breach(SlaTarget::FirstResponse),
                closed(),
                TicketEvent::TicketReopened {},
            ],
            SlaTarget::FirstResponse,
            0,
        ),
        (
            "a closed ticket may still be recorded late",
            vec![opened(IssueLevel::Urgent), closed()],
            SlaTarget::Resolution,
            1,
        ),
    ];
    for (name, history, target, count) in cases {
        let ticket = Ticket::from_events(&history);
        let events = ticket.decide(&record(target), &system).expect(name);
        assert_eq!(events.len(), count, "{name}");
    }
    let ticket = Ticket::from_events(&[opened(IssueLevel::Urgent)]);
    assert!(matches!(
        ticket.decide(
            &record(SlaTarget::Resolution),
            &actor("admin", UserRole::Admin)
        ),
        Err(TicketError::Forbidden(_))
    ));
}

const MIN: i64 = 60_000;

fn policy() -> SlaPolicy {
    // NORMAL: answer in 10 min, resolve in 60; URGENT: 5 and 30; CRITICAL: answer in 1, no
    // resolution target.
    SlaPolicy::parse(
        Some("NORMAL:10,URGENT:5,CRITICAL:1"),
        Some("NORMAL:60,URGENT:30"),
    )
    .expect("policy")
}

struct Row {
    name: &'static str,
    history: Vec<(TicketEvent, i64)>,
    now: i64,
    first_response_at: Option<i64>,
    first_response_due: Option<i64>,
    resolution_due: Option<i64>,
    missed: Vec<SlaTarget>,
    next_due: Option<i64>,
}

#[test]
fn the_clock_over_level_changes_answers_and_reopens() {
    use SlaTarget::{FirstResponse as Fr, Resolution as Res};
    let staff = |internal| posted("agent", UserRole::Agent, internal);
    let customer = posted("owner", UserRole::Customer, false);
    let level = |from, to| TicketEvent::IssueLevelChanged { from, to };
    let rows = vec![
        Row {
            name: "fresh NORMAL ticket",
            history: vec![(opened(IssueLevel::Normal), 0)],
            now: MIN,
            first_response_at: None,
            first_response_due: Some(10 * MIN),
            resolution_due: Some(60 * MIN),
            missed: vec![],
            next_due: Some(10 * MIN),
        },
        Row {
            name: "no answer past the due time",
            history: vec![(opened(IssueLevel::Normal), 0)],
            now: 11 * MIN,
            first_response_at: None,
            first_response_due: Some(10 * MIN),
            resolution_due: Some(60 * MIN),
            missed: vec![Fr],
            next_due: Some(10 * MIN),
        },
        Row {
            name: "internal notes and customer messages do not answer",
            history: vec![
                (opened(IssueLevel::Normal), 0),
                (staff(true), MIN),
                (customer.clone(), 2 * MIN),
            ],
            now: 11 * MIN,
            first_response_at: None,
            first_response_due: Some(10 * MIN),
            resolution_due: Some(60 * MIN),
            missed: vec![Fr],
            next_due: Some(10 * MIN),
        },
        Row {
            name: "answered in time: the due time stays, nothing missed",
            history: vec![(opened(IssueLevel::Normal), 0), (staff(false), 3 * MIN)],
            now: 20 * MIN,
            first_response_at: Some(3 * MIN),
            first_response_due: Some(10 * MIN),
            resolution_due: Some(60 * MIN),
            missed: vec![],
            next_due: Some(60 * MIN),
        },
        Row {
            name: "answered late is missed",
            history: vec![(opened(IssueLevel::Normal), 0), (staff(false), 12 * MIN)],
            now: 20 * MIN,
            first_response_at: Some(12 * MIN),
            first_response_due: Some(10 * MIN),
            resolution_due: Some(60 * MIN),
            missed: vec![Fr],
            next_due: Some(60 * MIN),
        },
        Row {
            name: "a level change recomputes from the opening",
            history: vec![
                (opened(IssueLevel::Normal), 0),
                (level(IssueLevel::Normal, IssueLevel::Urgent), 2 * MIN),
            ],
            now: 3 * MIN,
            first_response_at: None,
            first_response_due: Some(5 * MIN),
            resolution_due: Some(30 * MIN),
            missed: vec![],
            next_due: Some(5 * MIN),
        },
        Row {
            name: "raised to a level whose due time has passed",
            history: vec![
                (opened(IssueLevel::Normal), 0),
                (level(IssueLevel::Normal, IssueLevel::Urgent), 7 * MIN),
            ],
            now: 7 * MIN,
            first_response_at: None,
            first_response_due: Some(5 * MIN),
            resolution_due: Some(30 * MIN),
            missed: vec![Fr],
            next_due: Some(5 * MIN),
        },
        Row {
            name: "a level without a resolution target",
            history: vec![
                (opened(IssueLevel::Normal), 0),
                (level(IssueLevel::Normal, IssueLevel::Critical), MIN / 2),
            ],
            now: 90 * MIN,
            first_response_at: None,
            first_response_due: Some(MIN),
            resolution_due: None,
            missed: vec![Fr],
            next_due: Some(MIN),
        },
        Row {
            name: "closed in time",
            history: vec![
                (opened(IssueLevel::Urgent), 0),
                (staff(false), MIN),
                (closed(), 20 * MIN),
            ],
            now: 100 * MIN,
            first_response_at: Some(MIN),
            first_response_due: Some(5 * MIN),
            resolution_due: Some(30 * MIN),
            missed: vec![],
            next_due: None,
        },
        Row {
            name: "a reopen counts resolution from the reopen",
            history: vec![
                (opened(IssueLevel::Urgent), 0),
                (staff(false), MIN),
                (closed(), 20 * MIN),
                (TicketEvent::TicketReopened {}, 50 * MIN),
            ],
            now: 70 * MIN,
            first_response_at: Some(MIN),
            first_response_due: Some(5 * MIN),
            resolution_due: Some(80 * MIN),
            missed: vec![],
            next_due: Some(80 * MIN),
        },
        Row {
            name: "a reopened ticket left open past its new due time",
            history: vec![
                (opened(IssueLevel::Urgent), 0),
                (staff(false), MIN),
                (closed(), 20 * MIN),
                (TicketEvent::TicketReopened {}, 50 * MIN),
            ],
            now: 81 * MIN,
            first_response_at: Some(MIN),
            first_response_due: Some(5 * MIN),
            resolution_due: Some(80 * MIN),
            missed: vec![Res],
            next_due: Some(80 * MIN),
        },
        Row {
            name: "a level change after a reopen keeps the reopen as the start",
            history: vec![
                (opened(IssueLevel::Urgent), 0),
                (closed(), 20 * MIN),
                (TicketEvent::TicketReopened {}, 50 * MIN),
                (level(IssueLevel::Urgent, IssueLevel::Normal), 55 * MIN),
            ],
            now: 60 * MIN,
            first_response_at: None,
            first_response_due: Some(10 * MIN),
            resolution_due: Some(110 * MIN),
            missed: vec![Fr],
            next_due: Some(10 * MIN),
        },
    ];
    let policy = policy();
    for row in rows {
        let clock = SlaClock::from_events(row.history.iter().map(|(e, at)| (e, *at)));
        let name = row.name;
        assert_eq!(clock.first_response_at, row.first_response_at, "{name}");
        assert_eq!(
            clock.due_at(&policy, Fr),
            row.first_response_due,
            "{name}: first response due"
        );
        assert_eq!(
            clock.due_at(&policy, Res),
            row.resolution_due,
            "{name}: resolution due"
        );
        assert_eq!(clock.missed(&policy, row.now), row.missed, "{name}: missed");
        assert_eq!(clock.next_due(&policy), row.next_due, "{name}: next due");
        // Nothing is recorded in these histories: the sweeper would record exactly the missed.
        let unrecorded: Vec<_> = clock
            .unrecorded(&policy, row.now)
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(unrecorded, row.missed, "{name}: unrecorded");
    }
}

#[test]
fn recorded_breaches_stop_the_sweep_and_a_reopen_starts_it_again() {
    let policy = policy();
    let mut clock = SlaClock::from_events([(&opened(IssueLevel::Urgent), 0)]);
    assert_eq!(clock.sweep_at(&policy), Some(5 * MIN));
    clock.apply(
        &TicketEvent::SlaBreached {
            target: SlaTarget::FirstResponse,
            due_at: 5 * MIN,
        },
        6 * MIN,
    );
    assert_eq!(clock.breached(), vec![SlaTarget::FirstResponse]);
    assert_eq!(clock.sweep_at(&policy), Some(30 * MIN));
    assert!(clock.unrecorded(&policy, 10 * MIN).is_empty());
    // Answered late: the breach stays recorded, nothing more to sweep for it.
    clock.apply(&posted("agent", UserRole::Agent, false), 7 * MIN);
    assert_eq!(clock.breached(), vec![SlaTarget::FirstResponse]);
    clock.apply(
        &TicketEvent::SlaBreached {
            target: SlaTarget::Resolution,
            due_at: 30 * MIN,
        },
        31 * MIN,
    );
    clock.apply(&closed(), 40 * MIN);
    assert_eq!(clock.sweep_at(&policy), None);
    assert_eq!(clock.next_due(&policy), None);
    clock.apply(&TicketEvent::TicketReopened {}, 50 * MIN);
    assert_eq!(clock.breached(), vec![SlaTarget::FirstResponse]);
    assert_eq!(clock.sweep_at(&policy), Some(80 * MIN));
    // Closed late, before any sweep: still to be recorded, at its due time.
    clock.apply(&closed(), 85 * MIN);
    assert_eq!(clock.sweep_at(&policy), Some(80 * MIN));
    assert_eq!(
        clock.unrecorded(&policy, 90 * MIN),
        vec![(SlaTarget::Resolution, 80 * MIN)]
    );
    assert_eq!(clock.next_due(&policy), None);
}
