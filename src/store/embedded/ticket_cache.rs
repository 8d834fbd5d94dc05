//! Tickets kept in memory for `get_ticket`, the hottest read: every request on a ticket looks
//! it up. Only the writer changes tickets, so it forgets the ones a batch changed before it
//! answers that batch (read-your-writes holds), and a reader only keeps a row it read if no
//! ticket changed while it was reading (the generation), so a stale row is never kept.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use ticketd_projections::TicketView;

/// Rows kept at most; the memory is dropped and refilled when full.
const CAPACITY: usize = 50_000;

/// The cache and the count of ticket changes it has seen.
#[derive(Default)]
pub(super) struct TicketCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    tickets: HashMap<String, TicketView>,
}

impl TicketCache {
    /// The kept row, if any; and the generation to hand back to [`TicketCache::keep`].
    pub(super) fn get(&self, ticket_id: &str) -> (Option<TicketView>, u64) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (inner.tickets.get(ticket_id).cloned(), inner.generation)
    }

    /// Keeps a row read from the database, unless a ticket changed since `generation`.
    pub(super) fn keep(&self, generation: u64, ticket: &TicketView) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.generation != generation {
            return;
        }
        if inner.tickets.len() >= CAPACITY {
            inner.tickets.clear();
        }
        inner.tickets.insert(ticket.id.clone(), ticket.clone());
    }

    /// Forgets tickets the writer just changed; called after their commit, before the answer.
    pub(super) fn forget<'a>(&self, ticket_ids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.generation += 1;
        for id in ticket_ids {
            inner.tickets.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketd_events::{IssueLevel, SupportRole, TicketStatus, UserRole};

    fn ticket(status: TicketStatus) -> TicketView {
        TicketView {
            id: "t1".into(),
            user_id: "u1".into(),
            topic: "t".into(),
            description: "d".into(),
            status,
            created_at: 1,
            updated_at: 1,
            user_role: UserRole::Customer,
            support_role: SupportRole::General,
            issue_level: IssueLevel::Normal,
            assignee_id: None,
            assignee_name: None,
            tags: Some(vec![]),
            position: 1,
            countdown: None,
            feedback: None,
            first_response_at: None,
            sla: None,
            sla_facts: Default::default(),
        }
    }

    #[test]
    fn a_row_read_across_a_change_is_not_kept() {
        let cache = TicketCache::default();
        let (_, before) = cache.get("t1");
        cache.forget(["t1"]);
        cache.keep(before, &ticket(TicketStatus::Open));
        assert_eq!(cache.get("t1").0, None, "the row may predate the change");
        let (_, now) = cache.get("t1");
        cache.keep(now, &ticket(TicketStatus::Closed));
        assert_eq!(
            cache.get("t1").0.map(|t| t.status),
            Some(TicketStatus::Closed)
        );
        cache.forget(["t1"]);
        assert_eq!(cache.get("t1").0, None, "a changed ticket is forgotten");
    }
}
