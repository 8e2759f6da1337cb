//! The fleet protocol as a pure state machine: one [`Run`] per token a
//! process asks its tier for. Events come in (what Redis answered, what the
//! token source answered, that a wait ended); actions go out (read, take the
//! lease, fetch, write, mark a redemption, commit it, answer the cache). The
//! Redis and HTTP parts ([`driver`](super::driver)) only carry actions out,
//! and the simulation (`sim`, in tests) carries them out against a simulated
//! store and provider, so both run this very code.
//!
//! # What a run does
//!
//! 1. It reads the identity's entries. A token the cache can use is handed to
//!    it: one with life left (see [`Margin`]) that is newer than the token
//!    the cache asks to replace or, when the cache asks because its token is
//!    due, newer than the one this process handed it last. So a cache never
//!    gets its own token back, without the tier knowing the cache's refresh
//!    timing, and a Redis that went back to an older token never makes a
//!    process go backwards. (A token this process fetched for a cache that
//!    had stopped waiting is handed over first, without asking Redis.)
//! 2. Otherwise it takes the lease (or waits while another process holds
//!    it and renews it, however long: the cache's fetch timeout bounds the
//!    wait), fetches, writes under the lease's fence, and answers; once it
//!    has a token to write it goes on even if the cache stops waiting.
//!    Runs of one process's tier take turns: each starts from what the one
//!    before it learnt ([`Memory`]).
//! 3. With rotating refresh tokens, the lease holder first *marks* the
//!    refresh entry (the redemption is under way, by this lease), then
//!    presents the refresh token, then *commits* the rotated one with the
//!    access token, clearing the mark. The mark, not the lease, is what keeps
//!    every other process from presenting the same refresh token: a holder
//!    that stalls past its lease (a GC pause, SIGSTOP) still owns its
//!    redemption, and stores its result when it comes back. While the mark
//!    stands, the others wait if its holder is alive and fail with
//!    [`FleetError::RedemptionPending`] if not; a redemption without an
//!    answer makes the chain [`ChainLoss::InDoubt`]. A run that started a
//!    redemption always finishes it ([`Run::must_finish`]); a commit Redis
//!    did not take is retried until it is, while the process lives, and
//!    `on_rotate` is told only once it is stored.
//! 4. A process remembers the newest place in the chain it has seen. If
//!    Redis no longer has the chain, or has an older place in it, the
//!    refresh token it holds was spent: the process records the loss in Redis
//!    and fails with [`FleetError::ChainLost`], and no process redeems
//!    anything until the application reseeds.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::encryption::Unreadable;
use super::entry::{MarkRecord, Origin};
use super::error::{ChainLoss, FleetError, RedisFailure};
use super::failure::HeldFailure;
use crate::cache::backoff;
use crate::error::{Chain, ErrorKind, TokenError};
use crate::secret::Secret;
use crate::token::AccessToken;

/// The longest a run waits between two reads while another process holds
/// the lease: a message can be lost (Redis does not keep them, and a
/// failover drops subscriptions).
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

/// How much longer than the lease's time left a waiter waits, so that it
/// finds the lease gone rather than about to go.
const LEASE_MARGIN: Duration = Duration::from_millis(20);

/// Retries of a commit or an abort that Redis did not take: from 100 ms,
/// doubling, up to 5 s.
const RETRY_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// The pause before the `attempt`-th retry of a commit or an abort (the
/// cache's own backoff; `random` in `[0, 1)`).
pub(crate) fn retry_pause(attempt: u32, random: f64) -> Duration {
    backoff::equal_jitter(attempt, RETRY_BACKOFF.0, RETRY_BACKOFF.1, random)
}

/// The settings a run follows.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How long a lease lasts unless renewed.
    pub(crate) lease_ttl: Duration,
    /// See [`HeldFailure::hold`].
    pub(crate) failure_hold: Duration,
    /// Whether a plain tier fetches from its source when Redis cannot be used.
    pub(crate) local_fallback: bool,
    /// How long a redemption whose holder stopped renewing its lease is
    /// waited for before the chain counts as in doubt.
    pub(crate) doubt_after: Duration,
    /// The least life a token must have left to be handed out.
    pub(crate) margin: Margin,
}

