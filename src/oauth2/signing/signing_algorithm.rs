//! The JWS algorithms a [`SigningKey`](crate::oauth2::SigningKey) signs with.

use std::fmt;

use super::key_error::KeyError;
use crate::redact;

/// The JWS algorithm (RFC 7518 §3.1) of an asymmetric [`SigningKey`](crate::oauth2::SigningKey):
/// what identity providers accept for `private_key_jwt` and JWT-bearer
/// assertions. (`client_secret_jwt` signs with HS256 and the client secret.)
///
/// ```
/// use tower_bearer::oauth2::{KeyError, SigningAlgorithm};
///
/// assert_eq!(SigningAlgorithm::Ps256.as_str(), "PS256");
/// assert_eq!("ES256".parse::<SigningAlgorithm>().unwrap(), SigningAlgorithm::Es256);
/// assert!(matches!(
///     "HS256".parse::<SigningAlgorithm>(),
///     Err(KeyError::UnsupportedAlgorithm(alg)) if alg == "HS256"
/// ));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256: the one every provider accepts.
    Rs256,
    /// RSASSA-PSS with SHA-256 (salt of 32 bytes), for providers and profiles
    /// (FAPI) that ask for PSS.
    Ps256,
    /// ECDSA on P-256 with SHA-256; the signature is `r || s`, 64 bytes.
    Es256,
}

impl SigningAlgorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Ps256 => "PS256",
            SigningAlgorithm::Es256 => "ES256",
        }
    }

    /// The JWK key type (`kty`) the algorithm signs with.
    pub(crate) fn key_type(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => "RSA",
            SigningAlgorithm::Es256 => "EC",
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SigningAlgorithm {
    type Err = KeyError;

    /// Parses an `alg` name; anything but `RS256`, `PS256` or `ES256` (case
    /// matters, as in JWS) is [`KeyError::UnsupportedAlgorithm`].
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "RS256" => Ok(SigningAlgorithm::Rs256),
            "PS256" => Ok(SigningAlgorithm::Ps256),
            "ES256" => Ok(SigningAlgorithm::Es256),
            _ => Err(KeyError::UnsupportedAlgorithm(redact::server_text(
                name,
                &[],
            ))),
        }
    }
}
