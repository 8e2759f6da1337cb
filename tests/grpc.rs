//! tonic interop: a real tonic server and client on 127.0.0.1, the client's
//! `Channel` wrapped in `BearerAuthLayer` with `BufferBody` replay.
//!
//! The server and client are the ones of `examples/grpc.rs`.

#[path = "../examples/grpc.rs"]
#[allow(dead_code)]
mod example;

use std::sync::{Arc, Mutex};

use example::proto::EchoRequest;
use example::{connect, serve, DemoClient, Issuer, Report, CONCURRENCY};
use http::{HeaderMap, StatusCode};
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::transport::Channel;
use tonic::Code;
use tower::ServiceBuilder;
use tower_bearer::classify::{DefaultClassifier, RejectionClassifier};
use tower_bearer::replay::{BufferBody, TeeBody};
use tower_bearer::{from_fn, BearerAuth, BearerAuthLayer};

type Policy = BufferBody<fn(TeeBody<Body>) -> Body>;

fn policy() -> Policy {
    BufferBody::new(Body::new as fn(TeeBody<Body>) -> Body)
}

/// A layer whose tokens come from `issuer`; no back-off, so back-to-back
/// rejections in one test each get a fresh token.
fn layer(issuer: &Issuer) -> BearerAuthLayer<Policy> {
    let issuer = issuer.clone();
    let source = from_fn(move || {
        let token = issuer.issue();
        async move { Ok(token) }
    });
    BearerAuthLayer::new(source).replay(policy())
}

async fn setup(
    check_on_headers: bool,
) -> (
    Issuer,
    BearerAuthLayer<Policy>,
    DemoClient<BearerAuth<Channel, Policy>>,
) {
    let issuer = Issuer::default();
    let addr = serve(issuer.clone(), check_on_headers).await.unwrap();
    let layer = layer(&issuer);
    let channel = ServiceBuilder::new()
        .layer(layer.clone())
        .service(connect(addr).await.unwrap());
    (issuer, layer, DemoClient::new(channel))
}

fn part(message: &str, bytes: usize) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
        payload: vec![7; bytes],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_counts_calls_fetches_and_retries() {
    let report = example::run().await.unwrap();
    let Report {
        calls,
        ok,
        unauthenticated,
        server_rejections,
        issued,
        stats,
    } = report;
    let waves = CONCURRENCY as u64;
    assert_eq!(calls, 3 * waves + 1);
    assert_eq!(ok, 3 * waves);
    assert_eq!(unauthenticated, 1);
    // The whole wave after the rotation, the revoked call, and the call
    // rejected twice (first attempt and its retry).
    assert_eq!(server_rejections, waves + 1 + 2);
    // Warm-up, rotation, revocation, and the first rejection of the call
    // rejected twice; the replacement its retry's rejection asks for is the
    // fourth in quick succession, and waits for its pace.
    assert_eq!(stats.fetches, 4);
    assert_eq!(issued, 4);
    assert_eq!(stats.invalidations, 4);
    // Every call of the rotation wave, the revoked call, and one retry of the
    // call rejected twice.
    assert_eq!(stats.retries, waves + 2);
}

#[tokio::test]
async fn tonic_unauthenticated_is_trailers_only_and_a_rejection() {
    let issuer = Issuer::default();
    let addr = serve(issuer.clone(), false).await.unwrap();
    // Wraps the default classifier and records what it was shown.
    type Seen = Vec<(StatusCode, Option<String>, bool)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let record = seen.clone();
    let classifier = move |status: StatusCode, headers: &HeaderMap| {
        let rejected = DefaultClassifier.is_rejection(status, headers);
        let grpc_status = headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        record.lock().unwrap().push((status, grpc_status, rejected));
        rejected
    };
    let layer = layer(&issuer).classifier(classifier);
    let channel = ServiceBuilder::new()
        .layer(layer.clone())
        .service(connect(addr).await.unwrap());
    let mut client = DemoClient::new(channel);

    assert_eq!(client.echo("one").await.unwrap().token, "token-1");
    issuer.rotate();
    let reply = client.echo("two").await.unwrap();
    assert_eq!(reply.message, "two");
    assert_eq!(reply.token, "token-2");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            // A normal response: grpc-status comes in the trailers.
            (StatusCode::OK, None, false),
            // UNAUTHENTICATED: HTTP 200, grpc-status 16 in the headers.
            (StatusCode::OK, Some("16".to_owned()), true),
            // The retry's response is returned as is, whatever it says; it is
            // classified only to tell the cache how its token fared.
            (StatusCode::OK, None, false),
        ]
    );
    assert_eq!(layer.cache().stats().retries, 1);
    assert_eq!(layer.cache().stats().fetches, 2);
}

