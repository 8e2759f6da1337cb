//! The token cache: lock-free reads, single-flight fetches, refresh ahead of
//! expiry on use, backoff after failures, invalidation by generation, and a
//! cool-down when an API rejects every fresh token.
//!
//! [`TokenCache`] and what it hands out and reports: [`CurrentToken`] with
//! its [`Generation`], [`CacheStats`], and the [`EndpointGate`] that caches
//! sharing one token endpoint go through.
//!
//! A token is read without a lock or an allocation, and its expiry is checked
//! against a clock that needs no runtime, so one cache can serve clients on
//! many runtimes and a token nobody uses is never refreshed.

// How it works (for maintainers).
//
// The current token lives in an `ArcSwapOption` with its prepared
// `Authorization` value and one atomic deadline (`cached_token`). Handing
// it out is a pointer load, a coarse clock read (about 9 ns), one relaxed
// atomic load and a `HeaderValue` clone: no lock, no allocation, no task.
// Time is read on use, so a token's life ends on time whichever runtime reads
// it, even after the runtime that fetched it is gone, and a token nobody uses
// costs nothing and is never refreshed.
//
// Everything else takes the slow path: a mutex, never held across an
// `.await`, under which `decide::decide` (a pure function) says
// what a caller gets and whether a fetch starts. At most one fetch runs at a
// time (`flight`), in a task of its own on the caller's runtime, so
// dropping the caller that started it cancels nothing; every waiter gets its
// result. A fetch that never completes (its runtime shut down, its task
// never ran) frees its slot, and waiters start another.
//
// One cache is one `Entry`; what does not depend on the token (the
// settings, the `EndpointGate`, the generation counter, a keyed cache's
// totals) lives in a `Common` that every key of a
// `KeyedTokenCache` shares, so that an idle key
// costs a few hundred bytes and no task. Every fetch goes through one
// function, `fetch_task`: its turn at the gate, the source, the result.

pub(crate) mod backoff;
mod cached_token;
mod clock;
pub(crate) mod config;
mod current_token;
mod decide;
mod flight;
mod gate;
mod metrics;
mod overload;
pub(crate) mod schedule;
mod stats;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::{BufMut, BytesMut};
use http::HeaderValue;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tracing::Instrument;

pub use config::TokenCacheBuilder;
pub use current_token::{CurrentToken, Generation};
pub use gate::{EndpointGate, EndpointGateBuilder, GateStats};
pub use stats::CacheStats;

use self::cached_token::CachedToken;
use self::config::CacheConfig;
use self::decide::{decide, later, Answer, Decision, FetchReason, SlowView, TokenView, Want};
use self::flight::{CatchPanic, Flight, Flights, Landed, Owner, Stage, Ticket};
use self::schedule::Schedule;
pub(crate) use self::stats::StatsCounters;
use self::stats::{Event, FetchOutcome};
use crate::error::{CacheError, Chain, TokenError};
use crate::source::{BoxTokenSource, TokenSource};
use crate::token::{AccessToken, Expiry};

/// Caches the token of one [`TokenSource`] and refreshes it.
///
/// Cheap to clone: clones share one cache. A [`BearerAuthLayer`](crate::BearerAuthLayer)
/// owns one; build one yourself to tune it ([`TokenCache::builder`]), to share
/// it between layers, to read its [`stats`](TokenCache::stats), or to use it
/// from a client of your own through its protocol:
///
/// - [`current`](TokenCache::current): the token to send now, if one may be
///   sent without waiting (no lock, no allocation);
/// - [`acquire`](TokenCache::acquire): waits for one;
/// - [`replace`](TokenCache::replace) / [`reject`](TokenCache::reject): a
///   server rejected the token of this [`Generation`];
/// - [`accepted`](TokenCache::accepted): a server accepted it.
///
/// Fetches run as tokio tasks on the runtime of the caller that needs them;
/// the cache itself depends on no runtime staying alive, so one cache may be
/// shared by clients on many runtimes, one after another or at once.
///
/// ```
/// use std::time::Duration;
/// use http::header::AUTHORIZATION;
/// use tower_bearer::{from_fn, AccessToken, TokenCache};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = TokenCache::new(from_fn(|| async {
///     Ok(AccessToken::new("fresh").with_expires_in(Duration::from_secs(3600)))
/// }));
///
/// // A thousand concurrent callers on an empty cache cause one fetch.
/// let callers: Vec<_> = (0..1000).map(|_| tokio::spawn(cache.acquire())).collect();
/// for caller in callers {
///     assert_eq!(caller.await.unwrap().unwrap().header_value(), "Bearer fresh");
/// }
/// assert_eq!(cache.stats().fetches, 1);
///
/// // Your own client: send with the current token, report what the server said.
/// let token = match cache.current() {
///     Some(token) => token,
///     None => cache.acquire().await.unwrap(),
/// };
/// let mut request = http::Request::get("http://127.0.0.1/").body(()).unwrap();
/// request.headers_mut().insert(AUTHORIZATION, token.header_value().clone());
/// let status = http::StatusCode::UNAUTHORIZED; // what the server answered
/// if status == http::StatusCode::UNAUTHORIZED {
///     // One refresh however many requests report the same generation;
///     // send the request once more with the replacement.
///     let fresh = cache.replace(token.generation()).await.unwrap();
///     assert_ne!(fresh.generation(), token.generation());
/// } else {
///     cache.accepted(token.generation());
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Entry>,
}

