//! `BearerAuthLayer` in a real stack: timeout → retry (5xx) → bearer auth →
//! hyper-util client → hyper server on 127.0.0.1. Each layer does its own job.

/// The proxy example: its outcome is checked here.
#[path = "../examples/proxy.rs"]
#[allow(dead_code)]
mod proxy;
/// The stack users copy: its retry policy is tested here.
#[path = "../examples/stack.rs"]
#[allow(dead_code)]
mod stack;
mod support;

use std::future;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use support::api::{get, Api, ApiMode};
use support::token_endpoint::{http_client, TokenEndpoint};
use tower::retry::Policy;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthError, BearerAuthLayer};

/// Retries 5xx responses up to `remaining` more times; never 401s (the bearer
/// layer owns those).
#[derive(Clone)]
struct RetryServerErrors {
    remaining: usize,
}

impl<B, E> Policy<Request<Full<Bytes>>, Response<B>, E> for RetryServerErrors {
    type Future = future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<B>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(res) if res.status().is_server_error() && self.remaining > 0 => {
                self.remaining -= 1;
                Some(future::ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.headers_mut() = req.headers().clone();
        Some(clone)
    }
}

#[tokio::test]
async fn each_layer_does_its_job() {
    let tokens = TokenEndpoint::start(Duration::from_secs(3600), Duration::ZERO).await;
    let api = Api::start(ApiMode::FlakyThenCheck(tokens.clone())).await;
    let layer = BearerAuthLayer::new(tokens.source());
    let cache = layer.cache().clone();
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .retry(RetryServerErrors { remaining: 2 })
        .layer(layer)
        .service(http_client());

    // Retry layer: the first attempt gets a 503, the retry succeeds.
    let res = client.clone().oneshot(get(&api.url("/"), 1)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(api.attempts_of("1"), 2);
    assert_eq!(
        cache.stats().retries,
        0,
        "a 503 is not the bearer layer's business"
    );

    // Bearer layer: a revoked token is replaced and the request replayed once,
    // beneath the retry layer (which sees a single successful response).
    tokens.revoke("tok-1");
    api.set(ApiMode::CheckTokens(tokens.clone()));
    let res = client.clone().oneshot(get(&api.url("/"), 2)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(api.attempts_of("2"), 2);
    assert_eq!(cache.stats().retries, 1);
    assert_eq!(tokens.minted(), 2);
    let seen = api.seen();
    assert_eq!(&seen[seen.len() - 2..], ["Bearer tok-1", "Bearer tok-2"]);
}

#[tokio::test(start_paused = true)]
async fn the_outer_timeout_bounds_a_slow_token_fetch() {
    let tokens = TokenEndpoint::start(Duration::from_secs(3600), Duration::from_secs(60)).await;
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(2))
        .retry(RetryServerErrors { remaining: 2 })
        .layer(BearerAuthLayer::new(tokens.source()))
        .service(http_client());

    let err: BoxError = client.oneshot(get(&api.url("/"), 1)).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    assert_eq!(api.requests(), 0, "nothing was sent without a token");
}

#[tokio::test]
async fn token_errors_surface_through_the_stack_typed() {
    let tokens = TokenEndpoint::start(Duration::from_secs(3600), Duration::ZERO).await;
    tokens.set_failing(true);
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .layer(BearerAuthLayer::new(tokens.source()))
        .service(http_client());

    let err: BoxError = client.oneshot(get(&api.url("/"), 1)).await.unwrap_err();
    let err = err
        .downcast_ref::<BearerAuthError<hyper_util::client::legacy::Error>>()
        .expect("the bearer layer's typed error");
    assert!(err.token_error().unwrap().is_transient());
    assert_eq!(api.requests(), 0);
}

/// A server on 127.0.0.1 that accepts connections and closes them at once
/// (a transport error for the client), counting them.
async fn hanging_up_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn the_example_policy_retries_transport_errors_of_idempotent_requests_only() {
    use std::sync::atomic::Ordering;
    let (addr, accepted) = hanging_up_server().await;
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(10))
        .retry(stack::RetryServerErrors::new(2))
        .layer(BearerAuthLayer::new(tower_bearer::StaticToken::new("k")))
        .service(http_client());
    let request = |method: http::Method| {
        Request::builder()
            .method(method)
            .uri(format!("http://{addr}/"))
            .body(Full::<Bytes>::default())
            .unwrap()
    };

    let err = client
        .clone()
        .oneshot(request(http::Method::GET))
        .await
        .unwrap_err();
    assert!(tower_bearer::TokenError::find_in(&*err).is_none(), "{err}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "a GET is tried 1 + 2 times"
    );

    client
        .clone()
        .oneshot(request(http::Method::POST))
        .await
        .unwrap_err();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        4,
        "a POST is not sent twice"
    );
}

#[tokio::test]
async fn the_example_policy_leaves_token_errors_alone() {
    let tokens = TokenEndpoint::start(Duration::from_secs(3600), Duration::ZERO).await;
    tokens.set_failing(true);
    let api = Api::start(ApiMode::CheckTokens(tokens.clone())).await;
    // Backoff shorter than the policy's first delay: a retry would fetch again.
    let cache = tower_bearer::TokenCache::builder(tokens.source())
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build();
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .retry(stack::RetryServerErrors::new(2))
        .layer(BearerAuthLayer::from_cache(cache.clone()))
        .service(http_client());
    let err: BoxError = client.oneshot(get(&api.url("/"), 1)).await.unwrap_err();
    // Found without naming the inner service's error type.
    let token_error = tower_bearer::TokenError::find_in(&*err).expect("a token error");
    assert!(token_error.is_transient());
    assert_eq!(
        tokens.attempts(),
        1,
        "one token request: the policy did not retry"
    );
    assert_eq!(cache.stats().fetches, 1);
    assert_eq!(api.requests(), 0);
}

#[tokio::test]
async fn the_proxy_example_never_forwards_the_callers_credentials() {
    let outcome = proxy::run().await.unwrap();
    assert_eq!(outcome.status, StatusCode::OK);
    let body = r#"{"month":"2026-11"}"#.to_owned();
    assert_eq!(
        outcome.upstream_saw,
        [
            ("Bearer service-token-1".to_owned(), body.clone()),
            // Replayed from BufferBody's recording after the rejection.
            ("Bearer service-token-2".to_owned(), body),
        ]
    );
    assert_eq!(outcome.fetches, 2);
}
