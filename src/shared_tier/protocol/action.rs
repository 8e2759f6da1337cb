//! What a run asks its driver to do, and which event answers each action.

use std::time::Duration;

use super::chain_pos::ChainPos;
use super::event::Verdict;
use super::lease::Lease;
use crate::error::TokenError;
use crate::secret::Secret;
use crate::shared_tier::error::ChainLoss;
use crate::shared_tier::held_failure::HeldFailure;
use crate::token::AccessToken;

/// What a run asks its driver to do.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Read the entries: [`Event::Read`](super::Event::Read).
    Read,
    /// Drop the token entry if the writer `writer` still holds it:
    /// [`Event::Done`](super::Event::Done).
    Invalidate { writer: Vec<u8> },
    /// Take the lease unless the entry changed since it held the writer
    /// `seen`: [`Event::Lease`](super::Event::Lease).
    Acquire { seen: Option<Vec<u8>> },
    /// Wait for the lease holder's message, at most `bound`:
    /// [`Event::Done`](super::Event::Done).
    Wait { bound: Duration },
    /// Ask the token source (`fallback`: without the lease, Redis being
    /// unusable): [`Event::Fetched`](super::Event::Fetched).
    Fetch {
        replacing: Option<AccessToken>,
        fallback: bool,
    },
    /// Write `token` under `lease` (unless a later holder wrote) and release
    /// it: [`Event::Done`](super::Event::Done).
    Write { lease: Lease, token: AccessToken },
    /// Release `lease`, holding `failure` for the fleet if given:
    /// [`Event::Done`](super::Event::Done).
    Release {
        lease: Lease,
        failure: Option<(HeldFailure, Duration)>,
    },
    /// Start the chain from this process's refresh token:
    /// [`Event::Bootstrapped`](super::Event::Bootstrapped).
    Bootstrap { lease: Lease },
    /// Mark the chain's `pos` as being redeemed under `lease`:
    /// [`Event::Marked`](super::Event::Marked).
    Mark { lease: Lease, pos: ChainPos },
    /// Present `refresh_token` to the token endpoint:
    /// [`Event::Redeemed`](super::Event::Redeemed).
    Redeem { refresh_token: Secret },
    /// Store the rotated refresh token at the place after `pos`, with the
    /// access token, clearing the mark:
    /// [`Event::Committed`](super::Event::Committed).
    Commit {
        lease: Lease,
        pos: ChainPos,
        refresh_token: Secret,
        token: AccessToken,
    },
    /// End the redemption of `pos` without a rotation:
    /// [`Event::Done`](super::Event::Done).
    Abort {
        lease: Lease,
        pos: ChainPos,
        verdict: Verdict,
        failure: Option<(HeldFailure, Duration)>,
    },
    /// Record in Redis that the chain this process knew is lost, unless
    /// Redis moved on to a place this process has not seen:
    /// [`Event::Done`](super::Event::Done).
    DeclareLost { known: ChainPos, loss: ChainLoss },
    /// Tell the refresh-token source its current refresh token; `rotated_here`:
    /// this process redeemed the one before and the rotation is stored (its
    /// `on_rotate` is called): [`Event::Done`](super::Event::Done).
    Adopt {
        refresh_token: Secret,
        rotated_here: bool,
    },
    /// Wait before trying again, this many tries in
    /// ([`retry_pause`](super::retry_pause)):
    /// [`Event::Done`](super::Event::Done).
    Pause { attempt: u32 },
    /// Give the cache this: [`Event::Answered`](super::Event::Answered). The
    /// run may go on.
    Answer(Result<AccessToken, TokenError>),
    /// The run is over.
    Finished,
}