/// The cache of one token: a [`TokenCache`], or one key of a keyed cache.
pub(crate) struct Entry {
    current: ArcSwapOption<CachedToken>,
    slow: Mutex<SlowState>,
    source: BoxTokenSource,
    common: Arc<Common>,
    stats: StatsCounters,
    /// The current token's generation until a server first accepts it, then
    /// 0: read on every accepted response, written once per token.
    unconfirmed: AtomicU64,
    /// A rejection streak is running (the slow path's streak is not 0).
    streak_running: AtomicBool,
    /// A keyed cache's use bit: set by a lookup, cleared by the eviction
    /// sweep (CLOCK, see `keyed/clock_ring.rs`).
    pub(crate) used: AtomicBool,
    /// What tracing calls this entry's key; `None` for a single cache.
    label: Option<Box<str>>,
}

/// What every entry of one cache shares.
pub(crate) struct Common {
    pub(crate) config: CacheConfig,
    pub(crate) gate: Option<EndpointGate>,
    /// Generations are unique across the keys of a keyed cache, so that a
    /// rejection can never name another key's token, nor that of a key that
    /// was evicted and fetched again.
    generations: AtomicU64,
    /// A keyed cache's counters over all its keys, evicted ones included
    /// (boxed: a single cache does without them at the cost of a pointer).
    pub(crate) totals: Option<Box<StatsCounters>>,
}

impl Common {
    pub(crate) fn new(config: CacheConfig, gate: Option<EndpointGate>, keyed: bool) -> Self {
        Self {
            config,
            gate,
            generations: AtomicU64::new(0),
            totals: keyed.then(Box::default),
        }
    }
}

type Outcome = Result<Arc<CachedToken>, TokenError>;

#[derive(Default)]
struct SlowState {
    flights: Flights<Outcome>,
    /// The fetch whose token is current; older fetches that finish late do
    /// not replace it.
    installed_fetch: u64,
    /// Consecutive failed fetches.
    failures: u32,
    backoff_until: Option<Instant>,
    last_error: Option<TokenError>,
    /// Tokens rejected in a row that no server had accepted.
    streak: u32,
    cooldown_until: Option<Instant>,
}

/// What one step of the slow path gave a caller.
enum Step {
    Serve(Arc<CachedToken>),
    Wait(Flight<Outcome>),
    Fail(TokenError),
}

impl TokenCache {
    /// A cache with default settings around `source`.
    pub fn new(source: impl TokenSource) -> Self {
        Self::builder(source).build()
    }

    /// A builder to tune timing, backoff, limits and the header scheme.
    pub fn builder(source: impl TokenSource) -> TokenCacheBuilder {
        TokenCacheBuilder::new(source)
    }

    /// The cache of one token from `source`; `label` names its key in tracing.
    pub(crate) fn from_parts(
        source: BoxTokenSource,
        common: Arc<Common>,
        label: Option<Box<str>>,
    ) -> Self {
        Self {
            shared: Arc::new(Entry {
                current: ArcSwapOption::empty(),
                slow: Mutex::new(SlowState::default()),
                source,
                common,
                stats: StatsCounters::default(),
                unconfirmed: AtomicU64::new(0),
                streak_running: AtomicBool::new(false),
                used: AtomicBool::new(false),
                label,
            }),
        }
    }

