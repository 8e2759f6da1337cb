//! Pieces shared by the benchmarks: a trivial inner service, realistic
//! requests, a warm layer.
#![allow(dead_code)]

pub mod peers;

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower::Service;
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, TokenCache};

/// The inner service: answers 200 at once. It reads the `Authorization`
/// header so that adding it cannot be optimised away.
#[derive(Clone, Copy, Default)]
pub struct Api;

impl<B> Service<Request<B>> for Api {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        black_box(req.headers().get(AUTHORIZATION).map(|v| v.len()));
        ready(Ok(Response::new(())))
    }
}

/// A GET as an application builds it: an absolute URI and three headers given
/// as strings.
pub fn request() -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri("http://127.0.0.1:8080/v1/things?page=2")
        .header(USER_AGENT, "tower-bearer-bench/1.0")
        .header(ACCEPT, "application/json")
        .header("x-request-id", "7f3c2a9e-bench")
        .body(Full::default())
        .unwrap()
}

/// Headers that real requests often carry besides the standard request's
/// three, standard names and custom ones, with values of typical lengths.
pub const MORE_HEADERS: [(&str, &str); 10] = [
    ("accept-encoding", "gzip, br"),
    ("accept-language", "en-GB,en;q=0.9"),
    ("cache-control", "no-cache"),
    ("content-type", "application/json"),
    ("if-none-match", "\"5f2b-1a9c\""),
    ("x-correlation-id", "0b7d54e2-41c6-4f0e-9d6e-3c1a8f2b9e10"),
    ("x-tenant", "acme-prod"),
    (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ),
    ("tracestate", "vendor=t61rcWkgMzE"),
    ("baggage", "userId=alice,serverNode=DF28"),
];

/// The standard request with [`MORE_HEADERS`] too (13 headers): how the
/// cost of each layer grows with the request's head.
pub fn request_with_more_headers() -> Request<Full<Bytes>> {
    let mut req = request();
    for (name, value) in MORE_HEADERS {
        let value = HeaderValue::from_str(value).unwrap();
        req.headers_mut()
            .append(HeaderName::from_static(name), value);
    }
    req
}

pub const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.bench-token-of-a-realistic-length.c2lnbmF0dXJl";

/// A layer whose cache holds a valid token (fetched once, at `rt`).
pub fn warm_layer(rt: &tokio::runtime::Runtime) -> BearerAuthLayer {
    let cache = TokenCache::new(from_fn(|| async {
        Ok(AccessToken::new(TOKEN).with_expires_in(Duration::from_secs(3600)))
    }));
    rt.block_on(cache.token()).unwrap();
    BearerAuthLayer::from_cache(cache)
}

/// aliri_tokens' watcher holding [`TOKEN`] (see [`peers`]), started at `rt`.
pub fn warm_aliri(rt: &tokio::runtime::Runtime) -> peers::AliriLayer {
    let watcher = rt.block_on(peers::TokenWatcher::spawn_from_token_source(|| async {
        peers::TokenWithLifetime::new(TOKEN, Duration::from_secs(3600))
    }));
    peers::AliriLayer::new(watcher)
}

/// A current-thread runtime for the hot-path benchmarks: one thread, as a
/// request's own task sees it.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A task context that never wakes anything: on the hot path nothing waits.
pub fn noop_context() -> Context<'static> {
    // `Waker::noop` is newer than the crate's MSRV.
    static NOOP: OnceLock<Waker> = OnceLock::new();
    Context::from_waker(NOOP.get_or_init(|| Waker::from(Arc::new(NoopWaker))))
}

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

/// One request through `svc`, polled by hand: on the hot path the answer is
/// ready at the first poll. Never inlined, the same for every service, so
/// that callgrind can count its instructions (`benches/report.py`).
#[inline(never)]
pub fn send<S, B>(svc: &mut S, cx: &mut Context<'_>, req: Request<B>)
where
    S: Service<Request<B>, Response = Response<()>>,
{
    if svc.poll_ready(cx).is_pending() {
        panic!("inner service not ready");
    }
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(cx) {
        Poll::Ready(Ok(res)) => {
            debug_assert_eq!(res.status(), StatusCode::OK);
            black_box(res);
        }
        Poll::Ready(Err(_)) => panic!("request failed"),
        Poll::Pending => panic!("the hot path must not wait"),
    }
}