#[tokio::test]
async fn custom_classifier_decides_what_is_a_rejection() {
    // This server says PERMISSION_DENIED (7) for a stale token.
    let is_denied =
        |_: StatusCode, headers: &HeaderMap| headers.get("grpc-status").is_some_and(|v| v == "7");

    // Default classifier: 7 is not about the token; returned as is.
    let (issuer, layer, mut client) = setup(false).await;
    issuer.deny_with(Code::PermissionDenied);
    client.echo("warm").await.unwrap();
    issuer.rotate();
    let err = client.echo("denied").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(layer.cache().stats().retries, 0);
    assert_eq!(layer.cache().stats().invalidations, 0);

    // A classifier that counts 7: the token is replaced and the call retried.
    let issuer = Issuer::default();
    issuer.deny_with(Code::PermissionDenied);
    let addr = serve(issuer.clone(), false).await.unwrap();
    let layer = layer_with(&issuer, is_denied);
    let channel = ServiceBuilder::new()
        .layer(layer.clone())
        .service(connect(addr).await.unwrap());
    let mut client = DemoClient::new(channel);
    client.echo("warm").await.unwrap();
    issuer.rotate();
    assert_eq!(client.echo("again").await.unwrap().token, "token-2");
    let stats = layer.cache().stats();
    assert_eq!(
        (stats.fetches, stats.retries, stats.invalidations),
        (2, 1, 1)
    );
    assert_eq!(issuer.rejections(), 1);
}

fn layer_with<C: RejectionClassifier>(issuer: &Issuer, c: C) -> BearerAuthLayer<Policy, C> {
    layer(issuer).classifier(c)
}

#[tokio::test]
async fn client_stream_under_the_cap_is_replayed_identically() {
    let (issuer, layer, mut client) = setup(false).await;
    client.echo("warm").await.unwrap();
    issuer.rotate();

    let parts: Vec<_> = (0..8).map(|i| part(&format!("{i},"), 1024)).collect();
    let reply = client.upload(tokio_stream::iter(parts)).await.unwrap();
    // The server read the whole stream, rejected it, and read it again.
    assert_eq!(reply.message, "0,1,2,3,4,5,6,7,");
    assert_eq!(reply.received_bytes, 8 * 1024);
    assert_eq!(reply.token, "token-2");
    assert_eq!(issuer.rejections(), 1);
    assert_eq!(layer.cache().stats().retries, 1);
}

