//! OAuth2 token sources and the token endpoint client.
//!
//! Every standard grant is a [`TokenSource`](crate::TokenSource) configured
//! through a [`TokenEndpoint`]:
//!
//! | grant | source |
//! | --- | --- |
//! | client credentials (RFC 6749 §4.4) | [`ClientCredentials`] |
//! | refresh token (RFC 6749 §6), with rotation | [`RefreshTokenSource`] |
//! | authorization code + PKCE (RFC 7636) + `state` | [`AuthorizationCode`], which hands over a [`RefreshTokenSource`] |
//! | anything else (a custom code-for-API-key exchange) | [`from_fn`](crate::from_fn) + [`PkceVerifier`] + [`TokenEndpoint::request_fields`] + [`StaticToken`](crate::StaticToken) |
//!
//! The endpoint client sends through any Tower HTTP service you hand it
//! ([`HttpClient::new`]), or, with the default `rustls` feature, through a
//! ready HTTPS client ([`HttpClient::https`], used when none is given). It
//! accepts `https://` URLs only, except on loopback hosts or after
//! [`allow_insecure_http`](TokenEndpointBuilder::allow_insecure_http); has its
//! own timeout ([`DEFAULT_ENDPOINT_TIMEOUT`]) and response cap
//! ([`DEFAULT_MAX_RESPONSE_BYTES`]); and turns RFC 6749 §5.2 error responses
//! into a typed [`OAuth2Error`], reachable from the
//! [`TokenError`](crate::TokenError) through [`TokenError::cause`](crate::TokenError::cause).
//!
//! # Example: client credentials with HTTP Basic authentication
//!
//! ```no_run
//! use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
//! use tower_bearer::BearerAuthLayer;
//!
//! # fn main() -> Result<(), tower_bearer::oauth2::EndpointError> {
//! let endpoint = TokenEndpoint::builder("https://platform.ai.gloo.com/oauth2/token")
//!     .client_id("my-client")
//!     .client_secret("my-secret")
//!     .build()?;
//! let layer = BearerAuthLayer::new(ClientCredentials::new(endpoint).scope("api/access"));
//! # let _ = layer; Ok(()) }
//! ```
//!
//! # Errors
//!
//! ```
//! use tower_bearer::oauth2::{ErrorCode, OAuth2Error};
//! use tower_bearer::TokenError;
//!
//! fn explain(err: &TokenError) -> String {
//!     match err.cause().and_then(|c| c.downcast_ref::<OAuth2Error>()) {
//!         Some(e) if e.code() == &ErrorCode::InvalidClient => "check the client secret".into(),
//!         Some(e) => format!("the server said {}", e.error()),
//!         None => err.to_string(),
//!     }
//! }
//! # let _ = explain;
//! ```

mod authorization_code;
mod builder;
mod callback;
mod client_credentials;
mod encode;
mod endpoint;
mod endpoint_error;
mod error;
mod http_client;
mod parse;
mod pkce;
mod refresh;
mod response;

pub use self::authorization_code::{AuthorizationCode, AuthorizationRequest};
pub use self::builder::{BodyFormat, ClientAuth, TokenEndpointBuilder};
pub use self::callback::Callback;
pub use self::client_credentials::ClientCredentials;
pub use self::endpoint::{TokenEndpoint, DEFAULT_ENDPOINT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES};
pub use self::endpoint_error::EndpointError;
pub use self::error::{ErrorCode, OAuth2Error};
pub use self::http_client::{HttpBody, HttpClient};
pub use self::pkce::{
    AuthorizeUrl, CsrfState, PkceChallenge, PkceVerifier, DEFAULT_VERIFIER_LEN, MAX_VERIFIER_LEN,
    MIN_VERIFIER_LEN,
};
pub use self::refresh::RefreshTokenSource;
pub use self::response::TokenResponse;
