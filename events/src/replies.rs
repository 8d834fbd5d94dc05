//! The saved replies: one stream ([`crate::streams::REPLIES`]) of the texts the support team
//! reuses. Admins keep them; as events, every change to them stays in the audit trail.

use crate::aggregate::Aggregate;
use crate::envelope::Actor;
use crate::error::TicketError;
use crate::event::TicketEvent;
use crate::roles::UserRole;
use std::collections::BTreeMap;

/// A request to change the saved replies. Names and texts are validated by the door (the
/// stored form: a lower-case name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyCommand {
    /// Create a reply, or replace its text.
    Save {
        /// Its name, lower-case.
        name: String,
        /// Its text.
        content: String,
    },
    /// Remove a reply.
    Delete {
        /// Its name, lower-case.
        name: String,
    },
}

/// The saved replies as their rules see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedReplies {
    /// Events folded in.
    pub version: u64,
    /// Every reply's text, by name: saving the same text again decides nothing.
    pub replies: BTreeMap<String, String>,
}

impl Aggregate for SavedReplies {
    type Command = ReplyCommand;

    fn version(&self) -> u64 {
        self.version
    }

    fn apply(&mut self, event: &TicketEvent) {
        self.version += 1;
        match event {
            TicketEvent::ReplySaved { name, content } => {
                self.replies.insert(name.clone(), content.clone());
            }
            TicketEvent::ReplyDeleted { name } => {
                self.replies.remove(name);
            }
            _ => {}
        }
    }

    fn decide(
        &self,
        command: &ReplyCommand,
        actor: &Actor,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        if actor.role != UserRole::Admin {
            return Err(TicketError::Forbidden(
                "only an admin may change saved replies",
            ));
        }
        match command {
            ReplyCommand::Save { name, content } => {
                if self.replies.get(name) == Some(content) {
                    return Ok(vec![]);
                }
                Ok(vec![TicketEvent::ReplySaved {
                    name: name.clone(),
                    content: content.clone(),
                }])
            }
            ReplyCommand::Delete { name } => {
                if !self.replies.contains_key(name) {
                    return Err(TicketError::ReplyNotFound);
                }
                Ok(vec![TicketEvent::ReplyDeleted { name: name.clone() }])
            }
        }
    }
}
