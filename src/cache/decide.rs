//! What the cache does for a caller that has no token it may use without
//! asking: a pure function of the time, the current token, the slow-path
//! state and what the caller wants. `mod.rs` carries the decision out.

use std::time::Duration;

use tokio::time::Instant;

use super::backoff;
use super::config::CacheConfig;
use super::current_token::Generation;

/// Where a token is in its life; see [`cached_token`](super::cached_token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Fresh,
    RefreshDue,
    Stale,
    Expired,
    Rejected,
}

/// Why a fetch was started; kept with the token it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchReason {
    /// There was no token yet.
    Empty,
    /// The token reached the end of its usable life.
    Expired,
    /// The token is near the end of its usable life and still served.
    RefreshAhead,
    /// A server rejected the token.
    Rejected,
}

impl FetchReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FetchReason::Empty => "empty",
            FetchReason::Expired => "expired",
            FetchReason::RefreshAhead => "refresh_ahead",
            FetchReason::Rejected => "rejected",
        }
    }
}

/// What a caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Any usable token.
    Any,
    /// A server rejected this generation: drop it if it is still current, and
    /// a token other than it.
    Replace(Generation),
}

/// What the decision needs to know of the current token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenView {
    pub(crate) generation: Generation,
    pub(crate) phase: Phase,
    /// A server accepted it since the rejection streak began.
    pub(crate) accepted: bool,
}

/// What the decision needs to know of the slow-path state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SlowView {
    /// A fetch is in flight.
    pub(crate) fetching: bool,
    /// No fetch starts before this (after failed fetches).
    pub(crate) backoff_until: Option<Instant>,
    /// No fetch starts before this (after rejections of fresh tokens).
    pub(crate) cooldown_until: Option<Instant>,
    /// No fetch starts before this: the token endpoint, shared with other
    /// keys behind one [`EndpointGate`](super::EndpointGate), is overloaded.
    pub(crate) paused_until: Option<Instant>,
    /// Tokens rejected in a row without having been accepted.
    pub(crate) streak: u32,
}

/// The decision for one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Drop the current token: a server rejected it.
    pub(crate) reject: Option<Rejection>,
    /// Start a fetch, for this reason.
    pub(crate) fetch: Option<FetchReason>,
    pub(crate) answer: Answer,
}

/// A rejection of the current token, weighed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The new streak of rejected tokens never accepted.
    pub(crate) streak: u32,
    /// Fetch nothing until then: the API keeps rejecting fresh tokens.
    pub(crate) cooldown_until: Option<Instant>,
}

/// What the caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The current token.
    Serve,
    /// The result of the fetch in flight.
    Wait,
    /// An error at once: fetches failed, the next may start at this instant.
    BackingOff(Instant),
    /// An error at once: the API rejected fresh tokens in a row; the next
    /// fetch may start at this instant.
    CoolingDown(Instant),
    /// An error at once: the token endpoint asked every key to slow down; the
    /// next fetch may start at this instant.
    Paused(Instant),
}

