//! The cache's lifecycle in real deployments: runtimes that come and go,
//! sources that hand out tokens built earlier, idle tokens, tiny lifetimes,
//! APIs that revoke some fresh tokens or reject them all, oversized tokens.
//!
//! Each test here failed before the cache was reworked for it; the comment on
//! each says what happened then.

mod support;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use support::api::{get, Api, ApiMode};
use support::token_endpoint::{http_client, TokenEndpoint};
use tokio::runtime::Runtime;
use tokio::time::sleep;
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};
use tower_bearer::{
    from_fn, AccessToken, BearerAuthLayer, CacheError, ErrorKind, TokenCache, TokenError,
};

const HOUR: Duration = Duration::from_secs(3600);

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

/// Polls `future` once and drops it, as a `select!` whose other branch won
/// does, or `now_or_never`.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(NoopWaker));
    pin!(future).poll(&mut Context::from_waker(&waker))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A source minting `tok-1`, `tok-2`, … that live `lifetime`; counts its calls.
fn minting(lifetime: Duration) -> (Arc<AtomicUsize>, impl tower_bearer::TokenSource) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let source = from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(AccessToken::new(format!("tok-{n}")).with_expires_in(lifetime)) }
    });
    (calls, source)
}

fn cache_error(err: &TokenError) -> Option<&CacheError> {
    err.cause()?.downcast_ref::<CacheError>()
}

// ---------------------------------------------------------------------------
// 1. A fetch whose task never runs strands nothing
// ---------------------------------------------------------------------------

