//! The full client stack, ready to copy: a total timeout, a retry policy for
//! 5xx responses and transport errors, and the bearer layer, over hyper-util's
//! client.
//!
//! ```text
//! ServiceBuilder::new()
//!     .timeout(total)                       // bounds token wait + every attempt + backoff
//!     .retry(RetryServerErrors::new(2))     // 5xx, and transport errors of idempotent requests
//!     .layer(BearerAuthLayer::new(source))  // token, and one replay after a rejection
//!     .service(client)
//! ```
//!
//! The retry layer sits above the bearer layer, so that each retry reads the
//! current token again; the bearer layer handles rejections itself (once), so
//! the policy never retries a 401. Run it with `cargo run --example stack`: it
//! starts an API on 127.0.0.1 that answers 503 twice, then revokes a token,
//! and prints what each layer did.

#[path = "../loopback/mod.rs"]
// Tests that include this example include the module too (`tests/support`).
#[allow(clippy::duplicate_mod)]
mod loopback;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::retry::Policy;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_bearer::{from_fn, AccessToken, BearerAuthError, BearerAuthLayer, TokenError};

/// Retries a request that got a 5xx response, or (if its method is
/// idempotent) a transport error, up to `attempts` more times, waiting
/// 100 ms, then 200 ms, … in between. Never retries a 401 (the bearer
/// layer's business) or a request that could not get a token (a token error
/// says itself whether and when to try again).
#[derive(Clone, Debug)]
pub struct RetryServerErrors {
    remaining: usize,
    delay: Duration,
}

impl RetryServerErrors {
    pub fn new(attempts: usize) -> Self {
        Self {
            remaining: attempts,
            delay: Duration::from_millis(100),
        }
    }
}

impl<R, E> Policy<Request<Full<Bytes>>, Response<R>, BearerAuthError<E>> for RetryServerErrors {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<R>, BearerAuthError<E>>,
    ) -> Option<Self::Future> {
        let worth_it = match result {
            Ok(response) => response.status().is_server_error(),
            // The request may or may not have reached the server: only
            // requests that can safely arrive twice are sent again.
            Err(BearerAuthError::Service(_)) => request.method().is_idempotent(),
            Err(BearerAuthError::Token(_)) => false,
        };
        if !worth_it || self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let wait = self.delay;
        self.delay *= 2;
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, request: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        // Above the bearer layer the request has no Authorization header yet:
        // each attempt gets the token that is current when it is sent.
        let mut clone = Request::new(request.body().clone());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.version_mut() = request.version();
        *clone.headers_mut() = request.headers().clone();
        Some(clone)
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let api = start_api().await;
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    // Any token source works; see `oauth2` for the standard grants.
    let source = from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(AccessToken::new(format!("t{n}")).with_expires_in(Duration::from_secs(3600))) }
    });
    let layer = BearerAuthLayer::new(source);
    let cache = layer.cache().clone();
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(10))
        .retry(RetryServerErrors::new(2))
        .layer(layer)
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let get = |path: &str| {
        Request::get(format!("http://{}{path}", api.addr))
            .body(Full::default())
            .expect("a valid request")
    };

    // 503, 503, 200: the retry layer's job.
    let response = client.clone().oneshot(get("/flaky")).await?;
    println!(
        "GET /flaky      -> {} after {} attempts",
        response.status(),
        api.attempts()
    );
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api.attempts(), 3);

    // t1 revoked: 401, then a replay with t2: the bearer layer's job.
    let response = client.clone().oneshot(get("/revoke-t1")).await?;
    println!("GET /revoke-t1  -> {}", response.status());
    assert_eq!(response.status(), StatusCode::OK);
    let stats = cache.stats();
    println!(
        "token fetches: {}, bearer replays: {}",
        stats.fetches, stats.retries
    );
    assert_eq!((stats.fetches, stats.retries), (2, 1));

    // Behind the timeout, errors are a `BoxError`; the token error, if that
    // is what it was, is found without naming the inner service's error type.
    let failing = ServiceBuilder::new()
        .timeout(Duration::from_secs(10))
        .layer(BearerAuthLayer::new(from_fn(|| async {
            Err::<AccessToken, _>(TokenError::permanent("client secret revoked"))
        })))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let err: BoxError = failing.oneshot(get("/")).await.unwrap_err();
    let token_error = TokenError::find_in(&*err).expect("a token error");
    println!(
        "no token: {token_error} (permanent: {})",
        token_error.is_permanent()
    );
    Ok(())
}

struct TestApi {
    addr: SocketAddr,
    attempts: Arc<AtomicUsize>,
}

impl TestApi {
    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

/// `/flaky` answers 503 to its first two requests; `/revoke-t1` rejects the
/// token `t1`; both need a bearer token.
async fn start_api() -> TestApi {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&attempts);
    let addr = loopback::serve(move |req: Request<Incoming>| {
        let counted = Arc::clone(&counted);
        async move {
            let auth = req.headers().get("authorization").cloned();
            let status = match (req.uri().path(), auth) {
                (_, None) => StatusCode::UNAUTHORIZED,
                ("/flaky", _) if counted.fetch_add(1, Ordering::SeqCst) < 2 => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ("/revoke-t1", Some(auth)) if auth == "Bearer t1" => StatusCode::UNAUTHORIZED,
                _ => StatusCode::OK,
            };
            let response = Response::builder()
                .status(status)
                .body(Full::<Bytes>::default());
            response.expect("a valid response")
        }
    })
    .await;
    TestApi { addr, attempts }
}
