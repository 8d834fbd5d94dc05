//! Who is calling. Partner backends sign HS256 JWTs with the shared secret; we only verify them
//! and read the user from the claims. Any other algorithm, `none` included, is refused, and the
//! token itself is never logged.

use crate::config::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use ticketd_events::{Actor, UserRole, Via};

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The partner's user id.
    pub id: String,
    /// Display name.
    pub username: String,
    /// A valid email address.
    pub email: String,
    /// One of the four roles.
    pub role: UserRole,
    /// `exp`, epoch seconds, when the token has one; sockets end their authorization then.
    pub expires_at: Option<u64>,
}

impl Principal {
    /// The actor this caller is when a command arrives through `via`.
    pub fn actor(&self, via: Via) -> Actor {
        Actor {
            id: self.id.clone(),
            name: self.username.clone(),
            role: self.role,
            via,
        }
    }
    /// Staff see every ticket.
    pub fn is_staff(&self) -> bool {
        self.role.is_staff()
    }

    /// Whether the token is still valid at `now` (epoch seconds).
    fn is_current(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|exp| now < exp)
    }
}

/// Why a token was refused; the text is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header (or no token on a socket).
    #[error("Missing bearer token")]
    Missing,
    /// Signature, algorithm, format or time checks failed.
    #[error("Invalid token: {0}")]
    Invalid(&'static str),
    /// The signature is fine but a claim is missing or wrong.
    #[error("Invalid token claim `{0}`")]
    BadClaim(&'static str),
}

#[derive(Debug, Deserialize)]
struct RawClaims {
    id: Option<serde_json::Value>,
    username: Option<serde_json::Value>,
    email: Option<serde_json::Value>,
    role: Option<serde_json::Value>,
    exp: Option<u64>,
}

/// Claims as minted by `ticketd token`.
#[derive(Debug, Serialize)]
struct MintClaims<'a> {
    id: &'a str,
    username: &'a str,
    email: &'a str,
    role: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

/// Verifies tokens with one precomputed key.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// Tokens already verified, by their exact text: a client sends the same token with every
    /// request, and checking it again (base64, JSON, HMAC) costs more than the lookup. An entry
    /// is only used while its `exp` has not passed; then the token is checked in full again.
    verified: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Principal>>>,
}

/// Verified tokens remembered at most; the memory is dropped and refilled when full.
const VERIFIED_CAPACITY: usize = 10_000;

/// Longest token taken, in bytes. Partner tokens carry five short claims (a few hundred bytes);
/// anything far larger is refused before it is decoded or remembered.
pub const TOKEN_MAX_BYTES: usize = 8 * 1024;

impl Verifier {
    /// A verifier for `secret`; HS256 only, `exp` and `nbf` checked when present.
    pub fn new(secret: &Secret) -> Self {
        crate::hs256::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        Verifier {
            key: DecodingKey::from_secret(secret.expose()),
            validation,
            verified: Default::default(),
        }
    }

    /// The caller a token names, if it is genuine, current and complete; answered from the
    /// tokens already verified when it is one of them and has not expired.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        {
            let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(principal) = verified.get(token).filter(|p| p.is_current(now)) {
                return Ok(principal.clone());
            }
        }
        let principal = self.verify_in_full(token, now)?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(token.to_string(), principal.clone());
        Ok(principal)
    }

    /// Checks size, shape, signature, algorithm, times and claims. The token is taken exactly
    /// as sent: one with spaces around it is not the token that was signed.
    fn verify_in_full(&self, token: &str, now: u64) -> Result<Principal, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > TOKEN_MAX_BYTES {
            return Err(AuthError::Invalid("token is longer than 8 KiB"));
        }
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(AuthError::Invalid("malformed token"));
        }
        let data =
            jsonwebtoken::decode::<RawClaims>(token, &self.key, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Invalid("token has expired"),
                    ErrorKind::ImmatureSignature => AuthError::Invalid("token is not valid yet"),
                    ErrorKind::InvalidAlgorithm => {
                        AuthError::Invalid("only HS256 tokens are accepted")
                    }
                    ErrorKind::InvalidSignature => AuthError::Invalid("signature does not match"),
                    _ => AuthError::Invalid("malformed token"),
                }
            })?;
        // RFC 7519 4.1.4: the current time must be before `exp`; the library also takes the
        // second `exp` names itself.
        if data.claims.exp.is_some_and(|exp| now >= exp) {
            return Err(AuthError::Invalid("token has expired"));
        }
        let claims = data.claims;
        let text = |value: Option<serde_json::Value>, name: &'static str| match value {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => Ok(s),
            _ => Err(AuthError::BadClaim(name)),
        };
        let id = text(claims.id, "id")?;
        let username = text(claims.username, "username")?;
        let email = text(claims.email, "email")?;
        if !is_email(&email) {
            return Err(AuthError::BadClaim("email"));
        }
        let role = text(claims.role, "role")?
            .parse::<UserRole>()
            .map_err(|_| AuthError::BadClaim("role"))?;
        Ok(Principal {
            id,
            username,
            email,
            role,
            expires_at: claims.exp,
        })
    }
}

/// Signs a token for `ticketd token`, the way a partner backend would.
pub fn mint(
    secret: &Secret,
    id: &str,
    username: &str,
    email: &str,
    role: UserRole,
    ttl_seconds: Option<u64>,
) -> Result<String, jsonwebtoken::errors::Error> {
    crate::hs256::install();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = MintClaims {
        id,
        username,
        email,
        role: role.as_str(),
        iat: now,
        exp: ttl_seconds.map(|ttl| now + ttl),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose()),
    )
}

