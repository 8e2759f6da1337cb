//! The gate in front of one token endpoint: how many fetches may be in flight
//! to it at once, and whether it asked everybody to slow down.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::decide::later;
use super::overload::endpoint_pause;
use super::timer;
use super::turns::{Take, Turns};
use crate::error::{CacheError, TokenError};

/// How much longer than its fetch timeout a turn may be held, and how much
/// longer still a fetch waits for one (see [`EndpointGate::admit`]).
pub(crate) const GRACE: Duration = Duration::from_secs(1);

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
/// - **Every wait is bounded, and a stuck fetch cannot keep its turn.** A
///   fetch waits for a turn at most its cache's fetch timeout (and a second
///   more), then fails with [`CacheError::EndpointBusy`]; a turn whose fetch
///   overran its own timeout (its runtime is alive but no longer driven, its
///   task leaked) is taken back for the next fetch that needs one. Fetches
///   take turns in the order they came. One key holds at most one turn (its
///   single flight), so a tenant whose fetches hang holds one turn, and only
///   until its timeout.
/// - **Overload pauses every key.** A failure marked as the endpoint's own
///   ([`TokenError::endpoint_overloaded`]: a `429`, a `503`,
///   `temporarily_unavailable`, `slow_down`) pauses the endpoint for every
///   cache behind the gate: for as long as its `Retry-After` asks (up to
///   [`max_retry_after`](super::EndpointGateBuilder::max_retry_after)), otherwise
///   for a pause that doubles with each such answer in a row. Meanwhile no key
///   fetches; a key with a token that has not expired keeps serving it, and a
///   key without one fails at once with [`CacheError::EndpointPaused`], whose
///   [`retry_after`](TokenError::retry_after) says when to come back. The
///   failure itself, and its text, stay with the key that saw it: no tenant
///   ever sees another tenant's error. Other failures (a refused connection,
///   a 500, `invalid_client`, with a `Retry-After` or without) belong to the
///   key that saw them, which backs off on its own.
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
    turns: Mutex<Turns<Arc<Notify>>>,
    max_in_flight: usize,
    initial_pause: Duration,
    max_pause: Duration,
    max_retry_after: Duration,
    pause: Mutex<Pause>,
    peak_in_flight: AtomicUsize,
    admitted: AtomicU64,
    pauses: AtomicU64,
    held_back: AtomicU64,
    reclaimed: AtomicU64,
    /// Turns granted and given back so far: while it moves, the queue moves.
    progress: AtomicU64,
}

#[derive(Default)]
struct Pause {
    until: Option<Instant>,
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
    /// Turns taken back from fetches that overran their timeout.
    pub reclaimed: u64,
}

impl EndpointGate {
    /// A gate letting `max_in_flight` fetches run at once (at least one),
    /// with default pauses.
    pub fn new(max_in_flight: usize) -> Self {
        Self::builder().max_in_flight(max_in_flight).build()
    }

    /// A gate with these settings; see [`EndpointGateBuilder`](super::EndpointGateBuilder).
    pub(super) fn with_settings(
        max_in_flight: usize,
        initial_pause: Duration,
        max_pause: Duration,
        max_retry_after: Duration,
    ) -> Self {
        EndpointGate {
            inner: Arc::new(Inner {
                turns: Mutex::new(Turns::new(GRACE)),
                max_in_flight,
                initial_pause,
                max_pause,
                max_retry_after,
                pause: Mutex::new(Pause::default()),
                peak_in_flight: AtomicUsize::new(0),
                admitted: AtomicU64::new(0),
                pauses: AtomicU64::new(0),
                held_back: AtomicU64::new(0),
                reclaimed: AtomicU64::new(0),
                progress: AtomicU64::new(0),
            }),
        }
    }

