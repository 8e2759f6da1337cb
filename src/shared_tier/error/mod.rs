//! Errors of the shared tier: a configuration refused before anything is
//! sent, why a fetch got no token from the fleet, and (inside the crate) why
//! Redis could not be used for one step.
//!
//! [`SharedTierBuildError`] (`build_error.rs`) comes from the builder;
//! [`FleetError`] (`fleet_error.rs`) is the cause of a failed fetch, and
//! [`ChainLoss`] (`chain_loss.rs`) says how a chain was lost;
//! `RedisFailure` (`redis_failure.rs`) stays inside the crate.

mod build_error;
mod chain_loss;
mod fleet_error;
mod redis_failure;

pub use self::build_error::SharedTierBuildError;
pub use self::chain_loss::ChainLoss;
pub use self::fleet_error::FleetError;
pub(crate) use self::redis_failure::RedisFailure;
