//! [`BuildError`]: a configuration refused before anything was sent.

use std::error::Error as StdError;
use std::fmt;

use crate::error::{ErrorKind, TokenError};

/// A configuration that was refused before anything was sent: a token
/// endpoint or authorization URL that cannot carry credentials safely, no
/// HTTP client, a PKCE verifier length RFC 7636 does not allow.
///
/// URLs in it are shown without user info or query.
///
/// ```
/// use tower_bearer::oauth2::{BuildError, TokenEndpoint};
///
/// let err = TokenEndpoint::builder("http://auth.example.com/token").build().unwrap_err();
/// assert!(matches!(err, BuildError::InsecureUrl { .. }));
/// assert!(err.to_string().contains("allow_insecure_http"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The URL could not be used.
    InvalidUrl {
        /// The URL as given, redacted.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// A plain `http://` URL for a host other than loopback, without
    /// [`allow_insecure_http`](super::TokenEndpointBuilder::allow_insecure_http).
    InsecureUrl {
        /// The URL as given, redacted.
        url: String,
    },
    /// No HTTP client was given and the `rustls` feature is off.
    NoHttpClient,
    /// The TLS settings of an [`HttpClientBuilder`](super::HttpClientBuilder)
    /// cannot be used: a certificate bundle or key that cannot be read, a
    /// certificate that does not fit its key, no root to trust.
    Tls(String),
    /// A proxy URL that cannot be used.
    InvalidProxy {
        /// The URL as given, redacted.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// A PKCE verifier length outside the 43 to 128 characters of RFC 7636 §4.1.
    VerifierLength(usize),
    /// A client authentication method without what it needs: `private_key_jwt`
    /// without a signing key, `client_secret_jwt` without a client secret of
    /// at least 32 bytes, either without a client id.
    MissingCredential {
        /// The method (`private_key_jwt`, `client_secret_jwt`).
        method: &'static str,
        /// What it lacks.
        needs: &'static str,
    },
    /// A JWT assertion that cannot be made as configured (no issuer, no
    /// audience, a zero lifetime, a registered claim set by hand), said why.
    InvalidAssertion(&'static str),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidUrl { url, reason } => write!(f, "invalid URL `{url}`: {reason}"),
            BuildError::InsecureUrl { url } => write!(
                f,
                "refusing plain-http URL `{url}`: use https://, a loopback host, or allow_insecure_http(true)"
            ),
            BuildError::NoHttpClient => f.write_str(
                "no HTTP client for the token endpoint: pass one with http_client() or enable the `rustls` feature",
            ),
            BuildError::Tls(reason) => write!(f, "TLS settings refused: {reason}"),
            BuildError::InvalidProxy { url, reason } => {
                write!(f, "invalid proxy URL `{url}`: {reason}")
            }
            BuildError::VerifierLength(len) => write!(
                f,
                "a PKCE verifier has 43 to 128 characters (RFC 7636 §4.1), not {len}"
            ),
            BuildError::MissingCredential { method, needs } => {
                write!(f, "client authentication `{method}` needs {needs}")
            }
            BuildError::InvalidAssertion(reason) => write!(f, "invalid JWT assertion: {reason}"),
        }
    }
}

impl StdError for BuildError {}

impl From<BuildError> for TokenError {
    fn from(err: BuildError) -> Self {
        TokenError::from_cause(ErrorKind::Permanent, err, None)
    }
}
