//! The keyed cache itself: a map from key to [`TokenCache`] read without a
//! lock, and a CLOCK ring, under a lock, that decides which keys stay.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::builder::KeyedTokenCacheBuilder;
use super::clock_ring::{ClockRing, Tracked};
use super::failed_keys::FailedKeys;
use super::source_error::SourceError;
use super::stats::{KeyCounters, KeyedStats};
use crate::cache::{CacheStats, Common, CurrentToken, EndpointGate, Generation, TokenCache};
use crate::error::TokenError;
use crate::source::{BoxTokenSource, TokenSource};

/// Makes the token source of a key, or says why it cannot.
pub(super) type Factory<K> = dyn Fn(&K) -> Result<BoxTokenSource, TokenError> + Send + Sync;
/// Names a key in tracing.
pub(super) type Labeler<K> = dyn Fn(&K) -> String + Send + Sync;

/// Caches one token per key: many tenants, or many users, behind one client.
///
/// Each key's [`TokenSource`] comes from one of two places:
///
/// - **a factory** makes it the first time the key is used (for example
///   [`ClientCredentials`](crate::oauth2::ClientCredentials) with that
///   workspace's `subject`): [`new`](Self::new) and [`builder`](Self::builder)
///   take one that cannot fail, [`try_builder`](Self::try_builder) one that
///   can (the tenant's configuration may be missing or wrong); its error goes
///   to the caller, typed ([`SourceError`]), and the key is not kept;
/// - **[`insert`](Self::insert)** puts in a source made elsewhere, such as a
///   signed-in user's [`RefreshTokenSource`](crate::oauth2::RefreshTokenSource)
///   from the login callback. A cache built with
///   [`without_factory`](Self::without_factory) holds only those.
///
/// Each key gets a [`TokenCache`] of its own, with the whole protocol
/// ([`get`](Self::get) returns it), and the keyed cache adds, for made and
/// inserted keys alike:
///
/// - **bounded memory:** at most [`max_keys`](KeyedTokenCacheBuilder::max_keys)
///   keys (10,000 by default); beyond it the least recently used key is
///   dropped (CLOCK, see below), and optionally every key idle longer than
///   [`evict_idle_after`](KeyedTokenCacheBuilder::evict_idle_after). No key
///   has a task; dropping happens when a key is added (or when you call
///   [`evict_idle`](Self::evict_idle)). A dropped key's token is gone: its
///   next use makes its source again (or, without a factory, fails).
///   Failures of the factory are remembered for at most
///   [`max_failed_keys`](KeyedTokenCacheBuilder::max_failed_keys) keys.
/// - **one view of the token endpoint:** every key fetches through one
///   [`EndpointGate`] (by default its own, 16 fetches at a time): a cold start
///   of a thousand keys asks the endpoint at most that many at once, and a
///   failure the endpoint marks as its own overload (`429`, `503`,
///   `temporarily_unavailable`) pauses every key.
/// - **a label per key** on tracing spans and events (`key = ...`), chosen by
///   [`label`](KeyedTokenCacheBuilder::label) (never the token; by default a
///   number in the order keys were added), and **stats** per key and summed.
///
/// The least recently used key is approximated by CLOCK: a lookup sets a bit
/// on its key (a load, and a store only when the bit was clear), and a key
/// being added sweeps the keys in the order they came, giving each key used
/// since the sweep last passed (or fetching) a second chance and dropping the
/// first that has none. A key looked up between additions is never dropped;
/// a key added and not looked up again is the first to go.
///
/// The factory and the labeler run under no lock: a slow factory holds up
/// the callers of its own key, never those of another. When several threads
/// meet the same new key at once, each may run the factory; the cache keeps
/// one source and drops the others unused (a source fetches only through the
/// cache, so each key still fetches once however many callers).
///
/// The key type should be cheap to clone and compare (an integer, an
/// `Arc<str>`, a `HeaderValue`): a lookup hashes it on every request, with
/// foldhash seeded at random per cache (fast; it resists crafted collisions
/// only as long as the seed stays unknown, unlike the standard library's
/// SipHash). Keys that come from requests are untrusted: every new key costs
/// a call of the factory and a token fetch, so check them (the layer's key
/// function may return `None` for unknown ones) before they reach the cache.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::{from_fn, AccessToken};
/// use tower_bearer::keyed::KeyedTokenCache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // One token per workspace (in real use, `ClientCredentials` with a `subject`).
/// let cache = KeyedTokenCache::builder(|workspace: &String| {
///     let workspace = workspace.clone();
///     from_fn(move || {
///         let token = format!("token-for-{workspace}");
///         async move { Ok(AccessToken::new(token).with_expires_in(Duration::from_secs(3600))) }
///     })
/// })
/// .max_keys(1_000)
/// .label(|workspace| workspace.clone())
/// .build();
///
/// let a = cache.acquire(&"wks_a".to_owned()).await.unwrap();
/// let b = cache.acquire(&"wks_b".to_owned()).await.unwrap();
/// assert_eq!(a.header_value(), "Bearer token-for-wks_a");
/// assert_eq!(b.header_value(), "Bearer token-for-wks_b");
///
/// // A rejection on one key never touches another.
/// cache.reject(&"wks_a".to_owned(), a.generation());
/// assert!(cache.current(&"wks_a".to_owned()).unwrap().is_none());
/// let b_now = cache.current(&"wks_b".to_owned()).unwrap().unwrap();
/// assert_eq!(b_now.generation(), b.generation());
/// assert_eq!(cache.stats().tokens.fetches, 3);
/// # }
/// ```
pub struct KeyedTokenCache<K> {
    pub(super) inner: Arc<Keyed<K>>,
}

