//! A run: where it is ([`Step`]), what it holds, and its transition
//! function, [`Run::step`], which hands each event to the part of the
//! protocol that answers it (`reading.rs`, `leasing.rs`, `redemption.rs`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::action::Action;
use super::chain_pos::ChainPos;
use super::errors::{chain_lost, redis_unavailable};
use super::event::{Event, Verdict};
use super::kind::Kind;
use super::lease::Lease;
use super::memory::Memory;
use super::request::Request;
use super::settings::Settings;
use super::snapshot::Snapshot;
use crate::error::TokenError;
use crate::secret::Secret;
use crate::shared_tier::error::{ChainLoss, RedisFailure};
use crate::shared_tier::held_failure::HeldFailure;
use crate::token::AccessToken;

/// Where a run is: what it waits to hear.
#[derive(Debug, Clone)]
pub(super) enum Step {
    Reading,
    Invalidating,
    /// Kept: after the lease is granted, the chain as read decides.
    Acquiring(Box<Snapshot>),
    Waiting,
    Fetching {
        lease: Option<Lease>,
    },
    Writing {
        token: AccessToken,
    },
    /// Then answers this.
    Releasing(TokenError),
    Bootstrapping,
    Marking {
        lease: Lease,
        pos: ChainPos,
        refresh_token: Secret,
    },
    Redeeming {
        lease: Lease,
        pos: ChainPos,
        refresh_token: Secret,
    },
    Committing(Commit),
    /// Then answers the abort's answer (unless answered already).
    Aborting(Abort),
    /// Then answers the loss.
    Declaring(ChainLoss),
    /// Waiting out a pause before this action again.
    Pausing(Box<(Action, Step)>),
    /// Carrying out actions that need no decision, one by one.
    Queued,
    Finished,
}

/// A rotation being stored: what [`Action::Commit`] carries, and whether
/// the refresh token changed (`on_rotate` is told only then).
#[derive(Debug, Clone)]
pub(super) struct Commit {
    pub(super) lease: Lease,
    pub(super) pos: ChainPos,
    pub(super) rotated: bool,
    pub(super) refresh_token: Secret,
    pub(super) token: AccessToken,
}

impl Commit {
    /// The action that stores it (again, after a failure).
    pub(super) fn action(&self) -> Action {
        Action::Commit {
            lease: self.lease.clone(),
            pos: self.pos.clone(),
            refresh_token: self.refresh_token.clone(),
            token: self.token.clone(),
        }
    }
}

/// A redemption being ended without a rotation: what [`Action::Abort`]
/// carries, and the cache's answer.
#[derive(Debug, Clone)]
pub(super) struct Abort {
    pub(super) lease: Lease,
    pub(super) pos: ChainPos,
    pub(super) verdict: Verdict,
    pub(super) failure: Option<(HeldFailure, Duration)>,
    pub(super) answer: TokenError,
}

impl Abort {
    /// The action that ends it (again, after a failure).
    pub(super) fn action(&self) -> Action {
        Action::Abort {
            lease: self.lease.clone(),
            pos: self.pos.clone(),
            verdict: self.verdict,
            failure: self.failure.clone(),
        }
    }
}

/// One token asked of a tier, from the first read to the last write; see
/// the [module](super) documentation.
#[derive(Debug)]
pub(crate) struct Run {
    pub(super) kind: Kind,
    pub(super) request: Request,
    pub(super) settings: Settings,
    pub(super) memory: Memory,
    pub(super) step: Step,
    pub(super) queue: VecDeque<(Action, Step)>,
    /// The rejected token's entry was dropped already.
    pub(super) invalidated: bool,
    pub(super) answered: bool,
    /// Retries of the current commit or abort.
    pub(super) retries: u32,
    /// The lease held, if any.
    pub(super) holding: Option<Lease>,
    /// A redemption was started: the run must be carried to its end.
    pub(super) must_finish: bool,
    /// The token of the answer given, until the cache is known to have it.
    pub(super) offered: Option<AccessToken>,
}

impl Run {
    pub(crate) fn new(kind: Kind, request: Request, settings: Settings, memory: Memory) -> Self {
        Self {
            kind,
            request,
            settings,
            memory,
            step: Step::Reading,
            queue: VecDeque::new(),
            invalidated: false,
            answered: false,
            retries: 0,
            holding: None,
            must_finish: false,
            offered: None,
        }
    }

    /// What this run has learnt; its driver merges it into the process's
    /// memory after every step.
    pub(crate) fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The lease this run holds: its driver renews it until it is `None`.
    pub(crate) fn holding(&self) -> Option<&Lease> {
        self.holding.as_ref()
    }

    /// `true` once a chain is being started or a refresh token redeemed:
    /// the run must then go on to its end even if the cache stops waiting
    /// for its answer, or a mark would stay behind with nobody to clear it.
    pub(crate) fn must_finish(&self) -> bool {
        self.must_finish
    }

