//! When a token the cache has just installed should be refreshed, when it stops
//! being handed out, and when it expires: counted from the installation.
//!
//! Counting from the moment the cache installed the token, not from when the
//! source built the token object, matters for sources that hand out a token
//! they built earlier (a sidecar, a `watch` channel, a token kept in a
//! closure): such a token's refresh must not be due on arrival.

use std::time::Duration;

use tokio::time::Instant;

use super::config::CacheConfig;
use crate::token::{AccessToken, Expiry};

/// The part of a token's lifetime that is given up to clock skew and latency,
/// at most: a 2 s token is used for 1.8 s, not thrown away after 0 s by a 10 s
/// skew.
pub(crate) const MAX_SKEW_FRACTION: f64 = 0.1;

/// The moments in a token's life the cache acts on, as durations since the
/// cache installed it. `None` means never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// From then on, a use of the token starts a refresh ahead of expiry.
    pub(crate) refresh_after: Option<Duration>,
    /// From then on, the token is not handed out (expiry minus skew); it is
    /// still served while its replacement is fetched, or if that fails.
    pub(crate) usable_for: Option<Duration>,
    /// From then on, the token is never handed out.
    pub(crate) expires_after: Option<Duration>,
}

impl Schedule {
    /// The schedule of `token`, installed at `installed`. `jitter` is a random
    /// number in `[0, 1)`.
    pub(crate) fn for_token(
        token: &AccessToken,
        installed: Instant,
        config: &CacheConfig,
        jitter: f64,
    ) -> Self {
        // The lifetime the source meant, to size the skew: a token handed over
        // again near its end keeps the skew of its whole life.
        let (expires_after, lifetime) = match token.expiry() {
            Expiry::At(at) => (
                at.saturating_duration_since(installed),
                at.saturating_duration_since(token.received_at().min(installed)),
            ),
            Expiry::Unknown => match config.default_lifetime {
                Some(lifetime) => (lifetime, lifetime),
                None => return Self::NEVER,
            },
            Expiry::Never => return Self::NEVER,
        };
        let skew = config.expiry_skew.min(lifetime.mul_f64(MAX_SKEW_FRACTION));
        let usable_for = expires_after.saturating_sub(skew);

        let window = config
            .refresh_ahead
            .min(usable_for.mul_f64(config.refresh_ahead_fraction));
        let spread = window.mul_f64(config.refresh_jitter * jitter.clamp(0.0, 1.0));
        // Never in the first half of the usable life, and never sooner than the
        // minimum interval: whatever a source returns, refreshes stay rare.
        let refresh_after = usable_for
            .saturating_sub(window + spread)
            .max(usable_for / 2)
            .max(config.min_refresh_interval);
        Self {
            refresh_after: (window > Duration::ZERO && refresh_after < usable_for)
                .then_some(refresh_after),
            usable_for: Some(usable_for),
            expires_after: Some(expires_after),
        }
    }

    const NEVER: Self = Self {
        refresh_after: None,
        usable_for: None,
        expires_after: None,
    };

