//! What the store's keys hold: entries as the scripts write them, sealed
//! for an identity, and plain texts (a lease, a failure held).

use crate::shared_tier::entry::Origin;
use crate::shared_tier::error::ChainLoss;

/// An access token entry.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::shared_tier::sim) struct TokenValue {
    pub(in crate::shared_tier::sim) v: String,
    pub(in crate::shared_tier::sim) w: String,
    pub(in crate::shared_tier::sim) life: u64,
    /// Expiry on the server's clock.
    pub(in crate::shared_tier::sim) exp: u64,
    pub(in crate::shared_tier::sim) secret: String,
    /// Who it was sealed for (`None`: garbage that opens for nobody).
    pub(in crate::shared_tier::sim) sealed_for: Option<String>,
}

/// A refresh entry.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::shared_tier::sim) enum ChainValue {
    Present {
        epoch: String,
        seq: u64,
        origin: Origin,
        refresh_token: String,
        sealed_for: String,
        mark: Option<(String, u64)>,
        doubt: bool,
        /// The lease that committed it.
        by: Option<String>,
    },
    Lost(ChainLoss),
}

#[derive(Debug, Clone, PartialEq)]
pub(in crate::shared_tier::sim) enum Value {
    Token(TokenValue),
    Chain(ChainValue),
    Text(String),
}
