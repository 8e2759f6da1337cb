//! Single flight: at most one fetch at a time, its result shared by every
//! caller that waits for it, and no way for a fetch that never finishes to
//! strand them.
//!
//! The slot that marks a fetch in flight is owned, from the moment it is
//! taken, by a [`Ticket`]: the ticket travels into the fetch task and either
//! delivers the result or, when it is dropped without delivering (the task
//! never ran because its runtime shut down, or it was aborted), tells its
//! [`Owner`] so that the slot is cleared. Waiters then see the channel close
//! and try again. A panic in the fetch is caught and delivered as an error.
//! A waiter that waits longer than the fetch could take (its runtime is alive
//! but no longer driven) gives up on it too.
//!
//! A fetch goes through [`Stage`]s that its waiters see: spawned, queued (its
//! task runs, but waits for its turn at an [`EndpointGate`](super::EndpointGate)),
//! running (the source was called). A waiter's patience (the fetch timeout and
//! a little more) restarts at each stage and outlasts the stage's own bound
//! (a fetch waits for its turn at most about its timeout, then fails; it
//! calls its source at most its timeout), so a live fetch always ends a stage
//! first, while one that is never polled again is given up as stalled.
//!
//! A stage is recorded with the instant it began, without waking anyone:
//! waiters wake once, for the result, and only a waiter whose patience ran
//! out looks at the stage, to see whether a newer one restarted it. Waking
//! ten thousand waiters at each stage, each to set a new timer, was most of
//! what a cold stampede cost beyond the fetch (BENCHMARKS.md).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::watch;
use tokio::time::Instant;

use super::timer;

/// Who is told when a ticket is dropped without delivering.
pub(crate) trait Owner: Send + Sync + 'static {
    /// The fetch `id` ended without a result; clear its slot if it holds it.
    fn abandoned(&self, id: u64);
}

/// How far a fetch has come, as its waiters see it.
#[derive(Debug, Clone)]
pub(crate) enum Stage<T> {
    /// Its task was spawned and has not run yet.
    Spawned,
    /// Its task runs and waits for its turn at a gate.
    Queued,
    /// The source was called.
    Running,
    /// The result.
    Done(T),
}

/// What a fetch's channel holds: its stage, and since when.
#[derive(Debug, Clone)]
pub(crate) struct Progress<T> {
    stage: Stage<T>,
    since: Instant,
}

impl<T> Progress<T> {
    fn now(stage: Stage<T>) -> Self {
        Self {
            stage,
            since: Instant::now(),
        }
    }

    /// Which stage, and when it began: a newer stage restarts patience.
    fn mark(&self) -> (u8, Instant) {
        let stage = match self.stage {
            Stage::Spawned => 0,
            Stage::Queued => 1,
            Stage::Running => 2,
            Stage::Done(_) => 3,
        };
        (stage, self.since)
    }
}

/// The slot: which fetch is in flight, and where its result will appear.
pub(crate) struct Flights<T> {
    current: Option<(u64, watch::Receiver<Progress<T>>)>,
    last_id: u64,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            current: None,
            last_id: 0,
        }
    }
}

impl<T> Flights<T> {
    /// `true` while a fetch is in flight.
    pub(crate) fn busy(&self) -> bool {
        self.current.is_some()
    }

    /// Where the result of the fetch in flight will appear.
    pub(crate) fn join(&self) -> Option<Flight<T>> {
        self.current.as_ref().map(|(id, rx)| Flight {
            id: *id,
            rx: rx.clone(),
        })
    }

    /// Takes the slot for a new fetch; the ticket owns it from now on.
    pub(crate) fn begin<O: Owner>(&mut self, owner: Arc<O>) -> (Ticket<T, O>, Flight<T>) {
        self.last_id += 1;
        let id = self.last_id;
        let (tx, rx) = watch::channel(Progress::now(Stage::Spawned));
        self.current = Some((id, rx.clone()));
        (
            Ticket {
                owner,
                id,
                tx: Some(tx),
            },
            Flight { id, rx },
        )
    }

    /// Clears the slot if fetch `id` holds it; `true` if it did.
    pub(crate) fn end(&mut self, id: u64) -> bool {
        let holds = self
            .current
            .as_ref()
            .is_some_and(|(current, _)| *current == id);
        if holds {
            self.current = None;
        }
        holds
    }
}

