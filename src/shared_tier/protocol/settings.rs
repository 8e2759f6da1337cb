//! The settings a run follows, the same for every run of a tier.

use std::time::Duration;

use super::margin::Margin;

/// The settings a run follows.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How long a lease lasts unless renewed.
    pub(crate) lease_ttl: Duration,
    /// See
    /// [`HeldFailure::hold`](crate::shared_tier::held_failure::HeldFailure::hold).
    pub(crate) failure_hold: Duration,
    /// Whether a plain tier fetches from its source when Redis cannot be used.
    pub(crate) local_fallback: bool,
    /// How long a redemption whose holder stopped renewing its lease is
    /// waited for before the chain counts as in doubt.
    pub(crate) doubt_after: Duration,
    /// The least life a token must have left to be handed out.
    pub(crate) margin: Margin,
}
