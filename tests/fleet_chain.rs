//! Rotating refresh tokens through the shared tier when a replica, Redis or
//! the token endpoint fails (issue 21, defect 2): the promise is that a
//! refresh token is presented to the token endpoint at most once,
//! fleet-wide, under any fault; where that conflicts with availability,
//! the fleet fails with `FleetError::ChainLost` instead of redeeming a
//! refresh token that may have been spent.
//!
//! The token endpoint (`support::rotating`) rotates the refresh token at
//! every redemption and, like oidc-provider, revokes the whole grant when a
//! spent one is presented again: every test asserts it never had to. Real
//! time, real `redis-server`; events are ordered by what the tests observe
//! (a redemption received, a lease gone from Redis, a counter), never by
//! sleeping.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::fleet::{eventually, key, Replica};
use support::redis::RedisServer;
use support::rotating::RotatingGrant;
use tower_bearer::oauth2::{RefreshTokenSource, TokenEndpoint};
use tower_bearer::shared_tier::{ChainLoss, FleetError, SharedTier, SharedTierBuilder};
use tower_bearer::{AccessToken, TokenError, TokenSource};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

const REFRESH: &str = "{10.chain-test}:refresh";
const LEASE: &str = "{10.chain-test}:lease";

/// A fleet sharing one grant's refresh-token chain on one Redis, and the
/// token each replica's cache holds.
struct Chain {
    redis: RedisServer,
    grant: RotatingGrant,
    /// Every refresh token an `on_rotate` was told, in order.
    rotations: Arc<Mutex<Vec<String>>>,
    held: Mutex<HashMap<String, AccessToken>>,
}

impl Chain {
    fn start() -> Self {
        Self {
            redis: RedisServer::start(),
            grant: RotatingGrant::start(S(60)),
            rotations: Arc::default(),
            held: Mutex::default(),
        }
    }

    /// A replica whose tier shares the chain.
    fn replica(
        &self,
        name: &str,
        tier: impl FnOnce(SharedTierBuilder) -> SharedTierBuilder,
    ) -> Replica {
        self.replica_with(name, tier, self.grant.source(&self.rotations))
    }

    fn replica_with(
        &self,
        name: &str,
        tier: impl FnOnce(SharedTierBuilder) -> SharedTierBuilder,
        source: RefreshTokenSource,
    ) -> Replica {
        let tier = tier(
            SharedTier::builder(self.redis.url())
                .namespace("chain-test")
                .encryption_key(key("k1", 1))
                .redis_timeout(S(10))
                .lease_ttl(MS(600)),
        )
        .build_refreshing(source)
        .unwrap();
        Replica::around(name, tier, "http://127.0.0.1:9/unused".into(), |c| c)
    }

    /// What the replica's tier hands its cache when the cache has no
    /// token, or its token is due; the replica keeps it, as its cache would.
    fn token(&self, replica: &Replica) -> Result<String, TokenError> {
        let token = replica.runtime.block_on(replica.tier.fetch())?;
        Ok(self.keep(replica, token))
    }

    /// What the replica's tier hands its cache after a server rejected the
    /// token the replica holds (`rejected`: which one that is).
    fn replaced(&self, replica: &Replica, rejected: &str) -> Result<String, TokenError> {
        let holding = self.held.lock().unwrap()[&replica.name].clone();
        assert_eq!(
            holding.secret(),
            rejected,
            "{} holds another token",
            replica.name
        );
        let token = replica
            .runtime
            .block_on(replica.tier.fetch_replacing(&holding))?;
        Ok(self.keep(replica, token))
    }

    fn keep(&self, replica: &Replica, token: AccessToken) -> String {
        let secret = token.secret().to_owned();
        self.held
            .lock()
            .unwrap()
            .insert(replica.name.clone(), token);
        secret
    }

    /// Starts the chain: `a` redeems the seed, `b` reads what it stored.
    fn started(&self, a: &Replica, b: &Replica) {
        assert_eq!(self.token(a).unwrap(), "at-1");
        assert_eq!(self.token(b).unwrap(), "at-1");
        assert_eq!(self.grant.redemptions(), 1);
    }

    /// Asserts the grant is alive and no refresh token was presented twice.
    fn never_reused(&self) {
        assert!(!self.grant.revoked(), "a spent refresh token was presented");
        assert_eq!(self.grant.most_presentations(), 1);
    }

    fn rotations(&self) -> Vec<String> {
        self.rotations.lock().unwrap().clone()
    }
}

fn fleet_error(err: &TokenError) -> Option<&FleetError> {
    err.cause().and_then(|c| c.downcast_ref::<FleetError>())
}

