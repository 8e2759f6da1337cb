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
//! Both carry out the same [`exchange`](crate::exchange): the same decision
//! for the same answer, through the same [`ReplayPolicy`](crate::replay::ReplayPolicy)
//! types ([`CloneBody`](crate::replay::CloneBody) replays what
//! [`reqwest::Request::try_clone`](::reqwest::Request::try_clone) can copy,
//! [`BufferBody`](crate::replay::BufferBody) records streams up to a cap), the
//! same keyed caches. reqwest follows redirects itself: an answer from
//! another origin is marked [`AnsweredElsewhere`](crate::exchange::AnsweredElsewhere)
//! and never counts as a rejection of the token.
//!
//! Errors: a request that could not get a token fails before it is sent.
//! [`TokenError::find_in`](crate::TokenError::find_in) finds the token error
//! in a `reqwest_middleware::Error` (or in any error chain that holds one).

mod answered_elsewhere;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod replay;
mod select;
mod service;

#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use self::middleware::BearerAuthMiddleware;
pub use self::replay::KeptRequest;
pub use self::service::ReqwestService;
