//! The core promises of the layer, shown against real servers on 127.0.0.1:
//! single-flight, refresh-ahead, one retry on rejection, backoff, composition.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::api::{get, Api, ApiMode};
use support::token_endpoint::{h2_client, http_client, TokenEndpoint};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bearer::exchange::CallerAuthorization;
use tower_bearer::{
    from_fn, AccessToken, BearerAuthLayer, ErrorKind, StaticToken, TokenCache, TokenError,
};

const LATENCY: Duration = Duration::from_millis(50);
const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_stampede_fetches_once() {
    let tokens = TokenEndpoint::start(HOUR, LATENCY).await;
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let layer = BearerAuthLayer::new(tokens.source());
    let cache = layer.cache().clone();
    let client = ServiceBuilder::new().layer(layer).service(h2_client());

    let calls: Vec<_> = (0..1000)
        .map(|id| tokio::spawn(client.clone().oneshot(get(&api.url("/data"), id))))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    assert_eq!(tokens.attempts(), 1, "one token request for 1,000 callers");
    assert_eq!(cache.stats().fetches, 1);
    assert_eq!(api.requests(), 1000);
    assert_eq!(api.rejected(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_storm_refreshes_once_and_sends_each_request_at_most_twice() {
    let tokens = TokenEndpoint::start(HOUR, LATENCY).await;
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let layer = BearerAuthLayer::new(tokens.source());
    let cache = layer.cache().clone();
    let client = ServiceBuilder::new().layer(layer).service(h2_client());

    // Warm up: tok-1 is cached. Then the server revokes it.
    let warm = client.clone().oneshot(get(&api.url("/"), 0)).await.unwrap();
    assert_eq!(warm.status(), StatusCode::OK);
    tokens.revoke("tok-1");

    let calls: Vec<_> = (1..=1000)
        .map(|id| tokio::spawn(client.clone().oneshot(get(&api.url("/data"), id))))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    let stats = cache.stats();
    assert_eq!(tokens.minted(), 2, "one refresh for 1,000 rejections");
    assert_eq!(stats.invalidations, 1);
    assert_eq!(api.max_attempts(), 2, "each request sent at most twice");
    assert_eq!(stats.retries as usize, api.rejected());
    assert!(api.rejected() >= 1);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_keeps_callers_from_waiting() {
    let lifetime = Duration::from_secs(2);
    let tokens = TokenEndpoint::start(lifetime, LATENCY).await;
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let layer = BearerAuthLayer::new(tokens.source());
    let cache = layer.cache().clone();
    let client = ServiceBuilder::new().layer(layer).service(http_client());

    const WORKERS: usize = 8;
    let started = tokio::time::Instant::now();
    let run_for = Duration::from_secs(20);
    let ok = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let client = client.clone();
            let url = api.url("/steady");
            let ok = Arc::clone(&ok);
            tokio::spawn(async move {
                let mut i = 0;
                while started.elapsed() < run_for {
                    let res = client
                        .clone()
                        .oneshot(get(&url, w * 1_000_000 + i))
                        .await
                        .unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    ok.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }

    let stats = cache.stats();
    // Only the first wave waited: every later token arrived ahead of expiry.
    assert!(stats.waits <= WORKERS as u64, "waits: {}", stats.waits);
    assert!(
        stats.refreshes_ahead >= 9,
        "refreshes ahead: {}",
        stats.refreshes_ahead
    );
    assert_eq!(stats.fetches, stats.refreshes_ahead + 1);
    assert_eq!(
        api.rejected(),
        0,
        "no request went out with an expired token"
    );
    assert!(ok.load(Ordering::Relaxed) > 1000);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_caller_that_started_a_fetch_strands_no_one() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let cache = TokenCache::new(from_fn(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(AccessToken::new("slow").with_expires_in(HOUR))
        }
    }));

    let leader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.token().await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let followers: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());

    // A caller that times out does not cancel the fetch either.
    let impatient = tokio::time::timeout(Duration::from_millis(5), cache.token()).await;
    assert!(impatient.is_err());

    for follower in followers {
        assert_eq!(follower.await.unwrap().unwrap().secret(), "slow");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(cache.token().await.unwrap().secret(), "slow");
}

#[tokio::test(start_paused = true)]
async fn failing_source_backs_off_and_callers_get_typed_errors() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let cache = TokenCache::new(from_fn(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err(TokenError::transient("token endpoint answered 503")) }
    }));
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()))
        .service(tower::service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));

    // 10 requests a second for a minute.
    let mut errors = 0;
    for i in 0..600 {
        let err = client
            .clone()
            .oneshot(get("http://127.0.0.1/", i))
            .await
            .unwrap_err();
        let token_err = err
            .token_error()
            .expect("a token error, not a service error");
        assert_eq!(token_err.kind(), ErrorKind::Transient);
        errors += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(errors, 600);
    let fetched = fetches.load(Ordering::SeqCst);
    // 250 ms doubling to 30 s: about 8 attempts to reach the cap, then one per 30 s.
    assert!(
        (5..=12).contains(&fetched),
        "fetches in a minute: {fetched}"
    );
    assert_eq!(cache.stats().fetches as usize, fetched);
}

