//! Errors of the shared tier: a configuration refused before anything is
//! sent, why a fetch got no token from the fleet, and (inside the crate) why
//! Redis could not be used for one step.

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

/// Why the shared tier gave no token, as the
/// [`cause`](crate::TokenError::cause) of the [`TokenError`](crate::TokenError)
/// a fetch fails with. Never holds a token, a refresh token or text from
/// another identity.
///
/// ```
/// use tower_bearer::shared_tier::{ChainLoss, FleetError};
/// use tower_bearer::TokenError;
///
/// fn must_authorize_again(err: &TokenError) -> bool {
///     matches!(
///         err.cause().and_then(|c| c.downcast_ref::<FleetError>()),
///         Some(FleetError::ChainLost(_))
///     )
/// }
/// let lost = FleetError::ChainLost(ChainLoss::Forgotten);
/// assert!(lost.to_string().contains("reseed"));
/// # let _ = must_authorize_again;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetError {
    /// The fleet's refresh-token chain may be lost: no process redeems a
    /// refresh token that may have been spent, so no refresh is possible
    /// until the application authorizes again and gives the fleet the new
    /// refresh token with [`SharedTier::reseed`](super::SharedTier::reseed).
    /// Permanent. Access tokens already handed out stay in use until they
    /// expire.
    ChainLost(ChainLoss),
    /// Another process is redeeming the fleet's refresh token and has
    /// stopped renewing its lease (it stalled or died mid-request). Nobody
    /// else may redeem it: if that process comes back, it stores what it got;
    /// if it does not, the chain becomes
    /// [`ChainLost(InDoubt)`](ChainLoss::InDoubt) after
    /// [`doubt_after`](super::SharedTierBuilder::doubt_after). Transient.
    RedemptionPending,
    /// Redis cannot be used, and a refreshing tier redeems refresh tokens
    /// only under the fleet's lease. Transient.
    RedisUnavailable,
    /// The process holding the lease for this identity failed to fetch
    /// moments ago; its failure (its kind, its endpoint-overload mark, its
    /// text) is held for the fleet so that the others do not repeat the
    /// request at once.
    HeldFailure(String),
    /// The entry is sealed with an encryption key this process was not
    /// given (a key rotation in progress); this process does not overwrite
    /// it. Transient.
    UnknownKey,
}

/// How a refresh-token chain was lost, or may have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainLoss {
    /// The token endpoint refused the fleet's refresh token
    /// (`invalid_grant`): it was revoked, it expired, or it had been
    /// redeemed before.
    Refused,
    /// A redemption got no answer (a timeout, a connection lost after the
    /// request was sent, a process that stopped mid-request for longer than
    /// [`doubt_after`](super::SharedTierBuilder::doubt_after)): the server may
    /// have rotated the refresh token, and the new one is known to nobody.
    InDoubt,
    /// Redis lost the refresh entry (flushed, restarted without
    /// persistence, failed over to a replica without it, evicted, or
    /// replaced by another process's start of a chain) while this process
    /// knew it.
    Forgotten,
    /// Redis went back to an older refresh token than one this process had
    /// seen (a failover to a replica that missed writes, an AOF that lost
    /// its last second): that one was spent.
    RolledBack,
    /// The refresh entry is not one this crate writes, or failed
    /// authentication.
    Unreadable,
}

impl ChainLoss {
    pub(crate) fn code(self) -> &'static str {
        match self {
            ChainLoss::Refused => "refused",
            ChainLoss::InDoubt => "in-doubt",
            ChainLoss::Forgotten => "forgotten",
            ChainLoss::RolledBack => "rolled-back",
            ChainLoss::Unreadable => "unreadable",
        }
    }

    /// Reads what [`code`](Self::code) wrote; anything else is unreadable.
    pub(crate) fn from_code(code: &[u8]) -> Self {
        [
            ChainLoss::Refused,
            ChainLoss::InDoubt,
            ChainLoss::Forgotten,
            ChainLoss::RolledBack,
        ]
        .into_iter()
        .find(|loss| loss.code().as_bytes() == code)
        .unwrap_or(ChainLoss::Unreadable)
    }
}

impl fmt::Display for ChainLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChainLoss::Refused => "the token endpoint refused the fleet's refresh token",
            ChainLoss::InDoubt => {
                "a redemption of the fleet's refresh token got no answer, so it may have been spent"
            }
            ChainLoss::Forgotten => "Redis lost the fleet's refresh token",
            ChainLoss::RolledBack => {
                "Redis went back to an older refresh token, which was already spent"
            }
            ChainLoss::Unreadable => "the fleet's refresh entry in Redis cannot be read",
        })
    }
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChainLost(loss) => write!(
                f,
                "the refresh-token chain may be lost ({loss}); no refresh token that may \
                 have been spent is redeemed: authorize again and give the fleet the new \
                 refresh token with SharedTier::reseed"
            ),
            Self::RedemptionPending => f.write_str(
                "another process is redeeming the fleet's refresh token and stopped \
                 renewing its lease; nobody else may redeem it meanwhile",
            ),
            Self::RedisUnavailable => f.write_str(
                "Redis cannot be used, and rotating refresh tokens are only redeemed under its lease",
            ),
            Self::HeldFailure(text) => {
                write!(f, "another process's token fetch failed moments ago: {text}")
            }
            Self::UnknownKey => f.write_str(
                "the shared entry is sealed with an encryption key this process was not given",
            ),
        }
    }
}

impl std::error::Error for FleetError {}

/// Why Redis could not serve one step of a fetch.
#[derive(Debug, Clone)]
pub(crate) enum RedisFailure {
    /// Backing off after earlier failures: Redis was not asked.
    BackingOff,
    /// A command took longer than the Redis timeout (it may still run).
    TimedOut(&'static str),
    /// A command failed; the message is redacted.
    Failed(&'static str, String),
}

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BackingOff => f.write_str("backing off from Redis after failures"),
            Self::TimedOut(op) => write!(f, "Redis {op} timed out"),
            Self::Failed(op, message) => write!(f, "Redis {op} failed: {message}"),
        }
    }
}

impl std::error::Error for RedisFailure {}
