//! Which kind of tier a run works for.

/// Plain tiers share a source's tokens; refreshing tiers share a refresh
/// token chain too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Plain,
    Refreshing,
}
