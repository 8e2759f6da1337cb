//! Tunables of the token cache, their defaults, and the builder that sets them.

use std::sync::Arc;
use std::time::Duration;

use super::{Common, EndpointGate, TokenCache};
use crate::source::{BoxTokenSource, TokenSource};

// Defaults, stated again in the setter docs of `TokenCacheBuilder`.
const DEFAULT_EXPIRY_SKEW: Duration = Duration::from_secs(10);
const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(60);
pub(crate) const DEFAULT_REFRESH_AHEAD_FRACTION: f64 = 0.25;
pub(crate) const DEFAULT_REFRESH_JITTER: f64 = 0.2;
const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(500);
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(250);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
const DEFAULT_REJECTIONS_BEFORE_PACING: u32 = 3;
const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
const DEFAULT_AUTH_SCHEME: &str = "Bearer";
const DEFAULT_NAME: &str = "default";

/// The shortest first backoff: zero doubled stays zero, which would switch
/// backoff off by accident.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CacheConfig {
    pub(crate) expiry_skew: Duration,
    pub(crate) refresh_ahead: Duration,
    pub(crate) refresh_ahead_fraction: f64,
    pub(crate) refresh_jitter: f64,
    pub(crate) min_refresh_interval: Duration,
    pub(crate) default_lifetime: Option<Duration>,
    pub(crate) fetch_timeout: Duration,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) rejections_before_pacing: u32,
    pub(crate) max_token_bytes: usize,
    pub(crate) auth_scheme: String,
    pub(crate) name: Arc<str>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            expiry_skew: DEFAULT_EXPIRY_SKEW,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
            refresh_ahead_fraction: DEFAULT_REFRESH_AHEAD_FRACTION,
            refresh_jitter: DEFAULT_REFRESH_JITTER,
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
            default_lifetime: Some(DEFAULT_LIFETIME),
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            rejections_before_pacing: DEFAULT_REJECTIONS_BEFORE_PACING,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            auth_scheme: DEFAULT_AUTH_SCHEME.to_owned(),
            name: Arc::from(DEFAULT_NAME),
        }
    }
}

