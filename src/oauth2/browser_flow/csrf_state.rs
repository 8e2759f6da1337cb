//! The `state` of an authorization request: the nonce that ties the user's
//! return to the request this client made (CSRF protection, RFC 6749 §10.12).

use std::fmt;

use crate::oauth2::random::random_text;
use crate::secret::Secret;

/// The `state` of an authorization request: random, opaque, checked when the
/// user comes back. `Debug` shows it as `[redacted]`.
///
/// ```
/// use tower_bearer::oauth2::CsrfState;
///
/// let state = CsrfState::generate();
/// assert_eq!(state.secret().expose().len(), 22);
/// let echoed = state.secret().expose().to_owned();
/// assert!(state.matches(&echoed));
/// assert!(!state.matches("forged"));
/// // An empty state protects nothing: it never matches.
/// assert!(!CsrfState::new("").matches(""));
///
/// // One kept from earlier, in a session.
/// assert!(CsrfState::new("from-the-session").matches("from-the-session"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfState(Secret);

impl CsrfState {
    /// 128 random bits from the OS CSPRNG, base64url (22 characters).
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random numbers.
    pub fn generate() -> Self {
        Self(Secret::new(random_text(22)))
    }

    /// A state kept from earlier.
    pub fn new(value: impl Into<Secret>) -> Self {
        Self(value.into())
    }

    /// The value, to put in the authorization URL.
    pub fn secret(&self) -> &Secret {
        &self.0
    }

    /// Whether `returned` is this state, compared in constant time. An
    /// empty state matches nothing: a session that lost its state must not
    /// accept a callback that sends none.
    pub fn matches(&self, returned: &str) -> bool {
        let expected = self.0.expose();
        !expected.is_empty() && constant_time_eq(expected.as_bytes(), returned.as_bytes())
    }
}

impl fmt::Debug for CsrfState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CsrfState").field(&self.0).finish()
    }
}

/// Compares two strings in time that depends only on their lengths, so that
/// a forged `state` cannot be guessed byte by byte from response times.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
