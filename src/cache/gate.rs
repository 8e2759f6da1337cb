//! The gate in front of one token endpoint: how many fetches may be in flight
//! to it at once, and whether it asked everybody to slow down.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::decide::later;
use super::overload::endpoint_pause;
use crate::error::TokenError;

// Defaults, stated again in the setter docs of `EndpointGateBuilder`.
const DEFAULT_MAX_IN_FLIGHT: usize = 16;
const DEFAULT_INITIAL_PAUSE: Duration = Duration::from_millis(250);
const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Protects one token endpoint from every cache that uses it: at most
/// `max_in_flight` token requests at a time, and one view of its health.
///
/// A [`KeyedTokenCache`](crate::keyed::KeyedTokenCache) has one (by default its own,
/// allowing 16 fetches at once); [`TokenCache`](crate::TokenCache)s can share
/// one too ([`TokenCacheBuilder::gate`](crate::TokenCacheBuilder::gate)),
/// and so can several caches that ask the same endpoint with different
/// credentials. Cheap to clone: clones share one gate.
///
/// - **In-flight limit.** A fetch waits for its turn inside its own task, after
///   the callers that need it have joined it, so every key stays single-flight
///   however long the queue: a thousand cold keys cause a thousand fetches,
///   `max_in_flight` at a time, and no caller's wait counts against the fetch
///   timeout before its fetch has started.
/// - **Overload pauses every key.** A `429`, a `503`, a `Retry-After` or a
///   `temporarily_unavailable` / `slow_down` error from the endpoint pauses it
///   for every cache behind the gate: for as long as `Retry-After` asks (up to
///   [`max_retry_after`](EndpointGateBuilder::max_retry_after)), otherwise
///   for a pause that doubles with each such answer in a row. Meanwhile no key
///   fetches; a key with a token that has not expired keeps serving it, and a
///   key without one fails at once with the error that paused the endpoint,
///   whose [`retry_after`](TokenError::retry_after) says when to come back.
///   Other failures (a refused connection, a 500, `invalid_client`) belong to
///   the key that saw them, which backs off on its own.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::{from_fn, AccessToken};
/// use tower_bearer::cache::EndpointGate;
/// use tower_bearer::keyed::KeyedTokenCache;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let gate = EndpointGate::builder()
///     .max_in_flight(4)
///     .max_retry_after(Duration::from_secs(60))
///     .build();
/// let tenants = KeyedTokenCache::builder(|tenant: &u32| {
///     let tenant = *tenant;
///     from_fn(move || async move { Ok(AccessToken::new(format!("token-{tenant}"))) })
/// })
/// .gate(gate.clone())
/// .build();
///
/// let callers: Vec<_> = (0..100).map(|t| tokio::spawn(tenants.acquire(&t))).collect();
/// for caller in callers {
///     caller.await.unwrap().unwrap();
/// }
/// let stats = gate.stats();
/// assert_eq!(stats.admitted, 100);
/// assert!(stats.peak_in_flight <= 4);
/// # }
/// ```
#[derive(Clone)]
pub struct EndpointGate {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    initial_pause: Duration,
    max_pause: Duration,
    max_retry_after: Duration,
    pause: Mutex<Pause>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    waiting: AtomicUsize,
    admitted: AtomicU64,
    pauses: AtomicU64,
    held_back: AtomicU64,
}

#[derive(Default)]
struct Pause {
    until: Option<Instant>,
    /// The answer that paused the endpoint, handed to callers meanwhile.
    error: Option<TokenError>,
    /// Overload answers in a row.
    trips: u32,
}

/// What an [`EndpointGate`] has seen.
///
/// ```
/// use tower_bearer::cache::EndpointGate;
///
/// let stats = EndpointGate::new(8).stats();
/// assert_eq!((stats.in_flight, stats.peak_in_flight, stats.admitted), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GateStats {
    /// Fetches running now.
    pub in_flight: usize,
    /// The most fetches that ever ran at once.
    pub peak_in_flight: usize,
    /// Fetches waiting for their turn now.
    pub waiting: usize,
    /// Fetches let through (each called its token source, unless the
    /// endpoint was paused by then).
    pub admitted: u64,
    /// Overload answers that paused the endpoint (or made a pause longer).
    pub pauses: u64,
    /// Fetches that reached their turn while the endpoint was paused and
    /// failed without asking it.
    pub held_back: u64,
}

