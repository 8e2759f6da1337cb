//! RFC 6749 §5.2 error responses: `OAuth2Error` and its `ErrorCode`.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::error::{ErrorKind, TokenError};

/// The `error` code of an RFC 6749 §5.2 error response (or of an authorization
/// redirect, §4.1.2.1).
///
/// ```
/// use tower_bearer::oauth2::ErrorCode;
///
/// assert_eq!(ErrorCode::from("invalid_grant"), ErrorCode::InvalidGrant);
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
    /// Any other code.
    Other(String),
}

impl ErrorCode {
    /// The code as sent on the wire.
    ///
    /// ```
    /// assert_eq!(tower_bearer::oauth2::ErrorCode::InvalidScope.as_str(), "invalid_scope");
    /// ```
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
/// Reach it from a [`TokenError`] with [`TokenError::cause`]:
///
/// ```
/// use http::StatusCode;
/// use tower_bearer::oauth2::{ErrorCode, OAuth2Error};
/// use tower_bearer::TokenError;
///
/// let err = OAuth2Error::new(Some(StatusCode::UNAUTHORIZED), "invalid_client")
///     .with_description("client authentication failed");
/// assert!(err.is_permanent());
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
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// let err = OAuth2Error::new(Some(StatusCode::BAD_REQUEST), "invalid_grant");
    /// assert_eq!(err.error(), "invalid_grant");
    /// ```
    pub fn new(status: Option<StatusCode>, error: &str) -> Self {
        Self {
            status,
            code: ErrorCode::from(error),
            description: None,
            uri: None,
            retry_after: None,
        }
    }

    /// Adds the `error_description`.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// let err = OAuth2Error::new(None, "access_denied").with_description("user said no");
    /// assert_eq!(err.error_description(), Some("user said no"));
    /// ```
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds the `error_uri`.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// let err = OAuth2Error::new(None, "access_denied").with_uri("https://docs.example/e");
    /// assert_eq!(err.error_uri(), Some("https://docs.example/e"));
    /// ```
    pub fn with_uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = Some(uri.into());
        self
    }

    /// Adds the delay of a `Retry-After` header.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// # use std::time::Duration;
    /// let err = OAuth2Error::new(Some(StatusCode::SERVICE_UNAVAILABLE), "temporarily_unavailable")
    ///     .with_retry_after(Duration::from_secs(5));
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    /// ```
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The HTTP status of the response (`None` for an authorization redirect).
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// assert_eq!(OAuth2Error::new(Some(StatusCode::UNAUTHORIZED), "invalid_client").status(), Some(StatusCode::UNAUTHORIZED));
    /// ```
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The `error` code as sent.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// assert_eq!(OAuth2Error::new(None, "x_vendor").error(), "x_vendor");
    /// ```
    pub fn error(&self) -> &str {
        self.code.as_str()
    }

    /// The `error` code, typed.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// # use tower_bearer::oauth2::ErrorCode;
    /// assert_eq!(OAuth2Error::new(None, "invalid_scope").code(), &ErrorCode::InvalidScope);
    /// ```
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The `error_description`, if any.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// assert_eq!(OAuth2Error::new(None, "invalid_scope").error_description(), None);
    /// ```
    pub fn error_description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `error_uri`, if any.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// assert_eq!(OAuth2Error::new(None, "invalid_scope").error_uri(), None);
    /// ```
    pub fn error_uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }

    /// The server's `Retry-After`, if it sent one (delay-seconds, or an
    /// HTTP-date turned into the delay from when the response arrived).
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// assert_eq!(OAuth2Error::new(None, "slow_down").retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Transient for `server_error`, `temporarily_unavailable`, `slow_down`, and
    /// for unknown codes with a 5xx, 429 or 408 status; permanent otherwise
    /// (`invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_request`, …).
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// # use tower_bearer::ErrorKind;
    /// assert_eq!(OAuth2Error::new(Some(StatusCode::BAD_REQUEST), "invalid_grant").kind(), ErrorKind::Permanent);
    /// assert_eq!(OAuth2Error::new(Some(StatusCode::BAD_GATEWAY), "x_vendor").kind(), ErrorKind::Transient);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match &self.code {
            ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable | ErrorCode::SlowDown => {
                ErrorKind::Transient
            }
            ErrorCode::Other(_) => status_kind(self.status),
            _ => ErrorKind::Permanent,
        }
    }

    /// `true` if retrying cannot help without a change of configuration or credentials.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use tower_bearer::oauth2::OAuth2Error;
    /// assert!(OAuth2Error::new(Some(StatusCode::UNAUTHORIZED), "invalid_client").is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        self.kind() == ErrorKind::Permanent
    }
}

/// 5xx, 429 and 408 may pass; other failures will not.
pub(crate) fn status_kind(status: Option<StatusCode>) -> ErrorKind {
    match status {
        Some(s) if s.is_server_error() => ErrorKind::Transient,
        Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT) => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
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
        TokenError::from_cause(kind, err, retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let e = OAuth2Error::new(Some(StatusCode::BAD_REQUEST), "invalid_grant");
        assert_eq!(e.kind(), ErrorKind::Permanent);
        let e = OAuth2Error::new(Some(StatusCode::SERVICE_UNAVAILABLE), "whatever");
        assert_eq!(e.kind(), ErrorKind::Transient);
        let e = OAuth2Error::new(Some(StatusCode::BAD_REQUEST), "temporarily_unavailable");
        assert_eq!(e.kind(), ErrorKind::Transient);
    }
}
