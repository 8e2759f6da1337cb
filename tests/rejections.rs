//! Rejections, weighed against real servers: one regression test for each
//! defect of issue 22 that the other suites do not already pin down.
//!
//! 1. Requests failed without being sent (a cool-down after three fresh
//!    tokens were rejected in a row): an API that revokes half of the fresh
//!    tokens, and one that revokes three in a row.
//! 2. Each stray 401 cost a token request: a gateway answering 200 and 401
//!    in turn.
//! 3. The front ends differed on bodies that cannot be replayed: the rows
//!    "not replayable" and "a stream past the cap" of `tests/conformance.rs`,
//!    whose source hangs on the replacement, so that a front end that waited
//!    for it before returning the 401 would hang.
//! 4. Another origin's 401 counted: reqwest follows a redirect to another
//!    origin that answers 401 (the middleware scoped with `only_for_origins`,
//!    and `ReqwestService`).
//! 5. A leaked gate turn hung every other key: sixteen tenants whose fetches
//!    hang on a runtime that is no longer driven.
//! 6. Panics: `fetch_timeout(Duration::MAX)`, and a runtime without timers.
//!
//! The cache-level halves of 1, 2, 5 and 6 are in `tests/lifecycle.rs`
//! (pacing, stray rejections) and the unit tests of `src/cache/gate.rs`,
//! `turns.rs` and `timer.rs`.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use support::api::{get, Api, ApiMode};
use support::token_endpoint::{http_client, HttpClient, TokenEndpoint};
use tower::{service_fn, Layer, ServiceExt};
use tower_bearer::cache::EndpointGate;
use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::{
    from_fn, AccessToken, BearerAuth, BearerAuthLayer, CacheError, TokenCache, TokenError,
};

const HOUR: Duration = Duration::from_secs(3600);

/// `BearerAuthLayer` on `cache` over a hyper-util client.
fn layered(cache: &TokenCache) -> BearerAuth<HttpClient> {
    BearerAuthLayer::from_cache(cache.clone()).layer(http_client())
}

fn cache_error(err: &TokenError) -> Option<&CacheError> {
    err.cause()?.downcast_ref::<CacheError>()
}

// ---------------------------------------------------------------------------
// 1. No request fails without being sent
// ---------------------------------------------------------------------------

