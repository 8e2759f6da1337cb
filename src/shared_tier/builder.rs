//! Settings of the shared tier, their defaults, and the builder that sets
//! them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::encryption::{EncryptionKey, Keyring};
use super::error::SharedTierBuildError;
use super::keyed::KeyedSharedTier;
use super::keys::check_namespace;
use super::redis_link::RedisLink;
use super::{Fleet, SharedTier, Upstream};
use crate::cache::config::CacheConfig;
use crate::oauth2::RefreshTokenSource;
use crate::redact;
use crate::secret::Secret;
use crate::source::{BoxTokenSource, TokenSource};

// Defaults, stated again in the setter docs.
const DEFAULT_NAMESPACE: &str = "tower-bearer";
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);
const DEFAULT_REDIS_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30));
const DEFAULT_FAILURE_HOLD: Duration = Duration::from_secs(1);

/// The shortest lease: renewals come every third of it, and Redis commands
/// take their time.
const MIN_LEASE_TTL: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub(crate) struct TierConfig {
    pub(crate) lease_ttl: Duration,
    pub(crate) max_wait: Duration,
    pub(crate) failure_hold: Duration,
    pub(crate) local_fallback: Option<bool>,
    /// The cache's timing, for the refresh moment written into each entry.
    pub(crate) timing: CacheConfig,
}

/// Builds a [`SharedTier`]. Only the encryption key is required; every other
/// setting has a default, which each setter states.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::shared_tier::{EncryptionKey, SharedTier};
/// use tower_bearer::StaticToken;
///
/// let key = EncryptionKey::new("2026-11", [7; 32]).unwrap();
/// let tier = SharedTier::builder("redis://:password@127.0.0.1:6379/0")
///     .namespace("billing-api:prod")
///     .encryption_key(key)
///     .redis_timeout(Duration::from_millis(200))
///     .lease_ttl(Duration::from_secs(10))
///     .build(StaticToken::new("k"))
///     .unwrap();
/// assert!(!format!("{tier:?}").contains("password"));
/// ```
pub struct SharedTierBuilder {
    url: Secret,
    namespace: String,
    sealing: Option<EncryptionKey>,
    opening: Vec<EncryptionKey>,
    redis_timeout: Duration,
    redis_backoff: (Duration, Duration),
    config: TierConfig,
}

impl SharedTierBuilder {
    pub(super) fn new(redis_url: impl Into<Secret>) -> Self {
        Self {
            url: redis_url.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            sealing: None,
            opening: Vec::new(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            redis_backoff: DEFAULT_REDIS_BACKOFF,
            config: TierConfig {
                lease_ttl: DEFAULT_LEASE_TTL,
                max_wait: DEFAULT_MAX_WAIT,
                failure_hold: DEFAULT_FAILURE_HOLD,
                local_fallback: None,
                timing: CacheConfig::default(),
            },
        }
    }

    /// The prefix of every Redis key the tier uses: one namespace per shared
    /// token (per client, audience and scope). 1 to 128 printable ASCII
    /// characters without spaces or braces. Defaults to `tower-bearer`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The key new entries are sealed with (and opened with). Required.
    pub fn encryption_key(mut self, key: EncryptionKey) -> Self {
        self.sealing = Some(key);
        self
    }

    /// A further key to open entries with, such as the one being rotated out
    /// or the one about to be rotated in; repeatable. See
    /// [`EncryptionKey`] for the rotation procedure.
    pub fn decryption_key(mut self, key: EncryptionKey) -> Self {
        self.opening.push(key);
        self
    }

    /// The longest any Redis command (or connection attempt) may take before
    /// the tier gives up on Redis for this fetch and falls back. Defaults to
    /// 500 milliseconds.
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// After a Redis failure, how long the tier leaves Redis alone (fetches
    /// go straight to the source): `initial`, doubling with each further
    /// failure up to `max`, jittered. Defaults to 1 second, doubling up to
    /// 30 seconds.
    pub fn redis_backoff(mut self, initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        self.redis_backoff = (initial, max.max(initial));
        self
    }

    /// How long a lease lasts unless its holder renews it (it does, every
    /// third of this, while it fetches). A process that dies holding the lease
    /// delays the fleet by at most this. At least 300 milliseconds; defaults
    /// to 5 seconds.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl.max(MIN_LEASE_TTL);
        self
    }

