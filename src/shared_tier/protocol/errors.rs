//! The errors a run answers the cache with: a [`FleetError`] inside a
//! [`TokenError`] of the right kind.

use std::time::Duration;

use crate::error::{Chain, ErrorKind, TokenError};
use crate::shared_tier::error::{ChainLoss, FleetError, RedisFailure};

pub(super) fn fleet_error(
    kind: ErrorKind,
    err: FleetError,
    retry_after: Option<Duration>,
) -> TokenError {
    TokenError::from_cause(kind, err, retry_after)
}

pub(super) fn redis_unavailable(failure: &RedisFailure) -> TokenError {
    let err = FleetError::RedisUnavailable;
    TokenError::with_source(ErrorKind::Transient, format!("{err} ({failure})"), err)
}

/// The chain may be lost; `cause`: what the token endpoint said.
pub(super) fn chain_lost(loss: ChainLoss, cause: Option<&TokenError>) -> TokenError {
    let err = FleetError::ChainLost(loss);
    match cause {
        None => fleet_error(ErrorKind::Permanent, err, None),
        Some(cause) => TokenError::with_source(
            ErrorKind::Permanent,
            format!("{err}; the token endpoint said: {}", Chain(cause)),
            err,
        ),
    }
}
