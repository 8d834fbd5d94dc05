//! Given events, when a command, then events or a refusal: one table row per rule of the ticket.

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
fn owner() -> Actor {
    actor("owner", UserRole::Customer)
}
fn stranger() -> Actor {
    actor("stranger", UserRole::TempUser)
}
fn agent() -> Actor {
    actor("agent", UserRole::Agent)
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
fn posted(id: &str, by: &Actor, internal: bool) -> TicketEvent {
    TicketEvent::MessagePosted {
        message_id: id.into(),
        author_id: by.id.clone(),
        author_name: by.name.clone(),
        author_role: by.role,
        content: "hello".into(),
        attachments: vec![],
        internal,
    }
}
fn post(id: &str, internal: bool) -> Command {
    Command::PostMessage {
        message_id: id.into(),
        content: "hello".into(),
        attachments: vec![],
        internal,
    }
}
fn edit(id: &str, content: &str) -> Command {
    Command::EditMessage {
        message_id: id.into(),
        content: content.into(),
        attachments: None,
    }
}
fn closed() -> TicketEvent {
    TicketEvent::TicketClosed { reason: None }
}

type Outcome = Result<Vec<TicketEvent>, TicketError>;
/// One row of the rules table: name, given events, actor, command, and the expected outcome.
type Case = (
    &'static str,
    Vec<TicketEvent>,
    Actor,
    Command,
    Box<dyn Fn(&Outcome) -> bool>,
);

fn given_when(given: &[TicketEvent], by: &Actor, command: Command) -> Outcome {
    Ticket::from_events(given).decide(&command, by)
}

#[test]
fn rules_table() {
    let forbidden = |r: &Outcome| matches!(r, Err(TicketError::Forbidden(_)));
    let cases: Vec<Case> = vec![
        (
            "anyone opens a new ticket, routed GENERAL / NORMAL",
            vec![],
            owner(),
            Command::OpenTicket {
                topic: "t".into(),
                description: "d".into(),
                email: "o@example.com".into(),
            },
            Box::new(|r| *r == Ok(vec![opened()])),
        ),
        (
            "a ticket opens once",
            vec![opened()],
            owner(),
            Command::OpenTicket {
                topic: "t".into(),
                description: "d".into(),
                email: "e".into(),
            },
            Box::new(|r| *r == Err(TicketError::TicketAlreadyExists)),
        ),
        (
            "nothing but open works on an empty stream",
            vec![],
            agent(),
            post("m1", false),
            Box::new(|r| *r == Err(TicketError::TicketNotFound)),
        ),
        (
            "the owner posts",
            vec![opened()],
            owner(),
            post("m1", false),
            Box::new(|r| *r == Ok(vec![posted("m1", &owner(), false)])),
        ),
        (
            "a retried post of a message already there decides nothing",
            vec![opened(), posted("m1", &owner(), false)],
            owner(),
            post("m1", false),
            Box::new(|r| *r == Ok(vec![])),
        ),
        (
            "a retried post of a message deleted since does not bring it back",
            vec![
                opened(),
                posted("m1", &owner(), false),
                TicketEvent::MessageDeleted {
                    message_id: "m1".into(),
                },
            ],
            owner(),
            post("m1", false),
            Box::new(|r| *r == Err(TicketError::MessageNotFound)),
        ),
        (
            "a stranger may not post",
            vec![opened()],
            stranger(),
            post("m1", false),
            Box::new(forbidden),
        ),
        (
            "staff post to any ticket",
            vec![opened()],
            agent(),
            post("m1", false),
            Box::new(|r| *r == Ok(vec![posted("m1", &agent(), false)])),
        ),
        (
            "staff post internal notes",
            vec![opened()],
            agent(),
            post("n1", true),
            Box::new(|r| *r == Ok(vec![posted("n1", &agent(), true)])),
        ),
        (
            "customers may not post internal notes",
            vec![opened()],
            owner(),
            post("n1", true),
            Box::new(forbidden),
        ),
        (
            "nobody posts to a closed ticket",
            vec![opened(), closed()],
            agent(),
            post("m1", false),
            Box::new(|r| *r == Err(TicketError::TicketClosed)),
        ),
        (
            "a retried post with the same message id decides nothing",
            vec![opened(), posted("m1", &owner(), false)],
            owner(),
            post("m1", false),
            Box::new(|r| *r == Ok(vec![])),
        ),
        (
            "a retried post stays accepted after the ticket closed",
            vec![opened(), posted("m1", &owner(), false), closed()],
            owner(),
            post("m1", false),
            Box::new(|r| *r == Ok(vec![])),
        ),
        (
            "the author edits",
            vec![opened(), posted("m1", &owner(), false)],
            owner(),
            edit("m1", "better"),
            Box::new(|r| {
                *r == Ok(vec![TicketEvent::MessageEdited {
                    message_id: "m1".into(),
                    content: "better".into(),
                    attachments: None,
                }])
            }),
        ),
        (
            "an edit to the same text decides nothing",
            vec![opened(), posted("m1", &owner(), false)],
            owner(),
            edit("m1", "hello"),
            Box::new(|r| *r == Ok(vec![])),
        ),
        (
            "staff edit anyone's message",
            vec![opened(), posted("m1", &owner(), false)],
            agent(),
            edit("m1", "fixed"),
            Box::new(|r| matches!(r, Ok(e) if e.len() == 1)),
        ),
        (
            "the owner may not edit staff's message",
            vec![opened(), posted("m1", &agent(), false)],
            owner(),
            edit("m1", "mine now"),
            Box::new(forbidden),
        ),
        (
            "an internal note does not exist for the customer",
            vec![opened(), posted("n1", &agent(), true)],
            owner(),
            Command::DeleteMessage {
                message_id: "n1".into(),
            },
            Box::new(|r| *r == Err(TicketError::MessageNotFound)),
        ),
        (
            "unknown message",
            vec![opened()],
            agent(),
            edit("nope", "x"),
            Box::new(|r| *r == Err(TicketError::MessageNotFound)),
        ),
        (
            "the author deletes",
            vec![opened(), posted("m1", &owner(), false)],
            owner(),
            Command::DeleteMessage {
                message_id: "m1".into(),
            },
            Box::new(|r| {
                *r == Ok(vec![TicketEvent::MessageDeleted {
                    message_id: "m1".into(),
                }])
            }),
        ),
        (
            "a deleted message is gone",
            vec![
                opened(),
                posted("m1", &owner(), false),
                TicketEvent::MessageDeleted {
                    message_id: "m1".into(),
                },
            ],
            owner(),
            edit("m1", "back"),
            Box::new(|r| *r == Err(TicketError::MessageNotFound)),
        ),
        (
            "no edits on a closed ticket",
            vec![opened(), posted("m1", &owner(), false), closed()],
            owner(),
            edit("m1", "late"),
            Box::new(|r| *r == Err(TicketError::TicketClosed)),
        ),
        (
            "staff escalate",
            vec![opened()],
            agent(),
            Command::ChangeSupportRole {
                to: SupportRole::Technical,
            },
            Box::new(|r| {
                *r == Ok(vec![TicketEvent::SupportRoleChanged {
                    from: SupportRole::General,
                    to: SupportRole::Technical,
                }])
            }),
        ),
        (
            "an escalation to the same team decides nothing",
            vec![opened()],
            agent(),
            Command::ChangeSupportRole {
                to: SupportRole::General,
            },
            Box::new(|r| *r == Ok(vec![])),
        ),
        (
            "customers may not escalate",
            vec![opened()],
            owner(),
            Command::ChangeSupportRole {
                to: SupportRole::Admin,
            },
            Box::new(forbidden),
        ),
        (
            "staff change the level",
            vec![opened()],
            agent(),
            Command::ChangeIssueLevel {
                to: IssueLevel::Critical,
            },
            Box::new(|r| {
                *r == Ok(vec![TicketEvent::IssueLevelChanged {
                    from: IssueLevel::Normal,
                    to: IssueLevel::Critical,
                }])
            }),
        ),
        (
            "customers may not change the level",
            vec![opened()],
            owner(),
            Command::ChangeIssueLevel {
                to: IssueLevel::Urgent,
            },
            Box::new(forbidden),
        ),
        (
            "the owner closes with a reason",
            vec![opened()],
            owner(),
            Command::CloseTicket {
                reason: Some("solved".into()),
            },
            Box::new(|r| {
                *r == Ok(vec![TicketEvent::TicketClosed {
                    reason: Some("solved".into()),
                }])
            }),
        ),
        (
            "a stranger may not close",
            vec![opened()],
            stranger(),
            Command::CloseTicket { reason: None },
            Box::new(forbidden),
        ),
        (
            "a ticket closes once",
            vec![opened(), closed()],
            agent(),
            Command::CloseTicket { reason: None },
            Box::new(|r| *r == Err(TicketError::TicketClosed)),
        ),
        (
            "staff reopen",
            vec![opened(), closed()],
            agent(),
            Command::ReopenTicket,
            Box::new(|r| *r == Ok(vec![TicketEvent::TicketReopened {}])),
        ),
        (
            "the owner may not reopen",
            vec![opened(), closed()],
            owner(),
            Command::ReopenTicket,
            Box::new(forbidden),
        ),
        (
            "an open ticket cannot be reopened",
            vec![opened()],
            agent(),
            Command::ReopenTicket,
            Box::new(|r| *r == Err(TicketError::TicketNotClosed)),
        ),
        (
            "a reopened ticket takes messages again",
            vec![opened(), closed(), TicketEvent::TicketReopened {}],
            owner(),
            post("m2", false),
            Box::new(|r| matches!(r, Ok(e) if e.len() == 1)),
        ),
    ];
    let mut failures = Vec::new();
    for (name, given, by, command, then) in cases {
        let outcome = given_when(&given, &by, command);
        if !then(&outcome) {
            failures.push(format!("{name}: got {outcome:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "rules broken:\n{}",
        failures.join("\n")
    );
}

#[test]
fn apply_folds_versions_and_state() {
    let ticket = Ticket::from_events(&[
        opened(),
        posted("m1", &owner(), false),
        TicketEvent::IssueLevelChanged {
            from: IssueLevel::Normal,
            to: IssueLevel::Urgent,
        },
        closed(),
    ]);
    assert_eq!(ticket.version, 4);
    assert_eq!(ticket.issue_level, Some(IssueLevel::Urgent));
    assert_eq!(ticket.status, Some(ticketd_events::TicketStatus::Closed));
    assert_eq!(ticket.messages.len(), 1);
}
