//! Issue 23: what DPoP adds to a request, in one run next to the bearer hot
//! path and tower-http's `AddAuthorization`.
//!
//! `dpop/proof` is one proof (`oauth2::DpopKey`) per algorithm, for a
//! resource request: a new `jti`, `ath` of the token, the origin's nonce, the
//! signature. `dpop/request` sends the request of `benches/hot_path.rs`
//! through `BearerAuth` with a cached bearer token (the bearer hot path),
//! through `AddAuthorization` (the floor), and through `BearerAuth` whose
//! cached token is DPoP-bound to each key: the layer makes and attaches a
//! proof per request, which is all that DPoP adds.
//!
//! ```text
//! cargo bench --bench dpop --features jwt -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use tower::Layer;
use tower_bearer::dpop::DpopProver;
use tower_bearer::oauth2::{DpopKey, SigningAlgorithm};
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, TokenCache};
use tower_http::auth::AddAuthorizationLayer;

use common::{current_thread_runtime, noop_context, request, send, warm_layer, Api, TOKEN};

/// The URL of `common::request`.
const URL: &str = "http://127.0.0.1:8080/v1/things?page=2";

fn keys() -> Vec<(&'static str, DpopKey)> {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keys/rsa.pkcs8.pem"
    ))
    .expect("the test RSA 2048 key");
    let keys = vec![
        ("es256", DpopKey::generate_es256().unwrap()),
        (
            "rs256_2048",
            DpopKey::from_pem(SigningAlgorithm::Rs256, &pem).unwrap(),
        ),
        (
            "ps256_2048",
            DpopKey::from_pem(SigningAlgorithm::Ps256, &pem).unwrap(),
        ),
        ("eddsa", DpopKey::generate_ed25519().unwrap()),
    ];
    for (_, key) in &keys {
        // A server handed out a nonce: every proof carries one, as in use.
        key.learn_nonce(URL, "eyJ7S_zG.eyJH0-Z.HX4w-7v");
    }
    keys
}

fn proof(c: &mut Criterion) {
    let mut group = c.benchmark_group("dpop/proof");
    for (name, key) in keys() {
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    key.proof(&Method::GET, black_box(URL), Some(TOKEN))
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

fn request_cost(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let _guard = rt.enter();
    let mut cx = noop_context();

    let mut add_auth = AddAuthorizationLayer::bearer(TOKEN).layer(Api);
    let mut bearer = warm_layer(&rt).layer(Api);

    let mut group = c.benchmark_group("dpop/request");
    group.bench_function("add_authorization", |b| {
        b.iter(|| send(&mut add_auth, &mut cx, request()))
    });
    group.bench_function("bearer_auth", |b| {
        b.iter(|| send(&mut bearer, &mut cx, request()))
    });
    for (name, key) in keys() {
        let mut bound = dpop_layer(&rt, key).layer(Api);
        group.bench_function(format!("dpop_{name}"), |b| {
            b.iter(|| send(&mut bound, &mut cx, request()))
        });
        assert_eq!(bound.cache().stats().fetches, 1);
    }
    group.finish();
    // Every request went out with the cached token: one fetch.
    assert_eq!(bearer.cache().stats().fetches, 1);
}

/// A layer whose cached token is bound to `key`, fetched already.
fn dpop_layer(rt: &tokio::runtime::Runtime, key: DpopKey) -> BearerAuthLayer {
    let cache = TokenCache::new(from_fn(move || {
        let key = key.clone();
        async move {
            Ok(AccessToken::new(TOKEN)
                .never_expires()
                .bound_with_dpop(Arc::new(key)))
        }
    }));
    rt.block_on(cache.token()).unwrap();
    BearerAuthLayer::from_cache(cache)
}

criterion_group!(benches, proof, request_cost);
criterion_main!(benches);
