//! A user's own stream (`user:<id>`, [`crate::streams::user`]): whether they are blocked. A
//! blocked user's opens, posts and edits are refused where commands are executed, which reads
//! this state first (ADR 0021).

use crate::aggregate::Aggregate;
use crate::envelope::Actor;
use crate::error::TicketError;
use crate::event::TicketEvent;
use crate::roles::UserRole;

/// Why a blocked user is refused; one text for every door.
pub const BLOCKED: &str = "you are blocked from opening tickets and writing messages";

/// A request about one user. The user is the stream; the id travels along for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Block the user (or change the reason of their block).
    Block {
        /// Whom.
        user_id: String,
        /// Why, optionally (≤ 1,000 characters).
        reason: Option<String>,
    },
    /// Lift the user's block.
    Unblock {
        /// Whom.
        user_id: String,
    },
}

/// A user as the rules see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAccount {
    /// Events folded in.
    pub version: u64,
    /// `Some(reason)` while blocked.
    pub blocked: Option<Option<String>>,
}

impl UserAccount {
    /// Whether the user may not open tickets nor write.
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }
}

impl Aggregate for UserAccount {
    type Command = AccountCommand;

    fn version(&self) -> u64 {
        self.version
    }

    fn apply(&mut self, event: &TicketEvent) {
        self.version += 1;
        match event {
            TicketEvent::UserBlocked { reason, .. } => self.blocked = Some(reason.clone()),
            TicketEvent::UserUnblocked { .. } => self.blocked = None,
            _ => {}
        }
    }

    fn decide(
        &self,
        command: &AccountCommand,
        actor: &Actor,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        if actor.role != UserRole::Admin {
            return Err(TicketError::Forbidden(
                "only an admin may block or unblock a user",
            ));
        }
        match command {
            AccountCommand::Block { user_id, reason } => {
                if self.blocked.as_ref() == Some(reason) {
                    return Ok(vec![]);
                }
                Ok(vec![TicketEvent::UserBlocked {
                    user_id: user_id.clone(),
                    reason: reason.clone(),
                }])
            }
            AccountCommand::Unblock { user_id } => {
                if !self.is_blocked() {
                    return Err(TicketError::NotBlocked);
                }
                Ok(vec![TicketEvent::UserUnblocked {
                    user_id: user_id.clone(),
                }])
            }
        }
    }
}
