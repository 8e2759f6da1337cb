//! Issue 4c/4d: the slow paths under a crowd.
//!
//! - `cold_start_stampede`: 10,000 concurrent requests on an empty cache whose
//!   token source takes 50 ms. Exactly one fetch (asserted every iteration);
//!   the time is until all 10,000 have their response.
//! - `rejection_storm`: 1,000 requests in flight, all rejected (401) with the
//!   same token. Exactly one refresh and 1,000 replays (asserted every
//!   iteration); the time is from sending until all 1,000 have recovered.
//!
//! - `aliri_cold_start_stampede_10000`: the same stampede through the
//!   equivalent of aliri_tokens (benches/common/peers.rs), whose requests
//!   wait for its watcher in a `OnceCell`: the peer, in the same group.
//! - `warm_reference_10000`: the same 10,000 requests on a warm cache, for
//!   reference: what spawning and serving them costs without a fetch.
//!
//! Real time (tokio sleeps), on a multi-thread runtime with a worker per core.
//!
//! ```text
//! cargo bench --bench storms -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::Barrier;
use tower::{Layer, Service, ServiceExt};
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, TokenCache};

use common::peers::{LazyAliri, TokenWithLifetime};
use common::{request, Api, TOKEN};

const STAMPEDE: usize = 10_000;
const STORM: usize = 1_000;
const FETCH_LATENCY: Duration = Duration::from_millis(50);

/// A token source that takes `FETCH_LATENCY` and numbers its tokens.
fn slow_source() -> impl tower_bearer::TokenSource {
    let n = Arc::new(AtomicU64::new(0));
    from_fn(move || {
        let n = n.fetch_add(1, Ordering::Relaxed);
        async move {
            tokio::time::sleep(FETCH_LATENCY).await;
            Ok(AccessToken::new(format!("token-{n}")).with_expires_in(Duration::from_secs(3600)))
        }
    })
}

/// 10,000 concurrent requests: on an empty cache (`cold`), or, for reference,
/// on a warm one (what spawning and serving them costs without any fetch).
async fn stampede(cold: bool) -> Duration {
    let layer = BearerAuthLayer::new(slow_source());
    let cache = layer.cache().clone();
    if !cold {
        cache.token().await.unwrap();
    }
    let svc = layer.layer(Api);
    let elapsed = all_answered(svc, STAMPEDE).await;
    let stats = cache.stats();
    assert_eq!(stats.fetches, 1, "a stampede must cause exactly one fetch");
    if cold {
        // Those spawned after the fetch ended (a busy machine spawns slowly)
        // found the token and did not wait.
        assert!((1..=STAMPEDE as u64).contains(&stats.waits));
    } else {
        assert_eq!(stats.waits, 1);
    }
    elapsed
}

/// The cold stampede through the aliri equivalent (benches/common/peers.rs):
/// the 10,000 requests wait for its watcher, started once by the first, in a
/// `OnceCell`, and the token source takes as long. One fetch.
async fn aliri_stampede() -> Duration {
    let fetches = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&fetches);
    let source = move || {
        counted.fetch_add(1, Ordering::Relaxed);
        async {
            tokio::time::sleep(FETCH_LATENCY).await;
            TokenWithLifetime::new(TOKEN, Duration::from_secs(3600))
        }
    };
    let elapsed = all_answered(LazyAliri::new(Api, source), STAMPEDE).await;
    assert_eq!(fetches.load(Ordering::Relaxed), 1, "one fetch for all");
    elapsed
}

/// Sends `count` requests through `svc` at once, each on its own task, and
/// returns the time until every one has been answered 200.
async fn all_answered<S>(svc: S, count: usize) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<()>> + Clone + Send + 'static,
    S::Error: std::fmt::Debug + Send,
    S::Future: Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..count)
        .map(|_| tokio::spawn(svc.clone().oneshot(request())))
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    start.elapsed()
}

/// Rejects `rejected` once all `STORM` requests carrying it are in flight
/// together; accepts every other token at once.
#[derive(Clone)]
struct RejectingApi {
    rejected: &'static str,
    gate: Arc<Barrier>,
}

impl<B: Send + 'static> Service<Request<B>> for RejectingApi {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<()>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let stale = req.headers()[AUTHORIZATION]
            .as_bytes()
            .ends_with(self.rejected.as_bytes());
        let gate = Arc::clone(&self.gate);
        Box::pin(async move {
            if !stale {
                return Ok(Response::new(()));
            }
            gate.wait().await;
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(res)
        })
    }
}

async fn storm() -> Duration {
    let cache = TokenCache::new(slow_source());
    cache.token().await.unwrap(); // token-0, the one to be rejected
    let api = RejectingApi {
        rejected: "token-0",
        gate: Arc::new(Barrier::new(STORM)),
    };
    let svc = BearerAuthLayer::from_cache(cache.clone()).layer(api);
    let elapsed = all_answered(svc, STORM).await;
    let stats = cache.stats();
    assert_eq!(stats.fetches, 2, "1,000 rejections must cause one refresh");
    assert_eq!(stats.invalidations, 1);
    assert_eq!(stats.retries, STORM as u64);
    elapsed
}

fn storms(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("storms");
    group.sample_size(10);
    // Each sample is the sum of whole runs; every run asserts its own counts.
    let rt = &rt;
    let runs = |run: fn() -> Pin<Box<dyn Future<Output = Duration>>>| {
        move |b: &mut criterion::Bencher<'_>| {
            b.to_async(rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run().await;
                }
                total
            })
        }
    };
    group.bench_function(
        "cold_start_stampede_10000",
        runs(|| Box::pin(stampede(true))),
    );
    group.bench_function(
        "aliri_cold_start_stampede_10000",
        runs(|| Box::pin(aliri_stampede())),
    );
    group.bench_function("warm_reference_10000", runs(|| Box::pin(stampede(false))));
    group.bench_function("rejection_storm_1000", runs(|| Box::pin(storm())));
    group.finish();
}

criterion_group!(benches, storms);
criterion_main!(benches);