impl EndpointGate {
    /// A gate letting `max_in_flight` fetches run at once (at least one),
    /// with default pauses.
    pub fn new(max_in_flight: usize) -> Self {
        Self::builder().max_in_flight(max_in_flight).build()
    }

    /// A builder to set the limit and the pauses.
    pub fn builder() -> EndpointGateBuilder {
        EndpointGateBuilder {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            initial_pause: DEFAULT_INITIAL_PAUSE,
            max_pause: DEFAULT_MAX_PAUSE,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }

    /// How many fetches may run at once.
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight
    }

    /// What the gate has seen so far.
    pub fn stats(&self) -> GateStats {
        let inner = &*self.inner;
        GateStats {
            in_flight: inner.in_flight.load(Ordering::Relaxed),
            peak_in_flight: inner.peak_in_flight.load(Ordering::Relaxed),
            waiting: inner.waiting.load(Ordering::Relaxed),
            admitted: inner.admitted.load(Ordering::Relaxed),
            pauses: inner.pauses.load(Ordering::Relaxed),
            held_back: inner.held_back.load(Ordering::Relaxed),
        }
    }

    /// Waits for a turn; `queued` runs first if the fetch has to wait.
    /// Cancel-safe: a dropped wait gives its turn to the next.
    pub(crate) async fn admit(&self, queued: impl FnOnce()) -> Admission {
        let inner = &self.inner;
        let permit = match Arc::clone(&inner.permits).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                queued();
                let _waiting = Counted::new(&inner.waiting);
                // The semaphore is never closed; if it were, run unlimited
                // rather than fail a fetch for it.
                Arc::clone(&inner.permits).acquire_owned().await.ok()
            }
        };
        inner.admitted.fetch_add(1, Ordering::Relaxed);
        let now = inner.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        inner.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        Admission {
            gate: Arc::clone(inner),
            _permit: permit,
        }
    }

    /// If the endpoint is paused now: until when, and the answer that paused it.
    pub(crate) fn paused(&self, now: Instant) -> Option<(Instant, TokenError)> {
        let pause = self.inner.lock_pause();
        match (pause.until, &pause.error) {
            (Some(until), Some(error)) if now < until => Some((until, error.clone())),
            _ => None,
        }
    }

    /// A fetch through this gate reached its turn while the endpoint was
    /// paused: it fails with `error` without asking.
    pub(crate) fn held_back(&self) {
        self.inner.held_back.fetch_add(1, Ordering::Relaxed);
    }

    /// Learns from what a fetch got: an overload answer pauses the endpoint,
    /// a token ends the run of overload answers.
    pub(crate) fn observe(&self, result: Result<(), &TokenError>, now: Instant) {
        let inner = &*self.inner;
        let mut pause = inner.lock_pause();
        let error = match result {
            Ok(()) => {
                pause.trips = 0;
                return;
            }
            Err(error) => error,
        };
        let trips = pause.trips.saturating_add(1);
        let Some(delay) = endpoint_pause(
            error,
            trips,
            inner.initial_pause,
            inner.max_pause,
            inner.max_retry_after,
        ) else {
            return;
        };
        pause.trips = trips;
        let until = later(now, delay);
        if pause.until.is_some_and(|current| current >= until) {
            return;
        }
        pause.until = Some(until);
        pause.error = Some(error.clone());
        inner.pauses.fetch_add(1, Ordering::Relaxed);
        drop(pause);
        tracing::warn!(
            error = %error,
            pause_ms = delay.as_millis() as u64,
            "the token endpoint is overloaded; no key fetches before the pause ends"
        );
    }
}

