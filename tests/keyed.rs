//! The keyed (multi-tenant) token cache: every single-token guarantee per
//! key, isolation between keys, bounded memory with exact fetch counts under
//! churn, one token endpoint protected across keys (in-flight limit, shared
//! pauses), cancellation, labels and stats; and where a key's source comes
//! from: a factory that may fail (a typed error, nothing kept, a backoff per
//! key, bogus keys within a bound, never under a lock another key waits on)
//! or `insert` (evicted and inserted again like any key).
//!
//! Sources are either `from_fn` closures that count their fetches per key, or
//! the client-credentials grant against the loopback stand-in for Glue of
//! `examples/keyed_per_workspace.rs` (compiled in here as it is), which records
//! the workspace of every token it issues and how many token requests it
//! served at once. Time is tokio's paused clock; every caller runs under a
//! timeout so that a hang fails the test.

#[path = "../examples/keyed_per_workspace.rs"]
#[allow(dead_code)]
mod keyed_per_workspace;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keyed_per_workspace::{workspace_tokens, Fixture, Workspace};
use tower::{Layer, ServiceExt};
use tower_bearer::cache::EndpointGate;
use tower_bearer::keyed::{KeyedTokenCache, KeyedTokenCacheBuilder, SourceError};
use tower_bearer::oauth2::{ExchangeError, OAuth2Error};
use tower_bearer::{
    from_fn, AccessToken, BearerAuthError, BearerAuthLayer, CacheError, StaticToken, TokenError,
    TokenSource,
};

/// How long one caller may take before the test calls it a hang (virtual time).
const CALL_BOUND: Duration = Duration::from_secs(600);
const HOUR: Duration = Duration::from_secs(3600);

async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_BOUND, call)
        .await
        .expect("a caller hung")
}

/// Fetches per key, counted by the sources a factory makes.
#[derive(Clone, Default)]
struct Fetches(Arc<Mutex<HashMap<String, usize>>>);

impl Fetches {
    fn of(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }

    /// Counts one more for `key`; returns the count.
    fn bump(&self, key: &str) -> usize {
        let mut counts = self.0.lock().unwrap();
        let n = counts.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }

    /// A source that mints `name/1`, `name/2`, … (counting on from earlier
    /// sources of the same name) after `latency`, each valid for `lifetime`.
    fn source(&self, name: &str, latency: Duration, lifetime: Duration) -> impl TokenSource {
        let (fetches, name) = (self.clone(), name.to_owned());
        from_fn(move || {
            let token = format!("{name}/{}", fetches.bump(&name));
            async move {
                tokio::time::sleep(latency).await;
                Ok(AccessToken::new(token).with_expires_in(lifetime))
            }
        })
    }

    /// A keyed cache whose factory makes [`source`](Self::source)s named
    /// after their key.
    fn cache(
        &self,
        latency: Duration,
        lifetime: Duration,
        tune: impl FnOnce(KeyedTokenCacheBuilder<String>) -> KeyedTokenCacheBuilder<String>,
    ) -> KeyedTokenCache<String> {
        let fetches = self.clone();
        tune(KeyedTokenCache::builder(move |key: &String| {
            fetches.source(key, latency, lifetime)
        }))
        .build()
    }
}

fn key(n: usize) -> String {
    format!("k{n}")
}

/// The key a token minted by [`Fetches::cache`] belongs to.
fn owner(header: &http::HeaderValue) -> String {
    let value = header.to_str().unwrap();
    let token = value.strip_prefix("Bearer ").unwrap();
    token.split('/').next().unwrap().to_owned()
}

