//! [`TokenError`]: why a token could not be obtained, and its [`ErrorKind`].

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
/// An error built from a message and a cause ([`with_source`](Self::with_source))
/// displays the message, and [`source`](std::error::Error::source) returns the
/// cause. One that *is* its cause (the crate's own errors: an
/// [`OAuth2Error`](crate::oauth2::OAuth2Error), an
/// [`ExchangeError`](crate::oauth2::ExchangeError), a [`CacheError`](crate::CacheError)) is
/// transparent: it displays the cause's message, and `source` continues with
/// the cause's own source, so that no message is printed twice; reach the
/// cause itself with [`cause`](Self::cause). Behind other layers (a tower
/// timeout, a retry) the error is a [`BoxError`]; [`TokenError::find_in`]
/// finds it there.
///
/// ```
/// use std::error::Error;
/// use std::time::Duration;
/// use tower_bearer::{BearerAuthError, BoxError, ErrorKind, TokenError};
///
/// let err = TokenError::transient("token endpoint answered 503");
/// assert_eq!(err.kind(), ErrorKind::Transient);
/// assert!(err.is_transient());
/// assert_eq!(err.to_string(), "token endpoint answered 503");
///
/// // A cause is returned by `source`, not repeated by `Display`.
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let err = TokenError::with_source(ErrorKind::Transient, "token endpoint unreachable", io);
/// assert_eq!(err.to_string(), "token endpoint unreachable");
/// assert_eq!(err.source().unwrap().to_string(), "refused");
///
/// // Behind other layers the error is boxed; `find_in` finds it in the chain.
/// let err: BoxError = Box::new(BearerAuthError::<std::io::Error>::Token(
///     TokenError::transient("rate limited").with_retry_after(Duration::from_secs(3)),
/// ));
/// let token_error = TokenError::find_in(&*err).unwrap();
/// assert_eq!(token_error.retry_after(), Some(Duration::from_secs(3)));
/// assert!(TokenError::find_in(&*BoxError::from("connection reset")).is_none());
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
    /// The message is the cause's own: `source()` skips the cause, so that
    /// its message is not printed twice.
    transparent: bool,
    /// The failure is the token endpoint's own (rate limiting, unavailable).
    endpoint_overload: bool,
}

impl TokenError {
    /// A transient error with a message.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::build(ErrorKind::Transient, message.into(), None, None, false)
    }

    /// A permanent error with a message.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::build(ErrorKind::Permanent, message.into(), None, None, false)
    }

    /// An error of the given kind caused by another error. `message` says
    /// what failed, without repeating the cause: `Display` shows the message,
    /// [`source`](std::error::Error::source) returns the cause.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::build(
            kind,
            message.into(),
            None,
            Some(Arc::from(source.into())),
            false,
        )
    }

    /// Returns a copy of this error that asks the cache to wait at least `delay`
    /// before the next fetch (an HTTP `Retry-After`).
    pub fn with_retry_after(self, delay: Duration) -> Self {
        let mut inner = Inner::clone(&self.inner);
        inner.retry_after = Some(delay);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// An error that is its cause, for error types that already describe
    /// themselves (the OAuth2 and cache errors): transparent, see the type's
    /// documentation.
    pub(crate) fn from_cause<E>(kind: ErrorKind, cause: E, retry_after: Option<Duration>) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        Self::build(
            kind,
            cause.to_string(),
            retry_after,
            Some(Arc::new(cause)),
            true,
        )
    }

    fn build(
        kind: ErrorKind,
        message: String,
        retry_after: Option<Duration>,
        source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
        transparent: bool,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                message,
                retry_after,
                source,
                transparent,
                endpoint_overload: false,
            }),
        }
    }

    /// Finds a `TokenError` anywhere in an error's chain: the error itself,
    /// or any of its [`source`](std::error::Error::source)s.
    ///
    /// Behind tower's timeout or retry layers, or in an `anyhow::Error`, the
    /// error of a [`BearerAuth`](crate::BearerAuth) service is a [`BoxError`]
    /// of a type that names the inner service's error; this finds the token
    /// error without naming that type.
    pub fn find_in<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a TokenError> {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(found) = err.downcast_ref::<TokenError>() {
                return Some(found);
            }
            next = err.source();
        }
        None
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

    /// Marks the failure as the token endpoint's own: it is rate limiting or
    /// unavailable (`429`, `503`, `temporarily_unavailable`, `slow_down`),
    /// which says nothing about the client, tenant or user whose fetch got
    /// it. An [`EndpointGate`](crate::cache::EndpointGate) pauses the other
    /// keys behind it for such a failure only; any other failure, with a
    /// `Retry-After` or without, stays with the key that saw it. The
    /// [`oauth2`](crate::oauth2) sources mark their errors themselves; a
    /// source of your own marks its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_bearer::TokenError;
    ///
    /// let busy = TokenError::transient("rate limited")
    ///     .with_retry_after(Duration::from_secs(2))
    ///     .endpoint_overloaded();
    /// assert!(busy.is_endpoint_overload());
    /// assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
    /// assert!(!TokenError::permanent("invalid_client").is_endpoint_overload());
    /// ```
    pub fn endpoint_overloaded(self) -> Self {
        self.endpoint_overloaded_if(true)
    }

    /// [`endpoint_overloaded`](Self::endpoint_overloaded) when `overloaded`.
    pub(crate) fn endpoint_overloaded_if(self, overloaded: bool) -> Self {
        if !overloaded || self.inner.endpoint_overload {
            return self;
        }
        let mut inner = Inner::clone(&self.inner);
        inner.endpoint_overload = true;
        Self {
            inner: Arc::new(inner),
        }
    }

    /// `true` if the failure is the token endpoint's own (see
    /// [`endpoint_overloaded`](Self::endpoint_overloaded)).
    pub fn is_endpoint_overload(&self) -> bool {
        self.inner.endpoint_overload
    }

    /// How long the server asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
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
        if self.inner.endpoint_overload {
            d.field("endpoint_overload", &true);
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
        let cause = self.inner.source.as_deref()?;
        if self.inner.transparent {
            cause.source()
        } else {
            Some(cause)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BearerAuthError;

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

    #[test]
    fn find_in_reaches_through_wrappers() {
        let token = TokenError::permanent("bad secret");
        let wrapped: BearerAuthError<std::io::Error> = BearerAuthError::Token(token);
        let outer = TokenError::with_source(ErrorKind::Transient, "outer", wrapped);
        let found = TokenError::find_in(&outer).unwrap();
        assert_eq!(
            found.to_string(),
            "outer",
            "the outermost one is found first"
        );
        let service: BearerAuthError<std::io::Error> =
            BearerAuthError::Service(std::io::Error::other("x"));
        assert!(TokenError::find_in(&service).is_none());
    }
}
