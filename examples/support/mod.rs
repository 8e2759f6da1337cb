//! What the examples' loopback identity providers and APIs share, one concept
//! per file: a browser's part in an authorization-code flow (`browser.rs`), a
//! provider's state behind a server (`stand_in.rs`), and what the platform
//! examples' stand-ins share (`platform.rs`: platform JWTs, rotated token
//! files). The server on 127.0.0.1, the token-endpoint and API plumbing
//! (forms, headers, JSON and OAuth error responses) and the JWS verifier come
//! from the repository's `loopback/` module, which the test suites include
//! too: here it is `support::loopback`, and what the examples call from it is
//! re-exported below.
//!
//! Not an example itself: the examples include it, and so do the test suites
//! that compile an example in, through that example (a suite's own scaffold
//! is `tests/support`).

#![allow(dead_code, unused_imports)]

#[path = "browser.rs"]
mod browser;
#[path = "../../loopback/mod.rs"]
pub mod loopback;
#[path = "platform.rs"]
pub mod platform;
#[path = "stand_in.rs"]
mod stand_in;

use std::fmt::Debug;
use std::net::SocketAddr;

pub use browser::follow_authorization;
pub use loopback::{
    bad_request, basic_credentials, bearer_token, form, form_map, header, json_response,
    oauth_error, query_map, serve_collected, unique_fields, verify, verify_hs256, Handler,
    Verified,
};
pub use stand_in::StandIn;

/// Serves `handler`, given the request head and its whole body, on 127.0.0.1.
pub async fn serve(handler: Handler) -> SocketAddr {
    loopback::serve_collected(move |parts, body| handler(parts, body)).await
}

/// Prints what an example observed, or passes its error on: the end of an
/// example's `main`.
pub fn print_outcome<T: Debug, E>(outcome: Result<T, E>) -> Result<(), E> {
    println!("{:#?}", outcome?);
    Ok(())
}
