//! [`SharedTier`], the token source a process's cache asks: one identity's
//! tier. Its builder is `builder.rs`, what it shares with the other tiers of
//! that builder `fleet.rs`, and what it does when asked `driver/`.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::encryption::Keyring;
use super::identity::Identity;
use super::keys::Keys;
use super::protocol::{Kind, Memory, Request, Settings};
use super::redis_link::RedisLink;
use super::scripts::Scripts;
use super::stats::{Counters, SharedTierStats};
use super::tier_config::TierConfig;
use crate::dpop::DpopProver;
use crate::error::TokenError;
use crate::oauth2::RefreshTokenSource;
use crate::secret::Secret;
use crate::source::{BoxTokenSource, TokenSource};
use crate::token::AccessToken;

/// The token source of a fleet: shares the tokens of the source it wraps
/// through Redis, so that one process fetches and the others read.
///
/// Build one with [`SharedTier::builder`] and put it in a
/// [`TokenCache`](crate::TokenCache) or a
/// [`BearerAuthLayer`](crate::BearerAuthLayer) like any other source; the
/// [module documentation](super) says how it works and what holds under each
/// fault. Cheap to clone: clones share one connection, one set of counters
/// and one memory of what this process has seen.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_bearer::shared_tier::{EncryptionKey, SharedTier};
/// use tower_bearer::{from_fn, AccessToken, TokenCache};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let source = from_fn(|| async {
///     Ok(AccessToken::new("minted").with_expires_in(Duration::from_secs(3600)))
/// });
/// let tier = SharedTier::builder("redis://127.0.0.1:6379")
///     .encryption_key(EncryptionKey::new("k1", [42; 32])?)
///     .build(source)?;
/// let cache = TokenCache::new(tier.clone());
/// let token = cache.acquire().await?;
/// // The first process fetched; every other one reads the same token.
/// println!("{:?}", tier.stats());
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedTier {
    pub(super) inner: Arc<Inner>,
}

/// Where the tier's tokens come from.
pub(crate) enum Upstream {
    /// Any source: its tokens are shared.
    Source(BoxTokenSource),
    /// A refresh-token grant whose refresh token lives in Redis.
    Refreshing(Arc<RefreshTokenSource>),
}

impl Upstream {
    /// The DPoP key the source binds its tokens to, if any.
    pub(super) fn dpop(&self) -> Option<Arc<dyn DpopProver>> {
        match self {
            Upstream::Source(source) => source.dpop(),
            Upstream::Refreshing(source) => source.dpop(),
        }
    }
}

/// One identity's tier.
pub(crate) struct Inner {
    /// The DPoP key of the source, which tokens read back are bound to.
    pub(super) dpop: Option<Arc<dyn DpopProver>>,
    pub(super) link: Arc<RedisLink>,
    pub(super) redis_for_logs: String,
    pub(super) namespace: String,
    pub(super) identity: Identity,
    pub(super) keys: Keys,
    pub(super) keyring: Keyring,
    pub(super) scripts: Arc<Scripts>,
    pub(super) upstream: Upstream,
    pub(super) settings: Settings,
    pub(super) config: TierConfig,
    pub(super) stats: Arc<Counters>,
    /// What this process has seen, merged from every run.
    pub(super) memory: Mutex<Memory>,
    /// Runs of this tier take turns: a run that goes on after its cache
    /// stopped waiting (a redemption, a write) is over before the next one
    /// reads, so that the next one knows what it did.
    pub(super) turn: Arc<tokio::sync::Mutex<()>>,
}

impl SharedTier {
    /// What the tier has done so far, Redis commands included.
    pub fn stats(&self) -> SharedTierStats {
        self.inner.stats.snapshot()
    }

    /// Starts a new refresh-token chain for the whole fleet from
    /// `refresh_token`, which the application has just obtained (a new
    /// authorization), whatever Redis holds: the way out of
    /// [`FleetError::ChainLost`](super::FleetError::ChainLost). Every process
    /// takes the new chain at its next fetch; a redemption of the old chain
    /// still under way is not stored. Only for a tier built with
    /// [`build_refreshing`](super::SharedTierBuilder::build_refreshing) (or a
    /// keyed tier's
    /// [`refreshing_tier`](super::KeyedSharedTier::refreshing_tier)).
    ///
    /// Never reseed with a refresh token that has been redeemed before: with
    /// rotation on, the server revokes the grant.
    ///
    /// ```no_run
    /// # async fn run(tier: tower_bearer::shared_tier::SharedTier, new_refresh_token: String)
    /// # -> Result<(), tower_bearer::TokenError> {
    /// // After the user signed in again:
    /// tier.reseed(new_refresh_token).await?;
    /// # Ok(()) }
    /// ```
    pub async fn reseed(&self, refresh_token: impl Into<Secret>) -> Result<(), TokenError> {
        self.inner.reseed(refresh_token.into()).await
    }
}

impl TokenSource for SharedTier {
    fn fetch(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send {
        self.inner.fetch(Request::Fetch)
    }

    fn fetch_replacing<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'a {
        self.inner.fetch(Request::Replace(rejected.clone()))
    }
}

impl fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("SharedTier")
            .field("redis", &inner.redis_for_logs)
            .field("namespace", &inner.namespace)
            .field("keys", &inner.keyring)
            .field(
                "upstream",
                &match inner.upstream {
                    Upstream::Source(_) => "TokenSource",
                    Upstream::Refreshing(_) => "RefreshTokenSource",
                },
            )
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(super) fn kind(&self) -> Kind {
        match self.upstream {
            Upstream::Source(_) => Kind::Plain,
            Upstream::Refreshing(_) => Kind::Refreshing,
        }
    }
}
