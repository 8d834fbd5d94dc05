//! Tamper evidence: every stored event carries a SHA-256 `hash` over a canonical encoding of its
//! envelope that includes the hash of the previous event of its stream (`prev_hash`), and a
//! `global_hash` chained over the global order. Changing, dropping, adding or moving a stored
//! event breaks a chain from that event on. The definition lives here, in the pure domain crate,
//! so that every store computes and every verifier checks exactly the same bytes (ADR 0009).
//!
//! The canonical encoding is the compact JSON array
//!
//! ```text
//! [schema_version, event_id, stream_id, correlation_id, causation_id, actor, type, event,
//!  version, position, recorded_at, prev_hash]
//! ```
//!
//! where strings are JSON strings as `serde_json` escapes them, numbers are JSON integers, and
//! `actor` and `event` are the JSON texts the store keeps (`actor` is `{"id","name","role","via"}`,
//! `event` is the tagged `{"type": ..., "data": ...}`), embedded byte for byte rather than
//! re-serialized, so a hash keeps verifying after an event shape gains a defaulted field. The
//! fields a caller knows before the store places the event come first, so their part of the
//! hash can be absorbed off the writer's thread ([`PendingHash`]); the writer only adds the
//! place, the time and the predecessor.
//!
//! `hash = hex(SHA-256(canonical))`, `global_hash = hex(SHA-256(previous global_hash ‖ hash))`
//! over the ASCII hex digits, with the empty string before the first event (of the stream for
//! `prev_hash`, of the store for `global_hash`).

use crate::envelope::EventEnvelope;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The parts of an event's canonical encoding known before the store places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashedFields<'a> {
    /// The envelope format version.
    pub schema_version: u32,
    /// The event's id.
    pub event_id: &'a str,
    /// Its stream (ticket id).
    pub stream_id: &'a str,
    /// Its correlation id.
    pub correlation_id: &'a str,
    /// Its causation id.
    pub causation_id: &'a str,
    /// The actor's JSON text, as stored.
    pub actor_json: &'a str,
    /// The event's type name.
    pub event_type: &'a str,
    /// The tagged event's JSON text (`{"type": ..., "data": ...}`), as stored.
    pub event_json: &'a str,
}

/// Where the store put an event, and what came before it in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement<'a> {
    /// Its stream version.
    pub version: u64,
    /// Its global position.
    pub position: u64,
    /// When it was recorded, epoch ms.
    pub recorded_at: i64,
    /// The hash of the stream's previous event; empty for version 1.
    pub prev_hash: &'a str,
}

/// The canonical encoding of an event, as hashed.
pub fn canonical(fields: &HashedFields<'_>, placement: &Placement<'_>) -> String {
    let mut text = prefix(fields);
    text.push_str(&suffix(placement));
    text
}

/// The event's `hash`.
pub fn event_hash(fields: &HashedFields<'_>, placement: &Placement<'_>) -> String {
    PendingHash::new(fields).finish(placement)
}

/// The `global_hash` of an event whose `hash` is `hash`, after an event whose global hash was
/// `previous_global` (empty before the first event of the store).
pub fn global_hash(previous_global: &str, hash: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(previous_global.as_bytes());
    digest.update(hash.as_bytes());
    hex(&digest.finalize())
}

/// The hash of an event with its first fields absorbed, waiting for its placement: computed on
/// the caller's task so a store's single writer only hashes the short tail.
#[derive(Debug, Clone)]
pub struct PendingHash(Sha256);

impl PendingHash {
    /// Absorbs the fields known before the event is placed.
    pub fn new(fields: &HashedFields<'_>) -> Self {
        let mut digest = Sha256::new();
        digest.update(prefix(fields).as_bytes());
        PendingHash(digest)
    }

    /// The event's `hash` once placed.
    pub fn finish(&self, placement: &Placement<'_>) -> String {
        let mut digest = self.0.clone();
        digest.update(suffix(placement).as_bytes());
        hex(&digest.finalize())
    }
}

/// Recomputes an envelope's `hash` by serializing its actor and event again. Equal to the stored
/// hash as long as the event's shape has not changed since it was written; verifiers of a store
/// hash the stored JSON texts instead (see the module header).
pub fn envelope_hash(envelope: &EventEnvelope) -> String {
    // Serializing these derived types cannot fail: no maps with non-string keys, no floats.
    let actor_json = serde_json::to_string(&envelope.actor).unwrap_or_default();
    let event_json = serde_json::to_string(&envelope.event).unwrap_or_default();
    event_hash(
        &HashedFields {
            schema_version: envelope.schema_version,
            event_id: &envelope.event_id,
            stream_id: &envelope.stream_id,
            correlation_id: &envelope.correlation_id,
            causation_id: &envelope.causation_id,
            actor_json: &actor_json,
            event_type: envelope.event.type_name(),
            event_json: &event_json,
        },
        &Placement {
            version: envelope.version,
            position: envelope.position,
            recorded_at: envelope.recorded_at,
            prev_hash: &envelope.prev_hash,
        },
    )
}

