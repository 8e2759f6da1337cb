//! The shared tier when Redis, a lease holder or the token endpoint fails,
//! and when Redis holds what the crate did not write: Redis down, stalled
//! (SIGSTOP), flushed, restarted empty on the same port (as after a
//! failover), a lease holder dying mid-fetch (its runtime shut down; its
//! process killed) or stalling past its lease, a slow token endpoint, one
//! tenant's failure, entries written by hand, identities whose names
//! collide when joined naively, and the Redis server's clock.
//!
//! Every test counts (token requests, fallbacks, keys); none measures a
//! duration or sleeps to order events: they wait for what they can observe
//! (`support::fleet::eventually`). Needs `redis-server` on the PATH
//! (`.ci/run` installs it). Real time (see `support::fleet`). Rotating
//! refresh tokens under faults: `tests/fleet_chain.rs`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::fleet::*;
use support::redis::*;
use tower_bearer::cache::EndpointGate;
use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::shared_tier::{FleetError, KeyedSharedTier, SharedTier};
use tower_bearer::{from_fn, AccessToken, TokenCache, TokenError};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

/// Runs a burst of `n` on every replica; asserts every request succeeded.
fn burst_ok(replicas: &[Replica], n: usize) {
    all_ok(&together(replicas, |r| r.burst(n)));
}

// The entry point of the fleet member processes that tests start.
fleet_member_entry_point!();

#[test]
fn redis_down_each_replica_falls_back_once_and_leaves_redis_alone() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.kill();
    let servers = Servers::start(S(60), MS(10));
    let replicas = fleet(3, &servers, &url, |t| t.redis_backoff(S(30), S(30)));

    burst_ok(&replicas, 10);
    assert_eq!(
        servers.token_requests(),
        3,
        "each process fetched for itself, once"
    );
    for replica in &replicas {
        let stats = replica.tier.stats();
        assert_eq!(
            (stats.fallbacks, stats.connections, stats.redis_errors),
            (1, 1, 1),
            "{stats:?}"
        );
        assert_eq!(replica.cache.stats().fetches, 1);
    }

    // Within the backoff, a rejection goes straight to the source: Redis is
    // not asked (no connection attempt).
    for token in servers.issued() {
        servers.revoke(&token);
    }
    burst_ok(&replicas, 10);
    assert_eq!(servers.token_requests(), 6);
    for replica in &replicas {
        let stats = replica.tier.stats();
        assert_eq!(
            (stats.fallbacks, stats.connections, stats.redis_errors),
            (2, 1, 1),
            "{stats:?}"
        );
    }
}

#[test]
fn a_stalled_redis_costs_each_process_one_fallback_then_is_used_again() {
    let redis = RedisServer::start();
    redis.pause();
    let servers = Servers::start(S(60), MS(10));
    // No backoff, so that Redis is asked again at the next fetch.
    let replicas = fleet(3, &servers, &redis.url(), |t| {
        t.redis_timeout(MS(200))
            .redis_backoff(Duration::ZERO, Duration::ZERO)
    });

    // Connecting hangs (the kernel accepts, Redis never answers): cut at the
    // Redis timeout, and each process fetches for itself.
    burst_ok(&replicas, 10);
    assert_eq!(servers.token_requests(), 3);
    assert_eq!(total(&replicas, |s| s.fallbacks), 3);
    assert_eq!(total(&replicas, |s| s.redis_errors), 3);

    // Redis resumes: the fleet shares again; the three tokens rejected
    // everywhere cause one token request.
    redis.resume();
    for token in servers.issued() {
        servers.revoke(&token);
    }
    burst_ok(&replicas, 10);
    assert_eq!(servers.token_requests(), 4);
    assert_eq!(total(&replicas, |s| s.leases), 1);
    assert_eq!(total(&replicas, |s| s.fallbacks), 3);
}

