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

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::watch;

/// Who is told when a ticket is dropped without delivering.
pub(crate) trait Owner: Send + Sync + 'static {
    /// The fetch `id` ended without a result; clear its slot if it holds it.
    fn abandoned(&self, id: u64);
}

/// The slot: which fetch is in flight, and where its result will appear.
pub(crate) struct Flights<T> {
    current: Option<(u64, watch::Receiver<Option<T>>)>,
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
        let (tx, rx) = watch::channel(None);
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
    rx: watch::Receiver<Option<T>>,
}

/// How a wait for a fetch ended.
#[derive(Debug)]
pub(crate) enum Landed<T> {
    Delivered(T),
    /// The fetch ended without a result.
    Abandoned,
    /// The fetch took longer than it may; it is probably never going to run.
    Stalled,
}

impl<T: Clone> Flight<T> {
    /// Waits for the result, at most `limit` when a tokio timer is at hand.
    pub(crate) async fn land(mut self, limit: Duration) -> Landed<T> {
        let wait = async {
            match self.rx.wait_for(Option::is_some).await {
                Ok(value) => value.clone().map_or(Landed::Abandoned, Landed::Delivered),
                Err(_) => Landed::Abandoned,
            }
        };
        // Outside a tokio runtime (a caller polled by another executor that
        // joins a fetch started elsewhere) there is no timer to bound the wait.
        if tokio::runtime::Handle::try_current().is_err() {
            return wait.await;
        }
        tokio::time::timeout(limit, wait)
            .await
            .unwrap_or(Landed::Stalled)
    }
}

/// Owns a fetch's slot until the result is delivered.
pub(crate) struct Ticket<T, O: Owner> {
    owner: Arc<O>,
    pub(crate) id: u64,
    tx: Option<watch::Sender<Option<T>>>,
}

impl<T, O: Owner> Ticket<T, O> {
    /// Hands the result to every waiter. The owner has cleared the slot.
    pub(crate) fn deliver(mut self, result: T) {
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(result));
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
            first.land(Duration::from_secs(1)).await,
            Landed::Delivered(7)
        ));
        assert!(matches!(
            second.land(Duration::from_secs(1)).await,
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
            waiter.land(Duration::from_secs(1)).await,
            Landed::Abandoned
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_that_never_runs_stalls_its_waiters_after_the_limit() {
        let slot = Arc::new(Slot::default());
        let (_ticket, waiter) = slot.0.lock().unwrap().begin(Arc::clone(&slot));
        assert!(matches!(
            waiter.land(Duration::from_secs(5)).await,
            Landed::Stalled
        ));
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
