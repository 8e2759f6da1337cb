//! What the examples' loopback identity providers and APIs share, one concept
//! per file: a browser's part in an authorization-code flow (`browser.rs`),
//! the server on 127.0.0.1 (`loopback.rs`), the token-endpoint and
//! API plumbing (`oauth_server.rs`: forms, headers, JSON and OAuth error
//! responses), a provider's state behind a server
//! (`stand_in.rs`), a JWS verifier that checks signed assertions the way an
//! authorization server does (`jws.rs`), and what the platform examples'
//! stand-ins share (`platform.rs`: platform JWTs, rotated token files).
//!
//! Not an example itself: the examples include it, and so do
//! `tests/credentials.rs` and `tests/providers.rs` (through the examples).

#![allow(dead_code, unused_imports)]

#[path = "browser.rs"]
mod browser;
#[path = "jws.rs"]
mod jws;
#[path = "loopback.rs"]
pub mod loopback;
#[path = "oauth_server.rs"]
mod oauth_server;
#[path = "platform.rs"]
pub mod platform;
#[path = "stand_in.rs"]
mod stand_in;

use std::fmt::Debug;
use std::net::SocketAddr;

pub use browser::follow_authorization;
pub use jws::{verify, verify_hs256, Verified};
pub use loopback::{serve_collected, Handler};
pub use oauth_server::{
    bad_request, basic_credentials, bearer_token, form, form_map, header, json_response,
    oauth_error, query_map, unique_fields,
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