#[test]
fn a_redis_stalling_in_use_costs_each_process_one_fallback() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    let replicas = fleet(3, &servers, &redis.url(), |t| t.redis_timeout(MS(200)));
    burst_ok(&replicas, 1);
    assert_eq!(servers.token_requests(), 1);

    // Each replica's read hangs on its open connection.
    redis.pause();
    servers.revoke("tok-1");
    burst_ok(&replicas, 10);
    redis.resume();
    assert_eq!(
        servers.token_requests(),
        4,
        "each process fetched for itself, once"
    );
    let stats: Vec<_> = replicas.iter().map(|r| r.tier.stats()).collect();
    assert_eq!(total(&replicas, |s| s.fallbacks), 3, "{stats:#?}");
    assert_eq!(total(&replicas, |s| s.redis_errors), 3, "{stats:#?}");
}

#[test]
fn a_redis_answering_late_is_waited_for_within_the_timeout() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    let replicas = fleet(3, &servers, &redis.url(), |t| t);
    burst_ok(&replicas, 1);
    // Redis stops answering for a moment (as under DEBUG SLEEP, a fork, a
    // slow command): within the 10 s the tests give a command, so nothing
    // falls back, and the fleet still fetches once.
    redis.query::<()>(redis::cmd("CLIENT").arg("PAUSE").arg(1000).arg("ALL"));
    servers.revoke("tok-1");
    burst_ok(&replicas, 5);
    assert_eq!(servers.token_requests(), 2);
    assert_eq!(total(&replicas, |s| s.fallbacks), 0);
    assert_eq!(total(&replicas, |s| s.leases), 2);
}

#[test]
fn a_flushed_redis_costs_one_token_request_for_the_fleet() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(50));
    let replicas = fleet(3, &servers, &redis.url(), |t| t);
    burst_ok(&replicas, 1);
    redis.flushall();

    // The caches keep their token: nothing changes until it is rejected.
    burst_ok(&replicas, 10);
    assert_eq!(servers.token_requests(), 1);
    // Rejected everywhere: the entry is gone; one process fetches.
    servers.revoke("tok-1");
    burst_ok(&replicas, 10);
    assert_eq!(servers.token_requests(), 2);
    assert_eq!(total(&replicas, |s| s.fallbacks), 0);
    assert_eq!(
        total(&replicas, |s| s.invalidations),
        0,
        "there was nothing left to drop"
    );
    assert_eq!(redis.keys(), ["{11.fleet-tests}:token"]);
}

#[test]
fn a_redis_restarted_empty_on_the_same_port_is_used_again_at_once() {
    let mut redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(50));
    let replicas = fleet(3, &servers, &redis.url(), |t| t);
    burst_ok(&replicas, 1);

    // As after a failover to a replica that had not seen the data: every
    // open connection breaks, the data is gone.
    redis.restart();
    servers.revoke("tok-1");
    burst_ok(&replicas, 10);
    assert_eq!(servers.token_requests(), 2, "one fetch for the fleet");
    assert_eq!(
        total(&replicas, |s| s.fallbacks),
        0,
        "a broken connection is replaced at once"
    );
    for replica in &replicas {
        let stats = replica.tier.stats();
        assert_eq!(
            stats.redis_errors, 1,
            "{}: its broken connection, once: {stats:?}",
            replica.name
        );
    }
}

#[test]
fn a_lease_holder_dying_mid_fetch_is_taken_over_once_its_lease_expires() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    servers.hang_next(1);
    let mut replicas = fleet(2, &servers, &redis.url(), |t| t.lease_ttl(S(1))).into_iter();
    let (holder, taker) = (replicas.next().unwrap(), replicas.next().unwrap());

    // The holder takes the lease and its token request hangs.
    holder.runtime.spawn(holder.cache.acquire());
    servers.wait_token_requests(1);
    let taker = Arc::new(taker);
    let waiting = {
        let taker = taker.clone();
        std::thread::spawn(move || taker.runtime.block_on(taker.cache.acquire()).map(|_| ()))
    };
    eventually("the second replica waits", || taker.tier.stats().waits == 1);
    // The holder dies: its runtime, its fetch and its lease renewals go.
    holder.runtime.shutdown_background();

    waiting.join().unwrap().unwrap();
    assert_eq!(
        servers.token_requests(),
        2,
        "the hung request, and the taker's"
    );
    let stats = taker.tier.stats();
    assert_eq!(
        (stats.waits, stats.leases, stats.fallbacks),
        (1, 1, 0),
        "{stats:?}"
    );
}