/// Defect 2a: the lease holder stalls past its lease (its runtime stops, as
/// under SIGSTOP: no renewals) while its redemption is in flight. The
/// others never present that refresh token: its mark stands. When the
/// holder resumes, it stores what it got, and the fleet carries on.
#[test]
fn a_holder_stalled_mid_redemption_keeps_it_and_nobody_else_presents_its_refresh_token() {
    let chain = Chain::start();
    let (a, b) = (chain.replica("a", |t| t), chain.replica("b", |t| t));
    chain.started(&a, &b);

    // `a` refreshes: the endpoint rotates rt-1 and holds its answer; `a`
    // stalls, and its lease lapses.
    chain.grant.hold();
    let refreshed = std::thread::scope(|scope| {
        let refreshing = scope.spawn(|| chain.replaced(&a, "at-1"));
        chain.grant.wait_redemptions(2);
        let stalled = a.stall();
        eventually("a's lease lapses", || chain.redis.pttl(LEASE) == -2);

        // `b` must refresh too: rt-1 is marked by a lapsed lease.
        let err = chain.replaced(&b, "at-1").unwrap_err();
        assert_eq!(
            fleet_error(&err),
            Some(&FleetError::RedemptionPending),
            "{err:?}"
        );
        assert!(err.is_transient());
        assert_eq!(chain.grant.redemptions(), 2, "b did not present rt-1");

        // `a` resumes and gets its answer: it stores rt-2.
        chain.grant.release();
        drop(stalled);
        refreshing.join().unwrap()
    });
    assert_eq!(refreshed.unwrap(), "at-2");
    eventually("a stores rt-2", || chain.rotations().len() == 2);
    assert_eq!(chain.replaced(&b, "at-1").unwrap(), "at-2");
    assert_eq!(chain.rotations(), ["rt-1", "rt-2"]);
    assert_eq!(chain.grant.redemptions(), 2);
    chain.never_reused();
}

/// Defect 2b: Redis loses the chain (FLUSHALL; a restart without data).
/// A process that knew the chain does not start over from the newest
/// refresh token it saw (spent); it records the loss, and a process started
/// afterwards with the seed from its configuration finds the record and
/// does not redeem the seed either. Reseeding is the way out.
#[test]
fn a_redis_that_lost_the_chain_stops_it_instead_of_redeeming_a_spent_refresh_token() {
    for restart in [false, true] {
        let mut chain = Chain::start();
        let (a, b) = (chain.replica("a", |t| t), chain.replica("b", |t| t));
        chain.started(&a, &b);
        assert_eq!(chain.replaced(&a, "at-1").unwrap(), "at-2");

        if restart {
            chain.redis.restart();
        } else {
            chain.redis.flushall();
        }
        let err = chain.replaced(&b, "at-1").unwrap_err();
        assert_eq!(
            fleet_error(&err),
            Some(&FleetError::ChainLost(ChainLoss::Forgotten)),
            "{err:?}"
        );
        assert!(err.is_permanent());
        assert!(err.to_string().contains("reseed"), "{err}");
        assert!(
            chain.redis.pttl(REFRESH) > 0,
            "the loss is recorded, and expires"
        );

        let fresh = chain.replica("fresh", |t| t);
        let err = chain.token(&fresh).unwrap_err();
        assert_eq!(
            fleet_error(&err),
            Some(&FleetError::ChainLost(ChainLoss::Forgotten))
        );
        assert_eq!(
            chain.grant.redemptions(),
            2,
            "nothing presented after the loss"
        );
        chain.never_reused();

        // A new authorization, reseeded (here: the grant's current refresh
        // token, which nobody has presented).
        let new_refresh_token = chain.grant.current();
        fresh
            .runtime
            .block_on(fresh.tier.reseed(new_refresh_token))
            .unwrap();
        assert_eq!(chain.replaced(&b, "at-1").unwrap(), "at-3");
        assert_eq!(chain.token(&fresh).unwrap(), "at-3");
        assert_eq!(chain.grant.redemptions(), 3);
        chain.never_reused();
    }
}

/// Defect 2c: Redis goes back to an older refresh entry (a failover to a
/// replica that missed the last rotation: here the entry is put back by
/// hand, byte for byte). A process that saw the newer one does not redeem
/// the older (spent) one, and records why, so that no other does.
#[test]
fn a_redis_gone_back_to_an_older_refresh_token_is_caught_not_redeemed() {
    let chain = Chain::start();
    let (a, b) = (chain.replica("a", |t| t), chain.replica("b", |t| t));
    chain.started(&a, &b);
    let older = chain.redis.capture(REFRESH);
    assert_eq!(chain.replaced(&a, "at-1").unwrap(), "at-2");

    chain.redis.restore(REFRESH, &older);
    let err = chain.replaced(&a, "at-2").unwrap_err();
    assert_eq!(
        fleet_error(&err),
        Some(&FleetError::ChainLost(ChainLoss::RolledBack)),
        "{err:?}"
    );
    // `b` last saw rt-1, the entry Redis went back to: it could not tell,
    // and the loss `a` recorded is what keeps it from redeeming rt-1.
    let err = chain.replaced(&b, "at-1").unwrap_err();
    assert_eq!(
        fleet_error(&err),
        Some(&FleetError::ChainLost(ChainLoss::RolledBack))
    );
    assert_eq!(chain.grant.redemptions(), 2);
    chain.never_reused();
}

