//! The scheduler: events in the order of their time (and, at one time, of
//! their scheduling), each handed to the part of the world it concerns; a
//! stalled replica's events wait for it.

use std::cmp::Reverse;

use super::events::{Ev, Scheduled};
use super::outcome::Outcome;
use super::parameters::{MAX_EVENTS, QUIET_UNTIL};
use super::state::World;
use crate::shared_tier::protocol::{Event, Redeemed};

/// Runs `seed`; `trace`: keep a line per event.
pub(crate) fn run_seed(seed: u64, trace: bool) -> Outcome {
    World::new(seed, trace, false).run()
}

/// Runs `seed` against a store whose leases and marks do not exclude.
pub(crate) fn run_broken_seed(seed: u64) -> Outcome {
    World::new(seed, false, true).run()
}

impl World {
    pub(super) fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(super) fn at(&mut self, at: u64, ev: Ev) {
        let id = self.id();
        self.queue.push(Reverse(Scheduled {
            at: at.max(self.now),
            id,
            ev,
        }));
    }

    fn run(mut self) -> Outcome {
        self.pump(QUIET_UNTIL, |_| false);
        // Faults stopped three lifetimes ago; caches stop asking. Let what
        // runs finish, then have every replica ask once more.
        self.settling = true;
        self.pump(u64::MAX, |world| world.runs.is_empty());
        self.converge();
        self.check_expiries();
        if self.chain_record_lost {
            self.outcome.chain_records_lost += 1;
        }
        self.outcome
    }

    /// Carries out events until `until`, or until `done`.
    pub(super) fn pump(&mut self, until: u64, done: impl Fn(&World) -> bool) {
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > until || done(self) || self.outcome.events as usize > MAX_EVENTS {
                break;
            }
            let Some(Reverse(Scheduled { at, id, ev })) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.outcome.events += 1;
            if let Some(stalled) = self.deferred(&ev) {
                // The same place in the order, later.
                self.queue.push(Reverse(Scheduled {
                    at: stalled,
                    id,
                    ev,
                }));
                continue;
            }
            self.handle(ev);
        }
        if self.outcome.events as usize > MAX_EVENTS {
            self.violation("livelock: too many events".into());
        }
    }

    /// Until when an event waits for its stalled replica.
    fn deferred(&self, ev: &Ev) -> Option<u64> {
        let replica = match ev {
            Ev::Due(r, ..) | Ev::Reject(r, ..) | Ev::CacheTimeout(r, ..) => Some(*r),
            Ev::OpReply(op, _) | Ev::OpTimeout(op) => self
                .ops
                .get(op)
                .and_then(|p| self.runs.get(&p.run))
                .map(|run| run.replica),
            Ev::Reply(run, ..) | Ev::Wake(run, _) => self.runs.get(run).map(|run| run.replica),
            _ => None,
        }?;
        let until = self.replicas[replica].stalled_until;
        (until > self.now).then_some(until)
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Due(r, i, inc) => self.due(r, i, inc),
            Ev::Reject(r, i, inc, secret) => self.reject(r, i, inc, secret),
            Ev::OpExec(op) => self.execute(op),
            Ev::OpReply(op, event) => self.op_answered(op, Some(event)),
            Ev::OpTimeout(op) => self.op_answered(op, None),
            Ev::Reply(run, waiting, event) => {
                if !self.runs.contains_key(&run) && matches!(event, Event::Redeemed(_)) {
                    // Its process died mid-redemption: nobody knows what the
                    // endpoint said.
                    self.provider.in_doubt = true;
                }
                if self.runs.get(&run).is_some_and(|r| r.waiting == waiting) {
                    if matches!(
                        event,
                        Event::Fetched(Ok(_)) | Event::Redeemed(Redeemed::Rotated { .. })
                    ) {
                        self.one_request_per_token(run);
                    }
                    self.advance(run, event);
                }
            }
            Ev::Wake(run, waiting) => {
                if self.runs.get(&run).is_some_and(|r| r.waiting == waiting) {
                    self.advance(run, Event::Done);
                }
            }
            Ev::Renew(run, lease) => self.renew(run, lease),
            Ev::CacheTimeout(r, i, inc, run) => self.cache_timeout(r, i, inc, run),
            Ev::Fault(fault) => self.fault(fault),
        }
    }
}
