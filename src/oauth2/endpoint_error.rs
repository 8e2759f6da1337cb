//! Everything other than an RFC 6749 §5.2 error response that can go wrong
//! with a token endpoint.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use super::error::status_kind;
use crate::error::{BoxError, ErrorKind, TokenError};

/// Everything other than an RFC 6749 §5.2 error response that can go wrong with
/// a token endpoint: configuration, transport, and responses that make no sense.
///
/// Messages never contain a secret: response excerpts are only kept for
/// non-2xx responses, cut short, and values of token-like keys are redacted.
///
/// ```
/// use tower_bearer::oauth2::{EndpointError, TokenEndpoint};
///
/// let err = TokenEndpoint::builder("http://auth.example.com/token").build().unwrap_err();
/// assert!(matches!(err, EndpointError::InsecureUrl { .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum EndpointError {
    /// The URL could not be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// A plain `http://` URL for a host other than loopback, without
    /// [`allow_insecure_http`](super::TokenEndpointBuilder::allow_insecure_http).
    InsecureUrl {
        /// The URL as given.
        url: String,
    },
    /// No HTTP client was given and the `rustls` feature is off.
    NoHttpClient,
    /// The endpoint did not answer in time.
    Timeout(Duration),
    /// The request could not be sent or the response not read.
    Transport(BoxError),
    /// The response body was larger than the cap.
    ResponseTooLarge {
        /// The response status.
        status: StatusCode,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The response was neither a token nor an RFC 6749 error.
    UnexpectedResponse {
        /// The response status.
        status: StatusCode,
        /// What was wrong with it.
        reason: String,
        /// The start of the body, secret-free (only for non-2xx responses).
        excerpt: Option<String>,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The server issued a token of another type than `Bearer`.
    UnsupportedTokenType(String),
    /// The `state` returned to the redirect URI is not the one sent (possible CSRF).
    StateMismatch,
    /// The redirect URI was reached without a `code`.
    MissingCode,
}

impl EndpointError {
    /// Transient for timeouts, transport errors and 5xx/429/408 responses;
    /// permanent for everything else.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_bearer::{oauth2::EndpointError, ErrorKind};
    /// assert_eq!(EndpointError::Timeout(Duration::from_secs(10)).kind(), ErrorKind::Transient);
    /// assert_eq!(EndpointError::StateMismatch.kind(), ErrorKind::Permanent);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            EndpointError::Timeout(_) | EndpointError::Transport(_) => ErrorKind::Transient,
            EndpointError::ResponseTooLarge { status, .. }
            | EndpointError::UnexpectedResponse { status, .. } => status_kind(Some(*status)),
            _ => ErrorKind::Permanent,
        }
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::InvalidUrl { url, reason } => {
                write!(f, "invalid token endpoint URL `{url}`: {reason}")
            }
            EndpointError::InsecureUrl { url } => write!(
                f,
                "refusing plain-http token endpoint `{url}`: use https://, a loopback host, or allow_insecure_http(true)"
            ),
            EndpointError::NoHttpClient => f.write_str(
                "no HTTP client for the token endpoint: pass one with http_client() or enable the `rustls` feature",
            ),
            EndpointError::Timeout(limit) => {
                write!(f, "token endpoint did not answer within {limit:?}")
            }
            EndpointError::Transport(err) => write!(f, "token endpoint unreachable: {err}"),
            EndpointError::ResponseTooLarge { status, limit } => write!(
                f,
                "token endpoint response (HTTP {}) is larger than {limit} bytes",
                status.as_u16()
            ),
            EndpointError::UnexpectedResponse {
                status,
                reason,
                excerpt,
                ..
            } => {
                write!(f, "unexpected token endpoint response (HTTP {}): {reason}", status.as_u16())?;
                if let Some(excerpt) = excerpt {
                    write!(f, "; body starts: {excerpt:?}")?;
                }
                Ok(())
            }
            EndpointError::UnsupportedTokenType(kind) => write!(
                f,
                "token endpoint issued a `{kind}` token; only Bearer tokens are supported"
            ),
            EndpointError::StateMismatch => f.write_str(
                "the `state` returned to the redirect URI does not match the one sent (possible CSRF)",
            ),
            EndpointError::MissingCode => f.write_str("the redirect URI was reached without a `code`"),
        }
    }
}

impl StdError for EndpointError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            EndpointError::Transport(err) => Some(&**err),
            _ => None,
        }
    }
}

impl From<EndpointError> for TokenError {
    fn from(err: EndpointError) -> Self {
        let retry_after = match &err {
            EndpointError::UnexpectedResponse { retry_after, .. } => *retry_after,
            _ => None,
        };
        let kind = err.kind();
        TokenError::from_cause(kind, err, retry_after)
    }
}
