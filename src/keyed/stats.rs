//! What a keyed cache has done, over all its keys.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache::CacheStats;

/// A snapshot of a [`KeyedTokenCache`](crate::keyed::KeyedTokenCache)'s keys and
/// of its token counters summed over every key it ever held.
///
/// Per key: [`KeyedTokenCache::stats_for`](crate::keyed::KeyedTokenCache::stats_for).
///
/// ```
/// use tower_bearer::{from_fn, AccessToken};
/// use tower_bearer::keyed::KeyedTokenCache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = KeyedTokenCache::builder(|user: &u64| {
///     let user = *user;
///     from_fn(move || async move { Ok(AccessToken::new(format!("for-{user}"))) })
/// })
/// .max_keys(2)
/// .build();
/// for user in [1, 2, 3] {
///     cache.acquire(&user).await.unwrap();
/// }
/// let stats = cache.stats();
/// assert_eq!((stats.keys, stats.created, stats.evicted), (2, 3, 1));
/// assert_eq!(stats.tokens.fetches, 3);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedStats {
    /// Keys held now.
    pub keys: usize,
    /// Keys added with a source the factory made (a key added again after it
    /// was dropped counts again).
    pub created: u64,
    /// Sources put in with [`insert`](crate::keyed::KeyedTokenCache::insert),
    /// including those that replaced a held key's source.
    pub inserted: u64,
    /// Keys dropped to stay within the maximum number of keys.
    pub evicted: u64,
    /// Keys dropped after being idle for the idle time.
    pub expired: u64,
    /// Keys dropped by [`remove`](crate::keyed::KeyedTokenCache::remove).
    pub removed: u64,
    /// Times the factory failed (each answered the callers of that moment;
    /// callers during the backoff after it do not count, the factory was not
    /// asked).
    pub factory_errors: u64,
    /// Keys whose factory failure is remembered now, for their backoff (at
    /// most [`max_failed_keys`](crate::keyed::KeyedTokenCacheBuilder::max_failed_keys)).
    pub failed_keys: usize,
    /// Token counters summed over every key, dropped ones included.
    pub tokens: CacheStats,
}

#[derive(Debug, Default)]
pub(crate) struct KeyCounters {
    pub(crate) created: AtomicU64,
    pub(crate) inserted: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) removed: AtomicU64,
    pub(crate) factory_errors: AtomicU64,
}

impl KeyCounters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Keys added so far, made or inserted.
    pub(crate) fn added(&self) -> u64 {
        self.created.load(Ordering::Relaxed) + self.inserted.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(
        &self,
        keys: usize,
        failed_keys: usize,
        tokens: CacheStats,
    ) -> KeyedStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        KeyedStats {
            keys,
            created: read(&self.created),
            inserted: read(&self.inserted),
            evicted: read(&self.evicted),
            expired: read(&self.expired),
            removed: read(&self.removed),
            factory_errors: read(&self.factory_errors),
            failed_keys,
            tokens,
        }
    }
}
