//! PKCE (RFC 7636), the `state` parameter, and authorization URLs.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::encode::{constant_time_eq, form_encode_into, Space};
use crate::secret::Secret;

/// The shortest code verifier RFC 7636 §4.1 allows.
///
/// ```
/// assert_eq!(tower_bearer::oauth2::MIN_VERIFIER_LEN, 43);
/// ```
pub const MIN_VERIFIER_LEN: usize = 43;
/// The longest code verifier RFC 7636 §4.1 allows.
///
/// ```
/// assert_eq!(tower_bearer::oauth2::MAX_VERIFIER_LEN, 128);
/// ```
pub const MAX_VERIFIER_LEN: usize = 128;
/// The length of generated verifiers: 43 characters carry 256 random bits,
/// as RFC 7636 §7.1 recommends.
///
/// ```
/// use tower_bearer::oauth2::{PkceVerifier, DEFAULT_VERIFIER_LEN};
/// assert_eq!(PkceVerifier::generate().secret().expose().len(), DEFAULT_VERIFIER_LEN);
/// ```
pub const DEFAULT_VERIFIER_LEN: usize = 43;

/// Random bytes from the operating system's CSPRNG.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// Random base64url text of exactly `len` characters (6 random bits each).
fn random_text(len: usize) -> String {
    let mut text = URL_SAFE_NO_PAD.encode(random_bytes((len * 6).div_ceil(8)));
    text.truncate(len);
    text
}

/// A PKCE code verifier (RFC 7636 §4.1): a high-entropy secret kept by the
/// client between the authorization request and the code exchange.
///
/// ```
/// use tower_bearer::oauth2::PkceVerifier;
///
/// let verifier = PkceVerifier::generate();
/// assert_eq!(verifier.secret().expose().len(), 43);
/// let challenge = verifier.challenge();
/// assert_eq!(challenge.method(), "S256");
/// assert_eq!(challenge.as_str().len(), 43);
/// assert_eq!(format!("{verifier:?}"), "PkceVerifier([redacted])");
///
/// // The RFC 7636 Appendix B example.
/// let rfc = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
/// assert_eq!(rfc.challenge().as_str(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// ```
#[derive(Clone)]
pub struct PkceVerifier(Secret);

impl PkceVerifier {
    /// A fresh verifier of [`DEFAULT_VERIFIER_LEN`] characters from the OS CSPRNG.
    ///
    /// ```
    /// let verifier = tower_bearer::oauth2::PkceVerifier::generate();
    /// assert_eq!(verifier.secret().expose().len(), 43);
    /// ```
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random numbers.
    pub fn generate() -> Self {
        Self::generate_with_len(DEFAULT_VERIFIER_LEN)
    }

    /// A fresh verifier of `len` characters.
    ///
    /// # Panics
    ///
    /// If `len` is outside 43..=128, or the OS cannot provide random numbers.
    ///
    /// ```
    /// let v = tower_bearer::oauth2::PkceVerifier::generate_with_len(128);
    /// assert_eq!(v.secret().expose().len(), 128);
    /// ```
    pub fn generate_with_len(len: usize) -> Self {
        assert!(
            (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&len),
            "a PKCE verifier has 43 to 128 characters (RFC 7636 §4.1), not {len}"
        );
        Self(Secret::new(random_text(len)))
    }

    /// A verifier kept from earlier (for example in a session while the user
    /// was at the authorization server). `None` unless it has 43–128
    /// characters from `A-Z a-z 0-9 - . _ ~`.
    ///
    /// ```
    /// use tower_bearer::oauth2::PkceVerifier;
    /// assert!(PkceVerifier::new("a".repeat(43)).is_some());
    /// assert!(PkceVerifier::new("a".repeat(342)).is_none()); // Glama's sample length
    /// assert!(PkceVerifier::new("has spaces ".repeat(5)).is_none());
    /// ```
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        let valid = (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        valid.then(|| Self(Secret::new(value)))
    }

    /// The verifier, to send with the code exchange.
    ///
    /// ```
    /// let v = tower_bearer::oauth2::PkceVerifier::generate();
    /// let to_send: &str = v.secret().expose();
    /// # let _ = to_send;
    /// ```
    pub fn secret(&self) -> &Secret {
        &self.0
    }

    /// The S256 challenge: `BASE64URL(SHA256(verifier))`.
    ///
    /// ```
    /// let v = tower_bearer::oauth2::PkceVerifier::generate();
    /// assert_eq!(v.challenge(), v.challenge());
    /// ```
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
/// assert!(!challenge.as_str().contains('='));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkceChallenge(String);

impl PkceChallenge {
    /// The challenge value (`code_challenge`).
    ///
    /// ```
    /// let c = tower_bearer::oauth2::PkceVerifier::generate().challenge();
    /// assert_eq!(c.as_str().len(), 43);
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The method (`code_challenge_method`): always `S256`.
    ///
    /// ```
    /// assert_eq!(tower_bearer::oauth2::PkceVerifier::generate().challenge().method(), "S256");
    /// ```
    pub fn method(&self) -> &'static str {
        "S256"
    }
}