    /// Marks the entry used for a keyed cache's eviction sweep: a load, and
    /// a store only the first time after each sweep.
    #[inline]
    pub(crate) fn mark_used(&self) {
        if !self.shared.used.load(Ordering::Relaxed) {
            self.shared.used.store(true, Ordering::Relaxed);
        }
    }

    /// Takes the use bit: `true` if the entry was used since the last take.
    pub(crate) fn take_used(&self) -> bool {
        self.shared.used.swap(false, Ordering::Relaxed)
    }

    /// `true` while a fetch is in flight.
    pub(crate) fn is_fetching(&self) -> bool {
        self.shared.lock_slow().flights.busy()
    }

    /// The token endpoint's gate this cache fetches through, if any.
    pub fn gate(&self) -> Option<&EndpointGate> {
        self.shared.common.gate.as_ref()
    }

    /// The token to send now, if there is one that may be sent without
    /// waiting; `None` means [`acquire`](TokenCache::acquire) it.
    ///
    /// Takes no lock and allocates nothing while the token is fresh. The first
    /// call after the token enters its last part of life starts a refresh in
    /// the background (on the caller's tokio runtime) and still returns the
    /// token.
    pub fn current(&self) -> Option<CurrentToken> {
        if let Some(token) = self.shared.current.load().as_deref() {
            if token.is_fresh_now() {
                return Some(token.handout());
            }
        }
        match Entry::step(&self.shared, Want::Any) {
            Step::Serve(token) => Some(token.handout()),
            Step::Wait(_) | Step::Fail(_) => None,
        }
    }

