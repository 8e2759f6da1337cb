//! What the cache does for a caller that has no token it may use without
//! asking: a pure function of the time, the current token, the slow-path
//! state and what the caller wants. `entry.rs` carries the decision out.
//!
//! # Replacements are paced; requests are not
//!
//! A token a server rejected is replaced by a fetch (a *replacement*). The
//! first [`rejections_before_pacing`](crate::TokenCacheBuilder::rejections_before_pacing)
//! replacements of a run start at once (a revocation, a replica that had not
//! seen the token yet); after that each one waits a pace after the previous
//! one, doubling from the initial backoff up to its maximum, so that an API
//! that rejects every token, or a gateway that answers 401 at random, costs a
//! bounded number of token requests. While a replacement waits, the rejected
//! token is still what requests carry (it has not expired): each is sent
//! once, and its caller gets the API's own answer (a 200 from a replica that
//! caught up, or the 401 with its `WWW-Authenticate`), never a failure
//! invented here. A run ends when a token lives out its life (it is replaced
//! for age, not for a rejection) or when a token that a server accepted has
//! lived longer than the pace before it is rejected.

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
    /// Any token that may be sent.
    Any,
    /// A server rejected this generation: drop it if it is still current, and
    /// a token other than it, to send the request once more with.
    Replace(Generation),
}

/// What the decision needs to know of the current token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenView {
    pub(crate) generation: Generation,
    pub(crate) phase: Phase,
    /// A server accepted it.
    pub(crate) accepted: bool,
    /// How long it has been installed.
    pub(crate) age: Duration,
}

/// What the decision needs to know of the slow-path state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SlowView {
    /// A fetch is in flight.
    pub(crate) fetching: bool,
    /// No fetch starts before this (after failed fetches).
    pub(crate) backoff_until: Option<Instant>,
    /// No fetch starts before this: the token endpoint, shared with other
    /// keys behind one [`EndpointGate`](super::EndpointGate), is overloaded.
    pub(crate) paused_until: Option<Instant>,
    /// Replacements started in the current run.
    pub(crate) replacements: u32,
    /// When the last of them started.
    pub(crate) last_replacement: Option<Instant>,
}

/// The decision for one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Drop the current token: a server rejected it (reported once per token).
    pub(crate) reject: bool,
    /// The run of replacements is over: count from zero again.
    pub(crate) new_run: bool,
    /// Start a fetch, for this reason.
    pub(crate) fetch: Option<FetchReason>,
    pub(crate) answer: Answer,
}

/// What the caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The current token, until this instant at the latest without asking
    /// again (`None`: as long as its schedule says).
    Serve(Option<Instant>),
    /// The result of the fetch in flight.
    Wait,
    /// An error at once: fetches failed, the next may start at this instant.
    BackingOff(Instant),
    /// An error at once: the token endpoint asked every key to slow down; the
    /// next fetch may start at this instant.
    Paused(Instant),
    /// An error at once for a caller that wants a replacement: replacements
    /// are paced, the next may start at this instant. The caller returns the
    /// rejection it holds.
    Paced(Instant),
}

