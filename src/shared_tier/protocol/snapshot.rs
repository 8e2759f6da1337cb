//! One read of an identity's entries, opened: what a run decides from.

use std::time::Duration;

use super::chain_pos::ChainPos;
use crate::secret::Secret;
use crate::shared_tier::encryption::Unreadable;
use crate::shared_tier::entry::{MarkRecord, Origin};
use crate::shared_tier::error::ChainLoss;
use crate::shared_tier::held_failure::HeldFailure;
use crate::token::AccessToken;

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
