//! Errors of the shared tier: a configuration refused before anything is
//! sent, and (inside the crate) why Redis could not be used for one fetch.

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
    /// ([`SharedTierBuilder::encryption_key`](super::SharedTierBuilder::encryption_key)).
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

/// Why Redis could not serve one fetch; the tier then falls back to the
/// token source (or, for a refreshing tier, fails the fetch).
#[derive(Debug, Clone)]
pub(crate) enum RedisFailure {
    /// Backing off after earlier failures: Redis was not asked.
    BackingOff,
    /// A command took longer than the Redis timeout.
    TimedOut(&'static str),
    /// A command failed; the message is redacted.
    Failed(&'static str, String),
    /// Another process held the lease for longer than the tier waits.
    WaitedTooLong,
    /// An entry in Redis could not be read: sealed with a key this process
    /// does not have, tampered with, or malformed.
    Unreadable(&'static str),
}

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BackingOff => f.write_str("backing off from Redis after failures"),
            Self::TimedOut(op) => write!(f, "Redis {op} timed out"),
            Self::Failed(op, message) => write!(f, "Redis {op} failed: {message}"),
            Self::WaitedTooLong => {
                f.write_str("another process held the lease longer than this one waits for it")
            }
            Self::Unreadable(why) => write!(f, "a shared entry could not be read: {why}"),
        }
    }
}

impl std::error::Error for RedisFailure {}
