//! The world's fixed quantities. Times are virtual milliseconds.

use std::time::Duration;

pub(super) const LIFE: u64 = 6_000;
pub(super) const LEASE_TTL: u64 = 600;
pub(super) const DOUBT_AFTER: u64 = 3_000;
pub(super) const FAILURE_HOLD: u64 = 300;
pub(super) const REDIS_TIMEOUT: u64 = 100;
/// The cache's fetch timeout.
pub(super) const FETCH_TIMEOUT: u64 = 2_000;
/// How long a redemption whose answer is lost takes to time out.
pub(super) const HTTP_TIMEOUT: u64 = 1_000;
pub(super) const REFRESH_TTL: u64 = 1_000 * LIFE;
pub(super) const FAULTY_UNTIL: u64 = 6 * LIFE;
pub(super) const QUIET_UNTIL: u64 = FAULTY_UNTIL + 3 * LIFE;
/// A bound on events per seed, against a livelock.
pub(super) const MAX_EVENTS: usize = 200_000;

pub(super) const SEED_REFRESH_TOKEN: u64 = 0;

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
