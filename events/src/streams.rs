//! The ids of the streams that live beside the tickets' (ADR 0021). Ticket streams are named by
//! UUIDs, so these names can never meet one.

/// The one stream of the saved replies.
pub const REPLIES: &str = "replies";

/// What every user's stream id starts with.
pub const USER_PREFIX: &str = "user:";

/// The stream of user `user_id`: where their blocks are.
pub fn user(user_id: &str) -> String {
    format!("{USER_PREFIX}{user_id}")
}

/// Whether `stream_id` is a ticket's stream rather than one beside them.
pub fn is_ticket(stream_id: &str) -> bool {
    stream_id != REPLIES && !stream_id.starts_with(USER_PREFIX)
}
