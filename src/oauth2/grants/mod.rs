//! The grants: each a [`TokenSource`](crate::TokenSource) that asks a token
//! endpoint (`../endpoint`) for tokens its own way.
//!
//! [`ClientCredentials`] (RFC 6749 §4.4), [`RefreshTokenSource`] (§6, with
//! rotation), [`TokenExchange`] (RFC 8693) presenting [`SecurityToken`]s of a
//! [`TokenType`] (read from a file that rotates: `token_file.rs`), and with
//! feature `jwt` [`JwtBearer`] (RFC 7523 §2.1) and [`GoogleServiceAccount`].
//! What every grant sends besides its own parameters (scopes, audiences,
//! resources, claims) is `grant_params.rs`, and so are the setters for it.

pub(super) mod client_credentials;
#[cfg(feature = "jwt")]
pub(super) mod google_service_account;
pub(super) mod grant_params;
#[cfg(feature = "jwt")]
pub(super) mod jwt_bearer;
pub(super) mod refresh_token;
pub(super) mod security_token;
pub(super) mod token_exchange;
pub(super) mod token_file;
pub(super) mod token_type;

pub use self::client_credentials::ClientCredentials;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use self::google_service_account::{GoogleServiceAccount, GoogleServiceAccountBuilder};
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use self::jwt_bearer::JwtBearer;
pub use self::refresh_token::RefreshTokenSource;
pub use self::security_token::SecurityToken;
pub use self::token_exchange::TokenExchange;
pub use self::token_file::TokenFileError;
pub use self::token_type::TokenType;