/// `n` mapped to a well spread number in [0, 1) (splitmix64).
fn spread(n: u64) -> f64 {
    let x = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether the API revokes `tok-{serial}` before its first use: half of the
/// serials, a fixed function of the number. With this salt `tok-1` is good
/// and `tok-2` to `tok-5` are revoked: four fresh tokens in a row at once.
fn revoked_at_first_use(serial: u64) -> bool {
    spread(serial ^ 7) < 0.5
}

/// An API that introspects every token and revokes half of the fresh ones at
/// their first use (a revocation list, a replica lagging behind the
/// authorization server), and revokes each token it accepted after three
/// uses, so that replacements keep coming. 500 requests, one after another;
/// the pace is 1 ms doubling to 4 ms (not 250 ms to 30 s), so that they go
/// through many runs of replacements in a fraction of a second.
///
/// Before: three fresh tokens rejected in a row started a cool-down, and
/// every request in it failed at once with `CacheError::CoolingDown`,
/// unsent. Now no request fails locally, and a 401 reaches a caller only
/// after a replay whose fresh token was revoked too, or, sent once, while
/// replacements are paced (counted by `CacheStats::paced`). Which of the two
/// happens where depends on how fast the machine is; that each 401 is one
/// of them does not.
#[tokio::test]
async fn half_of_the_fresh_tokens_revoked_no_request_fails_locally() {
    const REQUESTS: usize = 500;
    assert!(!revoked_at_first_use(1) && (2..=5).all(revoked_at_first_use));
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    for serial in (1..=2000).filter(|s| revoked_at_first_use(*s)) {
        tokens.revoke(&format!("tok-{serial}"));
    }
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let cache = TokenCache::builder(tokens.source())
        .backoff(Duration::from_millis(1), Duration::from_millis(4))
        .build();
    let client = layered(&cache);

    let mut statuses = HashMap::new();
    let mut uses: HashMap<String, usize> = HashMap::new();
    for id in 0..REQUESTS {
        let response = client
            .clone()
            .oneshot(get(&api.url("/v1/things"), id))
            .await
            .unwrap_or_else(|err| panic!("request {id} failed without being sent: {err}"));
        statuses.insert(id.to_string(), response.status());
        if response.status() == StatusCode::OK {
            let token = response.headers()["x-seen-token"].to_str().unwrap();
            let used = uses.entry(token.to_owned()).or_default();
            *used += 1;
            if *used == 3 {
                tokens.revoke(token);
            }
        }
    }

    // Each request's attempts, and every token rejected so far, in order.
    let mut attempts: HashMap<String, Vec<(String, StatusCode)>> = HashMap::new();
    let mut sent_before = std::collections::HashSet::new();
    let (mut after_a_replay, mut while_paced) = (0, 0);
    for attempt in api.attempts() {
        let id = attempt.request_id.clone().unwrap();
        let token = attempt
            .token
            .clone()
            .expect("every request carries a token");
        let mine = attempts.entry(id.clone()).or_default();
        mine.push((token.clone(), attempt.status));
        if mine.len() == 2 {
            assert_eq!(
                mine[0].1,
                StatusCode::UNAUTHORIZED,
                "request {id}: {mine:?}"
            );
            assert!(
                !sent_before.contains(&token),
                "request {id} was replayed with a token sent before: {mine:?}"
            );
        }
        assert!(
            mine.len() <= 2,
            "request {id} was sent {} times",
            mine.len()
        );
        sent_before.insert(token);
    }
    for (id, mine) in &attempts {
        let (last_token, last_status) = mine.last().unwrap();
        assert_eq!(
            statuses[id], *last_status,
            "request {id}: the API's own answer"
        );
        if *last_status != StatusCode::UNAUTHORIZED {
            continue;
        }
        if mine.len() == 2 {
            let serial: u64 = last_token.strip_prefix("tok-").unwrap().parse().unwrap();
            assert!(
                revoked_at_first_use(serial),
                "request {id}: its replay's fresh token was good: {mine:?}"
            );
            after_a_replay += 1;
        } else {
            while_paced += 1;
        }
    }
    assert_eq!(attempts.len(), REQUESTS);
    let stats = cache.stats();
    eprintln!(
        "401s after a replay whose fresh token was revoked too: {after_a_replay}, \
         sent once while paced: {while_paced}; {stats:?}"
    );
    assert_eq!(
        stats.paced, while_paced,
        "every 401 sent once was a paced replacement's: {stats:?}"
    );
    // tok-1 is revoked after three uses; its replacement tok-2 was revoked
    // at first use: the fourth request gets the 401 of its replay.
    assert_eq!(statuses["3"], StatusCode::UNAUTHORIZED);
    assert!(after_a_replay >= 1);
}

/// Three fresh tokens revoked in a row (`tok-2` to `tok-4`), after the first
/// was revoked in use: the callers get the API's 401s, the fourth
/// replacement waits its pace (an hour here, so that the counts do not
/// depend on the machine), and meanwhile each request is sent once with the
/// rejected token at hand. Before: every request after the third rejection
/// failed at once with `CacheError::CoolingDown`, unsent.
#[tokio::test]
async fn three_fresh_tokens_rejected_in_a_row_the_callers_get_the_apis_401s() {
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let cache = TokenCache::builder(tokens.source())
        .backoff(HOUR, HOUR)
        .build();
    let client = layered(&cache);
    let send = |id: usize| client.clone().oneshot(get(&api.url("/"), id));

    assert_eq!(send(0).await.unwrap().status(), StatusCode::OK);
    for token in ["tok-1", "tok-2", "tok-3", "tok-4"] {
        tokens.revoke(token);
    }
    let mut statuses = Vec::new();
    for id in 1..=10 {
        let response = send(id).await.expect("sent, whatever the API says");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401; 10]);
    let bearer = |t: &str| format!("Bearer {t}");
    let seen = api.seen();
    // 1: tok-1 rejected, replayed with tok-2, rejected (tok-3 fetched).
    // 2: tok-3 rejected, replayed with tok-4, rejected: the third
    //    replacement in a row, so the fourth waits its pace.
    // 3-10: sent once with tok-4, the rejected token at hand.
    let mut expected = ["tok-1", "tok-1", "tok-2", "tok-3", "tok-4"]
        .map(bearer)
        .to_vec();
    expected.extend(std::iter::repeat_n(bearer("tok-4"), 8));
    assert_eq!(seen, expected);
    assert_eq!(tokens.minted(), 4);
    let stats = cache.stats();
    assert_eq!(
        (stats.fetches, stats.retries, stats.paced),
        (4, 2, 8),
        "{stats:?}"
    );
}

