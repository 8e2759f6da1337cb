//! A proxy that forwards its callers' requests to an upstream API with the
//! service's own token, never with the caller's credentials.
//!
//! The caller sends `Authorization: Bearer end-user-session` to the proxy (a
//! hyper server here; an axum handler forwarding `Request<Body>` is the
//! same). The proxy forwards the request, headers and streamed body
//! included, through `BearerAuthLayer`, which by default **replaces** the
//! caller's header with the service's token
//! (`CallerAuthorization::Replace`): the end user's session never reaches
//! the upstream API. `BufferBody` records the streamed body, so a request
//! whose token the upstream rejects is replayed once.
//!
//! Requests for an origin outside `only_for_origins` pass through untouched:
//! a proxy that may forward elsewhere strips the caller's `Authorization`
//! itself for those.
//!
//! Run it with `cargo run --example proxy`; everything listens on 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bearer::replay::BufferBody;
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, TokenCache};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// What the upstream API saw, and what the caller got back.
#[derive(Debug)]
pub struct Outcome {
    /// The caller's response status.
    pub status: StatusCode,
    /// The `Authorization` of each request the upstream received, with its body.
    pub upstream_saw: Vec<(String, String)>,
    /// Tokens the proxy's cache fetched.
    pub fetches: u64,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let outcome = run().await?;
    println!("{outcome:#?}");
    Ok(())
}

pub async fn run() -> Result<Outcome, BoxError> {
    let upstream = Upstream::start().await;

    // The service's own token; the first one is revoked upstream, so the
    // forwarded request is also replayed once, from BufferBody's recording.
    let minted = Arc::new(AtomicUsize::new(0));
    let cache = TokenCache::new(from_fn(move || {
        let n = minted.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            Ok(AccessToken::new(format!("service-token-{n}"))
                .with_expires_in(Duration::from_secs(3600)))
        }
    }));
    let forward = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()).replay(BufferBody::new(ProxyBody::new)))
        .service(Client::builder(TokioExecutor::new()).build_http::<ProxyBody>());
    let proxy = serve(move |mut request: Request<Incoming>| {
        let mut forward = forward.clone();
        let upstream = upstream.addr;
        async move {
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            *request.uri_mut() = Uri::try_from(format!("http://{upstream}{path}"))?;
            let request = request.map(|body| body.boxed());
            let response = forward.ready().await?.call(request).await?;
            Ok::<_, BoxError>(response.map(|body| body.boxed()))
        }
    })
    .await;

    // A caller with its own credentials, as every request to a proxy has.
    let caller = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(format!("http://{proxy}/v1/reports"))
        .header("authorization", "Bearer end-user-session")
        .body(Full::new(Bytes::from_static(b"{\"month\":\"2026-11\"}")))?;
    let response = caller.request(request).await?;
    let upstream_saw = upstream.seen.lock().unwrap().clone();
    Ok(Outcome {
        status: response.status(),
        upstream_saw,
        fetches: cache.stats().fetches,
    })
}

/// An API on 127.0.0.1 that accepts any token but `service-token-1`
/// (revoked), and records what it was sent.
#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Upstream {
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let addr = serve(move |request: Request<Incoming>| {
            let log = Arc::clone(&log);
            async move {
                let auth = request
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap_or("").to_owned())
                    .unwrap_or_default();
                let body = request.into_body().collect().await?.to_bytes();
                log.lock()
                    .unwrap()
                    .push((auth.clone(), String::from_utf8_lossy(&body).into_owned()));
                let status = match auth.as_str() {
                    "Bearer service-token-1" | "" => StatusCode::UNAUTHORIZED,
                    a if a.starts_with("Bearer service-token-") => StatusCode::OK,
                    _ => StatusCode::FORBIDDEN,
                };
                let response = Response::builder().status(status).body(
                    Full::<Bytes>::default()
                        .map_err(|never| match never {})
                        .boxed(),
                )?;
                Ok::<_, BoxError>(response)
            }
        })
        .await;
        Self { addr, seen }
    }
}

/// Serves `handler` on 127.0.0.1, HTTP/1 and HTTP/2; a handler error closes
/// the connection.
async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<ProxyBody>, BoxError>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            let service = hyper::service::service_fn(move |request| {
                let handler = handler.clone();
                async move {
                    Ok::<_, Infallible>(handler(request).await.unwrap_or_else(|err| {
                        let body = Full::new(Bytes::from(err.to_string()));
                        let mut response =
                            Response::new(body.map_err(|never| match never {}).boxed());
                        *response.status_mut() = StatusCode::BAD_GATEWAY;
                        response
                    }))
                }
            });
            tokio::spawn(
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned(),
            );
        }
    });
    addr
}