#[tokio::test(start_paused = true)]
async fn still_valid_token_is_served_while_refresh_fails_then_recovers() {
    let lifetime = Duration::from_secs(2);
    let tokens = TokenEndpoint::start(lifetime, Duration::ZERO).await;
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let layer = BearerAuthLayer::new(tokens.source());
    let cache = layer.cache().clone();
    let client = ServiceBuilder::new().layer(layer).service(http_client());
    let start = tokio::time::Instant::now();

    let first = client.clone().oneshot(get(&api.url("/"), 0)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    tokens.set_failing(true);

    // Refresh-ahead starts at ~1.35 s and fails; tok-1 stays in use until it expires.
    let mut id = 1;
    while start.elapsed() < Duration::from_millis(1950) {
        let res = client
            .clone()
            .oneshot(get(&api.url("/"), id))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "at {:?}", start.elapsed());
        id += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cache.stats().fetch_failures >= 1);
    assert_eq!(
        api.seen().iter().filter(|a| *a != "Bearer tok-1").count(),
        0
    );

    // Past expiry with the endpoint still down: a typed error, never an
    // unauthenticated request.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = client
        .clone()
        .oneshot(get(&api.url("/"), id))
        .await
        .unwrap_err();
    assert!(err.token_error().unwrap().is_transient());
    let requests_before = api.requests();

    tokens.set_failing(false);
    tokio::time::sleep(Duration::from_secs(31)).await; // past the longest backoff
    let res = client
        .clone()
        .oneshot(get(&api.url("/"), id + 1))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(api.requests(), requests_before + 1);
    assert_eq!(api.seen().last().unwrap(), "Bearer tok-2");
    assert!(tokens.attempts() < 20, "attempts: {}", tokens.attempts());
}

#[tokio::test]
async fn without_replay_a_rejection_is_returned_and_the_next_request_gets_a_fresh_token() {
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let layer = BearerAuthLayer::new(tokens.source()).no_replay();
    let cache = layer.cache().clone();
    let mut client = ServiceBuilder::new().layer(layer).service(http_client());

    let res = client
        .ready()
        .await
        .unwrap()
        .call(get(&api.url("/"), 1))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    tokens.revoke("tok-1");

    let res = client
        .ready()
        .await
        .unwrap()
        .call(get(&api.url("/"), 2))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.attempts_of("2"), 1, "not replayed");
    assert_eq!(cache.stats().retries, 0);
    assert_eq!(cache.stats().invalidations, 1);

    let res = client
        .ready()
        .await
        .unwrap()
        .call(get(&api.url("/"), 3))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(api.seen().last().unwrap(), "Bearer tok-2");
}

