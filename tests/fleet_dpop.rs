//! DPoP-bound tokens across a fleet (issue 23): a bound token is shared only
//! with processes whose source holds the key it is bound to, and is bound to
//! that key in every process that reads it; a process with another key never
//! gets it (it could not prove it), and fetches its own. Against a real
//! `redis-server` started by the test.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::fleet::key;
use support::redis::RedisServer;
use tower_bearer::dpop::DpopProver;
use tower_bearer::oauth2::DpopKey;
use tower_bearer::shared_tier::SharedTier;
use tower_bearer::{AccessToken, TokenCache, TokenError, TokenSource};

/// A source of tokens bound to one key, as a DPoP token endpoint's are.
struct Bound {
    key: DpopKey,
    minted: Arc<AtomicUsize>,
}

impl TokenSource for Bound {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(AccessToken::new(format!("bound-{n}"))
            .with_expires_in(Duration::from_secs(3600))
            .bound_with_dpop(Arc::new(self.key.clone())))
    }

    fn dpop(&self) -> Option<Arc<dyn DpopProver>> {
        Some(Arc::new(self.key.clone()))
    }
}

/// One process of the fleet: its own runtime, its tier, its cache.
fn token_of(redis: &RedisServer, dpop: &DpopKey, minted: &Arc<AtomicUsize>) -> AccessToken {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tier = SharedTier::builder(redis.url())
            .namespace("dpop-fleet")
            .encryption_key(key("k1", 1))
            .build(Bound {
                key: dpop.clone(),
                minted: Arc::clone(minted),
            })
            .unwrap();
        TokenCache::new(tier).token().await.unwrap()
    })
}

#[test]
fn a_bound_token_is_shared_only_with_processes_holding_its_key() {
    let redis = RedisServer::start();
    let minted = Arc::new(AtomicUsize::new(0));
    let (a, b) = (
        DpopKey::generate_es256().unwrap(),
        DpopKey::generate_es256().unwrap(),
    );

    // Two processes with key A: one token request for both, bound to A in
    // the process that read it from Redis too.
    let first = token_of(&redis, &a, &minted);
    let second = token_of(&redis, &a, &minted);
    assert_eq!(minted.load(Ordering::SeqCst), 1);
    assert_eq!(first.secret(), second.secret());
    assert_eq!(second.dpop().unwrap().thumbprint(), a.thumbprint());

    // A process with key B cannot prove A's token: it never gets it, and
    // fetches its own, bound to B; a second process with B shares that one.
    let third = token_of(&redis, &b, &minted);
    assert_eq!(minted.load(Ordering::SeqCst), 2);
    assert_ne!(third.secret(), first.secret());
    assert_eq!(third.dpop().unwrap().thumbprint(), b.thumbprint());
    let fourth = token_of(&redis, &b, &minted);
    assert_eq!(fourth.secret(), third.secret());
    assert_eq!(minted.load(Ordering::SeqCst), 2);
}
