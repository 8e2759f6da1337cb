//! What happens to a run: the answer to its last action, each in the shape
//! the run reads.

use std::time::Duration;

use super::lease::Lease;
use super::snapshot::Snapshot;
use crate::error::TokenError;
use crate::secret::Secret;
use crate::shared_tier::error::{ChainLoss, RedisFailure};
use crate::shared_tier::held_failure::HeldFailure;
use crate::token::AccessToken;

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