#[tokio::test]
async fn forbidden_is_not_retried_and_keeps_the_token() {
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let api = Api::start(ApiMode::Forbidden).await;
    let layer = BearerAuthLayer::new(tokens.source());
    let cache = layer.cache().clone();
    let client = ServiceBuilder::new().layer(layer).service(http_client());

    for id in 0..3 {
        let res = client
            .clone()
            .oneshot(get(&api.url("/admin"), id))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(api.requests(), 3);
    assert_eq!(tokens.minted(), 1);
    assert_eq!(cache.stats().invalidations, 0);
    assert_eq!(cache.stats().retries, 0);
}

#[tokio::test]
async fn a_callers_authorization_is_replaced_by_default() {
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tokens.source()))
        .service(http_client());

    // A forwarded request, with the end user's credentials (twice, even).
    let mut req = get(&api.url("/"), 1);
    req.headers_mut()
        .insert("authorization", "Bearer end-user-session".parse().unwrap());
    req.headers_mut()
        .append("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    let res = client.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(api.seen(), vec!["Bearer tok-1".to_owned()]);

    // A replay after a rejection carries the fresh token, not the caller's.
    tokens.revoke("tok-1");
    let mut req = get(&api.url("/"), 2);
    req.headers_mut()
        .insert("authorization", "Bearer end-user-session".parse().unwrap());
    let res = client.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(api.seen()[1..], ["Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(tokens.minted(), 2);
}

#[tokio::test]
async fn a_request_with_its_own_authorization_is_left_alone_when_asked() {
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let api = Api::start(ApiMode::RejectAll).await;
    let layer =
        BearerAuthLayer::new(tokens.source()).caller_authorization(CallerAuthorization::Keep);
    let client = ServiceBuilder::new().layer(layer).service(http_client());

    let mut req = get(&api.url("/"), 1);
    req.headers_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    let res = client.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.seen(), vec!["Basic dXNlcjpwYXNz".to_owned()]);
    assert_eq!(tokens.attempts(), 0, "no token fetched for it");
    assert_eq!(api.attempts_of("1"), 1, "and its 401 is not ours to retry");
}

/// An API that rejects every token (a wrong audience, a disabled client):
/// each caller gets the API's own 401, no request is sent more than twice,
/// and once replacements are paced each request is sent once and costs no
/// token request. The pace is an hour here, so that the counts do not depend
/// on how fast the machine is.
#[tokio::test]
async fn an_api_that_rejects_every_token_gets_its_401s_through_and_few_token_requests() {
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let api = Api::start(ApiMode::RejectAll).await;
    let cache = TokenCache::builder(tokens.source())
        .backoff(HOUR, HOUR)
        .build();
    let layer = BearerAuthLayer::from_cache(cache.clone());
    let client = ServiceBuilder::new().layer(layer).service(http_client());

    for id in 0..100 {
        let res = client
            .clone()
            .oneshot(get(&api.url("/"), id))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "request {id}");
    }
    assert!(api.max_attempts() <= 2, "never more than one replay");
    // Request 0: tok-1 rejected, replayed with tok-2, rejected (tok-3 is
    // fetched for later). Request 1: tok-3 rejected, replayed with tok-4,
    // rejected: three replacements at once. From then on the fourth waits an
    // hour: every request is sent once with tok-4, and gets its 401.
    assert_eq!(tokens.minted(), 4);
    assert_eq!(api.requests(), 2 + 2 + 98);
    let stats = cache.stats();
    assert_eq!((stats.retries, stats.paced), (2, 98), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn huge_and_missing_lifetimes_do_not_overflow() {
    // (lifetime, how long to wait, fetches expected by then)
    let year = Duration::from_secs(86_400 * 365);
    let cases = [
        // Ten years (Glue's expires_in): no refresh within a year.
        (Some(Duration::from_secs(315_705_599)), year, 1),
        // Too large for the clock: never expires, never refreshes.
        (Some(Duration::from_secs(u64::MAX)), year, 1),
        // No expires_in: the default lifetime (1 h) applies. Nobody uses the
        // token meanwhile, so it is not refreshed ahead: the use after two
        // hours fetches (and waits for) a new one.
        (None, Duration::from_secs(7200), 2),
    ];
    for (lifetime, wait, expected) in cases {
        let cache = TokenCache::new(from_fn(move || async move {
            let token = AccessToken::new("long");
            Ok(match lifetime {
                Some(l) => token.with_expires_in(l),
                None => token,
            })
        }));
        for _ in 0..3 {
            assert_eq!(cache.token().await.unwrap().secret(), "long");
        }
        tokio::time::sleep(wait).await;
        assert_eq!(cache.token().await.unwrap().secret(), "long");
        assert_eq!(cache.stats().fetches, expected, "{lifetime:?}");
        assert_eq!(
            cache.stats().waits,
            expected,
            "{lifetime:?}: each fetch was waited for"
        );
    }
}

#[tokio::test]
async fn a_rejected_static_token_is_fetched_again_then_replacements_are_paced() {
    let api = Api::start(ApiMode::RejectAll).await;
    let cache = TokenCache::builder(StaticToken::new("api-key"))
        .backoff(HOUR, HOUR)
        .build();
    let layer = BearerAuthLayer::from_cache(cache.clone());
    let client = ServiceBuilder::new().layer(layer).service(http_client());
    let mut outcomes = Vec::new();
    for id in 0..5 {
        outcomes.push(match client.clone().oneshot(get(&api.url("/"), id)).await {
            Ok(res) => res.status().as_u16().to_string(),
            Err(err) => TokenError::find_in(&err).unwrap().to_string(),
        });
    }
    assert!(api.seen().iter().all(|a| a == "Bearer api-key"));
    // Requests 0 and 1 are rejected, replayed with a refetched key and
    // rejected again: three replacements at once. The fourth is paced, so
    // requests 2 to 4 are sent once, and each caller gets the API's 401.
    assert_eq!(outcomes, ["401"; 5]);
    let stats = cache.stats();
    assert_eq!(stats.fetches, 4, "{stats:?}");
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!(stats.paced, 3, "{stats:?}");
    assert_eq!(api.requests(), 7);
}

#[test]
fn secrets_are_absent_from_debug_output() {
    let secret = "s3cr3t-value";
    let token = AccessToken::new(secret)
        .with_expires_in(HOUR)
        .with_scope("read");
    let static_token = StaticToken::new(secret);
    let layer = BearerAuthLayer::new(StaticToken::new(secret));
    let service: tower_bearer::BearerAuth<()> = tower::Layer::layer(&layer, ());
    let debug = [
        format!("{token:?}"),
        format!("{static_token:?}"),
        format!("{:?}", tower_bearer::Secret::new(secret)),
        format!("{}", tower_bearer::Secret::new(secret)),
        format!("{layer:?}"),
        format!("{service:?}"),
        format!("{:?}", layer.cache()),
        format!(
            "{:?}",
            tower_bearer::BoxTokenSource::new(StaticToken::new(secret))
        ),
        format!("{:?}", TokenCache::builder(StaticToken::new(secret))),
    ];
    for text in debug {
        assert!(!text.contains(secret), "leaked in {text}");
    }
}

#[tokio::test]
async fn the_header_is_marked_sensitive() {
    let layer = BearerAuthLayer::new(StaticToken::new("k"));
    let client = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(|req: Request<Full<Bytes>>| async move {
            let value = &req.headers()["authorization"];
            assert!(value.is_sensitive());
            assert_eq!(format!("{value:?}"), "Sensitive");
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
    client.oneshot(get("http://127.0.0.1/", 0)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stale_but_unexpired_token_is_served_while_its_replacement_is_fetched() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let cache = TokenCache::builder(from_fn(move || {
        let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n > 1 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Ok(AccessToken::new(format!("t{n}")).with_expires_in(Duration::from_secs(100)))
        }
    }))
    .refresh_ahead(Duration::ZERO) // no refresh ahead: let the token go stale
    .build();

    assert_eq!(cache.token().await.unwrap().secret(), "t1");
    // Past its usable life (100 s less 10 s of skew), before its expiry.
    tokio::time::sleep(Duration::from_secs(95)).await;
    let served = tokio::time::timeout(Duration::from_millis(1), cache.token()).await;
    assert_eq!(served.expect("no wait").unwrap().secret(), "t1");
    assert_eq!(cache.stats().fetches, 2, "the replacement is on its way");
    assert_eq!(cache.stats().waits, 1, "only the very first caller waited");

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(cache.token().await.unwrap().secret(), "t2");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn zero_backoff_settings_still_back_off() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let cache = TokenCache::builder(from_fn(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err(TokenError::transient("down")) }
    }))
    .backoff(Duration::ZERO, Duration::from_secs(1))
    .build();
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        let _ = cache.token().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // One second of callers: 1 ms doubling up to 1 s is about ten fetches.
    let fetched = fetches.load(Ordering::SeqCst);
    assert!(fetched <= 15, "fetches: {fetched}");
}
