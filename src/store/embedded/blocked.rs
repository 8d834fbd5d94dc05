//! The blocked users, held in memory beside the blocks table (ADR 0021). Every customer's open,
//! post and edit asks whether its author is blocked; reading the user's stream for that cost a
//! quarter of the posts a second. The writer thread is the only one that commits, so a set it
//! updates after each commit (before anyone is answered) is as exact as the table.

use std::collections::HashSet;
use std::sync::RwLock;
use ticketd_events::{EventEnvelope, TicketEvent};

/// The ids of the users blocked as of the last commit.
#[derive(Debug, Default)]
pub(super) struct BlockedUsers {
    users: RwLock<HashSet<String>>,
}

impl BlockedUsers {
    /// The set as the blocks table holds it.
    pub(super) fn new(users: impl IntoIterator<Item = String>) -> Self {
        BlockedUsers {
            users: RwLock::new(users.into_iter().collect()),
        }
    }

    /// Whether `user_id` is blocked.
    pub(super) fn contains(&self, user_id: &str) -> bool {
        // A poisoned lock only means a panic elsewhere held it; the set itself is whole.
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.contains(user_id)
    }

    /// Follows committed events: blocks and unblocks change the set, nothing else does.
    pub(super) fn follow<'a>(&self, events: impl IntoIterator<Item = &'a EventEnvelope>) {
        for envelope in events {
            match &envelope.event {
                TicketEvent::UserBlocked { user_id, .. } => {
                    self.write().insert(user_id.clone());
                }
                TicketEvent::UserUnblocked { user_id } => {
                    self.write().remove(user_id);
                }
                _ => {}
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<String>> {
        self.users.write().unwrap_or_else(|e| e.into_inner())
    }
}