// ---------------------------------------------------------------------------
// Every single-token guarantee, per key
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn one_fetch_per_key_however_many_callers() {
    let fetches = Fetches::default();
    let cache = fetches.cache(Duration::from_millis(50), HOUR, |b| b);
    let callers: Vec<_> = (0..100)
        .flat_map(|k| (0..20).map(move |_| k))
        .map(|k| {
            let cache = cache.clone();
            tokio::spawn(async move { (k, bounded(cache.acquire(&key(k))).await) })
        })
        .collect();
    for caller in callers {
        let (k, token) = caller.await.unwrap();
        assert_eq!(owner(token.unwrap().header_value()), key(k));
    }
    assert_eq!(fetches.total(), 100);
    assert!((0..100).all(|k| fetches.of(&key(k)) == 1));
    let stats = cache.stats();
    assert_eq!(
        (stats.keys, stats.created, stats.tokens.fetches),
        (100, 100, 100)
    );
    assert_eq!(
        stats.tokens.waits, 2_000,
        "every caller waited for its key's fetch"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejection_on_one_key_never_invalidates_another() {
    let fetches = Fetches::default();
    let cache = fetches.cache(Duration::ZERO, HOUR, |b| b);
    let (a, b) = (key(1), key(2));
    let a1 = bounded(cache.acquire(&a)).await.unwrap();
    let b1 = bounded(cache.acquire(&b)).await.unwrap();
    assert_ne!(
        a1.generation(),
        b1.generation(),
        "generations are unique across keys"
    );

    // A thousand rejections of A's token, some reported against B by mistake.
    for _ in 0..500 {
        cache.reject(&a, a1.generation());
        cache.reject(&b, a1.generation());
    }
    let a2 = bounded(cache.replace(&a, a1.generation())).await.unwrap();
    assert_eq!(a2.header_value(), "Bearer k1/2");
    let b_now = cache.current(&b).unwrap().expect("B's token is untouched");
    assert_eq!(b_now.generation(), b1.generation());
    assert_eq!((fetches.of(&a), fetches.of(&b)), (2, 1));
    assert_eq!(cache.stats_for(&a).unwrap().invalidations, 1);
    assert_eq!(cache.stats_for(&b).unwrap().invalidations, 0);
}

#[test]
fn no_caller_ever_gets_another_keys_token_under_concurrency() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fetches = Fetches::default();
        let cache = fetches.cache(Duration::from_millis(1), HOUR, |b| b.max_keys(40));
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let mut served = 0;
                    for i in 0..500 {
                        let k = key((worker * 7 + i * 13) % 64);
                        let token = bounded(cache.acquire(&k)).await.unwrap();
                        assert_eq!(owner(token.header_value()), k);
                        // Every fifth token is rejected: replaced for its key only.
                        if i % 5 == 0 {
                            let fresh = bounded(cache.replace(&k, token.generation())).await;
                            assert_eq!(owner(fresh.unwrap().header_value()), k);
                        }
                        served += 1;
                    }
                    served
                })
            })
            .collect();
        let mut served = 0;
        for worker in workers {
            served += worker.await.unwrap();
        }
        assert_eq!(served, 4_000);
        assert!(cache.len() <= 40);
    });
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_only_for_keys_in_use_and_a_failed_refresh_keeps_serving() {
    let failing = Arc::new(Mutex::new(Vec::<String>::new()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let cache = {
        let (failing, fetches) = (Arc::clone(&failing), Arc::clone(&fetches));
        KeyedTokenCache::builder(move |key: &String| {
            let (failing, fetches, key) = (Arc::clone(&failing), Arc::clone(&fetches), key.clone());
            from_fn(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let fail = failing.lock().unwrap().contains(&key);
                let token = format!("{key}/{}", fetches.load(Ordering::SeqCst));
                async move {
                    if fail {
                        // A failure of this key's own (not an overload signal).
                        return Err(TokenError::transient("token endpoint answered 500"));
                    }
                    Ok(AccessToken::new(token).with_expires_in(Duration::from_secs(100)))
                }
            })
        })
        .refresh_ahead(Duration::from_secs(20))
        .expiry_skew(Duration::from_secs(5))
        .build()
    };
    let (used, idle, broken) = ("used".to_owned(), "idle".to_owned(), "broken".to_owned());
    for k in [&used, &idle, &broken] {
        bounded(cache.acquire(k)).await.unwrap();
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 3);

    // Into the refresh-ahead window of all three; `broken`'s refresh fails.
    failing.lock().unwrap().push(broken.clone());
    tokio::time::advance(Duration::from_secs(80)).await;
    assert!(cache.current(&used).unwrap().is_some());
    let broken_token = cache
        .current(&broken)
        .unwrap()
        .expect("served while refreshing");
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        5,
        "used and broken refreshed ahead; idle not"
    );
    assert_eq!(cache.stats_for(&idle).unwrap().fetches, 1);
    assert_eq!(cache.stats_for(&used).unwrap().refreshes_ahead, 1);
    assert_eq!(cache.stats_for(&broken).unwrap().fetch_failures, 1);

    // The failure is broken's alone: it keeps serving its valid token, and
    // no other key backs off for it.
    let still = cache
        .current(&broken)
        .unwrap()
        .expect("a valid token is served while refreshes fail");
    assert_eq!(still.generation(), broken_token.generation());
    bounded(cache.acquire(&"fresh".to_owned())).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 6);
    assert_eq!(cache.gate().stats().pauses, 0);
}

