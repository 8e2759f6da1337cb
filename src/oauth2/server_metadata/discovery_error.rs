//! [`DiscoveryError`]: why an authorization server's metadata could not be had.

use std::error::Error as StdError;
use std::fmt;

use crate::error::{ErrorKind, TokenError};
use crate::oauth2::build_error::BuildError;
use crate::oauth2::endpoint::exchange_error::ExchangeError;

/// Why an authorization server's metadata (RFC 8414, OpenID Connect
/// Discovery) could not be had from [`Discovery`](crate::oauth2::Discovery):
/// the issuer URL or the document was refused, or fetching it failed.
///
/// Anything the server sent is made safe to print before it is kept.
///
/// ```
/// use tower_bearer::oauth2::{Discovery, DiscoveryError};
///
/// // RFC 8414 §3.3: the document must name the issuer it was asked for.
/// let err = Discovery::new("https://idp.example")
///     .parse(br#"{"issuer":"https://evil.example","token_endpoint":"https://evil.example/token"}"#)
///     .unwrap_err();
/// assert!(matches!(err, DiscoveryError::IssuerMismatch { ref found, .. } if found == "https://evil.example"));
/// assert!(err.is_permanent());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer URL can't be used (not `https://`, a query or fragment,
    /// RFC 8414 §2), or there is no HTTP client.
    Build(BuildError),
    /// Fetching a document failed: timeout, transport, a response too large,
    /// a status other than success or "not here" (4xx).
    Fetch(ExchangeError),
    /// No well-known location had a document (each answered 4xx).
    NotFound {
        /// The URLs asked, in order.
        tried: Vec<String>,
    },
    /// The document names another issuer than the one asked for
    /// (RFC 8414 §3.3): it must not be used, or an attacker's endpoints
    /// would stand in for the real ones.
    IssuerMismatch {
        /// The issuer asked for.
        expected: String,
        /// The `issuer` in the document, made safe to print.
        found: String,
    },
    /// The document is not valid metadata (not a JSON object, no
    /// `token_endpoint`, a field of the wrong type).
    InvalidDocument(String),
    /// An endpoint in the document can't be used (`http://` to a host that
    /// is not loopback, not a URL).
    InvalidEndpoint {
        /// The metadata field (`token_endpoint`, `authorization_endpoint`).
        field: &'static str,
        /// Why not.
        error: BuildError,
    },
    /// The document has no such endpoint, and it is needed
    /// (`authorization_endpoint` for the authorization-code flow).
    MissingEndpoint(&'static str),
}

impl DiscoveryError {
    /// Transient when fetching failed in a way that may pass (timeouts,
    /// transport errors, 5xx, 429); permanent otherwise.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DiscoveryError::Fetch(err) => err.kind(),
            _ => ErrorKind::Permanent,
        }
    }

    /// `true` if retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        self.kind() == ErrorKind::Permanent
    }
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("authorization server discovery failed: ")?;
        match self {
            DiscoveryError::Build(err) => fmt::Display::fmt(err, f),
            DiscoveryError::Fetch(err) => fmt::Display::fmt(err, f),
            DiscoveryError::NotFound { tried } => {
                write!(f, "no metadata document at {}", tried.join(", "))
            }
            DiscoveryError::IssuerMismatch { expected, found } => write!(
                f,
                "the metadata names issuer `{found}`, not `{expected}` (RFC 8414 §3.3); it was not used"
            ),
            DiscoveryError::InvalidDocument(reason) => write!(f, "invalid metadata: {reason}"),
            DiscoveryError::InvalidEndpoint { field, error } => write!(f, "`{field}`: {error}"),
            DiscoveryError::MissingEndpoint(field) => {
                write!(f, "the metadata has no `{field}`")
            }
        }
    }
}

impl StdError for DiscoveryError {
    // The crate's rule: `Display` does not repeat the source. These variants
    // display their cause's message as their own, so they continue with the
    // cause's source rather than print it twice.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            DiscoveryError::Build(err) | DiscoveryError::InvalidEndpoint { error: err, .. } => {
                err.source()
            }
            DiscoveryError::Fetch(err) => err.source(),
            _ => None,
        }
    }
}

impl From<BuildError> for DiscoveryError {
    fn from(err: BuildError) -> Self {
        DiscoveryError::Build(err)
    }
}

impl From<DiscoveryError> for TokenError {
    fn from(err: DiscoveryError) -> Self {
        let retry_after = match &err {
            DiscoveryError::Fetch(ExchangeError::UnexpectedResponse { retry_after, .. }) => {
                *retry_after
            }
            _ => None,
        };
        let overloaded =
            matches!(&err, DiscoveryError::Fetch(fetch) if fetch.is_endpoint_overload());
        TokenError::from_cause(err.kind(), err, retry_after).endpoint_overloaded_if(overloaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth2::TransportError;

    /// The crate's rule holds for discovery errors too: each message once.
    #[test]
    fn discovery_errors_print_each_message_once() {
        use crate::error::Chain;
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let fetch =
            DiscoveryError::Fetch(ExchangeError::Transport(TransportError::new(Box::new(io))));
        assert_eq!(
            Chain(&fetch).to_string(),
            "authorization server discovery failed: token endpoint unreachable: refused"
        );
        let build = DiscoveryError::Build(BuildError::NoHttpClient);
        assert_eq!(Chain(&build).to_string(), build.to_string());
    }
}
