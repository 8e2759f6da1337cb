//! The one test scaffold, one file per concept. Each suite includes it with
//! `mod support;` and uses what it needs; parts that need a cargo feature are
//! behind it, so that plain `cargo check --tests` builds too.
//!
//! The server on 127.0.0.1, the token-endpoint and API plumbing (forms,
//! headers, JSON and OAuth error responses) and the JWS verifier are the
//! repository's `loopback/` module, which the examples include too; here it
//! is `support::loopback`.
#![allow(dead_code, unreachable_pub)]

#[path = "../../loopback/mod.rs"]
pub mod loopback;

pub mod api;
pub mod captured_log;
pub mod dpop_api;
#[cfg(feature = "redis")]
pub mod fleet;
pub mod oauth2;
pub mod platform;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
pub mod rotating;
pub mod sources;
pub mod stack;
#[cfg(feature = "rustls")]
pub mod tls;
pub mod token_endpoint;
pub mod token_server;