    /// The longest a process waits for another one's fetch before it fetches
    /// from the source itself. Defaults to 10 seconds.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.config.max_wait = wait;
        self
    }

    /// After a lease holder's fetch fails, how long the rest of the fleet is
    /// answered with that failure instead of fetching again: a `Retry-After`
    /// from the token endpoint, else this for a transient failure, else 30
    /// seconds for a permanent one. Zero switches it off. Defaults to
    /// 1 second.
    pub fn failure_hold(mut self, hold: Duration) -> Self {
        self.config.failure_hold = hold;
        self
    }

    /// Whether a fetch falls back to the source when Redis cannot be used
    /// (down, stalled, backing off, or holding an entry this process cannot
    /// open). Defaults to `true` for [`build`](Self::build): each process
    /// then fetches for itself, once per its own cache's single flight.
    ///
    /// Defaults to `false` for [`build_refreshing`](Self::build_refreshing):
    /// with rotating refresh tokens, a process that redeems a refresh token
    /// another process has already spent makes the server revoke the whole
    /// grant. Without Redis, the fetch fails (transient); the cache keeps
    /// serving its token while it is valid and tries again after its backoff.
    pub fn local_fallback(mut self, fallback: bool) -> Self {
        self.config.local_fallback = Some(fallback);
        self
    }

    /// The [`TokenCacheBuilder::expiry_skew`](crate::TokenCacheBuilder::expiry_skew)
    /// of the caches in front of this tier. Set the same value on both (the
    /// defaults agree): each entry records the moment the first cache of the
    /// fleet will want a new token, computed with these settings. Defaults
    /// to 10 seconds, as the cache's.
    pub fn expiry_skew(mut self, skew: Duration) -> Self {
        self.config.timing.expiry_skew = skew;
        self
    }

    /// The caches' [`refresh_ahead`](crate::TokenCacheBuilder::refresh_ahead);
    /// see [`expiry_skew`](Self::expiry_skew). Defaults to 60 seconds, as
    /// the cache's.
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.config.timing.refresh_ahead = ahead;
        self
    }

    /// The caches' [`refresh_ahead_fraction`](crate::TokenCacheBuilder::refresh_ahead_fraction);
    /// see [`expiry_skew`](Self::expiry_skew). Defaults to 0.25, as the
    /// cache's.
    pub fn refresh_ahead_fraction(mut self, fraction: f64) -> Self {
        if !fraction.is_nan() {
            self.config.timing.refresh_ahead_fraction = fraction.clamp(0.0, 1.0);
        }
        self
    }

    /// The caches' [`refresh_jitter`](crate::TokenCacheBuilder::refresh_jitter);
    /// see [`expiry_skew`](Self::expiry_skew). Defaults to 0.2, as the
    /// cache's.
    pub fn refresh_jitter(mut self, fraction: f64) -> Self {
        if !fraction.is_nan() {
            self.config.timing.refresh_jitter = fraction.clamp(0.0, 1.0);
        }
        self
    }

    /// The caches' [`default_lifetime`](crate::TokenCacheBuilder::default_lifetime)
    /// for tokens without an expiry: in Redis they expire after it, so that
    /// the fleet agrees on when. Defaults to one hour.
    pub fn default_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.config.timing.default_lifetime = lifetime;
        self
    }

    /// Builds a tier that shares the tokens of `source` (client credentials,
    /// a closure, any [`TokenSource`]): one process of the fleet fetches, the
    /// others read.
    pub fn build(self, source: impl TokenSource) -> Result<SharedTier, SharedTierBuildError> {
        Ok(self
            .fleet()?
            .single(Upstream::Source(BoxTokenSource::new(source))))
    }

    /// Builds a tier around a refresh-token grant whose refresh token lives
    /// in Redis, sealed, next to the access token, and is replaced with it
    /// atomically: each refresh token is redeemed once in the whole fleet,
    /// by the process holding the lease, so rotation works across replicas.
    ///
    /// The fleet starts from `source`'s refresh token (and the token of its
    /// code exchange, if any) when Redis holds none; from then on Redis's is
    /// used, and every process learns each new one as it reads the shared
    /// token, so that a Redis that lost its data restarts from the newest one
    /// a process has seen. `source`'s [`on_rotate`](RefreshTokenSource::on_rotate)
    /// is called in the process that redeemed the old one.
    pub fn build_refreshing(
        self,
        source: impl Into<Arc<RefreshTokenSource>>,
    ) -> Result<SharedTier, SharedTierBuildError> {
        Ok(self.fleet()?.single(Upstream::Refreshing(source.into())))
    }

    /// Builds the fleet side of a [`KeyedTokenCache`](crate::keyed::KeyedTokenCache):
    /// one tier per key, all on one Redis connection with these settings,
    /// each key's entries under `{namespace}:{key}`. See
    /// [`KeyedSharedTier`].
    pub fn build_keyed(self) -> Result<KeyedSharedTier, SharedTierBuildError> {
        Ok(KeyedSharedTier::new(self.fleet()?))
    }

    /// Builds what tiers share: one link to Redis (nothing connects yet),
    /// the keyring, the settings.
    fn fleet(self) -> Result<Fleet, SharedTierBuildError> {
        let url_for_logs = redact::url(self.url.expose());
        let client = redis::Client::open(self.url.expose()).map_err(|err| {
            SharedTierBuildError::InvalidRedisUrl {
                url: url_for_logs.clone(),
                reason: redact::server_text(&err.to_string(), &[self.url.expose()]),
            }
        })?;
        let password = client
            .get_connection_info()
            .redis
            .password
            .clone()
            .map(Secret::new);
        check_namespace(&self.namespace).map_err(SharedTierBuildError::InvalidNamespace)?;
        let sealing = self
            .sealing
            .ok_or(SharedTierBuildError::MissingEncryptionKey)?;
        let keyring = Keyring::new(sealing, self.opening)?;
        Ok(Fleet::new(
            RedisLink::new(client, password, self.redis_timeout, self.redis_backoff),
            url_for_logs,
            self.namespace,
            keyring,
            self.config,
        ))
    }
}

impl fmt::Debug for SharedTierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTierBuilder")
            .field("redis", &redact::url(self.url.expose()))
            .field("namespace", &self.namespace)
            .field("encryption_key", &self.sealing)
            .field("decryption_keys", &self.opening)
            .field("redis_timeout", &self.redis_timeout)
            .field("redis_backoff", &self.redis_backoff)
            .field("config", &self.config)
            .finish()
    }
}
