//! Step 3 of a run, for a refreshing tier: a redemption. The lease holder
//! starts the chain if Redis has none, marks the refresh entry, presents the
//! refresh token, then commits the rotated one with the access token (or
//! aborts, saying what the endpoint's answer means for the chain). A commit
//! or an abort that Redis did not take is retried while the process lives:
//! the mark keeps everyone else from the refresh token meanwhile.

use super::action::Action;
use super::chain_pos::ChainPos;
use super::errors::{chain_lost, redis_unavailable};
use super::event::{Bootstrapped, Committed, Event, Redeemed, Verdict};
use super::lease::Lease;
use super::run::{Abort, Commit, Run, Step};
use crate::error::TokenError;
use crate::secret::Secret;
use crate::shared_tier::error::ChainLoss;
use crate::shared_tier::held_failure::HeldFailure;
use crate::token::AccessToken;

impl Run {
    pub(super) fn on_bootstrapped(&mut self, answer: Bootstrapped) -> Action {
        let lease = self
            .holding
            .clone()
            .expect("a bootstrapper holds the lease");
        match answer {
            Bootstrapped::Exists => {
                // Another process started a chain first (the script released
                // the lease): read it.
                self.holding = None;
                self.must_finish = false;
                self.go(Action::Read, Step::Reading)
            }
            Bootstrapped::Started {
                epoch,
                initial: Some(token),
                ..
            } => {
                // Its code exchange's token was written with the chain (and
                // the lease released): nothing to redeem yet.
                self.holding = None;
                self.memory.chain = Some(ChainPos { epoch, seq: 1 });
                self.finish(Ok(token))
            }
            Bootstrapped::Started {
                epoch,
                refresh_token,
                initial: None,
            } => {
                let pos = ChainPos { epoch, seq: 1 };
                self.memory.chain = Some(pos.clone());
                self.go(
                    Action::Mark {
                        lease: lease.clone(),
                        pos: pos.clone(),
                    },
                    Step::Marking {
                        lease,
                        pos,
                        refresh_token,
                    },
                )
            }
        }
    }

    pub(super) fn on_marked(
        &mut self,
        event: Event,
        lease: Lease,
        pos: ChainPos,
        refresh_token: Secret,
    ) -> Action {
        let failure = match event {
            Event::Marked(true) => {
                return self.go(
                    Action::Redeem {
                        refresh_token: refresh_token.clone(),
                    },
                    Step::Redeeming {
                        lease,
                        pos,
                        refresh_token,
                    },
                )
            }
            Event::Marked(false) => {
                // The chain moved on (the script released the lease).
                self.holding = None;
                self.must_finish = false;
                return self.go(Action::Read, Step::Reading);
            }
            Event::Failed(failure) => failure,
            other => unreachable!("{other:?} does not answer a mark"),
        };
        // The mark may have been set: clear it (nothing was presented),
        // however long that takes.
        let answer = redis_unavailable(&failure);
        self.abort(Abort {
            lease,
            pos,
            verdict: Verdict::NotConsumed,
            failure: None,
            answer,
        })
    }

    pub(super) fn on_redeemed(
        &mut self,
        redeemed: Redeemed,
        lease: Lease,
        pos: ChainPos,
        presented: Secret,
    ) -> Action {
        match redeemed {
            Redeemed::Rotated {
                token,
                refresh_token,
            } => {
                let rotated = refresh_token != presented;
                self.commit(Commit {
                    lease,
                    pos,
                    rotated,
                    refresh_token,
                    token,
                })
            }
            Redeemed::Failed(verdict, err) => {
                let failure = match verdict {
                    Verdict::NotConsumed => {
                        let hold = HeldFailure::hold(&err, self.settings.failure_hold);
                        (!hold.is_zero()).then(|| (HeldFailure::of(&err), hold))
                    }
                    Verdict::InDoubt | Verdict::Lost(_) => None,
                };
                let answer = match verdict {
                    Verdict::NotConsumed => err,
                    Verdict::InDoubt => chain_lost(ChainLoss::InDoubt, Some(&err)),
                    Verdict::Lost(loss) => chain_lost(loss, Some(&err)),
                };
                self.abort(Abort {
                    lease,
                    pos,
                    verdict,
                    failure,
                    answer,
                })
            }
        }
    }

    fn commit(&mut self, commit: Commit) -> Action {
        self.go(commit.action(), Step::Committing(commit))
    }

    pub(super) fn on_committed(&mut self, event: Event, commit: Commit) -> Action {
        match event {
            Event::Committed(answer) => {
                self.holding = None;
                let mut then = Vec::new();
                match answer {
                    Committed::Stored => {
                        self.memory.chain = Some(ChainPos {
                            epoch: commit.pos.epoch,
                            seq: commit.pos.seq + 1,
                        });
                        // Stored: only now is the source (and its
                        // `on_rotate`) told.
                        then.push((
                            Action::Adopt {
                                refresh_token: commit.refresh_token,
                                rotated_here: commit.rotated,
                            },
                            Step::Queued,
                        ));
                    }
                    // The token is good; the refresh token is nobody's.
                    Committed::Moved => {}
                    Committed::Unmarked => {
                        // Nobody else may redeem what Redis now holds.
                        let loss = ChainLoss::RolledBack;
                        let known = ChainPos {
                            epoch: commit.pos.epoch,
                            seq: commit.pos.seq + 1,
                        };
                        then.push((Action::DeclareLost { known, loss }, Step::Queued));
                    }
                }
                self.answer_then(Ok(commit.token), then)
            }
            _ => {
                // Redis did not take it: the mark keeps everyone else from the
                // spent refresh token while this process retries, for as long
                // as it lives. The cache gets its token at once.
                let retry = commit.action();
                let token = commit.token.clone();
                self.retry(retry, Step::Committing(commit), Ok(token))
            }
        }
    }

