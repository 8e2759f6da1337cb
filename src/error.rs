//! Errors: why a token could not be had, and whether trying again can help.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A boxed error, as used throughout the tower ecosystem.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Whether a failed token fetch is worth repeating.
///
/// The cache backs off after either kind, but much longer after a permanent one:
/// hammering a token endpoint with a revoked client secret helps nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// May succeed if tried again later: a timeout, a refused connection, a 5xx,
    /// a 429, a fetch task that was aborted.
    Transient,
    /// Will not succeed without a change of configuration or credentials:
    /// `invalid_client`, `invalid_grant`, `unauthorized_client`, a malformed token.
    Permanent,
}

/// Why a token could not be obtained.
///
/// Cheap to clone (the cause is shared), because one failed fetch is reported to
/// every caller that was waiting for it. Never contains a secret: sources build
/// their messages from status codes and error codes, not from credentials.
///
/// ```
/// use tower_bearer::{ErrorKind, TokenError};
///
/// let err = TokenError::transient("token endpoint answered 503");
/// assert_eq!(err.kind(), ErrorKind::Transient);
/// assert!(err.is_transient());
/// assert_eq!(err.to_string(), "token endpoint answered 503");
/// ```
#[derive(Clone)]
pub struct TokenError {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    retry_after: Option<Duration>,
    // Shared, so that a copy with another `retry_after` keeps the cause itself.
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl TokenError {
    /// A transient error with a message.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::build(ErrorKind::Transient, message.into(), None, None)
    }

    /// A permanent error with a message.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::build(ErrorKind::Permanent, message.into(), None, None)
    }

    /// An error of the given kind caused by another error.
    ///
    /// ```
    /// use tower_bearer::{ErrorKind, TokenError};
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let err = TokenError::with_source(ErrorKind::Transient, "token endpoint unreachable", io);
    /// assert!(std::error::Error::source(&err).is_some());
    /// ```
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::build(kind, message.into(), None, Some(Arc::from(source.into())))
    }

    /// Returns a copy of this error that asks the cache to wait at least `delay`
    /// before the next fetch (an HTTP `Retry-After`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_bearer::TokenError;
    ///
    /// let err = TokenError::transient("rate limited").with_retry_after(Duration::from_secs(7));
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    /// ```
    pub fn with_retry_after(self, delay: Duration) -> Self {
        let mut inner = Inner::clone(&self.inner);
        inner.retry_after = Some(delay);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// An error whose message is its cause's, for error types that already
    /// describe themselves (the OAuth2 errors).
    pub(crate) fn from_cause<E>(kind: ErrorKind, cause: E, retry_after: Option<Duration>) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        Self::build(kind, cause.to_string(), retry_after, Some(Arc::new(cause)))
    }

    fn build(
        kind: ErrorKind,
        message: String,
        retry_after: Option<Duration>,
        source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                message,
                retry_after,
                source,
            }),
        }
    }

    /// Transient or permanent.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// `true` if trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.inner.kind == ErrorKind::Transient
    }

    /// `true` if trying again will not help without a change of configuration.
    pub fn is_permanent(&self) -> bool {
        self.inner.kind == ErrorKind::Permanent
    }

    /// How long the server asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// `true` if the cache is in a rejection cool-down ([`CacheError::CoolingDown`]).
    pub(crate) fn is_cooldown(&self) -> bool {
        self.cause()
            .and_then(|cause| cause.downcast_ref::<CacheError>())
            .is_some_and(|err| matches!(err, CacheError::CoolingDown { .. }))
    }

    /// The underlying cause, if any, for downcasting (for example to
    /// [`oauth2::OAuth2Error`](crate::oauth2) errors).
    pub fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.inner.source.as_deref()
    }
}

impl fmt::Debug for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TokenError");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(delay) = self.inner.retry_after {
            d.field("retry_after", &delay);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl StdError for TokenError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// Why the cache itself could not hand out a token, as opposed to an error