/// Decides what a caller gets and what the cache does for it.
///
/// - A rejection drops the token if it is still current (by generation), so
///   many rejections of one token count once, and asks for its replacement,
///   which is paced (see the module docs).
/// - A fresh token is served; one due for refresh is served and refreshed; a
///   stale one (past its usable life, not expired) is served while it is
///   replaced; a rejected one is served while its replacement cannot start
///   (paced, backing off, paused), and never to a caller that wants it
///   replaced.
/// - Without a token that may be served, the caller waits for the fetch in
///   flight, or starts one, or fails at once during a backoff or a pause of
///   the endpoint (whichever ends later).
pub(crate) fn decide(
    now: Instant,
    token: Option<TokenView>,
    slow: SlowView,
    want: Want,
    config: &CacheConfig,
) -> Decision {
    let mut reject = false;
    let mut new_run = false;
    let mut replacements = slow.replacements;
    let mut phase = token.map(|t| t.phase);
    if let (Want::Replace(rejected), Some(t)) = (want, token) {
        if t.generation == rejected && !matches!(t.phase, Phase::Rejected | Phase::Expired) {
            reject = true;
            phase = Some(Phase::Rejected);
            // A token a server accepted and that then lived longer than the
            // pace was good: this rejection starts a new run.
            let pace = backoff::replacement_pace(
                replacements.max(config.rejections_before_pacing),
                config,
            );
            if t.accepted && t.age >= pace {
                new_run = true;
                replacements = 0;
            }
        }
    }

    let paced = replacement_paced_until(replacements, slow.last_replacement, config)
        .filter(|until| now < *until);
    let backing_off = slow.backoff_until.filter(|until| now < *until);
    let paused = slow.paused_until.filter(|until| now < *until);
    // Why no fetch may start now, and until when; the later one wins.
    let blocked = match (backing_off, paused) {
        (Some(own), Some(shared)) if shared > own => Some(Answer::Paused(shared)),
        (Some(own), _) => Some(Answer::BackingOff(own)),
        (None, Some(shared)) => Some(Answer::Paused(shared)),
        (None, None) => None,
    };
    let may_fetch = !slow.fetching && blocked.is_none();
    let (fetch, answer) = match phase {
        Some(Phase::Fresh) => (None, Answer::Serve(None)),
        Some(Phase::RefreshDue) => (
            may_fetch.then_some(FetchReason::RefreshAhead),
            Answer::Serve(None),
        ),
        Some(Phase::Stale) => (
            may_fetch.then_some(FetchReason::Expired),
            Answer::Serve(None),
        ),
        Some(Phase::Rejected) => {
            let wants_replacement =
                matches!(want, Want::Replace(g) if token.is_some_and(|t| t.generation == g));
            if slow.fetching {
                (None, Answer::Wait)
            } else if let Some(until) = paced.or_else(|| blocked.map(until_of)) {
                // No replacement now. A caller with a rejection in hand
                // returns it; any other is sent with the rejected token, and
                // gets the API's own answer.
                let answer = match (wants_replacement, paced, blocked) {
                    (true, Some(until), _) => Answer::Paced(until),
                    (true, None, Some(blocked)) => blocked,
                    _ => Answer::Serve(Some(until)),
                };
                (None, answer)
            } else {
                (Some(FetchReason::Rejected), Answer::Wait)
            }
        }
        Some(Phase::Expired) | None => {
            let reason = match phase {
                None => FetchReason::Empty,
                _ => FetchReason::Expired,
            };
            if slow.fetching {
                (None, Answer::Wait)
            } else if let Some(blocked) = blocked {
                (None, blocked)
            } else {
                (Some(reason), Answer::Wait)
            }
        }
    };
    Decision {
        reject,
        new_run,
        fetch,
        answer,
    }
}

/// The instant an error answer names.
fn until_of(answer: Answer) -> Instant {
    match answer {
        Answer::BackingOff(until) | Answer::Paused(until) | Answer::Paced(until) => until,
        Answer::Serve(_) | Answer::Wait => unreachable!("only blocked answers carry an instant"),
    }
}

