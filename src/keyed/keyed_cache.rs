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
use super::stats::{KeyCounters, KeyedStats};
use crate::cache::{CacheStats, Common, CurrentToken, EndpointGate, Generation, TokenCache};
use crate::error::TokenError;
use crate::source::{BoxTokenSource, TokenSource};

/// Makes the token source of a key.
pub(super) type Factory<K> = dyn Fn(&K) -> BoxTokenSource + Send + Sync;
/// Names a key in tracing.
pub(super) type Labeler<K> = dyn Fn(&K) -> String + Send + Sync;

/// Caches one token per key: many tenants behind one client.
///
/// A factory makes the [`TokenSource`] of each key the first time the key is
/// used (for example [`ClientCredentials`](crate::oauth2::ClientCredentials)
/// with that workspace's `subject`). Each key gets a [`TokenCache`] of its
/// own, with the whole protocol ([`get`](Self::get) returns it), and the
/// keyed cache adds:
///
/// - **bounded memory:** at most [`max_keys`](KeyedTokenCacheBuilder::max_keys)
///   keys (10,000 by default); beyond it the least recently used key is
///   dropped (CLOCK, see below), and optionally every key idle longer than
///   [`evict_idle_after`](KeyedTokenCacheBuilder::evict_idle_after). No key
///   has a task; dropping happens when a key is added (or when you call
///   [`evict_idle`](Self::evict_idle)). A dropped key's token is gone: its
///   next use fetches again.
/// - **one view of the token endpoint:** every key fetches through one
///   [`EndpointGate`] (by default its own, 16 fetches at a time): a cold start
///   of a thousand keys asks the endpoint at most that many at once, and a
///   `429`, `Retry-After` or `temporarily_unavailable` pauses every key.
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
/// The key type should be cheap to clone and compare (an integer, an
/// `Arc<str>`, a `HeaderValue`): a lookup hashes it on every request. Keys
/// that come from requests are untrusted: every new key costs a token fetch,
/// so check them (the layer's key function may return `None` for unknown
/// ones) before they reach the cache.
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
/// assert!(cache.current(&"wks_a".to_owned()).is_none());
/// assert_eq!(cache.current(&"wks_b".to_owned()).unwrap().generation(), b.generation());
/// assert_eq!(cache.stats().tokens.fetches, 3);
/// # }
/// ```
pub struct KeyedTokenCache<K> {
    pub(super) inner: Arc<Keyed<K>>,
}

pub(super) struct Keyed<K> {
    /// Read without a lock; written only under `ring`'s lock, so that the map
    /// and the ring always hold the same keys.
    pub(super) map: papaya::HashMap<K, TokenCache>,
    pub(super) ring: Mutex<Ring<K>>,
    pub(super) factory: Box<Factory<K>>,
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
    /// gate and the per-key cache settings.
    pub fn builder<S, F>(factory: F) -> KeyedTokenCacheBuilder<K>
    where
        S: TokenSource,
        F: Fn(&K) -> S + Send + Sync + 'static,
    {
        KeyedTokenCacheBuilder::new(Box::new(move |key: &K| BoxTokenSource::new(factory(key))))
    }

    /// The cache of `key`'s token, added (and its source made) if the key is
    /// new; adding may drop the least recently used key, or idle ones.
    ///
    /// A known key costs a hash, a lock-free lookup and a reference count.
    pub fn get(&self, key: &K) -> TokenCache {
        if let Some(cache) = self.inner.map.pin().get(key) {
            cache.mark_used();
            return cache.clone();
        }
        self.inner.add(key)
    }

    /// The cache of `key`'s token if the key is held, without adding it or
    /// counting as a use.
    pub fn peek(&self, key: &K) -> Option<TokenCache> {
        self.inner.map.pin().get(key).cloned()
    }

    /// The token to send for `key` now, if one may be sent without waiting;
    /// see [`TokenCache::current`].
    pub fn current(&self, key: &K) -> Option<CurrentToken> {
        self.get(key).current()
    }

    /// Waits for a token for `key`; see [`TokenCache::acquire`]. The future
    /// borrows neither the cache nor the key.
    pub fn acquire(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        self.get(key).acquire()
    }

    /// A server rejected `key`'s token of `rejected`: waits for a token other
    /// than it; see [`TokenCache::replace`]. Other keys are not touched.
    pub fn replace(
        &self,
        key: &K,
        rejected: Generation,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        self.get(key).replace(rejected)
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
    /// with its token finish as they are; its next use starts afresh.
    /// Takes time in proportion to the number of keys.
    pub fn remove(&self, key: &K) -> bool {
        let inner = &*self.inner;
        let mut ring = inner.lock_ring();
        let removed = ring.clock.remove(key).is_some();
        if removed {
            inner.map.pin().remove(key);
            KeyCounters::add(&inner.counters.removed, 1);
        }
        removed
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
        inner.counters.snapshot(self.len(), tokens)
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

impl<K> Keyed<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn lock_ring(&self) -> MutexGuard<'_, Ring<K>> {
        // A factory or labeler that panicked left the ring as it was.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `key` (unless another caller just did), making room first.
    #[cold]
    fn add(&self, key: &K) -> TokenCache {
        let mut ring = self.lock_ring();
        let map = self.map.pin();
        if let Some(cache) = map.get(key) {
            cache.mark_used();
            return cache.clone();
        }
        let now = Instant::now();
        self.drop_idle_if_due(&mut ring, now);
        // Room first, so that the new key is never its own victim.
        let evicted = ring.clock.make_room(self.max_keys - 1, now);
        KeyCounters::add(&self.counters.evicted, evicted.len());
        for (gone, _) in &evicted {
            map.remove(gone);
        }
        let number = self
            .counters
            .created
            .load(std::sync::atomic::Ordering::Relaxed)
            + 1;
        let label = match &self.labeler {
            Some(labeler) => labeler(key),
            None => format!("#{number}"),
        };
        let cache = TokenCache::from_parts(
            (self.factory)(key),
            Arc::clone(&self.common),
            Some(label.into_boxed_str()),
        );
        map.insert(key.clone(), cache.clone());
        ring.clock.push(key.clone(), cache.clone(), now);
        KeyCounters::add(&self.counters.created, 1);
        drop(ring);
        drop(map);
        // Dropped outside the lock: the last reference to an evicted key's
        // cache frees its token here.
        drop(evicted);
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
            .field("gate", &self.inner.gate)
            .finish()
    }
}