/// Decides what a caller gets and what the cache does for it.
///
/// - A rejection drops the token if it is still current (by generation), so
///   many rejections of one token count once. A token never accepted extends
///   the streak; past `rejections_before_cooldown` in a row, no token is
///   fetched until the cool-down ends.
/// - A fresh token is served; one due for refresh is served and refreshed; a
///   stale one (past its usable life, not expired) is served while it is
///   replaced.
/// - Without a token that may be served, the caller waits for the fetch in
///   flight, or starts one, or fails at once during a cool-down, a backoff
///   or a pause of the endpoint (whichever of the last two ends later).
pub(crate) fn decide(
    now: Instant,
    token: Option<TokenView>,
    slow: SlowView,
    want: Want,
    config: &CacheConfig,
) -> Decision {
    let mut reject = None;
    let mut phase = token.map(|t| t.phase);
    if let (Want::Replace(rejected), Some(t)) = (want, token) {
        if t.generation == rejected && t.phase != Phase::Rejected {
            let streak = if t.accepted {
                0
            } else {
                slow.streak.saturating_add(1)
            };
            let cooldown_until = backoff::cooldown(streak, config).map(|d| later(now, d));
            reject = Some(Rejection {
                streak,
                cooldown_until,
            });
            phase = Some(Phase::Rejected);
            if let Some(until) = cooldown_until {
                return Decision {
                    reject,
                    fetch: None,
                    answer: Answer::CoolingDown(until),
                };
            }
        }
    }

    let cooling = slow.cooldown_until.filter(|until| now < *until);
    let backing_off = slow.backoff_until.filter(|until| now < *until);
    let paused = slow.paused_until.filter(|until| now < *until);
    let may_fetch =
        !slow.fetching && cooling.is_none() && backing_off.is_none() && paused.is_none();
    let (fetch, answer) = match phase {
        Some(Phase::Fresh) => (None, Answer::Serve),
        Some(Phase::RefreshDue) => (
            may_fetch.then_some(FetchReason::RefreshAhead),
            Answer::Serve,
        ),
        Some(Phase::Stale) => (may_fetch.then_some(FetchReason::Expired), Answer::Serve),
        Some(Phase::Expired | Phase::Rejected) | None => {
            let reason = match phase {
                None => FetchReason::Empty,
                Some(Phase::Rejected) => FetchReason::Rejected,
                _ => FetchReason::Expired,
            };
            if slow.fetching {
                (None, Answer::Wait)
            } else if let Some(until) = cooling {
                (None, Answer::CoolingDown(until))
            } else {
                match (backing_off, paused) {
                    (Some(own), Some(shared)) if shared > own => (None, Answer::Paused(shared)),
                    (Some(own), _) => (None, Answer::BackingOff(own)),
                    (None, Some(shared)) => (None, Answer::Paused(shared)),
                    (None, None) => (Some(reason), Answer::Wait),
                }
            }
        }
    };
    Decision {
        reject,
        fetch,
        answer,
    }
}