/// of the token source. Reach it through [`TokenError::cause`].
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::{CacheError, ErrorKind, TokenError};
///
/// fn when_to_come_back(err: &TokenError) -> Option<Duration> {
///     match err.cause()?.downcast_ref::<CacheError>()? {
///         CacheError::CoolingDown { .. } => err.retry_after(),
///         _ => None,
///     }
/// }
/// # let _ = when_to_come_back;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// The API rejected this many freshly fetched tokens in a row, none of
    /// which it ever accepted: no token is fetched before the cool-down ends
    /// ([`TokenError::retry_after`] says when).
    CoolingDown {
        /// Tokens rejected in a row.
        rejected_in_a_row: u32,
    },
    /// The token is larger than the cache accepts
    /// ([`TokenCacheBuilder::max_token_bytes`](crate::TokenCacheBuilder::max_token_bytes)).
    TokenTooLarge {
        /// The token's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The token has characters that cannot go into an HTTP header.
    TokenNotHeaderSafe,
    /// The token arrived with less life left than the minimum refresh
    /// interval, or already expired.
    TokenTooShortLived,
    /// The fetch took longer than the fetch timeout.
    FetchTimedOut,
    /// The token source panicked.
    SourcePanicked,
    /// The fetch ended without a result: its task was dropped (its runtime
    /// shut down) or stopped making progress.
    FetchAbandoned,
    /// No tokio runtime to run a fetch on: the cache was used from outside one.
    NoRuntime,
    /// The request carries no key to choose its token by (a keyed cache's
    /// key function returned `None`); it was not sent.
    KeyMissing,
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::CoolingDown { rejected_in_a_row } => write!(
                f,
                "the API rejected {rejected_in_a_row} freshly fetched tokens in a row; \
                 no new token until the cool-down ends"
            ),
            CacheError::TokenTooLarge { len, max } => {
                write!(
                    f,
                    "the access token is {len} bytes, over the limit of {max}"
                )
            }
            CacheError::TokenNotHeaderSafe => f.write_str(
                "the access token contains characters that are not allowed in an HTTP header",
            ),
            CacheError::TokenTooShortLived => {
                f.write_str("the token source returned a token with almost no life left")
            }
            CacheError::FetchTimedOut => f.write_str("the token fetch timed out"),
            CacheError::SourcePanicked => f.write_str("the token source panicked"),
            CacheError::FetchAbandoned => f.write_str(
                "the token fetch ended without a result (its runtime shut down or stopped)",
            ),
            CacheError::NoRuntime => {
                f.write_str("no tokio runtime to fetch a token on; use the cache inside one")
            }
            CacheError::KeyMissing => {
                f.write_str("the request carries no key to choose its token by; it was not sent")
            }
        }
    }
}

impl StdError for CacheError {}

impl CacheError {
    /// Whether trying again later can help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CacheError::TokenTooLarge { .. }
            | CacheError::TokenNotHeaderSafe
            | CacheError::KeyMissing => ErrorKind::Permanent,
            _ => ErrorKind::Transient,
        }
    }
}

impl From<CacheError> for TokenError {
    fn from(err: CacheError) -> Self {
        TokenError::from_cause(err.kind(), err, None)
    }
}

/// The error of a [`BearerAuth`](crate::BearerAuth) service: either no token could
/// be had (the request was never sent), or the inner service failed.
///
/// A request is never sent without credentials because a fetch failed.
///
/// ```
/// use tower_bearer::{BearerAuthError, TokenError};
///
/// let err: BearerAuthError<std::io::Error> = BearerAuthError::Token(TokenError::transient("down"));
/// assert!(err.token_error().is_some());
/// assert_eq!(err.to_string(), "no access token: down");
/// ```
#[derive(Debug)]
pub enum BearerAuthError<E> {
    /// No token could be obtained; the request was not sent.
    Token(TokenError),
    /// The inner service returned an error.
    Service(E),
}

impl<E> BearerAuthError<E> {
    /// The token error, if this is one.
    pub fn token_error(&self) -> Option<&TokenError> {
        match self {
            BearerAuthError::Token(err) => Some(err),
            BearerAuthError::Service(_) => None,
        }
    }

    /// The inner service's error, if this is one.
    pub fn service_error(&self) -> Option<&E> {
        match self {
            BearerAuthError::Token(_) => None,
            BearerAuthError::Service(err) => Some(err),
        }
    }
}

impl<E: fmt::Display> fmt::Display for BearerAuthError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BearerAuthError::Token(err) => write!(f, "no access token: {err}"),
            BearerAuthError::Service(err) => write!(f, "inner service error: {err}"),
        }
    }
}

impl<E: StdError + 'static> StdError for BearerAuthError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BearerAuthError::Token(err) => Some(err),
            BearerAuthError::Service(err) => Some(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_keeps_the_cause_even_when_shared() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = TokenError::with_source(ErrorKind::Transient, "unreachable", io);
        let shared = err.clone();
        let later = err.with_retry_after(Duration::from_secs(3));
        assert_eq!(later.retry_after(), Some(Duration::from_secs(3)));
        assert!(later
            .cause()
            .unwrap()
            .downcast_ref::<std::io::Error>()
            .is_some());
        assert_eq!(shared.retry_after(), None, "the original is unchanged");
    }
}