/// A waiter's view of one fetch.
pub(crate) struct Flight<T> {
    pub(crate) id: u64,
    rx: watch::Receiver<Progress<T>>,
}

/// How a wait for a fetch ended.
#[derive(Debug)]
pub(crate) enum Landed<T> {
    Delivered(T),
    /// The fetch ended without a result.
    Abandoned,
    /// The fetch took longer than it may; it is probably never going to run.
    Stalled,
    /// The runtime has no timers to bound the wait with.
    NoTimer,
}

impl<T: Clone> Flight<T> {
    /// Waits for the result. Each stage may last at most `limit` inside a
    /// tokio runtime; past that the fetch is stalled.
    ///
    /// A fetch queued at a gate is not stalled while the gate makes progress
    /// (`queue_progress` counts the turns it has granted and taken back):
    /// behind a thousand other keys it may wait far longer than `limit`, but
    /// only while the queue moves.
    pub(crate) async fn land(
        mut self,
        limit: Duration,
        queue_progress: impl Fn() -> u64,
    ) -> Landed<T> {
        // Outside a tokio runtime (a caller polled by another executor that
        // joins a fetch started elsewhere) there is no timer to bound the wait.
        let timed = tokio::runtime::Handle::try_current().is_ok();
        let mut progress = queue_progress();
        // Patience runs from the later of this waiter's arrival (or the
        // queue's last move) and the start of the fetch's current stage.
        let mut patient_from = Instant::now();
        loop {
            let (queued, seen) = {
                let current = self.rx.borrow_and_update();
                match &current.stage {
                    Stage::Done(value) => return Landed::Delivered(value.clone()),
                    Stage::Queued => (true, current.mark()),
                    Stage::Spawned | Stage::Running => (false, current.mark()),
                }
            };
            let changed = self.rx.changed();
            let changed = if timed {
                let deadline = later(seen.1.max(patient_from), limit);
                let Ok(bounded) = timer::timeout_at(deadline, changed) else {
                    return Landed::NoTimer;
                };
                match bounded.await {
                    Ok(changed) => changed,
                    Err(_) => {
                        // A newer stage began meanwhile (recorded without
                        // waking this waiter): its own patience starts then.
                        if self.rx.borrow().mark() != seen {
                            continue;
                        }
                        let now = queue_progress();
                        if queued && now != progress {
                            progress = now;
                            patient_from = Instant::now();
                            continue;
                        }
                        return Landed::Stalled;
                    }
                }
            } else {
                changed.await
            };
            if changed.is_err() {
                // The ticket is gone; it may have delivered just before.
                return match &self.rx.borrow().stage {
                    Stage::Done(value) => Landed::Delivered(value.clone()),
                    _ => Landed::Abandoned,
                };
            }
        }
    }
}

/// `at + limit`, or as far as the clock goes.
fn later(at: Instant, limit: Duration) -> Instant {
    at.checked_add(limit)
        .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365 * 30))
}

/// Owns a fetch's slot until the result is delivered.
pub(crate) struct Ticket<T, O: Owner> {
    owner: Arc<O>,
    pub(crate) id: u64,
    tx: Option<watch::Sender<Progress<T>>>,
}

impl<T, O: Owner> Ticket<T, O> {
    /// Hands the result to every waiter. The owner has cleared the slot.
    pub(crate) fn deliver(mut self, result: T) {
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Progress::now(Stage::Done(result)));
        }
    }

    /// Records how far the fetch has come (never [`Stage::Done`]: that is
    /// [`deliver`](Self::deliver)), without waking the waiters.
    pub(crate) fn reached(&self, stage: Stage<T>) {
        if let Some(tx) = &self.tx {
            tx.send_if_modified(|progress| {
                *progress = Progress::now(stage);
                false
            });
        }
    }

    pub(crate) fn owner(&self) -> &Arc<O> {
        &self.owner
    }
}

impl<T, O: Owner> Drop for Ticket<T, O> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            // Clear the slot first, then close the channel: a waiter woken by
            // the close must find the slot free to start a fetch of its own.
            self.owner.abandoned(self.id);
            self.tx = None;
        }
    }
}