/// How the map hashes keys: foldhash (its "quality" variant), seeded at
/// random for each cache. A lookup hashes the key on every request, and
/// SipHash, the standard library's default, was 191 of the lookup's 343
/// instructions for a 12-byte key (BENCHMARKS.md). foldhash resists HashDoS
/// only as far as its per-cache random seed stays secret (it is not a keyed
/// cryptographic hash like SipHash): keys that come from requests can be
/// chosen by whoever sends them, but every new key also costs a call of the
/// factory and a token fetch, and the cache holds at most `max_keys`, so
/// check untrusted keys before they reach it (see the type's docs) whatever
/// the hash.
pub(super) type KeyHasher = foldhash::quality::RandomState;

pub(super) struct Keyed<K> {
    /// Read without a lock; written only under `ring`'s lock, so that the map
    /// and the ring always hold the same keys.
    pub(super) map: papaya::HashMap<K, TokenCache, KeyHasher>,
    pub(super) ring: Mutex<Ring<K>>,
    /// `None`: keys come only from `insert`.
    pub(super) factory: Option<Box<Factory<K>>>,
    /// Keys whose factory failed, not asked again before their backoff ends.
    /// Never locked while `ring` is held.
    pub(super) failed: Mutex<FailedKeys<K>>,
    pub(super) labeler: Option<Box<Labeler<K>>>,
    pub(super) common: Arc<Common>,
    /// The gate, also in `common`: kept here so that `gate()` needs no unwrap.
    pub(super) gate: EndpointGate,
    pub(super) max_keys: usize,
    pub(super) idle_after: Option<Duration>,
    pub(super) counters: KeyCounters,
}

pub(super) struct Ring<K> {
    pub(super) clock: ClockRing<K, TokenCache>,
    /// When the next pass over idle keys is due.
    pub(super) next_idle_pass: Option<Instant>,
}

impl Tracked for TokenCache {
    fn take_used(&self) -> bool {
        TokenCache::take_used(self)
    }

    fn busy(&self) -> bool {
        self.is_fetching()
    }
}

