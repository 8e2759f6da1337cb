//! reqwest, for real, against loopback APIs (issue 12): the reqwest-middleware
//! `BearerAuthMiddleware` and a plain `reqwest::Client` under the Tower layer
//! through `ReqwestService`. Exact counts of fetches, requests and replays.
#![cfg(feature = "reqwest-middleware")]

mod support;

use support::loopback;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::exchange::CallerAuthorization;
use tower_bearer::reqwest::{BearerAuthMiddleware, ReqwestService};
use tower_bearer::{
    from_fn, AccessToken, BearerAuthLayer, BoxError, ErrorKind, Origin, TokenCache, TokenError,
};

/// Tokens `t1`, `t2`, … one per fetch.
fn numbered_tokens() -> (TokenCache, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let cache = TokenCache::new(from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(AccessToken::new(format!("t{n}")).with_expires_in(Duration::from_secs(3600))) }
    }));
    (cache, fetches)
}

/// An API on 127.0.0.1 that rejects the tokens in `revoked` with a bare 401
/// and records each request's `Authorization` and body.
#[derive(Clone)]
struct Api {
    addr: SocketAddr,
    revoked: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Api {
    async fn start(revoked: &[&str]) -> Self {
        let revoked = Arc::new(Mutex::new(
            revoked
                .iter()
                .map(|t| format!("Bearer {t}"))
                .collect::<Vec<_>>(),
        ));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, s) = (Arc::clone(&revoked), Arc::clone(&seen));
        let addr = loopback::serve(move |req: Request<hyper::body::Incoming>| {
            let (revoked, seen) = (Arc::clone(&r), Arc::clone(&s));
            async move {
                let auth = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                seen.lock()
                    .unwrap()
                    .push((auth.clone(), String::from_utf8_lossy(&body).into_owned()));
                let status = if auth.is_empty() || revoked.lock().unwrap().contains(&auth) {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::OK
                };
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from(auth)))
                    .unwrap()
            }
        })
        .await;
        Self {
            addr,
            revoked,
            seen,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().clone()
    }

    fn revoke(&self, token: &str) {
        self.revoked.lock().unwrap().push(format!("Bearer {token}"));
    }
}

fn middleware_client(
    auth: impl reqwest_middleware::Middleware,
) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build()
}