/// Before: `tokio::spawn` panicked outside a runtime after the in-flight slot
/// was taken, and every later caller, on any runtime, failed with "token fetch
/// ended without a result", forever.
#[test]
fn a_cache_used_outside_a_runtime_fails_fast_then_works_inside_one() {
    let (calls, source) = minting(HOUR);
    let cache = TokenCache::new(source);

    let outside = std::panic::catch_unwind(AssertUnwindSafe(|| poll_once(cache.token())));
    let Ok(Poll::Ready(Err(err))) = outside else {
        panic!("outside a runtime: a typed error at once, no panic");
    };
    assert_eq!(cache_error(&err), Some(&CacheError::NoRuntime));
    assert_eq!(cache.stats().fetches, 0, "nothing was started");

    runtime().block_on(async {
        assert_eq!(cache.token().await.unwrap().secret(), "tok-1");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Before: the fetch task was spawned on the first poll, its runtime shut
/// down before it ever ran, and the slot it had taken was never freed.
#[test]
fn a_request_polled_once_then_its_runtime_shut_down_strands_nothing() {
    let (calls, source) = minting(HOUR);
    let layer = BearerAuthLayer::new(source);
    let cache = layer.cache().clone();
    let api = service_fn(|req: Request<Full<Bytes>>| async move {
        let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
        Ok::<_, std::convert::Infallible>(Response::new(auth))
    });
    let client = layer.layer(api);

    let first = runtime();
    first.block_on(async {
        let request = Request::get("http://127.0.0.1/")
            .body(Full::default())
            .unwrap();
        // The other branch of a `select!` won: polled once, then dropped.
        assert!(poll_once(client.clone().oneshot(request)).is_pending());
    });
    drop(first);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the fetch task never ran");

    runtime().block_on(async {
        let request = Request::get("http://127.0.0.1/")
            .body(Full::default())
            .unwrap();
        let response = client.oneshot(request).await.unwrap();
        assert_eq!(response.body(), "Bearer tok-1");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        cache.stats().fetches,
        2,
        "the abandoned fetch, then one more"
    );
}

/// Before: a fetch spawned while its runtime was shutting down was dropped
/// unrun, and its slot with it was stranded.
#[test]
fn a_fetch_started_while_a_runtime_shuts_down_strands_nothing() {
    struct FetchOnDrop(TokenCache);

    impl Drop for FetchOnDrop {
        fn drop(&mut self) {
            // Dropped by the runtime's shutdown, inside its context.
            let _ = poll_once(self.0.token());
        }
    }

    let (calls, source) = minting(HOUR);
    let cache = TokenCache::new(source);
    let closing = runtime();
    let guard = FetchOnDrop(cache.clone());
    closing.block_on(async move {
        tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
    });
    drop(closing);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    runtime().block_on(async {
        assert_eq!(cache.token().await.unwrap().secret(), "tok-1");
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// 2. Tokens built earlier: no refresh storm
// ---------------------------------------------------------------------------

/// Before: the schedule counted from when the token object was built, so a
/// token handed out again was due for refresh on arrival: 60,000 to 150,000
/// fetches a second.
#[tokio::test(start_paused = true)]
async fn a_source_handing_out_a_token_built_earlier_causes_no_refresh_storm() {
    // A sidecar keeps one token with a minute of life and hands out clones;
    // another hands out whatever a `watch` channel holds.
    let kept = AccessToken::new("kept").with_expires_in(Duration::from_secs(60));
    let kept_calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&kept_calls);
    let kept_cache = TokenCache::new(from_fn(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let token = kept.clone();
        async move { Ok(token) }
    }));
    let (tx, rx) = tokio::sync::watch::channel(
        AccessToken::new("watched").with_expires_in(Duration::from_secs(60)),
    );
    let watched_calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&watched_calls);
    let watched_cache = TokenCache::new(from_fn(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let token = rx.borrow().clone();
        async move { Ok(token) }
    }));

    // The tokens are 50 s old when the caches first ask; then a request every
    // 100 ms for 20 s, past their expiry.
    sleep(Duration::from_secs(50)).await;
    let mut served = 0;
    for _ in 0..200 {
        for cache in [&kept_cache, &watched_cache] {
            if cache.token().await.is_ok() {
                served += 1;
            }
        }
        sleep(Duration::from_millis(100)).await;
    }
    // Until the expiry (10 s) every request is served; near the end, each
    // fetch that brings back the same token counts as failed and backs off.
    assert!(served >= 2 * 100, "served: {served}");
    for calls in [&kept_calls, &watched_calls] {
        let calls = calls.load(Ordering::SeqCst);
        assert!((3..=12).contains(&calls), "fetches in 20 s: {calls}");
    }

    // The sidecar gets a new token: the next use past the backoff takes it.
    tx.send_replace(AccessToken::new("renewed").with_expires_in(HOUR));
    sleep(Duration::from_secs(40)).await;
    assert_eq!(watched_cache.token().await.unwrap().secret(), "renewed");
}

// ---------------------------------------------------------------------------
// 3. Expiry and refresh-ahead from whichever runtime reads the cache
// ---------------------------------------------------------------------------

/// Before: a timer task on the runtime that fetched the token marked it stale;
/// once that runtime was dropped, later runtimes sent the expired token.
///
/// This test runs on the real clock (about 4 s): each runtime has a clock of
/// its own when paused, so only real time is shared by all of them.
#[test]
fn one_cache_serves_six_runtimes_in_turn_without_sending_an_expired_token() {
    // The servers live on a runtime of their own for the whole test.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tokens, api) = servers.block_on(async {
        let tokens = TokenEndpoint::start(Duration::from_secs(2), Duration::ZERO).await;
        let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
        (tokens, api)
    });
    let layer = BearerAuthLayer::new(tokens.source());
    let cache = layer.cache().clone();

    // Six runtimes, one after the other, each dropped after 0.6 s of
    // requests every 50 ms: 3.6 s against tokens that live 2 s.
    let mut id = 0;
    for _ in 0..6 {
        runtime().block_on(async {
            let client = ServiceBuilder::new()
                .layer(layer.clone())
                .service(http_client());
            for _ in 0..12 {
                id += 1;
                let response = client.clone().oneshot(get(&api.url("/"), id)).await;
                assert_eq!(response.unwrap().status(), StatusCode::OK);
                sleep(Duration::from_millis(50)).await;
            }
        });
    }
    let stats = cache.stats();
    assert_eq!(api.rejected(), 0, "no expired token was sent: {stats:?}");
    assert!(stats.refreshes_ahead >= 1, "refreshed ahead: {stats:?}");
    assert_eq!(stats.fetch_failures, 0, "{stats:?}");
}

// ---------------------------------------------------------------------------
// 4. Idle tokens: no refresh, no task
// ---------------------------------------------------------------------------

/// Before: each token had a timer task that refreshed it ahead of expiry
/// whether or not anyone used it: 1,000 idle caches, 1,000 token requests an
/// hour and 1,000 tasks.
#[tokio::test(start_paused = true)]
async fn idle_tokens_are_not_refreshed_and_cost_no_task() {
    const CACHES: usize = 1000;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let calls = Arc::new(AtomicUsize::new(0));
    let caches: Vec<_> = (0..CACHES)
        .map(|_| {
            let counter = Arc::clone(&calls);
            TokenCache::new(from_fn(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok(AccessToken::new("idle").with_expires_in(HOUR)) }
            }))
        })
        .collect();
    for cache in &caches {
        cache.token().await.unwrap();
    }
    tokio::task::yield_now().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        baseline,
        "a cached token costs no task"
    );

    // One idle hour (and then some): nobody uses the tokens, nobody fetches.
    sleep(HOUR + Duration::from_secs(60)).await;
    assert_eq!(calls.load(Ordering::SeqCst), CACHES);

    // The next use finds each token expired and fetches, once per cache.
    for cache in &caches {
        cache.token().await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2 * CACHES);
}

