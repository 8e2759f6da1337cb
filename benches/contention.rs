//! Issue 4b: the hot path from many tasks on a multi-thread runtime.
//!
//! For each worker-thread count, as many tasks as threads each send their
//! share of the requests through their own clone of the service (as tasks
//! sharing a client do). Criterion reports throughput (requests/s) per thread
//! count; on a machine with fewer cores than threads, the higher counts show
//! oversubscription rather than scaling.
//!
//! ```text
//! cargo bench --bench contention -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tower::{Layer, Service, ServiceExt};
use tower_http::auth::AddAuthorizationLayer;

use common::{request, warm_layer, Api, TOKEN};

const THREADS: &[usize] = &[1, 2, 4, 8];

/// Sends `iters` requests, split across `threads` tasks, and returns the wall time.
async fn run<S>(svc: S, threads: usize, iters: u64) -> Duration
where
    S: Service<http::Request<http_body_util::Full<bytes::Bytes>>, Response = http::Response<()>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let per_task = iters.div_ceil(threads as u64);
    let start = Instant::now();
    let tasks: Vec<_> = (0..threads)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let res = svc.ready().await.unwrap().call(request()).await.unwrap();
                    std::hint::black_box(res);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("contention");
    group.throughput(Throughput::Elements(1));
    for &threads in THREADS {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap();
        let bearer = warm_layer(&rt).layer(Api);
        let no_replay = warm_layer(&rt).no_replay().layer(Api);
        let add_auth = AddAuthorizationLayer::bearer(TOKEN).layer(Api);

        group.bench_with_input(BenchmarkId::new("bare", threads), &threads, |b, &t| {
            b.to_async(&rt).iter_custom(|iters| run(Api, t, iters))
        });
        group.bench_with_input(
            BenchmarkId::new("add_authorization", threads),
            &threads,
            |b, &t| {
                b.to_async(&rt)
                    .iter_custom(|iters| run(add_auth.clone(), t, iters))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("bearer_auth", threads),
            &threads,
            |b, &t| {
                b.to_async(&rt)
                    .iter_custom(|iters| run(bearer.clone(), t, iters))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("bearer_auth_no_replay", threads),
            &threads,
            |b, &t| {
                b.to_async(&rt)
                    .iter_custom(|iters| run(no_replay.clone(), t, iters))
            },
        );
        assert_eq!(bearer.cache().stats().fetches, 1);
        // Only the warm-up waited for the token.
        assert_eq!(bearer.cache().stats().waits, 1);
    }
    group.finish();
}

criterion_group!(benches, contention);
criterion_main!(benches);
