//! What the bridge writes in Discord, as plain strings: channel names and topics, the opening
//! message, message copies and notices. Kept apart from the plan so that every piece of user text
//! goes through [`escape`] in one place: it renders as typed, with no markdown, no mention syntax
//! and no masked links. (The bridge also switches pings off per message with empty
//! `allowed_mentions`; escaping keeps `@everyone` from even looking like one.)

use ticketd_events::{IssueLevel, SupportRole, UserRole};

/// Longest Discord message content.
pub const CONTENT_MAX: usize = 2_000;
/// Longest channel topic.
const TOPIC_MAX: usize = 1_024;
/// Longest channel name.
const NAME_MAX: usize = 100;

/// Escapes every character Discord's markdown gives a meaning to, so `text` shows literally.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*'
                | '_'
                | '~'
                | '`'
                | '|'
                | '>'
                | '<'
                | '#'
                | '-'
                | '['
                | ']'
                | '('
                | ')'
                | '@'
                | ':'
                | '!'
                | '+'
                | '.'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Cuts `text` to at most `max` characters, saying so when it had to.
pub fn fit(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    const MORE: &str = "\n… (cut; the whole text is in the ticket)";
    let keep = max - MORE.chars().count();
    let mut cut: String = text.chars().take(keep).collect();
    // A cut right after an escaping backslash would escape the notice's first character.
    if cut.ends_with('\\') && !cut.ends_with("\\\\") {
        cut.pop();
    }
    cut + MORE
}

/// The channel's name: `ticket-` with a slug of the topic and the id's random tail, so two
/// tickets about the same thing still differ.
pub fn channel_name(ticket_id: &str, topic: &str) -> String {
    let tail: String = ticket_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .take(6)
        .rev()
        .collect();
    let mut slug = String::new();
    for c in topic.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.chars().take(NAME_MAX - 20).collect();
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        format!("ticket-{tail}")
    } else {
        format!("ticket-{slug}-{tail}")
    }
}

/// The topic's fixed prefix that identifies a ticket's channel, so a channel created just before
/// a crash is found again instead of created twice.
pub fn topic_marker(ticket_id: &str) -> String {
    format!("ticket {ticket_id}")
}

/// The channel's topic: the marker, then the ticket's topic.
pub fn channel_topic(ticket_id: &str, topic: &str, holder: Option<&str>) -> String {
    // The holder goes before the customer's topic, so a long topic cannot push it out.
    let held = match holder {
        Some(name) => format!("held by {name}"),
        None => "unclaimed".to_string(),
    };
    let topic: String = format!("{} · {held} · {topic}", topic_marker(ticket_id));
    topic.chars().take(TOPIC_MAX).collect()
}

/// `text` as a code block, which Discord shows verbatim (no markdown, no mentions); a backtick
/// in it is followed by a zero-width space so it cannot close the block.
pub fn code_block(text: &str, max: usize) -> String {
    let body = fit(text.replace('`', "`\u{200b}"), max.saturating_sub(8));
    format!("```\n{body}\n```")
}

/// What the opening message says.
pub struct Opening<'a> {
    /// The ticket id.
    pub ticket_id: &'a str,
    /// The opener's name.
    pub user_name: &'a str,
    /// The opener's email.
    pub user_email: &'a str,
    /// The opener's role.
    pub user_role: UserRole,
    /// What it is about.
    pub topic: &'a str,
    /// The problem.
    pub description: &'a str,
    /// Its urgency.
    pub issue_level: IssueLevel,
    /// The team it is with.
    pub support_role: SupportRole,
}

/// The opening message's content.
pub fn opening(o: &Opening<'_>) -> String {
    let head = format!(
        "**New ticket** `{}`\n**Opened by:** {} ({}) · {}\n**Level:** {} · **Team:** {}\n**Topic:** {}\n**Description:**\n",
        o.ticket_id,
        escape(o.user_name),
        escape(o.user_email),
        o.user_role,
        o.issue_level,
        o.support_role,
        escape(o.topic),
    );
    let room = CONTENT_MAX.saturating_sub(head.chars().count());
    head + &fit(escape(o.description), room)
}

/// A copy of a ticket message: the author and role in bold, the escaped text, then the
/// attachment links (which are checked http(s) links, shown as such).
pub fn message_copy(
    author_name: &str,
    author_role: UserRole,
    internal: bool,
    content: &str,
    attachments: &[String],
) -> String {
    let label = if internal {
        format!(
            "**{}** ({author_role}, internal note):",
            escape(author_name)
        )
    } else {
        format!("**{}** ({author_role}):", escape(author_name))
    };
    let mut links = String::new();
    for url in attachments {
        links.push_str("\n📎 <");
        links.push_str(&url.replace('>', "%3E"));
        links.push('>');
    }
    let room = CONTENT_MAX.saturating_sub(label.chars().count() + links.chars().count() + 1);
    format!("{label}\n{}{links}", fit(escape(content), room))
}

/// A customer's rating, for the transcript channel: their name and comment escaped.
pub fn feedback(ticket_id: &str, rating: u8, comment: Option<&str>, by: &str) -> String {
    let stars = "★".repeat(usize::from(rating.min(5)));
    let head = format!(
        "⭐ Ticket {ticket_id} rated {rating}/5 {stars} by {}",
        escape(by)
    );
    let text = match comment {
        Some(comment) => format!("{head}\n> {}", escape(comment)),
        None => head,
    };
    fit(text, CONTENT_MAX)
}

/// A one-line notice about the ticket (level change, close, reopen), naming who did it.
pub fn notice(what: &str, by: &str) -> String {
    fit(format!("ℹ️ {what} — by {}", escape(by)), CONTENT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_text_cannot_format_or_mention() {
        let text = "@everyone **bold** <@123> [x](http://evil) `code` > quote \\";
        let escaped = escape(text);
        // Every markdown or mention character comes right after an escaping backslash.
        let chars: Vec<char> = escaped.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' {
                i += 2;
                continue;
            }
            assert!(
                !"*_~`|><#-[]()@".contains(chars[i]),
                "unescaped {} in {escaped}",
                chars[i]
            );
            i += 1;
        }
        assert!(escaped.starts_with("\\@everyone \\*\\*bold"));
    }

    #[test]
    fn copies_fit_in_one_discord_message() {
        let long = "*".repeat(4_000);
        let copy = message_copy("Ann", UserRole::Customer, false, &long, &[]);
        assert!(copy.chars().count() <= CONTENT_MAX);
        assert!(copy.ends_with("in the ticket)"));
    }

    #[test]
    fn names_and_topics() {
        let id = "0192f0c1-7a2b-7c3d-8e4f-a1b2c3d4e5f6";
        assert_eq!(
            channel_name(id, "Can't log in!"),
            "ticket-can-t-log-in-d4e5f6"
        );
        assert_eq!(channel_name(id, "!!!"), "ticket-d4e5f6");
        assert!(channel_topic(id, "x", Some("Ann")).starts_with(&topic_marker(id)));
    }
}
