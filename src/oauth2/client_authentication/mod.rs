//! Client authentication: how the client proves who it is to the token
//! endpoint (RFC 6749 §2.3).
//!
//! [`ClientAuth`] names the method: a shared secret in HTTP Basic or in the
//! request body, or, with feature `jwt`, an assertion signed afresh for each
//! request ([`JwtAssertion`]: `private_key_jwt` with a key from `../signing`,
//! `client_secret_jwt` with the secret). The token endpoint
//! (`../endpoint`) asks it for what each request carries.

pub(super) mod client_auth;
#[cfg(feature = "jwt")]
pub(super) mod jwt_assertion;

pub use self::client_auth::ClientAuth;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use self::jwt_assertion::{JwtAssertion, JwtAssertionBuilder};
