//! The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`
//! under the key carried, base64 encoded, after `whsec_` in `WEBHOOK_SECRET`. Partners verify it
//! with any Standard Webhooks library, so this must match the specification byte for byte (the
//! unit test below reproduces its published vector).

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use ring::hmac;
use std::fmt;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest key accepted, in bytes: the specification asks for 24 to 64.
pub const MIN_KEY_BYTES: usize = 24;

/// Standard base64 whether or not the secret kept its padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The HMAC key; never printed.
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(redacted)")
    }
}

impl SigningKey {
    /// Reads a `whsec_…` secret. The error says what is wrong without repeating the value.
    pub fn from_secret(secret: &str) -> Result<Self, String> {
        let Some(encoded) = secret.trim().strip_prefix(SECRET_PREFIX) else {
            return Err(format!(
                "expected a Standard Webhooks secret: {SECRET_PREFIX} followed by base64"
            ));
        };
        let key = LENIENT
            .decode(encoded)
            .map_err(|_| format!("the part after {SECRET_PREFIX} is not valid base64"))?;
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the key after {SECRET_PREFIX} decodes to {} bytes; at least {MIN_KEY_BYTES} are needed",
                key.len()
            ));
        }
        Ok(SigningKey(hmac::Key::new(hmac::HMAC_SHA256, &key)))
    }

    /// The `webhook-signature` header's value for message `id` sent at `timestamp` (unix
    /// seconds) with `body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_specification_test_vector() {
        // The vector published with the Standard Webhooks reference libraries.
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            key.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn every_part_is_signed() {
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let base = key.sign("id", 1, b"{}");
        assert_ne!(base, key.sign("id2", 1, b"{}"));
        assert_ne!(base, key.sign("id", 2, b"{}"));
        assert_ne!(base, key.sign("id", 1, b"{ }"));
    }

    #[test]
    fn refuses_malformed_secrets_without_echoing_them() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_not base64!!",
            "whsec_c2hvcnQ=",
        ] {
            let err = SigningKey::from_secret(bad).unwrap_err();
            assert!(
                !err.contains(bad.trim_start_matches("whsec_")) || bad == "whsec_",
                "{err}"
            );
        }
        assert!(SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(
            format!(
                "{:?}",
                SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
            )
            .contains("redacted")
        );
    }
}
