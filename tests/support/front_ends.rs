//! The four front ends of the exchange, each built from one description of
//! the setup and driven against a loopback API: hyper-util's `Client`
//! and a tonic `Channel` under `BearerAuthLayer`, the reqwest-middleware
//! `BearerAuthMiddleware`, and `ReqwestService` under the layer. Whatever the
//! front end, a call comes back as one [`Outcome`], so that suites can ask
//! whether they all give the same answer.
//!
//! Not part of `support/mod.rs` (every suite would build tonic and reqwest
//! code it does not use): a suite includes it with
//! `#[path = "support/front_ends.rs"] mod front_ends;` next to `mod support;`.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt};
use tower_bearer::cache::CacheStats;
use tower_bearer::exchange::CallerAuthorization;
use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::replay::{BufferBody, CloneBody, NoReplay, ReplayPolicy, TeeBody};
use tower_bearer::{
    BearerAuthError, BearerAuthLayer, BoxError, CacheError, ErrorKind, Origin, TokenCache,
    TokenError,
};

use crate::support::sources::Scripted;

/// How long a caller may take before the suite calls it a hang: far longer
/// than anything correct takes on loopback, shorter than any timeout of the
/// caches the suites build (an hour), so that a driver waiting for a
/// replacement that never comes fails instead of hiding behind a timeout.
pub const CALL_BOUND: Duration = Duration::from_secs(60);

/// The cap of [`Replay::Buffer`]: [`Payload::Small`] is recorded,
/// [`Payload::Large`] is past it.
pub const CAP: usize = 1024;

/// The header a keyed front end reads its key (the tenant) from.
pub const TENANT: &str = "x-tenant";

/// The tenant of keyed setups' warm-up and of calls that name one.
pub const TENANT_A: &str = "a";

const HOUR: Duration = Duration::from_secs(3600);

/// A front end of the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// hyper-util's legacy `Client` (HTTP/1) under `BearerAuthLayer`.
    Hyper,
    /// A tonic `Channel` (HTTP/2) under `BearerAuthLayer`, driven as the
    /// `http` service it is, with tonic's own (streaming) body.
    Tonic,
    /// `reqwest_middleware` with `BearerAuthMiddleware`.
    Middleware,
    /// `ReqwestService` (a plain `reqwest::Client`) under `BearerAuthLayer`.
    ReqwestService,
}

impl Front {
    /// Every front end this build has (the reqwest ones need their features).
    pub fn all() -> Vec<Front> {
        let mut all = vec![Front::Hyper, Front::Tonic];
        if cfg!(feature = "reqwest-middleware") {
            all.push(Front::Middleware);
        }
        if cfg!(feature = "reqwest") {
            all.push(Front::ReqwestService);
        }
        all
    }
}

/// Which requests can be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Each front end's default: `CloneBody` (hyper-util, `ReqwestService`:
    /// a `Full<Bytes>` body; the middleware: what `reqwest::Request::try_clone`
    /// copies). tonic's body is a stream and never `Clone`, so tonic's
    /// default here is `BufferBody` with its default cap (64 KiB).
    Default,
    /// `no_replay()`: never sent twice.
    Never,
    /// `BufferBody` capped at [`CAP`], the body sent as a stream.
    Buffer,
    /// The middleware's default, `CloneBody`, with a body that is a stream:
    /// `reqwest::Request::try_clone` cannot copy it, so it is not replayed.
    /// Only the middleware has it: under the layer `CloneBody` with a body
    /// that is not `Clone` does not compile, and tonic has no `CloneBody`.
    CloneStream,
}

/// How the exchange is set up; the same description for every front end.
#[derive(Clone, Debug)]
pub struct Setup {
    pub replay: Replay,
    /// A keyed cache (`BearerAuthLayer::keyed`, `BearerAuthMiddleware::keyed`)
    /// keyed by the [`TENANT`] header, instead of one `TokenCache`.
    pub keyed: bool,
    /// `only_for_origins` these origins.
    pub scope: Option<Origin>,
    /// `CallerAuthorization::Keep` instead of the default `Replace`.
    pub keep_callers: bool,
    /// Replacements paced from the second one of a run, for an hour:
    /// `rejections_before_pacing(0)`, `backoff(1 h, 1 h)`.
    pub paced: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            replay: Replay::Default,
            keyed: false,
            scope: None,
            keep_callers: false,
            paced: false,
        }
    }
}