/// A token in use is refreshed ahead of expiry by its first use in the last
/// part of its life; callers never wait for it.
#[tokio::test(start_paused = true)]
async fn a_token_in_use_is_refreshed_ahead_on_use() {
    let (calls, source) = minting(Duration::from_secs(60));
    let cache = TokenCache::builder(source).refresh_jitter(0.0).build();
    assert_eq!(cache.token().await.unwrap().secret(), "tok-1");
    // The refresh-ahead window of a 60 s token opens at 40.5 s (the last
    // quarter of its 54 s usable life).
    sleep(Duration::from_secs(40)).await;
    assert_eq!(
        cache.current().unwrap().generation(),
        cache.acquire().await.unwrap().generation()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    sleep(Duration::from_secs(1)).await;
    // This use is served tok-1 and starts the refresh.
    assert_eq!(cache.token().await.unwrap().secret(), "tok-1");
    tokio::task::yield_now().await;
    assert_eq!(cache.token().await.unwrap().secret(), "tok-2");
    let stats = cache.stats();
    assert_eq!(
        (stats.fetches, stats.refreshes_ahead, stats.waits),
        (2, 1, 1)
    );
}

// ---------------------------------------------------------------------------
// 5. Tiny lifetimes: no loop
// ---------------------------------------------------------------------------

/// Before: a lifetime of 1 ms, 50 ms or 1e-12 s looped in the background:
/// 1,400, 86 and more fetches in 3 idle seconds.
#[tokio::test(start_paused = true)]
async fn tiny_lifetimes_cause_no_background_fetch_and_a_bounded_rate() {
    let lifetimes = [
        Duration::from_millis(1),
        Duration::from_millis(50),
        Duration::from_secs_f64(1e-12),
        Duration::ZERO,
    ];
    for lifetime in lifetimes {
        let (calls, source) = minting(lifetime);
        let cache = TokenCache::new(source);
        let _ = cache.token().await;
        sleep(Duration::from_secs(3)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "idle, {lifetime:?}");

        // In use, a request every 10 ms for 3 s: each token arrives with too
        // little life, so each fetch counts as failed and the next backs off
        // (250 ms doubling, jittered to no less than half).
        for _ in 0..300 {
            let _ = cache.token().await;
            sleep(Duration::from_millis(10)).await;
        }
        let calls = calls.load(Ordering::SeqCst);
        assert!((2..=7).contains(&calls), "in use, {lifetime:?}: {calls}");
    }
}

// ---------------------------------------------------------------------------
// 6. Rejections weighed: partial revocation, no cool-down on bad luck
// ---------------------------------------------------------------------------

/// An API that introspects every token revokes some fresh ones on first use.
///
/// Before: once a replacement token was rejected, requests in the cool-down
/// window went out with that already-rejected token and its 401 came back
/// without a retry.
#[tokio::test(start_paused = true)]
async fn fresh_tokens_revoked_on_first_use_are_replaced_and_never_sent_again() {
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    // Pacing (a later test) stays out of the way: every replacement at once.
    let layer = BearerAuthLayer::from_cache(
        TokenCache::builder(tokens.source())
            .rejections_before_pacing(100)
            .build(),
    );
    let cache = layer.cache().clone();
    let client = ServiceBuilder::new().layer(layer).service(http_client());
    let send = |id: usize| client.clone().oneshot(get(&api.url("/"), id));

    assert_eq!(send(0).await.unwrap().status(), StatusCode::OK);
    // tok-1 is revoked after use; tok-2 and tok-3 on their first use.
    for token in ["tok-1", "tok-2", "tok-3", "tok-5"] {
        tokens.revoke(token);
    }
    let mut statuses = Vec::new();
    for id in 1..=6 {
        statuses.push(send(id).await.unwrap().status().as_u16());
    }
    // 1: tok-1 rejected, replayed with tok-2, rejected: the 401 comes back
    //    after a retry whose fresh token was itself revoked.
    // 2: tok-3 (fetched when the retry was rejected) rejected, replayed with
    //    tok-4: OK.
    // 3-6: tok-4, accepted.
    assert_eq!(statuses, [401, 200, 200, 200, 200, 200]);
    let seen = api.seen();
    for token in ["tok-1", "tok-2", "tok-3"] {
        let sent = seen
            .iter()
            .filter(|a| **a == format!("Bearer {token}"))
            .count();
        let expected = if token == "tok-1" { 2 } else { 1 };
        assert_eq!(sent, expected, "{token} is never sent after its rejection");
    }
    assert_eq!(api.max_attempts(), 2);
    let stats = cache.stats();
    assert_eq!(
        (
            stats.fetches,
            stats.invalidations,
            stats.retries,
            stats.paced
        ),
        (4, 3, 2, 0),
        "{stats:?}"
    );

    // tok-4 is revoked after use, tok-5 on first use: tok-6 serves.
    tokens.revoke("tok-4");
    assert_eq!(send(7).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(send(8).await.unwrap().status(), StatusCode::OK);
    assert_eq!(cache.stats().paced, 0);
}

/// While replacements are paced, a caller holding a rejection learns when
/// the next one will be ([`CacheError::ReplacementPaced`]) and returns its
/// rejection; every other caller gets the rejected token, which has not
/// expired, so that the API answers; when the pace is over the replacement
/// is made, and a token that lives past the pace after an acceptance ends
/// the run.
#[tokio::test(start_paused = true)]
async fn replacements_are_paced_and_the_rejected_token_is_served_meanwhile() {
    let (calls, source) = minting(HOUR);
    let cache = TokenCache::new(source);
    let mut token = cache.acquire().await.unwrap();
    // Three replacements at once.
    for replacement in 1..=3 {
        token = cache.replace(token.generation()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1 + replacement);
    }
    // The fourth waits 250 ms after the third.
    let err = cache.replace(token.generation()).await.unwrap_err();
    assert_eq!(
        cache_error(&err),
        Some(&CacheError::ReplacementPaced {
            replacements_in_a_row: 3
        })
    );
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
    let served = cache.acquire().await.unwrap();
    assert_eq!(served.generation(), token.generation(), "the token at hand");
    assert_eq!(cache.current().unwrap().generation(), token.generation());
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(cache.stats().paced, 1);

    sleep(Duration::from_millis(250)).await;
    let fourth = cache.acquire().await.unwrap();
    assert_ne!(fourth.generation(), token.generation());
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // The fifth waits 500 ms.
    let err = cache.replace(fourth.generation()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_millis(500)));
    sleep(Duration::from_millis(500)).await;
    let fifth = cache.acquire().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 6);

    // Accepted, and in use for longer than the pace: its rejection starts a
    // new run, replaced at once.
    cache.accepted(fifth.generation());
    sleep(Duration::from_secs(1)).await;
    let sixth = cache.replace(fifth.generation()).await.unwrap();
    assert_ne!(sixth.generation(), fifth.generation());
    assert_eq!(calls.load(Ordering::SeqCst), 7);
}

