//! The engine of one token's cache: the slow path that decides under a lock
//! (`decide::decide`) and carries the decision out. What becomes of a
//! finished fetch (its token installed, or its failure and backoff recorded)
//! is in `landing.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tracing::Instrument;

use super::cached_token::CachedToken;
use super::current_token::Generation;
use super::decide::{decide, Answer, Decision, FetchReason, SlowView, TokenView, Want};
use super::flight::{Flight, Flights, Landed, Owner};
use super::gate;
use super::metrics;
use super::stats::{Event, StatsCounters};
use super::timer;
use super::{Common, EndpointGate};
use crate::error::{CacheError, TokenError};
use crate::source::BoxTokenSource;
use crate::token::AccessToken;
use crate::token_ask::TokenAsk;

/// In `Entry::unconfirmed`, the keyed cache's use bit (generations never
/// reach it).
pub(super) const USED: u64 = 1 << 63;

/// The cache of one token: a [`TokenCache`], or one key of a keyed cache.
pub(crate) struct Entry {
    pub(super) current: ArcSwapOption<CachedToken>,
    pub(super) slow: Mutex<SlowState>,
    pub(super) source: BoxTokenSource,
    pub(super) common: Arc<Common>,
    pub(super) stats: StatsCounters,
    /// Below [`USED`]: the current token's generation until a server first
    /// accepts it, then 0: read on every accepted response, written once
    /// per token. [`USED`]: a keyed cache's use bit, set by a lookup, cleared
    /// by the eviction sweep (CLOCK, see `keyed/clock_ring.rs`). One word
    /// for both: 8 bytes less per cache and per key.
    pub(super) unconfirmed: AtomicU64,
    /// What tracing calls this entry's key; `None` for a single cache.
    pub(super) label: Option<Box<str>>,
}

pub(super) type Outcome = Result<Arc<CachedToken>, TokenError>;

/// The token a fetch replaces after a rejection, and what the server's
/// challenge asked the new one to carry.
pub(super) struct Replacing {
    pub(super) token: AccessToken,
    pub(super) ask: Option<TokenAsk>,
}

#[derive(Default)]
pub(super) struct SlowState {
    pub(super) flights: Flights<Outcome>,
    /// The fetch whose token is current; older fetches that finish late do
    /// not replace it.
    pub(super) installed_fetch: u64,
    /// The run of failed fetches, if the last one failed: boxed, since an
    /// idle cache has none (16 bytes less per cache and per key).
    pub(super) failing: Option<Box<Failing>>,
    /// Replacements of rejected tokens started in the current run (see
    /// `decide`), and when the last one started.
    pub(super) replacements: u32,
    pub(super) last_replacement: Option<Instant>,
    /// When the current token was installed.
    pub(super) installed_at: Option<Instant>,
}

/// A run of failed fetches.
pub(super) struct Failing {
    /// Consecutive failed fetches.
    pub(super) failures: u32,
    pub(super) backoff_until: Instant,
    pub(super) last_error: TokenError,
}

/// What one step of the slow path gave a caller.
pub(super) enum Step {
    Serve(Arc<CachedToken>),
    Wait(Flight<Outcome>),
    Fail(TokenError),
}

