//! The token cache: lock-free reads, single-flight fetches, refresh ahead of
//! expiry, backoff after failures, and invalidation by identity.
//!
//! # How it works
//!
//! The current token lives in an [`ArcSwapOption`] together with its prepared
//! `Authorization` header value and a state byte. Reading it is a pointer load,
//! one relaxed atomic load and a `HeaderValue` clone: no lock, no allocation and
//! no clock read. Time moves the state instead: when a token is installed, a
//! small task is spawned that marks it stale at the end of its usable life and
//! starts a background refresh shortly before that.
//!
//! Everything else (no token, a stale token, a rejected token) takes the slow
//! path under a mutex that is never held across an `.await`. There, at most one
//! fetch runs at a time; it runs in a task of its own, so dropping the caller
//! that started it cancels nothing, and every waiter receives its result through
//! a `watch` channel. If the task panics or is aborted, the channel closes and
//! the waiters get a transient error instead of waiting forever.

mod backoff;
pub(crate) mod config;
mod lifecycle;
mod schedule;
mod stats;

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::{BufMut, BytesMut};
use http::HeaderValue;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

pub use config::TokenCacheBuilder;
pub use stats::CacheStats;

use self::config::CacheConfig;
use self::schedule::Schedule;
use self::stats::StatsCounters;
use crate::error::TokenError;
use crate::source::{BoxFuture, BoxTokenSource, TokenSource};
use crate::token::AccessToken;

/// Caches the token of one [`TokenSource`] and refreshes it.
///
/// Cheap to clone: clones share one cache. A [`BearerAuthLayer`](crate::BearerAuthLayer)
/// owns one; build one yourself to tune it, to share it between layers, or to
/// read its [`stats`](TokenCache::stats).
///
/// Needs a tokio runtime: fetches and expiry timers run as tokio tasks.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::{from_fn, AccessToken, TokenCache};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = TokenCache::new(from_fn(|| async {
///     Ok(AccessToken::new("fresh").with_expires_in(Duration::from_secs(3600)))
/// }));
///
/// // A thousand concurrent callers on an empty cache cause one fetch.
/// let callers: Vec<_> = (0..1000)
///     .map(|_| {
///         let cache = cache.clone();
///         tokio::spawn(async move { cache.token().await })
///     })
///     .collect();
/// for caller in callers {
///     assert_eq!(caller.await.unwrap().unwrap().secret(), "fresh");
/// }
/// assert_eq!(cache.stats().fetches, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

/// A token's `Authorization` value and the generation it belongs to, as the
/// service attaches it to one request.
#[derive(Clone)]
pub(crate) struct TokenHeader {
    pub(crate) value: HeaderValue,
    pub(crate) generation: u64,
}

/// Why a fetch was started; kept with the token it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchReason {
    /// There was no token yet.
    Empty,
    /// The token reached the end of its usable life.
    Expired,
    /// The token is near the end of its life; it is still being served.
    RefreshAhead,
    /// A server rejected the token.
    Rejected,
}

impl FetchReason {
    fn as_str(self) -> &'static str {
        match self {
            FetchReason::Empty => "empty",
            FetchReason::Expired => "expired",
            FetchReason::RefreshAhead => "refresh_ahead",
            FetchReason::Rejected => "rejected",
        }
    }
}

/// The token may be handed out.
const FRESH: u8 = 0;
/// The token is past its usable life (it may still be valid: see `expires_at`).
const STALE: u8 = 1;
/// A server rejected the token; it is never handed out again.
const REJECTED: u8 = 2;

/// A token as the cache keeps it.
pub(crate) struct CachedToken {
    header: HeaderValue,
    generation: u64,
    token: AccessToken,
    reason: FetchReason,
    schedule: Schedule,
    /// When the cache installed it (the source may have built it earlier).
    installed_at: Instant,
    state: AtomicU8,
    lifecycle: OnceLock<AbortHandle>,
}

impl CachedToken {
    fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }

    fn mark(&self, state: u8) {
        // A rejected token stays rejected: the expiry timer must not undo that.
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                (old < state).then_some(state)
            });
    }

    fn header(&self) -> TokenHeader {
        TokenHeader {
            value: self.header.clone(),
            generation: self.generation,
        }
    }

    /// Still accepted by servers as far as we know: not rejected, not past its
    /// expiry. Such a token is served when a refresh fails, even if stale.
    fn still_valid(&self, now: Instant) -> bool {
        self.state() != REJECTED && self.schedule.expires_at.is_none_or(|at| now < at)
    }
}