    /// Waits for a token that may be sent: the current one, or the result of
    /// the fetch in flight, or of a fetch it starts.
    ///
    /// Fails at once, without fetching, while the source is backing off after
    /// failures (unless a token that has not expired is at hand, which is
    /// then returned) or during a rejection cool-down. The future does not
    /// borrow the cache.
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move { Ok(Entry::acquire(shared, Want::Any).await?.handout()) }
    }

    /// A server rejected the token of `rejected`: drops it if it is still
    /// current, and waits for a token other than it, to send the request once
    /// more with.
    ///
    /// However many callers report the same generation, the token is dropped
    /// and replaced once. Fails without fetching while the API is in a
    /// rejection cool-down ([`CacheError::CoolingDown`]) or the source is
    /// backing off; the caller should then give up on this request. The
    /// future does not borrow the cache.
    pub fn replace(
        &self,
        rejected: Generation,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            Ok(Entry::acquire(shared, Want::Replace(rejected))
                .await?
                .handout())
        }
    }

    /// A server rejected the token of `rejected` on a request that will not be
    /// sent again: drops it if it is still current and starts its replacement,
    /// without waiting.
    pub fn reject(&self, rejected: Generation) {
        let _ = Entry::step(&self.shared, Want::Replace(rejected));
    }

    /// A server accepted the token of `generation`.
    ///
    /// Costs one atomic load, except for the first acceptance of each token,
    /// which is recorded: a token that was accepted and then rejected was
    /// revoked, while a token rejected before any acceptance counts towards
    /// the rejection cool-down. That is how an API that revokes some tokens
    /// is told apart from one that rejects them all.
    #[inline]
    pub fn accepted(&self, generation: Generation) {
        if self.shared.unconfirmed.load(Ordering::Relaxed) == generation.0 {
            self.shared.note_accepted(generation);
        }
    }

    /// The current token itself (not the header value), fetching one if
    /// needed, as [`acquire`](TokenCache::acquire) does.
    pub fn token(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move { Ok(Entry::acquire(shared, Want::Any).await?.token.clone()) }
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        self.shared.stats.snapshot()
    }

    pub(crate) fn record_retry(&self) {
        self.shared.count(Event::Retry);
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.shared.current.load();
        f.debug_struct("TokenCache")
            .field(
                "current_generation",
                &current.as_ref().map(|c| c.generation),
            )
            .field("key", &self.shared.label)
            .field("config", &self.shared.common.config)
            .field("gate", &self.shared.common.gate)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Entry {
    fn lock_slow(&self) -> MutexGuard<'_, SlowState> {
        // Nothing panics while holding this lock, but a poisoned lock must not
        // take every future request down with it.
        self.slow
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a usable token; after an abandoned fetch, tries once more.
    async fn acquire(self: Arc<Self>, want: Want) -> Outcome {
        if want == Want::Any {
            if let Some(token) = self.current.load_full().filter(|t| t.is_fresh_now()) {
                return Ok(token);
            }
        }
        let mut waited = false;
        let mut second_chance = true;
        loop {
            let flight = match Entry::step(&self, want) {
                Step::Serve(token) => return Ok(token),
                Step::Fail(err) => return Err(err),
                Step::Wait(flight) => flight,
            };
            if !std::mem::replace(&mut waited, true) {
                self.count(Event::Wait);
            }
            let id = flight.id;
            // A little longer than the fetch itself may take, so that its own
            // timeout normally ends it first.
            let limit = self.common.config.fetch_timeout + Duration::from_secs(1);
            match flight.land(limit).await {
                Landed::Delivered(Ok(token)) => return Ok(token),
                Landed::Delivered(Err(err)) => {
                    // A failed refresh never discards a token that is still valid.
                    return match self.current.load_full().filter(|c| c.still_valid()) {
                        Some(current) => {
                            tracing::debug!(
                                generation = %current.generation,
                                "fetch failed; serving the still-valid token"
                            );
                            Ok(current)
                        }
                        None => Err(err),
                    };
                }
                Landed::Stalled => self.abandoned(id),
                Landed::Abandoned => {}
            }
            if !std::mem::replace(&mut second_chance, false) {
                return Err(CacheError::FetchAbandoned.into());
            }
        }
    }

    /// One pass of the slow path: decides under the lock, carries the decision
    /// out, and starts the fetch it asks for after releasing the lock.
    fn step(self: &Arc<Self>, want: Want) -> Step {
        // A fetch needs a runtime to run on; without one, none is started.
        let runtime = Handle::try_current().ok();
        let _key = self.key_span().entered();
        let mut slow = self.lock_slow();
        let now = Instant::now();
        let pause = self.common.gate.as_ref().and_then(|gate| gate.paused(now));
        let current = self.current.load_full();
        let view = current.as_deref().map(|token| TokenView {
            generation: token.generation,
            phase: token.phase(),
            accepted: token.was_accepted(),
        });
        let slow_view = SlowView {
            fetching: slow.flights.busy(),
            backoff_until: slow.backoff_until,
            cooldown_until: slow.cooldown_until,
            paused_until: pause.as_ref().map(|(until, _)| *until),
            streak: slow.streak,
        };
        let Decision {
            reject,
            fetch,
            answer,
        } = decide(now, view, slow_view, want, &self.common.config);

        if let (Some(rejection), Some(token)) = (reject, &current) {
            token.mark_rejected();
            self.count(Event::Invalidation);
            slow.streak = rejection.streak;
            self.streak_running
                .store(rejection.streak > 0, Ordering::Relaxed);
            tracing::info!(
                generation = %token.generation,
                rejected_in_a_row = rejection.streak,
                "token rejected by a server; invalidated"
            );
            if let Some(until) = rejection.cooldown_until {
                slow.cooldown_until = Some(until);
                self.count(Event::Cooldown);
                tracing::warn!(
                    rejected_in_a_row = rejection.streak,
                    cooldown_ms = until.saturating_duration_since(now).as_millis() as u64,
                    "the API keeps rejecting fresh tokens; not fetching before the cool-down ends"
                );
            }
        }

        let mut started = None;
        let mut own_flight = None;
        if let (Some(reason), Some(runtime)) = (fetch, runtime) {
            if let Some(serving) = current.as_ref().filter(|_| answer == Answer::Serve) {
                serving.serve_while_fetching();
            }
            let (ticket, flight) = slow.flights.begin(Arc::clone(self));
            // The source learns which token it replaces after a rejection.
            let replacing = current
                .as_ref()
                .filter(|_| reason == FetchReason::Rejected)
                .map(|token| token.token.clone());
            started = Some((reason, runtime, ticket, replacing));
            own_flight = Some(flight);
        }
        let step =
            match answer {
                Answer::Serve => Step::Serve(current.expect("served tokens exist")),
                // Waiting without a fetch to wait for: none could be started.
                Answer::Wait => match own_flight.or_else(|| slow.flights.join()) {
                    Some(flight) => Step::Wait(flight),
                    None => Step::Fail(CacheError::NoRuntime.into()),
                },
                Answer::BackingOff(until) => {
                    tracing::debug!(
                        retry_in_ms = until.saturating_duration_since(now).as_millis() as u64,
                        "token source backing off; failing fast"
                    );
                    Step::Fail(slow.last_error.clone().unwrap_or_else(|| {
                        TokenError::transient("the token source is backing off")
                    }))
                }
                Answer::CoolingDown(until) => Step::Fail(
                    TokenError::from(CacheError::CoolingDown {
                        rejected_in_a_row: slow.streak,
                    })
                    .with_retry_after(until.saturating_duration_since(now)),
                ),
                Answer::Paused(until) => {
                    let remaining = until.saturating_duration_since(now);
                    tracing::debug!(
                        retry_in_ms = remaining.as_millis() as u64,
                        "token endpoint paused; failing fast"
                    );
                    let error = pause.map(|(_, error)| error).unwrap_or_else(|| {
                        TokenError::transient("the token endpoint is overloaded")
                    });
                    Step::Fail(error.with_retry_after(remaining))
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
            runtime.spawn(fetch_task(ticket, reason, replacing).instrument(span));
        }
        step
    }

    /// Installs a fetched token or records a failure; frees the slot.
    fn complete(
        &self,
        id: u64,
        reason: FetchReason,
        result: Result<AccessToken, TokenError>,
    ) -> Outcome {
        let now = Instant::now();
        let prepared = result.and_then(|token| self.prepare(token, reason, id, now));
        let mut slow = self.lock_slow();
        slow.flights.end(id);
        let still_valid = self.current.load_full().filter(|c| c.still_valid());
        match prepared {
            Ok(token) if id < slow.installed_fetch => {
                // A fetch given up as stalled finished after a newer one.
                Ok(still_valid.unwrap_or(token))
            }
            Ok(token) if token.too_short => {
                self.count(Event::FetchFailure);
                let delay =
                    self.record_failure(&mut slow, CacheError::TokenTooShortLived.into(), now);
                // A refresh must never make things worse: keep a token that is
                // still valid. Without one, hand this one to the waiters if it
                // has not expired: it is the freshest there is.
                if let Some(current) = still_valid {
                    current.serve_until_retry(delay);
                    return Ok(current);
                }
                if !token.still_valid() {
                    return Err(CacheError::TokenTooShortLived.into());
                }
                self.install(&mut slow, &token);
                Ok(token)
            }
            Ok(token) => {
                slow.failures = 0;
                slow.backoff_until = None;
                slow.last_error = None;
                self.install(&mut slow, &token);
                Ok(token)
            }
            Err(err) => {
                self.count(Event::FetchFailure);
                let delay = self.record_failure(&mut slow, err.clone(), now);
                if let Some(current) = still_valid {
                    current.serve_until_retry(delay);
                }
                Err(err)
            }
        }
    }

    fn install(&self, slow: &mut SlowState, token: &Arc<CachedToken>) {
        slow.installed_fetch = token.fetch;
        self.unconfirmed
            .store(token.generation.0, Ordering::Relaxed);
        self.current.store(Some(Arc::clone(token)));
        let expires_in = match token.token.expiry() {
            Expiry::At(at) => Some(at.saturating_duration_since(Instant::now())),
            Expiry::Unknown => self.common.config.default_lifetime,
            Expiry::Never => None,
        };
        metrics::token_installed(&self.common.config.name, expires_in);
        tracing::debug!(
            generation = %token.generation,
            reason = token.reason.as_str(),
            too_short = token.too_short,
            "token installed"
        );
    }

    /// Records a failed fetch; returns the backoff before the next one.
    fn record_failure(&self, slow: &mut SlowState, err: TokenError, now: Instant) -> Duration {
        slow.failures = slow.failures.saturating_add(1);
        let delay = backoff::delay_after_failure(
            slow.failures,
            &err,
            &self.common.config,
            backoff::jitter(),
        );
        slow.backoff_until = Some(later(now, delay));
        tracing::warn!(
            error = %Chain(&err),
            kind = ?err.kind(),
            failures = slow.failures,
            backoff_ms = delay.as_millis() as u64,
            "token fetch failed; backing off"
        );
        slow.last_error = Some(err);
        delay
    }

    /// Checks a fetched token and builds its header value and schedule.
    fn prepare(
        &self,
        token: AccessToken,
        reason: FetchReason,
        fetch: u64,
        now: Instant,
    ) -> Outcome {
        let secret = token.secret();
        let config = &self.common.config;
        let max = config.max_token_bytes;
        if secret.len() > max {
            return Err(CacheError::TokenTooLarge {
                len: secret.len(),
                max,
            }
            .into());
        }
        let scheme = &config.auth_scheme;
        let mut buf = BytesMut::with_capacity(scheme.len() + 1 + secret.len());
        buf.put_slice(scheme.as_bytes());
        buf.put_u8(b' ');
        buf.put_slice(secret.as_bytes());
        let mut header = HeaderValue::from_maybe_shared(buf.freeze())
            .map_err(|_| TokenError::from(CacheError::TokenNotHeaderSafe))?;
        header.set_sensitive(true);
        let schedule = Schedule::for_token(&token, now, config, backoff::jitter());
        let generation = Generation(self.common.generations.fetch_add(1, Ordering::Relaxed) + 1);
        Ok(Arc::new(CachedToken::new(
            header,
            generation,
            token,
            reason,
            fetch,
            &schedule,
            schedule.too_short(config),
        )))
    }

    /// The first acceptance of the current token: it was good, and any
    /// rejection streak is over.
    #[cold]
    fn note_accepted(&self, generation: Generation) {
        if self
            .unconfirmed
            .compare_exchange(generation.0, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        if let Some(token) = self.current.load().as_deref() {
            if token.generation == generation {
                token.mark_accepted();
            }
        }
        if self.streak_running.load(Ordering::Relaxed) {
            let mut slow = self.lock_slow();
            slow.streak = 0;
            slow.cooldown_until = None;
            self.streak_running.store(false, Ordering::Relaxed);
        }
    }
}

impl Entry {
    /// Counts one event in this entry's counters and in its cache's totals.
    fn count(&self, event: Event) {
        StatsCounters::bump(self.stats.counter(event));
        if let Some(totals) = &self.common.totals {
            StatsCounters::bump(totals.counter(event));
        }
        metrics::event(&self.common.config.name, event);
    }

    /// The span naming this entry's key, around the events of its slow path;
    /// none for a single cache.
    fn key_span(&self) -> tracing::Span {
        match &self.label {
            Some(label) => tracing::info_span!("tower_bearer.key", key = %label),
            None => tracing::Span::none(),
        }
    }

    /// Calls the source once, bounded by the fetch timeout, a panic caught.
    async fn fetch_from_source(
        &self,
        replacing: Option<&AccessToken>,
    ) -> Result<AccessToken, TokenError> {
        let fetch = async {
            match replacing {
                Some(rejected) => self.source.fetch_replacing(rejected).await,
                None => self.source.fetch().await,
            }
        };
        match tokio::time::timeout(self.common.config.fetch_timeout, CatchPanic::new(fetch)).await {
            Ok(Ok(result)) => result,
            Ok(Err(())) => Err(CacheError::SourcePanicked.into()),
            Err(_) => Err(CacheError::FetchTimedOut.into()),
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

/// Runs one fetch to completion, detached from every caller: the one place
/// where an entry gets a token, so that a shared tier can wrap it.
///
/// With a gate, the fetch first waits for its turn here, inside its own task:
/// the callers that need it have joined it already, so the key stays
/// single-flight however long the queue. A fetch whose turn comes while the
/// endpoint is paused fails without asking it.
async fn fetch_task(
    ticket: Ticket<Outcome, Entry>,
    reason: FetchReason,
    replacing: Option<AccessToken>,
) {
    let entry = Arc::clone(ticket.owner());
    let gate = entry.common.gate.as_ref();
    let turn = match gate {
        Some(gate) => Some(gate.admit(|| ticket.reached(Stage::Queued)).await),
        None => None,
    };
    let paused = gate.and_then(|gate| Some((gate, gate.paused(Instant::now())?)));
    let result = match paused {
        Some((gate, (until, error))) => {
            gate.held_back();
            Err(error.with_retry_after(until.saturating_duration_since(Instant::now())))
        }
        None => {
            ticket.reached(Stage::Running);
            tracing::debug!("fetching token");
            let started = Instant::now();
            let result = entry.fetch_from_source(replacing.as_ref()).await;
            metrics::fetch_finished(
                &entry.common.config.name,
                reason,
                FetchOutcome::of(&result),
                started.elapsed(),
            );
            if let Some(gate) = gate {
                gate.observe(result.as_ref().map(|_| ()), Instant::now());
            }
            result
        }
    };
    drop(turn);
    let outcome = entry.complete(ticket.id, reason, result);
    ticket.deliver(outcome);
}
