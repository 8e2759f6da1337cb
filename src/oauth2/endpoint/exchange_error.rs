//! [`ExchangeError`]: what goes wrong while talking to a token endpoint, or
//! with what came back to the redirect URI, short of an RFC 6749 error.
//!
//! Exchange failures reach callers as a [`TokenError`], whose
//! [`cause`](TokenError::cause) downcasts to [`OAuth2Error`](crate::oauth2::OAuth2Error)
//! when the server answered with an RFC 6749 error, and to this type otherwise.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use super::http_status::{overloaded_status, status_kind};
use crate::error::{BoxError, ErrorKind, TokenError};
use crate::oauth2::transport::transport_error::TransportError;

/// Anything but an RFC 6749 error response that goes wrong while exchanging
/// with a token endpoint or checking what came back to the redirect URI.
///
/// Never shows a secret: response excerpts are kept only for non-2xx
/// responses, cut short, and redacted.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::oauth2::ExchangeError;
/// use tower_bearer::{ErrorKind, TokenError};
///
/// let err = TokenError::from(ExchangeError::Timeout(Duration::from_secs(10)));
/// assert_eq!(err.kind(), ErrorKind::Transient);
/// let cause = err.cause().and_then(|c| c.downcast_ref::<ExchangeError>());
/// assert!(matches!(cause, Some(ExchangeError::Timeout(_))));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The endpoint did not answer in time.
    Timeout(Duration),
    /// The request could not be sent or the response not read: the HTTP
    /// client's error, its text made safe to print (also the error's
    /// [`source`](std::error::Error::source)).
    Transport(TransportError),
    /// The TLS handshake failed over a certificate: the endpoint's was not
    /// trusted (unknown issuer, expired, another name) or the endpoint did
    /// not accept the client's. Permanent: trying again cannot help until the
    /// trusted roots, the client certificate or the endpoint change. Holds
    /// the TLS library's verdict (`invalid peer certificate: UnknownIssuer`),
    /// the root cause of the failure.
    Certificate(String),
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
        /// The start of the body, redacted (only for non-2xx responses).
        excerpt: Option<String>,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The server issued a token of another type than `Bearer` or `DPoP`
    /// (as sent, made safe to print), or a `DPoP` token to an endpoint
    /// without a DPoP key, which cannot make the proofs it needs.
    UnsupportedTokenType(String),
    /// The server answered a token request that carried a DPoP proof with a
    /// `Bearer` token, from an endpoint that
    /// [requires](crate::oauth2::TokenEndpointBuilder::require_dpop_bound) DPoP-bound
    /// tokens (RFC 9449 §5 lets a server decline to bind; the client may
    /// then refuse the token).
    DpopNotBound,
    /// The `state` returned to the redirect URI is not the one sent (possible CSRF).
    StateMismatch,
    /// The redirect URI was reached without a `code`.
    MissingCode,
    /// The authorization response names another issuer than the one the
    /// authorization request was sent to (RFC 9207 `iss`): a mix-up attack,
    /// or a response meant for another flow. Nothing was sent.
    IssuerMismatch {
        /// The issuer the request was sent to.
        expected: String,
        /// The `iss` returned, made safe to print.
        returned: String,
    },
    /// The authorization response has no `iss`, though the authorization
    /// server says it always sends one (its metadata's
    /// `authorization_response_iss_parameter_supported`). Nothing was sent.
    MissingIssuer {
        /// The issuer the request was sent to.
        expected: String,
    },
    /// This pending authorization was already exchanged (or its exchange
    /// began): its code is sent at most once, since a server that sees a
    /// code twice must revoke what it issued for it (RFC 6749 §4.1.2).
    /// Nothing was sent; start a new authorization.
    AlreadyExchanged,
    /// What reached the redirect URI is not an authorization response this
    /// client can read (an unparsable query, a repeated parameter, parameters
    /// in the fragment).
    InvalidCallback(&'static str),
    /// An authorization started with one issuer was being finished with the
    /// flow of another, whose token endpoint must not receive the code (an
    /// app choosing the flow from something the attacker controls is the
    /// classic mix-up). Nothing was sent.
    FlowMismatch {
        /// The issuer the authorization was started with.
        started_with: String,
        /// The issuer of the flow asked to finish it.
        finishing_with: String,
    },
    /// The authorization request bound the code to one DPoP key (its
    /// `dpop_jkt`), and the flow finishing it holds another or none: the
    /// server would refuse the exchange's proof. Nothing was sent, and the
    /// pending authorization is not used up.
    DpopKeyMismatch {
        /// The thumbprint the authorization request named.
        bound_to: String,
        /// The thumbprint of the key the flow's token endpoint holds, if any.
        held: Option<String>,
    },
}