    /// How many fetches may run at once.
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight
    }

    /// What the gate has seen so far.
    pub fn stats(&self) -> GateStats {
        let inner = &*self.inner;
        let (in_flight, waiting) = {
            let turns = inner.lock_turns();
            (turns.held(), turns.waiting())
        };
        GateStats {
            in_flight,
            peak_in_flight: inner.peak_in_flight.load(Ordering::Relaxed),
            waiting,
            admitted: inner.admitted.load(Ordering::Relaxed),
            pauses: inner.pauses.load(Ordering::Relaxed),
            held_back: inner.held_back.load(Ordering::Relaxed),
            reclaimed: inner.reclaimed.load(Ordering::Relaxed),
        }
    }

    /// Waits for a turn for a fetch that may take `fetch_timeout`; `queued`
    /// runs first if the fetch has to wait. Waits as long as the queue moves
    /// (turns are granted or given back); when nothing has moved for that
    /// long (and two [`GRACE`]s), fails with [`CacheError::EndpointBusy`].
    /// Cancel-safe: a dropped wait leaves the queue, and a dropped turn is
    /// given back.
    pub(crate) async fn admit(
        &self,
        fetch_timeout: Duration,
        queued: impl FnOnce(),
    ) -> Result<Admission, CacheError> {
        let inner = &self.inner;
        // A turn is held for as long as its fetch may take, and a second more
        // (the fetch's own timeout normally ends it first). A fetch waits for
        // a turn a second longer than that, so that a turn held by a fetch
        // that was admitted before it began to wait is taken back first.
        let hold = fetch_timeout.saturating_add(GRACE);
        let patience = hold.saturating_add(GRACE);
        let mut give_up = later(Instant::now(), patience);
        let mut progress = inner.progress.load(Ordering::Relaxed);
        let waker = Arc::new(Notify::new());
        let mut queued = Some(queued);
        let mut place: Option<Place<'_>> = None;
        loop {
            let now = Instant::now();
            let take = inner.lock_turns().take(
                inner.max_in_flight,
                now,
                later(now, hold),
                place.as_ref().map(|p| p.ticket),
            );
            let look_again = match take {
                // The place (if any) was used up by the turn: dropping it
                // leaves nothing and wakes the next in line.
                Take::Granted {
                    id,
                    reclaimed,
                    skipped,
                } => return Ok(self.granted(id, reclaimed, skipped)),
                Take::Wait { look_again } => look_again,
            };
            if place.is_none() {
                let ticket = inner.lock_turns().queue(Arc::clone(&waker));
                place = Some(Place { inner, ticket });
                if let Some(queued) = queued.take() {
                    queued();
                }
                // Joining the queue may have made this fetch first in line
                // for a turn that is free: look again before sleeping.
                continue;
            }
            if now >= give_up {
                let moved = inner.progress.load(Ordering::Relaxed);
                if moved == progress {
                    tracing::warn!(
                        waited_ms = patience.as_millis() as u64,
                        "the queue at the token endpoint did not move for the whole fetch timeout"
                    );
                    return Err(CacheError::EndpointBusy);
                }
                progress = moved;
                give_up = later(now, patience);
                continue;
            }
            let wake_at = look_again.map_or(give_up, |at| at.min(give_up));
            let sleep = timer::sleep_until(wake_at)?;
            tokio::select! {
                () = waker.notified() => {}
                () = sleep => {}
            }
        }
    }

    /// A turn was granted: counts it, and wraps it so that it is given back.
    fn granted(&self, id: u64, reclaimed: usize, skipped: usize) -> Admission {
        let inner = &self.inner;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "fetches queued at the token endpoint did not come for their turn \
                 (their runtime is not driven); they lost their place"
            );
        }
        if reclaimed > 0 {
            inner
                .reclaimed
                .fetch_add(reclaimed as u64, Ordering::Relaxed);
            tracing::warn!(
                reclaimed,
                "took back turns at the token endpoint from fetches that overran their timeout"
            );
        }
        inner.admitted.fetch_add(1, Ordering::Relaxed);
        inner.progress.fetch_add(1, Ordering::Relaxed);
        let held = inner.lock_turns().held();
        inner.peak_in_flight.fetch_max(held, Ordering::Relaxed);
        // The next in line may find a turn free too.
        inner.wake_first_in_line();
        Admission {
            gate: Arc::clone(inner),
            id,
        }
    }

    /// Turns granted and given back so far: a fetch queued here is not
    /// stalled while this moves.
    pub(crate) fn progress(&self) -> u64 {
        self.inner.progress.load(Ordering::Relaxed)
    }

    /// If the endpoint is paused now: until when. What paused it stays with
    /// the key that saw it.
    pub(crate) fn paused(&self, now: Instant) -> Option<Instant> {
        self.inner.lock_pause().until.filter(|until| now < *until)
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
    fn lock_turns(&self) -> MutexGuard<'_, Turns<Arc<Notify>>> {
        // Nothing panics under this lock; a poisoned one is still consistent.
        self.turns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes the fetch first in line, if any, to look for a turn, and the
    /// second, to watch that the first comes.
    fn wake_first_in_line(&self) {
        let now = Instant::now();
        for waker in self.lock_turns().wake(now) {
            waker.notify_one();
        }
    }

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
    id: u64,
}

impl Drop for Admission {
    fn drop(&mut self) {
        // A turn taken back from an overrun fetch is no longer this one's.
        if self.gate.lock_turns().give_back(self.id) {
            self.gate.progress.fetch_add(1, Ordering::Relaxed);
        }
        self.gate.wake_first_in_line();
    }
}