// ---------------------------------------------------------------------------
// 2. Stray 401s are paced
// ---------------------------------------------------------------------------

/// A gateway that answers 200 and 401 in turn, whatever the token: 200
/// requests, one after another. Before: each 401 cost a token request (100
/// rounds of 200 and 401 made 101 fetches). Now the replacements are paced
/// like any run of rejections (here by an hour, so that the count is exact):
/// the first token and three replacements, then none; every 401 that reaches
/// a caller was sent once while the replacement waited, and counted.
#[tokio::test]
async fn a_gateway_answering_200_and_401_in_turn_costs_four_token_requests() {
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let api = Api::start(ApiMode::Alternate).await;
    let cache = TokenCache::builder(tokens.source())
        .backoff(HOUR, HOUR)
        .build();
    let client = layered(&cache);

    let mut unauthorized = 0;
    for id in 0..200 {
        let response = client
            .clone()
            .oneshot(get(&api.url("/"), id))
            .await
            .expect("sent, whatever the gateway says");
        unauthorized += u64::from(response.status() == StatusCode::UNAUTHORIZED);
    }
    // Requests 1 to 3: rejected, replaced at once, replayed, accepted. From
    // request 4 on the fourth replacement waits: every other request gets
    // the gateway's 401, sent once.
    assert_eq!(tokens.minted(), 4);
    assert_eq!(unauthorized, 98);
    assert_eq!(api.max_attempts(), 2);
    let stats = cache.stats();
    assert_eq!(
        (stats.fetches, stats.retries, stats.paced),
        (4, 3, unauthorized),
        "{stats:?}"
    );
}

// ---------------------------------------------------------------------------
// 4. Only the origin the token went to can reject it
// ---------------------------------------------------------------------------

/// An API whose every request is redirected (302) to another loopback origin
/// that answers 401 to everything; the token went only to the API.
#[cfg(feature = "reqwest")]
struct Redirected {
    api: Api,
    elsewhere: Api,
    /// Tokens for the API, from a loopback token endpoint.
    cache: TokenCache,
}

#[cfg(feature = "reqwest")]
impl Redirected {
    async fn start() -> Self {
        let elsewhere = Api::start(ApiMode::RejectAll).await;
        let api = Api::start(ApiMode::RedirectTo(elsewhere.url("/landing"))).await;
        let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
        let cache = TokenCache::new(tokens.source());
        Redirected {
            api,
            elsewhere,
            cache,
        }
    }

    fn origin(&self) -> tower_bearer::Origin {
        tower_bearer::Origin::parse(&self.api.url("")).unwrap()
    }

    /// 20 requests reached the API once each with `tok-1`, their redirects
    /// reached the other origin without a token, and the cache fetched once
    /// and never counted the other origin's 401s.
    fn assert_twenty_once_each(&self) {
        assert_eq!(self.api.seen(), vec!["Bearer tok-1".to_owned(); 20]);
        assert_eq!(self.elsewhere.seen(), vec![String::new(); 20]);
        let stats = self.cache.stats();
        assert_eq!(
            (
                stats.fetches,
                stats.invalidations,
                stats.retries,
                stats.paced
            ),
            (1, 0, 0, 0),
            "{stats:?}"
        );
    }
}

/// Before: the middleware counted the redirect target's 401 as a rejection
/// of its token: a fetch and a replay each time, and with `only_for_origins`
/// 19 of 20 requests failed although the API never rejected a token.
#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn the_middleware_returns_another_origins_401_after_a_redirect() {
    use tower_bearer::reqwest::BearerAuthMiddleware;

    let servers = Redirected::start().await;
    let auth = BearerAuthMiddleware::from_cache(servers.cache.clone())
        .only_for_origins([servers.origin()]);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    for _ in 0..20 {
        let response = client
            .get(servers.api.url("/v1/things"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.url().as_str(), servers.elsewhere.url("/landing"));
    }
    servers.assert_twenty_once_each();
}

