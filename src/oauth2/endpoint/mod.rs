//! The token endpoint: one token request, sent and read.
//!
//! [`TokenEndpoint`] (`token_endpoint.rs`, its builder in `builder.rs`)
//! encodes the parameters ([`BodyFormat`], `form_urlencoded.rs`), adds the
//! client's authentication (`../client_authentication`) and, with a DPoP
//! key, a proof (`dpop_nonces.rs` keeps the nonces servers hand out), sends
//! through the HTTP client (`../transport`) and reads the answer:
//! a [`TokenResponse`] (`response.rs`), an [`OAuth2Error`] with its
//! [`ErrorCode`], or an [`ExchangeError`]; `http_status.rs` says which
//! statuses may pass.

pub(super) mod body_format;
pub(super) mod builder;
#[cfg(feature = "jwt")]
pub(super) mod dpop_nonces;
pub(super) mod exchange_error;
pub(super) mod form_urlencoded;
pub(super) mod http_status;
pub(super) mod oauth2_error;
pub(super) mod response;
pub(super) mod token_endpoint;

pub use self::body_format::BodyFormat;
pub use self::builder::TokenEndpointBuilder;
pub use self::exchange_error::ExchangeError;
pub use self::oauth2_error::{ErrorCode, OAuth2Error};
pub use self::response::TokenResponse;
pub use self::token_endpoint::TokenEndpoint;