// ---------------------------------------------------------------------------
// Bounded memory
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn eviction_under_churn_has_exact_fetch_counts() {
    let fetches = Fetches::default();
    let cache = fetches.cache(Duration::ZERO, HOUR, |b| b.max_keys(100));
    let get = |k: String| {
        let cache = cache.clone();
        async move { bounded(cache.acquire(&k)).await.unwrap() }
    };

    // 100 keys fit.
    for k in 0..100 {
        get(key(k)).await;
    }
    assert_eq!((fetches.total(), cache.len()), (100, 100));
    for k in 0..100 {
        get(key(k)).await;
    }
    assert_eq!(
        fetches.total(),
        100,
        "a working set within capacity fetches once"
    );

    // A cycle over 101 new keys: every lookup misses, as with exact LRU.
    for _ in 0..2 {
        for k in 100..=200 {
            get(key(k)).await;
        }
    }
    assert_eq!(fetches.total(), 100 + 2 * 101);
    assert_eq!(cache.len(), 100);

    // One hot key used between a thousand new ones: never dropped.
    let hot = "hot".to_owned();
    get(hot.clone()).await;
    get(hot.clone()).await;
    for k in 1_000..2_000 {
        get(key(k)).await;
        get(hot.clone()).await;
        assert!(cache.len() <= 100);
    }
    assert_eq!(fetches.of(&hot), 1);
    assert_eq!(fetches.total(), 302 + 1 + 1_000);
    let stats = cache.stats();
    assert_eq!(stats.created, 1_303);
    assert_eq!(stats.evicted, 1_303 - 100);
    assert_eq!(stats.tokens.fetches, 1_303, "totals include evicted keys");
    assert_eq!(stats.keys, 100);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_go_after_the_idle_time_and_not_before() {
    let fetches = Fetches::default();
    let idle = Duration::from_secs(60);
    let cache = fetches.cache(Duration::ZERO, HOUR, |b| b.evict_idle_after(idle));
    let get = |k: &str| {
        let (cache, k) = (cache.clone(), k.to_owned());
        async move { bounded(cache.acquire(&k)).await.unwrap() }
    };
    get("a").await;
    get("b").await;
    tokio::time::advance(Duration::from_secs(50)).await;
    get("a").await; // a is in use; b is not
    tokio::time::advance(Duration::from_secs(11)).await;
    get("c").await; // adding a key looks for idle ones
    let stats = cache.stats();
    assert_eq!((stats.keys, stats.expired), (2, 1));
    assert!(
        cache.peek(&"b".to_owned()).is_none(),
        "b idle for 61 s: dropped"
    );
    assert!(
        cache.peek(&"a".to_owned()).is_some(),
        "a used 11 s ago: kept"
    );
    get("b").await;
    assert_eq!(fetches.of("b"), 2, "a dropped key fetches again");
    assert_eq!(fetches.of("a"), 1);

    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(cache.evict_idle(), 0, "nothing idle for 60 s yet");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(cache.evict_idle(), 3);
    assert!(cache.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_rejection_of_a_dropped_keys_old_token_does_not_touch_its_new_one() {
    let fetches = Fetches::default();
    let cache = fetches.cache(Duration::ZERO, HOUR, |b| b.max_keys(1));
    let (a, b) = (key(1), key(2));
    let old = bounded(cache.acquire(&a)).await.unwrap();
    bounded(cache.acquire(&b)).await.unwrap(); // drops a
    let new = bounded(cache.acquire(&a)).await.unwrap(); // a again, fetched again
    cache.reject(&a, old.generation());
    let replaced = bounded(cache.replace(&a, old.generation())).await.unwrap();
    assert_eq!(replaced.generation(), new.generation());
    assert_eq!((fetches.of(&a), fetches.of(&b)), (2, 1));
    assert!(cache.remove(&a));
    assert!(!cache.remove(&a));
    assert_eq!(cache.stats().removed, 1);
}

// ---------------------------------------------------------------------------
// One token endpoint, many keys (the loopback Glue)
// ---------------------------------------------------------------------------

fn hyper_client() -> keyed_per_workspace::HyperClient {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

#[tokio::test(start_paused = true)]
async fn a_thousand_cold_keys_never_exceed_the_in_flight_limit() {
    let glue = Fixture::start(Duration::from_millis(50)).await;
    let gate = EndpointGate::new(8);
    let cache = workspace_tokens(&glue.base(), &hyper_client(), gate.clone()).unwrap();
    let callers: Vec<_> = (0..1_000)
        .flat_map(|n| [n, n])
        .map(|n| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let workspace = Workspace::numbered(n);
                (workspace.clone(), bounded(cache.acquire(&workspace)).await)
            })
        })
        .collect();
    for caller in callers {
        let (workspace, token) = caller.await.unwrap();
        let token = token.expect("every workspace gets a token");
        let secret = token.header_value().to_str().unwrap()["Bearer ".len()..].to_owned();
        assert_eq!(glue.workspace_of(&secret).as_deref(), Some(&*workspace.0));
    }
    assert_eq!(glue.token_requests(), 1_000, "one per workspace");
    assert_eq!(glue.malformed_token_requests(), 0);
    assert_eq!(
        glue.peak_in_flight(),
        8,
        "the endpoint never served more than 8 at once"
    );
    let stats = gate.stats();
    assert_eq!((stats.admitted, stats.peak_in_flight), (1_000, 8));
    assert_eq!((stats.in_flight, stats.waiting), (0, 0));
    assert_eq!(cache.stats().tokens.fetches, 1_000);
}

fn cache_error(err: &TokenError) -> Option<&CacheError> {
    err.cause().and_then(|c| c.downcast_ref::<CacheError>())
}

fn retry_after_of(err: &TokenError) -> Duration {
    err.retry_after().expect("the error says when to come back")
}

fn is_429(err: &TokenError) -> bool {
    let cause = err.cause();
    matches!(
        cause.and_then(|c| c.downcast_ref::<OAuth2Error>()),
        Some(e) if e.status() == Some(StatusCode::TOO_MANY_REQUESTS)
    ) || matches!(
        cause.and_then(|c| c.downcast_ref::<ExchangeError>()),
        Some(ExchangeError::UnexpectedResponse { status, .. }) if *status == StatusCode::TOO_MANY_REQUESTS
    )
}

#[tokio::test(start_paused = true)]
async fn a_429_on_one_key_delays_every_other_key() {
    let glue = Fixture::start(Duration::ZERO).await;
    let cache = workspace_tokens(&glue.base(), &hyper_client(), EndpointGate::new(8)).unwrap();
    let (warm, hot, cold) = (
        Workspace::numbered(1),
        Workspace::numbered(2),
        Workspace::numbered(3),
    );
    bounded(cache.acquire(&warm)).await.unwrap();

    glue.overload_next(&hot, 5);
    let err = bounded(cache.acquire(&hot)).await.unwrap_err();
    assert!(is_429(&err), "{err:?}");
    assert_eq!(retry_after_of(&err), Duration::from_secs(5));

    // Another key, cold: fails at once, without asking the endpoint, with a
    // typed error of its own (never the other key's text) and the time left.
    tokio::time::advance(Duration::from_secs(2)).await;
    let err = bounded(cache.acquire(&cold)).await.unwrap_err();
    assert_eq!(
        cache_error(&err),
        Some(&CacheError::EndpointPaused),
        "{err:?}"
    );
    assert!(err.is_endpoint_overload());
    assert_eq!(retry_after_of(&err), Duration::from_secs(3));
    assert_eq!(glue.token_requests_for(&cold), 0);
    // A key with a token keeps serving it.
    assert!(cache.current(&warm).unwrap().is_some());

    tokio::time::advance(Duration::from_secs(3)).await;
    bounded(cache.acquire(&cold)).await.unwrap();
    bounded(cache.acquire(&hot)).await.unwrap();
    assert_eq!(glue.token_requests_for(&cold), 1);
    assert_eq!(glue.token_requests_for(&hot), 2);
    assert_eq!(glue.token_requests(), 4);
    assert_eq!(cache.gate().stats().pauses, 1);
}

#[tokio::test(start_paused = true)]
async fn a_fetch_queued_behind_a_429_fails_without_asking() {
    let glue = Fixture::start(Duration::from_millis(10)).await;
    let gate = EndpointGate::new(1);
    let cache = workspace_tokens(&glue.base(), &hyper_client(), gate.clone()).unwrap();
    let (first, queued) = (Workspace::numbered(1), Workspace::numbered(2));
    glue.overload_next(&first, 30);
    let a = tokio::spawn(bounded(cache.acquire(&first)));
    tokio::task::yield_now().await;
    let b = tokio::spawn(bounded(cache.acquire(&queued)));
    assert!(is_429(&a.await.unwrap().unwrap_err()));
    let err = b.await.unwrap().unwrap_err();
    assert_eq!(
        cache_error(&err),
        Some(&CacheError::EndpointPaused),
        "{err:?}"
    );
    assert!(retry_after_of(&err) <= Duration::from_secs(30));
    assert_eq!(glue.token_requests_for(&queued), 0);
    assert_eq!(gate.stats().held_back, 1);
}

#[tokio::test(start_paused = true)]
async fn a_temporarily_unavailable_from_a_plain_source_pauses_every_key() {
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = {
        let calls = Arc::clone(&calls);
        KeyedTokenCache::builder(move |key: &u32| {
            let (calls, key) = (Arc::clone(&calls), *key);
            from_fn(move || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        let busy = OAuth2Error::new(
                            Some(StatusCode::SERVICE_UNAVAILABLE),
                            "temporarily_unavailable",
                        );
                        return Err(busy.into());
                    }
                    Ok(AccessToken::new(format!("t{key}")))
                }
            })
        })
        .gate(
            EndpointGate::builder()
                .pause(Duration::from_secs(2), Duration::from_secs(60))
                .build(),
        )
        .build()
    };
    assert!(bounded(cache.acquire(&1)).await.is_err());
    let err = bounded(cache.acquire(&2)).await.unwrap_err();
    assert_eq!(retry_after_of(&err), Duration::from_secs(2));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "key 2 did not ask");
    tokio::time::advance(Duration::from_secs(2)).await;
    bounded(cache.acquire(&2)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------
// Through BearerAuthLayer: a hyper-util client and the loopback Glue
// ---------------------------------------------------------------------------

type GlueClient = tower_bearer::BearerAuth<
    keyed_per_workspace::HyperClient,
    tower_bearer::replay::CloneBody,
    tower_bearer::classify::DefaultClassifier,
    tower_bearer::keyed::KeyedBy<Workspace, fn(&Request<Full<Bytes>>) -> Option<Workspace>>,
>;

fn workspace_of_request(request: &Request<Full<Bytes>>) -> Option<Workspace> {
    request.extensions().get::<Workspace>().cloned()
}

async fn glue_client(glue: &Fixture) -> (KeyedTokenCache<Workspace>, GlueClient) {
    let http = hyper_client();
    let tokens = workspace_tokens(&glue.base(), &http, EndpointGate::new(8)).unwrap();
    let key: fn(&Request<Full<Bytes>>) -> Option<Workspace> = workspace_of_request;
    let client = BearerAuthLayer::keyed(tokens.clone(), key).layer(http);
    (tokens, client)
}

async fn call(client: &GlueClient, glue: &Fixture, workspace: &Workspace) -> StatusCode {
    let request = keyed_per_workspace::graphql(&glue.base(), workspace);
    bounded(client.clone().oneshot(request))
        .await
        .expect("the call succeeds")
        .status()
}

#[tokio::test(start_paused = true)]
async fn every_request_carries_its_own_workspaces_token() {
    let glue = Fixture::start(Duration::from_millis(5)).await;
    let (tokens, client) = glue_client(&glue).await;
    let calls: Vec<_> = (0..200)
        .flat_map(|n| [n; 5])
        .map(|n| {
            let (client, glue) = (client.clone(), glue.clone());
            tokio::spawn(async move { call(&client, &glue, &Workspace::numbered(n)).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        glue.wrong_workspace(),
        0,
        "no request carried another workspace's token"
    );
    assert_eq!(glue.unknown_token(), 0);
    assert_eq!(glue.api_requests(), 1_000);
    assert_eq!(glue.token_requests(), 200);
    assert_eq!(tokens.stats().tokens.fetches, 200);
    assert!(glue.peak_in_flight() <= 8);
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_workspace_fails_typed_and_is_never_sent() {
    let glue = Fixture::start(Duration::ZERO).await;
    let (tokens, client) = glue_client(&glue).await;
    let mut request = keyed_per_workspace::graphql(&glue.base(), &Workspace::numbered(1));
    request.extensions_mut().remove::<Workspace>();
    let err = bounded(client.oneshot(request)).await.unwrap_err();
    let BearerAuthError::Token(err) = err else {
        panic!("not a token error: {err}");
    };
    assert_eq!(
        err.cause().and_then(|c| c.downcast_ref::<CacheError>()),
        Some(&CacheError::KeyMissing)
    );
    assert!(err.is_permanent());
    assert_eq!(glue.api_requests(), 0, "never sent");
    assert_eq!(glue.token_requests(), 0);
    assert!(tokens.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_is_replaced_and_replayed_for_its_workspace_only() {
    let glue = Fixture::start(Duration::from_millis(5)).await;
    let (tokens, client) = glue_client(&glue).await;
    let (a, b) = (Workspace::numbered(1), Workspace::numbered(2));
    assert_eq!(call(&client, &glue, &a).await, StatusCode::OK);
    assert_eq!(call(&client, &glue, &b).await, StatusCode::OK);
    let a_token = tokens.current(&a).unwrap().unwrap();
    glue.revoke(&a_token.header_value().to_str().unwrap()["Bearer ".len()..]);

    let calls: Vec<_> = [&a, &b]
        .into_iter()
        .flat_map(|w| std::iter::repeat_n(w.clone(), 10))
        .map(|w| {
            let (client, glue) = (client.clone(), glue.clone());
            tokio::spawn(async move { call(&client, &glue, &w).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        glue.unknown_token(),
        10,
        "A's ten first attempts were refused"
    );
    assert_eq!(
        glue.api_requests(),
        2 + 10 + 10 + 10,
        "each of A's requests replayed once"
    );
    assert_eq!(
        (glue.token_requests_for(&a), glue.token_requests_for(&b)),
        (2, 1)
    );
    let (sa, sb) = (tokens.stats_for(&a).unwrap(), tokens.stats_for(&b).unwrap());
    assert_eq!((sa.invalidations, sa.retries), (1, 10));
    assert_eq!((sb.invalidations, sb.retries), (0, 0));
    assert_eq!(glue.wrong_workspace(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_replay_and_a_custom_classifier_work_per_key() {
    let glue = Fixture::start(Duration::ZERO).await;
    let http = hyper_client();
    let tokens = workspace_tokens(&glue.base(), &http, EndpointGate::new(8)).unwrap();
    let classified = Arc::new(AtomicUsize::new(0));
    let client = {
        let classified = Arc::clone(&classified);
        BearerAuthLayer::keyed(tokens.clone(), workspace_of_request)
            .no_replay()
            .classifier(move |status: StatusCode, _: &http::HeaderMap| {
                classified.fetch_add(1, Ordering::SeqCst);
                status == StatusCode::UNAUTHORIZED
            })
            .layer(http)
    };
    let (a, b) = (Workspace::numbered(1), Workspace::numbered(2));
    let send = |w: &Workspace| {
        let request = keyed_per_workspace::graphql(&glue.base(), w);
        let client = client.clone();
        async move { bounded(client.oneshot(request)).await.unwrap().status() }
    };
    assert_eq!(send(&a).await, StatusCode::OK);
    assert_eq!(send(&b).await, StatusCode::OK);
    let a_token = tokens.current(&a).unwrap().unwrap();
    glue.revoke(&a_token.header_value().to_str().unwrap()["Bearer ".len()..]);
    // Not replayed: the 401 comes back, and A's next request has a new token.
    assert_eq!(send(&a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&a).await, StatusCode::OK);
    assert_eq!(send(&b).await, StatusCode::OK);
    assert_eq!(classified.load(Ordering::SeqCst), 5);
    assert_eq!(
        (glue.token_requests_for(&a), glue.token_requests_for(&b)),
        (2, 1)
    );
    assert_eq!(tokens.stats_for(&a).unwrap().retries, 0);
}

#[tokio::test(start_paused = true)]
async fn the_example_serves_a_thousand_workspaces_from_one_client() {
    let glue = Fixture::start(Duration::from_millis(20)).await;
    let outcome = keyed_per_workspace::run(&glue, 1_000, 3).await.unwrap();
    assert_eq!((outcome.api_requests, outcome.ok), (3_000, 3_000));
    assert_eq!(outcome.wrong_workspace, 0);
    assert_eq!(outcome.token_requests, 1_000);
    assert_eq!(outcome.peak_token_requests_at_once, 8);
    assert_eq!(outcome.keys_held, 1_000);
}

// ---------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn cancelled_waiters_leak_nothing() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let fetches = Fetches::default();
    let gate = EndpointGate::new(4);
    let cache = fetches.cache(Duration::from_secs(1), HOUR, |b| b.gate(gate.clone()));

    // A thousand cold keys, five callers each, all given up after 10 s:
    // most fetches are still queued at the gate.
    let callers: Vec<_> = (0..1_000)
        .flat_map(|k| (0..5).map(move |_| k))
        .map(|k| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.acquire(&key(k)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    for caller in &callers {
        caller.abort();
    }
    for caller in callers {
        let _ = caller.await;
    }
    assert!(
        gate.stats().waiting > 900,
        "still queued: {:?}",
        gate.stats()
    );

    // The fetches run to the end, once per key, 4 at a time, and take
    // nothing with them when they finish.
    tokio::time::sleep(Duration::from_secs(300)).await;
    let stats = gate.stats();
    assert_eq!(
        (stats.in_flight, stats.waiting, stats.admitted),
        (0, 0, 1_000)
    );
    assert_eq!(stats.peak_in_flight, 4);
    assert_eq!(
        metrics.num_alive_tasks(),
        tasks_before,
        "no task left behind"
    );
    assert_eq!(fetches.total(), 1_000);
    for k in 0..1_000 {
        assert!(
            cache.current(&key(k)).unwrap().is_some(),
            "key {k} got its token"
        );
    }
    assert_eq!(fetches.total(), 1_000, "and kept it");
}

// ---------------------------------------------------------------------------
// Where a key's source comes from: a factory that may fail, or `insert`
// ---------------------------------------------------------------------------

/// What the factory said, if `err` is a factory failure.
fn factory_error(err: &TokenError) -> String {
    match err.cause().and_then(|c| c.downcast_ref::<SourceError>()) {
        Some(SourceError::FactoryFailed(why)) => why.to_string(),
        other => panic!("not a factory failure: {other:?} in {err:?}"),
    }
}

/// A layer over `cache`, keyed by the `String` in each request's extensions,
/// over an API that answers every request and counts them in `sent`.
fn counted_client(
    cache: &KeyedTokenCache<String>,
    sent: &Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = http::Response<Full<Bytes>>,
    Error = BearerAuthError<std::convert::Infallible>,
> + Clone {
    let sent = sent.clone();
    let api = tower::service_fn(move |_: Request<Full<Bytes>>| {
        sent.fetch_add(1, Ordering::SeqCst);
        async { Ok(http::Response::new(Full::default())) }
    });
    let key = |request: &Request<Full<Bytes>>| request.extensions().get::<String>().cloned();
    BearerAuthLayer::keyed(cache.clone(), key).layer(api)
}

/// Keys held, sources made, factory failures, failures remembered.
fn made_and_failed(cache: &KeyedTokenCache<String>) -> (usize, u64, u64, usize) {
    let stats = cache.stats();
    (
        stats.keys,
        stats.created,
        stats.factory_errors,
        stats.failed_keys,
    )
}

fn request_for(key: &str) -> Request<Full<Bytes>> {
    let mut request = Request::get("http://127.0.0.1/")
        .body(Full::default())
        .unwrap();
    request.extensions_mut().insert(key.to_owned());
    request
}

#[tokio::test(start_paused = true)]
async fn a_failing_factory_fails_typed_keeps_nothing_and_is_asked_again_after_its_backoff() {
    let (fetches, asked) = (Fetches::default(), Fetches::default());
    // The tenant's configuration cannot be read for now.
    let unreachable = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let cache = {
        let (fetches, asked, unreachable) = (fetches.clone(), asked.clone(), unreachable.clone());
        KeyedTokenCache::try_builder(move |tenant: &String| {
            asked.bump(tenant);
            if unreachable.load(Ordering::SeqCst) {
                return Err(TokenError::transient("configuration service unreachable"));
            }
            Ok(fetches.source(tenant, Duration::ZERO, HOUR))
        })
        .build()
    };
    let sent = Arc::new(AtomicUsize::new(0));
    let client = counted_client(&cache, &sent);
    let tenant = key(1);

    // The caller gets the factory's error, typed, and when to come back.
    let err = bounded(cache.acquire(&tenant)).await.unwrap_err();
    assert_eq!(factory_error(&err), "configuration service unreachable");
    assert_eq!(
        err.to_string(),
        "the token source for this key could not be made"
    );
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(
        made_and_failed(&cache),
        (0, 0, 1, 1),
        "the key is not kept; its failure is"
    );

    // Until the backoff ends, `current`, `acquire` and the layer answer the
    // same at once, without asking the factory; the request is not sent.
    tokio::time::advance(Duration::from_millis(400)).await;
    let err = cache.current(&tenant).unwrap_err();
    assert_eq!(factory_error(&err), "configuration service unreachable");
    assert_eq!(err.retry_after(), Some(Duration::from_millis(600)));
    let err = bounded(cache.acquire(&tenant)).await.unwrap_err();
    assert_eq!(factory_error(&err), "configuration service unreachable");
    let err = bounded(client.clone().oneshot(request_for(&tenant)))
        .await
        .unwrap_err();
    let err = err.token_error().expect("the API cannot fail");
    assert_eq!(factory_error(err), "configuration service unreachable");
    assert_eq!(sent.load(Ordering::SeqCst), 0, "never sent");
    assert_eq!(asked.of(&tenant), 1, "not asked during the backoff");

    // The backoff over, the next use asks again; failing again, it waits twice as long.
    tokio::time::advance(Duration::from_millis(599)).await;
    assert!(cache.current(&tenant).is_err());
    assert_eq!(asked.of(&tenant), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    let err = cache.current(&tenant).unwrap_err();
    assert_eq!(asked.of(&tenant), 2);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));

    // Mended: after that backoff the factory makes the source and the key is kept.
    unreachable.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(2)).await;
    let response = bounded(client.oneshot(request_for(&tenant))).await;
    assert!(response.is_ok());
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    assert_eq!(asked.of(&tenant), 3);
    assert_eq!(fetches.of(&tenant), 1);
    assert_eq!(made_and_failed(&cache), (1, 1, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn an_inserted_source_is_evicted_and_inserted_again() {
    let fetches = Fetches::default();
    // Sessions of signed-in users: every source comes from a login.
    let sessions = KeyedTokenCache::<String>::without_factory()
        .max_keys(2)
        .build();
    let login = |session: &str, user: &str| {
        sessions.insert(
            session.to_owned(),
            fetches.source(user, Duration::ZERO, HOUR),
        )
    };
    let token_of = |session: &str| {
        let token = sessions.acquire(&session.to_owned());
        async move {
            let token = bounded(token).await?;
            Ok::<_, TokenError>(token.header_value().to_str().unwrap().to_owned())
        }
    };
    login("s1", "alice");
    login("s2", "bob");
    assert_eq!(token_of("s1").await.unwrap(), "Bearer alice/1");
    assert_eq!(token_of("s2").await.unwrap(), "Bearer bob/1");

    // A third session: both were used since the sweep last passed, so both
    // get a second chance and the first in line, s1, goes with its token.
    login("s3", "carol");
    assert!(sessions.peek(&"s1".to_owned()).is_none());
    let err = token_of("s1").await.unwrap_err();
    assert!(matches!(
        err.cause().and_then(|c| c.downcast_ref::<SourceError>()),
        Some(SourceError::NotInserted)
    ));
    assert!(err.is_permanent(), "sign in again");

    // Alice signs in again: her session is back, with a token of its new
    // source; the least recently used session, s2, makes room.
    login("s1", "alice");
    assert_eq!(token_of("s1").await.unwrap(), "Bearer alice/2");
    assert!(sessions.peek(&"s2".to_owned()).is_none());
    // Inserted again while held: the new source and its token replace the old.
    login("s1", "alice");
    assert_eq!(token_of("s1").await.unwrap(), "Bearer alice/3");

    let stats = sessions.stats();
    assert_eq!(
        (stats.keys, stats.inserted, stats.created, stats.evicted),
        (2, 5, 0, 2)
    );
    assert_eq!(stats.tokens.fetches, 4, "alice three times, bob once");
    assert_eq!(fetches.total(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_bound_holds_with_inserted_and_made_keys_mixed() {
    let fetches = Fetches::default();
    let cache = fetches.cache(Duration::ZERO, HOUR, |b| b.max_keys(10));
    // An inserted key used between additions stays, as a made one would.
    cache.insert(
        "hot".to_owned(),
        fetches.source("hot", Duration::ZERO, HOUR),
    );
    for k in 0..100 {
        if k % 2 == 0 {
            cache.insert(key(k), fetches.source(&key(k), Duration::ZERO, HOUR));
        } // odd keys: the factory makes them on first use
        bounded(cache.acquire(&key(k))).await.unwrap();
        bounded(cache.acquire(&"hot".to_owned())).await.unwrap();
        assert!(cache.len() <= 10, "{} keys after key {k}", cache.len());
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.keys, stats.created, stats.inserted, stats.evicted),
        (10, 50, 51, 91)
    );
    assert_eq!(fetches.of("hot"), 1, "never dropped");
    assert_eq!(fetches.total(), 101, "one fetch per key");
}

#[tokio::test(start_paused = true)]
async fn bogus_keys_cost_bounded_memory_and_evict_no_held_key() {
    let cache =
        KeyedTokenCache::try_builder(|tenant: &String| match tenant.strip_prefix("known-") {
            Some(n) => Ok(StaticToken::new(format!("key-{n}"))),
            None => Err(TokenError::permanent("unknown tenant")),
        })
        .max_keys(3)
        .max_failed_keys(5)
        .build();
    for n in 0..3 {
        bounded(cache.acquire(&format!("known-{n}"))).await.unwrap();
    }
    for n in 0..1_000 {
        let err = bounded(cache.acquire(&format!("bogus-{n}")))
            .await
            .unwrap_err();
        assert!(err.is_permanent());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
        assert!(cache.stats().failed_keys <= 5);
    }
    let stats = cache.stats();
    assert_eq!(
        (
            stats.keys,
            stats.evicted,
            stats.factory_errors,
            stats.failed_keys
        ),
        (3, 0, 1_000, 5)
    );
    assert!((0..3).all(|n| cache.peek(&format!("known-{n}")).is_some()));
}

#[test]
fn a_slow_factory_holds_up_no_other_key() {
    use std::sync::mpsc;
    let (entered, slow_entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let (entered, released) = (Mutex::new(entered), Mutex::new(released));
    let cache = KeyedTokenCache::try_builder(move |tenant: &String| {
        if tenant == "slow" {
            // A factory that blocks (a file, a blocking client) until the test lets it go.
            entered.lock().unwrap().send(()).unwrap();
            released.lock().unwrap().recv().unwrap();
        }
        Ok::<_, TokenError>(StaticToken::new(format!("{tenant}-key")))
    })
    .build();

    let slow = std::thread::spawn({
        let cache = cache.clone();
        move || cache.get(&"slow".to_owned()).map(drop)
    });
    slow_entered.recv().unwrap();
    // The slow factory runs, and will until released: another key, on
    // another thread, is made meanwhile.
    let (done, fast_made) = mpsc::channel();
    std::thread::spawn({
        let cache = cache.clone();
        move || done.send(cache.get(&"fast".to_owned()).is_ok()).unwrap()
    });
    // Ordered by the events above; the bound only turns a regression (a
    // lock held while the factory runs) into a failure instead of a hang.
    let made = fast_made
        .recv_timeout(Duration::from_secs(60))
        .expect("another key waited for the slow factory");
    assert!(made);
    assert!(cache.peek(&"fast".to_owned()).is_some());
    assert!(cache.peek(&"slow".to_owned()).is_none(), "still being made");

    release.send(()).unwrap();
    slow.join().unwrap().unwrap();
    assert_eq!(cache.stats().created, 2);
}

// ---------------------------------------------------------------------------
// Observability
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn stats_per_key_and_summed() {
    let fetches = Fetches::default();
    let cache = fetches.cache(Duration::ZERO, HOUR, |b| b);
    for k in 0..3 {
        for _ in 0..=k {
            let token = bounded(cache.acquire(&key(k))).await.unwrap();
            cache.reject(&key(k), token.generation());
        }
    }
    let mut by_key = cache.stats_by_key();
    by_key.sort_by(|a, b| a.0.cmp(&b.0));
    let fetched: Vec<u64> = by_key.iter().map(|(_, s)| s.fetches).collect();
    // Each rejection starts the replacement.
    assert_eq!(fetched, [2, 3, 4]);
    let k2 = cache.stats_for(&key(2)).unwrap();
    assert_eq!((k2.invalidations, k2.paced), (3, 0));
    let total = cache.stats().tokens;
    assert_eq!((total.fetches, total.invalidations, total.paced), (9, 6, 0));
    assert!(cache.stats_for(&key(9)).is_none());
    let debug = format!("{cache:?}");
    assert!(
        debug.contains("keys: 3") && !debug.contains("k1"),
        "{debug}"
    );
}

#[test]
fn without_a_runtime_for_a_fetch_a_key_fails_with_a_typed_error() {
    let cache = KeyedTokenCache::new(|k: &u8| tower_bearer::StaticToken::new(format!("t{k}")));
    let err = std::thread::spawn(move || block_on_without_runtime(cache.acquire(&1)).unwrap_err())
        .join()
        .unwrap();
    let cause = err.cause().and_then(|c| c.downcast_ref::<CacheError>());
    assert_eq!(cause, Some(&CacheError::NoRuntime));
}

/// Polls a future to completion on this thread, outside any tokio runtime.
fn block_on_without_runtime<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}
