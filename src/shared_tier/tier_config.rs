//! What every tier of one builder follows besides the protocol's
//! [`Settings`](super::protocol::Settings): set by the
//! [builder](super::SharedTierBuilder), whose setters state the defaults.

use std::time::Duration;

/// The settings a builder gives each of its tiers.
#[derive(Debug, Clone)]
pub(crate) struct TierConfig {
    pub(crate) lease_ttl: Duration,
    pub(crate) failure_hold: Duration,
    /// For plain tiers only: rotating refresh tokens never fall back.
    pub(crate) local_fallback: bool,
    pub(crate) doubt_after: Duration,
    pub(crate) unknown_lifetime: Duration,
    pub(crate) refresh_ttl: Duration,
}
