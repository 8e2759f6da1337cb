//! The turns at one token endpoint: who holds one, until when, and who may
//! take one now. Pure bookkeeping under the gate's lock, table-tested; the
//! gate (`gate.rs`) does the waiting.
//!
//! A turn is held by one fetch, and only for as long as that fetch may take
//! (its fetch timeout and a grace). A fetch that overran that is stuck,
//! whatever the reason (its runtime is alive but no longer driven, its task
//! leaked): its turn is taken back the next time somebody needs one, so that
//! no stuck fetch can hold the endpoint's turns, and every key waiting for
//! one, for ever.
//!
//! Fetches that wait take turns in the order they came: a newcomer never
//! takes a turn while others wait. The first in line is woken when a turn may
//! be free, and the second with it, to watch: a first in line that does not
//! come for its turn within the grace (its task is stranded on a runtime that
//! is no longer driven) loses its place, so that nobody waits behind it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::decide::later;

/// The turns of one gate; `W` wakes a waiting fetch (the gate's `Notify`).
#[derive(Debug)]
pub(crate) struct Turns<W> {
    /// The turns held now: an id and the instant after which the turn is
    /// taken back.
    held: Vec<(u64, Instant)>,
    last_id: u64,
    /// Fetches waiting for a turn, in order of arrival.
    queue: VecDeque<Waiter<W>>,
    last_ticket: u64,
    /// How long a woken first in line has to come for its turn.
    grace: Duration,
}

#[derive(Debug)]
struct Waiter<W> {
    ticket: u64,
    waker: W,
    /// When it was woken as first in line, if it has not answered since.
    woken_at: Option<Instant>,
}

/// What [`Turns::take`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// A turn, with its id, how many overrun turns were taken back for it, and
    /// how many waiters ahead lost their place for not coming.
    Granted {
        id: u64,
        reclaimed: usize,
        skipped: usize,
    },
    /// No turn now; look again at this instant at the latest (a held turn
    /// may be taken back, or the first in line may have lost its place).
    Wait { look_again: Option<Instant> },
}