impl Entry {
    /// The cache of one token from `source`; `label` names its key in tracing.
    pub(super) fn new(
        source: BoxTokenSource,
        common: Arc<Common>,
        label: Option<Box<str>>,
    ) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            slow: Mutex::new(SlowState::default()),
            source,
            common,
            stats: StatsCounters::default(),
            unconfirmed: AtomicU64::new(0),
            label,
        }
    }

    pub(super) fn lock_slow(&self) -> MutexGuard<'_, SlowState> {
        // Nothing panics while holding this lock, but a poisoned lock must not
        // take every future request down with it.
        self.slow
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a usable token; after an abandoned fetch, tries once more.
    pub(super) async fn acquire(self: Arc<Self>, want: Want, ask: Option<TokenAsk>) -> Outcome {
        if want == Want::Any {
            if let Some(token) = self.current.load_full().filter(|t| t.is_fresh_now()) {
                return Ok(token);
            }
        }
        let mut waited = false;
        let mut second_chance = true;
        loop {
            let flight = match Entry::step(&self, want, ask.as_ref()) {
                Step::Serve(token) => return Ok(token),
                Step::Fail(err) => return Err(err),
                Step::Wait(flight) => flight,
            };
            if !std::mem::replace(&mut waited, true) {
                self.count(Event::Wait);
            }
            let id = flight.id;
            // Longer than any stage of a live fetch may take (its wait for a
            // turn, its call of the source), so that their own bounds end
            // them first; past it the fetch is stalled.
            let limit = self
                .common
                .config
                .fetch_timeout
                .saturating_add(gate::GRACE * 3);
            let gate = self.common.gate.as_ref();
            match flight
                .land(limit, || gate.map_or(0, EndpointGate::progress))
                .await
            {
                Landed::Delivered(Ok(token)) => return Ok(token),
                Landed::Delivered(Err(err)) => {
                    // A failed fetch never discards a token that may still be
                    // sent: a valid one, or, for a caller that does not want
                    // a replacement, a rejected one that has not expired, so
                    // that the API gives its own answer.
                    let fallback = self
                        .current
                        .load_full()
                        .filter(|c| c.still_valid() || (want == Want::Any && c.has_not_expired()));
                    return match fallback {
                        Some(current) => {
                            tracing::debug!(
                                generation = %current.generation,
                                "fetch failed; serving the token at hand"
                            );
                            Ok(current)
                        }
                        None => Err(err),
                    };
                }
                Landed::Stalled => self.abandoned(id),
                Landed::Abandoned => {}
                Landed::NoTimer => return Err(CacheError::NoTimer.into()),
            }
            if !std::mem::replace(&mut second_chance, false) {
                return Err(CacheError::FetchAbandoned.into());
            }
        }
    }

    /// One pass of the slow path: decides under the lock, carries the decision
    /// out, and starts the fetch it asks for after releasing the lock.
    pub(super) fn step(self: &Arc<Self>, want: Want, ask: Option<&TokenAsk>) -> Step {
        // A fetch needs a runtime with timers to run on (every wait is
        // bounded); without one, none is started.
        let runtime = Handle::try_current().ok();
        let mut no_timer = false;
        let _key = self.key_span().entered();
        let mut slow = self.lock_slow();
        let now = Instant::now();
        let paused_until = self.common.gate.as_ref().and_then(|gate| gate.paused(now));
        let current = self.current.load_full();
        let view = current.as_deref().map(|token| TokenView {
            generation: token.generation,
            phase: token.phase(),
            accepted: token.was_accepted(),
            age: slow
                .installed_at
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at)),
        });
        let slow_view = SlowView {
            fetching: slow.flights.busy(),
            backoff_until: slow.failing.as_ref().map(|f| f.backoff_until),
            paused_until,
            replacements: slow.replacements,
            last_replacement: slow.last_replacement,
        };
        let Decision {
            reject,
            new_run,
            fetch,
            answer,
        } = decide(now, view, slow_view, want, &self.common.config);

        if new_run {
            slow.replacements = 0;
        }
        if let (true, Some(token)) = (reject, &current) {
            token.mark_rejected();
            self.count(Event::Invalidation);
            tracing::info!(
                generation = %token.generation,
                replacements_in_a_row = slow.replacements,
                "token rejected by a server; invalidated"
            );
        }

        let mut started = None;
        let mut own_flight = None;
        let runtime = runtime.filter(|_| {
            no_timer = fetch.is_some() && !timer::available();
            !no_timer
        });
        if let (Some(reason), Some(runtime)) = (fetch, runtime) {
            if let Some(serving) = current
                .as_ref()
                .filter(|_| matches!(answer, Answer::Serve(_)))
            {
                serving.serve_while_fetching();
            }
            if reason == FetchReason::Rejected {
                slow.replacements = slow.replacements.saturating_add(1);
                slow.last_replacement = Some(now);
            }
            let (ticket, flight) = slow.flights.begin(Arc::clone(self));
            // The source learns which token it replaces after a rejection,
            // and what the server's challenge asked for, if anything.
            let replacing = current
                .as_ref()
                .filter(|_| reason == FetchReason::Rejected)
                .map(|token| Replacing {
                    token: token.access_token(),
                    ask: ask.cloned(),
                });
            started = Some((reason, runtime, ticket, replacing));
            own_flight = Some(flight);
        }
        let step = match answer {
            Answer::Serve(until) => {
                let token = current.expect("served tokens exist");
                if let Some(until) = until {
                    // A rejected token, sent while no replacement can start:
                    // without the lock until then.
                    token.serve_rejected_for(until.saturating_duration_since(now));
                }
                Step::Serve(token)
            }
            // Waiting without a fetch to wait for: none could be started.
            Answer::Wait => match own_flight.or_else(|| slow.flights.join()) {
                Some(flight) => Step::Wait(flight),
                None if no_timer => Step::Fail(CacheError::NoTimer.into()),
                None => Step::Fail(CacheError::NoRuntime.into()),
            },
            Answer::BackingOff(until) => {
                tracing::debug!(
                    retry_in_ms = until.saturating_duration_since(now).as_millis() as u64,
                    "token source backing off; failing fast"
                );
                Step::Fail(
                    slow.failing
                        .as_ref()
                        .map(|f| f.last_error.clone())
                        .unwrap_or_else(|| {
                            TokenError::transient("the token source is backing off")
                        }),
                )
            }
            Answer::Paced(until) => {
                let remaining = until.saturating_duration_since(now);
                tracing::debug!(
                    replacements_in_a_row = slow.replacements,
                    next_replacement_in_ms = remaining.as_millis() as u64,
                    "servers keep rejecting tokens; the rejection is the answer until the next replacement"
                );
                Step::Fail(
                    TokenError::from(CacheError::ReplacementPaced {
                        replacements_in_a_row: slow.replacements,
                    })
                    .with_retry_after(remaining),
                )
            }
            Answer::Paused(until) => {
                let remaining = until.saturating_duration_since(now);
                tracing::debug!(
                    retry_in_ms = remaining.as_millis() as u64,
                    "token endpoint paused; failing fast"
                );
                Step::Fail(TokenError::from(CacheError::EndpointPaused).with_retry_after(remaining))
            }
        };
        drop(slow);

        if let Some((reason, runtime, ticket, replacing)) = started {
            self.count(Event::Fetch);
            if reason == FetchReason::RefreshAhead {
                self.count(Event::RefreshAhead);
            }
            let span = tracing::info_span!(
                "tower_bearer.fetch",
                cache = &*self.common.config.name,
                fetch = ticket.id,
                reason = reason.as_str(),
                key = tracing::field::Empty,
            );
            if let Some(label) = &self.label {
                span.record("key", tracing::field::display(label));
            }
            // Outside the lock: a runtime that is shutting down drops the task
            // at once, and the ticket's drop takes the lock to free the slot.
            runtime.spawn(Entry::fetch_task(ticket, reason, replacing).instrument(span));
        }
        step
    }

    /// The first acceptance of the current token: it was good.
    #[cold]
    pub(super) fn note_accepted(&self, generation: Generation) {
        if self
            .unconfirmed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                (word & !USED == generation.0).then_some(word & USED)
            })
            .is_err()
        {
            return;
        }
        if let Some(token) = self.current.load().as_deref() {
            if token.generation == generation {
                token.mark_accepted();
            }
        }
    }
}

