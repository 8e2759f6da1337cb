//! What the examples and the test suites share to stand in for the servers
//! the crate talks to, one concept per file: the HTTP server on 127.0.0.1
//! (`server.rs`), what an authorization server or API does besides serving
//! (`oauth_server.rs`: forms, queries, headers, JSON and RFC 6749 §5.2 error
//! responses), and a JWS verifier that checks signed assertions the way an
//! authorization server does (`jws.rs`, with `ring`).
//!
//! Neither an example nor a test: both include it, always whole (this file,
//! never one file of it), with `#[path = "…/loopback/mod.rs"] mod loopback;`:
//! `examples/support/mod.rs` (which passes it on as `support::loopback` and
//! re-exports what the examples call), the examples that need only the
//! server, and `tests/support/mod.rs` (as `support::loopback`).
//!
//! Why a folder of its own at the root: the examples are published and must
//! build from the package, so they cannot reach into `tests/` (not packaged)
//! nor use a path-only dev-dependency crate (cargo drops those from the
//! published manifest); and the tests have no business with the examples' own
//! scaffold (`examples/support`: stand-ins, browser, platform helpers).
//! Cargo.toml's `include` packages this folder with the examples.

// Each includer uses a part of it.
#![allow(dead_code, unused_imports)]

mod jws;
mod oauth_server;
mod server;

pub use jws::{verify, verify_hs256, Verified};
pub use oauth_server::{
    bad_request, basic_credentials, bearer_token, form, form_map, header, json_response,
    oauth_error, query_map, unique_fields,
};
pub use server::{serve, serve_collected, Handler};
