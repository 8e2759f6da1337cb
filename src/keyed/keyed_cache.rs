//! The keyed cache itself: a map from key to [`TokenCache`] read without a
//! lock, and a CLOCK ring, under a lock, that decides which keys stay.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::time::Instant;

use super::keys::{Added, Keys};
use super::stats::{KeyCounters, KeyedStats};
use crate::cache::{CacheStats, CurrentToken, EndpointGate, Generation, TokenCache};
use crate::error::TokenError;
use crate::source::{BoxTokenSource, TokenSource};

/// Caches one token per key: many tenants, or many users, behind one client.
///
/// Each key's [`TokenSource`] comes from one of two places:
///
/// - **a factory** makes it the first time the key is used (for example
///   [`ClientCredentials`](crate::oauth2::ClientCredentials) with that
///   workspace's `subject`): [`new`](Self::new) and [`builder`](Self::builder)
///   take one that cannot fail, [`try_builder`](Self::try_builder) one that
///   can (the tenant's configuration may be missing or wrong); its error goes
///   to the caller, typed ([`SourceError`](crate::keyed::SourceError)), and the key is not kept;
/// - **[`insert`](Self::insert)** puts in a source made elsewhere, such as a
///   signed-in user's [`RefreshTokenSource`](crate::oauth2::RefreshTokenSource)
///   from the login callback. A cache built with
///   [`without_factory`](Self::without_factory) holds only those.
///
/// Each key gets a [`TokenCache`] of its own, with the whole protocol
/// ([`get`](Self::get) returns it), and the keyed cache adds, for made and
/// inserted keys alike:
///
/// - **bounded memory:** at most [`max_keys`](crate::keyed::KeyedTokenCacheBuilder::max_keys)
///   keys (10,000 by default); beyond it the least recently used key is
///   dropped (CLOCK, see below), and optionally every key idle longer than
///   [`evict_idle_after`](crate::keyed::KeyedTokenCacheBuilder::evict_idle_after). No key
///   has a task; dropping happens when a key is added (or when you call
///   [`evict_idle`](Self::evict_idle)). A dropped key's token is gone: its
///   next use makes its source again (or, without a factory, fails).
///   Failures of the factory are remembered for at most
///   [`max_failed_keys`](crate::keyed::KeyedTokenCacheBuilder::max_failed_keys) keys.
/// - **one view of the token endpoint:** every key fetches through one
///   [`EndpointGate`] (by default its own, 16 fetches at a time): a cold start
///   of a thousand keys asks the endpoint at most that many at once, and a
///   failure the endpoint marks as its own overload (`429`, `503`,
///   `temporarily_unavailable`) pauses every key.
/// - **a label per key** on tracing spans and events (`key = ...`), chosen by
///   [`label`](crate::keyed::KeyedTokenCacheBuilder::label) (never the token; by default a
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
    pub(super) inner: Arc<Keys<K>>,
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

    /// The cache of `key`'s token, added (and its source made) if the key is
    /// new; adding may drop the least recently used key, or idle ones.
    ///
    /// Fails if the key is not held and no source can be had for it: the
    /// factory failed (now, or recently enough that it is not asked again
    /// yet), or the cache has none and the key was not inserted; the cause
    /// is a [`SourceError`](crate::keyed::SourceError).
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
    /// [`max_keys`](crate::keyed::KeyedTokenCacheBuilder::max_keys) and may be dropped like
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
    /// time ([`evict_idle_after`](crate::keyed::KeyedTokenCacheBuilder::evict_idle_after)).
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