impl<K> Clone for KeyedTokenCache<K> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K> KeyedTokenCache<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A keyed cache with default settings; `factory` makes each key's source.
    pub fn new<S, F>(factory: F) -> Self
    where
        S: TokenSource,
        F: Fn(&K) -> S + Send + Sync + 'static,
    {
        Self::builder(factory).build()
    }

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
    /// [`SourceError::FactoryFailed`]; through the layer, the request is not
    /// sent. The key is not kept, and the factory is not asked again for it
    /// before a backoff ends (1 s after a first transient failure, doubling
    /// up to 60 s; 60 s after a permanent one: see
    /// [`factory_backoff`](KeyedTokenCacheBuilder::factory_backoff)); until
    /// then its callers get the same error at once, with the time left as
    /// its [`retry_after`](TokenError::retry_after). At most
    /// [`max_failed_keys`](KeyedTokenCacheBuilder::max_failed_keys) failed
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
    /// [`SourceError::NotInserted`] (kind permanent); through the layer, the
    /// request is not sent. See [`insert`](Self::insert) for an example.
    pub fn without_factory() -> KeyedTokenCacheBuilder<K> {
        KeyedTokenCacheBuilder::new(None)
    }

    /// The cache of `key`'s token, added (and its source made) if the key is
    /// new; adding may drop the least recently used key, or idle ones.
    ///
    /// Fails if the key is not held and no source can be had for it: the
    /// factory failed (now, or recently enough that it is not asked again
    /// yet), or the cache has none and the key was not inserted; the cause
    /// is a [`SourceError`].
    ///
    /// A known key costs a hash, a lock-free lookup and a reference count.
    pub fn get(&self, key: &K) -> Result<TokenCache, TokenError> {
        if let Some(cache) = self.inner.map.pin().get(key) {
            cache.mark_used();
            return Ok(cache.clone());
        }
        self.inner.make(key)
    }

    /// Puts `source` in as `key`'s token source, made elsewhere: a signed-in
    /// user's [`RefreshTokenSource`](crate::oauth2::RefreshTokenSource) from
    /// the login callback, keyed by session. It counts towards
    /// [`max_keys`](KeyedTokenCacheBuilder::max_keys) and may be dropped like
    /// any key (least recently used, idle, [`remove`](Self::remove)); its
    /// fetches go through the cache's gate and settings, and its counters
    /// into the [`stats`](Self::stats).
    ///
    /// A source already held for `key` is replaced, with its token (requests
    /// in flight with that token finish as they are), and a remembered
    /// failure of the factory for `key` is forgotten. Takes time in
    /// proportion to the number of keys when `key` is already held.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_bearer::keyed::KeyedTokenCache;
    /// use tower_bearer::{StaticToken, TokenError};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // Sessions of signed-in users; no factory: sessions come from logins.
    /// let sessions = KeyedTokenCache::<String>::without_factory()
    ///     .max_keys(100_000)
    ///     .evict_idle_after(Duration::from_secs(8 * 3600))
    ///     .build();
    ///
    /// // At the login callback (in real use, the source `AuthorizationCode::finish` returns).
    /// sessions.insert("session-1".to_owned(), StaticToken::new("alice's token"));
    ///
    /// let token = sessions.acquire(&"session-1".to_owned()).await.unwrap();
    /// assert_eq!(token.header_value(), "Bearer alice's token");
    /// // A session that never signed in, or was dropped: sign in again.
    /// let err = sessions.acquire(&"session-2".to_owned()).await.unwrap_err();
    /// assert!(err.is_permanent());
    /// assert_eq!(sessions.stats().inserted, 1);
    /// # }
    /// ```
    pub fn insert(&self, key: K, source: impl TokenSource) {
        self.inner
            .install(key, BoxTokenSource::new(source), Added::Inserted);
    }

    /// The cache of `key`'s token if the key is held, without adding it or
    /// counting as a use.
    pub fn peek(&self, key: &K) -> Option<TokenCache> {
        self.inner.map.pin().get(key).cloned()
    }

    /// The token to send for `key` now, if one may be sent without waiting
    /// (see [`TokenCache::current`]); an error if no source can be had for
    /// the key (see [`get`](Self::get)).
    pub fn current(&self, key: &K) -> Result<Option<CurrentToken>, TokenError> {
        // A held key's cache is read where it lies in the map: no reference
        // count taken and given back per call.
        if let Some(cache) = self.inner.map.pin().get(key) {
            cache.mark_used();
            return Ok(cache.current());
        }
        Ok(self.inner.make(key)?.current())
    }

    /// Waits for a token for `key`; see [`TokenCache::acquire`]. Fails at
    /// once if no source can be had for the key (see [`get`](Self::get)).
    /// The future borrows neither the cache nor the key.
    pub fn acquire(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        let cache = self.get(key);
        async move { cache?.acquire().await }
    }

    /// A server rejected `key`'s token of `rejected`: waits for a token other
    /// than it; see [`TokenCache::replace`]. Other keys are not touched.
    pub fn replace(
        &self,
        key: &K,
        rejected: Generation,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        let cache = self.get(key);
        async move { cache?.replace(rejected).await }
    }

    /// A server rejected `key`'s token of `rejected`, on a request that will
    /// not be sent again; see [`TokenCache::reject`]. Nothing happens if the
    /// key was dropped meanwhile (its token went with it).
    pub fn reject(&self, key: &K, rejected: Generation) {
        if let Some(cache) = self.peek(key) {
            cache.reject(rejected);
        }
    }

    /// A server accepted `key`'s token of `generation`; see
    /// [`TokenCache::accepted`].
    pub fn accepted(&self, key: &K, generation: Generation) {
        if let Some(cache) = self.peek(key) {
            cache.accepted(generation);
        }
    }

    /// Drops `key` and its token; `true` if it was held. Requests in flight
    /// with its token finish as they are; its next use starts afresh, and
    /// asks the factory even if it failed for the key a moment ago. Takes
    /// time in proportion to the number of keys.
    pub fn remove(&self, key: &K) -> bool {
        let inner = &*self.inner;
        let removed = {
            let mut ring = inner.lock_ring();
            let removed = ring.clock.remove(key);
            if removed.is_some() {
                inner.map.pin().remove(key);
                KeyCounters::add(&inner.counters.removed, 1);
            }
            removed
        };
        inner.lock_failed().forget(key);
        removed.is_some()
    }

    /// Drops every key idle for at least the idle time now, rather than when
    /// the next key is added; returns how many. Does nothing without an idle
    /// time ([`evict_idle_after`](KeyedTokenCacheBuilder::evict_idle_after)).
    pub fn evict_idle(&self) -> usize {
        let inner = &*self.inner;
        let mut ring = inner.lock_ring();
        inner.drop_idle(&mut ring, Instant::now())
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// `true` if no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys and their token counters summed over every key.
    pub fn stats(&self) -> KeyedStats {
        let inner = &*self.inner;
        let tokens = inner
            .common
            .totals
            .as_ref()
            .map(|totals| totals.snapshot())
            .unwrap_or_default();
        let failed_keys = inner.lock_failed().len();
        inner.counters.snapshot(self.len(), failed_keys, tokens)
    }

    /// The token counters of `key`, if it is held.
    pub fn stats_for(&self, key: &K) -> Option<CacheStats> {
        self.peek(key).map(|cache| cache.stats())
    }

    /// Every key held, with its token counters.
    pub fn stats_by_key(&self) -> Vec<(K, CacheStats)> {
        self.inner
            .map
            .pin()
            .iter()
            .map(|(key, cache)| (key.clone(), cache.stats()))
            .collect()
    }

    /// The gate every key fetches through.
    pub fn gate(&self) -> &EndpointGate {
        &self.inner.gate
    }

    /// The most keys held at once.
    pub fn max_keys(&self) -> usize {
        self.inner.max_keys
    }
}