impl Entry {
    /// Counts one event in this entry's counters and in its cache's totals.
    pub(super) fn count(&self, event: Event) {
        StatsCounters::bump(self.stats.counter(event));
        if let Some(totals) = &self.common.totals {
            StatsCounters::bump(totals.counter(event));
        }
        metrics::event(&self.common.config.name, event);
    }

    /// The span naming this entry's key, around the events of its slow path;
    /// none for a single cache.
    pub(super) fn key_span(&self) -> tracing::Span {
        match &self.label {
            Some(label) => tracing::info_span!("tower_bearer.key", key = %label),
            None => tracing::Span::none(),
        }
    }
}

impl Owner for Entry {
    fn abandoned(&self, id: u64) {
        let _key = self.key_span().entered();
        let mut slow = self.lock_slow();
        if !slow.flights.end(id) {
            return;
        }
        self.count(Event::FetchFailure);
        metrics::fetch_abandoned(&self.common.config.name);
        tracing::debug!(
            fetch = id,
            "token fetch abandoned; the next caller starts another"
        );
        // Not the source's fault: no backoff. The token served while the
        // fetch ran goes back to asking the slow path, which fetches again.
        if let Some(current) = self.current.load_full() {
            current.serve_until_retry(Duration::ZERO);
        }
    }
}
