//! The builder of a shared tier ([`SharedTier::builder`] starts one): the
//! defaults of its settings ([`TierConfig`], `tier_config.rs`), the setters
//! that change them, and what `build` makes (the [`Fleet`], `fleet.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::encryption::{EncryptionKey, Keyring};
use super::error::SharedTierBuildError;
use super::fleet::Fleet;
use super::identity::check_namespace;
use super::keyed_shared_tier::KeyedSharedTier;
use super::redis_link::RedisLink;
use super::tier::{SharedTier, Upstream};
use super::tier_config::TierConfig;
use crate::oauth2::RefreshTokenSource;
use crate::redact;
use crate::secret::Secret;
use crate::source::{BoxTokenSource, TokenSource};

// Defaults, stated again in the setter docs.
const DEFAULT_NAMESPACE: &str = "tower-bearer";
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
const DEFAULT_REDIS_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30));
const DEFAULT_FAILURE_HOLD: Duration = Duration::from_secs(1);
const DEFAULT_UNKNOWN_LIFETIME: Duration = Duration::from_secs(3600);
const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
const DEFAULT_DOUBT_AFTER: Duration = Duration::from_secs(120);

/// The shortest lease: renewals come every third of it, and Redis commands
/// take their time.
const MIN_LEASE_TTL: Duration = Duration::from_millis(300);

/// Certificates for TLS to Redis (`rediss://`).
#[derive(Default)]
struct Tls {
    /// PEM: trusted instead of the platform's roots.
    root: Option<Vec<u8>>,
    /// PEM certificate chain and key, for servers that ask for one.
    client: Option<(Vec<u8>, Secret)>,
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
    tls: Tls,
    config: TierConfig,
}

impl SharedTier {
    /// A builder for a tier on the Redis server at `redis_url`
    /// (`redis://[:password@]host[:port][/db]`, or `rediss://` for TLS).
    /// Nothing connects until the first fetch.
    pub fn builder(redis_url: impl Into<Secret>) -> SharedTierBuilder {
        SharedTierBuilder::new(redis_url)
    }
}

impl SharedTierBuilder {
    fn new(redis_url: impl Into<Secret>) -> Self {
        Self {
            url: redis_url.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            sealing: None,
            opening: Vec::new(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            redis_backoff: DEFAULT_REDIS_BACKOFF,
            tls: Tls::default(),
            config: TierConfig {
                lease_ttl: DEFAULT_LEASE_TTL,
                failure_hold: DEFAULT_FAILURE_HOLD,
                local_fallback: true,
                doubt_after: DEFAULT_DOUBT_AFTER,
                unknown_lifetime: DEFAULT_UNKNOWN_LIFETIME,
                refresh_ttl: DEFAULT_REFRESH_TTL,
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
    /// of a plain tier go straight to the source, a refreshing tier's fail):
    /// `initial`, doubling with each further failure up to `max`, jittered
    /// (the cache's own backoff). Zero asks Redis again at every fetch.
    /// Defaults to 1 second, doubling up to 30 seconds.
    pub fn redis_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.redis_backoff = (initial, max.max(initial));
        self
    }

    /// Trusts this CA certificate (PEM) for `rediss://` instead of the
    /// platform's roots: a self-hosted Redis with its own CA. TLS is
    /// rustls with the `ring` provider; the certificate, as any key, never
    /// shows in `Debug`.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root = Some(pem.into());
        self
    }

    /// Presents this client certificate chain and key (both PEM) for
    /// `rediss://`, to a Redis that asks for one (`tls-auth-clients`).
    pub fn tls_client_certificate(
        mut self,
        chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Secret>,
    ) -> Self {
        self.tls.client = Some((chain_pem.into(), key_pem.into()));
        self
    }

    /// How long a lease lasts unless its holder renews it (it does, every
    /// third of this, while it fetches or redeems). A process that dies
    /// holding the lease delays the fleet by at most this; a process that
    /// stalls for longer loses it (what it writes then is fenced, what it
    /// redeems stays its own). At least 300 milliseconds; defaults to 5
    /// seconds.
    ///
    /// There is no longest wait: a process waits for the lease holder while
    /// the holder renews its lease, bounded by its cache's fetch timeout, so
    /// that a slow token endpoint is asked once, not once per process.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl.max(MIN_LEASE_TTL);
        self
    }

    /// After a lease holder's fetch fails, how long the rest of the fleet
    /// asking for the same identity is answered with that failure instead of
    /// fetching again: a `Retry-After` from the token endpoint, else this for
    /// a transient failure, else 30 seconds for a permanent one; at most 10
    /// minutes. The failure keeps its kind and its endpoint-overload mark
    /// and is never seen by another identity. Zero switches it off. Defaults
    /// to 1 second.
    pub fn failure_hold(mut self, hold: Duration) -> Self {
        self.config.failure_hold = hold;
        self
    }

    /// Whether a fetch of a tier built with [`build`](Self::build) falls
    /// back to the source when Redis cannot be used (down, stalled, backing
    /// off, or holding an entry sealed with a key this process was not
    /// given). Each process then fetches for itself, once per its own cache's
    /// single flight. Defaults to `true`.
    ///
    /// A tier built with [`build_refreshing`](Self::build_refreshing) never
    /// falls back, whatever this says: a process that redeems a refresh token
    /// another process has already spent makes the server revoke the whole
    /// grant. Without Redis its fetch fails (transient,
    /// [`FleetError::RedisUnavailable`](super::FleetError::RedisUnavailable));
    /// the cache keeps serving its token while it is valid and tries again
    /// after its backoff.
    pub fn local_fallback(mut self, fallback: bool) -> Self {
        self.config.local_fallback = fallback;
        self
    }

    /// How long tokens without an expiry are shared before the fleet asks
    /// for a new one (every key in Redis expires). Tokens that live longer
    /// than a day are shared for a day. Defaults to one hour.
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.unknown_lifetime = lifetime.max(Duration::from_millis(1));
        self
    }

