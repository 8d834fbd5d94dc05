//! Who may claim, release, assign and tag a ticket: one table row per rule, given the ticket's
//! events, when a command by an actor, then the events or the refusal.

use ticketd_events::limits::normalize_tags;
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
fn customer() -> Actor {
    actor("owner", UserRole::Customer)
}
fn agent() -> Actor {
    actor("agent", UserRole::Agent)
}
fn other_agent() -> Actor {
    actor("other", UserRole::Agent)
}
fn admin() -> Actor {
    actor("admin", UserRole::Admin)
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
fn held_by(who: &Actor) -> TicketEvent {
    TicketEvent::AssigneeChanged {
        from: None,
        to: Some(who.id.clone()),
        to_name: Some(who.name.clone()),
    }
}
fn closed() -> TicketEvent {
    TicketEvent::TicketClosed { reason: None }
}
fn claim(by: &Actor) -> Command {
    Command::Claim {
        assignee_id: by.id.clone(),
        assignee_name: by.name.clone(),
    }
}
fn assign(to: Option<&str>) -> Command {
    Command::Assign {
        assignee_id: to.map(str::to_string),
        assignee_name: to.map(|id| format!("{id}-name")),
    }
}
fn change(from: Option<&str>, to: Option<&str>) -> TicketEvent {
    TicketEvent::AssigneeChanged {
        from: from.map(str::to_string),
        to: to.map(str::to_string),
        to_name: to.map(|id| format!("{id}-name")),
    }
}

type Row = (
    &'static str,
    Vec<TicketEvent>,
    Command,
    Actor,
    Result<Vec<TicketEvent>, TicketError>,
);

fn forbidden(why: &'static str) -> Result<Vec<TicketEvent>, TicketError> {
    Err(TicketError::Forbidden(why))
}

#[test]
fn claim_unclaim_and_assign_follow_the_table() {
    let a = agent();
    let rows: Vec<Row> = vec![
        (
            "an agent claims an unassigned ticket",
            vec![opened()],
            claim(&a),
            a.clone(),
            Ok(vec![change(None, Some("agent"))]),
        ),
        (
            "claiming it again changes nothing",
            vec![opened(), held_by(&a)],
            claim(&a),
            a.clone(),
            Ok(vec![]),
        ),
        (
            "another agent cannot take it",
            vec![opened(), held_by(&a)],
            claim(&other_agent()),
            other_agent(),
            Err(TicketError::HeldByAnother {
                by: "agent-name".into(),
            }),
        ),
        (
            "an admin takes it over",
            vec![opened(), held_by(&a)],
            claim(&admin()),
            admin(),
            Ok(vec![change(Some("agent"), Some("admin"))]),
        ),
        (
            "a customer cannot claim",
            vec![opened()],
            claim(&customer()),
            customer(),
            forbidden("only staff may claim a ticket"),
        ),
        (
            "a closed ticket cannot be claimed",
            vec![opened(), closed()],
            claim(&a),
            a.clone(),
            Err(TicketError::TicketClosed),
        ),
        (
            "the holder releases it",
            vec![opened(), held_by(&a)],
            Command::Unclaim,
            a.clone(),
            Ok(vec![change(Some("agent"), None)]),
        ),
        (
            "releasing an unassigned ticket changes nothing",
            vec![opened()],
            Command::Unclaim,
            a.clone(),
            Ok(vec![]),
        ),
        (
            "another agent cannot release it",
            vec![opened(), held_by(&a)],
            Command::Unclaim,
            other_agent(),
            forbidden("only the ticket's holder or an admin may release it"),
        ),
        (
            "an admin releases anyone's",
            vec![opened(), held_by(&a)],
            Command::Unclaim,
            admin(),
            Ok(vec![change(Some("agent"), None)]),
        ),
        (
            "a customer cannot release",
            vec![opened(), held_by(&a)],
            Command::Unclaim,
            customer(),
            forbidden("only staff may release a ticket"),
        ),
        (
            "an agent assigns an unassigned ticket to someone",
            vec![opened()],
            assign(Some("zoe")),
            a.clone(),
            Ok(vec![change(None, Some("zoe"))]),
        ),
        (
            "an agent hands their ticket on",
            vec![opened(), held_by(&a)],
            assign(Some("zoe")),
            a.clone(),
            Ok(vec![change(Some("agent"), Some("zoe"))]),
        ),
        (
            "an agent cannot reassign another's ticket",
            vec![opened(), held_by(&other_agent())],
            assign(Some("agent")),
            a.clone(),
            forbidden("an agent may assign a ticket only while it is unassigned or theirs"),
        ),
        (
            "an admin reassigns any ticket",
            vec![opened(), held_by(&other_agent())],
            assign(Some("zoe")),
            admin(),
            Ok(vec![change(Some("other"), Some("zoe"))]),
        ),
        (
            "assigning to nobody releases it",
            vec![opened(), held_by(&a)],
            assign(None),
            a.clone(),
            Ok(vec![change(Some("agent"), None)]),
        ),
        (
            "assigning to the holder changes nothing",
            vec![opened(), held_by(&a)],
            assign(Some("agent")),
            a.clone(),
            Ok(vec![]),
        ),
        (
            "a customer cannot assign",
            vec![opened()],
            assign(Some("agent")),
            customer(),
            forbidden("only staff may assign a ticket"),
        ),
        (
            "a closed ticket cannot be assigned",
            vec![opened(), closed()],
            assign(Some("zoe")),
            admin(),
            Err(TicketError::TicketClosed),
        ),
    ];
    for (name, given, command, by, then) in rows {
        let ticket = Ticket::from_events(&given);
        assert_eq!(ticket.decide(&command, &by), then, "{name}");
    }
}

#[test]
fn tags_are_staff_only_and_replace_the_set() {
    let tags = |t: &[&str]| Command::SetTags {
        tags: t.iter().map(|s| s.to_string()).collect(),
    };
    let given = vec![opened()];
    let ticket = Ticket::from_events(&given);
    assert_eq!(
        ticket.decide(&tags(&["billing"]), &agent()),
        Ok(vec![TicketEvent::TagsChanged {
            tags: vec!["billing".into()]
        }])
    );
    assert_eq!(
        ticket.decide(&tags(&["billing"]), &customer()),
        Err(TicketError::Forbidden("only staff may tag a ticket"))
    );
    let tagged = Ticket::from_events(&[
        opened(),
        TicketEvent::TagsChanged {
            tags: vec!["billing".into()],
        },
        closed(),
    ]);
    assert_eq!(
        tagged.decide(&tags(&["billing"]), &agent()),
        Ok(vec![]),
        "the same tags change nothing"
    );
    assert_eq!(
        tagged.decide(&tags(&[]), &agent()),
        Ok(vec![TicketEvent::TagsChanged { tags: vec![] }]),
        "a closed ticket can still be tagged, and untagged"
    );
}

#[test]
fn tags_are_validated_and_normalized() {
    assert_eq!(
        normalize_tags(["VIP", "billing", "vip", "a-b_c9"]),
        Some(vec!["vip".into(), "billing".into(), "a-b_c9".into()]),
        "lower-case, order kept, a repeat kept once at its first place"
    );
    for bad in [
        "",
        "has space",
        "café",
        "x".repeat(33).as_str(),
        "a/b",
        "ünï",
    ] {
        assert_eq!(normalize_tags([bad]), None, "{bad:?} is not a tag");
    }
    assert!(normalize_tags(["x".repeat(32).as_str()]).is_some());
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    assert_eq!(normalize_tags(eleven.iter().map(String::as_str)), None);
}
