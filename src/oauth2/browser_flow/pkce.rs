//! PKCE (RFC 7636): the code verifier the client keeps and the challenge it
//! sends, so that a stolen authorization code is useless on its own.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::oauth2::random::random_text;
use crate::oauth2::BuildError;
use crate::secret::Secret;

/// The verifier lengths RFC 7636 §4.1 allows.
const VERIFIER_LENS: std::ops::RangeInclusive<usize> = 43..=128;

/// A PKCE code verifier (RFC 7636 §4.1): a high-entropy secret kept by the
/// client between the authorization request and the code exchange.
///
/// ```
/// use tower_bearer::oauth2::{BuildError, PkceVerifier};
///
/// let verifier = PkceVerifier::generate();
/// assert_eq!(verifier.secret().expose().len(), 43);
/// assert_eq!(format!("{verifier:?}"), "PkceVerifier([redacted])");
/// let challenge = verifier.challenge();
/// assert_eq!(challenge.method(), "S256");
///
/// // Longer verifiers, within RFC 7636's 43 to 128 characters.
/// assert_eq!(PkceVerifier::generate_with_len(128).unwrap().secret().expose().len(), 128);
/// assert_eq!(PkceVerifier::generate_with_len(342).unwrap_err(), BuildError::VerifierLength(342));
///
/// // One kept from earlier: the RFC 7636 Appendix B example.
/// let rfc = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
/// assert_eq!(rfc.challenge().as_str(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PkceVerifier(Secret);

impl PkceVerifier {
    /// A fresh verifier of 43 characters (256 random bits, as RFC 7636 §7.1
    /// recommends) from the OS CSPRNG.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random numbers.
    pub fn generate() -> Self {
        Self(Secret::new(random_text(*VERIFIER_LENS.start())))
    }

    /// A fresh verifier of `len` characters; `len` must be 43 to 128
    /// (RFC 7636 §4.1), or [`BuildError::VerifierLength`] is returned.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random numbers.
    pub fn generate_with_len(len: usize) -> Result<Self, BuildError> {
        if !VERIFIER_LENS.contains(&len) {
            return Err(BuildError::VerifierLength(len));
        }
        Ok(Self(Secret::new(random_text(len))))
    }

    /// A verifier kept from earlier (for example in a session while the user
    /// was at the authorization server). `None` unless it has 43–128
    /// characters from `A-Z a-z 0-9 - . _ ~`.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        let valid = VERIFIER_LENS.contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        valid.then(|| Self(Secret::new(value)))
    }

    /// The verifier, to send with the code exchange.
    pub fn secret(&self) -> &Secret {
        &self.0
    }

    /// The S256 challenge: `BASE64URL(SHA256(verifier))`.
    pub fn challenge(&self) -> PkceChallenge {
        let digest = Sha256::digest(self.0.expose().as_bytes());
        PkceChallenge(URL_SAFE_NO_PAD.encode(digest))
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PkceVerifier").field(&self.0).finish()
    }
}

/// The S256 code challenge derived from a [`PkceVerifier`]; public, sent in
/// the authorization URL.
///
/// ```
/// let challenge = tower_bearer::oauth2::PkceVerifier::generate().challenge();
/// assert_eq!(challenge.as_str().len(), 43);
/// assert!(!challenge.as_str().contains('='));
/// assert_eq!(challenge.method(), "S256");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkceChallenge(String);

impl PkceChallenge {
    /// The challenge value (`code_challenge`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The method (`code_challenge_method`): always `S256`.
    pub fn method(&self) -> &'static str {
        "S256"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_are_compliant_and_distinct() {
        for len in [43, 64, 100, 128] {
            let v = PkceVerifier::generate_with_len(len).unwrap();
            assert!(PkceVerifier::new(v.secret().expose()).is_some());
            assert_eq!(v.secret().expose().len(), len);
        }
        assert_ne!(
            PkceVerifier::generate().secret(),
            PkceVerifier::generate().secret()
        );
        assert!(PkceVerifier::new("short").is_none());
        assert!(PkceVerifier::new("x".repeat(342)).is_none());
    }

    #[test]
    fn lengths_outside_rfc_7636_are_refused() {
        for len in [0, 42, 129, 342] {
            assert!(matches!(
                PkceVerifier::generate_with_len(len),
                Err(BuildError::VerifierLength(l)) if l == len
            ));
        }
    }
}
