//! Metrics through the `metrics` facade (issue 12), read back with
//! metrics-util's debugging recorder; the cache's name on every metric and on
//! the fetch span. Tokio's paused clock makes every value exact.
#![cfg(feature = "metrics")]

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::captured_log::Captured;
use tracing::Level;
use tracing_subscriber::fmt::format::FmtSpan;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, TokenCache, TokenError};

/// What the recorder saw since the last reading: `name{label=value,…}` (labels
/// sorted) to its value; counters as deltas, histograms as their samples.
fn read(snapshotter: &Snapshotter) -> BTreeMap<String, Value> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(n) => Value::Counter(n),
                DebugValue::Gauge(g) => Value::Gauge(g.0),
                DebugValue::Histogram(h) => Value::Histogram(h.into_iter().map(|v| v.0).collect()),
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

fn expect(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Tokens `t1`, `t2`, … each 250 ms to mint, valid for 100 s.
fn slow_tokens(name: &str) -> (TokenCache, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let cache = TokenCache::builder(from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            Ok(AccessToken::new(format!("t{n}")).with_expires_in(Duration::from_secs(100)))
        }
    }))
    .name(name)
    .build();
    (cache, fetches)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fetches_waits_rejections_and_retries_are_pushed_with_the_cache_name() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);

    let (cache, _) = slow_tokens("billing-api");
    // The API rejects t1 (revoked) and accepts any other token.
    let api = service_fn(|req: Request<Full<Bytes>>| async move {
        let ok = req.headers()["authorization"] != "Bearer t1";
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
    });
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()))
        .service(api);
    let request = Request::post("http://127.0.0.1/v1/charges")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(client.oneshot(request).await.unwrap().status(), 200);

    let mut seen = read(&snapshotter);
    let expiry = seen.remove("tower_bearer_token_expiry_timestamp_seconds{cache=billing-api}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    match expiry {
        Some(Value::Gauge(at)) => assert!((at - (now + 100.0)).abs() < 5.0, "{at} vs {now}"),
        other => panic!("{other:?}"),
    }
    let c = "cache=billing-api";
    assert_eq!(
        seen,
        expect(&[
            (
                &format!("tower_bearer_fetches_total{{{c},outcome=ok,reason=empty}}"),
                Value::Counter(1)
            ),
            (
                &format!("tower_bearer_fetches_total{{{c},outcome=ok,reason=rejected}}"),
                Value::Counter(1)
            ),
            (
                &format!("tower_bearer_fetch_duration_seconds{{{c},outcome=ok,reason=empty}}"),
                Value::Histogram(vec![0.25])
            ),
            (
                &format!("tower_bearer_fetch_duration_seconds{{{c},outcome=ok,reason=rejected}}"),
                Value::Histogram(vec![0.25])
            ),
            // The first request waited for t1, its replay for t2.
            (
                &format!("tower_bearer_waits_total{{{c}}}"),
                Value::Counter(2)
            ),
            (
                &format!("tower_bearer_invalidations_total{{{c}}}"),
                Value::Counter(1)
            ),
            (
                &format!("tower_bearer_retries_total{{{c}}}"),
                Value::Counter(1)
            ),
            // t2 was installed with all its 100 s ahead.
            (
                &format!("tower_bearer_token_expires_in_seconds{{{c}}}"),
                Value::Gauge(100.0)
            ),
        ])
    );

    // A fresh token is served without a fetch, a wait or a metric.
    cache.acquire().await.unwrap();
    let seen = read(&snapshotter);
    assert!(
        seen.values()
            .all(|v| !matches!(v, Value::Counter(n) if *n > 0)),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fetches_cut_by_the_timeout_and_failures_are_counted_by_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recording = metrics::set_default_local_recorder(&recorder);

    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let cache = TokenCache::builder(from_fn(move || {
        let call = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if call == 0 {
                // Hangs past the cache's fetch timeout: a source that
                // measured itself would never report this fetch.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Err::<AccessToken, _>(TokenError::permanent("invalid_client"))
        }
    }))
    .name("search")
    .fetch_timeout(Duration::from_secs(2))
    .build();

    assert!(cache.acquire().await.is_err());
    tokio::time::advance(Duration::from_secs(600)).await;
    assert!(cache.acquire().await.is_err());

    let c = "cache=search";
    assert_eq!(
        read(&snapshotter),
        expect(&[
            (&format!("tower_bearer_fetches_total{{{c},outcome=timeout,reason=empty}}"), Value::Counter(1)),
            (
                &format!("tower_bearer_fetches_total{{{c},outcome=permanent_error,reason=empty}}"),
                Value::Counter(1)
            ),
            (
                &format!("tower_bearer_fetch_duration_seconds{{{c},outcome=timeout,reason=empty}}"),
                Value::Histogram(vec![2.0])
            ),
            (
                &format!("tower_bearer_fetch_duration_seconds{{{c},outcome=permanent_error,reason=empty}}"),
                Value::Histogram(vec![0.0])
            ),
            (&format!("tower_bearer_waits_total{{{c}}}"), Value::Counter(2)),
        ])
    );
    assert_eq!(cache.stats().fetch_failures, 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_fetch_span_carries_the_cache_name() {
    let (captured, _tracing) = Captured::start(Level::DEBUG, FmtSpan::NONE);

    let (cache, fetches) = slow_tokens("billing-api");
    cache.acquire().await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    let text = captured.text();
    let in_span: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("tower_bearer.fetch{"))
        .collect();
    assert!(!in_span.is_empty(), "{text}");
    assert!(
        in_span
            .iter()
            .all(|line| line.contains(r#"cache="billing-api""#)),
        "{text}"
    );
}
