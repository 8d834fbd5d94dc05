//! The rules of the streams beside the tickets (ADR 0021): who may change the saved replies and
//! the blocks, and what each command decides. One table row per rule: given the stream's
//! events, when a command by an actor, then the events or the refusal.

use ticketd_events::{
    AccountCommand, Actor, Aggregate, ReplyCommand, SavedReplies, Ticket, TicketError, TicketEvent,
    UserAccount, UserRole, Via, streams,
};

fn actor(id: &str, role: UserRole) -> Actor {
    Actor {
        id: id.into(),
        name: format!("{id}-name"),
        role,
        via: Via::Web,
    }
}

fn saved(name: &str, content: &str) -> TicketEvent {
    TicketEvent::ReplySaved {
        name: name.into(),
        content: content.into(),
    }
}

fn blocked(reason: Option<&str>) -> TicketEvent {
    TicketEvent::UserBlocked {
        user_id: "ann".into(),
        reason: reason.map(str::to_string),
    }
}

fn unblocked() -> TicketEvent {
    TicketEvent::UserUnblocked {
        user_id: "ann".into(),
    }
}

fn fold<A: Aggregate>(events: &[TicketEvent]) -> A {
    let mut state = A::default();
    for event in events {
        state.apply(event);
    }
    state
}

#[test]
fn saved_replies_table() {
    let admin = actor("root", UserRole::Admin);
    let save = |name: &str, content: &str| ReplyCommand::Save {
        name: name.into(),
        content: content.into(),
    };
    let delete = |name: &str| ReplyCommand::Delete { name: name.into() };
    type Row = (
        &'static str,
        Vec<TicketEvent>,
        ReplyCommand,
        Actor,
        Result<Vec<TicketEvent>, TicketError>,
    );
    let forbidden = Err(TicketError::Forbidden(
        "only an admin may change saved replies",
    ));
    let rows: Vec<Row> = vec![
        (
            "an admin saves a new reply",
            vec![],
            save("refund", "Refunded."),
            admin.clone(),
            Ok(vec![saved("refund", "Refunded.")]),
        ),
        (
            "saving other text replaces it",
            vec![saved("refund", "Refunded.")],
            save("refund", "Sent."),
            admin.clone(),
            Ok(vec![saved("refund", "Sent.")]),
        ),
        (
            "saving the same text changes nothing",
            vec![saved("refund", "Refunded.")],
            save("refund", "Refunded."),
            admin.clone(),
            Ok(vec![]),
        ),
        (
            "an admin deletes a reply",
            vec![saved("refund", "Refunded.")],
            delete("refund"),
            admin.clone(),
            Ok(vec![TicketEvent::ReplyDeleted {
                name: "refund".into(),
            }]),
        ),
        (
            "deleting an unknown name is refused",
            vec![saved("refund", "Refunded.")],
            delete("other"),
            admin.clone(),
            Err(TicketError::ReplyNotFound),
        ),
        (
            "a deleted reply is gone",
            vec![
                saved("refund", "Refunded."),
                TicketEvent::ReplyDeleted {
                    name: "refund".into(),
                },
            ],
            delete("refund"),
            admin.clone(),
            Err(TicketError::ReplyNotFound),
        ),
        (
            "an agent may not save",
            vec![],
            save("refund", "x"),
            actor("ada", UserRole::Agent),
            forbidden.clone(),
        ),
        (
            "an agent may not delete",
            vec![saved("refund", "x")],
            delete("refund"),
            actor("ada", UserRole::Agent),
            forbidden.clone(),
        ),
        (
            "a customer may not save",
            vec![],
            save("refund", "x"),
            actor("ann", UserRole::Customer),
            forbidden,
        ),
    ];
    for (what, given, command, by, then) in rows {
        let state: SavedReplies = fold(&given);
        assert_eq!(state.decide(&command, &by), then, "{what}");
    }
}

#[test]
fn blocks_table() {
    let admin = actor("root", UserRole::Admin);
    let block = |reason: Option<&str>| AccountCommand::Block {
        user_id: "ann".into(),
        reason: reason.map(str::to_string),
    };
    let unblock = AccountCommand::Unblock {
        user_id: "ann".into(),
    };
    type Row = (
        &'static str,
        Vec<TicketEvent>,
        AccountCommand,
        Actor,
        Result<Vec<TicketEvent>, TicketError>,
    );
    let forbidden = Err(TicketError::Forbidden(
        "only an admin may block or unblock a user",
    ));
    let rows: Vec<Row> = vec![
        (
            "an admin blocks a user",
            vec![],
            block(Some("spam")),
            admin.clone(),
            Ok(vec![blocked(Some("spam"))]),
        ),
        (
            "blocking again with the same reason changes nothing",
            vec![blocked(Some("spam"))],
            block(Some("spam")),
            admin.clone(),
            Ok(vec![]),
        ),
        (
            "blocking again with another reason records it",
            vec![blocked(Some("spam"))],
            block(None),
            admin.clone(),
            Ok(vec![blocked(None)]),
        ),
        (
            "an admin unblocks a blocked user",
            vec![blocked(None)],
            unblock.clone(),
            admin.clone(),
            Ok(vec![unblocked()]),
        ),
        (
            "unblocking a user who is not blocked is refused",
            vec![],
            unblock.clone(),
            admin.clone(),
            Err(TicketError::NotBlocked),
        ),
        (
            "an unblock ends the block",
            vec![blocked(None), unblocked()],
            unblock.clone(),
            admin.clone(),
            Err(TicketError::NotBlocked),
        ),
        (
            "an agent may not block",
            vec![],
            block(None),
            actor("ada", UserRole::Agent),
            forbidden.clone(),
        ),
        (
            "an agent may not unblock",
            vec![blocked(None)],
            unblock,
            actor("ada", UserRole::Agent),
            forbidden.clone(),
        ),
        (
            "a customer may not block",
            vec![],
            block(None),
            actor("bob", UserRole::Customer),
            forbidden,
        ),
    ];
    for (what, given, command, by, then) in rows {
        let state: UserAccount = fold(&given);
        assert_eq!(state.decide(&command, &by), then, "{what}");
    }
}

#[test]
fn the_block_state_follows_the_stream() {
    let cases: [(&[TicketEvent], bool); 4] = [
        (&[], false),
        (&[blocked(None)], true),
        (&[blocked(None), unblocked()], false),
        (&[blocked(None), unblocked(), blocked(Some("again"))], true),
    ];
    for (events, expected) in cases {
        let account: UserAccount = fold(events);
        assert_eq!(account.is_blocked(), expected, "{events:?}");
        assert_eq!(account.version, events.len() as u64);
    }
}

#[test]
fn a_ticket_passes_the_other_streams_events_by() {
    // Folding them must never fail nor change a ticket: `apply` takes every stored event.
    let ticket = Ticket::from_events(&[saved("a", "b"), blocked(None), unblocked()]);
    assert!(!ticket.exists());
    for event in [saved("a", "b"), blocked(None)] {
        assert!(!event.is_ticket_event(), "{event:?}");
    }
}

#[test]
fn stream_ids_never_meet_a_ticket_id() {
    assert_eq!(streams::user("ann"), "user:ann");
    assert!(!streams::is_ticket(streams::REPLIES));
    assert!(!streams::is_ticket(&streams::user("ann")));
    assert!(streams::is_ticket("0190a000-0000-7000-8000-000000000000"));
}
