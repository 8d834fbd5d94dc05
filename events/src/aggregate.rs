//! What every aggregate offers the executor: fold events in, decide a command into events.
//! Tickets, saved replies and users are each one, so one executor loop (load, decide, append
//! at the expected version, retry a lost race) serves every stream.

use crate::envelope::Actor;
use crate::error::TicketError;
use crate::event::TicketEvent;

/// A stream's decision state.
pub trait Aggregate: Default + Send {
    /// What may be asked of it.
    type Command: Sync;

    /// Events folded in so far: the expected version of the next append.
    fn version(&self) -> u64;

    /// Folds one event in; never fails and never checks a rule.
    fn apply(&mut self, event: &TicketEvent);

    /// Decides a command into events; an empty list means nothing changes.
    fn decide(
        &self,
        command: &Self::Command,
        actor: &Actor,
    ) -> Result<Vec<TicketEvent>, TicketError>;
}