/// Accepted and then rejected at once, again and again (a gateway answering
/// 401 at random): the run goes on, and the replacements are paced.
#[tokio::test(start_paused = true)]
async fn stray_rejections_of_accepted_tokens_are_paced_too() {
    let (calls, source) = minting(HOUR);
    let cache = TokenCache::new(source);
    let mut token = cache.acquire().await.unwrap();
    for _ in 0..100 {
        cache.accepted(token.generation());
        match cache.replace(token.generation()).await {
            Ok(fresh) => token = fresh,
            Err(_) => token = cache.acquire().await.unwrap(),
        }
    }
    // The first, then three at once; no time passes, so the rest are paced.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(cache.stats().paced, 97);
}

// ---------------------------------------------------------------------------
// 9. Oversized tokens
// ---------------------------------------------------------------------------

/// Before: a 1 MB token was accepted, and every request got `431` for the
/// token's whole life.
#[tokio::test(start_paused = true)]
async fn an_oversized_token_is_refused_and_never_sent() {
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let api = Api::start(ApiMode::CheckTokens(tokens)).await;
    let calls = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&calls);
    let layer = BearerAuthLayer::new(from_fn(move || {
        *counter.lock().unwrap() += 1;
        async { Ok(AccessToken::new("x".repeat(1 << 20)).with_expires_in(HOUR)) }
    }));
    let client = ServiceBuilder::new().layer(layer).service(http_client());

    for id in 0..3 {
        let err = client
            .clone()
            .oneshot(get(&api.url("/"), id))
            .await
            .expect_err("no request goes out with the token");
        let err = err.token_error().unwrap();
        assert_eq!(
            cache_error(err),
            Some(&CacheError::TokenTooLarge {
                len: 1 << 20,
                max: 16 * 1024
            })
        );
        assert!(err.is_permanent());
    }
    assert_eq!(api.requests(), 0);
    assert_eq!(
        *calls.lock().unwrap(),
        1,
        "a permanent error backs off fully"
    );
}

