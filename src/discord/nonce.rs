//! The nonce a post carries so Discord itself drops a repeat. It belongs to the bridge's
//! idempotency (with the links and the search for unrecorded posts), not to what a post says,
//! which `ticketd_projections::discord` plans.

/// A nonce for the message posted for `event_id`: with `enforce_nonce`, Discord answers a repeat
/// within a few minutes with the first message, which covers a crash between posting and
/// recording the link. Discord takes at most 25 characters: the UUID's 128 bits in base 36.
pub fn nonce(event_id: &str) -> String {
    let value = uuid::Uuid::parse_str(event_id)
        .map(|u| u.as_u128())
        .unwrap_or_else(|_| {
            // Not a UUID (never in practice): fold the bytes instead.
            event_id.bytes().fold(0u128, |acc, b| {
                acc.wrapping_mul(131).wrapping_add(u128::from(b))
            })
        });
    let mut digits = Vec::new();
    let mut rest = value;
    loop {
        let digit = (rest % 36) as u32;
        digits.push(char::from_digit(digit, 36).unwrap_or('0'));
        rest /= 36;
        if rest == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_fit_discord_and_differ_per_event() {
        let id = "0192f0c1-7a2b-7c3d-8e4f-a1b2c3d4e5f6";
        let n = nonce(id);
        assert!(n.len() <= 25, "{n}");
        assert_eq!(n, nonce(id));
        assert_ne!(n, nonce("0192f0c1-7a2b-7c3d-8e4f-a1b2c3d4e5f7"));
    }
}
