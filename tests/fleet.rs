//! A fleet sharing one token through the shared tier: several replicas, each
//! with its own tokio runtime, cache, tier, Redis connection and hyper client
//! (and, in two tests, separate OS processes), one real `redis-server`, one
//! loopback token endpoint and API. The token endpoint counts every request.
//!
//! Needs `redis-server` on the PATH (`.ci/run` installs it); without it these
//! tests fail, they never skip. Real time (see `support::fleet`): counts are
//! asserted, never durations, and no sleep orders events.

mod support;

use std::time::Duration;

use support::captured_log::Captured;
use support::fleet::*;
use support::redis::*;
use tracing::Level;
use tracing_subscriber::fmt::format::FmtSpan;

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

// The entry point of the fleet member processes that tests start.
fleet_member_entry_point!();

#[test]
fn a_cold_fleet_makes_one_token_request() {
    let redis = RedisServer::start();
    // A slow token endpoint: every replica asks while the first one fetches.
    let servers = Servers::start(S(60), MS(300));
    let replicas = fleet(4, &servers, &redis.url(), |t| t);

    let results = together(&replicas, |r| r.burst(50));
    all_ok(&results);

    assert_eq!(
        servers.token_requests(),
        1,
        "one token request for 4 replicas x 50 callers"
    );
    let senders = &servers.senders()["tok-1"];
    assert_eq!(
        senders.len(),
        4,
        "every replica sent the one token: {senders:?}"
    );
    for replica in &replicas {
        assert_eq!(
            replica.cache.stats().fetches,
            1,
            "{}: one fetch per process",
            replica.name
        );
    }
    assert_eq!(total(&replicas, |s| s.leases), 1);
    assert_eq!(total(&replicas, |s| s.served_shared), 3);
    assert_eq!(total(&replicas, |s| s.fallbacks), 0);
    assert_eq!(total(&replicas, |s| s.redis_errors), 0);
}

#[test]
fn the_hot_path_never_touches_redis() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    let replicas = fleet(4, &servers, &redis.url(), |t| t);
    all_ok(&together(&replicas, |r| r.burst(1)));
    let commands = redis.commands();
    let tiers: Vec<_> = replicas.iter().map(|r| r.tier.stats()).collect();

    // 4 x 500 requests with a fresh token.
    let results = together(&replicas, |r| async move {
        let mut all = Vec::new();
        for _ in 0..10 {
            all.extend(r.burst(50).await);
        }
        all
    });
    all_ok(&results);

    assert_eq!(
        redis.commands(),
        commands,
        "no Redis command for 2,000 API requests"
    );
    let after: Vec<_> = replicas.iter().map(|r| r.tier.stats()).collect();
    assert_eq!(after, tiers, "the tiers were not asked");
    assert_eq!(servers.token_requests(), 1);
}

#[test]
fn one_token_request_per_token_generation_under_load() {
    let redis = RedisServer::start();
    // 2 s tokens: refreshed ahead from 1.26 s into their life.
    let servers = Servers::start(S(2), MS(20));
    let replicas = fleet(4, &servers, &redis.url(), |t| t);

    let results = together(&replicas, |r| r.load(8, S(5)));
    all_ok(&results);

    let issued = servers.issued();
    assert_eq!(servers.token_requests(), issued.len());
    // Requests ran for 5 s on 2 s tokens: more than one generation.
    assert!(issued.len() >= 2, "{issued:?}");
    // Each generation was fetched once, by one lease holder, for the fleet.
    assert_eq!(total(&replicas, |s| s.leases), issued.len() as u64);
    assert_eq!(total(&replicas, |s| s.fallbacks), 0);
    let commands = total(&replicas, |s| s.redis_commands);
    let requests = servers.api_requests();
    eprintln!(
        "{requests} API requests, {} token requests, {commands} Redis commands ({:.5} per request)",
        issued.len(),
        commands as f64 / requests as f64
    );
    // A few commands per replica per generation (a read, a lease and a
    // write, a waiter's subscription and reads), none per request.
    assert!(
        commands < 20 * issued.len() as u64 * 4,
        "{commands} Redis commands"
    );
}

#[test]
fn a_rejection_seen_by_every_replica_causes_one_refresh() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(50));
    let replicas = fleet(4, &servers, &redis.url(), |t| t);
    all_ok(&together(&replicas, |r| r.burst(1)));
    assert_eq!(servers.token_requests(), 1);

    servers.revoke("tok-1");
    let results = together(&replicas, |r| r.burst(20));
    all_ok(&results);

    assert_eq!(
        servers.token_requests(),
        2,
        "one refresh for 80 rejections in 4 replicas"
    );
    assert_eq!(
        total(&replicas, |s| s.invalidations),
        1,
        "the shared entry was dropped once: the others no longer held tok-1"
    );
    for replica in &replicas {
        assert_eq!(replica.cache.stats().invalidations, 1, "{}", replica.name);
    }
    let senders = servers.senders();
    assert_eq!(senders["tok-2"].len(), 4);
    // 4 first requests, then 80 requests at most twice each.
    assert!(servers.api_requests() <= 4 + 160);
}

