//! When a shared token may be handed to a process, and when the fleet
//! refreshes it: one rule, written into each entry by the process that
//! fetched the token, so that every process reading it agrees.
//!
//! The writer computes the moment the earliest in-process cache of the fleet
//! would refresh the token ahead of expiry: the cache's own schedule
//! ([`Schedule::for_token`]) counted from the moment the token was issued,
//! with the largest jitter. Every cache with the same timing settings refreshes
//! at or after that moment, whenever it installed the token (a later
//! installation only moves its refresh later). So when a cache asks the tier
//! for a token because its own is due, the entry holding that same token is
//! always past its refresh moment, and the tier refreshes instead of handing
//! the same token back: there is no ping-pong. A process that asks before that
//! moment (it just started, or its token was rejected and another process has
//! already replaced it) is handed the entry's token.

use std::time::Duration;

use tokio::time::Instant;

use crate::cache::config::CacheConfig;
use crate::cache::schedule::Schedule;
use crate::token::AccessToken;

/// How much earlier than the entry's refresh moment a read already counts as
/// due: an in-process cache reads its deadlines against a coarse clock that
/// runs up to 20 ms early, and entries keep milliseconds.
const READ_TOLERANCE_MS: u64 = 50;

/// A token's timing as the fleet sees it, in milliseconds since the Unix
/// epoch (the one clock processes on different hosts share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub(crate) issued_ms: u64,
    /// `None`: never expires.
    pub(crate) expires_ms: Option<u64>,
    /// From then on, the fleet refreshes the token; `None`: never.
    pub(crate) refresh_at_ms: Option<u64>,
}

/// What a process does with the entry it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnRead {
    /// Hand the entry's token to the process's cache.
    Serve,
    /// Take the lease and fetch a new token (or wait for the process that
    /// holds it).
    Refresh,
}

/// The fleet's timing for `token`, which a source has just returned; `now` and
/// `now_ms` are the same moment on the monotonic and the wall clock.
pub(crate) fn timing_of(
    token: &AccessToken,
    now: Instant,
    now_ms: u64,
    config: &CacheConfig,
) -> Timing {
    let issued = token.received_at().min(now);
    let issued_ms = now_ms.saturating_sub(millis(now.saturating_duration_since(issued)));
    // The earliest refresh any cache with these settings makes: counted from
    // the issue, with the largest jitter.
    let schedule = Schedule::for_token(token, issued, config, 1.0);
    let at = |after: Option<Duration>| after.map(|d| issued_ms.saturating_add(millis(d)));
    Timing {
        issued_ms,
        expires_ms: at(schedule.expires_after),
        refresh_at_ms: at(schedule.refresh_after.or(schedule.usable_for)),
    }
}

/// Whether a process that read an entry with `timing` at `now_ms` hands its
/// token out or refreshes it.
pub(crate) fn on_read(timing: &Timing, now_ms: u64) -> OnRead {
    let due = |at: Option<u64>| at.is_some_and(|at| now_ms.saturating_add(READ_TOLERANCE_MS) >= at);
    if due(timing.expires_ms) || due(timing.refresh_at_ms) {
        OnRead::Refresh
    } else {
        OnRead::Serve
    }
}

