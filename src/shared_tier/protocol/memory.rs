//! What a process remembers from one run to the next.

use super::chain_pos::ChainPos;
use crate::token::AccessToken;

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
