//! Issue 4a: one request through `BearerAuth` with a cached, valid token,
//! against tower-http's `AddAuthorization` (a static header: the floor) and the
//! bare service, in one group so that the ratios come from one run.
//!
//! Each iteration builds a realistic request (absolute URI, three headers),
//! sends it and drops the response, as an application does; the difference to
//! `bare` is what each layer adds. (`benches/report.py` also counts the
//! instructions of the call alone with callgrind, which noise cannot blur.)
//!
//! Two peers run in the same groups (benches/common/peers.rs): an equivalent
//! of aliri_tokens' `TokenWatcher` with its middleware's header, and a
//! hand-written `RwLock` layer.
//!
//! A second group sends the same request with ten more headers: what the
//! default layer adds per header (it keeps a copy of the head for a replay).
//!
//! ```text
//! cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tower::Layer;
use tower_http::auth::AddAuthorizationLayer;

use common::peers::RwLockLayer;
use common::{
    current_thread_runtime, noop_context, request, request_with_more_headers, send, warm_aliri,
    warm_layer, Api, TOKEN,
};

fn hot_path(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let _guard = rt.enter();
    let mut cx = noop_context();

    let mut bare = Api;
    let mut add_auth = AddAuthorizationLayer::bearer(TOKEN).layer(Api);
    let mut bearer = warm_layer(&rt).layer(Api);
    let mut no_replay = warm_layer(&rt).no_replay().layer(Api);
    // The peers (benches/common/peers.rs), in the same group.
    let mut aliri = warm_aliri(&rt).layer(Api);
    let mut rwlock = RwLockLayer::holding(TOKEN, Duration::from_secs(3600)).layer(Api);

    for (group, make) in [
        ("hot_path/end_to_end", request as fn() -> _),
        ("hot_path/more_headers", request_with_more_headers),
    ] {
        let mut group = c.benchmark_group(group);
        group.bench_function("bare", |b| b.iter(|| send(&mut bare, &mut cx, make())));
        group.bench_function("add_authorization", |b| {
            b.iter(|| send(&mut add_auth, &mut cx, make()))
        });
        group.bench_function("bearer_auth", |b| {
            b.iter(|| send(&mut bearer, &mut cx, make()))
        });
        group.bench_function("bearer_auth_no_replay", |b| {
            b.iter(|| send(&mut no_replay, &mut cx, make()))
        });
        group.bench_function("aliri_tokens", |b| {
            b.iter(|| send(&mut aliri, &mut cx, make()))
        });
        group.bench_function("rwlock_layer", |b| {
            b.iter(|| send(&mut rwlock, &mut cx, make()))
        });
        group.finish();
    }

    // Every request above went out with the cached token: one fetch each.
    assert_eq!(black_box(bearer.cache().stats()).fetches, 1);
    assert_eq!(no_replay.cache().stats().fetches, 1);
    // Only the warm-up waited for the token.
    assert_eq!(bearer.cache().stats().waits, 1);
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