    /// The next action, after `event` (the answer to the last action, or
    /// [`Event::Start`]), at `now`.
    pub(crate) fn step(&mut self, event: Event, now: Instant) -> Action {
        let event = match event {
            Event::Answered(delivered) => {
                // Only a token the cache has makes later asks "due" ones;
                // one it did not take waits for its next ask.
                match (self.offered.take(), delivered) {
                    (Some(token), true) => self.memory.handed = Some(token),
                    (Some(token), false) => self.memory.unclaimed = Some(token),
                    (None, _) => {}
                }
                Event::Done
            }
            event => event,
        };
        let step = std::mem::replace(&mut self.step, Step::Finished);
        match (step, event) {
            (Step::Reading, Event::Start) => match self.memory.unclaimed.take() {
                Some(token) if self.acceptable(&token, now) => self.finish(Ok(token)),
                _ => self.go(Action::Read, Step::Reading),
            },
            (Step::Reading, Event::Read(snapshot)) => self.on_read(*snapshot, now),
            (Step::Invalidating, Event::Done) => self.go(Action::Read, Step::Reading),
            (Step::Acquiring(read), Event::Lease(answer)) => self.on_lease(answer, *read),
            (Step::Waiting, Event::Done) => self.go(Action::Read, Step::Reading),
            (Step::Fetching { lease }, Event::Fetched(result)) => self.on_fetched(lease, result),
            (Step::Writing { token }, Event::Done) => {
                self.holding = None;
                self.finish(Ok(token))
            }
            (Step::Writing { token }, Event::Failed(_)) => {
                // The token is good; the fleet will find no entry, or an
                // older one, and fetch.
                self.holding = None;
                self.finish(Ok(token))
            }
            (Step::Releasing(err), Event::Done | Event::Failed(_)) => {
                self.holding = None;
                self.finish(Err(err))
            }
            (Step::Bootstrapping, Event::Bootstrapped(answer)) => self.on_bootstrapped(answer),
            (Step::Bootstrapping, Event::Failed(failure)) => {
                // It may have been written. Either way nothing was redeemed;
                // the next run reads what Redis has.
                self.holding = None;
                self.finish(Err(redis_unavailable(&failure)))
            }
            (
                Step::Marking {
                    lease,
                    pos,
                    refresh_token,
                },
                event @ (Event::Marked(_) | Event::Failed(_)),
            ) => self.on_marked(event, lease, pos, refresh_token),
            (
                Step::Redeeming {
                    lease,
                    pos,
                    refresh_token,
                },
                Event::Redeemed(redeemed),
            ) => self.on_redeemed(redeemed, lease, pos, refresh_token),
            (Step::Committing(commit), event @ (Event::Committed(_) | Event::Failed(_))) => {
                self.on_committed(event, commit)
            }
            (Step::Aborting(abort), event @ (Event::Done | Event::Failed(_))) => {
                self.on_aborted(event, abort)
            }
            (Step::Declaring(loss), Event::Done | Event::Failed(_)) => {
                self.finish(Err(chain_lost(loss, None)))
            }
            (Step::Pausing(retry), Event::Done) => {
                let (action, step) = *retry;
                self.go(action, step)
            }
            // A queued store action that failed is one the run can do
            // without (a release: the lease lapses; a loss it records: the
            // next read records it again).
            (Step::Queued, Event::Done | Event::Failed(_)) => match self.queue.pop_front() {
                Some((action, step)) => self.go(action, step),
                None => self.go(Action::Finished, Step::Finished),
            },
            (Step::Finished, _) => Action::Finished,
            // Redis failed before this run held anything that must be
            // finished: a plain tier asks its source directly (once: the
            // cache's single flight), a refreshing one fails.
            (
                Step::Reading | Step::Invalidating | Step::Acquiring(_) | Step::Waiting,
                Event::Failed(failure),
            ) => self.redis_failed(&failure),
            (step, event) => unreachable!("{event:?} does not answer {step:?}"),
        }
    }

    pub(super) fn go(&mut self, action: Action, step: Step) -> Action {
        self.step = step;
        action
    }

    /// Answers the cache, then ends.
    pub(super) fn finish(&mut self, result: Result<AccessToken, TokenError>) -> Action {
        self.answer_then(result, Vec::new())
    }

    /// Answers the cache (unless it was answered), then carries out `then`.
    pub(super) fn answer_then(
        &mut self,
        result: Result<AccessToken, TokenError>,
        then: Vec<(Action, Step)>,
    ) -> Action {
        self.queue.extend(then);
        if std::mem::replace(&mut self.answered, true) {
            return match self.queue.pop_front() {
                Some((action, step)) => self.go(action, step),
                None => self.go(Action::Finished, Step::Finished),
            };
        }
        self.offered = result.as_ref().ok().cloned();
        self.go(Action::Answer(result), Step::Queued)
    }

    fn redis_failed(&mut self, failure: &RedisFailure) -> Action {
        match self.kind {
            Kind::Plain if self.settings.local_fallback => self.go(
                Action::Fetch {
                    replacing: self.replacing(),
                    fallback: true,
                },
                Step::Fetching { lease: None },
            ),
            _ => self.finish(Err(redis_unavailable(failure))),
        }
    }

    pub(super) fn replacing(&self) -> Option<AccessToken> {
        match &self.request {
            Request::Fetch => None,
            Request::Replace(rejected) => Some(rejected.clone()),
        }
    }
}
