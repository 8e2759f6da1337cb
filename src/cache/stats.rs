//! What the cache did: the counters behind [`TokenCache::stats`](super::TokenCache::stats),
//! and how a fetch ended. With the `metrics` feature the same events are
//! also pushed through the `metrics` facade (`metrics.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{CacheError, TokenError};
use crate::token::AccessToken;

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
    /// Rejections returned to their caller without a replay because the
    /// replacement was paced (servers kept rejecting tokens): each of those
    /// requests was sent once, and its caller got the API's answer.
    pub paced: u64,
}

/// How a fetch ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchOutcome {
    Ok,
    TransientError,
    PermanentError,
    Timeout,
    Panicked,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    Abandoned,
}

impl FetchOutcome {
    /// What the source's result says about the fetch.
    pub(crate) fn of(result: &Result<AccessToken, TokenError>) -> Self {
        let Err(err) = result else {
            return FetchOutcome::Ok;
        };
        match err.cause().and_then(|c| c.downcast_ref::<CacheError>()) {
            Some(CacheError::FetchTimedOut) => FetchOutcome::Timeout,
            Some(CacheError::SourcePanicked) => FetchOutcome::Panicked,
            _ if err.is_permanent() => FetchOutcome::PermanentError,
            _ => FetchOutcome::TransientError,
        }
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FetchOutcome::Ok => "ok",
            FetchOutcome::TransientError => "transient_error",
            FetchOutcome::PermanentError => "permanent_error",
            FetchOutcome::Timeout => "timeout",
            FetchOutcome::Panicked => "panicked",
            FetchOutcome::Abandoned => "abandoned",
        }
    }
}

/// Something the cache counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Fetch,
    RefreshAhead,
    FetchFailure,
    Invalidation,
    Wait,
    Retry,
    Paced,
}

#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    pub(crate) fetches: AtomicU64,
    pub(crate) fetch_failures: AtomicU64,
    pub(crate) refreshes_ahead: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) paced: AtomicU64,
}

impl StatsCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counter of `event`.
    pub(crate) fn counter(&self, event: Event) -> &AtomicU64 {
        match event {
            Event::Fetch => &self.fetches,
            Event::RefreshAhead => &self.refreshes_ahead,
            Event::FetchFailure => &self.fetch_failures,
            Event::Invalidation => &self.invalidations,
            Event::Wait => &self.waits,
            Event::Retry => &self.retries,
            Event::Paced => &self.paced,
        }
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
            paced: read(&self.paced),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_sources_result() {
        let table = [
            (Ok(AccessToken::new("t")), FetchOutcome::Ok, "ok"),
            (
                Err(TokenError::transient("503")),
                FetchOutcome::TransientError,
                "transient_error",
            ),
            (
                Err(TokenError::permanent("invalid_client")),
                FetchOutcome::PermanentError,
                "permanent_error",
            ),
            (
                Err(CacheError::FetchTimedOut.into()),
                FetchOutcome::Timeout,
                "timeout",
            ),
            (
                Err(CacheError::SourcePanicked.into()),
                FetchOutcome::Panicked,
                "panicked",
            ),
            (
                Err(CacheError::TokenTooLarge { len: 2, max: 1 }.into()),
                FetchOutcome::PermanentError,
                "permanent_error",
            ),
        ];
        for (result, outcome, label) in table {
            assert_eq!(FetchOutcome::of(&result), outcome, "{result:?}");
            assert_eq!(outcome.as_str(), label);
        }
    }
}