/// The setters shared by [`TokenCacheBuilder`] and
/// [`KeyedTokenCacheBuilder`](crate::keyed::KeyedTokenCacheBuilder): one set of
/// settings, for one token or for each key.
macro_rules! cache_settings {
    () => {
        /// How long before its expiry a token stops being handed out, so that it
        /// does not expire in flight (clock skew, latency). At most 10 % of the
        /// token's lifetime is given up, so that short-lived tokens stay usable.
        /// Defaults to 10 seconds.
        pub fn expiry_skew(mut self, skew: ::std::time::Duration) -> Self {
            self.config.expiry_skew = skew;
            self
        }

        /// How long before a token stops being handed out a request that uses it
        /// starts a refresh in the background, while the token is still served.
        /// Defaults to 60 seconds (Gloo's guidance), and is at most
        /// [`refresh_ahead_fraction`](Self::refresh_ahead_fraction) of the usable
        /// life. A token nobody uses is never refreshed ahead.
        pub fn refresh_ahead(mut self, ahead: ::std::time::Duration) -> Self {
            self.config.refresh_ahead = ahead;
            self
        }

        /// The largest fraction of a token's usable life spent in the refresh-ahead
        /// window, from 0 (no refresh ahead) to 1; a refresh never starts in the
        /// first half of the usable life. Defaults to 0.25, so a 2 s token is
        /// refreshed in its last 0.45 s.
        pub fn refresh_ahead_fraction(mut self, fraction: f64) -> Self {
            self.config.refresh_ahead_fraction = $crate::cache::config::clamp_fraction(
                fraction,
                $crate::cache::config::DEFAULT_REFRESH_AHEAD_FRACTION,
            );
            self
        }

        /// The random fraction of the refresh-ahead window added to spread
        /// refreshes out, from 0 to 1, so that many processes sharing one client do
        /// not refresh in lock step. Defaults to 0.2.
        pub fn refresh_jitter(mut self, fraction: f64) -> Self {
            self.config.refresh_jitter = $crate::cache::config::clamp_fraction(
                fraction,
                $crate::cache::config::DEFAULT_REFRESH_JITTER,
            );
            self
        }

        /// The shortest time between installing a token and refreshing it ahead of
        /// expiry. A token that arrives with less life than this left is still
        /// handed to the callers waiting for it, but counts as a failed fetch (the
        /// next one backs off). Together they bound the fetch rate whatever a
        /// source returns: a token built long ago, one about to expire, one with a
        /// lifetime of a millisecond. Defaults to 500 milliseconds.
        pub fn min_refresh_interval(mut self, interval: ::std::time::Duration) -> Self {
            self.config.min_refresh_interval = interval;
            self
        }

        /// The lifetime assumed for tokens that come without an expiry; `None`
        /// treats them as never expiring. Defaults to one hour.
        pub fn default_lifetime(mut self, lifetime: Option<::std::time::Duration>) -> Self {
            self.config.default_lifetime = lifetime;
            self
        }

        /// The longest a single fetch may take before it fails as transient, so
        /// that no caller waits forever on a source that hangs. Defaults to 30
        /// seconds.
        pub fn fetch_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.config.fetch_timeout = timeout;
            self
        }

        /// The first and the longest delay between fetches after failures.
        /// Defaults to 250 milliseconds, doubling up to 30 seconds; a permanent
        /// failure waits the longest.
        ///
        /// `initial` is at least one millisecond, so that backoff can never be
        /// switched off by accident (zero doubled stays zero).
        pub fn backoff(
            mut self,
            initial: ::std::time::Duration,
            max: ::std::time::Duration,
        ) -> Self {
            let initial = initial.max($crate::cache::config::MIN_BACKOFF);
            self.config.initial_backoff = initial;
            self.config.max_backoff = max.max(initial);
            self
        }

        /// The longest `Retry-After` honoured; longer requests are cut to this.
        /// Defaults to 10 minutes.
        pub fn max_retry_after(mut self, max: ::std::time::Duration) -> Self {
            self.config.max_retry_after = max;
            self
        }

        /// How many tokens in a row a server may reject before the fetches
        /// that replace them are paced.
        ///
        /// A rejected token is replaced by a fetch, and the rejected request is
        /// sent once more with the new token. A few rejections in a row are bad
        /// luck (a revocation, a replica that has not seen the token yet), and
        /// their replacements start at once. When servers keep rejecting
        /// tokens (an API that rejects every token, a gateway that answers 401
        /// at random), each further replacement waits a pace after the previous
        /// one, starting at the initial [`backoff`](Self::backoff) and doubling
        /// up to its maximum, so the token endpoint sees a bounded number of
        /// requests. Requests are never held back for it: while a replacement
        /// waits, each request is sent once with the token it has, and its
        /// caller gets the API's own answer. The run ends when a token lives
        /// out its life, or when a token that a server accepted has been in use
        /// for longer than the pace before it is rejected.
        ///
        /// Defaults to 3: the fourth replacement in a run waits 250
        /// milliseconds, the fifth 500, and so on up to 30 seconds, about two
        /// token requests a minute against an API that rejects every token.
        pub fn rejections_before_pacing(mut self, rejections: u32) -> Self {
            self.config.rejections_before_pacing = rejections;
            self
        }

        /// The largest access token accepted, in bytes. A larger one is refused
        /// with a permanent error: sent in a header, it would make every request
        /// fail (`431 Request Header Fields Too Large`) for its whole life.
        /// Defaults to 16 KiB.
        pub fn max_token_bytes(mut self, max: usize) -> Self {
            self.config.max_token_bytes = max;
            self
        }

        /// The scheme written before the token in the `Authorization` header.
        /// Defaults to `Bearer`.
        pub fn auth_scheme(mut self, scheme: impl Into<String>) -> Self {
            self.config.auth_scheme = scheme.into();
            self
        }

        /// The cache's name, to tell caches apart in telemetry: every
        /// `tower_bearer.fetch` tracing span carries it as `cache`, and with the
        /// `metrics` feature every metric has it as its `cache` label (the
        /// metrics are listed in the README). The keys of a keyed cache share
        /// its name (each key's label is on the span as `key`, never in a
        /// metric's labels, whose number must stay bounded). Defaults to
        /// `default`.
        ///
        /// ```
        /// use tower_bearer::{StaticToken, TokenCache};
        ///
        /// let billing = TokenCache::builder(StaticToken::new("k")).name("billing-api").build();
        /// # drop(billing);
        /// ```
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.config.name = ::std::sync::Arc::from(name.into());
            self
        }
    };
}
pub(crate) use cache_settings;

/// Builds a [`TokenCache`] with non-default settings. Every setting has a
/// default that suits most APIs; each setter says what it is.
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
    gate: Option<EndpointGate>,
}

impl TokenCacheBuilder {
    pub(crate) fn new(source: impl TokenSource) -> Self {
        Self {
            source: BoxTokenSource::new(source),
            config: CacheConfig::default(),
            gate: None,
        }
    }

    cache_settings!();

    /// Fetches through `gate`, shared with the other caches that ask the
    /// same token endpoint: they then respect one in-flight limit and pause
    /// together when the endpoint is overloaded. By default a cache has no
    /// gate (it never runs more than one fetch anyway).
    pub fn gate(mut self, gate: EndpointGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Builds the cache. No token is fetched until one is first needed.
    pub fn build(self) -> TokenCache {
        // Caches with the default settings and no gate share one `Common`:
        // it is two thirds of an idle cache's own memory (BENCHMARKS.md).
        let common = if self.gate.is_none() && self.config == CacheConfig::default() {
            Common::shared_default()
        } else {
            Arc::new(Common::new(self.config, self.gate, false))
        };
        TokenCache::from_parts(self.source, common, None)
    }
}

pub(crate) fn clamp_fraction(value: f64, default: f64) -> f64 {
    if value.is_nan() {
        default
    } else {
        value.clamp(0.0, 1.0)
    }
}
