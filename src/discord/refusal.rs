//! The one answer to a staff action that did not go through, whichever way it came in: a slash
//! command, a button or a message in a ticket channel. Interactions show the member the reply, so
//! a refusal by the rules needs nothing more; a message gets no reply, so what it could not do is
//! logged and reported instead, except a message in a closed ticket's channel, which staff may
//! well write on purpose and which simply stays in Discord. Our own failures are always reported.

use super::Bridge;
use crate::commands::CommandError;
use ticketd_events::TicketError;
use tracing::{debug, warn};

/// How a staff action reached the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// A slash command or a button: answered with an ephemeral reply.
    Interaction,
    /// A message, an edit or a deletion: not answered.
    Message,
}

/// What the member reads when `error` stopped their action.
pub fn reply(error: &CommandError) -> String {
    match error {
        CommandError::Rejected(TicketError::TicketClosed) => "This ticket is closed.".into(),
        CommandError::Rejected(TicketError::TicketNotClosed) => "This ticket is open.".into(),
        CommandError::Rejected(TicketError::TicketNotFound) => "This ticket does not exist.".into(),
        CommandError::Rejected(e) => format!("Refused: {e}."),
        CommandError::Store(_) => "Something went wrong on our side; please try again.".into(),
    }
}

impl Bridge {
    /// Logs and reports what an operator should know about `error` on `ticket_id`, and returns
    /// the member's [`reply`].
    pub fn refuse(&self, door: Door, ticket_id: &str, error: &CommandError) -> String {
        match (door, error) {
            (Door::Interaction, CommandError::Rejected(_)) => {}
            (Door::Interaction, CommandError::Store(cause)) => {
                warn!(ticket = %ticket_id, "a staff command failed: {cause}");
                self.alerts().report(
                    "slash",
                    format_args!("a staff command on ticket {ticket_id} failed: {cause}"),
                );
            }
            (Door::Message, CommandError::Rejected(TicketError::TicketClosed)) => {
                debug!(
                    ticket = ticket_id,
                    "a message in a closed ticket's channel stays in Discord"
                );
            }
            (Door::Message, e) => {
                warn!(
                    ticket = ticket_id,
                    "a Discord message did not reach the ticket: {e}"
                );
                self.alerts().report(
                    "gateway",
                    format_args!("a staff message did not reach ticket {ticket_id}: {e}"),
                );
            }
        }
        reply(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ticketd_events::StoreError;

    #[test]
    fn members_read_why_in_words_of_the_ticket() {
        let cases = [
            (
                CommandError::Rejected(TicketError::TicketClosed),
                "This ticket is closed.",
            ),
            (
                CommandError::Rejected(TicketError::TicketNotClosed),
                "This ticket is open.",
            ),
            (
                CommandError::Rejected(TicketError::TicketNotFound),
                "This ticket does not exist.",
            ),
            (
                CommandError::Store(StoreError::Unavailable("disk".into())),
                "Something went wrong on our side; please try again.",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(reply(&error), text, "{error:?}");
        }
    }
}
