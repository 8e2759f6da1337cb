//! A shared-tier configuration refused before anything is sent.

use std::fmt;

/// A shared-tier configuration that was refused, before any connection is
/// made. Never shows the Redis URL's password or a key.
///
/// ```
/// use tower_bearer::shared_tier::{SharedTier, SharedTierBuildError};
/// use tower_bearer::StaticToken;
///
/// let err = SharedTier::builder("redis://:hunter2@127.0.0.1:6379")
///     .build(StaticToken::new("k"))
///     .unwrap_err();
/// assert_eq!(err, SharedTierBuildError::MissingEncryptionKey);
/// assert!(!format!("{err:?} {err}").contains("hunter2"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedTierBuildError {
    /// The Redis URL could not be used.
    InvalidRedisUrl {
        /// The URL without its user info and query.
        url: String,
        /// Why.
        reason: String,
    },
    /// The namespace cannot prefix Redis keys.
    InvalidNamespace(&'static str),
    /// No key to encrypt tokens with was given
    /// ([`SharedTierBuilder::encryption_key`](crate::shared_tier::SharedTierBuilder::encryption_key)).
    MissingEncryptionKey,
    /// An encryption key could not be read.
    InvalidEncryptionKey {
        /// The key's id.
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// A key id that is empty, too long, or has characters other than
    /// ASCII letters, digits, `.`, `_` and `-`.
    InvalidKeyId,
    /// Two different keys were given the same id.
    DuplicateKeyId(String),
}

impl fmt::Display for SharedTierBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRedisUrl { url, reason } => {
                write!(f, "invalid Redis URL {url}: {reason}")
            }
            Self::InvalidNamespace(reason) => write!(f, "invalid namespace: {reason}"),
            Self::MissingEncryptionKey => {
                f.write_str("the shared tier needs a key to encrypt tokens with")
            }
            Self::InvalidEncryptionKey { id, reason } => {
                write!(f, "invalid encryption key {id:?}: {reason}")
            }
            Self::InvalidKeyId => {
                f.write_str("a key id must be 1 to 32 ASCII letters, digits, `.`, `_` or `-`")
            }
            Self::DuplicateKeyId(id) => {
                write!(f, "two different encryption keys have the id {id:?}")
            }
        }
    }
}

impl std::error::Error for SharedTierBuildError {}
