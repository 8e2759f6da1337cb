//! A token as the cache keeps it, and the phases of its life.
//!
//! A token's phase follows from the time since it was installed and from
//! whether a server rejected it:
//!
//! ```text
//!  installed ──► Fresh ──► RefreshDue ──► Stale ──► Expired
//!                  │  refresh_after    usable_for   expires_after
//!                  └──────────── any phase ──► Rejected (a server said so)
//! ```
//!
//! - **Fresh**: handed out.
//! - **RefreshDue**: handed out; the first use starts a refresh ahead of expiry.
//! - **Stale**: past its usable life (expiry minus skew), not yet expired:
//!   handed out only while its replacement is fetched or if that fails.
//! - **Rejected**: handed out only while no replacement may start (its
//!   replacement is paced, the source backs off, the endpoint is paused), so
//!   that requests get the API's own answer; never to a request that wants
//!   it replaced.
//! - **Expired**: never handed out again; an expired token is expired
//!   whether or not it was rejected.
//!
//! The hot path does not compute the phase: it compares the clock with one
//! atomic deadline, `fresh_until`, before which the token may be handed out
//! without asking anything else. The slow path moves that deadline: up to the
//! expiry while a replacement is being fetched (so callers keep going without
//! the lock), to the end of a backoff after a failed fetch (so the next use
//! after it tries again), to zero on rejection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderValue;

use super::clock::TokenClock;
use super::current_token::{CurrentToken, Generation};
use super::decide::{FetchReason, Phase};
use super::schedule::Schedule;
use crate::token::{AccessToken, Expiry, TokenFacts};

pub(crate) struct CachedToken {
    /// `<scheme> <token>`: the only copy of the secret the cache keeps (an
    /// `AccessToken` beside it would double what a token costs at rest).
    header: HeaderValue,
    pub(super) generation: Generation,
    /// What else is known about the token.
    facts: TokenFacts,
    pub(super) reason: FetchReason,
    /// The fetch that produced it: a late result of an older fetch never
    /// replaces it.
    pub(super) fetch: u64,
    /// It arrived with less life left than the minimum refresh interval.
    pub(super) too_short: bool,
    clock: TokenClock,
    // The schedule in the clock's ticks since installation; `u64::MAX`: never.
    refresh_after: u64,
    usable_for: u64,
    expires_after: u64,
    /// Before this many ticks, the hot path hands the token out on its own.
    /// Written only under the cache's slow-path lock.
    fresh_until: AtomicU64,
    rejected: AtomicBool,
    /// A server accepted it.
    accepted: AtomicBool,
}

impl CachedToken {
    /// `header` is the scheme, a space and `token`'s secret.
    pub(super) fn new(
        header: HeaderValue,
        generation: Generation,
        token: AccessToken,
        reason: FetchReason,
        fetch: u64,
        schedule: &Schedule,
        too_short: bool,
    ) -> Self {
        let clock = TokenClock::start();
        let ticks = |at: Option<Duration>| at.map_or(u64::MAX, |d| clock.ticks(d));
        let refresh_after = ticks(schedule.refresh_after);
        let usable_for = ticks(schedule.usable_for);
        debug_assert!(header.as_bytes().ends_with(token.secret().as_bytes()));
        Self {
            header,
            generation,
            facts: token.into_facts(),
            reason,
            fetch,
            too_short,
            clock,
            refresh_after,
            usable_for,
            expires_after: ticks(schedule.expires_after),
            fresh_until: AtomicU64::new(refresh_after.min(usable_for)),
            rejected: AtomicBool::new(false),
            accepted: AtomicBool::new(false),
        }
    }

    /// The hot path: `true` if it may be handed out without asking the slow
    /// path. One clock read, one atomic load.
    #[inline]
    pub(super) fn is_fresh_now(&self) -> bool {
        self.clock.elapsed() < self.fresh_until.load(Ordering::Relaxed)
    }

    /// The token itself, built again from the header, which is the scheme
    /// (`Bearer`, `DPoP`, or the one configured; never with a space), a
    /// space and the token (an allocation: for the rare callers that want
    /// it, never for a request).
    pub(super) fn access_token(&self) -> AccessToken {
        let header = self.header.as_bytes();
        let after_scheme = header.iter().position(|&b| b == b' ').map_or(0, |i| i + 1);
        let secret = std::str::from_utf8(&header[after_scheme..])
            .expect("the header was built from the scheme and the token's str");
        AccessToken::from_facts(secret, &self.facts)
    }

    pub(super) fn expiry(&self) -> Expiry {
        self.facts.expiry
    }

    pub(super) fn handout(&self) -> CurrentToken {
        CurrentToken {
            value: self.header.clone(),
            generation: self.generation,
            dpop: self.facts.dpop.as_deref().cloned(),
        }
    }

    pub(super) fn phase(&self) -> Phase {
        self.phase_at(self.clock.elapsed())
    }

    fn phase_at(&self, elapsed: u64) -> Phase {
        // An expired token is expired, rejected or not: it cannot be sent.
        if elapsed >= self.expires_after {
            Phase::Expired
        } else if self.rejected.load(Ordering::Relaxed) {
            Phase::Rejected
        } else if elapsed >= self.usable_for {
            Phase::Stale
        } else if elapsed >= self.refresh_after {
            Phase::RefreshDue
        } else {
            Phase::Fresh
        }
    }

