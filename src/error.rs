//! Errors: why a token could not be had, and whether trying again can help.
//!
//! One rule for every error type of the crate (the Rust API guidelines'): an
//! error's `Display` says what went wrong at its own level and does **not**
//! repeat its cause, which [`source`](std::error::Error::source) returns.
//! Printed as a chain (`anyhow`'s `{:#}`, `eyre`, a `tracing` error field
//! walked by the subscriber), each message appears once:
//! `no access token: token endpoint unreachable: client error (Connect): …`.

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
/// [`ExchangeError`](crate::oauth2::ExchangeError), a [`CacheError`]) is
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

/// Shows an error and each of its sources, separated by `: ` (as `anyhow`'s
/// `{:#}` does), for log lines: under the crate's rule a `Display` alone
/// says only what failed at its own level.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)?;
        let mut next = self.0.source();
        while let Some(err) = next {
            write!(f, ": {err}")?;
            next = err.source();
        }
        Ok(())
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
///         CacheError::EndpointPaused => err.retry_after(),
///         _ => None,
///     }
/// }
/// # let _ = when_to_come_back;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// Servers rejected so many tokens in a row that the next replacement
    /// waits for its pace ([`TokenError::retry_after`] says how long; see
    /// [`rejections_before_pacing`](crate::TokenCacheBuilder::rejections_before_pacing)).
    /// Only [`TokenCache::replace`](crate::TokenCache::replace) answers this,
    /// to a caller that holds a rejection: it returns that rejection, and
    /// requests keep being sent with the token at hand.
    ReplacementPaced {
        /// Replacements started in the current run.
        replacements_in_a_row: u32,
    },
    /// The token endpoint that this key shares with others (behind one
    /// [`EndpointGate`](crate::cache::EndpointGate)) asked to be left alone:
    /// no key fetches before the pause ends ([`TokenError::retry_after`]).
    /// The failure that started the pause stays with the key that saw it.
    EndpointPaused,
    /// Every turn at the token endpoint's [`EndpointGate`](crate::cache::EndpointGate)
    /// stayed taken for the whole fetch timeout: this fetch did not start.
    EndpointBusy,
    /// The tokio runtime has no timers (`enable_time` was not called on its
    /// builder), and the cache bounds every wait with one.
    NoTimer,
    /// A DPoP-bound token's proof names the request's absolute URL, and the
    /// request's URI is relative (a tonic `Channel`'s): set the origin of
    /// relative URIs with
    /// [`BearerAuthLayer::relative_uri_origin`](crate::BearerAuthLayer::relative_uri_origin).
    NoAbsoluteUrl,
    /// A server's challenge named something a new token must carry (claims,
    /// a scope) that the token source cannot ask for
    /// ([`TokenSource::can_ask`](crate::TokenSource::can_ask)): the
    /// challenge is the answer.
    CannotAsk,
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
            CacheError::ReplacementPaced {
                replacements_in_a_row,
            } => write!(
                f,
                "servers rejected the token {replacements_in_a_row} times in a row after it was \
                 replaced; the next replacement waits for its pace"
            ),
            CacheError::EndpointPaused => f.write_str(
                "the token endpoint is overloaded (another key was told so); \
                 no fetch before the pause ends",
            ),
            CacheError::EndpointBusy => f.write_str(
                "every turn at the token endpoint stayed taken for the whole fetch timeout",
            ),
            CacheError::NoAbsoluteUrl => f.write_str(
                "a DPoP proof needs the request's absolute URL, and its URI is relative; \
                 set the origin of relative URIs on the layer",
            ),
            CacheError::CannotAsk => f.write_str(
                "the server's challenge asks for claims or a scope the token source cannot ask for",
            ),
            CacheError::NoTimer => f.write_str(
                "the tokio runtime has no timers; build it with `enable_time` (or `enable_all`)",
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
            | CacheError::KeyMissing
            | CacheError::NoTimer
            | CacheError::NoAbsoluteUrl
            | CacheError::CannotAsk => ErrorKind::Permanent,
            _ => ErrorKind::Transient,
        }
    }
}

impl From<CacheError> for TokenError {
    fn from(err: CacheError) -> Self {
        let overloaded = matches!(err, CacheError::EndpointPaused);
        TokenError::from_cause(err.kind(), err, None).endpoint_overloaded_if(overloaded)
    }
}

/// The error of a [`BearerAuth`](crate::BearerAuth) service: either no token could
/// be had (the request was never sent), or the inner service failed.
///
/// A request is never sent without credentials because a fetch failed.
///
/// Its `Display` says which of the two it is; the error itself is its
/// [`source`](std::error::Error::source) (see [`TokenError`] for the rule).
///
/// ```
/// use std::error::Error;
/// use tower_bearer::{BearerAuthError, TokenError};
///
/// let err: BearerAuthError<std::io::Error> = BearerAuthError::Token(TokenError::transient("down"));
/// assert!(err.token_error().is_some());
/// assert_eq!(err.to_string(), "no access token");
/// assert_eq!(err.source().unwrap().to_string(), "down");
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

impl<E> fmt::Display for BearerAuthError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BearerAuthError::Token(_) => f.write_str("no access token"),
            BearerAuthError::Service(_) => f.write_str("the inner service failed"),
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

    /// Each message once when the chain is printed, whichever way the error
    /// was built (the rule of the Rust API guidelines).
    #[test]
    fn a_chain_prints_each_message_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let wrapped = TokenError::with_source(ErrorKind::Transient, "unreachable", io);
        let transparent = TokenError::from(CacheError::FetchTimedOut);
        let service: BearerAuthError<std::io::Error> = BearerAuthError::Service(
            std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        );
        let table: [(&(dyn StdError + 'static), &str); 5] = [
            (&wrapped, "unreachable: refused"),
            (&transparent, "the token fetch timed out"),
            (
                &BearerAuthError::<std::io::Error>::Token(wrapped.clone()),
                "no access token: unreachable: refused",
            ),
            (
                &BearerAuthError::<std::io::Error>::Token(transparent.clone()),
                "no access token: the token fetch timed out",
            ),
            (&service, "the inner service failed: timed out"),
        ];
        for (err, chain) in table {
            assert_eq!(Chain(err).to_string(), chain);
        }
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