/// The `state` of an authorization request: random, opaque, checked when the
/// user comes back (CSRF protection, RFC 6749 §10.12).
///
/// ```
/// use tower_bearer::oauth2::CsrfState;
///
/// let state = CsrfState::generate();
/// let echoed = state.secret().expose().to_owned();
/// assert!(state.matches(&echoed));
/// assert!(!state.matches("forged"));
/// ```
#[derive(Clone)]
pub struct CsrfState(Secret);

impl CsrfState {
    /// 128 random bits from the OS CSPRNG, base64url (22 characters).
    ///
    /// ```
    /// let s = tower_bearer::oauth2::CsrfState::generate();
    /// assert_eq!(s.secret().expose().len(), 22);
    /// ```
    pub fn generate() -> Self {
        Self(Secret::new(random_text(22)))
    }

    /// A state kept from earlier.
    ///
    /// ```
    /// let s = tower_bearer::oauth2::CsrfState::new("from-the-session");
    /// assert!(s.matches("from-the-session"));
    /// ```
    pub fn new(value: impl Into<Secret>) -> Self {
        Self(value.into())
    }

    /// The value, to put in the authorization URL.
    ///
    /// ```
    /// let s = tower_bearer::oauth2::CsrfState::new("abc");
    /// assert_eq!(s.secret().expose(), "abc");
    /// ```
    pub fn secret(&self) -> &Secret {
        &self.0
    }

    /// Whether `returned` is this state, compared in constant time.
    ///
    /// ```
    /// let s = tower_bearer::oauth2::CsrfState::new("abc");
    /// assert!(!s.matches("abd"));
    /// ```
    pub fn matches(&self, returned: &str) -> bool {
        constant_time_eq(self.0.expose().as_bytes(), returned.as_bytes())
    }
}

impl fmt::Debug for CsrfState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CsrfState").field(&self.0).finish()
    }
}

/// Builds a URL by appending form-encoded query parameters, for
/// authorization requests (standard or not).
///
/// ```
/// use tower_bearer::oauth2::AuthorizeUrl;
///
/// let url = AuthorizeUrl::new("https://glama.ai/oauth/authorize")
///     .param("callback_url", "https://app.example/cb?x=1")
///     .param("code_challenge_method", "S256")
///     .build();
/// assert_eq!(
///     url,
///     "https://glama.ai/oauth/authorize?callback_url=https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1&code_challenge_method=S256"
/// );
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthorizeUrl {
    url: String,
    has_query: bool,
}

impl AuthorizeUrl {
    /// Starts from a base URL, which may already have a query.
    ///
    /// ```
    /// use tower_bearer::oauth2::AuthorizeUrl;
    /// let url = AuthorizeUrl::new("https://a.example/auth?tenant=1").param("x", "y").build();
    /// assert_eq!(url, "https://a.example/auth?tenant=1&x=y");
    /// ```
    pub fn new(base: impl Into<String>) -> Self {
        let url = base.into();
        let has_query = url.contains('?');
        Self { url, has_query }
    }

    /// Appends `key=value`, both form-encoded.
    ///
    /// ```
    /// use tower_bearer::oauth2::AuthorizeUrl;
    /// let url = AuthorizeUrl::new("https://a.example/auth").param("scope", "a b").build();
    /// assert_eq!(url, "https://a.example/auth?scope=a+b");
    /// ```
    pub fn param(mut self, key: &str, value: &str) -> Self {
        if self.has_query {
            if !self.url.ends_with(['?', '&']) {
                self.url.push('&');
            }
        } else {
            self.url.push('?');
            self.has_query = true;
        }
        form_encode_into(&mut self.url, key, Space::Plus);
        self.url.push('=');
        form_encode_into(&mut self.url, value, Space::Plus);
        self
    }

    /// The URL.
    ///
    /// ```
    /// let url = tower_bearer::oauth2::AuthorizeUrl::new("https://a.example/auth").build();
    /// assert_eq!(url, "https://a.example/auth");
    /// ```
    pub fn build(self) -> String {
        self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_are_compliant_and_distinct() {
        for len in [MIN_VERIFIER_LEN, 64, 100, MAX_VERIFIER_LEN] {
            let v = PkceVerifier::generate_with_len(len);
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
    #[should_panic(expected = "43 to 128")]
    fn too_long_panics() {
        let _ = PkceVerifier::generate_with_len(342);
    }
}