/// The same through `ReqwestService` under the layer. Before: reqwest's
/// redirect targets' answers were not marked, so each 401 from the other
/// origin replaced the token and replayed the request.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn reqwest_service_returns_another_origins_401_after_a_redirect() {
    use tower_bearer::reqwest::ReqwestService;

    let servers = Redirected::start().await;
    let client = BearerAuthLayer::from_cache(servers.cache.clone())
        .only_for_origins([servers.origin()])
        .layer(ReqwestService::new(reqwest::Client::new()));
    for _ in 0..20 {
        let request = Request::get(servers.api.url("/v1/things"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = client.clone().oneshot(request).await.expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    servers.assert_twenty_once_each();
}

// ---------------------------------------------------------------------------
// 5. One tenant's hang cannot starve the others
// ---------------------------------------------------------------------------

/// Sixteen tenants whose token endpoint hangs take the keyed cache's sixteen
/// gate turns on a runtime that is then no longer driven (alive: its tasks
/// are neither run nor dropped, so their fetch timeouts never fire). Another
/// tenant, on another runtime, gets its token once those turns have overrun
/// the fetch timeout (and the gate's second of grace), and a tenant whose
/// token is at hand never waits. Before: the turns were never given back,
/// and every other cold tenant waited with no bound.
///
/// No sockets: the sources are functions, and the second runtime runs on
/// tokio's paused clock, so the thirty seconds pass at once and exactly.
#[test]
fn sixteen_hung_tenants_on_an_undriven_runtime_stall_no_other_tenant() {
    const TIMEOUT: Duration = Duration::from_secs(30);
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let tenants = KeyedTokenCache::builder(move |tenant: &String| {
        let hangs = tenant.starts_with("hung");
        let (tenant, entered) = (tenant.clone(), entered_tx.clone());
        from_fn(move || {
            let (tenant, entered) = (tenant.clone(), entered.clone());
            async move {
                if hangs {
                    let _ = entered.send(());
                    std::future::pending::<()>().await;
                }
                Ok(AccessToken::new(format!("token-{tenant}")).with_expires_in(HOUR))
            }
        })
    })
    .fetch_timeout(TIMEOUT)
    .build();
    assert_eq!(tenants.gate().max_in_flight(), 16);

    let stranded = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    stranded.block_on(async {
        // A tenant with its token at hand, fetched before the hang.
        tenants.acquire(&"warm".to_owned()).await.unwrap();
        for n in 0..16 {
            let tenants = tenants.clone();
            tokio::spawn(async move { tenants.acquire(&format!("hung-{n}")).await });
        }
        for _ in 0..16 {
            entered.recv().await.unwrap();
        }
    });
    // `stranded` is alive and never driven again.
    assert_eq!(tenants.gate().stats().in_flight, 16);
    // Built now, its paused clock starts after the turns were taken.
    let driven = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();

    driven.block_on(async {
        let started = tokio::time::Instant::now();
        let warm = tenants.current(&"warm".to_owned()).unwrap();
        assert!(warm.is_some(), "a token at hand is served without waiting");
        let token = tenants.acquire(&"cold".to_owned()).await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited <= TIMEOUT + Duration::from_secs(1),
            "waited {waited:?}, longer than a fetch timeout and the grace"
        );
        drop(token);
        // The next cold tenant finds a turn taken back, or waits as long.
        tenants.acquire(&"colder".to_owned()).await.unwrap();
    });
    let stats = tenants.gate().stats();
    assert!(stats.reclaimed >= 1, "{stats:?}");
    assert_eq!(tenants.stats().tokens.fetches, 1 + 16 + 2);
    drop(stranded);
}

// ---------------------------------------------------------------------------
// 6. No panics
// ---------------------------------------------------------------------------

/// An API that accepts `Bearer tok-2` only, and counts its requests.
fn api_accepting_tok_2(
    requests: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |request: Request<Full<Bytes>>| {
        requests.fetch_add(1, Ordering::SeqCst);
        let ok = request.headers()["authorization"] == "Bearer tok-2";
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        async move {
            Ok(Response::builder()
                .status(status)
                .body(Full::default())
                .unwrap())
        }
    })
}