impl<W> Turns<W> {
    /// Turns whose woken first in line has `grace` to come for its turn.
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            held: Vec::new(),
            last_id: 0,
            queue: VecDeque::new(),
            last_ticket: 0,
            grace,
        }
    }

    /// Takes a turn for a fetch that may run until `deadline`, for the one
    /// whose ticket is `ticket` (`None`: a newcomer that has not queued).
    pub(crate) fn take(
        &mut self,
        max: usize,
        now: Instant,
        deadline: Instant,
        ticket: Option<u64>,
    ) -> Take {
        let skipped = self.skip_absent(now);
        match (ticket, self.queue.front_mut()) {
            // It answered: it is not absent.
            (Some(ticket), Some(front)) if front.ticket == ticket => front.woken_at = None,
            (_, None) => {}
            (_, Some(_)) => {
                return Take::Wait {
                    look_again: self.look_again(ticket),
                }
            }
        }
        let before = self.held.len();
        if before >= max {
            self.held.retain(|(_, until)| *until > now);
        }
        let reclaimed = before - self.held.len();
        if self.held.len() >= max {
            return Take::Wait {
                look_again: self.look_again(ticket),
            };
        }
        if ticket.is_some() {
            self.queue.pop_front();
        }
        self.last_id += 1;
        self.held.push((self.last_id, deadline));
        Take::Granted {
            id: self.last_id,
            reclaimed,
            skipped,
        }
    }

    /// Joins the queue, to be woken by `waker`; returns the ticket.
    pub(crate) fn queue(&mut self, waker: W) -> u64 {
        self.last_ticket += 1;
        self.queue.push_back(Waiter {
            ticket: self.last_ticket,
            waker,
            woken_at: None,
        });
        self.last_ticket
    }

    /// Leaves the queue without a turn (the wait timed out or was cancelled).
    pub(crate) fn leave(&mut self, ticket: u64) {
        self.queue.retain(|waiter| waiter.ticket != ticket);
    }

    /// Gives turn `id` back; `false` if it had been taken back already.
    pub(crate) fn give_back(&mut self, id: u64) -> bool {
        let before = self.held.len();
        self.held.retain(|(held, _)| *held != id);
        self.held.len() < before
    }

    /// What to wake now: the first in line (marked woken at `now`, so that
    /// it loses its place if it does not come), and the second, to watch.
    pub(crate) fn wake(&mut self, now: Instant) -> impl Iterator<Item = &W> {
        if let Some(front) = self.queue.front_mut() {
            front.woken_at.get_or_insert(now);
        }
        self.queue.iter().take(2).map(|waiter| &waiter.waker)
    }

    /// Turns held now.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// Fetches waiting now.
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Drops the first in line for as long as it was woken more than the
    /// grace ago and has not come: its task is not running.
    fn skip_absent(&mut self, now: Instant) -> usize {
        let mut skipped = 0;
        while let Some(front) = self.queue.front() {
            match front.woken_at {
                Some(woken) if now >= later(woken, self.grace) => {
                    self.queue.pop_front();
                    skipped += 1;
                }
                _ => break,
            }
        }
        skipped
    }

    /// When the waiter with `ticket` should look again: when a held turn may
    /// be taken back, or, for the second in line, when a woken first in line
    /// that has not come loses its place.
    fn look_again(&self, ticket: Option<u64>) -> Option<Instant> {
        let reclaim = self.held.iter().map(|(_, until)| *until).min();
        let second = self.queue.get(1).map(|waiter| waiter.ticket);
        let absent = match (self.queue.front(), ticket) {
            (Some(front), Some(ticket)) if second == Some(ticket) => {
                front.woken_at.map(|woken| later(woken, self.grace))
            }
            _ => None,
        };
        match (reclaim, absent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn granted(id: u64, reclaimed: usize, skipped: usize) -> Take {
        Take::Granted {
            id,
            reclaimed,
            skipped,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn turns_are_limited_queued_in_order_and_taken_back_after_their_deadline() {
        let now = Instant::now();
        let mut turns = Turns::<()>::new(S(1));
        assert_eq!(turns.take(2, now, now + S(31), None), granted(1, 0, 0));
        assert_eq!(turns.take(2, now, now + S(41), None), granted(2, 0, 0));
        // Full: the third waits, and looks again when a turn may be taken back.
        assert_eq!(
            turns.take(2, now, now + S(31), None),
            Take::Wait {
                look_again: Some(now + S(31))
            }
        );
        let third = turns.queue(());
        let fourth = turns.queue(());
        assert_eq!(turns.waiting(), 2);
        // A turn given back goes to the first in line, never to the second
        // or to a newcomer.
        assert!(turns.give_back(1));
        assert!(matches!(
            turns.take(2, now, now + S(31), Some(fourth)),
            Take::Wait { .. }
        ));
        assert!(matches!(
            turns.take(2, now, now + S(31), None),
            Take::Wait { .. }
        ));
        assert_eq!(
            turns.take(2, now, now + S(35), Some(third)),
            granted(3, 0, 0)
        );
        // Both turns held (ids 2 and 3); the fourth waits until the first
        // deadline, 35 s, when turn 3's fetch has overrun: it is taken back.
        assert_eq!(
            turns.take(2, now + S(34), now + S(70), Some(fourth)),
            Take::Wait {
                look_again: Some(now + S(35))
            }
        );
        assert_eq!(
            turns.take(2, now + S(35), now + S(70), Some(fourth)),
            granted(4, 1, 0)
        );
        assert_eq!((turns.held(), turns.waiting()), (2, 0));
        // The overrun fetch finishes late: its turn was already taken back.
        assert!(!turns.give_back(3));
        assert!(turns.give_back(4));
        assert_eq!(turns.held(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_leaves_the_queue_lets_the_next_one_through() {
        let now = Instant::now();
        let deadline = now + S(31);
        let mut turns = Turns::<()>::new(S(1));
        assert!(matches!(
            turns.take(1, now, deadline, None),
            Take::Granted { .. }
        ));
        let first = turns.queue(());
        let second = turns.queue(());
        turns.leave(first);
        assert!(turns.give_back(1));
        assert!(matches!(
            turns.take(1, now, deadline, Some(second)),
            Take::Granted { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_in_line_that_never_comes_loses_its_place() {
        let now = Instant::now();
        let deadline = now + S(31);
        let mut turns = Turns::<&str>::new(S(1));
        assert!(matches!(
            turns.take(1, now, deadline, None),
            Take::Granted { .. }
        ));
        let _stranded = turns.queue("stranded");
        let next = turns.queue("next");
        // The turn comes back: the first in line and the second are woken.
        assert!(turns.give_back(1));
        assert_eq!(
            turns.wake(now).copied().collect::<Vec<_>>(),
            ["stranded", "next"]
        );
        // The second looks: the first has a second to come.
        assert_eq!(
            turns.take(1, now, deadline, Some(next)),
            Take::Wait {
                look_again: Some(now + S(1))
            }
        );
        // It never comes: the second takes the turn, and the place is gone.
        assert_eq!(
            turns.take(1, now + S(1), deadline, Some(next)),
            granted(2, 0, 1)
        );
        assert_eq!(turns.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_woken_first_in_line_that_comes_keeps_its_place() {
        let now = Instant::now();
        let deadline = now + S(31);
        let mut turns = Turns::<()>::new(S(1));
        assert!(matches!(
            turns.take(1, now, deadline, None),
            Take::Granted { .. }
        ));
        let first = turns.queue(());
        let second = turns.queue(());
        // Woken while the turn is still taken: it comes, finds none, waits.
        let _ = turns.wake(now).count();
        assert!(matches!(
            turns.take(1, now, deadline, Some(first)),
            Take::Wait { .. }
        ));
        // Long after, it is still first in line.
        assert!(matches!(
            turns.take(1, now + S(10), deadline, Some(second)),
            Take::Wait { .. }
        ));
        assert!(turns.give_back(1));
        assert!(matches!(
            turns.take(1, now + S(10), deadline, Some(first)),
            Take::Granted { skipped: 0, .. }
        ));
    }
}