/// The monotonic instant of the wall-clock moment `at_ms`, given that `now`
/// and `now_ms` are the same moment.
pub(crate) fn instant_of(at_ms: u64, now: Instant, now_ms: u64) -> Instant {
    if at_ms >= now_ms {
        now.checked_add(Duration::from_millis(at_ms - now_ms))
            .unwrap_or(now)
    } else {
        now.checked_sub(Duration::from_millis(now_ms - at_ms))
            .unwrap_or(now)
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn wall_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const EPOCH_MS: u64 = 1_800_000_000_000;

    fn timing(lifetime: Option<Duration>, built_before: Duration, config: &CacheConfig) -> Timing {
        let token = AccessToken::new("t");
        let token = match lifetime {
            Some(lifetime) => token.with_expires_in(lifetime),
            None => token,
        };
        let now = token.received_at() + built_before;
        timing_of(&token, now, EPOCH_MS, config)
    }

    #[tokio::test(start_paused = true)]
    async fn timings() {
        let config = CacheConfig::default();
        let table = [
            // 2 s: usable 1.8 s, window 0.45 s plus 20 % jitter.
            (
                Some(S(2)),
                S(0),
                Timing {
                    issued_ms: EPOCH_MS,
                    expires_ms: Some(EPOCH_MS + 2000),
                    refresh_at_ms: Some(EPOCH_MS + 1260),
                },
            ),
            // An hour: 60 s ahead plus 12 s of jitter, after a 10 s skew.
            (
                Some(S(3600)),
                S(0),
                Timing {
                    issued_ms: EPOCH_MS,
                    expires_ms: Some(EPOCH_MS + 3_600_000),
                    refresh_at_ms: Some(EPOCH_MS + 3_518_000),
                },
            ),
            // Built 1 s before the source returned it: issued then.
            (
                Some(S(2)),
                S(1),
                Timing {
                    issued_ms: EPOCH_MS - 1000,
                    expires_ms: Some(EPOCH_MS + 1000),
                    refresh_at_ms: Some(EPOCH_MS + 260),
                },
            ),
            // Unknown expiry: the default lifetime (1 h).
            (
                None,
                S(0),
                Timing {
                    issued_ms: EPOCH_MS,
                    expires_ms: Some(EPOCH_MS + 3_600_000),
                    refresh_at_ms: Some(EPOCH_MS + 3_518_000),
                },
            ),
            // Half a second: no refresh ahead; refreshed once no longer usable.
            (
                Some(Duration::from_millis(500)),
                S(0),
                Timing {
                    issued_ms: EPOCH_MS,
                    expires_ms: Some(EPOCH_MS + 500),
                    refresh_at_ms: Some(EPOCH_MS + 450),
                },
            ),
        ];
        for (lifetime, built_before, want) in table {
            assert_eq!(
                timing(lifetime, built_before, &config),
                want,
                "{lifetime:?} {built_before:?}"
            );
        }
        let never = AccessToken::new("k").never_expires();
        let now = never.received_at();
        assert_eq!(
            timing_of(&never, now, EPOCH_MS, &config),
            Timing {
                issued_ms: EPOCH_MS,
                expires_ms: None,
                refresh_at_ms: None
            }
        );
    }

    #[test]
    fn reads() {
        let t = Timing {
            issued_ms: 1000,
            expires_ms: Some(3000),
            refresh_at_ms: Some(2260),
        };
        let table = [
            (1000, OnRead::Serve),
            (2209, OnRead::Serve),
            // Within the tolerance of the refresh moment: due.
            (2210, OnRead::Refresh),
            (2260, OnRead::Refresh),
            (2999, OnRead::Refresh),
            (9999, OnRead::Refresh),
        ];
        for (now_ms, want) in table {
            assert_eq!(on_read(&t, now_ms), want, "at {now_ms}");
        }
        let never = Timing {
            issued_ms: 0,
            expires_ms: None,
            refresh_at_ms: None,
        };
        assert_eq!(on_read(&never, u64::MAX), OnRead::Serve);
        let no_refresh = Timing {
            issued_ms: 0,
            expires_ms: Some(100),
            refresh_at_ms: None,
        };
        assert_eq!(on_read(&no_refresh, 49), OnRead::Serve);
        assert_eq!(on_read(&no_refresh, 50), OnRead::Refresh);
    }

    /// No ping-pong: whenever a cache with the same settings installs an
    /// entry's token, and whatever its jitter, it refreshes at or after the
    /// entry's refresh moment, so the tier never hands back the token the
    /// cache is asking to replace.
    #[tokio::test(start_paused = true)]
    async fn every_cache_refreshes_at_or_after_the_entrys_refresh_moment() {
        let config = CacheConfig::default();
        for lifetime_ms in [1_000u64, 2_000, 3_000, 10_000, 60_000, 600_000, 3_600_000] {
            let token = AccessToken::new("t").with_expires_in(Duration::from_millis(lifetime_ms));
            let issued = token.received_at();
            let t = timing_of(&token, issued, EPOCH_MS, &config);
            let refresh_at = t.refresh_at_ms.unwrap();
            for installed_after_pct in [0u64, 1, 10, 30, 50, 62, 80] {
                let delay = Duration::from_millis(lifetime_ms * installed_after_pct / 100);
                if EPOCH_MS + millis(delay) >= refresh_at {
                    // Read after the refresh moment: the tier refreshes; the
                    // cache never installs this token.
                    continue;
                }
                for jitter in [0.0, 0.3, 0.999] {
                    let s = Schedule::for_token(&token, issued + delay, &config, jitter);
                    let due_after = s.refresh_after.or(s.usable_for).unwrap();
                    let due_ms = EPOCH_MS + millis(delay + due_after);
                    assert!(
                        due_ms >= refresh_at,
                        "lifetime {lifetime_ms} ms, installed after {installed_after_pct} %, jitter {jitter}: \
                         the cache refreshes at {} but the entry only at {}",
                        due_ms - EPOCH_MS,
                        refresh_at - EPOCH_MS
                    );
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn instants_and_wall_clock_moments_map_both_ways() {
        let now = Instant::now() + S(100);
        assert_eq!(
            instant_of(EPOCH_MS + 1500, now, EPOCH_MS),
            now + Duration::from_millis(1500)
        );
        assert_eq!(
            instant_of(EPOCH_MS - 1500, now, EPOCH_MS),
            now - Duration::from_millis(1500)
        );
        assert!(instant_of(u64::MAX, now, 0) >= now);
    }
}
