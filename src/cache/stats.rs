//! Counters that show what the cache did: how often it fetched, waited, retried.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters since it was built.
///
/// Every counter is updated off the hot path (only when something happens), so
/// keeping them costs a request nothing.
///
/// ```
/// use tower_bearer::{StaticToken, TokenCache};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = TokenCache::new(StaticToken::new("k"));
/// cache.token().await.unwrap();
/// cache.token().await.unwrap();
/// assert_eq!(cache.stats().fetches, 1);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Fetches started (calls to the token source).
    pub fetches: u64,
    /// Fetches that failed, timed out, or ended without a result.
    pub fetch_failures: u64,
    /// Fetches started ahead of expiry, while the current token was still served.
    pub refreshes_ahead: u64,
    /// Tokens dropped because a server rejected them.
    pub invalidations: u64,
    /// Times a caller had to wait for a fetch (no usable token at hand).
    pub waits: u64,
    /// Requests sent a second time after their token was rejected.
    pub retries: u64,
    /// Times the API rejected so many fresh tokens in a row that the cache
    /// stopped fetching for a while (a rejection cool-down began).
    pub cooldowns: u64,
}

#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    pub(crate) fetches: AtomicU64,
    pub(crate) fetch_failures: AtomicU64,
    pub(crate) refreshes_ahead: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) cooldowns: AtomicU64,
}

impl StatsCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            fetches: read(&self.fetches),
            fetch_failures: read(&self.fetch_failures),
            refreshes_ahead: read(&self.refreshes_ahead),
            invalidations: read(&self.invalidations),
            waits: read(&self.waits),
            retries: read(&self.retries),
            cooldowns: read(&self.cooldowns),
        }
    }
}
