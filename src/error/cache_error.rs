//! [`CacheError`]: why the cache itself could not hand out a token.

use std::error::Error as StdError;
use std::fmt;

use super::token_error::{ErrorKind, TokenError};

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