// ---------------------------------------------------------------------------
// The source learns which token it replaces
// ---------------------------------------------------------------------------

/// A source shared with other processes needs to know which token a server
/// rejected, to drop it from the shared store only if the store still holds it.
#[tokio::test(start_paused = true)]
async fn after_a_rejection_the_source_is_told_which_token_it_replaces() {
    #[derive(Clone, Default)]
    struct Recording {
        minted: Arc<AtomicUsize>,
        replaced: Arc<Mutex<Vec<String>>>,
    }

    impl tower_bearer::TokenSource for Recording {
        async fn fetch(&self) -> Result<AccessToken, TokenError> {
            let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(AccessToken::new(format!("tok-{n}")).with_expires_in(HOUR))
        }

        async fn fetch_replacing(&self, rejected: &AccessToken) -> Result<AccessToken, TokenError> {
            let rejected = rejected.secret().to_owned();
            self.replaced.lock().unwrap().push(rejected);
            self.fetch().await
        }
    }

    let source = Recording::default();
    let cache = TokenCache::new(source.clone());
    let first = cache.acquire().await.unwrap();
    // Two rejections of the same token: one replacement, told about tok-1.
    let second = cache.replace(first.generation()).await.unwrap();
    let again = cache.replace(first.generation()).await.unwrap();
    assert_eq!(second.generation(), again.generation());
    assert_eq!(second.header_value(), "Bearer tok-2");
    assert_eq!(*source.replaced.lock().unwrap(), ["tok-1"]);
    assert_eq!(source.minted.load(Ordering::SeqCst), 2);
}