    /// `true` if the token arrived with less usable life left than the
    /// minimum refresh interval: the fetch counts as failed, so that a source
    /// yielding such tokens (or the same token again, near its end) backs off
    /// instead of being asked again and again.
    pub(crate) fn too_short(&self, config: &CacheConfig) -> bool {
        self.usable_for
            .is_some_and(|left| left < config.min_refresh_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const S: fn(u64) -> Duration = Duration::from_secs;

    struct Case {
        name: &'static str,
        /// How long before the installation the source built the token.
        built_before: Duration,
        expiry: Option<Duration>,
        jitter: f64,
        want: (Option<Duration>, Option<Duration>, Option<Duration>),
    }

    #[tokio::test(start_paused = true)]
    async fn schedules() {
        let cases = [
            Case {
                name: "2 s token: skew 10 %, refresh in the last quarter of 1.8 s",
                built_before: S(0),
                expiry: Some(S(2)),
                jitter: 0.0,
                want: (Some(MS(1350)), Some(MS(1800)), Some(S(2))),
            },
            Case {
                name: "full jitter adds up to 20 % of the window",
                built_before: S(0),
                expiry: Some(S(2)),
                jitter: 1.0,
                want: (Some(MS(1260)), Some(MS(1800)), Some(S(2))),
            },
            Case {
                name: "hour token: absolute skew and refresh-ahead",
                built_before: S(0),
                expiry: Some(S(3600)),
                jitter: 0.0,
                want: (Some(S(3530)), Some(S(3590)), Some(S(3600))),
            },
            Case {
                name: "a token built 50 s before, 10 s left: counted from the installation, 10 s skew kept at 6 s (10 % of its 60 s)",
                built_before: S(50),
                expiry: Some(S(60)),
                jitter: 0.0,
                want: (Some(S(3)), Some(S(4)), Some(S(10))),
            },
            Case {
                name: "1 s token: the minimum interval (0.5 s) is below the first half",
                built_before: S(0),
                expiry: Some(S(1)),
                jitter: 0.0,
                want: (Some(MS(675)), Some(MS(900)), Some(S(1))),
            },
            Case {
                name: "0.5 s token: no refresh ahead, the minimum interval is past its usable life",
                built_before: S(0),
                expiry: Some(MS(500)),
                jitter: 0.0,
                want: (None, Some(MS(450)), Some(MS(500))),
            },
            Case {
                name: "expired on arrival",
                built_before: S(10),
                expiry: Some(S(5)),
                jitter: 0.0,
                want: (None, Some(S(0)), Some(S(0))),
            },
            Case {
                name: "unknown expiry: the default lifetime (1 h) from the installation",
                built_before: S(7200),
                expiry: None,
                jitter: 0.0,
                want: (Some(S(3530)), Some(S(3590)), Some(S(3600))),
            },
            Case {
                name: "ten years",
                built_before: S(0),
                expiry: Some(S(315_705_599)),
                jitter: 0.0,
                want: (Some(S(315_705_529)), Some(S(315_705_589)), Some(S(315_705_599))),
            },
        ];
        for case in cases {
            let token = AccessToken::new("t");
            let token = match case.expiry {
                Some(lifetime) => token.with_expires_in(lifetime),
                None => token,
            };
            tokio::time::advance(case.built_before).await;
            let installed = Instant::now();
            let s = Schedule::for_token(&token, installed, &CacheConfig::default(), case.jitter);
            assert_eq!(
                (s.refresh_after, s.usable_for, s.expires_after),
                case.want,
                "{}",
                case.name
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn endless_tokens_have_no_deadlines() {
        let config = CacheConfig::default();
        let now = Instant::now();
        let forever = AccessToken::new("t").with_expires_in(Duration::from_secs(u64::MAX));
        assert_eq!(
            Schedule::for_token(&forever, now, &config, 0.5),
            Schedule::NEVER
        );
        let never = AccessToken::new("t").never_expires();
        assert_eq!(
            Schedule::for_token(&never, now, &config, 0.5),
            Schedule::NEVER
        );
        let mut endless = config.clone();
        endless.default_lifetime = None;
        assert_eq!(
            Schedule::for_token(&AccessToken::new("t"), now, &endless, 0.5),
            Schedule::NEVER
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_never_comes_in_the_first_half_of_the_usable_life() {
        let eager = CacheConfig {
            refresh_ahead_fraction: 1.0,
            refresh_jitter: 1.0,
            ..CacheConfig::default()
        };
        let token = AccessToken::new("t").with_expires_in(S(2));
        let s = Schedule::for_token(&token, Instant::now(), &eager, 0.999);
        assert_eq!(s.refresh_after, Some(MS(900)));
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_with_less_usable_life_than_the_minimum_interval_are_too_short() {
        let config = CacheConfig::default();
        let now = Instant::now();
        let short = |ms| {
            let token = AccessToken::new("t").with_expires_in(MS(ms));
            Schedule::for_token(&token, now, &config, 0.0).too_short(&config)
        };
        // The usable life is the lifetime less 10 % (the skew).
        assert!(short(0));
        assert!(short(1));
        assert!(short(555));
        assert!(!short(556));
        assert!(!short(3_600_000));
        assert!(!Schedule::NEVER.too_short(&config));
    }
}
