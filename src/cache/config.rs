//! Tunables of the token cache, their defaults, and the builder that sets them.

use std::fmt;
use std::time::Duration;

use super::TokenCache;
use crate::source::{BoxTokenSource, TokenSource};

/// Stop using a token this long before it expires, so it does not expire in
/// flight (clock skew, network latency). Capped at [`MAX_SKEW_FRACTION`] of the
/// token's lifetime so that very short-lived tokens stay usable.
pub const DEFAULT_EXPIRY_SKEW: Duration = Duration::from_secs(10);

/// The most of a token's lifetime that [`DEFAULT_EXPIRY_SKEW`] (or a configured
/// skew) may take away.
pub const MAX_SKEW_FRACTION: f64 = 0.1;

/// Start a background refresh this long before a token stops being usable.
/// Gloo's guidance is to refresh 60 s ahead; short-lived tokens are limited by
/// [`DEFAULT_REFRESH_AHEAD_FRACTION`].
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(60);

/// The refresh-ahead window is at most this fraction of the token's usable life,
/// so a 2 s token is refreshed in its last 0.45 s, not immediately. Whatever
/// the setting, a refresh never starts in the first half of the usable life.
pub const DEFAULT_REFRESH_AHEAD_FRACTION: f64 = 0.25;

/// Up to this fraction of the refresh-ahead window is added at random, so that
/// many processes sharing one client do not refresh in lock step.
pub const DEFAULT_REFRESH_JITTER: f64 = 0.2;

/// Lifetime assumed for tokens whose source did not say (no `expires_in`).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// A token fetch that takes longer than this fails as transient, so that no
/// caller waits forever on a source that hangs.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The first delay after a failed fetch; it doubles with each further failure.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(250);

/// The shortest first delay [`TokenCacheBuilder::backoff`] accepts.
pub const MIN_BACKOFF: Duration = Duration::from_millis(1);

/// The longest delay between fetches after failures, and the delay after a
/// permanent failure.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The longest `Retry-After` the cache honours; longer requests are cut to this.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The authorization scheme written before the token.
pub const DEFAULT_AUTH_SCHEME: &str = "Bearer";

#[derive(Clone)]
pub(crate) struct CacheConfig {
    pub(crate) expiry_skew: Duration,
    pub(crate) refresh_ahead: Duration,
    pub(crate) refresh_ahead_fraction: f64,
    pub(crate) refresh_jitter: f64,
    pub(crate) default_lifetime: Option<Duration>,
    pub(crate) fetch_timeout: Duration,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) auth_scheme: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            expiry_skew: DEFAULT_EXPIRY_SKEW,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
            refresh_ahead_fraction: DEFAULT_REFRESH_AHEAD_FRACTION,
            refresh_jitter: DEFAULT_REFRESH_JITTER,
            default_lifetime: Some(DEFAULT_LIFETIME),
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            auth_scheme: DEFAULT_AUTH_SCHEME.to_owned(),
        }
    }
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("expiry_skew", &self.expiry_skew)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("refresh_ahead_fraction", &self.refresh_ahead_fraction)
            .field("refresh_jitter", &self.refresh_jitter)
            .field("default_lifetime", &self.default_lifetime)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_retry_after", &self.max_retry_after)
            .field("auth_scheme", &self.auth_scheme)
            .finish()
    }
}

/// Builds a [`TokenCache`] with non-default timing.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::{StaticToken, TokenCache};
///
/// let cache = TokenCache::builder(StaticToken::new("k"))
///     .expiry_skew(Duration::from_secs(30))
///     .refresh_ahead(Duration::from_secs(120))
///     .default_lifetime(Some(Duration::from_secs(600)))
///     .fetch_timeout(Duration::from_secs(5))
///     .backoff(Duration::from_millis(100), Duration::from_secs(60))
///     .build();
/// # drop(cache);
/// ```
#[derive(Debug)]
pub struct TokenCacheBuilder {
    source: BoxTokenSource,
    config: CacheConfig,
}

impl TokenCacheBuilder {
    pub(crate) fn new(source: impl TokenSource) -> Self {
        Self {
            source: BoxTokenSource::new(source),
            config: CacheConfig::default(),
        }
    }

    /// How long before its expiry a token stops being used
    /// (default [`DEFAULT_EXPIRY_SKEW`], at most [`MAX_SKEW_FRACTION`] of its lifetime).
    pub fn expiry_skew(mut self, skew: Duration) -> Self {
        self.config.expiry_skew = skew;
        self
    }

    /// How long before a token stops being usable a background refresh starts
    /// (default [`DEFAULT_REFRESH_AHEAD`]).
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.config.refresh_ahead = ahead;
        self
    }

    /// The largest fraction of a token's usable life spent in the refresh-ahead
    /// window, from 0 (no refresh ahead) to 1 (default
    /// [`DEFAULT_REFRESH_AHEAD_FRACTION`]).
    pub fn refresh_ahead_fraction(mut self, fraction: f64) -> Self {
        self.config.refresh_ahead_fraction =
            clamp_fraction(fraction, DEFAULT_REFRESH_AHEAD_FRACTION);
        self
    }

    /// The random fraction of the refresh-ahead window added to spread refreshes
    /// out, from 0 to 1 (default [`DEFAULT_REFRESH_JITTER`]).
    pub fn refresh_jitter(mut self, fraction: f64) -> Self {
        self.config.refresh_jitter = clamp_fraction(fraction, DEFAULT_REFRESH_JITTER);
        self
    }

    /// The lifetime assumed for tokens that come without an expiry; `None`
    /// treats them as never expiring (default [`DEFAULT_LIFETIME`]).
    pub fn default_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.config.default_lifetime = lifetime;
        self
    }

    /// The longest a single fetch may take (default [`DEFAULT_FETCH_TIMEOUT`]).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.config.fetch_timeout = timeout;
        self
    }

    /// The first and the longest delay between fetches after failures (defaults
    /// [`DEFAULT_INITIAL_BACKOFF`] and [`DEFAULT_MAX_BACKOFF`]).
    ///
    /// `initial` is at least [`MIN_BACKOFF`], so that backoff can never be
    /// switched off by accident (zero doubled stays zero).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        let initial = initial.max(MIN_BACKOFF);
        self.config.initial_backoff = initial;
        self.config.max_backoff = max.max(initial);
        self
    }

    /// The longest `Retry-After` honoured (default [`DEFAULT_MAX_RETRY_AFTER`]).
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.config.max_retry_after = max;
        self
    }

    /// The scheme written before the token in the `Authorization` header
    /// (default [`DEFAULT_AUTH_SCHEME`], `Bearer`).
    pub fn auth_scheme(mut self, scheme: impl Into<String>) -> Self {
        self.config.auth_scheme = scheme.into();
        self
    }

    /// Builds the cache. No token is fetched until one is first needed.
    pub fn build(self) -> TokenCache {
        TokenCache::from_parts(self.source, self.config)
    }
}

fn clamp_fraction(value: f64, default: f64) -> f64 {
    if value.is_nan() {
        default
    } else {
        value.clamp(0.0, 1.0)
    }
}
