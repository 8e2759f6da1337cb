//! Step 2 of a run: the lease. Taken, it leads a plain tier to fetch and
//! write under it, a refreshing one to start the chain or mark a redemption;
//! held by another process, it is waited for; a fetch that failed moments
//! ago is answered for the fleet.

use super::action::Action;
use super::event::LeaseAnswer;
use super::kind::Kind;
use super::lease::Lease;
use super::run::{Run, Step};
use super::snapshot::{SeenChain, Snapshot};
use super::timing::{LEASE_MARGIN, RECHECK};
use crate::error::TokenError;
use crate::shared_tier::held_failure::HeldFailure;
use crate::token::AccessToken;

impl Run {
    pub(super) fn on_lease(&mut self, answer: LeaseAnswer, read: Snapshot) -> Action {
        match answer {
            LeaseAnswer::Changed => self.go(Action::Read, Step::Reading),
            LeaseAnswer::Failed(failure, left) => self.finish(Err(failure.to_error(left))),
            LeaseAnswer::Held(left) => self.go(
                Action::Wait {
                    bound: (left + LEASE_MARGIN).min(RECHECK),
                },
                Step::Waiting,
            ),
            LeaseAnswer::Granted(lease) => {
                self.holding = Some(lease.clone());
                match (self.kind, read.chain) {
                    (Kind::Plain, _) => self.go(
                        Action::Fetch {
                            replacing: self.replacing(),
                            fallback: false,
                        },
                        Step::Fetching { lease: Some(lease) },
                    ),
                    (Kind::Refreshing, SeenChain::Absent) => {
                        self.must_finish = true;
                        self.go(Action::Bootstrap { lease }, Step::Bootstrapping)
                    }
                    (Kind::Refreshing, SeenChain::Present(link)) => match link.refresh_token {
                        Ok(refresh_token) if link.mark.is_none() => {
                            self.must_finish = true;
                            self.go(
                                Action::Mark {
                                    lease: lease.clone(),
                                    pos: link.pos.clone(),
                                },
                                Step::Marking {
                                    lease,
                                    pos: link.pos,
                                    refresh_token,
                                },
                            )
                        }
                        // The read said the holder of the mark was alive,
                        // and it is gone by now: read again.
                        _ => self.release_and_read(lease),
                    },
                    (Kind::Refreshing, _) => self.release_and_read(lease),
                }
            }
        }
    }

    fn release_and_read(&mut self, lease: Lease) -> Action {
        self.holding = None;
        self.queue.push_back((Action::Read, Step::Reading));
        self.go(
            Action::Release {
                lease,
                failure: None,
            },
            Step::Queued,
        )
    }

    pub(super) fn on_fetched(
        &mut self,
        lease: Option<Lease>,
        result: Result<AccessToken, TokenError>,
    ) -> Action {
        match (lease, result) {
            (Some(lease), Ok(token)) => {
                // Written even if the cache stops waiting meanwhile (its
                // timeout): the token then waits in Redis for its next ask.
                self.must_finish = true;
                self.go(
                    Action::Write {
                        lease,
                        token: token.clone(),
                    },
                    Step::Writing { token },
                )
            }
            (Some(lease), Err(err)) => {
                let hold = HeldFailure::hold(&err, self.settings.failure_hold);
                let failure = (!hold.is_zero()).then(|| (HeldFailure::of(&err), hold));
                self.go(Action::Release { lease, failure }, Step::Releasing(err))
            }
            (None, result) => self.finish(result),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::super::test_support::{answered_with, lease, loss_of, read, settings, token, S};
    use super::super::{Action, Event, Kind, LeaseAnswer, Memory, Request, Run, SeenChain};
    use super::RECHECK;
    use crate::error::TokenError;
    use crate::shared_tier::error::{FleetError, RedisFailure};
    use crate::shared_tier::held_failure::HeldFailure;

    #[test]
    fn a_plain_holder_fetches_writes_then_answers_and_finishes_alone() {
        let now = Instant::now();
        let mut run = Run::new(Kind::Plain, Request::Fetch, settings(), Memory::default());
        run.step(Event::Start, now);
        assert!(matches!(
            run.step(read(None, SeenChain::NotRead), now),
            Action::Acquire { seen: None }
        ));
        let fetch = run.step(Event::Lease(LeaseAnswer::Granted(lease())), now);
        assert!(matches!(
            fetch,
            Action::Fetch {
                fallback: false,
                ..
            }
        ));
        assert_eq!(run.holding(), Some(&lease()));
        let fetched = token("t", now, S(0), S(60));
        let write = run.step(Event::Fetched(Ok(fetched)), now);
        assert!(matches!(write, Action::Write { .. }));
        assert!(
            run.must_finish(),
            "the write goes on if the cache stops waiting"
        );
        assert_eq!(answered_with(&run.step(Event::Done, now)).ok(), Some("t"));
        assert_eq!(run.holding(), None);
        // The cache had stopped waiting: the token waits for its next ask.
        assert!(matches!(
            run.step(Event::Answered(false), now),
            Action::Finished
        ));
        let memory = run.memory().clone();
        assert!(memory.handed.is_none());
        let mut next = Run::new(Kind::Plain, Request::Fetch, settings(), memory);
        assert_eq!(answered_with(&next.step(Event::Start, now)).ok(), Some("t"));
    }

    #[test]
    fn waiting_failing_and_falling_back() {
        let now = Instant::now();
        let mut run = Run::new(Kind::Plain, Request::Fetch, settings(), Memory::default());
        run.step(Event::Start, now);
        run.step(read(None, SeenChain::NotRead), now);
        // Held for 5 s more: woken by the holder's message, or re-read
        // within a second whatever happens.
        let wait = run.step(Event::Lease(LeaseAnswer::Held(S(5))), now);
        assert!(matches!(wait, Action::Wait { bound } if bound == RECHECK));
        assert!(matches!(run.step(Event::Done, now), Action::Read));
        run.step(read(None, SeenChain::NotRead), now);
        let held = TokenError::permanent("invalid_client").with_retry_after(S(600));
        let failed = run.step(
            Event::Lease(LeaseAnswer::Failed(HeldFailure::of(&held), S(3))),
            now,
        );
        let err = answered_with(&failed).unwrap_err();
        assert!(err.is_permanent() && !err.is_endpoint_overload());
        assert_eq!(err.retry_after(), Some(S(3)));

        // Redis fails: a plain tier asks its source once, a refreshing one
        // redeems nothing.
        for (kind, fallback) in [(Kind::Plain, true), (Kind::Refreshing, false)] {
            let mut run = Run::new(kind, Request::Fetch, settings(), Memory::default());
            run.step(Event::Start, now);
            let action = run.step(Event::Failed(RedisFailure::TimedOut("read")), now);
            match fallback {
                true => assert!(matches!(action, Action::Fetch { fallback: true, .. })),
                false => assert_eq!(
                    loss_of(answered_with(&action).unwrap_err()),
                    Some(&FleetError::RedisUnavailable)
                ),
            }
        }
    }
}