#[test]
fn a_killed_lease_holder_process_is_taken_over_once_its_lease_expires() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    servers.hang_next(1);
    let orders = |name: &str| servers.member_orders(&redis, name, 5, S(2));
    let mut holder = orders("holder").spawn("fleet_member");
    servers.wait_token_requests(1);
    let mut taker = orders("taker").spawn("fleet_member");
    // The taker waits for the holder's message once it has subscribed.
    eventually("the taker subscribes", || {
        redis.subscribers("{11.fleet-tests}:events") == 1
    });
    holder.kill();

    let report = taker.report();
    assert_eq!((report["ok"], report["errors"]), (5, 0), "{report:?}");
    assert_eq!((report["waits"], report["leases"]), (1, 1), "{report:?}");
    assert_eq!(servers.token_requests(), 2);
}

#[test]
fn a_lease_holder_that_lost_its_lease_cannot_overwrite_a_newer_token() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    // The late holder's source answers only when let go.
    let gate = Arc::new(tokio::sync::Notify::new());
    let source = {
        let gate = gate.clone();
        from_fn(move || {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok(AccessToken::new("from-the-late-holder").with_expires_in(S(60)))
            }
        })
    };
    let late_tier = SharedTier::builder(redis.url())
        .namespace("fleet-tests")
        .encryption_key(key("k1", 1))
        .build(source)
        .unwrap();
    let late = Replica::around("late", late_tier, servers.api_url(), |c| c);
    let late_fetch = late.runtime.spawn(late.cache.token());
    eventually("the late holder takes the lease", || {
        redis.pttl("{11.fleet-tests}:lease") > 0
    });
    // Its lease lapses while it is stalled (as after a pause longer than the
    // lease): another replica takes a new lease and writes.
    redis.query::<()>(redis::cmd("DEL").arg("{11.fleet-tests}:lease"));
    let next = Replica::new("next", &servers, &redis.url(), |t| t, |c| c);
    next.runtime.block_on(next.cache.acquire()).unwrap();
    assert_eq!(next.tier.stats().leases, 1);

    // The late holder finishes: its write is refused; it keeps its token to
    // itself, and the fleet keeps the newer one.
    gate.notify_one();
    let kept = late.runtime.block_on(late_fetch).unwrap().unwrap();
    assert_eq!(kept.secret(), "from-the-late-holder");
    let reader = Replica::new("reader", &servers, &redis.url(), |t| t, |c| c);
    let read = reader.runtime.block_on(reader.cache.token()).unwrap();
    assert_eq!(read.secret(), "tok-1", "the newer token stayed in Redis");
    assert_eq!(servers.token_requests(), 1);
    assert_eq!(reader.tier.stats().served_shared, 1);
}

/// Defect 4: the holder's fetch outlasts any fixed wait (here, twenty lease
/// lifetimes); the others keep waiting while it renews its lease, and the
/// endpoint is asked once.
#[test]
fn a_slow_token_endpoint_is_asked_once_while_the_fleet_waits() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(0));
    servers.hold();
    let replicas = fleet(4, &servers, &redis.url(), |t| t.lease_ttl(MS(300)));
    let bursts = std::thread::scope(|scope| {
        let bursts = scope.spawn(|| together(&replicas, |r| r.burst(5)));
        servers.wait_token_requests(1);
        eventually("the three others wait", || {
            total(&replicas, |s| s.waits) == 3
        });
        // Renewed every 100 ms: twenty lease lifetimes pass.
        eventually("the holder renews its lease 60 times", || {
            total(&replicas, |s| s.renewals) >= 60
        });
        assert_eq!(servers.token_requests(), 1, "nobody gave up waiting");
        servers.release();
        bursts.join().unwrap()
    });
    all_ok(&bursts);
    assert_eq!(servers.token_requests(), 1);
    assert_eq!(total(&replicas, |s| s.fallbacks), 0);
    assert_eq!(total(&replicas, |s| s.leases), 1);
}

/// A keyed fleet whose tenants' sources count their fetches and fail as
/// told.
struct Tenants {
    fetches: Arc<Mutex<Vec<String>>>,
}