/// The body of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Nothing.
    Empty,
    /// Five bytes: under every cap.
    Small,
    /// Eight chunks of a KiB: past [`CAP`].
    Large,
}

/// One call: a POST to `url`.
#[derive(Clone, Debug)]
pub struct Call {
    pub url: String,
    pub payload: Payload,
    /// An `Authorization` header of the caller's own.
    pub authorization: Option<&'static str>,
    /// The [`TENANT`] header.
    pub tenant: Option<&'static str>,
}

/// What a caller got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer, with this status.
    Answer(u16),
    /// No token could be had; nothing was sent: why (`key missing`, or the
    /// error's kind, `transient` or `permanent`).
    NoToken(&'static str),
    /// The HTTP client failed.
    Transport(String),
}

fn no_token(err: &TokenError) -> Outcome {
    match err.cause().and_then(|c| c.downcast_ref::<CacheError>()) {
        Some(CacheError::KeyMissing) => Outcome::NoToken("key missing"),
        _ => Outcome::NoToken(match err.kind() {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
        }),
    }
}

/// Where the front ends take tokens from: one cache, or a keyed one.
#[derive(Clone)]
pub enum Tokens {
    One(TokenCache),
    Keyed(KeyedTokenCache<String>),
}

impl Tokens {
    /// Tokens from `scripted` (every key shares its numbering), with the
    /// setup's pacing. Fetches time out after an hour: never while a suite
    /// runs.
    pub fn new(setup: &Setup, scripted: &Scripted) -> Self {
        let (before_pacing, backoff) = if setup.paced {
            (0, HOUR)
        } else {
            (3, Duration::from_millis(250))
        };
        if setup.keyed {
            let scripted = scripted.clone();
            Tokens::Keyed(
                KeyedTokenCache::builder(move |_: &String| scripted.source())
                    .fetch_timeout(HOUR)
                    .rejections_before_pacing(before_pacing)
                    .backoff(backoff, backoff.max(Duration::from_secs(30)))
                    .build(),
            )
        } else {
            Tokens::One(
                TokenCache::builder(scripted.source())
                    .fetch_timeout(HOUR)
                    .rejections_before_pacing(before_pacing)
                    .backoff(backoff, backoff.max(Duration::from_secs(30)))
                    .build(),
            )
        }
    }

    /// Fetches the first token (of [`TENANT_A`] for a keyed cache).
    pub async fn warm(&self) {
        match self {
            Tokens::One(cache) => drop(cache.token().await.expect("a first token")),
            Tokens::Keyed(tenants) => drop(
                tenants
                    .acquire(&TENANT_A.to_owned())
                    .await
                    .expect("a first token"),
            ),
        }
    }

    /// The counters, summed over the keys of a keyed cache.
    pub fn stats(&self) -> CacheStats {
        match self {
            Tokens::One(cache) => cache.stats(),
            Tokens::Keyed(tenants) => tenants.stats().tokens,
        }
    }
}

/// A front end, built: each call is sent through it and its outcome returned.
pub type Caller = Box<dyn FnMut(Call) -> BoxFuture<Outcome> + Send>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds `front` as `setup` says, on `tokens`, to send to the API at `api`.
pub async fn build(front: Front, setup: &Setup, tokens: &Tokens, api: SocketAddr) -> Caller {
    match front {
        Front::Hyper => {
            let full = || Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            match setup.replay {
                Replay::Default => layered(setup, tokens, CloneBody, full(), full_request),
                Replay::Never => layered(setup, tokens, NoReplay, full(), full_request),
                Replay::Buffer => {
                    let client = Client::builder(TokioExecutor::new()).build_http::<Streamed>();
                    layered(setup, tokens, buffer_streamed(), client, streamed_request)
                }
                Replay::CloneStream => not_buildable(front),
            }
        }
        Front::Tonic => {
            let channel = tonic::transport::Channel::from_shared(format!("http://{api}"))
                .unwrap()
                .connect()
                .await
                .expect("a tonic channel to the API");
            let buffer = || BufferBody::new(tonic::body::Body::new as fn(_) -> _);
            match setup.replay {
                Replay::Default => layered(setup, tokens, buffer(), channel, tonic_request),
                Replay::Never => layered(setup, tokens, NoReplay, channel, tonic_request),
                Replay::Buffer => layered(
                    setup,
                    tokens,
                    buffer().max_bytes(CAP),
                    channel,
                    tonic_request,
                ),
                Replay::CloneStream => not_buildable(front),
            }
        }
        #[cfg(feature = "reqwest-middleware")]
        Front::Middleware => middleware::build(setup, tokens),
        #[cfg(feature = "reqwest")]
        Front::ReqwestService => {
            use tower_bearer::reqwest::ReqwestService;
            let client = || ReqwestService::new(reqwest::Client::new());
            match setup.replay {
                Replay::Default => layered(setup, tokens, CloneBody, client(), full_request),
                Replay::Never => layered(setup, tokens, NoReplay, client(), full_request),
                Replay::Buffer => {
                    layered(setup, tokens, buffer_streamed(), client(), streamed_request)
                }
                Replay::CloneStream => not_buildable(front),
            }
        }
        #[allow(unreachable_patterns)]
        other => panic!("{other:?} needs a feature this build does not have"),
    }
}

