//! `BearerAuthLayer` in a real stack: timeout → retry (5xx) → bearer auth →
//! hyper-util client → hyper server on 127.0.0.1. Each layer does its own job.

mod core_support;

use std::future;
use std::time::Duration;

use bytes::Bytes;
use core_support::{get, http_client, Api, ApiMode, TokenEndpoint};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
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
    let api = Api::start(tokens.clone(), ApiMode::FlakyThenCheck).await;
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
    api.set_mode(ApiMode::CheckTokens);
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
    let api = Api::start(tokens.clone(), ApiMode::CheckTokens).await;
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
    let api = Api::start(tokens.clone(), ApiMode::CheckTokens).await;
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
