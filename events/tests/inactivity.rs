//! The auto-close rules of the Ticket aggregate (ADR 0022), one table row per rule: given the
//! ticket's events, when the system warns or closes with the countdown it saw, then the events
//! or the refusal. A countdown that moved on (the customer answered, staff wrote again, the
//! ticket closed) decides nothing, which is what makes a late or repeated timer harmless.

use ticketd_events::inactivity::{CLOSE_REASON, system_actor};
use ticketd_events::{
    Actor, Command, IssueLevel, SupportRole, Ticket, TicketError, TicketEvent, UserRole, Via,
};

fn actor(id: &str, role: UserRole) -> Actor {
    Actor {
        id: id.into(),
        name: format!("{id}-name"),
        role,
        via: Via::Web,
    }
}

fn opened() -> TicketEvent {
    TicketEvent::TicketOpened {
        user_id: "owner".into(),
        user_name: "owner-name".into(),
        user_email: "o@example.com".into(),
        user_role: UserRole::Customer,
        topic: "t".into(),
        description: "d".into(),
        support_role: SupportRole::General,
        issue_level: IssueLevel::Normal,
    }
}

fn posted(id: &str, author: &Actor, internal: bool) -> TicketEvent {
    TicketEvent::MessagePosted {
        message_id: id.into(),
        author_id: author.id.clone(),
        author_name: author.name.clone(),
        author_role: author.role,
        content: "text".into(),
        attachments: vec![],
        internal,
    }
}

fn warn(awaiting: &str) -> Command {
    Command::WarnInactive {
        awaiting: awaiting.into(),
        message_id: "w1".into(),
        content: "closing soon".into(),
    }
}

fn close(awaiting: &str) -> Command {
    Command::CloseInactive {
        awaiting: awaiting.into(),
    }
}

#[test]
fn the_countdown_follows_the_conversation() {
    let agent = actor("agent", UserRole::Agent);
    let customer = actor("owner", UserRole::Customer);
    let system = system_actor();
    let cases: Vec<(&str, Vec<TicketEvent>, Option<&str>)> = vec![
        ("no messages", vec![opened()], None),
        (
            "staff answered",
            vec![opened(), posted("a1", &agent, false)],
            Some("a1"),
        ),
        (
            "a staff note starts nothing",
            vec![opened(), posted("n1", &agent, true)],
            None,
        ),
        (
            "the customer answered",
            vec![
                opened(),
                posted("a1", &agent, false),
                posted("c1", &customer, false),
            ],
            None,
        ),
        (
            "staff wrote again",
            vec![
                opened(),
                posted("a1", &agent, false),
                posted("a2", &agent, false),
            ],
            Some("a2"),
        ),
        (
            "the warning keeps the countdown",
            vec![
                opened(),
                posted("a1", &agent, false),
                posted("w1", &system, false),
            ],
            Some("a1"),
        ),
        (
            "closed",
            vec![
                opened(),
                posted("a1", &agent, false),
                TicketEvent::TicketClosed { reason: None },
            ],
            None,
        ),
        (
            "reopened: waits for staff again",
            vec![
                opened(),
                posted("a1", &agent, false),
                TicketEvent::TicketClosed { reason: None },
                TicketEvent::TicketReopened {},
            ],
            None,
        ),
    ];
    for (name, events, awaiting) in cases {
        let ticket = Ticket::from_events(&events);
        assert_eq!(ticket.awaiting.as_deref(), awaiting, "{name}");
    }
}

#[test]
fn warn_and_close_decide_only_on_the_countdown_they_saw() {
    let agent = actor("agent", UserRole::Agent);
    let customer = actor("owner", UserRole::Customer);
    let system = system_actor();
    let waiting = vec![opened(), posted("a1", &agent, false)];
    let warned = vec![
        opened(),
        posted("a1", &agent, false),
        posted("w1", &system, false),
    ];
    let answered = vec![
        opened(),
        posted("a1", &agent, false),
        posted("c1", &customer, false),
    ];
    let closing = TicketEvent::TicketClosed {
        reason: Some(CLOSE_REASON.into()),
    };
    let closed = vec![opened(), posted("a1", &agent, false), closing.clone()];
    let warning = TicketEvent::MessagePosted {
        message_id: "w1".into(),
        author_id: "system".into(),
        author_name: "system".into(),
        author_role: UserRole::Admin,
        content: "closing soon".into(),
        attachments: vec![],
        internal: false,
    };
    type Case<'a> = (
        &'a str,
        &'a [TicketEvent],
        Command,
        Actor,
        Result<Vec<TicketEvent>, TicketError>,
    );
    let cases: Vec<Case> = vec![
        (
            "warn a waiting ticket",
            &waiting,
            warn("a1"),
            system.clone(),
            Ok(vec![warning]),
        ),
        (
            "warn twice: once",
            &warned,
            warn("a1"),
            system.clone(),
            Ok(vec![]),
        ),
        (
            "warn after the answer",
            &answered,
            warn("a1"),
            system.clone(),
            Err(TicketError::CountdownMoved),
        ),
        (
            "warn for an older staff message",
            &waiting,
            warn("a0"),
            system.clone(),
            Err(TicketError::CountdownMoved),
        ),
        (
            "close a warned ticket",
            &warned,
            close("a1"),
            system.clone(),
            Ok(vec![closing.clone()]),
        ),
        (
            "close after the answer",
            &answered,
            close("a1"),
            system.clone(),
            Err(TicketError::CountdownMoved),
        ),
        (
            "close twice: once",
            &closed,
            close("a1"),
            system.clone(),
            Err(TicketError::TicketClosed),
        ),
        (
            "staff may not close as the system",
            &warned,
            close("a1"),
            actor("system", UserRole::Admin),
            Err(TicketError::Forbidden(
                "only ticketd itself closes inactive tickets",
            )),
        ),
        (
            "nor warn as it",
            &waiting,
            warn("a1"),
            agent.clone(),
            Err(TicketError::Forbidden(
                "only ticketd itself closes inactive tickets",
            )),
        ),
    ];
    for (name, events, command, actor, expected) in cases {
        let ticket = Ticket::from_events(events);
        assert_eq!(ticket.decide(&command, &actor), expected, "{name}");
    }
}
