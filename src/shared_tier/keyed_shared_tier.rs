//! The shared tier of a keyed cache: one shared token per key (a tenant, a
//! workspace, a user), all keys on one Redis connection.

use std::fmt;
use std::sync::Arc;

use super::fleet::Fleet;
use super::stats::SharedTierStats;
use super::tier::{SharedTier, Upstream};
use crate::oauth2::RefreshTokenSource;
use crate::source::{BoxTokenSource, TokenSource};

/// Makes the [`SharedTier`] of each key of a
/// [`KeyedTokenCache`](crate::keyed::KeyedTokenCache), so that a fleet
/// fetches one token per key per token lifetime instead of one per key per
/// process. Built by [`SharedTierBuilder::build_keyed`](super::SharedTierBuilder::build_keyed).
///
/// Every tier it makes shares one Redis connection, the encryption keys, the
/// settings and the counters ([`stats`](Self::stats) adds up all keys); each
/// key has its own entry, lease, held failure and channel, so keys never
/// wait for one another, one key's failure is never another's, and a
/// rejection of one key's token refreshes that key only. Making a tier costs
/// no Redis command, and a key whose tier is dropped (the keyed cache evicted
/// it) leaves nothing behind that does not expire: its entry expires with its
/// token, a failed fetch leaves only its failure for the hold.
///
/// Any string is a key, and no (namespace, key) pair can reach another's
/// entries or open them: the Redis keys are
/// `{<namespace length>.<namespace>/<key>}:…`, the key percent-encoded where
/// it is not printable ASCII or is one of `{ } % #`, and hashed (SHA-256)
/// when encoded it would be longer than 64 bytes; the same text is sealed
/// into every entry as associated data.
///
/// ```no_run
/// use tower_bearer::keyed::KeyedTokenCache;
/// use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
/// use tower_bearer::shared_tier::{EncryptionKey, SharedTier};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let endpoint = TokenEndpoint::builder("https://login.example.com/oauth/token")
///     .client_id("glue-bot")
///     .client_secret(std::env::var("CLIENT_SECRET")?)
///     .build()?;
/// let key = EncryptionKey::from_base64("2026-11", &std::env::var("TOKEN_KEY")?)?;
/// let fleet = SharedTier::builder(std::env::var("REDIS_URL")?)
///     .namespace("glue:prod")
///     .encryption_key(key)
///     .build_keyed()?;
/// // One token per workspace, shared by every replica.
/// let tokens = KeyedTokenCache::builder(move |workspace: &String| {
///     let source = ClientCredentials::new(endpoint.clone()).param("subject", workspace.as_str());
///     fleet.tier(workspace, source)
/// })
/// .build();
/// # let _ = tokens; Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeyedSharedTier {
    fleet: Fleet,
}

impl KeyedSharedTier {
    pub(crate) fn new(fleet: Fleet) -> Self {
        Self { fleet }
    }

    /// The tier of `key`, sharing the tokens of `source` through Redis.
    pub fn tier(&self, key: &str, source: impl TokenSource) -> SharedTier {
        self.fleet
            .tenant(key, Upstream::Source(BoxTokenSource::new(source)))
    }

    /// The tier of `key` for a refresh-token grant whose refresh token lives
    /// in Redis (per-user tokens across a fleet); see
    /// [`SharedTierBuilder::build_refreshing`](super::SharedTierBuilder::build_refreshing).
    pub fn refreshing_tier(
        &self,
        key: &str,
        source: impl Into<Arc<RefreshTokenSource>>,
    ) -> SharedTier {
        self.fleet.tenant(key, Upstream::Refreshing(source.into()))
    }

    /// What the tiers of all keys have done so far, added up.
    pub fn stats(&self) -> SharedTierStats {
        self.fleet.stats()
    }
}

impl fmt::Debug for KeyedSharedTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedSharedTier")
            .field("redis", &self.fleet.redis_for_logs())
            .field("namespace", &self.fleet.namespace())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