/// A source minting `tok-1`, `tok-2`, … that live an hour.
fn minting() -> (Arc<AtomicUsize>, impl tower_bearer::TokenSource + Clone) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let source = from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(AccessToken::new(format!("tok-{n}")).with_expires_in(HOUR)) }
    });
    (calls, source)
}

fn request() -> Request<Full<Bytes>> {
    Request::get("http://127.0.0.1/v1/things")
        .body(Full::default())
        .unwrap()
}

/// Before: the first acquire through a gate panicked on an unchecked add.
/// Now durations saturate: a fetch through a shared gate, a keyed cache's,
/// a rejection replaced and replayed, all with a timeout of `Duration::MAX`.
#[tokio::test]
async fn a_fetch_timeout_of_duration_max_works_through_the_layer() {
    let (calls, source) = minting();
    let requests = Arc::new(AtomicUsize::new(0));
    let cache = TokenCache::builder(source.clone())
        .fetch_timeout(Duration::MAX)
        .backoff(Duration::MAX, Duration::MAX)
        .gate(EndpointGate::new(1))
        .build();
    let client =
        BearerAuthLayer::from_cache(cache.clone()).layer(api_accepting_tok_2(requests.clone()));
    // tok-1 rejected, replaced by tok-2, replayed.
    let response = client.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        (
            calls.load(Ordering::SeqCst),
            requests.load(Ordering::SeqCst)
        ),
        (2, 2)
    );

    let (keyed_calls, source) = minting();
    let tenants = KeyedTokenCache::builder(move |_: &u8| source.clone())
        .fetch_timeout(Duration::MAX)
        .build();
    let client = BearerAuthLayer::keyed(tenants, |_: &Request<Full<Bytes>>| Some(7u8))
        .layer(api_accepting_tok_2(requests.clone()));
    let response = client.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(keyed_calls.load(Ordering::SeqCst), 2);
}

/// Before: a runtime built without `enable_time` panicked at the first fetch.
/// Now it is a typed error, [`CacheError::NoTimer`], for a request that
/// needs a fetch (it is not sent); a token at hand is served there as
/// anywhere; and a rejection whose replacement cannot start there gets the
/// API's own 401. (The cache finds the missing timer by catching tokio's
/// panic, `src/cache/timer.rs`: the panic hook still prints it, and a build
/// with `panic = "abort"` would abort here.)
#[test]
fn a_runtime_without_timers_gets_typed_errors_and_the_apis_answers() {
    let (calls, source) = minting();
    let requests = Arc::new(AtomicUsize::new(0));
    let layer = BearerAuthLayer::new(source);
    let cache = layer.cache().clone();
    let client = layer.layer(api_accepting_tok_2(requests.clone()));
    let without_timers = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let with_timers = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();

    // Cold: the fetch would need a timer.
    let err = without_timers
        .block_on(client.clone().oneshot(request()))
        .unwrap_err();
    let err = err.token_error().expect("a token error");
    assert_eq!(cache_error(err), Some(&CacheError::NoTimer));
    assert_eq!(
        (
            calls.load(Ordering::SeqCst),
            requests.load(Ordering::SeqCst)
        ),
        (0, 0)
    );

    // tok-1 fetched where there are timers, sent from where there are none:
    // the API rejects it, no replacement can start, the 401 is the answer.
    with_timers.block_on(async { cache.token().await.unwrap() });
    let response = without_timers
        .block_on(client.clone().oneshot(request()))
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        (
            calls.load(Ordering::SeqCst),
            requests.load(Ordering::SeqCst)
        ),
        (1, 1)
    );

    // Its replacement, fetched where there are timers, is served there too.
    with_timers.block_on(async { cache.token().await.unwrap() });
    let response = without_timers.block_on(client.oneshot(request())).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        (
            calls.load(Ordering::SeqCst),
            requests.load(Ordering::SeqCst)
        ),
        (2, 2)
    );
}
