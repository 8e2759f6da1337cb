//! How long a run waits, where that is not a setting: for another process's
//! lease, and before retrying a commit or an abort.

use std::time::Duration;

use crate::cache::backoff;

/// The longest a run waits between two reads while another process holds
/// the lease: a message can be lost (Redis does not keep them, and a
/// failover drops subscriptions).
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// How much longer than the lease's time left a waiter waits, so that it
pub(super) const LEASE_MARGIN: Duration = Duration::from_millis(20);

/// Retries of a commit or an abort that Redis did not take: from 100 ms,
/// doubling, up to 5 s.
const RETRY_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// The pause before the `attempt`-th retry of a commit or an abort (the
/// cache's own backoff; `random` in `[0, 1)`).
pub(crate) fn retry_pause(attempt: u32, random: f64) -> Duration {
    backoff::equal_jitter(attempt, RETRY_BACKOFF.0, RETRY_BACKOFF.1, random)
}