/// Defect 2d: Redis does not take the rotated refresh token (it stalls
/// just as the holder commits). The holder's cache gets its token at once;
/// the holder retries the commit for as long as it lives (its mark keeps
/// everyone else off the spent refresh token meanwhile), and `on_rotate`
/// is told only once Redis has it.
#[test]
fn a_rotation_redis_did_not_take_is_stored_once_it_answers_and_only_then_told() {
    let chain = Chain::start();
    let a = chain.replica("a", |t| {
        t.redis_timeout(MS(300))
            .redis_backoff(Duration::ZERO, Duration::ZERO)
    });
    let b = chain.replica("b", |t| t);
    chain.started(&a, &b);

    chain.grant.hold();
    let refreshed = std::thread::scope(|scope| {
        let refreshing = scope.spawn(|| chain.replaced(&a, "at-1"));
        chain.grant.wait_redemptions(2);
        chain.redis.pause();
        let errors = a.tier.stats().redis_errors;
        chain.grant.release();
        // The commit times out, and so does a retry.
        eventually("a's commit fails twice", || {
            a.tier.stats().redis_errors >= errors + 2
        });
        let refreshed = refreshing.join().unwrap();
        assert_eq!(chain.rotations(), ["rt-1"], "rt-2 is not stored yet");
        chain.redis.resume();
        refreshed
    });
    assert_eq!(refreshed.unwrap(), "at-2");
    eventually("rt-2 is stored and told", || chain.rotations().len() == 2);
    assert_eq!(chain.replaced(&b, "at-1").unwrap(), "at-2");
    assert_eq!(chain.rotations(), ["rt-1", "rt-2"]);
    chain.never_reused();
}

/// A redemption that gets no answer may have rotated the refresh token:
/// the fleet stops (in doubt) rather than present it again.
#[test]
fn a_redemption_without_an_answer_stops_the_chain_in_doubt() {
    let chain = Chain::start();
    // `a` gives up on the token endpoint after 300 ms.
    let impatient = TokenEndpoint::builder(chain.grant.endpoint().url().to_string())
        .client_id("app")
        .client_secret("app-secret")
        .timeout(MS(300))
        .build()
        .unwrap();
    let a = chain.replica_with(
        "a",
        |t| t,
        RefreshTokenSource::new(impatient, chain.grant.seed()),
    );
    let b = chain.replica("b", |t| t);
    chain.started(&a, &b);

    chain.grant.hold();
    let err = chain.replaced(&a, "at-1").unwrap_err();
    assert_eq!(
        fleet_error(&err),
        Some(&FleetError::ChainLost(ChainLoss::InDoubt)),
        "{err:?}"
    );
    chain.grant.release();
    let err = chain.replaced(&b, "at-1").unwrap_err();
    assert_eq!(
        fleet_error(&err),
        Some(&FleetError::ChainLost(ChainLoss::InDoubt))
    );
    assert_eq!(chain.grant.redemptions(), 2);
    chain.never_reused();
}

/// A 503 says the refresh token was not used: it is redeemed afterwards,
/// once.
#[test]
fn an_unavailable_endpoint_leaves_the_refresh_token_unused() {
    let chain = Chain::start();
    let a = chain.replica("a", |t| t.failure_hold(Duration::ZERO));
    let b = chain.replica("b", |t| t);
    chain.started(&a, &b);

    chain.grant.unavailable(1);
    let err = chain.replaced(&a, "at-1").unwrap_err();
    assert!(err.is_transient() && err.is_endpoint_overload(), "{err:?}");
    assert_eq!(chain.replaced(&b, "at-1").unwrap(), "at-2");
    assert_eq!(
        chain.grant.redemptions(),
        3,
        "rt-1 refused unused, then redeemed"
    );
    chain.never_reused();
}

/// Without Redis, a refreshing tier never falls back to redeeming on its
/// own, whatever `local_fallback` says: its fetch fails (transient), and
/// nothing is presented.
#[test]
fn without_redis_no_refresh_token_is_redeemed() {
    let chain = Chain::start();
    let a = chain.replica("a", |t| t.redis_timeout(MS(200)).local_fallback(true));
    let b = chain.replica("b", |t| t.redis_timeout(MS(200)));
    chain.started(&a, &b);
    chain.redis.pause();
    for replica in [&a, &b] {
        let err = chain.replaced(replica, "at-1").unwrap_err();
        assert_eq!(
            fleet_error(&err),
            Some(&FleetError::RedisUnavailable),
            "{err:?}"
        );
        assert!(err.is_transient());
    }
    chain.redis.resume();
    assert_eq!(chain.grant.redemptions(), 1);
    assert_eq!(a.tier.stats().fallbacks + b.tier.stats().fallbacks, 0);
    chain.never_reused();
}
