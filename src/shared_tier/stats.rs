//! Counters that show what the shared tier did, and how often it asked Redis.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a shared tier's counters since it was built.
///
/// The tier is only asked when the in-process cache needs a token (a miss,
/// a token due for refresh, a rejection), so none of these move while the
/// cache serves a fresh token.
///
/// ```
/// use tower_bearer::shared_tier::SharedTierStats;
///
/// fn redis_commands_per_fetch(stats: &SharedTierStats) -> f64 {
///     stats.redis_commands as f64 / stats.fetches.max(1) as f64
/// }
/// assert_eq!(redis_commands_per_fetch(&SharedTierStats::default()), 0.0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedTierStats {
    /// Tokens the cache asked the tier for.
    pub fetches: u64,
    /// Fetches answered with the token in Redis, without asking the source.
    pub served_shared: u64,
    /// Fetches in which this process took the lease and asked the source.
    pub leases: u64,
    /// Fetches that waited while another process held the lease.
    pub waits: u64,
    /// Fetches answered with the failure of another process's fetch (held
    /// for a moment so that the fleet does not repeat it).
    pub shared_failures: u64,
    /// Rejected tokens this process removed from Redis (the entry still held
    /// them).
    pub invalidations: u64,
    /// Fetches that went to the source directly because Redis failed, was
    /// backed off from, or held an entry sealed with a key this process was
    /// not given (never for rotating refresh tokens).
    pub fallbacks: u64,
    /// Refresh tokens this process presented to the token endpoint (each
    /// marked in Redis first, so that no other process presents it).
    pub redemptions: u64,
    /// Lease renewals Redis took while this process fetched or redeemed.
    pub renewals: u64,
    /// Connections opened to Redis (pub/sub connections included).
    pub connections: u64,
    /// Commands sent to Redis (a script counts as one, a pipelined read of the
    /// token and its refresh token as two).
    pub redis_commands: u64,
    /// Redis commands and connections that failed or timed out.
    pub redis_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fetches: AtomicU64,
    pub(crate) served_shared: AtomicU64,
    pub(crate) leases: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) shared_failures: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) redemptions: AtomicU64,
    pub(crate) renewals: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) redis_commands: AtomicU64,
    pub(crate) redis_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        Self::add(counter, 1);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SharedTierStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SharedTierStats {
            fetches: read(&self.fetches),
            served_shared: read(&self.served_shared),
            leases: read(&self.leases),
            waits: read(&self.waits),
            shared_failures: read(&self.shared_failures),
            invalidations: read(&self.invalidations),
            fallbacks: read(&self.fallbacks),
            redemptions: read(&self.redemptions),
            renewals: read(&self.renewals),
            connections: read(&self.connections),
            redis_commands: read(&self.redis_commands),
            redis_errors: read(&self.redis_errors),
        }
    }
}