#[tokio::test]
async fn client_stream_over_the_cap_passes_through_and_is_not_replayed() {
    let (issuer, layer, mut client) = setup(false).await;
    let parts = || (0..32).map(|i| part(&format!("{i} "), 4096));
    assert!(32 * 4096 > policy().cap());

    // Accepted: streamed through untouched.
    let reply = client.upload(tokio_stream::iter(parts())).await.unwrap();
    assert_eq!(reply.received_bytes, 32 * 4096);
    assert_eq!(reply.token, "token-1");

    // Rejected after the server read it all: too large to have been kept, so
    // the rejection is the answer; the next call gets a fresh token.
    issuer.rotate();
    let err = client
        .upload(tokio_stream::iter(parts()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let stats = layer.cache().stats();
    assert_eq!((stats.retries, stats.invalidations), (0, 1));

    let reply = client.upload(tokio_stream::iter(parts())).await.unwrap();
    assert_eq!(reply.received_bytes, 32 * 4096);
    assert_eq!(reply.token, "token-2");
    assert_eq!(issuer.rejections(), 1);
    assert_eq!(layer.cache().stats().fetches, 2);
}

#[tokio::test]
async fn server_stream_passes_through_and_its_request_is_replayed() {
    let (issuer, layer, mut client) = setup(false).await;
    let replies = client.watch("tick", 300).await.unwrap();
    assert_eq!(replies.len(), 300);
    assert_eq!(replies[299].message, "tick #299");

    issuer.rotate();
    let replies = client.watch("tock", 300).await.unwrap();
    assert_eq!(replies.len(), 300);
    assert!(replies.iter().all(|r| r.token == "token-2"));
    let stats = layer.cache().stats();
    assert_eq!((stats.fetches, stats.retries), (2, 1));
}

#[tokio::test]
async fn rejected_before_the_body_was_sent_is_not_retried() {
    // This server checks the token on the headers alone, like an interceptor,
    // and answers before reading the request.
    let (issuer, layer, mut client) = setup(true).await;
    client.echo("warm").await.unwrap();
    issuer.rotate();

    // A client stream that sends one part and then never ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(1);
    tx.send(part("first", 16)).await.unwrap();
    let parts = tokio_stream::wrappers::ReceiverStream::new(rx);
    let err = client.upload(parts).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    drop(tx);
    let stats = layer.cache().stats();
    assert_eq!(stats.retries, 0);
    assert_eq!(stats.invalidations, 1);
    assert_eq!(issuer.rejections(), 1);

    // The next call carries the fresh token.
    assert_eq!(client.echo("after").await.unwrap().message, "after");
    assert_eq!(layer.cache().stats().fetches, 2);
}

#[tokio::test]
async fn stream_that_ends_later_is_replayed() {
    // The same, against a server that reads the stream before deciding: the
    // stream is finished by the time the rejection comes, so it is replayed.
    let (issuer, layer, mut client) = setup(false).await;
    client.echo("warm").await.unwrap();
    issuer.rotate();

    let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(4);
    let parts = tokio_stream::wrappers::ReceiverStream::new(rx);
    let sender = tokio::spawn(async move {
        for i in 0..4 {
            tx.send(part(&i.to_string(), 100)).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let reply = client.upload(parts.map(|p| p)).await.unwrap();
    sender.await.unwrap();
    assert_eq!(reply.message, "0123");
    assert_eq!(reply.received_bytes, 400);
    assert_eq!(layer.cache().stats().retries, 1);
}

/// A keyed layer over one `Channel` (issue 10): the tenant is read from a
/// header each call carries; each tenant gets its own token, and a rejection
/// replaces and replays (a streamed body included) for that tenant only.
#[tokio::test]
async fn a_keyed_layer_gives_each_tenant_its_token_and_replays_per_tenant() {
    use http::HeaderValue;
    use tower_bearer::keyed::KeyedTokenCache;

    let issuer = Issuer::default();
    let addr = serve(issuer.clone(), false).await.unwrap();
    let tenants = {
        let issuer = issuer.clone();
        KeyedTokenCache::new(move |_tenant: &HeaderValue| {
            let issuer = issuer.clone();
            from_fn(move || {
                let token = issuer.issue();
                async move { Ok(token) }
            })
        })
    };
    let layer = BearerAuthLayer::keyed(tenants.clone(), |req: &http::Request<Body>| {
        req.headers().get("x-tenant").cloned()
    })
    .replay(policy());
    let channel = connect(addr).await.unwrap();
    let client_for = |tenant: &'static str| {
        let service = ServiceBuilder::new()
            .map_request(move |mut req: http::Request<Body>| {
                req.headers_mut()
                    .insert("x-tenant", HeaderValue::from_static(tenant));
                req
            })
            .layer(layer.clone())
            .service(channel.clone());
        DemoClient::new(service)
    };
    let (mut a, mut b) = (client_for("a"), client_for("b"));

    assert_eq!(a.echo("1").await.unwrap().token, "token-1");
    assert_eq!(b.echo("2").await.unwrap().token, "token-2");
    assert_eq!(a.echo("3").await.unwrap().token, "token-1");

    issuer.rotate();
    // A streamed upload of tenant a is rejected, a's token replaced, and the
    // upload replayed from its recording with a's new token.
    let parts = tokio_stream::iter(vec![part("0", 100), part("1", 100)]);
    let reply = a.upload(parts).await.unwrap();
    assert_eq!(
        (reply.token.as_str(), reply.received_bytes),
        ("token-3", 200)
    );
    assert_eq!(b.echo("4").await.unwrap().token, "token-4");
    assert_eq!(a.echo("5").await.unwrap().token, "token-3");

    let stats = |t: &'static str| tenants.stats_for(&HeaderValue::from_static(t)).unwrap();
    assert_eq!((stats("a").fetches, stats("a").retries), (2, 1));
    assert_eq!((stats("b").fetches, stats("b").retries), (2, 1));
    assert_eq!(issuer.rejections(), 2);
}
