//! A place in a refresh-token chain.

/// A place in a refresh-token chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainPos {
    pub(crate) epoch: String,
    pub(crate) seq: u64,
}