    /// How long the refresh entry of a [refreshing](Self::build_refreshing)
    /// tier is kept after its last rotation: set it to your provider's
    /// refresh-token lifetime. An identity unused for longer loses its chain
    /// (its processes then fail with
    /// [`ChainLost(Forgotten)`](super::ChainLoss::Forgotten) until reseeded).
    /// Defaults to 90 days.
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.config.refresh_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// How long the fleet waits for a process that started redeeming the
    /// refresh token and then stopped renewing its lease (stalled, or died)
    /// before it reports the chain [`InDoubt`](super::ChainLoss::InDoubt)
    /// instead of [`RedemptionPending`](super::FleetError::RedemptionPending).
    /// Nobody else redeems meanwhile, either way: if that process comes back
    /// and stores what it got, the fleet carries on. Defaults to 2 minutes.
    pub fn doubt_after(mut self, after: Duration) -> Self {
        self.config.doubt_after = after;
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
    /// atomically: each refresh token is presented to the token endpoint at
    /// most once in the whole fleet, by the process that marked it in Redis
    /// first, so rotation works across replicas.
    ///
    /// The fleet starts the chain from `source`'s refresh token (and the
    /// token of its code exchange, if any) when Redis has never held one that
    /// this process knows of; from then on Redis's is used. A process never
    /// redeems a refresh token of its own once it has seen the chain: if
    /// Redis loses the chain, or goes back to an older place in it, the
    /// fetch fails with [`FleetError::ChainLost`](super::FleetError::ChainLost)
    /// until the application [reseeds](SharedTier::reseed) it. `source`'s
    /// [`on_rotate`](RefreshTokenSource::on_rotate) is called in the process
    /// that redeemed the old one, once the new one is stored in Redis.
    pub fn build_refreshing(
        self,
        source: impl Into<Arc<RefreshTokenSource>>,
    ) -> Result<SharedTier, SharedTierBuildError> {
        Ok(self.fleet()?.single(Upstream::Refreshing(source.into())))
    }

    /// Builds the fleet side of a [`KeyedTokenCache`](crate::keyed::KeyedTokenCache):
    /// one tier per key, all on one Redis connection with these settings,
    /// each key's entries apart from every other key's and every other
    /// namespace's. See [`KeyedSharedTier`].
    pub fn build_keyed(self) -> Result<KeyedSharedTier, SharedTierBuildError> {
        Ok(KeyedSharedTier::new(self.fleet()?))
    }

    /// Builds what tiers share: one link to Redis (nothing connects yet),
    /// the keyring, the settings.
    fn fleet(self) -> Result<Fleet, SharedTierBuildError> {
        let url_for_logs = redact::url(self.url.expose());
        let client = match (self.tls.root, self.tls.client) {
            (None, None) => redis::Client::open(self.url.expose()),
            (root_cert, client) => redis::Client::build_with_tls(
                self.url.expose(),
                redis::TlsCertificates {
                    client_tls: client.map(|(client_cert, key)| redis::ClientTlsConfig {
                        client_cert,
                        client_key: key.expose().as_bytes().to_vec(),
                    }),
                    root_cert,
                },
            ),
        }
        .map_err(|err| SharedTierBuildError::InvalidRedisUrl {
            url: url_for_logs.clone(),
            reason: redact::server_text(&err.to_string(), &[self.url.expose()]),
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
            .field("tls_root_certificate", &self.tls.root.is_some())
            .field("tls_client_certificate", &self.tls.client.is_some())
            .field("config", &self.config)
            .finish()
    }
}
