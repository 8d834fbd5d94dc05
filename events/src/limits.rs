//! The size limits of customer input, shared by every door (REST, socket, Discord) so they agree.

/// Longest topic, in characters.
pub const TOPIC_MAX: usize = 200;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 5_000;
/// Longest message, in characters.
pub const MESSAGE_MAX: usize = 4_000;
/// Longest close reason, in characters.
pub const REASON_MAX: usize = 1_000;
/// Most attachment links on one message.
pub const ATTACHMENTS_MAX: usize = 10;
/// Longest attachment link, in characters.
pub const ATTACHMENT_URL_MAX: usize = 2_048;
/// Most tags on one ticket.
pub const TAGS_MAX: usize = 10;
/// Longest tag (and saved-reply name), in characters.
pub const TAG_MAX: usize = 32;
/// Longest saved reply, in characters (a reply becomes a message).
pub const REPLY_MAX: usize = MESSAGE_MAX;
/// Longest block reason, in characters.
pub const BLOCK_REASON_MAX: usize = REASON_MAX;
/// Longest user id a block may name, in characters (a token's `id` is at most 256 bytes).
pub const USER_ID_MAX: usize = 256;
/// Longest assignee id, in characters.
pub const ASSIGNEE_ID_MAX: usize = 128;

/// The ratings a customer may give a closed ticket.
pub const RATING: std::ops::RangeInclusive<u8> = 1..=5;
/// Longest feedback comment, in characters.
pub const FEEDBACK_COMMENT_MAX: usize = 1_000;

/// Whether `tag` is 1–[`TAG_MAX`] ASCII letters, digits, `-` and `_`.
pub fn is_tag(tag: &str) -> bool {
    (1..=TAG_MAX).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Tags as stored: lower-case, each kept once at its first place. `None` if one is not a tag
/// ([`is_tag`]) or more than [`TAGS_MAX`] remain.
pub fn normalize_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        if !is_tag(tag) {
            return None;
        }
        let tag = tag.to_ascii_lowercase();
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    (out.len() <= TAGS_MAX).then_some(out)
}

/// Whether `url` is an absolute http(s) link with a well-formed host (an ASCII name — IDNs in
/// their `xn--` form — or an IPv4 address), an optional numeric port, no user info, and no
/// whitespace or control characters. Clients render these links, so a half-formed authority such
/// as `http://[` must not pass for one. Bracketed IPv6 literals are refused too: telling a valid
/// one from `[:]` needs a full address parser, and common URL parsers (Python's among them)
/// throw on the invalid ones, so a client reading our answers could break on them.
pub fn is_http_url(url: &str) -> bool {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    url.chars().all(|c| !c.is_whitespace() && !c.is_control()) && is_authority(authority)
}

/// `host[:port]` as [`is_http_url`] accepts it.
fn is_authority(authority: &str) -> bool {
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    !host.is_empty()
        && !host.starts_with(['.', '-'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%'))
        && port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::is_http_url;

    #[test]
    fn only_absolute_http_links_with_a_host_pass() {
        for ok in [
            "http://example.com/a.png",
            "https://cdn.example.com:8443/x?y=1#z",
            "http://127.0.0.1/x",
            "https://xn--bcher-kva.example/",
        ] {
            assert!(is_http_url(ok), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "ftp://example.com/x",
            "https://",
            "https:///path",
            "https://user@evil.example/",
            "https://exa mple.com/",
            "data:text/html,hi",
            "//example.com/x",
            "http://[",
            "http://[]/",
            "http://[:]/",
            "http://[::1]:5000/hook",
            "http://[2001:db8::7]/",
            "http://[::1/x",
            "http://[::1]x/",
            "http://[evil.example]/",
            "http://example.com:/",
            "http://example.com:80a/",
            "http://example.com:123456/",
            "http://:80/",
            "http://exa<mple.com/",
            "http://.example.com/",
            "https://bücher.example/",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }
}