/// `at + delay`, saturating at a far-future instant instead of panicking on
/// absurd settings (a `Duration::MAX` backoff).
pub(crate) fn later(at: Instant, delay: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    at.checked_add(delay).unwrap_or_else(|| at + FAR_FUTURE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Answer::*;
    use FetchReason as R;
    use Phase::*;

    const G: Generation = Generation(7);
    const OTHER: Generation = Generation(6);

    fn token(phase: Phase) -> Option<TokenView> {
        Some(TokenView {
            generation: G,
            phase,
            accepted: false,
        })
    }

    fn accepted(phase: Phase) -> Option<TokenView> {
        Some(TokenView {
            generation: G,
            phase,
            accepted: true,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn table() {
        let now = Instant::now();
        let soon = now + Duration::from_secs(1);
        let past = now - Duration::from_secs(1);
        let idle = SlowView::default();
        let fetching = SlowView {
            fetching: true,
            ..idle
        };
        let backing_off = SlowView {
            backoff_until: Some(soon),
            ..idle
        };
        let backoff_over = SlowView {
            backoff_until: Some(past),
            ..idle
        };
        let cooling = SlowView {
            cooldown_until: Some(soon),
            streak: 3,
            ..idle
        };
        let streak = |n| SlowView { streak: n, ..idle };
        let later_still = now + Duration::from_secs(5);
        let paused = SlowView {
            paused_until: Some(soon),
            ..idle
        };
        let pause_over = SlowView {
            paused_until: Some(past),
            ..idle
        };
        let paused_longer_than_backoff = SlowView {
            backoff_until: Some(soon),
            paused_until: Some(later_still),
            ..idle
        };
        let backoff_longer_than_pause = SlowView {
            backoff_until: Some(later_still),
            paused_until: Some(soon),
            ..idle
        };
        let rejected = |streak, cooldown_until| {
            Some(Rejection {
                streak,
                cooldown_until,
            })
        };
        let cooldown_ends = |ms| Some(now + Duration::from_millis(ms));

        type Expected = (Option<Rejection>, Option<FetchReason>, Answer);
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<TokenView>, SlowView, Want, Expected)> = vec![
            ("empty: fetch and wait", None, idle, Want::Any, (None, Some(R::Empty), Wait)),
            ("empty, fetch in flight: join it", None, fetching, Want::Any, (None, None, Wait)),
            ("empty, backing off: fail fast", None, backing_off, Want::Any, (None, None, BackingOff(soon))),
            ("empty, backoff over: fetch", None, backoff_over, Want::Any, (None, Some(R::Empty), Wait)),
            ("fresh: serve", token(Fresh), idle, Want::Any, (None, None, Serve)),
            ("fresh, even while backing off", token(Fresh), backing_off, Want::Any, (None, None, Serve)),
            ("refresh due: serve and refresh ahead", token(RefreshDue), idle, Want::Any, (None, Some(R::RefreshAhead), Serve)),
            ("refresh due, already refreshing: serve", token(RefreshDue), fetching, Want::Any, (None, None, Serve)),
            ("refresh due, backing off: serve, no fetch", token(RefreshDue), backing_off, Want::Any, (None, None, Serve)),
            ("stale: serve while it is replaced", token(Stale), idle, Want::Any, (None, Some(R::Expired), Serve)),
            ("stale, backing off: still served", token(Stale), backing_off, Want::Any, (None, None, Serve)),
            ("expired: fetch and wait", token(Expired), idle, Want::Any, (None, Some(R::Expired), Wait)),
            ("expired, fetch in flight: join it", token(Expired), fetching, Want::Any, (None, None, Wait)),
            ("expired, backing off: fail fast", token(Expired), backing_off, Want::Any, (None, None, BackingOff(soon))),
            ("rejected earlier: fetch and wait", token(Rejected), idle, Want::Any, (None, Some(R::Rejected), Wait)),
            ("rejected earlier, cooling down: fail fast", token(Rejected), cooling, Want::Any, (None, None, CoolingDown(soon))),
            ("rejection of the current token: drop it, fetch, wait", token(Fresh), idle, Want::Replace(G), (rejected(1, None), Some(R::Rejected), Wait)),
            ("rejection of a stale token: never served again", token(Stale), backing_off, Want::Replace(G), (rejected(1, None), None, BackingOff(soon))),
            ("rejection during a refresh: wait for it", token(RefreshDue), fetching, Want::Replace(G), (rejected(1, None), None, Wait)),
            ("rejection of an accepted token: a revocation, the streak ends", accepted(Fresh), streak(2), Want::Replace(G), (rejected(0, None), Some(R::Rejected), Wait)),
            ("second fresh token rejected in a row: still replaced", token(Fresh), streak(1), Want::Replace(G), (rejected(2, None), Some(R::Rejected), Wait)),
            ("third in a row: cool-down, no fetch", token(Fresh), streak(2), Want::Replace(G), (rejected(3, cooldown_ends(250)), None, CoolingDown(now + Duration::from_millis(250)))),
            ("fourth in a row: the cool-down doubles", token(Fresh), streak(3), Want::Replace(G), (rejected(4, cooldown_ends(500)), None, CoolingDown(now + Duration::from_millis(500)))),
            ("rejection of a token already replaced: serve the new one", token(Fresh), idle, Want::Replace(OTHER), (None, None, Serve)),
            ("rejection of a token already dropped: join the fetch", token(Rejected), fetching, Want::Replace(G), (None, None, Wait)),
            ("rejection with no token at all: fetch", None, idle, Want::Replace(G), (None, Some(R::Empty), Wait)),
            ("empty, endpoint paused: fail fast", None, paused, Want::Any, (None, None, Paused(soon))),
            ("empty, pause over: fetch", None, pause_over, Want::Any, (None, Some(R::Empty), Wait)),
            ("empty, paused longer than backing off: the pause", None, paused_longer_than_backoff, Want::Any, (None, None, Paused(later_still))),
            ("empty, backing off longer than paused: the backoff", None, backoff_longer_than_pause, Want::Any, (None, None, BackingOff(later_still))),
            ("fresh, endpoint paused: serve", token(Fresh), paused, Want::Any, (None, None, Serve)),
            ("refresh due, endpoint paused: serve, no fetch", token(RefreshDue), paused, Want::Any, (None, None, Serve)),
            ("stale, endpoint paused: serve, no fetch", token(Stale), paused, Want::Any, (None, None, Serve)),
            ("expired, endpoint paused: fail fast", token(Expired), paused, Want::Any, (None, None, Paused(soon))),
            ("rejection while the endpoint is paused: drop it, fail fast", token(Fresh), paused, Want::Replace(G), (rejected(1, None), None, Paused(soon))),
            ("fetch in flight while paused: join it", None, SlowView { fetching: true, ..paused }, Want::Any, (None, None, Wait)),
        ];
        for (name, token, slow, want, (reject, fetch, answer)) in cases {
            let got = decide(now, token, slow, want, &CacheConfig::default());
            assert_eq!(
                got,
                Decision {
                    reject,
                    fetch,
                    answer
                },
                "{name}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_delays_do_not_overflow() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
    }
}