fn prefix(fields: &HashedFields<'_>) -> String {
    let mut text =
        String::with_capacity(96 + fields.actor_json.len() + fields.event_json.len() + 4 * 40);
    text.push('[');
    let _ = write!(text, "{},", fields.schema_version);
    for value in [
        fields.event_id,
        fields.stream_id,
        fields.correlation_id,
        fields.causation_id,
    ] {
        push_string(&mut text, value);
        text.push(',');
    }
    text.push_str(fields.actor_json);
    text.push(',');
    push_string(&mut text, fields.event_type);
    text.push(',');
    text.push_str(fields.event_json);
    text.push(',');
    text
}

fn suffix(placement: &Placement<'_>) -> String {
    let mut text = format!(
        "{},{},{},",
        placement.version, placement.position, placement.recorded_at
    );
    push_string(&mut text, placement.prev_hash);
    text.push(']');
    text
}

fn push_string(text: &mut String, value: &str) {
    // Serializing a string cannot fail.
    text.push_str(&serde_json::to_string(value).unwrap_or_default());
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Actor, Via};
    use crate::event::TicketEvent;
    use crate::roles::UserRole;

    fn fields() -> HashedFields<'static> {
        HashedFields {
            schema_version: 1,
            event_id: "e1",
            stream_id: "t1",
            correlation_id: "c1",
            causation_id: "c\"2",
            actor_json: r#"{"id":"u1","name":"Ann","role":"CUSTOMER","via":"web"}"#,
            event_type: "TicketClosed",
            event_json: r#"{"type":"TicketClosed","data":{}}"#,
        }
    }

    fn placement(prev_hash: &str) -> Placement<'_> {
        Placement {
            version: 2,
            position: 7,
            recorded_at: 1_700_000_000_000,
            prev_hash,
        }
    }

    #[test]
    fn the_canonical_encoding_is_pinned() {
        assert_eq!(
            canonical(&fields(), &placement("ab")),
            r#"[1,"e1","t1","c1","c\"2",{"id":"u1","name":"Ann","role":"CUSTOMER","via":"web"},"TicketClosed",{"type":"TicketClosed","data":{}},2,7,1700000000000,"ab"]"#
        );
    }

    #[test]
    fn hashes_are_sha256_of_the_canonical_text_in_lowercase_hex() {
        let hash = event_hash(&fields(), &placement(""));
        let mut digest = Sha256::new();
        digest.update(canonical(&fields(), &placement("")).as_bytes());
        assert_eq!(hash, hex(&digest.finalize()));
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // SHA-256 of the empty string, pinning the digest and the hex form.
        assert_eq!(
            global_hash("", ""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_pending_hash_finishes_to_the_same_hash_for_any_placement() {
        let pending = PendingHash::new(&fields());
        for prev in ["", "00", "ff"] {
            assert_eq!(
                pending.finish(&placement(prev)),
                event_hash(&fields(), &placement(prev))
            );
        }
    }

    #[test]
    fn every_field_and_the_predecessor_change_the_hash() {
        let base = event_hash(&fields(), &placement(""));
        let changed = [
            HashedFields {
                event_id: "e2",
                ..fields()
            },
            HashedFields {
                stream_id: "t2",
                ..fields()
            },
            HashedFields {
                schema_version: 2,
                ..fields()
            },
            HashedFields {
                actor_json: r#"{"id":"u2","name":"Ann","role":"CUSTOMER","via":"web"}"#,
                ..fields()
            },
            HashedFields {
                event_json: r#"{"type":"TicketClosed","data":{"reason":"x"}}"#,
                ..fields()
            },
        ];
        for f in changed {
            assert_ne!(event_hash(&f, &placement("")), base, "{f:?}");
        }
        assert_ne!(event_hash(&fields(), &placement("00")), base);
        let moved = Placement {
            position: 8,
            ..placement("")
        };
        assert_ne!(event_hash(&fields(), &moved), base);
        assert_ne!(global_hash("a", &base), global_hash("b", &base));
    }

    #[test]
    fn an_envelope_hashes_like_its_stored_texts() {
        let envelope = EventEnvelope {
            event_id: "e1".into(),
            stream_id: "t1".into(),
            version: 2,
            position: 7,
            recorded_at: 1_700_000_000_000,
            actor: Actor {
                id: "u1".into(),
                name: "Ann".into(),
                role: UserRole::Customer,
                via: Via::Web,
            },
            correlation_id: "c1".into(),
            causation_id: "c\"2".into(),
            schema_version: 1,
            event: TicketEvent::TicketClosed { reason: None },
            prev_hash: "ab".into(),
            hash: String::new(),
            global_hash: String::new(),
        };
        assert_eq!(
            envelope_hash(&envelope),
            event_hash(&fields(), &placement("ab"))
        );
    }
}
