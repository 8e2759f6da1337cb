//! When a freshly received token should be refreshed, and when it stops being used.

use std::time::Duration;

use tokio::time::Instant;

use super::config::{CacheConfig, MAX_SKEW_FRACTION};
use crate::token::{AccessToken, Expiry};

/// The moments in a token's life that the cache acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// Start a background refresh at this instant.
    pub(crate) refresh_at: Option<Instant>,
    /// Stop handing the token out at this instant (expiry minus skew).
    pub(crate) usable_until: Option<Instant>,
    /// The token is invalid from this instant; until then it may still be served
    /// when a refresh fails.
    pub(crate) expires_at: Option<Instant>,
}

impl Schedule {
    /// Computes the schedule of `token`. `jitter` is a random number in `[0, 1)`.
    pub(crate) fn for_token(token: &AccessToken, config: &CacheConfig, jitter: f64) -> Self {
        let received = token.received_at();
        let expires_at = match token.expiry() {
            Expiry::At(at) => Some(at),
            Expiry::Unknown => config
                .default_lifetime
                .and_then(|lifetime| received.checked_add(lifetime)),
            Expiry::Never => None,
        };
        let Some(expires_at) = expires_at else {
            return Self {
                refresh_at: None,
                usable_until: None,
                expires_at: None,
            };
        };

        let lifetime = expires_at.saturating_duration_since(received);
        let skew = config.expiry_skew.min(lifetime.mul_f64(MAX_SKEW_FRACTION));
        let usable_until = expires_at.checked_sub(skew).unwrap_or(expires_at);

        let usable_life = usable_until.saturating_duration_since(received);
        let window = config
            .refresh_ahead
            .min(usable_life.mul_f64(config.refresh_ahead_fraction));
        let spread = window.mul_f64(config.refresh_jitter * jitter.clamp(0.0, 1.0));
        // Never in the first half of the usable life, whatever the settings: a
        // refresh at once would fetch again and again.
        let earliest = received + usable_life / 2;
        let refresh_at = (window > Duration::ZERO).then(|| {
            usable_until
                .checked_sub(window + spread)
                .unwrap_or(received)
                .max(earliest)
        });

        Self {
            refresh_at,
            usable_until: Some(usable_until),
            expires_at: Some(expires_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CacheConfig {
        CacheConfig::default()
    }

    #[tokio::test(start_paused = true)]
    async fn two_second_token_refreshes_in_its_last_quarter() {
        let token = AccessToken::new("t").with_expires_in(Duration::from_secs(2));
        let s = Schedule::for_token(&token, &config(), 0.0);
        let start = token.received_at();
        // skew = 10% of 2 s; usable 1.8 s; window = 25% of 1.8 s.
        assert_eq!(s.usable_until, Some(start + Duration::from_millis(1800)));
        assert_eq!(s.refresh_at, Some(start + Duration::from_millis(1350)));
        assert_eq!(s.expires_at, Some(start + Duration::from_secs(2)));

        let jittered = Schedule::for_token(&token, &config(), 0.999_999);
        let at = jittered.refresh_at.unwrap();
        assert!(at < start + Duration::from_millis(1350));
        assert!(at >= start + Duration::from_millis(1260));
    }

    #[tokio::test(start_paused = true)]
    async fn hour_token_uses_absolute_skew_and_refresh_ahead() {
        let token = AccessToken::new("t").with_expires_in(Duration::from_secs(3600));
        let s = Schedule::for_token(&token, &config(), 0.0);
        let start = token.received_at();
        assert_eq!(s.usable_until, Some(start + Duration::from_secs(3590)));
        assert_eq!(s.refresh_at, Some(start + Duration::from_secs(3530)));
    }

    #[tokio::test(start_paused = true)]
    async fn ten_year_and_endless_tokens_do_not_overflow() {
        let ten_years = AccessToken::new("t").with_expires_in(Duration::from_secs(315_705_599));
        let s = Schedule::for_token(&ten_years, &config(), 0.5);
        assert!(s.refresh_at.unwrap() < s.usable_until.unwrap());

        let forever = AccessToken::new("t").with_expires_in(Duration::from_secs(u64::MAX));
        let s = Schedule::for_token(&forever, &config(), 0.5);
        assert_eq!(s.usable_until, None);
        assert_eq!(s.refresh_at, None);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_never_comes_in_the_first_half_of_the_usable_life() {
        let mut eager = config();
        eager.refresh_ahead_fraction = 1.0;
        eager.refresh_jitter = 1.0;
        let token = AccessToken::new("t").with_expires_in(Duration::from_secs(2));
        let s = Schedule::for_token(&token, &eager, 0.999);
        assert_eq!(
            s.refresh_at,
            Some(token.received_at() + Duration::from_millis(900))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_expiry_uses_default_lifetime_or_none() {
        let token = AccessToken::new("t");
        let s = Schedule::for_token(&token, &config(), 0.0);
        assert_eq!(
            s.expires_at,
            Some(token.received_at() + Duration::from_secs(3600))
        );

        let mut endless = config();
        endless.default_lifetime = None;
        assert_eq!(Schedule::for_token(&token, &endless, 0.0).expires_at, None);
    }

    #[tokio::test(start_paused = true)]
    async fn already_expired_token_is_unusable_at_once() {
        let token = AccessToken::new("t").with_expires_in(Duration::ZERO);
        let s = Schedule::for_token(&token, &config(), 0.0);
        assert_eq!(s.usable_until, Some(token.received_at()));
        assert_eq!(s.refresh_at, None);
    }
}
