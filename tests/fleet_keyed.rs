//! A fleet of keyed caches sharing one token per key through Redis: two
//! replicas (each its own runtime, `KeyedTokenCache` and `KeyedSharedTier`,
//! so its own Redis connection), one real `redis-server`, sources that count
//! their fetches per key.
//!
//! Needs `redis-server` on the PATH (`.ci/run` installs it); without it these
//! tests fail, they never skip.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::shared_tier::{KeyedSharedTier, SharedTier};
use tower_bearer::{from_fn, AccessToken};

use support::fleet::key;
use support::redis::RedisServer;

const KEYS: [&str; 3] = ["alpha", "beta", "gamma delta"];

/// Fetches per key, across every replica.
#[derive(Clone, Default)]
struct Fetches(Arc<Mutex<BTreeMap<String, usize>>>);

impl Fetches {
    fn per_key(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
    }
}

fn keyed_tier(redis: &RedisServer) -> KeyedSharedTier {
    SharedTier::builder(redis.url())
        .namespace("fleet-keyed-test")
        .encryption_key(key("k1", 7))
        .build_keyed()
        .unwrap()
}

/// A replica: a keyed cache whose every key's source goes through `tier`.
fn replica(tier: KeyedSharedTier, fetches: &Fetches) -> KeyedTokenCache<String> {
    let fetches = fetches.clone();
    KeyedTokenCache::new(move |tenant: &String| {
        let fetches = fetches.clone();
        let tenant_for_source = tenant.clone();
        let source = from_fn(move || {
            let n = {
                let mut per_key = fetches.0.lock().unwrap();
                let n = per_key.entry(tenant_for_source.clone()).or_default();
                *n += 1;
                *n
            };
            let token = format!("{tenant_for_source}-{n}");
            async move { Ok(AccessToken::new(token).with_expires_in(Duration::from_secs(3600))) }
        });
        tier.tier(tenant, source)
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn token_of(cache: &KeyedTokenCache<String>, tenant: &str) -> String {
    let token = cache.acquire(&tenant.to_owned()).await.unwrap();
    token.header_value().to_str().unwrap().to_owned()
}

#[test]
fn each_key_is_fetched_once_for_the_whole_fleet_and_keys_stay_apart() {
    let redis = RedisServer::start();
    let fetches = Fetches::default();
    let (tier_a, tier_b) = (keyed_tier(&redis), keyed_tier(&redis));
    let a = replica(tier_a.clone(), &fetches);
    let b = replica(tier_b.clone(), &fetches);

    let from_a: Vec<String> = runtime().block_on(async {
        let mut tokens = Vec::new();
        for tenant in KEYS {
            tokens.push(token_of(&a, tenant).await);
        }
        tokens
    });
    let from_b: Vec<String> = runtime().block_on(async {
        let mut tokens = Vec::new();
        for tenant in KEYS {
            tokens.push(token_of(&b, tenant).await);
        }
        tokens
    });

    assert_eq!(
        from_a,
        ["Bearer alpha-1", "Bearer beta-1", "Bearer gamma delta-1"],
        "each key has its own token"
    );
    assert_eq!(
        from_b, from_a,
        "the second replica reads the first one's tokens"
    );
    let once: BTreeMap<String, usize> = KEYS.iter().map(|k| (k.to_string(), 1)).collect();
    assert_eq!(
        fetches.per_key(),
        once,
        "one fetch per key for two replicas"
    );

    let (stats_a, stats_b) = (tier_a.stats(), tier_b.stats());
    assert_eq!((stats_a.leases, stats_a.served_shared), (3, 0));
    assert_eq!((stats_b.leases, stats_b.served_shared), (0, 3));
    assert_eq!(stats_a.fallbacks + stats_b.fallbacks, 0);
    assert_eq!(
        stats_b.connections, 1,
        "every key of a replica shares one Redis connection"
    );

    // The entries live under the key, percent-encoded where needed, after
    // the namespace and its length.
    assert_eq!(
        redis.keys(),
        [
            "{16.fleet-keyed-test/alpha}:token",
            "{16.fleet-keyed-test/beta}:token",
            "{16.fleet-keyed-test/gamma%20delta}:token",
        ]
    );
}

#[test]
fn a_rejection_refreshes_that_key_only_and_once_for_the_fleet() {
    let redis = RedisServer::start();
    let fetches = Fetches::default();
    let a = replica(keyed_tier(&redis), &fetches);
    let b = replica(keyed_tier(&redis), &fetches);
    let alpha = "alpha".to_owned();

    runtime().block_on(async {
        for tenant in KEYS {
            token_of(&a, tenant).await;
            token_of(&b, tenant).await;
        }
    });

    // Both replicas send alpha-1; the API rejects it at both.
    let replaced_a = runtime().block_on(async {
        let rejected = a.current(&alpha).unwrap().unwrap().generation();
        a.replace(&alpha, rejected).await.unwrap()
    });
    let replaced_b = runtime().block_on(async {
        let rejected = b.current(&alpha).unwrap().unwrap().generation();
        b.replace(&alpha, rejected).await.unwrap()
    });

    assert_eq!(replaced_a.header_value(), "Bearer alpha-2");
    assert_eq!(
        replaced_b.header_value(),
        "Bearer alpha-2",
        "the second replica reads the replacement instead of fetching again"
    );
    let expected: BTreeMap<String, usize> = [("alpha", 2), ("beta", 1), ("gamma delta", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    assert_eq!(fetches.per_key(), expected);
    runtime().block_on(async {
        assert_eq!(token_of(&b, "beta").await, "Bearer beta-1");
    });
}