pin_project! {
    /// Runs a future, turning a panic into `Err(())` instead of unwinding
    /// through the task.
    pub(crate) struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

impl<F> CatchPanic<F> {
    pub(crate) fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Slot(Mutex<Flights<u32>>);

    impl Owner for Slot {
        fn abandoned(&self, id: u64) {
            self.0.lock().unwrap().end(id);
        }
    }

    #[tokio::test]
    async fn a_delivered_result_reaches_every_waiter() {
        let slot = Arc::new(Slot::default());
        let (ticket, first) = slot.0.lock().unwrap().begin(Arc::clone(&slot));
        let second = slot.0.lock().unwrap().join().unwrap();
        assert!(slot.0.lock().unwrap().end(ticket.id));
        ticket.deliver(7);
        assert!(matches!(
            first.land(Duration::from_secs(1), || 0).await,
            Landed::Delivered(7)
        ));
        assert!(matches!(
            second.land(Duration::from_secs(1), || 0).await,
            Landed::Delivered(7)
        ));
    }

    #[tokio::test]
    async fn a_ticket_dropped_unused_frees_the_slot_and_wakes_waiters() {
        let slot = Arc::new(Slot::default());
        let (ticket, waiter) = slot.0.lock().unwrap().begin(Arc::clone(&slot));
        assert!(slot.0.lock().unwrap().busy());
        drop(ticket);
        assert!(!slot.0.lock().unwrap().busy());
        assert!(matches!(
            waiter.land(Duration::from_secs(1), || 0).await,
            Landed::Abandoned
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_that_never_runs_stalls_its_waiters_after_the_limit() {
        let slot = Arc::new(Slot::default());
        let (_ticket, waiter) = slot.0.lock().unwrap().begin(Arc::clone(&slot));
        assert!(matches!(
            waiter.land(Duration::from_secs(5), || 0).await,
            Landed::Stalled
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn each_stage_is_timed_queued_included_and_a_new_stage_restarts_the_limit() {
        let slot = Arc::new(Slot::default());
        let (ticket, waiter) = slot.0.lock().unwrap().begin(Arc::clone(&slot));
        let waiter = tokio::spawn(waiter.land(Duration::from_secs(5), || 0));
        tokio::task::yield_now().await;
        ticket.reached(Stage::Queued);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!waiter.is_finished(), "queued for a while: not stalled");
        ticket.reached(Stage::Running);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!waiter.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(matches!(waiter.await.unwrap(), Landed::Stalled));
        drop(ticket);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_that_moves_is_waited_for_however_long() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let slot = Arc::new(Slot::default());
        let (ticket, waiter) = slot.0.lock().unwrap().begin(Arc::clone(&slot));
        ticket.reached(Stage::Queued);
        let progress = Arc::new(AtomicU64::new(0));
        let waiter = {
            let progress = Arc::clone(&progress);
            tokio::spawn(waiter.land(Duration::from_secs(5), move || {
                progress.load(Ordering::SeqCst)
            }))
        };
        // A thousand other keys ahead: the queue moves every 4 s for an hour.
        for _ in 0..900 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            progress.fetch_add(1, Ordering::SeqCst);
        }
        assert!(!waiter.is_finished(), "queued behind a moving queue");
        // The queue stops moving: stalled within one more limit.
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(matches!(waiter.await.unwrap(), Landed::Stalled));
        drop(ticket);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_queued_for_ever_stalls_its_waiters() {
        // Its runtime is alive but never driven again: it never leaves the
        // queue, and its own bound on that wait never fires.
        let slot = Arc::new(Slot::default());
        let (ticket, waiter) = slot.0.lock().unwrap().begin(Arc::clone(&slot));
        ticket.reached(Stage::Queued);
        assert!(matches!(
            waiter.land(Duration::from_secs(5), || 0).await,
            Landed::Stalled
        ));
        drop(ticket);
    }

    #[tokio::test]
    async fn a_panic_is_caught() {
        let caught = CatchPanic::new(async { panic!("boom") }).await;
        assert!(caught.is_err());
        assert_eq!(CatchPanic::new(async { 3 }).await, Ok(3));
    }

    #[test]
    fn a_stale_id_does_not_clear_a_newer_fetch() {
        let slot = Arc::new(Slot::default());
        let (first, _) = slot.0.lock().unwrap().begin(Arc::clone(&slot));
        assert!(slot.0.lock().unwrap().end(first.id));
        first.deliver(1);
        let (_second, _) = slot.0.lock().unwrap().begin(Arc::clone(&slot));
        assert!(!slot.0.lock().unwrap().end(1));
        assert!(slot.0.lock().unwrap().busy());
    }
}