impl Drop for CachedToken {
    fn drop(&mut self) {
        if let Some(timer) = self.lifecycle.get() {
            timer.abort();
        }
    }
}

struct Inflight {
    id: u64,
    rx: watch::Receiver<Option<Outcome>>,
}

type Outcome = Result<Arc<CachedToken>, TokenError>;

#[derive(Default)]
struct SlowState {
    inflight: Option<Inflight>,
    fetch_ids: u64,
    /// Consecutive failed fetches.
    failures: u32,
    /// No fetch starts before this instant (backoff).
    not_before: Option<Instant>,
    last_error: Option<TokenError>,
    /// Consecutive rejections of tokens that were themselves fetched because of
    /// a rejection: the server rejects every token, and refreshing cannot help.
    rejection_streak: u32,
}

pub(crate) struct Shared {
    current: ArcSwapOption<CachedToken>,
    slow: Mutex<SlowState>,
    source: BoxTokenSource,
    config: CacheConfig,
    stats: StatsCounters,
    generations: AtomicU64,
}

/// What a caller wants from the slow path.
#[derive(Clone, Copy)]
enum Want {
    /// Any usable token.
    Any,
    /// A token other than the given generation, which a server rejected.
    Replacing(u64),
}

/// What the slow path decided for one caller.
enum Decision {
    Ready(Arc<CachedToken>),
    Wait(watch::Receiver<Option<Outcome>>),
    Fail(TokenError),
    /// The rejected token was itself fresh from a rejection: a retry cannot help.
    NoRetry,
}

/// What the background refresh should do next.
pub(crate) enum RefreshAhead {
    /// A new token was installed, or this one is no longer current.
    Done,
    /// The refresh failed; try again at this instant.
    RetryAt(Instant),
}

impl TokenCache {
    /// A cache with default settings around `source`.
    pub fn new(source: impl TokenSource) -> Self {
        Self::builder(source).build()
    }

    /// A builder to tune timing, backoff and the header scheme.
    pub fn builder(source: impl TokenSource) -> TokenCacheBuilder {
        TokenCacheBuilder::new(source)
    }