/// The least life a shared token must have left to be handed to a cache:
/// what a cache with the default settings gives up to clock skew (10 s, at
/// most a tenth of the lifetime) plus its minimum refresh interval (500 ms),
/// so that the cache does not find it too short to install.
///
/// The tier needs nothing else of the cache's timing: it tells a cache asking
/// because its token is due by the token it handed it (see the
/// [module](self) documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Margin {
    pub(crate) skew: Duration,
    pub(crate) skew_fraction: f64,
    pub(crate) min_interval: Duration,
}

impl Margin {
    /// The margin of a cache with default settings.
    pub(crate) fn of_default_cache() -> Self {
        let config = crate::cache::config::CacheConfig::default();
        Self {
            skew: config.expiry_skew,
            skew_fraction: crate::cache::schedule::MAX_SKEW_FRACTION,
            min_interval: config.min_refresh_interval,
        }
    }

    /// Whether `token` has enough life left at `now`.
    pub(crate) fn usable(&self, token: &AccessToken, now: Instant) -> bool {
        let Some(expires) = token.expires_at() else {
            return true;
        };
        let life = expires.saturating_duration_since(token.received_at());
        let needed = self.skew.min(life.mul_f64(self.skew_fraction)) + self.min_interval;
        expires.saturating_duration_since(now) >= needed
    }
}

/// Plain tiers share a source's tokens; refreshing tiers share a refresh
/// token chain too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Plain,
    Refreshing,
}

/// What the cache asked for.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// A token: the cache has none, or its own is due.
    Fetch,
    /// A token other than this one, which a server rejected.
    Replace(AccessToken),
}

/// A lease this process holds: its fence orders writes, its nonce tells
/// holders with one fence apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) fence: u64,
    pub(crate) nonce: String,
}

impl Lease {
    /// As stored in Redis, and as a redemption's mark.
    pub(crate) fn value(&self) -> String {
        format!("{}:{}", self.fence, self.nonce)
    }
}

/// A place in a refresh-token chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainPos {
    pub(crate) epoch: String,
    pub(crate) seq: u64,
}

/// What a process remembers between runs (which take turns: a run starts
/// with what the one before it left); gone when it restarts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Memory {
    /// The newest token this process handed its cache.
    pub(crate) handed: Option<AccessToken>,
    /// A token fetched for a cache that had stopped waiting (its fetch
    /// timeout): the next run hands it over rather than fetch again.
    pub(crate) unclaimed: Option<AccessToken>,
    /// The furthest place in the chain this process has seen.
    pub(crate) chain: Option<ChainPos>,
    /// How many times this process has seen the chain start over (a
    /// reseed): orders places of different chains.
    pub(crate) restarts: u64,
}

/// One read of an identity's entries, opened.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) token: Option<SeenToken>,
    pub(crate) chain: SeenChain,
    /// A failure held for the fleet, with its time left.
    pub(crate) failure: Option<(HeldFailure, Duration)>,
    /// The lease as stored (`fence:nonce`), if one is held.
    pub(crate) lease: Option<String>,
}

/// The access token entry.
#[derive(Debug, Clone)]
pub(crate) struct SeenToken {
    /// The writer's nonce as stored, whatever it is (the lease script
    /// compares it to tell whether the entry changed).
    pub(crate) writer: Vec<u8>,
    pub(crate) token: Result<AccessToken, Unreadable>,
}

/// The refresh entry.
#[derive(Debug, Clone)]
pub(crate) enum SeenChain {
    /// A plain tier does not read it.
    NotRead,
    Absent,
    Lost(ChainLoss),
    Present(SeenLink),
}

/// A place in the chain, as read.
#[derive(Debug, Clone)]
pub(crate) struct SeenLink {
    pub(crate) pos: ChainPos,
    pub(crate) origin: Origin,
    pub(crate) refresh_token: Result<Secret, Unreadable>,
    pub(crate) mark: Option<MarkRecord>,
}

/// What a redemption's outcome says about the refresh token presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Refused before it was used (an error response other than
    /// `invalid_grant`, a refused connection): it may be presented again.
    NotConsumed,
    /// No answer: it may have been spent.
    InDoubt,
    /// The chain is dead or lost.
    Lost(ChainLoss),
}

/// The token endpoint's answer to a redemption.
#[derive(Debug, Clone)]
pub(crate) enum Redeemed {
    /// A token, and the refresh token to redeem next (the same one if the
    /// server does not rotate).
    Rotated {
        token: AccessToken,
        refresh_token: Secret,
    },
    /// Failed, with what that says of the refresh token presented.
    Failed(Verdict, TokenError),
}

