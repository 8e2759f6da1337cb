//! Issue 10: the keyed (multi-tenant) cache.
//!
//! - `keyed/hot_path`: one request with a cached, valid token through the
//!   bare service, tower-http's `AddAuthorization`, the single-key layer and
//!   a layer on a keyed cache holding 10,000 keys (key read from a request
//!   extension), in one group. Every row sends the same request, extension
//!   included, so the differences are the layers'.
//! - `keyed/lookup`: the token for a request from a single-key cache against
//!   keyed caches holding 1, 1,000 and 100,000 keys, each lookup another key
//!   (hash, lock-free map lookup, use bit): what choosing a key costs.
//! - `keyed/cold_start`: 10,000 cold keys at once against the loopback Glue of
//!   `examples/keyed_per_workspace.rs` (2 ms per token request), through
//!   gates of 16 and 64 fetches in flight: the time until every key has its
//!   token. The most token requests the endpoint served at once is printed
//!   (and asserted never to exceed the limit).
//!
//! ```text
//! cargo bench --bench keyed -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;
#[path = "../examples/keyed_per_workspace.rs"]
#[allow(dead_code)]
mod keyed_per_workspace;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use http::Request;
use http_body_util::Full;
use tower::Layer;
use tower_bearer::cache::EndpointGate;
use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, TokenCache};
use tower_http::auth::AddAuthorizationLayer;

use common::{current_thread_runtime, noop_context, send, warm_layer, Api, TOKEN};
use keyed_per_workspace::{workspace_tokens, Fixture, Workspace};
const KEYS: usize = 10_000;
const COLD_KEYS: usize = 10_000;
const TOKEN_LATENCY: Duration = Duration::from_millis(2);

fn source() -> impl tower_bearer::TokenSource {
    from_fn(|| async { Ok(AccessToken::new(TOKEN).with_expires_in(Duration::from_secs(3600))) })
}

/// A keyed cache holding a valid token for each of `keys` workspaces, and
/// those workspaces.
fn warm_keyed(
    rt: &tokio::runtime::Runtime,
    keys: usize,
) -> (KeyedTokenCache<Workspace>, Vec<Workspace>) {
    let keyed = KeyedTokenCache::builder(|_: &Workspace| source())
        .max_keys(keys)
        .build();
    let workspaces: Vec<Workspace> = (0..keys).map(Workspace::numbered).collect();
    for workspace in &workspaces {
        rt.block_on(keyed.acquire(workspace)).unwrap();
    }
    (keyed, workspaces)
}

/// The request of `hot_path`, for one workspace (set as an extension, as
/// the application does).
fn request(workspace: &Workspace) -> Request<Full<Bytes>> {
    let mut request = common::request();
    request.extensions_mut().insert(workspace.clone());
    request
}

fn workspace_of(request: &Request<Full<Bytes>>) -> Option<Workspace> {
    request.extensions().get::<Workspace>().cloned()
}

fn hot_path(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let _guard = rt.enter();
    let mut cx = noop_context();
    let (keyed, workspaces) = warm_keyed(&rt, KEYS);
    let workspace = &workspaces[KEYS / 2];

    let mut bare = Api;
    let mut add_auth = AddAuthorizationLayer::bearer(TOKEN).layer(Api);
    let mut single = warm_layer(&rt).layer(Api);
    let key: fn(&Request<Full<Bytes>>) -> Option<Workspace> = workspace_of;
    let mut by_key = BearerAuthLayer::keyed(keyed.clone(), key).layer(Api);

    let mut group = c.benchmark_group("keyed/hot_path");
    group.bench_function("bare", |b| {
        b.iter(|| send(&mut bare, &mut cx, request(workspace)))
    });
    group.bench_function("add_authorization", |b| {
        b.iter(|| send(&mut add_auth, &mut cx, request(workspace)))
    });
    group.bench_function("bearer_auth", |b| {
        b.iter(|| send(&mut single, &mut cx, request(workspace)))
    });
    group.bench_function("bearer_auth_keyed", |b| {
        b.iter(|| send(&mut by_key, &mut cx, request(workspace)))
    });
    group.finish();
    // Every request went out with a cached token: no fetch beyond the warm-up.
    assert_eq!(single.cache().stats().fetches, 1);
    assert_eq!(keyed.stats().tokens.fetches, KEYS as u64);
    assert_eq!(keyed.stats_for(workspace).unwrap().waits, 1);
}

