//! The shared tier when Redis or a lease holder fails: Redis down, stalled
//! (SIGSTOP), flushed, restarted empty on the same port (as after a
//! failover), and a lease holder dying mid-fetch (its runtime shut down; its
//! process killed). Every test counts token requests and Redis connections
//! or fallbacks, and bounds how long callers wait.
//!
//! Needs `redis-server` on the PATH (`.ci/run` installs it). Real time (see
//! `support::fleet`).

mod support;

use std::time::{Duration, Instant};

use support::fleet::*;
use support::redis::*;

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

/// How long any phase of these tests may take: far more than the Redis
/// timeouts they use, far less than "hangs".
const BOUND: Duration = Duration::from_secs(3);

/// Runs a burst of `n` on every replica; asserts every request succeeded
/// within [`BOUND`].
fn burst_ok(replicas: &[Replica], n: usize) -> Duration {
    let started = Instant::now();
    let results = together(replicas, |r| r.burst(n));
    let took = started.elapsed();
    all_ok(&results);
    assert!(took < BOUND, "the burst took {took:?}");
    took
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
fn a_stalled_redis_delays_a_fetch_by_at_most_the_redis_timeout_then_is_used_again() {
    let redis = RedisServer::start();
    redis.pause();
    let servers = Servers::start(S(60), MS(10));
    let replicas = fleet(3, &servers, &redis.url(), |t| {
        t.redis_timeout(MS(200)).redis_backoff(MS(300), MS(300))
    });

    // Connecting hangs (the kernel accepts, Redis never answers): cut at 200 ms.
    let took = burst_ok(&replicas, 10);
    assert!(took < MS(1500), "{took:?}");
    assert_eq!(servers.token_requests(), 3);
    assert_eq!(total(&replicas, |s| s.fallbacks), 3);
    assert_eq!(total(&replicas, |s| s.redis_errors), 3);

    // Redis resumes; once the backoff is over, the fleet shares again: the
    // three tokens rejected everywhere cause one token request.
    redis.resume();
    std::thread::sleep(MS(400));
    for token in servers.issued() {
        servers.revoke(&token);
    }
    burst_ok(&replicas, 10);
    assert_eq!(servers.token_requests(), 4);
    assert_eq!(total(&replicas, |s| s.leases), 1);
    assert_eq!(total(&replicas, |s| s.fallbacks), 3);
}

#[test]
fn a_redis_stalling_in_use_costs_each_fetch_at_most_the_redis_timeout() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    let replicas = fleet(3, &servers, &redis.url(), |t| t.redis_timeout(MS(200)));
    burst_ok(&replicas, 1);
    assert_eq!(servers.token_requests(), 1);

    // Each replica's compare-and-delete hangs on its open connection.
    redis.pause();
    servers.revoke("tok-1");
    let took = burst_ok(&replicas, 10);
    assert!(took < MS(1500), "{took:?}");
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
fn a_flushed_redis_costs_one_token_request_for_the_fleet() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(50));
    let replicas = fleet(3, &servers, &redis.url(), |t| t);
    burst_ok(&replicas, 1);
    redis.flushall();

    // The caches keep their token: nothing changes until it is rejected.
    burst_ok(&replicas, 10);
    assert_eq!(servers.token_requests(), 1);
    // Rejected everywhere: the entry (and the fence counter) is gone; one
    // process fetches, with a fence above anything that survived.
    servers.revoke("tok-1");
    burst_ok(&replicas, 10);
    assert_eq!(servers.token_requests(), 2);
    assert_eq!(total(&replicas, |s| s.fallbacks), 0);
    assert_eq!(
        total(&replicas, |s| s.invalidations),
        0,
        "there was nothing left to drop"
    );
    let fence: u64 = redis.query(redis::cmd("GET").arg("{fleet-tests}:fence"));
    assert_eq!(fence, 1);
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
    let lease = S(1);
    let mut replicas = fleet(2, &servers, &redis.url(), |t| t.lease_ttl(lease)).into_iter();
    let (holder, taker) = (replicas.next().unwrap(), replicas.next().unwrap());

    // The holder takes the lease and its token request hangs.
    holder.runtime.spawn(holder.cache.acquire());
    servers.wait_token_requests(1);
    let taker = std::sync::Arc::new(taker);
    let waiting = {
        let taker = taker.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let result = taker.runtime.block_on(taker.cache.acquire()).map(|_| ());
            (result, started.elapsed())
        })
    };
    let deadline = Instant::now() + BOUND;
    while taker.tier.stats().waits == 0 {
        assert!(Instant::now() < deadline, "the second replica never waited");
        std::thread::sleep(MS(5));
    }
    // The holder dies: its runtime, its fetch and its lease renewals go.
    let died = Instant::now();
    holder.runtime.shutdown_background();

    let (result, _) = waiting.join().unwrap();
    let after_death = died.elapsed();
    result.unwrap();
    assert!(
        after_death <= lease + MS(1200),
        "taken over {after_death:?} after the holder died"
    );
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
    let started = Instant::now();
    let mut taker = orders("taker").spawn("fleet_member");
    std::thread::sleep(MS(300));
    holder.kill();

    let report = taker.report();
    let took = started.elapsed();
    assert_eq!((report["ok"], report["errors"]), (5, 0), "{report:?}");
    assert_eq!((report["waits"], report["leases"]), (1, 1), "{report:?}");
    assert_eq!(servers.token_requests(), 2);
    assert!(took < S(2) + MS(300) + S(2), "the taker took {took:?}");
}

#[test]
fn a_lease_holder_that_lost_its_lease_cannot_overwrite_a_newer_token() {
    use std::sync::Arc;
    use tower_bearer::shared_tier::SharedTier;
    use tower_bearer::{from_fn, AccessToken};

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
    let deadline = Instant::now() + BOUND;
    while !redis.query::<bool>(redis::cmd("EXISTS").arg("{fleet-tests}:lease")) {
        assert!(
            Instant::now() < deadline,
            "the late holder never took the lease"
        );
        std::thread::sleep(MS(5));
    }
    // Its lease lapses while it is stalled (as after a pause longer than the
    // lease): another replica takes a new lease and writes.
    redis.query::<()>(redis::cmd("DEL").arg("{fleet-tests}:lease"));
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