/// An address RFC 5321/5322 allows, checked by a maintained parser, with a dotted domain name
/// (no bare host names, no IP literals) and no display text around it.
pub fn is_email(email: &str) -> bool {
    let options = email_address::Options::default()
        .with_minimum_sub_domains(2)
        .without_domain_literal()
        .without_display_text();
    // RFC 5321 4.5.3.1.3: a path holds at most 256 octets, the angle brackets included.
    email.len() <= 254 && email_address::EmailAddress::parse_with_options(email, options).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn secret() -> Secret {
        crate::hs256::install();
        Secret::new("0123456789abcdef0123456789abcdef")
    }

    fn b64(value: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn minted_tokens_verify() {
        let token = mint(
            &secret(),
            "u1",
            "Ann",
            "ann@example.com",
            UserRole::Customer,
            Some(60),
        )
        .unwrap();
        let p = Verifier::new(&secret()).verify(&token).unwrap();
        assert_eq!((p.id.as_str(), p.role), ("u1", UserRole::Customer));
        assert!(p.expires_at.is_some());
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let v = Verifier::new(&secret());
        let token = mint(
            &secret(),
            "u1",
            "Ann",
            "ann@example.com",
            UserRole::Customer,
            Some(1),
        )
        .unwrap();
        assert!(v.verify(&token).is_ok());
        assert!(
            v.verify(&token).is_ok(),
            "the second check is answered from memory"
        );
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        assert_eq!(
            v.verify(&token),
            Err(AuthError::Invalid("token has expired"))
        );
    }

    #[test]
    fn wrong_secret_alg_none_and_expired_are_refused() {
        let v = Verifier::new(&secret());
        let other = mint(
            &Secret::new("another-secret-another-secret-xx"),
            "u1",
            "A",
            "a@b.co",
            UserRole::Admin,
            None,
        )
        .unwrap();
        assert_eq!(
            v.verify(&other),
            Err(AuthError::Invalid("signature does not match"))
        );
        let claims =
            serde_json::json!({"id": "u1", "username": "A", "email": "a@b.co", "role": "ADMIN"});
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(&claims)
        );
        assert!(matches!(v.verify(&none), Err(AuthError::Invalid(_))));
        // Signed by hand: the provider ticketd installs signs HS256 only.
        let signing_input = format!(
            "{}.{}",
            b64(&serde_json::json!({"alg": "HS512", "typ": "JWT"})),
            b64(&claims)
        );
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA512, secret().expose()),
            signing_input.as_bytes(),
        );
        let hs512 = format!(
            "{signing_input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        );
        assert_eq!(
            v.verify(&hs512),
            Err(AuthError::Invalid("only HS256 tokens are accepted"))
        );
        let expired = serde_json::json!({"id": "u1", "username": "A", "email": "a@b.co", "role": "ADMIN", "exp": 1000});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(secret().expose()),
        )
        .unwrap();
        assert_eq!(
            v.verify(&token),
            Err(AuthError::Invalid("token has expired"))
        );
    }

    #[test]
    fn claims_are_checked() {
        let v = Verifier::new(&secret());
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret().expose()),
            )
            .unwrap()
        };
        let cases = [
            (
                serde_json::json!({"username": "A", "email": "a@b.co", "role": "ADMIN"}),
                "id",
            ),
            (
                serde_json::json!({"id": 5, "username": "A", "email": "a@b.co", "role": "ADMIN"}),
                "id",
            ),
            (
                serde_json::json!({"id": "u", "username": "A", "email": "not-an-email", "role": "ADMIN"}),
                "email",
            ),
            (
                serde_json::json!({"id": "u", "username": "A", "email": "a@b.co", "role": "ROOT"}),
                "role",
            ),
        ];
        for (claims, claim) in cases {
            assert_eq!(v.verify(&sign(claims)), Err(AuthError::BadClaim(claim)));
        }
    }

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o'brien@example.ie",
            "\"quoted local\"@example.com",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@@b.co",
            "a b@c.co",
            "a@.co",
            "a@b..co",
            "<script>@x.io",
            "a..b@x.io",
            ".a@x.io",
            "a.@x.io",
            "a@x.io>",
            "a\"b@x.io",
            "Ann <a@x.io>",
            "a@[127.0.0.1]",
            "a@-x.io",
            "a@x.io\n",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(!is_email(&format!("{}@example.com", "a".repeat(65))));
    }

    fn sign(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret().expose()),
        )
        .unwrap()
    }

    #[test]
    fn a_token_expires_at_the_second_its_exp_names() {
        let v = Verifier::new(&secret());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = |exp: u64| serde_json::json!({"id": "u", "username": "A", "email": "a@b.co", "role": "ADMIN", "exp": exp});
        assert_eq!(
            v.verify_in_full(&sign(claims(now)), now),
            Err(AuthError::Invalid("token has expired"))
        );
        assert!(v.verify_in_full(&sign(claims(now + 1)), now).is_ok());
    }

    #[test]
    fn tokens_are_taken_exactly_as_sent_and_bounded() {
        let v = Verifier::new(&secret());
        let token = sign(
            serde_json::json!({"id": "u", "username": "A", "email": "a@b.co", "role": "ADMIN"}),
        );
        assert!(v.verify(&token).is_ok());
        for padded in [
            format!(" {token}"),
            format!("{token} "),
            format!("{token}\n"),
            format!("\t{token}"),
        ] {
            assert_eq!(
                v.verify(&padded),
                Err(AuthError::Invalid("malformed token")),
                "{padded:?}"
            );
        }
        let huge = sign(serde_json::json!({
            "id": "u", "username": "A", "email": "a@b.co", "role": "ADMIN",
            "pad": "x".repeat(TOKEN_MAX_BYTES),
        }));
        assert_eq!(
            v.verify(&huge),
            Err(AuthError::Invalid("token is longer than 8 KiB"))
        );
    }
}