#[test]
fn a_failed_fetch_is_held_for_the_fleet_instead_of_repeated() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(100));
    servers.set_mode(Mint::Fail(503));
    let replicas = fleet(4, &servers, &redis.url(), |t| t.failure_hold(S(60)));

    let first = together(&replicas, |r| r.burst(5));
    assert!(first.iter().flatten().all(Result::is_err), "{first:?}");
    assert_eq!(
        servers.token_requests(),
        1,
        "one failing request for the fleet"
    );
    assert_eq!(total(&replicas, |s| s.shared_failures), 3);
    let held = first
        .iter()
        .flatten()
        .filter_map(|r| r.as_ref().err())
        .find(|e| e.contains("another process's token fetch failed"));
    assert!(held.is_some(), "{first:?}");
    // Within the hold, nothing more is sent (whether a cache answers from
    // its own backoff or asks the tier).
    let second = together(&replicas, |r| r.burst(5));
    assert!(second.iter().flatten().all(Result::is_err));
    assert_eq!(servers.token_requests(), 1, "nothing sent during the hold");

    // The endpoint recovers and the hold ends (here: by hand, and with
    // processes that start now, since the held failure told these caches to
    // come back in a minute): one request serves the fleet.
    servers.set_mode(Mint::Ok);
    redis.query::<()>(redis::cmd("DEL").arg("{11.fleet-tests}:failure"));
    let restarted = fleet(4, &servers, &redis.url(), |t| t.failure_hold(S(60)));
    all_ok(&together(&restarted, |r| r.burst(5)));
    assert_eq!(servers.token_requests(), 2);
}

#[test]
fn redis_holds_nothing_in_the_clear_and_only_under_its_namespace() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    let replicas = fleet(2, &servers, &redis.url(), |t| t);
    all_ok(&together(&replicas, |r| r.burst(3)));
    let dump = redis.dump();
    assert!(!dump.is_empty());
    for (key, values) in &dump {
        assert!(key.starts_with("{11.fleet-tests}:"), "{key}");
        for value in values {
            assert!(
                !value.windows(5).any(|w| w == b"tok-1"),
                "{key} holds the token in the clear"
            );
        }
    }
    let ttl = redis.pttl("{11.fleet-tests}:token");
    assert!(
        (1..=60_000).contains(&ttl),
        "the entry expires with the token: {ttl} ms left"
    );
}

#[test]
fn encryption_keys_rotate_without_token_requests() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(10));
    let url = redis.url();
    // Step 1 of a rotation: every process can open entries sealed with the
    // new key k2 before any process seals with it.
    let old = Replica::new("old", &servers, &url, |t| t, |c| c);
    let ready = Replica::new(
        "ready",
        &servers,
        &url,
        |t| t.decryption_key(key("k2", 2)),
        |c| c,
    );
    // Step 2: processes seal with k2, still opening k1 entries.
    let rotated = Replica::new(
        "rotated",
        &servers,
        &url,
        |t| t.encryption_key(key("k2", 2)).decryption_key(key("k1", 1)),
        |c| c,
    );
    let replicas = [old, ready, rotated];

    all_ok(&[replicas[0].runtime.block_on(replicas[0].burst(1))]);
    all_ok(&together(&replicas[1..], |r| r.burst(1)));
    assert_eq!(
        servers.token_requests(),
        1,
        "k1's entry was read by all three"
    );

    // The rotated process writes the next token, sealed with k2; the
    // process given k2 to open reads it.
    servers.revoke("tok-1");
    all_ok(&[replicas[2].runtime.block_on(replicas[2].burst(1))]);
    assert_eq!(servers.token_requests(), 2);
    all_ok(&[replicas[1].runtime.block_on(replicas[1].burst(1))]);
    assert_eq!(
        servers.token_requests(),
        2,
        "k2's entry was read with k2 as a decryption key"
    );
    assert_eq!(replicas[1].tier.stats().served_shared, 2);

    // A process that skipped step 1 cannot open it: it fetches for itself
    // (and says so) rather than overwrite what the others share.
    all_ok(&[replicas[0].runtime.block_on(replicas[0].burst(1))]);
    assert_eq!(servers.token_requests(), 3);
    assert_eq!(replicas[0].tier.stats().fallbacks, 1);
    let entry: Vec<Vec<u8>> =
        redis.query(redis::cmd("HMGET").arg("{11.fleet-tests}:token").arg("kid"));
    assert_eq!(
        entry,
        vec![b"k2".to_vec()],
        "the entry is still the one sealed with k2"
    );
}

