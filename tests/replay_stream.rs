//! `BufferBody` over real HTTP/2 and HTTP/1.1 on 127.0.0.1: streaming bodies
//! (with trailers) are recorded as they are sent and replayed after a 401;
//! bodies past the cap, or not yet sent to their end when the 401 came, are
//! not.

mod support;

use support::loopback;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_stream::wrappers::ReceiverStream;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bearer::replay::{BufferBody, TeeBody};
use tower_bearer::{from_fn, AccessToken, BearerAuth, BearerAuthLayer};

// `hyper::Error`, not a boxed error: a `Box<dyn Error>` inside the body type
// trips rustc's higher-ranked `Send` check on futures that hold it (a plain
// hyper-util `Client` future hits it as well).
type Body = BoxBody<Bytes, hyper::Error>;
type Policy = BufferBody<fn(TeeBody<Body>) -> Body>;
type Authed = BearerAuth<Client<HttpConnector, Body>, Policy>;

/// What the backend received: the `Authorization` value, the data, the trailers.
type Seen = Arc<Mutex<Vec<(String, Bytes, Option<HeaderMap>)>>>;

/// A backend that rejects `token-0` (the first token issued) with a bare 401
/// and echoes the body for any other token. With `read_first`, it reads the
/// whole body (trailers included) before deciding; without, it answers a
/// rejection on the headers alone.
async fn backend(read_first: bool) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let addr = loopback::serve(move |req: Request<Incoming>| {
        let record = record.clone();
        async move {
            let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
            let rejected = auth == "Bearer token-0";
            if rejected && !read_first {
                record.lock().unwrap().push((auth, Bytes::new(), None));
                return status(StatusCode::UNAUTHORIZED, Bytes::new());
            }
            let collected = req.into_body().collect().await.unwrap();
            let trailers = collected.trailers().cloned();
            let data = collected.to_bytes();
            record.lock().unwrap().push((auth, data.clone(), trailers));
            if rejected {
                status(StatusCode::UNAUTHORIZED, Bytes::new())
            } else {
                status(StatusCode::OK, data)
            }
        }
    })
    .await;
    (addr, seen)
}

fn status(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(body))
        .unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Http1,
    Http2,
}

/// A client of `protocol` whose tokens are `token-0`, `token-1`, …
fn client(protocol: Protocol, policy: Policy) -> (Authed, BearerAuthLayer<Policy>) {
    let issued = Arc::new(AtomicU32::new(0));
    let source = from_fn(move || {
        let n = issued.fetch_add(1, Ordering::SeqCst);
        async move { Ok(AccessToken::new(format!("token-{n}"))) }
    });
    let layer = BearerAuthLayer::new(source).replay(policy);
    let http = Client::builder(TokioExecutor::new())
        .http2_only(matches!(protocol, Protocol::Http2))
        .build_http::<Body>();
    let service = ServiceBuilder::new().layer(layer.clone()).service(http);
    (service, layer)
}

fn policy() -> Policy {
    BufferBody::new(BoxBody::new as fn(TeeBody<Body>) -> Body)
}

fn trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "c0ffee".parse().unwrap());
    trailers.insert("grpc-status", "0".parse().unwrap());
    trailers
}

/// A streaming body (not `Clone`, no size known up front).
fn stream_body(frames: Vec<Frame<Bytes>>) -> Body {
    let frames = frames.into_iter().map(Ok::<_, hyper::Error>);
    BoxBody::new(StreamBody::new(tokio_stream::iter(frames)))
}

fn post(addr: SocketAddr, body: Body) -> Request<Body> {
    Request::post(format!("http://{addr}/upload"))
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn stream_body_with_trailers_is_replayed_identically() {
    let (addr, seen) = backend(true).await;
    let (client, layer) = client(Protocol::Http2, policy());
    let body = stream_body(vec![
        Frame::data(Bytes::from_static(b"first chunk, ")),
        Frame::data(Bytes::from_static(b"second chunk, ")),
        Frame::data(Bytes::from(vec![b'x'; 4096])),
        Frame::trailers(trailers()),
    ]);
    let res = client.oneshot(post(addr, body)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (first, second) = (&seen[0], &seen[1]);
    assert_eq!(first.0, "Bearer token-0");
    assert_eq!(second.0, "Bearer token-1");
    assert_eq!(first.1.len(), 13 + 14 + 4096);
    assert_eq!(first.1, second.1);
    assert_eq!(first.2, Some(trailers()));
    assert_eq!(first.2, second.2);
    let stats = layer.cache().stats();
    assert_eq!((stats.fetches, stats.retries), (2, 1));
    let echoed = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed, second.1);
}

#[tokio::test]
async fn body_over_the_cap_is_sent_once() {
    let (addr, seen) = backend(true).await;
    let (client, layer) = client(Protocol::Http2, policy().max_bytes(1024));
    let chunk = Bytes::from(vec![b'y'; 512]);
    let body = stream_body(vec![
        Frame::data(chunk.clone()),
        Frame::data(chunk.clone()),
        Frame::data(chunk.clone()),
        Frame::trailers(trailers()),
    ]);
    let res = client.oneshot(post(addr, body)).await.unwrap();
    // The server read all of it; the rejection is the answer.
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.len(), 3 * 512);
    assert_eq!(seen[0].2, Some(trailers()));
    let stats = layer.cache().stats();
    assert_eq!((stats.retries, stats.invalidations), (0, 1));
}

