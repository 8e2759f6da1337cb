//! reqwest: the bearer layer for the HTTP client most Rust services use.
//!
//! Two ways in, both on the same [`TokenCache`](crate::TokenCache) protocol
//! and with the same guarantees as [`BearerAuthLayer`](crate::BearerAuthLayer)
//! (the current token without waiting, one fetch for all concurrent callers,
//! invalidation by generation, at most one replay, the same
//! [`RejectionClassifier`](crate::classify::RejectionClassifier)):
//!
//! | you have | use | feature |
//! | --- | --- | --- |
//! | a `reqwest_middleware::ClientWithMiddleware`, and want to keep reqwest's request builder (`client.get(url).json(&body).send()`) | [`BearerAuthMiddleware`] | `reqwest-middleware` |
//! | a Tower stack (timeouts, retries, rate limits) and a plain `reqwest::Client` under it | [`ReqwestService`] under `BearerAuthLayer` | `reqwest` |
//!
//! A rejected request is sent again only if it can be: the middleware
//! replays what [`reqwest::Request::try_clone`](::reqwest::Request::try_clone)
//! can copy (bodies from bytes, strings and JSON; not streams), and under the
//! Tower layer the layer's [`ReplayPolicy`](crate::replay::ReplayPolicy) decides, as
//! for any other client.
//!
//! Errors: a request that could not get a token fails before it is sent.
//! [`TokenError::find_in`](crate::TokenError::find_in) finds the token error
//! in a `reqwest_middleware::Error` (or in any error chain that holds one).

#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod service;

#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use self::middleware::BearerAuthMiddleware;
pub use self::service::ReqwestService;