#[test]
fn a_fleet_of_processes_makes_one_token_request() {
    let redis = RedisServer::start();
    let servers = Servers::start(S(60), MS(300));
    let mut members: Vec<Member> = (0..3)
        .map(|i| {
            servers
                .member_orders(&redis, &format!("p{i}"), 20, S(5))
                .spawn("fleet_member")
        })
        .collect();
    let reports: Vec<_> = members.iter_mut().map(Member::report).collect();

    assert_eq!(
        servers.token_requests(),
        1,
        "one token request for 3 processes: {reports:?}"
    );
    for report in &reports {
        assert_eq!(
            (report["ok"], report["errors"], report["fetches"]),
            (20, 0, 1),
            "{report:?}"
        );
    }
    assert_eq!(reports.iter().map(|r| r["leases"]).sum::<u64>(), 1);
    assert_eq!(reports.iter().map(|r| r["served"]).sum::<u64>(), 2);
    assert_eq!(servers.senders()["tok-1"].len(), 3);
}

#[test]
fn the_redis_password_and_the_tokens_never_show() {
    use tower_bearer::shared_tier::SharedTier;
    use tower_bearer::{from_fn, AccessToken, TokenCache};

    const PASSWORD: &str = "pw-5ecret-value";
    const WRONG: &str = "pw-wr0ng-value";
    const TOKEN: &str = "tok-5ecret-value";
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let url = |password: &str| format!("redis://:{password}@127.0.0.1:{}", redis.port());

    let (captured, _guard) = Captured::start(Level::TRACE, FmtSpan::NONE);
    // A runtime on this thread, so that every event is captured.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let source = || from_fn(|| async { Ok(AccessToken::new(TOKEN).with_expires_in(S(60))) });
    let mut shown = Vec::new();

    let right = SharedTier::builder(url(PASSWORD))
        .encryption_key(key("k1", 1))
        .build(source())
        .unwrap();
    let wrong = SharedTier::builder(url(WRONG))
        .encryption_key(key("k1", 1))
        .build(source())
        .unwrap();
    shown.push(format!("{right:?} {wrong:?}"));
    shown.push(format!(
        "{:?}",
        SharedTier::builder(url(PASSWORD)).encryption_key(key("k1", 1))
    ));
    let refused = SharedTier::builder(format!("redis://:{PASSWORD}@127.0.0.1:notaport"))
        .encryption_key(key("k1", 1))
        .build(source())
        .unwrap_err();
    shown.push(format!("{refused:?} {refused}"));

    runtime.block_on(async {
        // The right password: shared through Redis.
        let cache = TokenCache::new(right.clone());
        cache.acquire().await.unwrap();
        assert_eq!(right.stats().leases, 1);
        // The wrong one: Redis refuses; the fetch falls back, and says why.
        let cache = TokenCache::new(wrong.clone());
        cache.acquire().await.unwrap();
        assert_eq!(wrong.stats().fallbacks, 1);
    });
    drop(_guard);

    let logs = captured.text();
    assert!(
        logs.contains("Redis failed"),
        "the fallback is logged:\n{logs}"
    );
    shown.push(logs);
    for text in &shown {
        for secret in [PASSWORD, WRONG, TOKEN] {
            assert!(!text.contains(secret), "{secret} shown in:\n{text}");
        }
    }
}

/// Defect 8: `rediss://` with a certificate from the test's own CA; the
/// password stays out of every `Debug` and log line.
#[test]
fn tls_to_redis_with_a_password_never_shown() {
    use support::tls::Ca;
    use tower_bearer::shared_tier::SharedTier;
    use tower_bearer::{from_fn, AccessToken, TokenCache};

    const PASSWORD: &str = "tls-pa55word-value";
    let ca = Ca::new("fleet test CA");
    let (redis, tls_port) = RedisServer::start_tls(&ca, &["--requirepass", PASSWORD]);
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{tls_port}");
    let (captured, _guard) = Captured::start(Level::TRACE, FmtSpan::NONE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tier = |ca_pem: &str| {
        SharedTier::builder(url.clone())
            .namespace("fleet-tests")
            .encryption_key(key("k1", 1))
            .redis_timeout(S(10))
            .tls_root_certificate(ca_pem.as_bytes().to_vec())
            .build(from_fn(|| async {
                Ok(AccessToken::new("over-tls").with_expires_in(S(60)))
            }))
            .unwrap()
    };
    let trusted = tier(&ca.pem);
    runtime
        .block_on(TokenCache::new(trusted.clone()).acquire())
        .unwrap();
    assert_eq!((trusted.stats().leases, trusted.stats().fallbacks), (1, 0));
    assert_eq!(redis.keys(), ["{11.fleet-tests}:token"]);
    let reader = tier(&ca.pem);
    runtime
        .block_on(TokenCache::new(reader.clone()).acquire())
        .unwrap();
    assert_eq!(reader.stats().served_shared, 1);

    // A server certificate from another CA is refused: the tier falls back
    // (and says why), it never talks to it.
    let stranger = tier(&Ca::new("another CA").pem);
    runtime
        .block_on(TokenCache::new(stranger.clone()).acquire())
        .unwrap();
    assert_eq!(
        (stranger.stats().leases, stranger.stats().fallbacks),
        (0, 1)
    );
    drop(_guard);
    let shown = format!("{trusted:?} {stranger:?} {}", captured.text());
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("rediss://[redacted]@127.0.0.1"), "{shown}");
}