/// What the lease script answered.
#[derive(Debug, Clone)]
pub(crate) enum LeaseAnswer {
    Granted(Lease),
    /// Held by another process for this long.
    Held(Duration),
    /// The entry changed since it was read: read again.
    Changed,
    /// A fetch failed moments ago; held this long.
    Failed(HeldFailure, Duration),
}

/// What storing a rotation answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committed {
    Stored,
    /// The chain was reseeded or declared lost meanwhile: the redemption no
    /// longer matters.
    Moved,
    /// The chain is where it was, but this lease's mark is gone: Redis went
    /// back to before it (a failover, a restored entry), and the refresh
    /// token it holds is the one just spent.
    Unmarked,
}

/// What starting a chain answered.
#[derive(Debug, Clone)]
pub(crate) enum Bootstrapped {
    /// Started, at place 1 of `epoch`, from this process's refresh token;
    /// `initial` (its code exchange's token) was written with it.
    Started {
        epoch: String,
        refresh_token: Secret,
        initial: Option<AccessToken>,
    },
    /// Redis had a chain (or a lost one) after all.
    Exists,
}

/// What a run asks its driver to do.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Read the entries: [`Event::Read`].
    Read,
    /// Drop the token entry if the writer `writer` still holds it:
    /// [`Event::Done`].
    Invalidate { writer: Vec<u8> },
    /// Take the lease unless the entry changed since it held the writer
    /// `seen`: [`Event::Lease`].
    Acquire { seen: Option<Vec<u8>> },
    /// Wait for the lease holder's message, at most `bound`: [`Event::Done`].
    Wait { bound: Duration },
    /// Ask the token source (`fallback`: without the lease, Redis being
    /// unusable): [`Event::Fetched`].
    Fetch {
        replacing: Option<AccessToken>,
        fallback: bool,
    },
    /// Write `token` under `lease` (unless a later holder wrote) and release
    /// it: [`Event::Done`].
    Write { lease: Lease, token: AccessToken },
    /// Release `lease`, holding `failure` for the fleet if given:
    /// [`Event::Done`].
    Release {
        lease: Lease,
        failure: Option<(HeldFailure, Duration)>,
    },
    /// Start the chain from this process's refresh token:
    /// [`Event::Bootstrapped`].
    Bootstrap { lease: Lease },
    /// Mark the chain's `pos` as being redeemed under `lease`:
    /// [`Event::Marked`].
    Mark { lease: Lease, pos: ChainPos },
    /// Present `refresh_token` to the token endpoint: [`Event::Redeemed`].
    Redeem { refresh_token: Secret },
    /// Store the rotated refresh token at the place after `pos`, with the
    /// access token, clearing the mark: [`Event::Committed`].
    Commit {
        lease: Lease,
        pos: ChainPos,
        refresh_token: Secret,
        token: AccessToken,
    },
    /// End the redemption of `pos` without a rotation: [`Event::Done`].
    Abort {
        lease: Lease,
        pos: ChainPos,
        verdict: Verdict,
        failure: Option<(HeldFailure, Duration)>,
    },
    /// Record in Redis that the chain this process knew is lost, unless
    /// Redis moved on to a place this process has not seen: [`Event::Done`].
    DeclareLost { known: ChainPos, loss: ChainLoss },
    /// Tell the refresh-token source its current refresh token; `rotated_here`:
    /// this process redeemed the one before and the rotation is stored (its
    /// `on_rotate` is called): [`Event::Done`].
    Adopt {
        refresh_token: Secret,
        rotated_here: bool,
    },
    /// Wait before trying again, this many tries in ([`retry_pause`]):
    /// [`Event::Done`].
    Pause { attempt: u32 },
    /// Give the cache this: [`Event::Answered`]. The run may go on.
    Answer(Result<AccessToken, TokenError>),
    /// The run is over.
    Finished,
}

/// What happened.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Start,
    Read(Box<Snapshot>),
    Lease(LeaseAnswer),
    Fetched(Result<AccessToken, TokenError>),
    Bootstrapped(Bootstrapped),
    /// `false`: the chain moved on since it was read.
    Marked(bool),
    Redeemed(Redeemed),
    Committed(Committed),
    /// An action without an answer of its own was carried out.
    Done,
    /// The answer reached the cache (`true`), or nobody waited for it any
    /// more (the cache gave up on the fetch).
    Answered(bool),
    /// Redis failed the action, which may or may not have taken effect.
    Failed(RedisFailure),
}