/// When the next replacement may start after `replacements` in this run, the
/// last at `last`; `None`: at once.
fn replacement_paced_until(
    replacements: u32,
    last: Option<Instant>,
    config: &CacheConfig,
) -> Option<Instant> {
    if replacements < config.rejections_before_pacing {
        return None;
    }
    Some(later(
        last?,
        backoff::replacement_pace(replacements, config),
    ))
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
    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn token(phase: Phase) -> Option<TokenView> {
        Some(TokenView {
            generation: G,
            phase,
            accepted: false,
            age: Duration::ZERO,
        })
    }

    /// A token a server accepted, installed `age` ago.
    fn accepted(phase: Phase, age: Duration) -> Option<TokenView> {
        Some(TokenView {
            generation: G,
            phase,
            accepted: true,
            age,
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
        // `n` replacements in this run, the last one `ago` before now.
        let run = |n, ago: Duration| SlowView {
            replacements: n,
            last_replacement: Some(now - ago),
            ..idle
        };
        // Defaults: 3 replacements at once, then 250 ms, 500 ms, 1 s, ... 30 s.
        let paced_until = |n: u32, ago: u64| now - MS(ago) + MS(250 << (n - 3));

        type Expected = (bool, bool, Option<FetchReason>, Answer);
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<TokenView>, SlowView, Want, Expected)> = vec![
            ("empty: fetch and wait", None, idle, Want::Any, (false, false, Some(R::Empty), Wait)),
            ("empty, fetch in flight: join it", None, fetching, Want::Any, (false, false, None, Wait)),
            ("empty, backing off: fail fast", None, backing_off, Want::Any, (false, false, None, BackingOff(soon))),
            ("empty, backoff over: fetch", None, backoff_over, Want::Any, (false, false, Some(R::Empty), Wait)),
            ("fresh: serve", token(Fresh), idle, Want::Any, (false, false, None, Serve(None))),
            ("fresh, even while backing off", token(Fresh), backing_off, Want::Any, (false, false, None, Serve(None))),
            ("refresh due: serve and refresh ahead", token(RefreshDue), idle, Want::Any, (false, false, Some(R::RefreshAhead), Serve(None))),
            ("refresh due, already refreshing: serve", token(RefreshDue), fetching, Want::Any, (false, false, None, Serve(None))),
            ("refresh due, backing off: serve, no fetch", token(RefreshDue), backing_off, Want::Any, (false, false, None, Serve(None))),
            ("stale: serve while it is replaced", token(Stale), idle, Want::Any, (false, false, Some(R::Expired), Serve(None))),
            ("stale, backing off: still served", token(Stale), backing_off, Want::Any, (false, false, None, Serve(None))),
            ("expired: fetch and wait", token(Expired), idle, Want::Any, (false, false, Some(R::Expired), Wait)),
            ("expired, fetch in flight: join it", token(Expired), fetching, Want::Any, (false, false, None, Wait)),
            ("expired, backing off: fail fast", token(Expired), backing_off, Want::Any, (false, false, None, BackingOff(soon))),
            ("expired, however many replacements: fetched at once", token(Expired), run(9, MS(1)), Want::Any, (false, false, Some(R::Expired), Wait)),
            ("rejected earlier: replace and wait", token(Rejected), idle, Want::Any, (false, false, Some(R::Rejected), Wait)),
            ("rejected earlier, replacement in flight: wait for it", token(Rejected), fetching, Want::Any, (false, false, None, Wait)),
            ("rejected earlier, backing off: send it, the API answers", token(Rejected), backing_off, Want::Any, (false, false, None, Serve(Some(soon)))),
            ("rejected earlier, endpoint paused: send it", token(Rejected), paused, Want::Any, (false, false, None, Serve(Some(soon)))),
            ("rejected earlier, paced: send it until the pace ends", token(Rejected), run(3, MS(100)), Want::Any, (false, false, None, Serve(Some(paced_until(3, 100))))),
            ("rejected earlier, pace over: replace", token(Rejected), run(3, MS(300)), Want::Any, (false, false, Some(R::Rejected), Wait)),
            ("rejection of the current token: drop it, replace, wait", token(Fresh), idle, Want::Replace(G), (true, false, Some(R::Rejected), Wait)),
            ("second and third replacement in a run: at once", token(Fresh), run(2, MS(1)), Want::Replace(G), (true, false, Some(R::Rejected), Wait)),
            ("fourth replacement in a run: paced, the rejection is the answer", token(Fresh), run(3, MS(100)), Want::Replace(G), (true, false, None, Paced(paced_until(3, 100)))),
            ("fourth, its pace over: replace", token(Fresh), run(3, MS(250)), Want::Replace(G), (true, false, Some(R::Rejected), Wait)),
            ("fifth: the pace doubles", token(Fresh), run(4, MS(400)), Want::Replace(G), (true, false, None, Paced(paced_until(4, 400)))),
            ("the pace is capped", token(Fresh), run(40, MS(29_000)), Want::Replace(G), (true, false, None, Paced(now + MS(1000)))),
            ("paced rejection of a token already rejected: return it", token(Rejected), run(3, MS(100)), Want::Replace(G), (false, false, None, Paced(paced_until(3, 100)))),
            ("accepted, lived past the pace, then rejected: a new run", accepted(Fresh, MS(250)), run(3, MS(100)), Want::Replace(G), (true, true, Some(R::Rejected), Wait)),
            ("accepted but rejected within the pace: the run goes on", accepted(Fresh, MS(249)), run(3, MS(100)), Want::Replace(G), (true, false, None, Paced(paced_until(3, 100)))),
            ("accepted, rejected quickly, early in a run: still at once", accepted(Fresh, MS(1)), run(1, MS(1)), Want::Replace(G), (true, false, Some(R::Rejected), Wait)),
            ("rejection of a stale token: replaced, not served again", token(Stale), idle, Want::Replace(G), (true, false, Some(R::Rejected), Wait)),
            ("rejection while backing off: drop it, return the rejection", token(Fresh), backing_off, Want::Replace(G), (true, false, None, BackingOff(soon))),
            ("rejection during a refresh: wait for it", token(RefreshDue), fetching, Want::Replace(G), (true, false, None, Wait)),
            ("rejection of a token already replaced: serve the new one", token(Fresh), idle, Want::Replace(OTHER), (false, false, None, Serve(None))),
            ("rejection of a token already dropped: join the fetch", token(Rejected), fetching, Want::Replace(G), (false, false, None, Wait)),
            ("rejection of an expired token: fetch as expired", token(Expired), idle, Want::Replace(G), (false, false, Some(R::Expired), Wait)),
            ("rejection with no token at all: fetch", None, idle, Want::Replace(G), (false, false, Some(R::Empty), Wait)),
            ("empty, endpoint paused: fail fast", None, paused, Want::Any, (false, false, None, Paused(soon))),
            ("empty, pause over: fetch", None, pause_over, Want::Any, (false, false, Some(R::Empty), Wait)),
            ("empty, paused longer than backing off: the pause", None, paused_longer_than_backoff, Want::Any, (false, false, None, Paused(later_still))),
            ("empty, backing off longer than paused: the backoff", None, backoff_longer_than_pause, Want::Any, (false, false, None, BackingOff(later_still))),
            ("fresh, endpoint paused: serve", token(Fresh), paused, Want::Any, (false, false, None, Serve(None))),
            ("refresh due, endpoint paused: serve, no fetch", token(RefreshDue), paused, Want::Any, (false, false, None, Serve(None))),
            ("stale, endpoint paused: serve, no fetch", token(Stale), paused, Want::Any, (false, false, None, Serve(None))),
            ("expired, endpoint paused: fail fast", token(Expired), paused, Want::Any, (false, false, None, Paused(soon))),
            ("rejection while the endpoint is paused: return the rejection", token(Fresh), paused, Want::Replace(G), (true, false, None, Paused(soon))),
            ("fetch in flight while paused: join it", None, SlowView { fetching: true, ..paused }, Want::Any, (false, false, None, Wait)),
        ];
        for (name, token, slow, want, (reject, new_run, fetch, answer)) in cases {
            let got = decide(now, token, slow, want, &CacheConfig::default());
            assert_eq!(
                got,
                Decision {
                    reject,
                    new_run,
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
