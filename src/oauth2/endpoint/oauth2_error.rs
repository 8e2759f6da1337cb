//! [`OAuth2Error`] and its [`ErrorCode`]: what an authorization server says
//! when it refuses (RFC 6749 §5.2), made safe to print.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use super::http_status::{overloaded_status, status_kind};
use crate::error::{ErrorKind, TokenError};
use crate::redact;

/// The `error` code of an RFC 6749 §5.2 error response (or of an authorization
/// redirect, §4.1.2.1).
///
/// ```
/// use tower_bearer::oauth2::ErrorCode;
///
/// assert_eq!(ErrorCode::from("invalid_grant"), ErrorCode::InvalidGrant);
/// assert_eq!(ErrorCode::InvalidScope.as_str(), "invalid_scope");
/// assert_eq!(ErrorCode::from("x_custom").as_str(), "x_custom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`: malformed request.
    InvalidRequest,
    /// `invalid_client`: client authentication failed (wrong secret, unknown client).
    InvalidClient,
    /// `invalid_grant`: the code, refresh token or credentials are invalid, expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant type.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`.
    InvalidScope,
    /// `invalid_target` (RFC 8707): an unknown `resource`.
    InvalidTarget,
    /// `access_denied` (authorization redirect): the user said no.
    AccessDenied,
    /// `server_error`.
    ServerError,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// `slow_down` (RFC 8628).
    SlowDown,
    /// `use_dpop_nonce` (RFC 9449 §8): the server wants a nonce in the DPoP
    /// proof, and hands one out in the `DPoP-Nonce` header. A token endpoint
    /// with a DPoP key retries once with it by itself; transient.
    UseDpopNonce,
    /// `invalid_dpop_proof` (RFC 9449 §5): the DPoP proof was refused.
    InvalidDpopProof,
    /// Any other code.
    Other(String),
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::Other(code) => code,
        }
    }
}

impl From<&str> for ErrorCode {
    fn from(code: &str) -> Self {
        match code {
            "invalid_request" => ErrorCode::InvalidRequest,
            "invalid_client" => ErrorCode::InvalidClient,
            "invalid_grant" => ErrorCode::InvalidGrant,
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => ErrorCode::UnsupportedGrantType,
            "invalid_scope" => ErrorCode::InvalidScope,
            "invalid_target" => ErrorCode::InvalidTarget,
            "access_denied" => ErrorCode::AccessDenied,
            "server_error" => ErrorCode::ServerError,
            "temporarily_unavailable" => ErrorCode::TemporarilyUnavailable,
            "slow_down" => ErrorCode::SlowDown,
            "use_dpop_nonce" => ErrorCode::UseDpopNonce,
            "invalid_dpop_proof" => ErrorCode::InvalidDpopProof,
            other => ErrorCode::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error response from an authorization server (RFC 6749 §5.2), or an
/// error returned to the redirect URI (§4.1.2.1, no HTTP status then).
///
/// What the server sent is kept safe to print, whoever prints it: control
/// characters escaped (no forged log lines), at most 200 characters per text,
/// the values of secret parameters and any secret the client sent (the
/// refresh token, the client secret, the code) shown as `[redacted]`, and the
/// `error_uri` without user info or query. The constructors below apply the
/// same rules.
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use tower_bearer::oauth2::{ErrorCode, OAuth2Error};
/// use tower_bearer::TokenError;
///
/// let err = OAuth2Error::new(Some(StatusCode::UNAUTHORIZED), "invalid_client")
///     .with_description("client authentication failed")
///     .with_retry_after(Duration::from_secs(5));
/// assert!(err.is_permanent());
/// assert_eq!(err.error_description(), Some("client authentication failed"));
///
/// // Fetches report it inside a `TokenError`.
/// let token_error = TokenError::from(err);
/// let cause = token_error.cause().unwrap().downcast_ref::<OAuth2Error>().unwrap();
/// assert_eq!(cause.code(), &ErrorCode::InvalidClient);
/// assert_eq!(cause.status(), Some(StatusCode::UNAUTHORIZED));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Error {
    status: Option<StatusCode>,
    code: ErrorCode,
    description: Option<String>,
    uri: Option<String>,
    retry_after: Option<Duration>,
}

impl OAuth2Error {
    /// An error with the HTTP status it came with and its `error` code.
    pub fn new(status: Option<StatusCode>, error: &str) -> Self {
        Self::from_server(status, error, None, None, &[])
    }

    /// What a server sent, made safe to print; `sent` are the secrets the
    /// client sent it, hidden wherever the server echoes them.
    pub(crate) fn from_server(
        status: Option<StatusCode>,
        error: &str,
        description: Option<&str>,
        uri: Option<&str>,
        sent: &[&str],
    ) -> Self {
        Self {
            status,
            code: ErrorCode::from(redact::server_text(error, sent).as_str()),
            description: description.map(|d| redact::server_text(d, sent)),
            uri: uri.map(|u| redact::server_url(u, sent)),
            retry_after: None,
        }
    }

    /// Adds the `error_description`.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(redact::server_text(&description.into(), &[]));
        self
    }

    /// Adds the `error_uri`.
    pub fn with_uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = Some(redact::server_url(&uri.into(), &[]));
        self
    }

    /// Adds the delay of a `Retry-After` header.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The HTTP status of the response (`None` for an authorization redirect).
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The `error` code as sent.
    pub fn error(&self) -> &str {
        self.code.as_str()
    }

    /// The `error` code, typed.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The `error_description`, if any, made safe to print.
    pub fn error_description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `error_uri`, if any, without user info or query.
    pub fn error_uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }

    /// The server's `Retry-After`, if it sent one (delay-seconds, or an
    /// HTTP-date turned into the delay from when the response arrived).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Transient for `server_error`, `temporarily_unavailable`, `slow_down`,
    /// `use_dpop_nonce` (the next request carries the nonce the server handed
    /// out), and for unknown codes with a 5xx, 429 or 408 status; permanent otherwise
    /// (`invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_request`, …).
    pub fn kind(&self) -> ErrorKind {
        match &self.code {
            ErrorCode::ServerError
            | ErrorCode::TemporarilyUnavailable
            | ErrorCode::SlowDown
            | ErrorCode::UseDpopNonce => ErrorKind::Transient,
            ErrorCode::Other(_) => status_kind(self.status),
            _ => ErrorKind::Permanent,
        }
    }

    /// `true` if retrying cannot help without a change of configuration or credentials.
    pub fn is_permanent(&self) -> bool {
        self.kind() == ErrorKind::Permanent
    }

    /// `true` for `temporarily_unavailable` and `slow_down`, and for any code
    /// that came with `429` or `503`: the endpoint speaks of itself, not of
    /// this client (see [`TokenError::endpoint_overloaded`]). `invalid_client`
    /// or `server_error` are the client's own, whatever `Retry-After` says.
    pub fn is_endpoint_overload(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::TemporarilyUnavailable | ErrorCode::SlowDown
        ) || self.status.is_some_and(overloaded_status)
    }
}

impl fmt::Display for OAuth2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authorization server error `{}`", self.code)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {})", status.as_u16())?;
        }
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        Ok(())
    }
}

impl StdError for OAuth2Error {}

impl From<OAuth2Error> for TokenError {
    fn from(err: OAuth2Error) -> Self {
        let (kind, retry_after) = (err.kind(), err.retry_after);
        let overloaded = err.is_endpoint_overload();
        TokenError::from_cause(kind, err, retry_after).endpoint_overloaded_if(overloaded)
    }
}