/// Where a run is: what it waits to hear.
#[derive(Debug, Clone)]
enum Step {
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
    Committing {
        lease: Lease,
        pos: ChainPos,
        rotated: bool,
        refresh_token: Secret,
        token: AccessToken,
    },
    /// Then answers this (unless answered already).
    Aborting {
        lease: Lease,
        pos: ChainPos,
        verdict: Verdict,
        failure: Option<(HeldFailure, Duration)>,
        answer: TokenError,
    },
    /// Then answers the loss.
    Declaring(ChainLoss),
    /// Waiting out a pause before this action again.
    Pausing(Box<(Action, Step)>),
    /// Carrying out actions that need no decision, one by one.
    Queued,
    Finished,
}

/// One token asked of a tier, from the first read to the last write; see
/// the [module](self) documentation.
#[derive(Debug)]
pub(crate) struct Run {
    kind: Kind,
    request: Request,
    settings: Settings,
    memory: Memory,
    step: Step,
    queue: VecDeque<(Action, Step)>,
    /// The rejected token's entry was dropped already.
    invalidated: bool,
    answered: bool,
    /// Retries of the current commit or abort.
    retries: u32,
    /// The lease held, if any.
    holding: Option<Lease>,
    /// A redemption was started: the run must be carried to its end.
    must_finish: bool,
    /// The token of the answer given, until the cache is known to have it.
    offered: Option<AccessToken>,
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
                Event::Marked(true),
            ) => self.go(
                Action::Redeem {
                    refresh_token: refresh_token.clone(),
                },
                Step::Redeeming {
                    lease,
                    pos,
                    refresh_token,
                },
            ),
            (Step::Marking { .. }, Event::Marked(false)) => {
                // The chain moved on (the script released the lease).
                self.holding = None;
                self.must_finish = false;
                self.go(Action::Read, Step::Reading)
            }
            (Step::Marking { lease, pos, .. }, Event::Failed(failure)) => {
                // The mark may have been set: clear it (nothing was
                // presented), however long that takes.
                let answer = redis_unavailable(&failure);
                self.abort(lease, pos, Verdict::NotConsumed, None, answer)
            }
            (
                Step::Redeeming {
                    lease,
                    pos,
                    refresh_token: presented,
                },
                Event::Redeemed(redeemed),
            ) => match redeemed {
                Redeemed::Rotated {
                    token,
                    refresh_token,
                } => {
                    let rotated = refresh_token != presented;
                    self.commit(lease, pos, rotated, refresh_token, token)
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
                    self.abort(lease, pos, verdict, failure, answer)
                }
            },
            (
                Step::Committing {
                    lease,
                    pos,
                    rotated,
                    refresh_token,
                    token,
                },
                event @ (Event::Committed(_) | Event::Failed(_)),
            ) => self.on_committed(event, lease, pos, rotated, refresh_token, token),
            (
                Step::Aborting {
                    lease,
                    pos,
                    verdict,
                    failure,
                    answer,
                },
                event @ (Event::Done | Event::Failed(_)),
            ) => {
                if matches!(event, Event::Done) {
                    self.holding = None;
                    return if self.answered {
                        self.go(Action::Finished, Step::Finished)
                    } else {
                        self.finish(Err(answer))
                    };
                }
                // The mark stays until this is stored: retry, after
                // answering the cache.
                let retry = Action::Abort {
                    lease: lease.clone(),
                    pos: pos.clone(),
                    verdict,
                    failure: failure.clone(),
                };
                let step = Step::Aborting {
                    lease,
                    pos,
                    verdict,
                    failure,
                    answer: answer.clone(),
                };
                self.retry(retry, step, Err(answer))
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

    fn go(&mut self, action: Action, step: Step) -> Action {
        self.step = step;
        action
    }

    /// Answers the cache, then ends.
    fn finish(&mut self, result: Result<AccessToken, TokenError>) -> Action {
        self.answer_then(result, Vec::new())
    }

    /// Answers the cache (unless it was answered), then carries out `then`.
    fn answer_then(
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

    fn replacing(&self) -> Option<AccessToken> {
        match &self.request {
            Request::Fetch => None,
            Request::Replace(rejected) => Some(rejected.clone()),
        }
    }

    fn on_read(&mut self, read: Snapshot, now: Instant) -> Action {
        let mut adopt = None;
        if self.kind == Kind::Refreshing {
            match self.check_chain(&read.chain) {
                ChainCheck::Fine(learnt) => adopt = learnt,
                ChainCheck::Fail(err) => return self.finish(Err(err)),
                ChainCheck::Declare(known, loss) => {
                    return self.go(Action::DeclareLost { known, loss }, Step::Declaring(loss))
                }
            }
        }
        let decision = self.decide(read, now);
        let Some(refresh_token) = adopt else {
            return decision;
        };
        // Tell the source the fleet's refresh token first, then carry on.
        let step = std::mem::replace(&mut self.step, Step::Queued);
        self.queue.push_front((decision, step));
        self.go(
            Action::Adopt {
                refresh_token,
                rotated_here: false,
            },
            Step::Queued,
        )
    }

    /// What to do with a read whose chain (if any) is fine.
    fn decide(&mut self, read: Snapshot, now: Instant) -> Action {
        if let Some(seen) = &read.token {
            match &seen.token {
                Ok(token) => {
                    if let Request::Replace(rejected) = &self.request {
                        if token.secret() == rejected.secret() && !self.invalidated {
                            self.invalidated = true;
                            return self.go(
                                Action::Invalidate {
                                    writer: seen.writer.clone(),
                                },
                                Step::Invalidating,
                            );
                        }
                    }
                    if self.acceptable(token, now) {
                        return self.finish(Ok(token.clone()));
                    }
                }
                Err(Unreadable::UnknownKey) => {
                    // A key rotation under way: not this process's entry to
                    // overwrite.
                    return match self.kind {
                        Kind::Plain if self.settings.local_fallback => self.go(
                            Action::Fetch {
                                replacing: self.replacing(),
                                fallback: true,
                            },
                            Step::Fetching { lease: None },
                        ),
                        _ => self.finish(Err(fleet_error(
                            ErrorKind::Transient,
                            FleetError::UnknownKey,
                            None,
                        ))),
                    };
                }
                // Not an entry that opens: replaced under the lease.
                Err(Unreadable::Tampered | Unreadable::Malformed) => {}
            }
        }
        if let Some((failure, left)) = &read.failure {
            return self.finish(Err(failure.to_error(*left)));
        }
        if let SeenChain::Present(link) = &read.chain {
            if let Some(mark) = &link.mark {
                if let Some(err) = self.pending(mark, read.lease.as_deref()) {
                    return self.finish(Err(err));
                }
            }
            if let Err(Unreadable::UnknownKey) = link.refresh_token {
                return self.finish(Err(fleet_error(
                    ErrorKind::Transient,
                    FleetError::UnknownKey,
                    None,
                )));
            }
        }
        let seen = read.token.as_ref().map(|t| t.writer.clone());
        self.go(Action::Acquire { seen }, Step::Acquiring(Box::new(read)))
    }

    /// Whether `token`, read from Redis, is one to hand the cache.
    fn acceptable(&self, token: &AccessToken, now: Instant) -> bool {
        if !self.settings.margin.usable(token, now) {
            return false;
        }
        match (&self.request, &self.memory.handed) {
            // Not the rejected token, nor one older than it (it would
            // likely be rejected too, and be due soon anyway).
            (Request::Replace(rejected), _) => {
                token.secret() != rejected.secret() && later(token, rejected)
            }
            (Request::Fetch, None) => true,
            // The cache asks again: its token is due, or gone. Only a newer
            // one will do.
            (Request::Fetch, Some(handed)) => {
                token.secret() != handed.secret() && later(token, handed)
            }
        }
    }

    /// The error for a redemption under way by another lease, if this run
    /// must not wait for it: its holder stopped renewing.
    fn pending(&self, mark: &MarkRecord, lease: Option<&str>) -> Option<TokenError> {
        if mark.doubt {
            return Some(chain_lost(ChainLoss::InDoubt, None));
        }
        if lease == Some(mark.by.as_str()) {
            // Its holder is alive: wait for it under the lease.
            return None;
        }
        let age = Duration::from_millis(mark.age_ms);
        if age >= self.settings.doubt_after {
            return Some(chain_lost(ChainLoss::InDoubt, None));
        }
        let retry = (self.settings.doubt_after - age).min(self.settings.lease_ttl);
        Some(fleet_error(
            ErrorKind::Transient,
            FleetError::RedemptionPending,
            Some(retry),
        ))
    }

    /// Checks the chain as read against what this process has seen, and
    /// learns from it.
    fn check_chain(&mut self, chain: &SeenChain) -> ChainCheck {
        let known = self.memory.chain.clone();
        match chain {
            SeenChain::NotRead => ChainCheck::Fine(None),
            SeenChain::Lost(loss) => ChainCheck::Fail(chain_lost(*loss, None)),
            SeenChain::Absent => match known {
                Some(known) => ChainCheck::Declare(known, ChainLoss::Forgotten),
                None => ChainCheck::Fine(None),
            },
            SeenChain::Present(link) => {
                let refresh_token = match &link.refresh_token {
                    Ok(refresh_token) => refresh_token,
                    Err(Unreadable::UnknownKey) => return ChainCheck::Fine(None),
                    Err(Unreadable::Tampered | Unreadable::Malformed) => {
                        return match known {
                            Some(known) => ChainCheck::Declare(known, ChainLoss::Unreadable),
                            None => ChainCheck::Fail(chain_lost(ChainLoss::Unreadable, None)),
                        }
                    }
                };
                if let Some(known) = known {
                    if known.epoch == link.pos.epoch {
                        if link.pos.seq < known.seq {
                            return ChainCheck::Declare(known, ChainLoss::RolledBack);
                        }
                        if link.pos.seq == known.seq {
                            return ChainCheck::Fine(None);
                        }
                    } else if link.origin == Origin::Bootstrap {
                        // The chain this process knew is gone, and another
                        // process started one from its own refresh token,
                        // which may well have been spent long ago.
                        return ChainCheck::Declare(known, ChainLoss::Forgotten);
                    } else {
                        // Reseeded by the application: a new chain.
                        self.memory.restarts += 1;
                    }
                }
                self.memory.chain = Some(link.pos.clone());
                ChainCheck::Fine(Some(refresh_token.clone()))
            }
        }
    }

    fn on_lease(&mut self, answer: LeaseAnswer, read: Snapshot) -> Action {
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

    fn on_fetched(
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

    fn on_bootstrapped(&mut self, answer: Bootstrapped) -> Action {
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

    fn commit(
        &mut self,
        lease: Lease,
        pos: ChainPos,
        rotated: bool,
        refresh_token: Secret,
        token: AccessToken,
    ) -> Action {
        self.go(
            Action::Commit {
                lease: lease.clone(),
                pos: pos.clone(),
                refresh_token: refresh_token.clone(),
                token: token.clone(),
            },
            Step::Committing {
                lease,
                pos,
                rotated,
                refresh_token,
                token,
            },
        )
    }

    fn on_committed(
        &mut self,
        event: Event,
        lease: Lease,
        pos: ChainPos,
        rotated: bool,
        refresh_token: Secret,
        token: AccessToken,
    ) -> Action {
        match event {
            Event::Committed(answer) => {
                self.holding = None;
                let mut then = Vec::new();
                match answer {
                    Committed::Stored => {
                        self.memory.chain = Some(ChainPos {
                            epoch: pos.epoch,
                            seq: pos.seq + 1,
                        });
                        // Stored: only now is the source (and its
                        // `on_rotate`) told.
                        then.push((
                            Action::Adopt {
                                refresh_token,
                                rotated_here: rotated,
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
                            epoch: pos.epoch,
                            seq: pos.seq + 1,
                        };
                        then.push((Action::DeclareLost { known, loss }, Step::Queued));
                    }
                }
                self.answer_then(Ok(token), then)
            }
            _ => {
                // Redis did not take it: the mark keeps everyone else from the
                // spent refresh token while this process retries, for as long
                // as it lives. The cache gets its token at once.
                let retry = Action::Commit {
                    lease: lease.clone(),
                    pos: pos.clone(),
                    refresh_token: refresh_token.clone(),
                    token: token.clone(),
                };
                let step = Step::Committing {
                    lease,
                    pos,
                    rotated,
                    refresh_token,
                    token: token.clone(),
                };
                self.retry(retry, step, Ok(token))
            }
        }
    }

    fn abort(
        &mut self,
        lease: Lease,
        pos: ChainPos,
        verdict: Verdict,
        failure: Option<(HeldFailure, Duration)>,
        answer: TokenError,
    ) -> Action {
        self.go(
            Action::Abort {
                lease: lease.clone(),
                pos: pos.clone(),
                verdict,
                failure: failure.clone(),
            },
            Step::Aborting {
                lease,
                pos,
                verdict,
                failure,
                answer,
            },
        )
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

enum ChainCheck {
    /// Carry on; tell the source this refresh token if given (it is the
    /// fleet's current one, newly seen).
    Fine(Option<Secret>),
    Fail(TokenError),
    Declare(ChainPos, ChainLoss),
}

/// Whether `a` expires after `b` (a token that never expires is the latest).
fn later(a: &AccessToken, b: &AccessToken) -> bool {
    match (a.expires_at(), b.expires_at()) {
        (Some(a), Some(b)) => a > b,
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

fn fleet_error(kind: ErrorKind, err: FleetError, retry_after: Option<Duration>) -> TokenError {
    TokenError::from_cause(kind, err, retry_after)
}

fn redis_unavailable(failure: &RedisFailure) -> TokenError {
    let err = FleetError::RedisUnavailable;
    TokenError::with_source(ErrorKind::Transient, format!("{err} ({failure})"), err)
}

/// The chain may be lost; `cause`: what the token endpoint said.
fn chain_lost(loss: ChainLoss, cause: Option<&TokenError>) -> TokenError {
    let err = FleetError::ChainLost(loss);
    match cause {
        None => fleet_error(ErrorKind::Permanent, err, None),
        Some(cause) => TokenError::with_source(
            ErrorKind::Permanent,
            format!("{err}; the token endpoint said: {}", Chain(cause)),
            err,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn settings() -> Settings {
        Settings {
            lease_ttl: S(5),
            failure_hold: S(1),
            local_fallback: true,
            doubt_after: S(120),
            margin: Margin::of_default_cache(),
        }
    }

    /// A token issued `age` ago that lives `life`.
    fn token(secret: &str, now: Instant, age: Duration, life: Duration) -> AccessToken {
        AccessToken::new(secret)
            .with_expires_at(now - age + life)
            .with_received_at(now - age)
    }

    fn read(token: Option<AccessToken>, chain: SeenChain) -> Event {
        Event::Read(Box::new(Snapshot {
            token: token.map(|token| SeenToken {
                writer: b"w1".to_vec(),
                token: Ok(token),
            }),
            chain,
            failure: None,
            lease: None,
        }))
    }

    fn link(epoch: &str, seq: u64, mark: Option<MarkRecord>) -> SeenChain {
        SeenChain::Present(SeenLink {
            pos: ChainPos {
                epoch: epoch.into(),
                seq,
            },
            origin: Origin::Bootstrap,
            refresh_token: Ok(Secret::new(format!("rt-{seq}"))),
            mark,
        })
    }

    fn lease() -> Lease {
        Lease {
            fence: 2,
            nonce: "ab".into(),
        }
    }

    fn answered_with(action: &Action) -> Result<&str, &TokenError> {
        match action {
            Action::Answer(Ok(token)) => Ok(token.secret()),
            Action::Answer(Err(err)) => Err(err),
            other => panic!("not an answer: {other:?}"),
        }
    }

    fn loss_of(err: &TokenError) -> Option<&FleetError> {
        err.cause().and_then(|c| c.downcast_ref::<FleetError>())
    }

    /// Which entry a plain run hands out, and when it refreshes instead:
    /// decided by what the process holds, never by a refresh schedule.
    #[test]
    fn which_entry_is_handed_out() {
        let now = Instant::now();
        let hour = S(3600);
        let fresh = token("new", now, S(10), hour);
        let older = token("old", now, S(1000), hour);
        let nearly_gone = token("gone", now, S(3595), hour);
        // (what the process holds, what is asked, the entry, handed out?)
        let table = [
            (None, Request::Fetch, fresh.clone(), true),
            (None, Request::Fetch, nearly_gone.clone(), false),
            (Some(older.clone()), Request::Fetch, fresh.clone(), true),
            // Its own token back, or an older one (Redis went back): refresh.
            (Some(fresh.clone()), Request::Fetch, fresh.clone(), false),
            (Some(fresh.clone()), Request::Fetch, older.clone(), false),
            (None, Request::Replace(older.clone()), fresh.clone(), true),
            (None, Request::Replace(fresh.clone()), older.clone(), false),
        ];
        for (i, (handed, request, entry, served)) in table.into_iter().enumerate() {
            let memory = Memory {
                handed,
                ..Memory::default()
            };
            let mut run = Run::new(Kind::Plain, request, settings(), memory);
            assert!(matches!(run.step(Event::Start, now), Action::Read));
            let action = run.step(read(Some(entry), SeenChain::NotRead), now);
            match served {
                true => assert!(
                    matches!(action, Action::Answer(Ok(_))),
                    "row {i}: {action:?}"
                ),
                false => assert!(
                    matches!(action, Action::Acquire { .. } | Action::Invalidate { .. }),
                    "row {i}: {action:?}"
                ),
            }
        }
    }

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

    /// What a refreshing run does with the chain it reads, given what the
    /// process has seen.
    #[test]
    fn what_the_chain_says() {
        let now = Instant::now();
        let seen = |seq| ChainPos {
            epoch: "e1".into(),
            seq,
        };
        let mark = |by: &str, age_ms, doubt| {
            Some(MarkRecord {
                by: by.into(),
                age_ms,
                doubt,
            })
        };
        // (known place, the chain read) -> the loss declared, or the error.
        let declared = [
            (Some(seen(3)), SeenChain::Absent, ChainLoss::Forgotten),
            (Some(seen(3)), link("e1", 2, None), ChainLoss::RolledBack),
        ];
        for (known, chain, want) in declared {
            let memory = Memory {
                chain: known,
                ..Memory::default()
            };
            let mut run = Run::new(Kind::Refreshing, Request::Fetch, settings(), memory);
            run.step(Event::Start, now);
            let action = run.step(read(None, chain), now);
            assert!(
                matches!(action, Action::DeclareLost { loss, .. } if loss == want),
                "{action:?}"
            );
            let err = run.step(Event::Done, now);
            assert_eq!(
                loss_of(answered_with(&err).unwrap_err()),
                Some(&FleetError::ChainLost(want))
            );
        }
        let errors = [
            (
                SeenChain::Lost(ChainLoss::Refused),
                FleetError::ChainLost(ChainLoss::Refused),
            ),
            // Marked by a lease that is not renewed: pending, then in doubt.
            (
                link("e1", 3, mark("9:x", 1_000, false)),
                FleetError::RedemptionPending,
            ),
            (
                link("e1", 3, mark("9:x", 121_000, false)),
                FleetError::ChainLost(ChainLoss::InDoubt),
            ),
            (
                link("e1", 3, mark("9:x", 1, true)),
                FleetError::ChainLost(ChainLoss::InDoubt),
            ),
        ];
        for (chain, want) in errors {
            let memory = Memory {
                chain: Some(seen(3)),
                ..Memory::default()
            };
            let mut run = Run::new(Kind::Refreshing, Request::Fetch, settings(), memory);
            run.step(Event::Start, now);
            let action = run.step(read(None, chain), now);
            assert_eq!(loss_of(answered_with(&action).unwrap_err()), Some(&want));
        }
        // Nothing known, nothing in Redis: start the chain under the lease.
        let mut run = Run::new(
            Kind::Refreshing,
            Request::Fetch,
            settings(),
            Memory::default(),
        );
        run.step(Event::Start, now);
        run.step(read(None, SeenChain::Absent), now);
        let action = run.step(Event::Lease(LeaseAnswer::Granted(lease())), now);
        assert!(matches!(action, Action::Bootstrap { .. }));
        assert!(run.must_finish());
    }

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

    #[test]
    fn margins_follow_a_default_cache() {
        let now = Instant::now();
        let margin = Margin::of_default_cache();
        // An hour's token needs 10.5 s left; a 2 s token 0.7 s.
        assert!(margin.usable(&token("t", now, S(3589), S(3600)), now));
        assert!(!margin.usable(&token("t", now, S(3590), S(3600)), now));
        let two = |left_ms: u64| token("t", now, Duration::from_millis(2000 - left_ms), S(2));
        assert!(margin.usable(&two(700), now));
        assert!(!margin.usable(&two(699), now));
    }
}