/// How a key's source came to the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Added {
    /// The factory made it: a source already held for the key wins.
    Made,
    /// `insert`: it replaces a source held for the key.
    Inserted,
}

impl<K> Keyed<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn lock_ring(&self) -> MutexGuard<'_, Ring<K>> {
        // Nothing of the user's runs under this lock, and the ring is never
        // left half-changed; a panic elsewhere must not stop every key.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_failed(&self) -> MutexGuard<'_, FailedKeys<K>> {
        self.failed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `key`'s source with the factory and adds the key, unless the
    /// factory failed for it too recently.
    #[cold]
    fn make(&self, key: &K) -> Result<TokenCache, TokenError> {
        let Some(factory) = &self.factory else {
            return Err(SourceError::not_inserted());
        };
        if let Some((error, left)) = self.lock_failed().refusal(key, Instant::now()) {
            return Err(SourceError::factory_failed(error, left));
        }
        // Under no lock: a slow factory holds up the callers of this key only.
        match factory(key) {
            Ok(source) => Ok(self.install(key.clone(), source, Added::Made)),
            Err(error) => {
                let mut failed = self.lock_failed();
                // Added meanwhile (inserted, or made by another caller): it
                // serves. `install` adds to the map before it takes `failed`
                // to forget the key, so under `failed` either the key is seen
                // here or the record below is forgotten after.
                if let Some(cache) = self.map.pin().get(key) {
                    cache.mark_used();
                    return Ok(cache.clone());
                }
                KeyCounters::add(&self.counters.factory_errors, 1);
                let retry_in = failed.record(key.clone(), error.clone(), Instant::now());
                Err(SourceError::factory_failed(error, retry_in))
            }
        }
    }

    /// Adds `key` with `source`, making room first; a made source gives way
    /// to one already held, an inserted one replaces it.
    fn install(&self, key: K, source: BoxTokenSource, how: Added) -> TokenCache {
        // The labeler is the user's code: run outside the lock.
        let label = self.labeler.as_ref().map(|labeler| labeler(&key));
        let mut ring = self.lock_ring();
        let map = self.map.pin();
        let replaced = match (map.get(&key), how) {
            (Some(cache), Added::Made) => {
                cache.mark_used();
                return cache.clone();
            }
            (Some(_), Added::Inserted) => ring.clock.remove(&key),
            (None, _) => None,
        };
        let now = Instant::now();
        self.drop_idle_if_due(&mut ring, now);
        // Room first, so that the new key is never its own victim.
        let evicted = ring.clock.make_room(self.max_keys - 1, now);
        KeyCounters::add(&self.counters.evicted, evicted.len());
        for (gone, _) in &evicted {
            map.remove(gone);
        }
        let label = label.unwrap_or_else(|| format!("#{}", self.counters.added() + 1));
        let cache = TokenCache::from_parts(
            source,
            Arc::clone(&self.common),
            Some(label.into_boxed_str()),
        );
        map.insert(key.clone(), cache.clone());
        ring.clock.push(key.clone(), cache.clone(), now);
        let counter = match how {
            Added::Made => &self.counters.created,
            Added::Inserted => &self.counters.inserted,
        };
        KeyCounters::add(counter, 1);
        drop(ring);
        drop(map);
        self.lock_failed().forget(&key);
        // Dropped outside the locks: the last reference to an evicted or
        // replaced key's cache frees its token here.
        drop(evicted);
        drop(replaced);
        cache
    }

    fn drop_idle_if_due(&self, ring: &mut Ring<K>, now: Instant) {
        let Some(idle) = self.idle_after else {
            return;
        };
        match ring.next_idle_pass {
            Some(due) if now >= due => {
                self.drop_idle(ring, now);
            }
            Some(_) => {}
            None => ring.next_idle_pass = Some(now + idle_pass_interval(idle)),
        }
    }

    /// One pass over idle keys; schedules the next.
    fn drop_idle(&self, ring: &mut Ring<K>, now: Instant) -> usize {
        let Some(idle) = self.idle_after else {
            return 0;
        };
        let dropped = ring.clock.drop_idle(idle, now);
        let map = self.map.pin();
        for (gone, _) in &dropped {
            map.remove(gone);
        }
        KeyCounters::add(&self.counters.expired, dropped.len());
        ring.next_idle_pass = Some(now + idle_pass_interval(idle));
        dropped.len()
    }
}

/// How often idle keys are looked for (when keys are added): an eighth of
/// the idle time, so that a key goes at most a quarter of it late.
fn idle_pass_interval(idle: Duration) -> Duration {
    (idle / 8).max(Duration::from_millis(1))
}

impl<K> fmt::Debug for KeyedTokenCache<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are the user's business (a user id, a workspace): not printed.
        f.debug_struct("KeyedTokenCache")
            .field("keys", &self.inner.map.len())
            .field("max_keys", &self.inner.max_keys)
            .field("evict_idle_after", &self.inner.idle_after)
            .field("failed_keys", &self.inner.lock_failed().len())
            .field("gate", &self.inner.gate)
            .finish()
    }
}