    fn abort(&mut self, abort: Abort) -> Action {
        self.go(abort.action(), Step::Aborting(abort))
    }

    pub(super) fn on_aborted(&mut self, event: Event, abort: Abort) -> Action {
        if matches!(event, Event::Done) {
            self.holding = None;
            return if self.answered {
                self.go(Action::Finished, Step::Finished)
            } else {
                self.finish(Err(abort.answer))
            };
        }
        // The mark stays until this is stored: retry, after
        // answering the cache.
        let retry = abort.action();
        let answer = abort.answer.clone();
        self.retry(retry, Step::Aborting(abort), Err(answer))
    }

    /// Answers the cache with `result` (once), pauses, then retries.
    fn retry(
        &mut self,
        action: Action,
        step: Step,
        result: Result<AccessToken, TokenError>,
    ) -> Action {
        self.retries = self.retries.saturating_add(1);
        let pause = Action::Pause {
            attempt: self.retries,
        };
        let then = vec![(pause, Step::Pausing(Box::new((action, step))))];
        self.answer_then(result, then)
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::super::test_support::{
        answered_with, lease, link, loss_of, read, settings, token, S,
    };
    use super::super::{
        Action, ChainPos, Committed, Event, Kind, LeaseAnswer, Memory, Redeemed, Request, Run,
        Verdict,
    };
    use crate::error::TokenError;
    use crate::secret::Secret;
    use crate::shared_tier::error::{ChainLoss, FleetError, RedisFailure};

    #[test]
    fn a_redemption_marks_presents_commits_and_only_then_adopts() {
        let now = Instant::now();
        let memory = Memory {
            chain: Some(ChainPos {
                epoch: "e1".into(),
                seq: 3,
            }),
            ..Memory::default()
        };
        let mut run = Run::new(Kind::Refreshing, Request::Fetch, settings(), memory);
        run.step(Event::Start, now);
        run.step(read(None, link("e1", 3, None)), now);
        let mark = run.step(Event::Lease(LeaseAnswer::Granted(lease())), now);
        assert!(matches!(mark, Action::Mark { ref pos, .. } if pos.seq == 3));
        let redeem = run.step(Event::Marked(true), now);
        assert!(
            matches!(redeem, Action::Redeem { ref refresh_token } if refresh_token.expose() == "rt-3")
        );
        let rotated = Redeemed::Rotated {
            token: token("at-4", now, S(0), S(60)),
            refresh_token: Secret::new("rt-4"),
        };
        assert!(matches!(
            run.step(Event::Redeemed(rotated), now),
            Action::Commit { .. }
        ));
        // Redis did not take it: the cache gets its token, the commit is
        // retried, and the source is told only once it is stored.
        let failed = run.step(Event::Failed(RedisFailure::TimedOut("commit")), now);
        assert_eq!(answered_with(&failed).ok(), Some("at-4"));
        assert!(matches!(
            run.step(Event::Answered(true), now),
            Action::Pause { attempt: 1 }
        ));
        assert!(matches!(run.step(Event::Done, now), Action::Commit { .. }));
        let adopt = run.step(Event::Committed(Committed::Stored), now);
        assert!(matches!(
            adopt,
            Action::Adopt { ref refresh_token, rotated_here: true } if refresh_token.expose() == "rt-4"
        ));
        assert!(matches!(run.step(Event::Done, now), Action::Finished));
        assert_eq!(run.memory().chain.as_ref().map(|c| c.seq), Some(4));
    }

    #[test]
    fn a_redemption_without_an_answer_or_without_its_mark_stops_the_chain() {
        let now = Instant::now();
        let start = |run: &mut Run| {
            run.step(Event::Start, now);
            run.step(read(None, link("e1", 3, None)), now);
            run.step(Event::Lease(LeaseAnswer::Granted(lease())), now);
            run.step(Event::Marked(true), now);
        };
        let known = Memory {
            chain: Some(ChainPos {
                epoch: "e1".into(),
                seq: 3,
            }),
            ..Memory::default()
        };
        let mut run = Run::new(Kind::Refreshing, Request::Fetch, settings(), known.clone());
        start(&mut run);
        let lost = Redeemed::Failed(Verdict::InDoubt, TokenError::transient("timed out"));
        let abort = run.step(Event::Redeemed(lost), now);
        assert!(matches!(
            abort,
            Action::Abort {
                verdict: Verdict::InDoubt,
                ..
            }
        ));
        let err = run.step(Event::Done, now);
        assert_eq!(
            loss_of(answered_with(&err).unwrap_err()),
            Some(&FleetError::ChainLost(ChainLoss::InDoubt))
        );

        let mut run = Run::new(Kind::Refreshing, Request::Fetch, settings(), known);
        start(&mut run);
        let rotated = Redeemed::Rotated {
            token: token("at-4", now, S(0), S(60)),
            refresh_token: Secret::new("rt-4"),
        };
        run.step(Event::Redeemed(rotated), now);
        // Redis went back to before the mark: the holder records the loss.
        let answer = run.step(Event::Committed(Committed::Unmarked), now);
        assert_eq!(answered_with(&answer).ok(), Some("at-4"));
        let declare = run.step(Event::Answered(true), now);
        assert!(matches!(
            declare,
            Action::DeclareLost { loss: ChainLoss::RolledBack, ref known } if known.seq == 4
        ));
    }
}