impl Tenants {
    fn new() -> Self {
        Self {
            fetches: Arc::default(),
        }
    }

    /// A replica: a keyed cache on a keyed tier of its own. Tenant `bad`
    /// fails as its own (`invalid_client`, with a 10-minute Retry-After);
    /// tenant `busy` as the endpoint's (503, overloaded); others succeed.
    fn replica(
        &self,
        redis: &RedisServer,
    ) -> (KeyedTokenCache<String>, EndpointGate, KeyedSharedTier) {
        let tier = SharedTier::builder(redis.url())
            .namespace("tenants")
            .encryption_key(key("k1", 1))
            .failure_hold(S(60))
            .redis_timeout(S(10))
            .build_keyed()
            .unwrap();
        let fetches = self.fetches.clone();
        let factory_tier = tier.clone();
        let gate = EndpointGate::new(16);
        let cache = KeyedTokenCache::builder(move |tenant: &String| {
            let (fetches, name) = (fetches.clone(), tenant.clone());
            let source = from_fn(move || {
                fetches.lock().unwrap().push(name.clone());
                let result = match name.as_str() {
                    "bad" => Err(TokenError::permanent(
                        "invalid_client: the secret of tenant bad is wrong",
                    )
                    .with_retry_after(S(600))),
                    "busy" => Err(TokenError::transient("temporarily_unavailable")
                        .with_retry_after(S(60))
                        .endpoint_overloaded()),
                    _ => Ok(AccessToken::new(format!("{name}-token")).with_expires_in(S(60))),
                };
                async move { result }
            });
            factory_tier.tier(tenant, source)
        })
        .gate(gate.clone())
        .build();
        (cache, gate, tier)
    }