impl ExchangeError {
    /// A transport failure: a certificate failure found anywhere in its chain
    /// becomes [`ExchangeError::Certificate`], anything else stays a
    /// [`ExchangeError::Transport`].
    /// `sent` are the secrets the request carried, should the client's
    /// error quote it.
    pub(crate) fn transport(err: BoxError, sent: &[&str]) -> Self {
        match crate::oauth2::transport::tls_failure::certificate_failure(&*err) {
            Some(reason) => ExchangeError::Certificate(reason),
            None => ExchangeError::Transport(TransportError::with_secrets_sent(err, sent)),
        }
    }

    /// Transient for timeouts, transport errors and 5xx/429/408 responses;
    /// permanent for everything else, certificate failures included.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExchangeError::Timeout(_) | ExchangeError::Transport(_) => ErrorKind::Transient,
            ExchangeError::ResponseTooLarge { status, .. }
            | ExchangeError::UnexpectedResponse { status, .. } => status_kind(Some(*status)),
            _ => ErrorKind::Permanent,
        }
    }

    /// `true` for an answer that is about the endpoint itself (`429 Too Many
    /// Requests`, `503 Service Unavailable`), not about this client: see
    /// [`TokenError::endpoint_overloaded`].
    pub fn is_endpoint_overload(&self) -> bool {
        match self {
            ExchangeError::ResponseTooLarge { status, .. }
            | ExchangeError::UnexpectedResponse { status, .. } => overloaded_status(*status),
            _ => false,
        }
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Timeout(limit) => {
                write!(f, "token endpoint did not answer within {limit:?}")
            }
            // The cause is the source, not repeated here.
            ExchangeError::Transport(_) => f.write_str("token endpoint unreachable"),
            ExchangeError::Certificate(reason) => {
                write!(f, "TLS certificate failure with the token endpoint: {reason}")
            }
            ExchangeError::ResponseTooLarge { status, limit } => write!(
                f,
                "token endpoint response (HTTP {}) is larger than {limit} bytes",
                status.as_u16()
            ),
            ExchangeError::UnexpectedResponse {
                status,
                reason,
                excerpt,
                ..
            } => {
                write!(f, "unexpected token endpoint response (HTTP {}): {reason}", status.as_u16())?;
                if let Some(excerpt) = excerpt {
                    write!(f, "; body starts: \"{excerpt}\"")?;
                }
                Ok(())
            }
            ExchangeError::UnsupportedTokenType(kind) if kind.eq_ignore_ascii_case("dpop") => write!(
                f,
                "token endpoint issued a `{kind}` token, but this endpoint has no DPoP key to make its proofs (TokenEndpointBuilder::dpop)"
            ),
            ExchangeError::UnsupportedTokenType(kind) => write!(
                f,
                "token endpoint issued a `{kind}` token; Bearer and DPoP tokens are supported"
            ),
            ExchangeError::DpopNotBound => f.write_str(
                "token endpoint issued a Bearer token though the request carried a DPoP proof and DPoP-bound tokens are required",
            ),
            ExchangeError::StateMismatch => f.write_str(
                "the `state` returned to the redirect URI does not match the one sent (possible CSRF)",
            ),
            ExchangeError::MissingCode => f.write_str("the redirect URI was reached without a `code`"),
            ExchangeError::IssuerMismatch { expected, returned } => write!(
                f,
                "the authorization response comes from issuer `{returned}`, not `{expected}` (RFC 9207 `iss`; possible mix-up attack); the code was not exchanged"
            ),
            ExchangeError::MissingIssuer { expected } => write!(
                f,
                "the authorization response has no `iss`, though `{expected}` always sends one (RFC 9207; possible mix-up attack); the code was not exchanged"
            ),
            ExchangeError::AlreadyExchanged => f.write_str(
                "this pending authorization was already exchanged; a code is sent at most once (RFC 6749 §4.1.2); the code was not sent again",
            ),
            ExchangeError::InvalidCallback(reason) => {
                write!(f, "invalid authorization response: {reason}")
            }
            ExchangeError::FlowMismatch {
                started_with,
                finishing_with,
            } => write!(
                f,
                "the authorization was started with issuer `{started_with}`, not `{finishing_with}`, whose flow was asked to finish it; the code was not exchanged"
            ),
            ExchangeError::DpopKeyMismatch { bound_to, held } => {
                write!(
                    f,
                    "the code is bound to the DPoP key `{bound_to}`, and this flow's token endpoint "
                )?;
                match held {
                    Some(held) => write!(f, "holds the key `{held}`")?,
                    None => f.write_str("has no DPoP key")?,
                }
                f.write_str("; the code was not exchanged: start a new authorization")
            }
        }
    }
}

