//! What every tier made by one builder shares, and how it makes the tier
//! of an identity.

use std::sync::{Arc, Mutex};

use super::encryption::Keyring;
use super::identity::Identity;
use super::keys::Keys;
use super::protocol::{Margin, Settings};
use super::redis_link::RedisLink;
use super::scripts::Scripts;
use super::stats::{Counters, SharedTierStats};
use super::tier::{Inner, SharedTier, Upstream};
use super::tier_config::TierConfig;

/// What every tier made by one builder shares: the connection to Redis, the
/// encryption keys, the settings and the counters. A
/// [`KeyedSharedTier`](super::KeyedSharedTier) makes one tier per key from it.
#[derive(Clone)]
pub(crate) struct Fleet {
    link: Arc<RedisLink>,
    redis_for_logs: String,
    namespace: String,
    keyring: Keyring,
    scripts: Arc<Scripts>,
    config: TierConfig,
    stats: Arc<Counters>,
}

impl Fleet {
    pub(crate) fn new(
        link: RedisLink,
        redis_for_logs: String,
        namespace: String,
        keyring: Keyring,
        config: TierConfig,
    ) -> Self {
        Self {
            link: Arc::new(link),
            redis_for_logs,
            namespace,
            keyring,
            scripts: Arc::new(Scripts::new()),
            config,
            stats: Arc::default(),
        }
    }

    /// The tier of `identity`.
    pub(crate) fn tier(&self, identity: Identity, upstream: Upstream) -> SharedTier {
        // Tokens bound to a DPoP key are shared only among processes whose
        // source holds that key: the key's thumbprint is part of the identity.
        let dpop = upstream.dpop();
        let identity = identity.bound_to(dpop.as_deref().map(|p| p.thumbprint()));
        // Rotating refresh tokens never fall back: a process without Redis
        // cannot know whether its refresh token is still the current one.
        let local_fallback = matches!(upstream, Upstream::Source(_)) && self.config.local_fallback;
        let settings = Settings {
            lease_ttl: self.config.lease_ttl,
            failure_hold: self.config.failure_hold,
            local_fallback,
            doubt_after: self.config.doubt_after,
            margin: Margin::of_default_cache(),
        };
        SharedTier {
            inner: Arc::new(Inner {
                link: Arc::clone(&self.link),
                redis_for_logs: self.redis_for_logs.clone(),
                namespace: self.namespace.clone(),
                keys: Keys::new(&identity),
                identity,
                dpop,
                keyring: self.keyring.clone(),
                scripts: Arc::clone(&self.scripts),
                upstream,
                settings,
                config: self.config.clone(),
                stats: Arc::clone(&self.stats),
                memory: Mutex::default(),
                turn: Arc::default(),
            }),
        }
    }

    /// The tier of the whole namespace (one shared token).
    pub(crate) fn single(&self, upstream: Upstream) -> SharedTier {
        self.tier(Identity::single(&self.namespace), upstream)
    }

    /// The tier of `tenant` under the namespace.
    pub(crate) fn tenant(&self, tenant: &str, upstream: Upstream) -> SharedTier {
        self.tier(Identity::tenant(&self.namespace, tenant), upstream)
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn redis_for_logs(&self) -> &str {
        &self.redis_for_logs
    }

    pub(crate) fn stats(&self) -> SharedTierStats {
        self.stats.snapshot()
    }
}
