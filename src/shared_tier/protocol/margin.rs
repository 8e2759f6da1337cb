//! How much life a shared token must have left to be handed to a cache.

use std::time::Duration;

use tokio::time::Instant;

use crate::token::AccessToken;

/// The least life a shared token must have left to be handed to a cache:
/// what a cache with the default settings gives up to clock skew (10 s, at
/// most a tenth of the lifetime) plus its minimum refresh interval (500 ms),
/// so that the cache does not find it too short to install.
///
/// The tier needs nothing else of the cache's timing: it tells a cache asking
/// because its token is due by the token it handed it (see the
/// [module](super) documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Margin {
    pub(crate) skew: Duration,
    pub(crate) skew_fraction: f64,
    pub(crate) min_interval: Duration,
}

impl Margin {
    /// The margin of a cache with default settings.
    pub(crate) fn of_default_cache() -> Self {
        let config = crate::cache::config::CacheConfig::default();
        Self {
            skew: config.expiry_skew,
            skew_fraction: crate::cache::schedule::MAX_SKEW_FRACTION,
            min_interval: config.min_refresh_interval,
        }
    }

    /// Whether `token` has enough life left at `now`.
    pub(crate) fn usable(&self, token: &AccessToken, now: Instant) -> bool {
        let Some(expires) = token.expires_at() else {
            return true;
        };
        let life = expires.saturating_duration_since(token.received_at());
        let needed = self.skew.min(life.mul_f64(self.skew_fraction)) + self.min_interval;
        expires.saturating_duration_since(now) >= needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_tier::protocol::test_support::{token, S};

    #[test]
    fn margins_follow_a_default_cache() {
        let now = Instant::now();
        let margin = Margin::of_default_cache();
        // An hour's token needs 10.5 s left; a 2 s token 0.7 s.
        assert!(margin.usable(&token("t", now, S(3589), S(3600)), now));
        assert!(!margin.usable(&token("t", now, S(3590), S(3600)), now));
        let two = |left_ms: u64| token("t", now, Duration::from_millis(2000 - left_ms), S(2));
        assert!(margin.usable(&two(700), now));
        assert!(!margin.usable(&two(699), now));
    }
}