    fn fetches_of(&self, tenant: &str) -> usize {
        self.fetches
            .lock()
            .unwrap()
            .iter()
            .filter(|t| *t == tenant)
            .count()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Defect 3: a tenant's own failure, held for the fleet, stays that
/// tenant's: its kind kept, no overload mark, never another tenant's text,
/// and it pauses nobody; an overload of the endpoint keeps its mark.
#[test]
fn one_tenants_failure_stays_with_that_tenant_across_the_fleet() {
    let redis = RedisServer::start();
    let tenants = Tenants::new();
    let (first, first_gate, _) = tenants.replica(&redis);
    let (second, second_gate, second_tier) = tenants.replica(&redis);
    let rt = runtime();
    let acquire = |cache: &KeyedTokenCache<String>, tenant: &str| {
        rt.block_on(cache.acquire(&tenant.to_owned()))
            .map(|t| t.header_value().to_str().unwrap().to_owned())
    };

    let own = acquire(&first, "bad").unwrap_err();
    assert!(own.is_permanent());
    // The second process gets the failure held for tenant bad, as it was.
    let held = acquire(&second, "bad").unwrap_err();
    assert_eq!(tenants.fetches_of("bad"), 1, "held, not repeated");
    let token_error = TokenError::find_in(&held).unwrap();
    assert!(token_error.is_permanent());
    assert!(!token_error.is_endpoint_overload());
    assert!(matches!(
        token_error.cause().and_then(|c| c.downcast_ref::<FleetError>()),
        Some(FleetError::HeldFailure(text)) if text.contains("tenant bad")
    ));
    // Tenant good, on both processes: one fetch, its own token, no pause.
    assert_eq!(acquire(&second, "good").unwrap(), "Bearer good-token");
    assert_eq!(acquire(&first, "good").unwrap(), "Bearer good-token");
    assert_eq!(tenants.fetches_of("good"), 1);
    assert_eq!(
        first_gate.stats().held_back + second_gate.stats().held_back,
        0
    );

    // The endpoint's own overload keeps its mark in the other process.
    acquire(&first, "busy").unwrap_err();
    let busy = acquire(&second, "busy").unwrap_err();
    assert!(TokenError::find_in(&busy).unwrap().is_endpoint_overload());
    assert_eq!(tenants.fetches_of("busy"), 1);
    // Each failure lives under its tenant's keys only, and expires.
    let failures: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|k| k.ends_with(":failure"))
        .collect();
    assert_eq!(
        failures,
        ["{7.tenants/bad}:failure", "{7.tenants/busy}:failure"]
    );
    for key in &failures {
        assert!(redis.pttl(key) > 0, "{key}");
    }
    assert_eq!(second_tier.stats().shared_failures, 2);
}

/// Defect 1: a keyed tier's tenant and a tier whose namespace joins the same
/// strings never share an entry, and an entry moved to another identity's
/// key does not open there.
#[test]
fn identities_whose_names_join_alike_never_share_a_token() {
    let redis = RedisServer::start();
    let counted = |name: &'static str, fetches: &Arc<Mutex<Vec<String>>>| {
        let fetches = fetches.clone();
        from_fn(move || {
            fetches.lock().unwrap().push(name.to_owned());
            async move { Ok(AccessToken::new(format!("{name}-token")).with_expires_in(S(60))) }
        })
    };
    let fetches = Arc::new(Mutex::new(Vec::new()));
    let builder = |namespace: &str| {
        SharedTier::builder(redis.url())
            .namespace(namespace)
            .encryption_key(key("k1", 1))
            .redis_timeout(S(10))
    };
    let rt = runtime();
    let token = |tier: SharedTier| {
        rt.block_on(TokenCache::new(tier).token())
            .unwrap()
            .secret()
            .to_owned()
    };
    let pairs = [
        (
            builder("svc")
                .build_keyed()
                .unwrap()
                .tier("admin", counted("keyed svc+admin", &fetches)),
            builder("svc:admin")
                .build(counted("single svc:admin", &fetches))
                .unwrap(),
        ),
        (
            builder("svc")
                .build_keyed()
                .unwrap()
                .tier("x:y", counted("keyed svc+x:y", &fetches)),
            builder("svc:x")
                .build_keyed()
                .unwrap()
                .tier("y", counted("keyed svc:x+y", &fetches)),
        ),
    ];
    for (a, b) in pairs {
        let (a_token, b_token) = (token(a), token(b));
        assert_ne!(a_token, b_token);
    }
    assert_eq!(
        fetches.lock().unwrap().len(),
        4,
        "each identity fetched its own"
    );
    assert_eq!(
        redis
            .keys()
            .into_iter()
            .filter(|k| k.ends_with(":token"))
            .collect::<Vec<_>>(),
        [
            "{3.svc/admin}:token",
            "{3.svc/x:y}:token",
            "{5.svc:x/y}:token",
            "{9.svc:admin}:token",
        ]
    );

    // An entry copied to another identity's key (the same encryption key,
    // the same fields) does not open there: that identity fetches its own
    // and overwrites it.
    redis.query::<()>(
        redis::cmd("COPY")
            .arg("{3.svc/admin}:token")
            .arg("{9.svc:admin}:token")
            .arg("REPLACE"),
    );
    let single = builder("svc:admin")
        .build(counted("single svc:admin", &fetches))
        .unwrap();
    assert_eq!(token(single.clone()), "single svc:admin-token");
    assert_eq!(fetches.lock().unwrap().len(), 5);
    assert_eq!(single.stats().leases, 1);
}

