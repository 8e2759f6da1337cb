//! The Tower service and its response future.
//!
//! [`BearerAuth`] (bearer_auth.rs) chooses a request's cache, routes it, and
//! sends it with a token; [`ResponseFuture`] (future.rs) carries the rest of
//! the exchange out, a state machine over the first attempt and at most one
//! replay, doing what [`exchange`](crate::exchange) decides; attempt.rs
//! prepares an attempt (what a replay keeps, the token and its proof).

mod attempt;
mod bearer_auth;
mod future;

pub use self::bearer_auth::BearerAuth;
pub use self::future::ResponseFuture;