fn not_buildable(front: Front) -> ! {
    panic!("{front:?} has no CloneBody for a stream; the table skips it")
}

// ---- Tower front ends: the layer over a client ------------------------------

/// The layer's settings from `setup`.
fn configure<P, C, T>(layer: BearerAuthLayer<P, C, T>, setup: &Setup) -> BearerAuthLayer<P, C, T> {
    let layer = match &setup.scope {
        Some(origin) => layer.only_for_origins([origin.clone()]),
        None => layer,
    };
    if setup.keep_callers {
        layer.caller_authorization(CallerAuthorization::Keep)
    } else {
        layer
    }
}

/// The key of a request: its [`TENANT`] header.
fn tenant_of<B>(request: &Request<B>) -> Option<String> {
    tenant_in(request.headers())
}

fn tenant_in(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(TENANT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `BearerAuthLayer` with `policy` over `inner`, its calls built by `request`.
fn layered<S, B, R, P>(
    setup: &Setup,
    tokens: &Tokens,
    policy: P,
    inner: S,
    request: fn(&Call) -> Request<B>,
) -> Caller
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + Send + 'static,
    B: Send + 'static,
    R: http_body::Body + Send + 'static,
    R::Data: Send,
    P: ReplayPolicy<Request<B>> + Clone + Send + Sync + 'static,
    P::Kept: Send,
{
    match tokens {
        Tokens::One(cache) => {
            let layer = BearerAuthLayer::from_cache(cache.clone()).replay(policy);
            drive(configure(layer, setup).layer(inner), request)
        }
        Tokens::Keyed(tenants) => {
            let key: fn(&Request<B>) -> Option<String> = tenant_of::<B>;
            let layer = BearerAuthLayer::keyed(tenants.clone(), key).replay(policy);
            drive(configure(layer, setup).layer(inner), request)
        }
    }
}

/// Sends each call through a clone of `service`; reads the answer's body to
/// its end.
fn drive<S, B, R, E>(service: S, request: fn(&Call) -> Request<B>) -> Caller
where
    S: Service<Request<B>, Response = Response<R>, Error = BearerAuthError<E>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    E: std::fmt::Display + Send + 'static,
    B: Send + 'static,
    R: http_body::Body + Send + 'static,
    R::Data: Send,
{
    Box::new(move |call| {
        let service = service.clone();
        let request = request(&call);
        Box::pin(async move {
            match service.oneshot(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = response.into_body().collect().await;
                    Outcome::Answer(status)
                }
                Err(BearerAuthError::Token(err)) => no_token(&err),
                Err(BearerAuthError::Service(err)) => Outcome::Transport(err.to_string()),
            }
        })
    })
}

/// The head of a call, for any body.
fn head<B>(call: &Call, body: B) -> Request<B> {
    let mut request = Request::post(call.url.as_str())
        .header("user-agent", "tower-bearer-conformance")
        .body(body)
        .unwrap();
    let headers = request.headers_mut();
    if let Some(authorization) = call.authorization {
        headers.insert("authorization", HeaderValue::from_static(authorization));
    }
    if let Some(tenant) = call.tenant {
        headers.insert(TENANT, HeaderValue::from_static(tenant));
    }
    request
}

fn chunks(payload: Payload) -> Vec<Bytes> {
    match payload {
        Payload::Empty => Vec::new(),
        Payload::Small => vec![Bytes::from_static(b"hello")],
        Payload::Large => (0..8).map(|_| Bytes::from(vec![b'x'; 1024])).collect(),
    }
}

/// A `Full<Bytes>` body: `Clone`, so `CloneBody` replays it.
fn full_request(call: &Call) -> Request<Full<Bytes>> {
    assert_ne!(
        call.payload,
        Payload::Large,
        "a large body is sent as a stream"
    );
    head(call, Full::new(chunks(call.payload).concat().into()))
}

/// A body that is a stream of chunks, boxed: never `Clone`.
pub type Streamed = BoxBody<Bytes, BoxError>;

fn stream_of(
    payload: Payload,
) -> StreamBody<
    impl tokio_stream::Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + Sync + 'static,
> {
    StreamBody::new(tokio_stream::iter(
        chunks(payload)
            .into_iter()
            .map(|chunk| Ok::<_, BoxError>(Frame::data(chunk))),
    ))
}

fn streamed_request(call: &Call) -> Request<Streamed> {
    head(call, BoxBody::new(stream_of(call.payload)))
}

fn buffer_streamed() -> BufferBody<fn(TeeBody<Streamed>) -> Streamed> {
    BufferBody::new(BoxBody::new as fn(_) -> _).max_bytes(CAP)
}

/// A gRPC-looking request with tonic's streaming body, at the API's absolute
/// URL (as `tonic::client::Grpc::with_origin` builds them; the `Channel`
/// sends it to its endpoint whatever the authority).
fn tonic_request(call: &Call) -> Request<tonic::body::Body> {
    let mut request = head(call, tonic::body::Body::new(stream_of(call.payload)));
    let headers = request.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("te", HeaderValue::from_static("trailers"));
    request
}

// ---- reqwest-middleware -----------------------------------------------------

#[cfg(feature = "reqwest-middleware")]
mod middleware {
    use http::Extensions;
    use tower_bearer::reqwest::BearerAuthMiddleware;

    use super::*;

    pub(super) fn build(setup: &Setup, tokens: &Tokens) -> Caller {
        match setup.replay {
            Replay::Default | Replay::CloneStream => with(setup, tokens, CloneBody),
            Replay::Never => with(setup, tokens, NoReplay),
            Replay::Buffer => with(
                setup,
                tokens,
                BufferBody::new(reqwest::Body::wrap).max_bytes(CAP),
            ),
        }
    }

    fn configure<P, C, T>(
        middleware: BearerAuthMiddleware<P, C, T>,
        setup: &Setup,
    ) -> BearerAuthMiddleware<P, C, T> {
        let middleware = match &setup.scope {
            Some(origin) => middleware.only_for_origins([origin.clone()]),
            None => middleware,
        };
        if setup.keep_callers {
            middleware.caller_authorization(CallerAuthorization::Keep)
        } else {
            middleware
        }
    }

    fn tenant_of(request: &reqwest::Request, _: &Extensions) -> Option<String> {
        tenant_in(request.headers())
    }

    fn with<P>(setup: &Setup, tokens: &Tokens, policy: P) -> Caller
    where
        P: ReplayPolicy<reqwest::Request> + Send + Sync + 'static,
    {
        let builder = reqwest_middleware::ClientBuilder::new(reqwest::Client::new());
        let client = match tokens {
            Tokens::One(cache) => builder.with(configure(
                BearerAuthMiddleware::from_cache(cache.clone()).replay(policy),
                setup,
            )),
            Tokens::Keyed(tenants) => builder.with(configure(
                BearerAuthMiddleware::keyed(tenants.clone(), tenant_of).replay(policy),
                setup,
            )),
        }
        .build();
        let streamed = matches!(setup.replay, Replay::Buffer | Replay::CloneStream);
        Box::new(move |call: Call| {
            let body = if streamed {
                reqwest::Body::wrap(stream_of(call.payload))
            } else {
                assert_ne!(call.payload, Payload::Large, "a large body is a stream");
                reqwest::Body::from(chunks(call.payload).concat())
            };
            let mut request = client
                .post(call.url.as_str())
                .header("user-agent", "tower-bearer-conformance")
                .body(body);
            if let Some(authorization) = call.authorization {
                request = request.header("authorization", authorization);
            }
            if let Some(tenant) = call.tenant {
                request = request.header(TENANT, tenant);
            }
            Box::pin(async move {
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        Outcome::Answer(status)
                    }
                    Err(err) => match TokenError::find_in(&err) {
                        Some(token) => no_token(token),
                        None => Outcome::Transport(err.to_string()),
                    },
                }
            })
        })
    }
}