/// Defect 5: what Redis holds is untrusted; nothing written by hand stops
/// the fleet from sharing.
#[test]
fn entries_written_by_hand_never_stop_the_fleet_from_sharing() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    let replicas = fleet(2, &servers, &redis.url(), |t| t.lease_ttl(MS(300)));
    let (token, failure, lease) = (
        "{11.fleet-tests}:token",
        "{11.fleet-tests}:failure",
        "{11.fleet-tests}:lease",
    );
    let first_fetch = |replicas: &[Replica]| {
        all_ok(&[replicas[0].runtime.block_on(replicas[0].burst(1))]);
        all_ok(&[replicas[1].runtime.block_on(replicas[1].burst(1))]);
    };

    // A failure record without a time to live would stop every replica for
    // good: it is dropped, and one replica fetches for both.
    redis.query::<()>(redis::cmd("SET").arg(failure).arg("1|p|0|written by hand"));
    first_fetch(&replicas);
    assert_eq!(servers.token_requests(), 1);
    assert_eq!(total(&replicas, |s| s.served_shared), 1);
    assert_eq!(redis.pttl(failure), -2);

    // A token entry that does not open (garbage, or sealed by someone else),
    // with an absurd version: replaced under the fence, then shared again.
    for version in ["1e309", "99999999999999999999", "-1", "7"] {
        redis.query::<()>(redis::cmd("DEL").arg(token));
        redis.query::<()>(
            redis::cmd("HSET")
                .arg(token)
                .arg(&[
                    "v",
                    version,
                    "w",
                    "abcd",
                    "life",
                    "60000",
                    "exp",
                    "99999999999999",
                ])
                .arg(&["kid", "k1", "blob", "not a sealed token at all"]),
        );
        redis.query::<()>(redis::cmd("PEXPIRE").arg(token).arg(60_000));
        for token in servers.issued() {
            servers.revoke(&token);
        }
        let before = servers.token_requests();
        burst_ok(&replicas, 3);
        assert_eq!(servers.token_requests(), before + 1, "version {version}");
    }
    // An entry without a time to live is not one this crate writes either.
    redis.query::<()>(redis::cmd("PERSIST").arg(token));
    for token in servers.issued() {
        servers.revoke(&token);
    }
    let before = servers.token_requests();
    burst_ok(&replicas, 3);
    assert_eq!(servers.token_requests(), before + 1);
    assert!(redis.pttl(token) > 0);

    // A lease without a time to live gets one, and lapses.
    redis.query::<()>(redis::cmd("SET").arg(lease).arg("9:by-hand"));
    for token in servers.issued() {
        servers.revoke(&token);
    }
    let before = servers.token_requests();
    burst_ok(&replicas, 3);
    assert_eq!(servers.token_requests(), before + 1);
    assert_eq!(total(&replicas, |s| s.fallbacks), 0);
}

/// Defect 6: every key the tier writes expires, a failed fetch leaves
/// nothing but its held failure, and tenant keys of any length make key
/// names of a bounded length.
#[test]
fn every_key_expires_and_key_names_stay_short() {
    let redis = RedisServer::start();
    let tenants = Tenants::new();
    let (cache, _, _) = tenants.replica(&redis);
    let rt = runtime();
    let long = "t".repeat(10_000);
    for tenant in ["good", long.as_str(), "bad", "busy"] {
        let _ = rt.block_on(cache.acquire(&tenant.to_owned()));
    }
    let keys = redis.keys();
    for key in &keys {
        assert!(redis.pttl(key) > 0, "{key} never expires");
        assert!(key.len() <= 100, "{} bytes: {key}", key.len());
        assert!(
            key.ends_with(":token") || key.ends_with(":failure"),
            "{key}"
        );
    }
    // Two tokens, two held failures; no counter, no lease left behind.
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.contains(&"{7.tenants/bad}:failure".to_owned()));
}

/// Defect 7: an entry's expiry is on the Redis server's clock (`TIME` plus
/// the time the token had left when it was written), never a process's.
#[test]
fn entries_keep_time_on_the_redis_servers_clock() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    let replicas = fleet(1, &servers, &redis.url(), |t| t);
    burst_ok(&replicas, 1);
    // In one transaction, so that the three come from one moment.
    let (time, pttl, exp): (Vec<String>, i64, String) = redis.pipeline(
        redis::pipe()
            .atomic()
            .cmd("TIME")
            .cmd("PTTL")
            .arg("{11.fleet-tests}:token")
            .cmd("HGET")
            .arg("{11.fleet-tests}:token")
            .arg("exp"),
    );
    let now_ms = time[0].parse::<i64>().unwrap() * 1000 + time[1].parse::<i64>().unwrap() / 1000;
    let exp: i64 = exp.parse().unwrap();
    assert!(
        (exp - (now_ms + pttl)).abs() <= 1,
        "exp {exp}, TIME {now_ms} + PTTL {pttl}"
    );
    let life: i64 = redis.query(redis::cmd("HGET").arg("{11.fleet-tests}:token").arg("life"));
    assert_eq!(life, 60_000);
}
