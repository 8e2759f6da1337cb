//! Keys and what they sign (feature `jwt`).
//!
//! [`SigningKey`] signs client assertions and JWT-bearer grants with a
//! [`SigningAlgorithm`], loaded from PEM (`pem_key.rs`) or a JWK
//! (`jwk.rs`), or from a Google [`ServiceAccountKey`] file; [`DpopKey`]
//! makes DPoP proofs and names itself by its JWK thumbprint
//! (`jwk_thumbprint.rs`); [`WallClock`] is the clock their `iat` and `exp`
//! come from; [`KeyError`] says why a key could not be had.

pub(super) mod dpop_key;
pub(super) mod jwk;
pub(super) mod jwk_thumbprint;
pub(super) mod key_error;
pub(super) mod pem_key;
pub(super) mod service_account_key;
pub(super) mod signing_algorithm;
pub(super) mod signing_key;
pub(super) mod wall_clock;

pub use self::dpop_key::DpopKey;
pub use self::key_error::KeyError;
pub use self::service_account_key::ServiceAccountKey;
pub use self::signing_algorithm::SigningAlgorithm;
pub use self::signing_key::SigningKey;
pub use self::wall_clock::WallClock;