impl Inner {
    fn lock_pause(&self) -> MutexGuard<'_, Pause> {
        // Nothing panics under this lock; a poisoned one is still consistent.
        self.pause
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for EndpointGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointGate")
            .field("max_in_flight", &self.inner.max_in_flight)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A fetch's turn at the gate, given back when dropped.
pub(crate) struct Admission {
    gate: Arc<Inner>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts itself in `counter` while it lives.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Builds an [`EndpointGate`].
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::cache::EndpointGate;
///
/// let gate = EndpointGate::builder()
///     .max_in_flight(32)
///     .pause(Duration::from_millis(500), Duration::from_secs(60))
///     .max_retry_after(Duration::from_secs(120))
///     .build();
/// assert_eq!(gate.max_in_flight(), 32);
/// ```
#[derive(Debug, Clone)]
pub struct EndpointGateBuilder {
    max_in_flight: usize,
    initial_pause: Duration,
    max_pause: Duration,
    max_retry_after: Duration,
}

impl EndpointGateBuilder {
    /// How many token requests may be in flight at once. At least 1, so
    /// that a zero cannot stop every fetch for good. Defaults to 16.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// The first and the longest pause after overload answers without a
    /// `Retry-After` (`429`, `503`, `temporarily_unavailable`, `slow_down`);
    /// it doubles with each one in a row. Defaults to 250 milliseconds,
    /// doubling up to 30 seconds. `initial` is at least one millisecond.
    pub fn pause(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_pause = initial.max(Duration::from_millis(1));
        self.max_pause = max.max(self.initial_pause);
        self
    }

    /// The longest `Retry-After` honoured; longer requests are cut to this.
    /// Defaults to 10 minutes.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Builds the gate.
    pub fn build(self) -> EndpointGate {
        EndpointGate {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(self.max_in_flight)),
                max_in_flight: self.max_in_flight,
                initial_pause: self.initial_pause,
                max_pause: self.max_pause,
                max_retry_after: self.max_retry_after,
                pause: Mutex::new(Pause::default()),
                in_flight: AtomicUsize::new(0),
                peak_in_flight: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                admitted: AtomicU64::new(0),
                pauses: AtomicU64::new(0),
                held_back: AtomicU64::new(0),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_limit_holds_and_turns_are_given_back() {
        use std::sync::atomic::AtomicBool;

        let gate = EndpointGate::new(2);
        let first = gate.admit(|| panic!("a free turn is not queued")).await;
        let _second = gate.admit(|| panic!("a free turn is not queued")).await;
        let queued = Arc::new(AtomicBool::new(false));
        let third = {
            let (gate, queued) = (gate.clone(), Arc::clone(&queued));
            tokio::spawn(async move {
                drop(gate.admit(|| queued.store(true, Ordering::Relaxed)).await);
            })
        };
        tokio::task::yield_now().await;
        assert!(queued.load(Ordering::Relaxed));
        assert_eq!((gate.stats().waiting, gate.stats().in_flight), (1, 2));
        drop(first);
        third.await.unwrap();
        let stats = gate.stats();
        assert_eq!(
            (
                stats.in_flight,
                stats.peak_in_flight,
                stats.waiting,
                stats.admitted
            ),
            (1, 2, 0, 3)
        );
    }

    #[test]
    fn zero_is_one() {
        assert_eq!(EndpointGate::new(0).max_in_flight(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn overload_pauses_until_it_ends_and_a_token_ends_the_run() {
        let gate = EndpointGate::builder()
            .pause(Duration::from_secs(1), Duration::from_secs(8))
            .build();
        let now = Instant::now();
        let busy = TokenError::transient("temporarily_unavailable").endpoint_overloaded();
        let own_problem = TokenError::permanent("invalid_client");

        gate.observe(Err(&own_problem), now);
        assert!(gate.paused(now).is_none(), "not an overload signal");

        gate.observe(Err(&busy), now);
        let (until, error) = gate.paused(now).unwrap();
        assert_eq!(until, now + Duration::from_secs(1));
        assert_eq!(error.to_string(), busy.to_string());
        gate.observe(Err(&busy), now);
        assert_eq!(gate.paused(now).unwrap().0, now + Duration::from_secs(2));
        assert!(gate.paused(now + Duration::from_secs(2)).is_none());

        gate.observe(Ok(()), now);
        gate.observe(Err(&busy), now);
        assert_eq!(
            gate.paused(now).unwrap().0,
            now + Duration::from_secs(2),
            "a shorter pause never cuts a longer one"
        );
        gate.observe(Err(&busy), now + Duration::from_secs(3));
        assert_eq!(
            gate.paused(now + Duration::from_secs(3)).unwrap().0,
            now + Duration::from_secs(5),
            "the run restarted after the token: 2 s, not 8 s"
        );
        assert_eq!(gate.stats().pauses, 3);
    }
}