/// `TokenCache::current`, never inlined, so that callgrind can count it
/// (`benches/peers_report.py`).
#[inline(never)]
fn single_current(cache: &TokenCache) -> Option<tower_bearer::cache::CurrentToken> {
    cache.current()
}

/// `KeyedTokenCache::current`, never inlined: the lookup and the read.
#[inline(never)]
fn keyed_current(
    cache: &KeyedTokenCache<Workspace>,
    key: &Workspace,
) -> Option<tower_bearer::cache::CurrentToken> {
    cache.current(key).unwrap()
}

/// The sizes the lookup is measured at (issue 27): one key, a thousand, and
/// a hundred thousand (past the caches of the CPU).
const LOOKUP_KEYS: [usize; 3] = [1, 1_000, 100_000];

fn lookup(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let _guard = rt.enter();
    let single = TokenCache::new(source());
    rt.block_on(single.token()).unwrap();

    let mut group = c.benchmark_group("keyed/lookup");
    group.bench_function("single_key_current", |b| {
        b.iter(|| black_box(single_current(black_box(&single))))
    });
    for keys in LOOKUP_KEYS {
        let (keyed, workspaces) = warm_keyed(&rt, keys);
        // Every lookup a different key, in an order that defeats prefetching:
        // what a service with that many active tenants sees.
        let order: Vec<usize> = (0..keys).map(|i| (i * 7_919) % keys).collect();
        let mut next = 0;
        group.bench_function(format!("keyed_current_of_{keys}"), |b| {
            b.iter(|| {
                next = if next + 1 == keys { 0 } else { next + 1 };
                black_box(keyed_current(&keyed, &workspaces[order[next]]))
            })
        });
        assert_eq!(keyed.stats().tokens.fetches, keys as u64);
    }
    group.finish();
}

fn cold_start(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let glue = rt.block_on(Fixture::start(TOKEN_LATENCY));
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let workspaces: Arc<Vec<Workspace>> =
        Arc::new((0..COLD_KEYS).map(Workspace::numbered).collect());

    let mut group = c.benchmark_group("keyed/cold_start");
    // One run takes about a second: ten runs, not criterion's growing series.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for limit in [16, 64] {
        let gate = EndpointGate::new(limit);
        let requests_before = glue.token_requests();
        let mut iterations = 0u64;
        group.bench_function(format!("10000_keys_limit_{limit}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let cache = workspace_tokens(&glue.base(), &http, gate.clone()).unwrap();
                    let workspaces = Arc::clone(&workspaces);
                    let started = Instant::now();
                    rt.block_on(async move {
                        let callers: Vec<_> = (0..COLD_KEYS)
                            .map(|n| {
                                let (cache, workspaces) = (cache.clone(), Arc::clone(&workspaces));
                                tokio::spawn(async move { cache.acquire(&workspaces[n]).await })
                            })
                            .collect();
                        for caller in callers {
                            caller.await.unwrap().expect("every key gets its token");
                        }
                    });
                    total += started.elapsed();
                    iterations += 1;
                }
                total
            })
        });
        let stats = gate.stats();
        assert!(stats.peak_in_flight <= limit);
        assert_eq!(
            (glue.token_requests() - requests_before) as u64,
            iterations * COLD_KEYS as u64,
            "one token request per key and iteration"
        );
        println!(
            "keyed cold start: limit {limit}: {iterations} iterations of {COLD_KEYS} keys, \
             {} token requests, at most {} at once at the gate",
            glue.token_requests() - requests_before,
            stats.peak_in_flight,
        );
    }
    group.finish();
    println!(
        "keyed cold start: the token endpoint served at most {} requests at once",
        glue.peak_in_flight()
    );
    assert!(glue.peak_in_flight() <= 64);
    assert_eq!(glue.wrong_workspace(), 0);
}

criterion_group!(benches, hot_path, lookup, cold_start);
criterion_main!(benches);
