//! Why a signing key, a key file or a signature could not be had.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::error::{ErrorKind, TokenError};

/// A private key, a key file or a signature that could not be had. Never
/// carries key material: every reason is the crate's own words, or a value
/// that is not secret (an algorithm name, a JSON field name, a path).
///
/// ```
/// use tower_bearer::oauth2::{KeyError, SigningAlgorithm, SigningKey};
///
/// let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n";
/// let err = SigningKey::from_pem(SigningAlgorithm::Rs256, pem).unwrap_err();
/// assert!(matches!(err, KeyError::Pem(_)));
/// assert!(err.to_string().contains("public key"), "{err}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM text holds no private key that can be used (a public key, a
    /// certificate, an encrypted key, broken base64), said why.
    Pem(&'static str),
    /// The JWK cannot be used (not JSON, a public key, a missing member, a
    /// curve other than P-256), said why.
    Jwk(String),
    /// The key is not one the algorithm signs with (an EC key for RS256).
    WrongKeyType {
        /// The algorithm asked for.
        algorithm: &'static str,
        /// The key type found (`RSA`, `EC`, …).
        found: &'static str,
    },
    /// An `alg` other than RS256, PS256 and ES256, as given (made safe to print).
    UnsupportedAlgorithm(String),
    /// The cryptography library refused the key: too small (RSA under 2048
    /// bits), too large, inconsistent, or not on the curve. Its reason.
    Rejected(String),
    /// A key file (such as a Google service-account key) that is not what it
    /// should be: not JSON, or a member missing or of the wrong type.
    KeyFile(String),
    /// A key file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Signing failed: the operating system's random number generator did
    /// not answer. Retrying may help.
    Signing,
    /// A symmetric key (HS256, a JWK of `kty` `oct`) where a key pair is
    /// needed: a DPoP proof carries the public key it is verified with
    /// (RFC 9449 §4.2), which a shared secret cannot be.
    Symmetric,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Pem(reason) => write!(f, "unusable PEM private key: {reason}"),
            KeyError::Jwk(reason) => write!(f, "unusable JWK: {reason}"),
            KeyError::WrongKeyType { algorithm, found } => write!(
                f,
                "{algorithm} signs with {} keys, not {found} keys",
                if *algorithm == "ES256" {
                    "EC P-256"
                } else {
                    "RSA"
                }
            ),
            KeyError::UnsupportedAlgorithm(alg) => write!(
                f,
                "unsupported JWS algorithm `{alg}`: RS256, PS256 and ES256 are supported"
            ),
            KeyError::Rejected(reason) => write!(f, "the private key was refused: {reason}"),
            KeyError::KeyFile(reason) => write!(f, "unusable key file: {reason}"),
            // The I/O error is the source, not repeated here.
            KeyError::Io { path, .. } => write!(f, "cannot read key file {}", path.display()),
            KeyError::Signing => f.write_str(
                "signing failed: the operating system's random number generator did not answer",
            ),
            KeyError::Symmetric => f.write_str(
                "a symmetric key (HS256, `kty` `oct`) cannot make DPoP proofs, which carry their public key (RFC 9449 §4.2): use ES256, RS256, PS256 or EdDSA",
            ),
        }
    }
}

impl StdError for KeyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            KeyError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl KeyError {
    /// Transient for [`Signing`](KeyError::Signing) (the random number
    /// generator may answer next time); permanent for a key that cannot be
    /// used, which only a change of configuration mends.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KeyError::Signing => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        }
    }
}

impl From<KeyError> for TokenError {
    fn from(err: KeyError) -> Self {
        TokenError::from_cause(err.kind(), err, None)
    }
}
