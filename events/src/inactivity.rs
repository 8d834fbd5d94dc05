//! The rules of the auto-close of inactive tickets (issue 15, ADR 0022), without a clock: who the
//! system is, which message a countdown runs from, and what is due at a given instant. The task
//! that acts on them (`ticketd::autoclose`) supplies the time.

use crate::envelope::{Actor, Via};
use crate::roles::UserRole;

/// The id, and the name, the system acts under; no token can carry it in practice, and the
/// rules check [`Via::System`] as well, so a partner user named `system` gains nothing.
pub const SYSTEM_ID: &str = "system";

/// Why the system closes a ticket; shown in the timeline and the ticket's events.
pub const CLOSE_REASON: &str = "inactive";

/// The system as an actor. ADMIN, because closing a ticket one does not own is a staff power
/// and the system has no support team of its own.
pub fn system_actor() -> Actor {
    Actor {
        id: SYSTEM_ID.into(),
        name: SYSTEM_ID.into(),
        role: UserRole::Admin,
        via: Via::System,
    }
}

/// Whether `actor` is the system (both its id and its door).
pub fn is_system(actor: &Actor) -> bool {
    actor.via == Via::System && actor.id == SYSTEM_ID
}

/// What a message does to a ticket's countdown: a public staff message starts it anew, a public
/// customer message stops it, the system's own warning and internal notes leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountdownEffect {
    /// The countdown (re)starts from this message.
    Start,
    /// The customer answered: no countdown.
    Stop,
    /// The system's warning was posted.
    Warned,
    /// No change.
    None,
}

/// The effect of a message by `author_id` in `author_role`.
pub fn message_effect(author_id: &str, author_role: UserRole, internal: bool) -> CountdownEffect {
    if internal {
        CountdownEffect::None
    } else if author_id == SYSTEM_ID {
        CountdownEffect::Warned
    } else if author_role.is_staff() {
        CountdownEffect::Start
    } else {
        CountdownEffect::Stop
    }
}

/// What the auto-close task should do for one waiting ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet.
    Nothing,
    /// Post the warning.
    Warn,
    /// Close the ticket.
    Close,
}

/// What is due at `now` for a countdown started at `since` and warned at `warned_at` (epoch ms),
/// closing `after_ms` after `since` with the warning `warning_ms` before. A warning that comes
/// late (the server was down) still gives the customer the whole `warning_ms` before the close.
pub fn due(since: i64, warned_at: Option<i64>, after_ms: i64, warning_ms: i64, now: i64) -> Due {
    let close_at = since.saturating_add(after_ms);
    match warned_at {
        None if now >= close_at.saturating_sub(warning_ms) => Due::Warn,
        None => Due::Nothing,
        Some(warned) if now >= close_at.max(warned.saturating_add(warning_ms)) => Due::Close,
        Some(_) => Due::Nothing,
    }
}

/// The earliest countdown start that may have something due at `now`: a due-time scan reads
/// only countdowns started at or before it.
pub fn scan_horizon(after_ms: i64, warning_ms: i64, now: i64) -> i64 {
    now.saturating_sub(after_ms.saturating_sub(warning_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_table() {
        // Close after 100, warn 20 before: the warning at 80, the close at 100.
        let cases = [
            ("fresh", 0, None, 10, Due::Nothing),
            ("just before the warning", 0, None, 79, Due::Nothing),
            ("at the warning", 0, None, 80, Due::Warn),
            ("late, never warned: warn first", 0, None, 500, Due::Warn),
            ("warned on time, not yet", 0, Some(80), 99, Due::Nothing),
            ("warned on time, due", 0, Some(80), 100, Due::Close),
            (
                "warned late: a full warning still",
                0,
                Some(500),
                519,
                Due::Nothing,
            ),
            ("warned late, then due", 0, Some(500), 520, Due::Close),
            ("a later start", 1_000, None, 1_079, Due::Nothing),
            (
                "a later start, warned",
                1_000,
                Some(1_080),
                1_100,
                Due::Close,
            ),
        ];
        for (name, since, warned, now, expected) in cases {
            assert_eq!(due(since, warned, 100, 20, now), expected, "{name}");
        }
    }

    #[test]
    fn the_scan_horizon_covers_every_due_countdown() {
        for since in [0, 40, 80, 81, 200] {
            let horizon = scan_horizon(100, 20, 80);
            let anything_due = due(since, None, 100, 20, 80) != Due::Nothing;
            assert_eq!(since <= horizon, anything_due, "since {since}");
        }
    }

    #[test]
    fn message_effects() {
        let cases = [
            (
                "staff reply",
                "a1",
                UserRole::Agent,
                false,
                CountdownEffect::Start,
            ),
            (
                "admin reply",
                "a2",
                UserRole::Admin,
                false,
                CountdownEffect::Start,
            ),
            (
                "staff note",
                "a1",
                UserRole::Agent,
                true,
                CountdownEffect::None,
            ),
            (
                "customer",
                "u1",
                UserRole::Customer,
                false,
                CountdownEffect::Stop,
            ),
            (
                "guest",
                "g1",
                UserRole::TempUser,
                false,
                CountdownEffect::Stop,
            ),
            (
                "warning",
                SYSTEM_ID,
                UserRole::Admin,
                false,
                CountdownEffect::Warned,
            ),
        ];
        for (name, author, role, internal, expected) in cases {
            assert_eq!(message_effect(author, role, internal), expected, "{name}");
        }
    }

    #[test]
    fn only_the_system_door_is_the_system() {
        assert!(is_system(&system_actor()));
        let impostor = Actor {
            via: Via::Web,
            ..system_actor()
        };
        assert!(!is_system(&impostor));
    }
}
