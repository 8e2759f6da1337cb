//! How a refresh-token chain was lost, or may have been; written to Redis
//! as a code when a process records the loss.

use std::fmt;

/// How a refresh-token chain was lost, or may have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainLoss {
    /// The token endpoint refused the fleet's refresh token
    /// (`invalid_grant`): it was revoked, it expired, or it had been
    /// redeemed before.
    Refused,
    /// A redemption got no answer (a timeout, a connection lost after the
    /// request was sent, a process that stopped mid-request for longer than
    /// [`doubt_after`](crate::shared_tier::SharedTierBuilder::doubt_after)):
    /// the server may have rotated the refresh token, and the new one is
    /// known to nobody.
    InDoubt,
    /// Redis lost the refresh entry (flushed, restarted without
    /// persistence, failed over to a replica without it, evicted, or
    /// replaced by another process's start of a chain) while this process
    /// knew it.
    Forgotten,
    /// Redis went back to an older refresh token than one this process had
    /// seen (a failover to a replica that missed writes, an AOF that lost
    /// its last second): that one was spent.
    RolledBack,
    /// The refresh entry is not one this crate writes, or failed
    /// authentication.
    Unreadable,
}

impl ChainLoss {
    pub(crate) fn code(self) -> &'static str {
        match self {
            ChainLoss::Refused => "refused",
            ChainLoss::InDoubt => "in-doubt",
            ChainLoss::Forgotten => "forgotten",
            ChainLoss::RolledBack => "rolled-back",
            ChainLoss::Unreadable => "unreadable",
        }
    }

    /// Reads what [`code`](Self::code) wrote; anything else is unreadable.
    pub(crate) fn from_code(code: &[u8]) -> Self {
        [
            ChainLoss::Refused,
            ChainLoss::InDoubt,
            ChainLoss::Forgotten,
            ChainLoss::RolledBack,
        ]
        .into_iter()
        .find(|loss| loss.code().as_bytes() == code)
        .unwrap_or(ChainLoss::Unreadable)
    }
}

impl fmt::Display for ChainLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChainLoss::Refused => "the token endpoint refused the fleet's refresh token",
            ChainLoss::InDoubt => {
                "a redemption of the fleet's refresh token got no answer, so it may have been spent"
            }
            ChainLoss::Forgotten => "Redis lost the fleet's refresh token",
            ChainLoss::RolledBack => {
                "Redis went back to an older refresh token, which was already spent"
            }
            ChainLoss::Unreadable => "the fleet's refresh entry in Redis cannot be read",
        })
    }
}