#[tokio::test]
async fn body_not_sent_to_its_end_is_not_retried() {
    let (addr, seen) = backend(false).await;
    let (mut client, layer) = client(Protocol::Http2, policy());

    // A body that sends one chunk and then waits for more.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
    tx.send(Ok(Frame::data(Bytes::from_static(b"partial"))))
        .await
        .unwrap();
    let body = BoxBody::new(StreamBody::new(ReceiverStream::new(rx)));
    let res = client
        .ready()
        .await
        .unwrap()
        .call(post(addr, body))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    drop(tx);
    assert_eq!(seen.lock().unwrap().len(), 1);
    let stats = layer.cache().stats();
    assert_eq!((stats.retries, stats.invalidations), (0, 1));

    // The token was replaced all the same: the next request gets through.
    let body = stream_body(vec![Frame::data(Bytes::from_static(b"whole"))]);
    let res = client.oneshot(post(addr, body)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen.lock().unwrap()[1].0, "Bearer token-1");
}

fn incoming_body(body: Incoming) -> Body {
    BoxBody::new(body)
}

type Forwarded = Pin<Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>>;

fn forward(client: Authed, req: Request<Body>) -> Forwarded {
    Box::pin(async move {
        let (head, body) = client.oneshot(req).await.unwrap().into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Response::from_parts(head, Full::new(body))
    })
}

#[tokio::test]
async fn forwarded_incoming_body_is_replayed() {
    // A proxy that forwards hyper `Incoming` bodies to the backend through the
    // authenticated client.
    let (backend_addr, seen) = backend(true).await;
    let (client, layer) = client(Protocol::Http2, policy());
    let proxy_addr = loopback::serve(move |req: Request<Incoming>| {
        let target = format!("http://{backend_addr}{}", req.uri().path());
        let mut req = req.map(incoming_body);
        *req.uri_mut() = target.parse::<Uri>().unwrap();
        forward(client.clone(), req)
    })
    .await;

    let front = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let payload = Bytes::from(vec![b'z'; 10_000]);
    let req = Request::post(format!("http://{proxy_addr}/forward"))
        .body(Full::new(payload.clone()))
        .unwrap();
    let res = front.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), payload);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].1, payload);
    assert_eq!(seen[1].1, payload);
    assert_eq!(layer.cache().stats().retries, 1);
}

/// A stream that declares its exact length up front (as a body built from a
/// file or a known-size upload does), but does not say when it has ended.
struct ExactLength {
    inner: Body,
    len: u64,
}

impl hyper::body::Body for ExactLength {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// Over HTTP/1.1, hyper stops polling a body once it has written the length
/// the request declared (in a `content-length` header, or as the body's exact
/// size hint); the stream is never asked for its end. The recording is
/// complete all the same, and the request is replayed with the same bytes.
#[tokio::test]
async fn stream_with_a_declared_length_is_replayed_over_http1() {
    let chunks = [&b"declared "[..], b"length, ", b"streamed"];
    let len = chunks.iter().map(|c| c.len()).sum::<usize>();
    let stream = || stream_body(chunks.map(|c| Frame::data(Bytes::from_static(c))).into());
    let in_header = Request::post("/")
        .header(http::header::CONTENT_LENGTH, len)
        .body(stream())
        .unwrap();
    let in_size_hint = Request::post("/")
        .body(BoxBody::new(ExactLength {
            inner: stream(),
            len: len as u64,
        }))
        .unwrap();
    for (declared, mut req) in [("header", in_header), ("size hint", in_size_hint)] {
        let (addr, seen) = backend(true).await;
        let (client, layer) = client(Protocol::Http1, policy());
        *req.uri_mut() = format!("http://{addr}/upload").parse().unwrap();
        let res = client.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "length in the {declared}");

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "length in the {declared}");
        assert_eq!(seen[0].1, &b"declared length, streamed"[..]);
        assert_eq!(seen[1].1, seen[0].1, "length in the {declared}");
        assert_eq!(seen[1].0, "Bearer token-1");
        assert_eq!(layer.cache().stats().retries, 1);
    }
}
