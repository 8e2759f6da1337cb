//! The builder of a keyed cache: how many keys, how long idle, how keys are
//! named, which gate, how a failing factory is asked again, and the settings
//! of each key's cache.

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::clock_ring::ClockRing;
use super::failed_keys::FailedKeys;
use super::keyed_cache::KeyedTokenCache;
use super::keys::{Factory, KeyHasher, Keys, Labeler, Ring};
use super::stats::KeyCounters;
use crate::cache::config::{cache_settings, CacheConfig};
use crate::cache::{Common, EndpointGate};
use crate::error::TokenError;
use crate::source::{BoxTokenSource, TokenSource};

// Defaults, stated again in the setter docs.
const DEFAULT_MAX_KEYS: usize = 10_000;
const DEFAULT_MAX_FAILED_KEYS: usize = 1_000;
const DEFAULT_FACTORY_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const DEFAULT_FACTORY_MAX_BACKOFF: Duration = Duration::from_secs(60);

// The constructors that hand out a builder live with it, so that the
// cache's file need not import this one.
impl<K> KeyedTokenCache<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A builder to set the number of keys, the idle time, the labels, the
    /// gate and the per-key cache settings; `factory` makes each key's source.
    pub fn builder<S, F>(factory: F) -> KeyedTokenCacheBuilder<K>
    where
        S: TokenSource,
        F: Fn(&K) -> S + Send + Sync + 'static,
    {
        KeyedTokenCacheBuilder::new(Some(Box::new(move |key: &K| {
            Ok(BoxTokenSource::new(factory(key)))
        })))
    }

    /// A builder for a cache whose `factory` may fail for a key: a tenant
    /// without configuration, a configuration the
    /// [`TokenEndpoint`](crate::oauth2::TokenEndpoint) builder refuses.
    ///
    /// The factory's error goes to the callers of that key, as a
    /// [`TokenError`] of the same kind whose cause is
    /// [`SourceError::FactoryFailed`](crate::keyed::SourceError::FactoryFailed); through the layer, the request is not
    /// sent. The key is not kept, and the factory is not asked again for it
    /// before a backoff ends (1 s after a first transient failure, doubling
    /// up to 60 s; 60 s after a permanent one: see
    /// [`factory_backoff`](crate::keyed::KeyedTokenCacheBuilder::factory_backoff)); until
    /// then its callers get the same error at once, with the time left as
    /// its [`retry_after`](TokenError::retry_after). At most
    /// [`max_failed_keys`](crate::keyed::KeyedTokenCacheBuilder::max_failed_keys) failed
    /// keys are remembered (1,000 by default), however many bogus keys come.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use tower_bearer::keyed::KeyedTokenCache;
    /// use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
    /// use tower_bearer::TokenError;
    ///
    /// // Tenant id -> (token URL, client id, client secret), loaded at start-up.
    /// let tenants: HashMap<String, (String, String, String)> = HashMap::new();
    /// let cache = KeyedTokenCache::try_builder(move |tenant: &String| {
    ///     let (url, id, secret) = tenants
    ///         .get(tenant)
    ///         .ok_or_else(|| TokenError::permanent("unknown tenant"))?;
    ///     // A URL the builder refuses is this tenant's error, not a panic.
    ///     let endpoint = TokenEndpoint::builder(url)
    ///         .client_id(id)
    ///         .client_secret(secret.as_str())
    ///         .build()?;
    ///     Ok::<_, TokenError>(ClientCredentials::new(endpoint))
    /// })
    /// .build();
    /// # let _ = cache;
    /// ```
    pub fn try_builder<S, E, F>(factory: F) -> KeyedTokenCacheBuilder<K>
    where
        S: TokenSource,
        E: Into<TokenError>,
        F: Fn(&K) -> Result<S, E> + Send + Sync + 'static,
    {
        KeyedTokenCacheBuilder::new(Some(Box::new(move |key: &K| {
            factory(key).map(BoxTokenSource::new).map_err(Into::into)
        })))
    }

    /// A builder for a cache without a factory: every key's source is
    /// [`insert`](Self::insert)ed. A key that is not held fails at once with
    /// [`SourceError::NotInserted`](crate::keyed::SourceError::NotInserted) (kind permanent); through the layer, the
    /// request is not sent. See [`insert`](Self::insert) for an example.
    pub fn without_factory() -> KeyedTokenCacheBuilder<K> {
        KeyedTokenCacheBuilder::new(None)
    }
}

/// Builds a [`KeyedTokenCache`]. The per-key settings (skew, refresh ahead,
/// backoff, timeouts, …) are those of
/// [`TokenCacheBuilder`](crate::TokenCacheBuilder), applied to every key.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::StaticToken;
/// use tower_bearer::cache::EndpointGate;
/// use tower_bearer::keyed::KeyedTokenCache;
///
/// let cache = KeyedTokenCache::builder(|tenant: &u64| StaticToken::new(format!("key-{tenant}")))
///     .max_keys(50_000)
///     .evict_idle_after(Duration::from_secs(3600))
///     .label(|tenant| format!("tenant-{tenant}"))
///     .gate(EndpointGate::new(32))
///     .refresh_ahead(Duration::from_secs(120))
///     .build();
/// assert_eq!(cache.max_keys(), 50_000);
/// assert_eq!(cache.gate().max_in_flight(), 32);
/// ```
pub struct KeyedTokenCacheBuilder<K> {
    factory: Option<Box<Factory<K>>>,
    labeler: Option<Box<Labeler<K>>>,
    config: CacheConfig,
    gate: Option<EndpointGate>,
    max_keys: usize,
    idle_after: Option<Duration>,
    max_failed_keys: usize,
    factory_backoff: (Duration, Duration),
}