fn seen(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Asserts that the API saw `body` rejected with `t1`, then once more with
/// `t2`, and that the cache fetched exactly those two tokens: one replay.
fn assert_replayed_once_with_t2(api: &Api, fetches: &AtomicUsize, body: &str) {
    assert_eq!(
        api.seen(),
        seen(&[("Bearer t1", body), ("Bearer t2", body)])
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn middleware_sends_the_cached_token_and_fetches_once() {
    let api = Api::start(&[]).await;
    let (cache, fetches) = numbered_tokens();
    let client = middleware_client(BearerAuthMiddleware::from_cache(cache.clone()));
    for _ in 0..3 {
        let response = client.get(api.url("/v1/me")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "Bearer t1");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(api.seen().len(), 3);
    let stats = cache.stats();
    assert_eq!(
        (stats.fetches, stats.waits, stats.retries),
        (1, 1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn middleware_replays_a_rejected_request_once_with_its_body() {
    let api = Api::start(&["t1"]).await;
    let (cache, fetches) = numbered_tokens();
    let client = middleware_client(BearerAuthMiddleware::from_cache(cache.clone()));
    let response = client
        .post(api.url("/v1/things"))
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_replayed_once_with_t2(&api, &fetches, r#"{"name":"x"}"#);
    let stats = cache.stats();
    assert_eq!((stats.invalidations, stats.retries), (1, 1), "{stats:?}");

    // A second rejection is returned as is: never a loop.
    api.revoke("t2");
    api.revoke("t3");
    let response = client.get(api.url("/v1/me")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(api.seen().len(), 4, "t2 rejected, then t3 rejected");
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn middleware_returns_the_rejection_of_a_stream_and_refreshes_for_the_next() {
    let api = Api::start(&["t1"]).await;
    let (cache, fetches) = numbered_tokens();
    let client = middleware_client(BearerAuthMiddleware::from_cache(cache.clone()));
    // A streamed body cannot be cloned: no replay.
    let stream = reqwest::Body::wrap(Full::new(Bytes::from_static(b"streamed")));
    let response = client
        .post(api.url("/v1/upload"))
        .body(stream)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(api.seen(), seen(&[("Bearer t1", "streamed")]));
    let response = client.get(api.url("/v1/me")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats().retries, 0);
}

#[tokio::test]
async fn middleware_no_replay_returns_rejections_as_they_are() {
    let api = Api::start(&["t1"]).await;
    let (cache, _) = numbered_tokens();
    let client = middleware_client(BearerAuthMiddleware::from_cache(cache.clone()).no_replay());
    let response = client.get(api.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = client.get(api.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(api.seen(), seen(&[("Bearer t1", ""), ("Bearer t2", "")]));
}

#[tokio::test]
async fn a_revoked_token_costs_one_refresh_for_fifty_concurrent_requests() {
    let api = Api::start(&[]).await;
    let (cache, fetches) = numbered_tokens();
    let client = middleware_client(BearerAuthMiddleware::from_cache(cache.clone()));
    assert_eq!(client.get(api.url("/")).send().await.unwrap().status(), 200);
    api.revoke("t1");
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (client, url) = (client.clone(), api.url("/"));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    let seen = api.seen();
    let count = |token: &str| seen.iter().filter(|(a, _)| a == token).count();
    assert_eq!((count("Bearer t1"), count("Bearer t2")), (51, 50));
    let stats = cache.stats();
    assert_eq!((stats.invalidations, stats.retries), (1, 50), "{stats:?}");
}

#[tokio::test]
async fn middleware_without_a_token_sends_nothing_and_says_why_once() {
    let api = Api::start(&[]).await;
    let cache = TokenCache::new(from_fn(|| async {
        Err::<AccessToken, _>(TokenError::permanent("client secret revoked"))
    }));
    let client = middleware_client(BearerAuthMiddleware::from_cache(cache));
    let err = client.get(api.url("/")).send().await.unwrap_err();
    let token = TokenError::find_in(&err).expect("the token error is in the chain");
    assert_eq!(token.kind(), ErrorKind::Permanent);
    assert_eq!(
        format!("{:#}", anyhow::Error::from(err)),
        "no access token: client secret revoked"
    );
    assert!(api.seen().is_empty());
}

#[tokio::test]
async fn middleware_leaves_other_origins_and_callers_headers_alone() {
    let api = Api::start(&[]).await;
    let other = Api::start(&[]).await;
    let (cache, fetches) = numbered_tokens();
    let scope = Origin::parse(&api.url("")).unwrap();
    let client =
        middleware_client(BearerAuthMiddleware::from_cache(cache).only_for_origins([scope]));
    client.get(other.url("/")).send().await.unwrap();
    assert_eq!(other.seen(), seen(&[("", "")]));
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        0,
        "no fetch for another origin"
    );
    client.get(api.url("/")).send().await.unwrap();
    assert_eq!(api.seen(), seen(&[("Bearer t1", "")]));
}

#[tokio::test]
async fn a_plain_reqwest_client_under_the_tower_layer_replays_once() {
    let api = Api::start(&["t1"]).await;
    let (cache, fetches) = numbered_tokens();
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()))
        .service(ReqwestService::new(reqwest::Client::new()));
    let request = Request::post(api.url("/v1/things"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"name":"x"}"#)))
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "Bearer t2");
    assert_replayed_once_with_t2(&api, &fetches, r#"{"name":"x"}"#);
    assert_eq!(cache.stats().retries, 1);
}

#[tokio::test]
async fn reqwest_errors_come_through_the_tower_layer() {
    // Nothing listens on port 9 of 127.0.0.1 (discard, never served here).
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(tower_bearer::StaticToken::new("k")))
        .service(ReqwestService::new(reqwest::Client::new()));
    let request = Request::get("http://127.0.0.1:9/")
        .body(Full::<Bytes>::default())
        .unwrap();
    let err: BoxError = client.oneshot(request).await.unwrap_err().into();
    assert!(TokenError::find_in(&*err).is_none());
    let mut chain = format!("{err}");
    let mut source = err.source();
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(
        chain.starts_with("the inner service failed: error sending request"),
        "{chain}"
    );
}

#[tokio::test]
async fn middleware_replaces_a_callers_authorization_unless_told_to_keep_it() {
    let api = Api::start(&[]).await;
    let (cache, fetches) = numbered_tokens();
    let replacing = middleware_client(BearerAuthMiddleware::from_cache(cache.clone()));
    replacing
        .get(api.url("/"))
        .header("authorization", "Bearer end-user-session")
        .send()
        .await
        .unwrap();
    let keeping = middleware_client(
        BearerAuthMiddleware::from_cache(cache).caller_authorization(CallerAuthorization::Keep),
    );
    keeping
        .get(api.url("/"))
        .header("authorization", "Bearer end-user-session")
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.seen(),
        seen(&[("Bearer t1", ""), ("Bearer end-user-session", "")])
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}
