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
    /// Keys added (a key added again after it was dropped counts again).
    pub created: u64,
    /// Keys dropped to stay within the maximum number of keys.
    pub evicted: u64,
    /// Keys dropped after being idle for the idle time.
    pub expired: u64,
    /// Keys dropped by [`remove`](crate::keyed::KeyedTokenCache::remove).
    pub removed: u64,
    /// Token counters summed over every key, dropped ones included.
    pub tokens: CacheStats,
}

#[derive(Debug, Default)]
pub(crate) struct KeyCounters {
    pub(crate) created: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) removed: AtomicU64,
}

impl KeyCounters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, keys: usize, tokens: CacheStats) -> KeyedStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        KeyedStats {
            keys,
            created: read(&self.created),
            evicted: read(&self.evicted),
            expired: read(&self.expired),
            removed: read(&self.removed),
            tokens,
        }
    }
}