/// A waiting fetch's place in the queue: left when the wait ends without a
/// turn (timed out, or dropped with its task), so that nobody waits behind
/// a fetch that is gone.
struct Place<'a> {
    inner: &'a Inner,
    ticket: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.inner.lock_turns().leave(self.ticket);
        self.inner.wake_first_in_line();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fetch timeout the tests' fetches have.
    const T: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn the_limit_holds_and_turns_are_given_back() {
        use std::sync::atomic::AtomicBool;

        let gate = EndpointGate::new(2);
        let first = gate.admit(T, || panic!("a free turn is not queued")).await;
        let _second = gate.admit(T, || panic!("a free turn is not queued")).await;
        let queued = Arc::new(AtomicBool::new(false));
        let third = {
            let (gate, queued) = (gate.clone(), Arc::clone(&queued));
            tokio::spawn(async move {
                drop(
                    gate.admit(T, || queued.store(true, Ordering::Relaxed))
                        .await,
                );
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

    #[tokio::test(start_paused = true)]
    async fn a_wait_for_a_turn_is_bounded_and_a_stuck_fetch_loses_its_turn() {
        let gate = EndpointGate::new(1);
        // A fetch that will never give its turn back (its runtime stopped).
        let stuck = gate.admit(T, || {}).await.unwrap();
        let started = Instant::now();
        // The next waits until the stuck fetch has overrun its 30 s timeout
        // (and the second of grace), then takes its turn.
        let next = gate.admit(T, || {}).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(31));
        let stats = gate.stats();
        assert_eq!((stats.reclaimed, stats.in_flight, stats.waiting), (1, 1, 0));
        // The stuck fetch ends at last: nothing to give back, and the turn
        // stays with the one that holds it.
        drop(stuck);
        assert_eq!(gate.stats().in_flight, 1);
        drop(next);
        assert_eq!(gate.stats().in_flight, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_that_cannot_get_a_turn_in_its_timeout_fails_typed() {
        let gate = EndpointGate::new(1);
        // Held by a fetch with a long timeout that is still within it.
        let _slow = gate.admit(Duration::from_secs(3600), || {}).await.unwrap();
        let started = Instant::now();
        let err = gate.admit(T, || {}).await.err().unwrap();
        assert_eq!(err, CacheError::EndpointBusy);
        assert_eq!(started.elapsed(), Duration::from_secs(32));
        assert_eq!(gate.stats().waiting, 0, "it left the queue");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_leaves_the_queue_and_the_next_gets_the_turn() {
        let gate = EndpointGate::new(1);
        let held = gate.admit(T, || {}).await.unwrap();
        let (first_queued, first_in) = tokio::sync::oneshot::channel();
        let first = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _turn = gate
                    .admit(T, move || {
                        let _ = first_queued.send(());
                    })
                    .await;
            })
        };
        first_in.await.unwrap();
        let second = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.admit(T, || {}).await.map(drop) })
        };
        tokio::task::yield_now().await;
        assert_eq!(gate.stats().waiting, 2);
        // The first waiter's task is gone (its runtime shut down, say).
        first.abort();
        let _ = first.await;
        drop(held);
        second.await.unwrap().unwrap();
        let stats = gate.stats();
        assert_eq!((stats.waiting, stats.admitted, stats.reclaimed), (0, 2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_fetch_that_is_never_polled_again_blocks_nobody() {
        use std::future::Future;
        use std::task::Poll;

        let gate = EndpointGate::new(1);
        let held = gate.admit(T, || {}).await.unwrap();
        // Queued, then never polled again: its task is stranded on a runtime
        // that is no longer driven, but not dropped.
        let mut stranded = Box::pin(gate.admit(T, || {}));
        std::future::poll_fn(|cx| {
            assert!(stranded.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let next = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.admit(T, || {}).await.map(drop) })
        };
        tokio::task::yield_now().await;
        assert_eq!(gate.stats().waiting, 2);
        let started = Instant::now();
        drop(held);
        // The stranded fetch is woken and does not come: after the grace the
        // next takes the turn.
        next.await.unwrap().unwrap();
        assert_eq!(started.elapsed(), GRACE);
        assert_eq!(gate.stats().waiting, 0);
        drop(stranded);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_queue_that_moves_is_waited_through() {
        // Ten times as many fetches as turns, each holding its turn for
        // 20 s of a 30 s timeout: the last waits 180 s, six times its
        // timeout, and still gets its turn, because the queue moves.
        let gate = EndpointGate::new(1);
        let fetches: Vec<_> = (0..10)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move {
                    let turn = gate.admit(T, || {}).await?;
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    drop(turn);
                    Ok::<_, CacheError>(())
                })
            })
            .collect();
        for fetch in fetches {
            fetch.await.unwrap().unwrap();
        }
        let stats = gate.stats();
        assert_eq!(
            (stats.admitted, stats.reclaimed, stats.peak_in_flight),
            (10, 0, 1)
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
        assert_eq!(gate.paused(now), Some(now + Duration::from_secs(1)));
        gate.observe(Err(&busy), now);
        assert_eq!(gate.paused(now), Some(now + Duration::from_secs(2)));
        assert!(gate.paused(now + Duration::from_secs(2)).is_none());

        gate.observe(Ok(()), now);
        gate.observe(Err(&busy), now);
        assert_eq!(
            gate.paused(now),
            Some(now + Duration::from_secs(2)),
            "a shorter pause never cuts a longer one"
        );
        gate.observe(Err(&busy), now + Duration::from_secs(3));
        assert_eq!(
            gate.paused(now + Duration::from_secs(3)),
            Some(now + Duration::from_secs(5)),
            "the run restarted after the token: 2 s, not 8 s"
        );
        assert_eq!(gate.stats().pauses, 3);
    }
}