    /// Not rejected and not expired: served when a refresh fails.
    pub(super) fn still_valid(&self) -> bool {
        !matches!(self.phase(), Phase::Expired | Phase::Rejected)
    }

    /// `true` if a server rejected it.
    pub(super) fn is_rejected(&self) -> bool {
        self.rejected.load(Ordering::Relaxed)
    }

    /// `true` until it expires, rejected or not.
    pub(super) fn has_not_expired(&self) -> bool {
        self.clock.elapsed() < self.expires_after
    }

    pub(super) fn was_accepted(&self) -> bool {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Records that a server accepted it.
    pub(super) fn mark_accepted(&self) {
        self.accepted.store(true, Ordering::Relaxed);
    }

    /// Never hands it out again. Under the slow-path lock.
    pub(super) fn mark_rejected(&self) {
        self.rejected.store(true, Ordering::Relaxed);
        self.fresh_until.store(0, Ordering::Relaxed);
    }

    /// A replacement is being fetched: until it arrives, hand this one out
    /// without the lock, up to its expiry. Under the slow-path lock.
    pub(super) fn serve_while_fetching(&self) {
        if !self.rejected.load(Ordering::Relaxed) {
            self.fresh_until
                .store(self.expires_after, Ordering::Relaxed);
        }
    }
    /// A rejected token that is still sent while no replacement can start:
    /// handed out without the lock for `for_` (or until it expires), after
    /// which the slow path is asked again.
    pub(super) fn serve_rejected_for(&self, for_: Duration) {
        let until = self
            .clock
            .elapsed()
            .saturating_add(self.clock.ticks(for_))
            .min(self.expires_after);
        self.fresh_until.store(until, Ordering::Relaxed);
    }

    /// A fetch ended without replacing it: the next use after `retry_in`
    /// asks the slow path again (to refresh, or to notice the expiry). Under
    /// the slow-path lock.
    pub(super) fn serve_until_retry(&self, retry_in: Duration) {
        if self.rejected.load(Ordering::Relaxed) {
            return;
        }
        let retry_at = self
            .clock
            .elapsed()
            .saturating_add(self.clock.ticks(retry_in));
        let until = retry_at
            .max(self.refresh_after.min(self.usable_for))
            .min(self.expires_after);
        self.fresh_until.store(until, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(schedule: Schedule) -> CachedToken {
        CachedToken::new(
            HeaderValue::from_static("Bearer t"),
            Generation(1),
            AccessToken::new("t"),
            FetchReason::Empty,
            1,
            &schedule,
            false,
        )
    }

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[tokio::test(start_paused = true)]
    async fn phases_follow_the_schedule_and_rejection() {
        let t = token(Schedule {
            refresh_after: secs(10),
            usable_for: secs(20),
            expires_after: secs(30),
        });
        let s = |secs: u64| t.phase_at(secs * 1_000_000_000);
        assert_eq!(
            [s(0), s(10), s(19), s(20), s(29), s(30), s(99)],
            [
                Phase::Fresh,
                Phase::RefreshDue,
                Phase::RefreshDue,
                Phase::Stale,
                Phase::Stale,
                Phase::Expired,
                Phase::Expired
            ]
        );
        t.mark_rejected();
        assert_eq!(s(0), Phase::Rejected);
        assert_eq!(s(29), Phase::Rejected);
        assert_eq!(s(30), Phase::Expired, "expired, rejected or not");
    }

    #[tokio::test(start_paused = true)]
    async fn the_fast_path_deadline_moves_with_fetches_and_rejection() {
        let t = token(Schedule {
            refresh_after: secs(10),
            usable_for: secs(20),
            expires_after: secs(30),
        });
        let advance = |s| tokio::time::advance(Duration::from_secs(s));
        assert!(t.is_fresh_now());
        advance(10).await;
        assert!(!t.is_fresh_now(), "refresh due: ask the slow path");
        t.serve_while_fetching();
        advance(15).await;
        assert!(t.is_fresh_now(), "stale, but served while fetching");
        t.serve_until_retry(Duration::from_secs(2));
        assert!(t.is_fresh_now());
        advance(2).await;
        assert!(!t.is_fresh_now(), "the backoff is over: try again");
        t.serve_until_retry(Duration::from_secs(60));
        advance(2).await;
        assert!(t.is_fresh_now());
        advance(1).await;
        assert!(!t.is_fresh_now(), "never past the expiry");
        assert_eq!(t.phase(), Phase::Expired);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_token_stays_unserved() {
        let t = token(Schedule {
            refresh_after: None,
            usable_for: None,
            expires_after: None,
        });
        assert!(t.is_fresh_now());
        t.mark_rejected();
        t.serve_while_fetching();
        t.serve_until_retry(Duration::from_secs(1));
        assert!(!t.is_fresh_now());
        assert!(!t.still_valid());
        assert!(t.has_not_expired());
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_token_is_sent_while_no_replacement_may_start() {
        let t = token(Schedule {
            refresh_after: secs(10),
            usable_for: secs(20),
            expires_after: secs(30),
        });
        t.mark_rejected();
        assert!(!t.is_fresh_now());
        t.serve_rejected_for(Duration::from_secs(5));
        assert!(t.is_fresh_now(), "sent without the lock while paced");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!t.is_fresh_now(), "the pace is over: ask the slow path");
        t.serve_rejected_for(Duration::from_secs(3600));
        tokio::time::advance(Duration::from_secs(25)).await;
        assert!(!t.is_fresh_now(), "never past the expiry");
        assert!(!t.has_not_expired());
    }
}