impl StdError for ExchangeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ExchangeError::Transport(err) => Some(err),
            _ => None,
        }
    }
}

impl From<ExchangeError> for TokenError {
    fn from(err: ExchangeError) -> Self {
        let retry_after = match &err {
            ExchangeError::UnexpectedResponse { retry_after, .. } => *retry_after,
            _ => None,
        };
        let overloaded = err.is_endpoint_overload();
        TokenError::from_cause(err.kind(), err, retry_after).endpoint_overloaded_if(overloaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth2::{DiscoveryError, OAuth2Error};

    /// Which answers say the endpoint itself is overloaded, so that an
    /// `EndpointGate` pauses the other keys, and which stay the key's own.
    #[test]
    fn overload_answers_are_marked_and_others_are_not() {
        let oauth = |status: u16, code: &str| {
            TokenError::from(OAuth2Error::new(
                Some(StatusCode::from_u16(status).unwrap()),
                code,
            ))
        };
        let unexpected = |status: u16| {
            TokenError::from(ExchangeError::UnexpectedResponse {
                status: StatusCode::from_u16(status).unwrap(),
                reason: "not JSON".into(),
                excerpt: None,
                retry_after: Some(Duration::from_secs(600)),
            })
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, TokenError, bool)> = vec![
            ("429 page", unexpected(429), true),
            ("503 page", unexpected(503), true),
            ("500 page with Retry-After", unexpected(500), false),
            ("temporarily_unavailable", oauth(400, "temporarily_unavailable"), true),
            ("slow_down", oauth(400, "slow_down"), true),
            ("unknown code with 429", oauth(429, "rate_limited"), true),
            ("invalid_client", oauth(401, "invalid_client"), false),
            ("invalid_client with Retry-After", OAuth2Error::new(Some(StatusCode::UNAUTHORIZED), "invalid_client").with_retry_after(Duration::from_secs(600)).into(), false),
            ("server_error", oauth(500, "server_error"), false),
            ("timeout", ExchangeError::Timeout(Duration::from_secs(1)).into(), false),
            ("discovery behind a 503", DiscoveryError::Fetch(ExchangeError::UnexpectedResponse { status: StatusCode::SERVICE_UNAVAILABLE, reason: "x".into(), excerpt: None, retry_after: None }).into(), true),
        ];
        for (name, error, overloaded) in cases {
            assert_eq!(error.is_endpoint_overload(), overloaded, "{name}");
        }
    }

    #[test]
    fn classification() {
        let permanent = [
            OAuth2Error::new(Some(StatusCode::BAD_REQUEST), "invalid_grant").kind(),
            ExchangeError::StateMismatch.kind(),
            ExchangeError::UnexpectedResponse {
                status: StatusCode::FORBIDDEN,
                reason: String::new(),
                excerpt: None,
                retry_after: None,
            }
            .kind(),
        ];
        assert!(permanent.iter().all(|k| *k == ErrorKind::Permanent));
        let transient = [
            OAuth2Error::new(Some(StatusCode::SERVICE_UNAVAILABLE), "whatever").kind(),
            OAuth2Error::new(Some(StatusCode::BAD_REQUEST), "temporarily_unavailable").kind(),
            ExchangeError::Timeout(Duration::from_secs(1)).kind(),
            ExchangeError::ResponseTooLarge {
                status: StatusCode::TOO_MANY_REQUESTS,
                limit: 1,
            }
            .kind(),
        ];
        assert!(transient.iter().all(|k| *k == ErrorKind::Transient));
    }
}