    pub(crate) fn from_parts(source: BoxTokenSource, config: CacheConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                current: ArcSwapOption::empty(),
                slow: Mutex::new(SlowState::default()),
                source,
                config,
                stats: StatsCounters::default(),
                generations: AtomicU64::new(0),
            }),
        }
    }

    /// The current token, fetching one if there is none usable.
    ///
    /// Returns at once when a usable token is cached. Otherwise joins the fetch in
    /// progress or starts one. After a failed fetch, callers get the error at once
    /// until the backoff delay has passed, unless a token that has not yet expired
    /// is at hand, which is then served instead.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        if let Some(token) = self.shared.current_token() {
            return Ok(token.token.clone());
        }
        let cached = Shared::acquire_any(Arc::clone(&self.shared)).await?;
        Ok(cached.token.clone())
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        self.shared.stats.snapshot()
    }

    /// The hot path: the current token's header, if it may be used. No lock, no
    /// allocation, no clock read.
    #[inline]
    pub(crate) fn current_header(&self) -> Option<TokenHeader> {
        self.shared.current_token_ref(|cached| cached.header())
    }

    /// The slow path: waits for a usable token.
    pub(crate) fn header(&self) -> BoxFuture<'static, Result<TokenHeader, TokenError>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Ok(Shared::acquire_any(shared).await?.header()) })
    }

    /// A server rejected the token of `generation`: drops it if it is still the
    /// current one, and yields a replacement to retry with. `None` means a retry
    /// cannot help (the server has been rejecting freshly fetched tokens).
    pub(crate) fn header_after_rejection(
        &self,
        generation: u64,
    ) -> BoxFuture<'static, Result<Option<TokenHeader>, TokenError>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let cached = Shared::acquire(shared, Want::Replacing(generation)).await?;
            Ok(cached.map(|c| c.header()))
        })
    }

    /// A server rejected the token of `generation` on a request that will not be
    /// retried: drops the token if it is current and starts a refresh, without
    /// waiting for it.
    pub(crate) fn reject(&self, generation: u64) {
        let _ = self.shared.decide(Want::Replacing(generation));
    }

    pub(crate) fn record_retry(&self) {
        StatsCounters::bump(&self.shared.stats.retries);
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
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Shared {
    fn lock_slow(&self) -> MutexGuard<'_, SlowState> {
        // Nothing panics while holding this lock, but a poisoned lock must not
        // take every future request down with it.
        self.slow
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[inline]
    fn current_token_ref<T>(&self, f: impl FnOnce(&CachedToken) -> T) -> Option<T> {
        let guard = self.current.load();
        match guard.as_deref() {
            Some(cached) if cached.state() == FRESH => Some(f(cached)),
            _ => None,
        }
    }

    fn current_token(&self) -> Option<Arc<CachedToken>> {
        self.current
            .load_full()
            .filter(|cached| cached.state() == FRESH)
    }

    /// The slow path for a caller that wants any usable token.
    async fn acquire_any(self: Arc<Self>) -> Result<Arc<CachedToken>, TokenError> {
        // `None` only answers a rejection (`Want::Replacing`), never `Want::Any`.
        self.acquire(Want::Any)
            .await?
            .ok_or_else(|| TokenError::transient("no token available"))
    }

    /// The slow path shared by every caller that has no usable token.
    async fn acquire(self: Arc<Self>, want: Want) -> Result<Option<Arc<CachedToken>>, TokenError> {
        let mut rx = match self.decide(want) {
            Decision::Ready(cached) => return Ok(Some(cached)),
            Decision::NoRetry => return Ok(None),
            Decision::Fail(err) => return Err(err),
            Decision::Wait(rx) => rx,
        };
        StatsCounters::bump(&self.stats.waits);
        match wait_for_outcome(&mut rx).await {
            Ok(cached) => Ok(Some(cached)),
            Err(err) => {
                // A failed refresh never discards a token that is still valid.
                let now = Instant::now();
                match self.current.load_full().filter(|c| c.still_valid(now)) {
                    Some(cur) => {
                        tracing::debug!(
                            generation = cur.generation,
                            "fetch failed; serving the still-valid token"
                        );
                        Ok(Some(cur))
                    }
                    None => Err(err),
                }
            }
        }
    }

    /// Decides, under the lock and without waiting, what a caller gets: a token
    /// at hand, the fetch to wait for (starting one if needed), or an error.
    fn decide(self: &Arc<Self>, want: Want) -> Decision {
        let mut slow = self.lock_slow();
        let now = Instant::now();
        let current = self.current.load_full();
        let mut reason = FetchReason::Empty;
        if let Some(cur) = &current {
            let rejected_now = matches!(want, Want::Replacing(g) if g == cur.generation);
            let state = cur.state();
            if rejected_now && state != REJECTED {
                if state == FRESH
                    && self
                        .rejection_cooldown(cur, &slow)
                        .is_some_and(|until| now < until)
                {
                    tracing::debug!(
                        generation = cur.generation,
                        "freshly fetched token rejected again; not refreshing before the cool-down ends"
                    );
                    return Decision::NoRetry;
                }
                self.invalidate(cur, &mut slow);
                reason = FetchReason::Rejected;
            } else {
                match state {
                    FRESH => return Decision::Ready(Arc::clone(cur)),
                    STALE => reason = FetchReason::Expired,
                    _ => reason = FetchReason::Rejected,
                }
            }
        }
        // Only an expired or rejected token makes a caller wait: one past its
        // usable life but not yet expired is served while the fetch runs.
        let serve_meanwhile = current
            .as_ref()
            .filter(|c| c.state() == STALE && c.still_valid(now))
            .map(Arc::clone);
        if let Some(inflight) = &slow.inflight {
            return match serve_meanwhile {
                Some(cur) => Decision::Ready(cur),
                None => Decision::Wait(inflight.rx.clone()),
            };
        }
        if let Some(not_before) = slow.not_before.filter(|nb| now < *nb) {
            if let Some(cur) = current.filter(|c| c.still_valid(now)) {
                return Decision::Ready(cur);
            }
            tracing::debug!(
                retry_in_ms = (not_before - now).as_millis() as u64,
                "token source backing off; failing fast"
            );
            return Decision::Fail(
                slow.last_error
                    .clone()
                    .unwrap_or_else(|| TokenError::transient("token source is backing off")),
            );
        }
        let rx = self.start_fetch(&mut slow, reason);
        match serve_meanwhile {
            Some(cur) => Decision::Ready(cur),
            None => Decision::Wait(rx),
        }
    }

    /// Marks `cur` rejected by a server: it is never handed out again.
    fn invalidate(&self, cur: &CachedToken, slow: &mut SlowState) {
        slow.rejection_streak = match cur.reason {
            FetchReason::Rejected => slow.rejection_streak.saturating_add(1),
            _ => 0,
        };
        cur.mark(REJECTED);
        StatsCounters::bump(&self.stats.invalidations);
        tracing::info!(
            generation = cur.generation,
            "token rejected by server; invalidated"
        );
    }

    /// Called by the token's timer shortly before it stops being usable.
    pub(crate) async fn refresh_ahead(self: Arc<Self>, generation: u64) -> RefreshAhead {
        let mut rx = {
            let mut slow = self.lock_slow();
            let now = Instant::now();
            let is_current = self
                .current
                .load()
                .as_deref()
                .is_some_and(|c| c.generation == generation && c.state() != REJECTED);
            if !is_current {
                return RefreshAhead::Done;
            }
            if let Some(inflight) = &slow.inflight {
                inflight.rx.clone()
            } else if let Some(not_before) = slow.not_before.filter(|nb| now < *nb) {
                return RefreshAhead::RetryAt(not_before);
            } else {
                tracing::debug!(generation, "refreshing ahead of expiry");
                self.start_fetch(&mut slow, FetchReason::RefreshAhead)
            }
        };
        match wait_for_outcome(&mut rx).await {
            Ok(cached) if cached.generation != generation => RefreshAhead::Done,
            // An error, or the fetch yielded a token that had already expired
            // and this one was kept: try again after the backoff.
            _ => {
                let slow = self.lock_slow();
                let retry_at = slow
                    .not_before
                    .unwrap_or_else(|| later(Instant::now(), self.config.initial_backoff));
                RefreshAhead::RetryAt(retry_at)
            }
        }
    }

    /// Until when a rejection of `cur` is ignored, if `cur` was itself fetched
    /// because of a rejection: refreshing again at once would only repeat it.
    fn rejection_cooldown(&self, cur: &CachedToken, slow: &SlowState) -> Option<Instant> {
        (cur.reason == FetchReason::Rejected).then(|| {
            let wait = backoff::exponential(slow.rejection_streak.saturating_add(1), &self.config);
            later(cur.installed_at, wait)
        })
    }

    fn start_fetch(
        self: &Arc<Self>,
        slow: &mut SlowState,
        reason: FetchReason,
    ) -> watch::Receiver<Option<Outcome>> {
        let (tx, rx) = watch::channel(None);
        slow.fetch_ids += 1;
        let id = slow.fetch_ids;
        slow.inflight = Some(Inflight { id, rx: rx.clone() });
        StatsCounters::bump(&self.stats.fetches);
        if reason == FetchReason::RefreshAhead {
            StatsCounters::bump(&self.stats.refreshes_ahead);
        }
        let span = tracing::info_span!("tower_bearer.fetch", fetch = id, reason = reason.as_str());
        tokio::spawn(Arc::clone(self).fetch_task(id, reason, tx).instrument(span));
        rx
    }

    /// Runs one fetch to completion, detached from every caller.
    async fn fetch_task(
        self: Arc<Self>,
        id: u64,
        reason: FetchReason,
        tx: watch::Sender<Option<Outcome>>,
    ) {
        let mut guard = AbandonedFetch {
            shared: &self,
            id,
            armed: true,
        };
        tracing::debug!("fetching token");
        let timeout = self.config.fetch_timeout;
        let result = match tokio::time::timeout(timeout, self.source.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(TokenError::transient(format!(
                "token fetch timed out after {} ms",
                timeout.as_millis()
            ))),
        };
        let outcome = self.complete(id, reason, result);
        guard.armed = false;
        tx.send_replace(Some(outcome));
    }

    /// Installs a fetched token or records a failure; clears the in-flight slot.
    fn complete(
        self: &Arc<Self>,
        id: u64,
        reason: FetchReason,
        result: Result<AccessToken, TokenError>,
    ) -> Outcome {
        let prepared = result.and_then(|token| self.prepare(token, reason));
        let now = Instant::now();
        let mut slow = self.lock_slow();
        if slow.inflight.as_ref().is_some_and(|i| i.id == id) {
            slow.inflight = None;
        }
        match &prepared {
            Ok(cached) if cached.schedule.usable_until.is_some_and(|u| u <= now) => {
                // The token expired before it arrived. Never let a source that
                // yields such tokens cause a storm: count it as a failure.
                self.record_failure(
                    &mut slow,
                    TokenError::transient(
                        "the token source returned a token that had already expired",
                    ),
                    now,
                );
                // A refresh must never make things worse: keep a token that is
                // still valid. Without one, hand this one to the waiters (it is
                // the freshest there is), marked stale.
                if let Some(cur) = self.current.load_full().filter(|c| c.still_valid(now)) {
                    return Ok(cur);
                }
                cached.mark(STALE);
                self.current.store(Some(Arc::clone(cached)));
            }
            Ok(cached) => {
                self.current.store(Some(Arc::clone(cached)));
                slow.failures = 0;
                slow.not_before = None;
                slow.last_error = None;
                self.spawn_lifecycle(cached);
                tracing::debug!(
                    generation = cached.generation,
                    usable_ms = cached
                        .schedule
                        .usable_until
                        .map(|u| u.saturating_duration_since(now).as_millis() as u64),
                    "token installed"
                );
            }
            Err(err) => {
                StatsCounters::bump(&self.stats.fetch_failures);
                self.record_failure(&mut slow, err.clone(), now);
            }
        }
        prepared
    }

    fn record_failure(&self, slow: &mut SlowState, err: TokenError, now: Instant) {
        slow.failures = slow.failures.saturating_add(1);
        let delay =
            backoff::delay_after_failure(slow.failures, &err, &self.config, backoff::jitter());
        slow.not_before = Some(later(now, delay));
        tracing::warn!(
            error = %err,
            kind = ?err.kind(),
            failures = slow.failures,
            backoff_ms = delay.as_millis() as u64,
            "token fetch failed; backing off"
        );
        slow.last_error = Some(err);
    }

    /// Builds the header value and schedule of a new token.
    fn prepare(&self, token: AccessToken, reason: FetchReason) -> Outcome {
        let scheme = &self.config.auth_scheme;
        let mut buf = BytesMut::with_capacity(scheme.len() + 1 + token.secret().len());
        buf.put_slice(scheme.as_bytes());
        buf.put_u8(b' ');
        buf.put_slice(token.secret().as_bytes());
        let mut header = HeaderValue::from_maybe_shared(buf.freeze()).map_err(|_| {
            TokenError::permanent(
                "the token contains characters that are not allowed in an HTTP header",
            )
        })?;
        header.set_sensitive(true);
        let schedule = Schedule::for_token(&token, &self.config, backoff::jitter());
        Ok(Arc::new(CachedToken {
            header,
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
            token,
            reason,
            schedule,
            installed_at: Instant::now(),
            state: AtomicU8::new(FRESH),
            lifecycle: OnceLock::new(),
        }))
    }

    fn spawn_lifecycle(self: &Arc<Self>, cached: &Arc<CachedToken>) {
        let schedule = cached.schedule;
        if schedule.refresh_at.is_none() && schedule.usable_until.is_none() {
            return;
        }
        let task = lifecycle::run(
            Arc::downgrade(self),
            Arc::downgrade(cached),
            cached.generation,
            schedule,
        );
        let handle = tokio::spawn(task);
        let _ = cached.lifecycle.set(handle.abort_handle());
    }
}

/// `at + delay`, saturating at a far-future instant instead of panicking on
/// absurd settings (a `Duration::MAX` backoff).
fn later(at: Instant, delay: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    at.checked_add(delay).unwrap_or_else(|| at + FAR_FUTURE)
}

/// Waits for the fetch behind `rx`; a closed channel means the fetch task
/// panicked or was aborted.
async fn wait_for_outcome(rx: &mut watch::Receiver<Option<Outcome>>) -> Outcome {
    match rx.wait_for(Option::is_some).await {
        Ok(value) => value.clone().unwrap_or_else(|| Err(fetch_abandoned())),
        Err(_) => Err(fetch_abandoned()),
    }
}

fn fetch_abandoned() -> TokenError {
    TokenError::transient(
        "token fetch ended without a result (the source panicked or the task was aborted)",
    )
}

/// Clears the in-flight slot if a fetch task ends without completing (panic or
/// abort), so the next caller can start a new fetch.
struct AbandonedFetch<'a> {
    shared: &'a Arc<Shared>,
    id: u64,
    armed: bool,
}

impl Drop for AbandonedFetch<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut slow = self.shared.lock_slow();
        if slow.inflight.as_ref().is_some_and(|i| i.id == self.id) {
            slow.inflight = None;
        }
        StatsCounters::bump(&self.shared.stats.fetch_failures);
        self.shared
            .record_failure(&mut slow, fetch_abandoned(), Instant::now());
    }
}
