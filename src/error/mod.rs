//! Errors: why a token could not be had, and whether trying again can help.
//!
//! One rule for every error type of the crate (the Rust API guidelines'): an
//! error's `Display` says what went wrong at its own level and does **not**
//! repeat its cause, which [`source`](std::error::Error::source) returns.
//! Printed as a chain (`anyhow`'s `{:#}`, `eyre`, a `tracing` error field
//! walked by the subscriber), each message appears once:
//! `no access token: token endpoint unreachable: client error (Connect): …`.
//!
//! [`TokenError`] (`token_error.rs`, with its [`ErrorKind`]) is what a token
//! source or the cache reports; [`CacheError`] is the cause when the cache
//! itself could not hand out a token; [`BearerAuthError`] is the service's
//! error, a token error or the inner service's; `chain.rs` prints an error
//! with its sources for the crate's own log lines.

mod bearer_auth_error;
mod cache_error;
mod chain;
mod token_error;

pub use self::bearer_auth_error::BearerAuthError;
pub use self::cache_error::CacheError;
pub(crate) use self::chain::Chain;
pub use self::token_error::{BoxError, ErrorKind, TokenError};
