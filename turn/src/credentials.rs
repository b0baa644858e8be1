//! TURN REST credentials (draft-uberti-behave-turn-rest-00 §2.2, the scheme coturn calls
//! `use-auth-secret`): username `expiry:user`, password base64(HMAC-SHA1(secret, username)).
//!
//! Time is an input: callers pass "now" as seconds since the Unix epoch, so issuing and checking
//! are pure functions and tests can move time freely.

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use ring::hmac;
use std::time::Duration;

/// Default lifetime of issued credentials: one hour (the draft's example TTL is one day; a lab
/// session is short, and a leaked credential should die soon).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// A username/password pair for one TURN client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCredentials {
    /// `expiry:user`, expiry in seconds since the Unix epoch.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub password: String,
    /// Seconds since the Unix epoch after which the server refuses the username.
    pub expires_at: u64,
}

/// Why a REST username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The username is not `expiry:user` with a numeric expiry.
    #[error("username {0:?} is not `expiry:user`")]
    Malformed(String),
    /// The expiry has passed.
    #[error("username {username:?} expired {ago_s} s ago")]
    Expired {
        /// The refused username.
        username: String,
        /// How long ago it expired.
        ago_s: u64,
    },
    /// The password does not match the username under the shared secret.
    #[error("wrong password for {0:?}")]
    WrongPassword(String),
}

/// Issues credentials for `user`, valid for `ttl` from `now_unix_s`.
pub fn issue(secret: &str, user: &str, now_unix_s: u64, ttl: Duration) -> RestCredentials {
    let expires_at = now_unix_s.saturating_add(ttl.as_secs());
    let username = format!("{expires_at}:{user}");
    let password = password_for(secret, &username);
    RestCredentials {
        username,
        password,
        expires_at,
    }
}

/// The password the server expects for `username`: base64(HMAC-SHA1(secret, username)).
pub fn password_for(secret: &str, username: &str) -> String {
    // SHA-1 is what the REST scheme and every TURN server (coturn included) use; it is an HMAC,
    // where SHA-1's collision weakness does not apply.
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    BASE64_STANDARD.encode(hmac::sign(&key, username.as_bytes()).as_ref())
}

/// The expiry encoded in a REST username, seconds since the Unix epoch.
pub fn expiry_of(username: &str) -> Result<u64, CredentialError> {
    // coturn accepts the timestamp before or after the separator; rtclab issues `expiry:user`
    // and accepts a bare `expiry` too (what `turn::auth::generate_long_term_credentials` makes).
    let stamp = username.split(':').next().unwrap_or_default();
    stamp
        .parse::<u64>()
        .map_err(|_| CredentialError::Malformed(username.to_owned()))
}

/// Checks that `username` is well formed and not expired at `now_unix_s`; returns the password
/// the server must expect for it.
pub fn verify_username(
    secret: &str,
    username: &str,
    now_unix_s: u64,
) -> Result<String, CredentialError> {
    let expires_at = expiry_of(username)?;
    if expires_at < now_unix_s {
        return Err(CredentialError::Expired {
            username: username.to_owned(),
            ago_s: now_unix_s - expires_at,
        });
    }
    Ok(password_for(secret, username))
}

/// Checks a whole username/password pair at `now_unix_s`.
pub fn verify(
    secret: &str,
    username: &str,
    password: &str,
    now_unix_s: u64,
) -> Result<(), CredentialError> {
    let expected = verify_username(secret, username, now_unix_s)?;
    if !constant_time_eq(expected.as_bytes(), password.as_bytes()) {
        return Err(CredentialError::WrongPassword(username.to_owned()));
    }
    Ok(())
}

/// Compares without stopping at the first difference, so the time taken does not tell how many
/// leading characters of a guessed password were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_credentials_verify_until_they_expire() {
        let c = issue("s3cret", "alice", 1_000, DEFAULT_TTL);
        assert_eq!(c.username, "4600:alice");
        assert_eq!(c.expires_at, 4600);
        assert_eq!(verify("s3cret", &c.username, &c.password, 1_000), Ok(()));
        assert_eq!(verify("s3cret", &c.username, &c.password, 4_600), Ok(()));
        assert!(matches!(
            verify("s3cret", &c.username, &c.password, 4_601),
            Err(CredentialError::Expired { ago_s: 1, .. })
        ));
    }

    #[test]
    fn wrong_secret_or_password_and_malformed_usernames_are_refused() {
        let c = issue("s3cret", "alice", 1_000, DEFAULT_TTL);
        assert!(matches!(
            verify("other", &c.username, &c.password, 1_000),
            Err(CredentialError::WrongPassword(_))
        ));
        assert!(matches!(
            verify("s3cret", "alice", &c.password, 1_000),
            Err(CredentialError::Malformed(_))
        ));
    }

    #[test]
    fn password_matches_an_independent_hmac() {
        // Computed with `echo -n 1433895918:turnuser | openssl dgst -sha1 -hmac north -binary | base64`.
        assert_eq!(
            password_for("north", "1433895918:turnuser"),
            "+EWkBV2whfsqU7GHVTngPxdVht8="
        );
    }
}