impl<K> KeyedTokenCacheBuilder<K>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
{
    pub(super) fn new(factory: Option<Box<Factory<K>>>) -> Self {
        Self {
            factory,
            labeler: None,
            config: CacheConfig::default(),
            gate: None,
            max_keys: DEFAULT_MAX_KEYS,
            idle_after: None,
            max_failed_keys: DEFAULT_MAX_FAILED_KEYS,
            factory_backoff: (DEFAULT_FACTORY_INITIAL_BACKOFF, DEFAULT_FACTORY_MAX_BACKOFF),
        }
    }

    /// The most keys held at once (at least 1); adding one more drops the
    /// least recently used. Defaults to 10,000.
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max.max(1);
        self
    }

    /// Drops keys not used for `idle` (and not fetching), when keys are added
    /// or when [`evict_idle`](KeyedTokenCache::evict_idle) is called; a key
    /// goes no sooner than `idle` after its last use, and, while keys keep
    /// being added, no later than a quarter of `idle` after that. By default
    /// keys are dropped only to stay within [`max_keys`](Self::max_keys).
    pub fn evict_idle_after(mut self, idle: Duration) -> Self {
        self.idle_after = Some(idle);
        self
    }

    /// Names each key in tracing spans and events (`key = ...`): a workspace
    /// id, a tenant name. Never put a secret in a label (a session id is
    /// one). Called when a key is added, under no lock. By default keys are
    /// numbered in the order they were added (`#1`, `#2`, …).
    pub fn label(mut self, label: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        self.labeler = Some(Box::new(label));
        self
    }

    /// Every key fetches through `gate` (which other caches asking the same
    /// token endpoint may share). By default the cache has a gate of its own
    /// allowing 16 fetches at once, with default pauses.
    pub fn gate(mut self, gate: EndpointGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// How long the factory of a [`try_builder`](KeyedTokenCache::try_builder)
    /// cache is not asked again for a key after it failed for it: `initial`
    /// after a first transient failure, doubling with each failure in a row
    /// up to `max`; `max` at once after a permanent one, which repeating
    /// cannot mend. A `Retry-After` on the factory's error is honoured up to
    /// `max`. Meanwhile the key's callers get the same error at once. A key
    /// made or inserted starts afresh. Defaults to 1 s and 60 s.
    pub fn factory_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.factory_backoff = (initial.min(max), max);
        self
    }

    /// The most keys whose factory failure is remembered at once (at least
    /// 1). Keys come from requests, so bogus ones can come without end: past
    /// this many, the failure whose backoff ends first is forgotten (its key
    /// asks the factory on its next use). Defaults to 1,000.
    pub fn max_failed_keys(mut self, max: usize) -> Self {
        self.max_failed_keys = max.max(1);
        self
    }

    cache_settings!();

    /// Builds the cache. No source is made and no token fetched until a key
    /// is first used (or inserted).
    pub fn build(self) -> KeyedTokenCache<K> {
        let gate = self.gate.unwrap_or_else(|| EndpointGate::builder().build());
        let common = Common::new(self.config, Some(gate.clone()), true);
        KeyedTokenCache {
            inner: Arc::new(Keys {
                // Blocking resizes: the key that makes the table grow moves
                // every entry at once (under the ring lock, which serializes
                // additions anyway), so that lookups never search two tables,
                // as they do for as long as an incremental resize is left
                // half done (until enough further additions finish it).
                map: papaya::HashMap::builder()
                    .hasher(KeyHasher::default())
                    .resize_mode(papaya::ResizeMode::Blocking)
                    .build(),
                ring: Mutex::new(Ring {
                    clock: ClockRing::new(),
                    next_idle_pass: None,
                }),
                factory: self.factory,
                failed: Mutex::new(FailedKeys::new(
                    self.max_failed_keys,
                    self.factory_backoff.0,
                    self.factory_backoff.1,
                )),
                labeler: self.labeler,
                common: Arc::new(common),
                gate,
                max_keys: self.max_keys,
                idle_after: self.idle_after,
                counters: KeyCounters::default(),
            }),
        }
    }
}

impl<K> fmt::Debug for KeyedTokenCacheBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedTokenCacheBuilder")
            .field("config", &self.config)
            .field("gate", &self.gate)
            .field("max_keys", &self.max_keys)
            .field("evict_idle_after", &self.idle_after)
            .field("factory", &self.factory.as_ref().map(|_| ".."))
            .field("max_failed_keys", &self.max_failed_keys)
            .field("factory_backoff", &self.factory_backoff)
            .finish_non_exhaustive()
    }
}
