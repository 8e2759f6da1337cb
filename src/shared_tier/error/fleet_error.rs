//! Why a fetch got no token from the fleet.

use std::fmt;

use super::chain_loss::ChainLoss;

/// Why the shared tier gave no token, as the
/// [`cause`](crate::TokenError::cause) of the [`TokenError`](crate::TokenError)
/// a fetch fails with. Never holds a token, a refresh token or text from
/// another identity.
///
/// ```
/// use tower_bearer::shared_tier::{ChainLoss, FleetError};
/// use tower_bearer::TokenError;
///
/// fn must_authorize_again(err: &TokenError) -> bool {
///     matches!(
///         err.cause().and_then(|c| c.downcast_ref::<FleetError>()),
///         Some(FleetError::ChainLost(_))
///     )
/// }
/// let lost = FleetError::ChainLost(ChainLoss::Forgotten);
/// assert!(lost.to_string().contains("reseed"));
/// # let _ = must_authorize_again;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetError {
    /// The fleet's refresh-token chain may be lost: no process redeems a
    /// refresh token that may have been spent, so no refresh is possible
    /// until the application authorizes again and gives the fleet the new
    /// refresh token with
    /// [`SharedTier::reseed`](crate::shared_tier::SharedTier::reseed).
    /// Permanent. Access tokens already handed out stay in use until they
    /// expire.
    ChainLost(ChainLoss),
    /// Another process is redeeming the fleet's refresh token and has
    /// stopped renewing its lease (it stalled or died mid-request). Nobody
    /// else may redeem it: if that process comes back, it stores what it got;
    /// if it does not, the chain becomes
    /// [`ChainLost(InDoubt)`](ChainLoss::InDoubt) after
    /// [`doubt_after`](crate::shared_tier::SharedTierBuilder::doubt_after).
    /// Transient.
    RedemptionPending,
    /// Redis cannot be used, and a refreshing tier redeems refresh tokens
    /// only under the fleet's lease. Transient.
    RedisUnavailable,
    /// The process holding the lease for this identity failed to fetch
    /// moments ago; its failure (its kind, its endpoint-overload mark, its
    /// text) is held for the fleet so that the others do not repeat the
    /// request at once.
    HeldFailure(String),
    /// The entry is sealed with an encryption key this process was not
    /// given (a key rotation in progress); this process does not overwrite
    /// it. Transient.
    UnknownKey,
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChainLost(loss) => write!(
                f,
                "the refresh-token chain may be lost ({loss}); no refresh token that may \
                 have been spent is redeemed: authorize again and give the fleet the new \
                 refresh token with SharedTier::reseed"
            ),
            Self::RedemptionPending => f.write_str(
                "another process is redeeming the fleet's refresh token and stopped \
                 renewing its lease; nobody else may redeem it meanwhile",
            ),
            Self::RedisUnavailable => f.write_str(
                "Redis cannot be used, and rotating refresh tokens are only redeemed under its lease",
            ),
            Self::HeldFailure(text) => {
                write!(f, "another process's token fetch failed moments ago: {text}")
            }
            Self::UnknownKey => f.write_str(
                "the shared entry is sealed with an encryption key this process was not given",
            ),
        }
    }
}

impl std::error::Error for FleetError {}
