//! A tonic client whose `Channel` is wrapped in `BearerAuthLayer`, talking to a
//! tonic server on 127.0.0.1 that requires a bearer token.
//!
//! The client makes concurrent unary calls
//!
//! 1. on an empty cache (one token fetch for all of them),
//! 2. right after the server rotated its signing key, so every token issued so
//!    far is stale: each call is rejected with `UNAUTHENTICATED` (a
//!    trailers-only gRPC response, HTTP 200 with `grpc-status: 16`), one fresh
//!    token is fetched for all of them, and each call is sent once more,
//! 3. while the server forcibly rejects one call (as if its token had been
//!    revoked): one fetch, one retry,
//!
//! and finally one call the server rejects twice, which comes back as
//! `UNAUTHENTICATED` after its single retry: the layer never loops. Its
//! second rejection asks for a fifth token; but rotation, revocation and this
//! call were three replacements in quick succession, so the next one is paced
//! (here by a minute, so that the counts do not depend on the machine's
//! speed): the server is asked for no more tokens meanwhile, and later calls
//! carry the token at hand, so their callers get the server's own answer.
//!
//! The request bodies are tonic's streaming bodies, not `Clone`; they are
//! replayed by `BufferBody`, which records them (up to 64 KiB) as they are sent.
//! The services are written by hand with tonic's generic `Grpc` and a prost
//! message derived in this file: no `.proto`, no protoc, no build script.
//!
//! ```text
//! cargo run --example grpc
//! ```

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::sync::Barrier;
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tonic::client::{Grpc, GrpcService};
use tonic::codec::Streaming;
use tonic::metadata::MetadataMap;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;
use tower::{service_fn, ServiceBuilder};
use tower_bearer::cache::CacheStats;
use tower_bearer::replay::BufferBody;
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, TokenCache};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The messages, as prost would generate them from
///
/// ```text
/// message EchoRequest { string message = 1; bytes payload = 2; }
/// message EchoReply   { string message = 1; string token = 2; uint64 received_bytes = 3; }
/// service Demo {
///   rpc Echo(EchoRequest) returns (EchoReply);
///   rpc Upload(stream EchoRequest) returns (EchoReply);
///   rpc Watch(EchoRequest) returns (stream EchoReply);
/// }
/// ```
pub mod proto {
    /// The request of every method.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoRequest {
        /// Echoed back.
        #[prost(string, tag = "1")]
        pub message: String,
        /// Counted, not echoed.
        #[prost(bytes = "vec", tag = "2")]
        pub payload: Vec<u8>,
    }

    /// The reply of every method.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoReply {
        /// The request's message.
        #[prost(string, tag = "1")]
        pub message: String,
        /// Which token the server accepted (its public name, not a secret here).
        #[prost(string, tag = "2")]
        pub token: String,
        /// Payload bytes the server received in this call.
        #[prost(uint64, tag = "3")]
        pub received_bytes: u64,
    }
}

use proto::{EchoReply, EchoRequest};

/// `Demo/Echo`: unary.
pub const ECHO: &str = "/demo.Demo/Echo";
/// `Demo/Upload`: client streaming.
pub const UPLOAD: &str = "/demo.Demo/Upload";
/// `Demo/Watch`: server streaming; replies as many messages as the payload has bytes.
pub const WATCH: &str = "/demo.Demo/Watch";

/// Issues tokens (it is the client's token source) and checks them (for the
/// server): a toy authorization server shared by both sides of the demo.
#[derive(Clone, Default)]
pub struct Issuer {
    inner: Arc<IssuerState>,
}

#[derive(Default)]
struct IssuerState {
    issued: AtomicU64,
    valid: Mutex<HashSet<String>>,
    forced: AtomicUsize,
    held: Mutex<Option<Arc<Barrier>>>,
    rejections: AtomicU64,
    deny_code: Mutex<Option<Code>>,
}

impl Issuer {
    /// A new token, valid until the next [`rotate`](Issuer::rotate).
    pub fn issue(&self) -> AccessToken {
        let n = self.inner.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("token-{n}");
        self.inner.valid.lock().unwrap().insert(token.clone());
        AccessToken::new(token).with_expires_in(Duration::from_secs(3600))
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        self.inner.issued.load(Ordering::SeqCst)
    }

    /// Rotates the signing key: every token issued so far becomes stale.
    pub fn rotate(&self) {
        self.inner.valid.lock().unwrap().clear();
    }

    /// The next `n` calls are rejected whatever their token.
    pub fn force_rejections(&self, n: usize) {
        self.inner.forced.store(n, Ordering::SeqCst);
    }

    /// The next `n` calls with a stale token wait until all `n` have arrived
    /// before they are rejected, so that all of them were sent with it.
    pub fn hold_stale(&self, n: usize) {
        *self.inner.held.lock().unwrap() = Some(Arc::new(Barrier::new(n)));
    }

    /// Rejections answer with `code` instead of `UNAUTHENTICATED`.
    pub fn deny_with(&self, code: Code) {
        *self.inner.deny_code.lock().unwrap() = Some(code);
    }

    /// Calls the server rejected.
    pub fn rejections(&self) -> u64 {
        self.inner.rejections.load(Ordering::SeqCst)
    }

    /// Checks the `authorization` metadata; returns the token's name.
    pub async fn check(&self, metadata: &MetadataMap) -> Result<String, Status> {
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let forced = self
            .inner
            .forced
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let valid = token
            .as_ref()
            .is_some_and(|t| self.inner.valid.lock().unwrap().contains(t));
        match token {
            Some(token) if valid && !forced => Ok(token),
            _ => {
                if !valid {
                    let held = self.inner.held.lock().unwrap().clone();
                    if let Some(barrier) = held {
                        // Bounded, so that a broken client fails instead of hanging.
                        let waited = tokio::time::timeout(Duration::from_secs(10), barrier.wait());
                        if waited.await.is_ok_and(|w| w.is_leader()) {
                            self.inner.held.lock().unwrap().take();
                        }
                    }
                }
                self.inner.rejections.fetch_add(1, Ordering::SeqCst);
                let code = self
                    .inner
                    .deny_code
                    .lock()
                    .unwrap()
                    .unwrap_or(Code::Unauthenticated);
                Err(Status::new(code, "stale or revoked token"))
            }
        }
    }
}

/// The server: checks the token after reading the request, like a handler
/// would, or on the headers alone, like an interceptor would.
#[derive(Clone)]
pub struct DemoServer {
    issuer: Issuer,
    check_on_headers: bool,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<Body>> for DemoServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let server = self.clone();
        Box::pin(async move {
            if server.check_on_headers {
                let metadata = MetadataMap::from_headers(request.headers().clone());
                if let Err(status) = server.issuer.check(&metadata).await {
                    return Ok(status.into_http());
                }
            }
            let codec = ProstCodec::<EchoReply, EchoRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            let response = match request.uri().path() {
                ECHO => grpc.unary(server.echo(), request).await,
                UPLOAD => grpc.client_streaming(server.upload(), request).await,
                WATCH => grpc.server_streaming(server.watch(), request).await,
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

impl DemoServer {
    async fn authorize(&self, metadata: &MetadataMap) -> Result<String, Status> {
        if self.check_on_headers {
            // Already checked, before the request was read.
            return Ok(String::new());
        }
        self.issuer.check(metadata).await
    }

    /// A unary call: authorize on the metadata, then answer.
    fn echo(
        &self,
    ) -> impl tower::Service<
        Request<EchoRequest>,
        Response = Response<EchoReply>,
        Error = Status,
        Future = impl Future + Send,
    > + Send {
        self.authorized(|token, request: EchoRequest| EchoReply {
            received_bytes: request.payload.len() as u64,
            message: request.message,
            token,
        })
    }

    /// A call that takes one message: authorize on its metadata, then let
    /// `respond` answer with the token and the message.
    fn authorized<R, F>(
        &self,
        respond: F,
    ) -> impl tower::Service<
        Request<EchoRequest>,
        Response = Response<R>,
        Error = Status,
        Future = impl Future + Send,
    > + Send
    where
        F: Fn(String, EchoRequest) -> R + Clone + Send + 'static,
        R: Send,
    {
        let server = self.clone();
        service_fn(move |request: Request<EchoRequest>| {
            let (server, respond) = (server.clone(), respond.clone());
            async move {
                let token = server.authorize(request.metadata()).await?;
                Ok(Response::new(respond(token, request.into_inner())))
            }
        })
    }

    fn upload(
        &self,
    ) -> impl tower::Service<
        Request<Streaming<EchoRequest>>,
        Response = Response<EchoReply>,
        Error = Status,
        Future = impl Future + Send,
    > + Send {
        let server = self.clone();
        service_fn(move |request: Request<Streaming<EchoRequest>>| {
            let server = server.clone();
            async move {
                let (metadata, _, mut stream) = request.into_parts();
                // Read everything first, then decide, like a handler that
                // authorizes on the content would.
                let mut message = String::new();
                let mut received_bytes = 0;
                while let Some(part) = stream.message().await? {
                    message.push_str(&part.message);
                    received_bytes += part.payload.len() as u64;
                }
                let token = server.authorize(&metadata).await?;
                Ok(Response::new(EchoReply {
                    message,
                    token,
                    received_bytes,
                }))
            }
        })
    }

    /// A server-streaming call: authorize, then one reply per payload byte.
    #[allow(clippy::type_complexity)]
    fn watch(
        &self,
    ) -> impl tower::Service<
        Request<EchoRequest>,
        Response = Response<impl Stream<Item = Result<EchoReply, Status>> + Send + 'static>,
        Error = Status,
        Future = impl Future + Send,
    > + Send {
        self.authorized(|token: String, request: EchoRequest| {
            let count = request.payload.len();
            tokio_stream::iter((0..count).map(move |i| {
                Ok(EchoReply {
                    message: format!("{} #{i}", request.message),
                    token: token.clone(),
                    received_bytes: 1024,
                })
            }))
        })
    }
}

/// Starts the server on 127.0.0.1 (any free port); it runs until the runtime stops.
pub async fn serve(issuer: Issuer, check_on_headers: bool) -> Result<SocketAddr, BoxError> {
    let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = incoming.local_addr()?;
    let server = DemoServer {
        issuer,
        check_on_headers,
    };
    tokio::spawn(Server::builder().serve_with_incoming(server, incoming));
    Ok(addr)
}

/// A connected channel to `addr`.
pub async fn connect(addr: SocketAddr) -> Result<Channel, BoxError> {
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

/// A hand-written client for the `Demo` service over any gRPC service
/// (here: a `Channel` wrapped in `BearerAuth`).
#[derive(Clone)]
pub struct DemoClient<T> {
    grpc: Grpc<T>,
}

impl<T> DemoClient<T>
where
    T: GrpcService<Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    /// Wraps a gRPC service.
    pub fn new(service: T) -> Self {
        Self {
            grpc: Grpc::new(service),
        }
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {}", e.into())))
    }

    /// `Demo/Echo`.
    pub async fn echo(&mut self, message: &str) -> Result<EchoReply, Status> {
        self.ready().await?;
        let request = Request::new(EchoRequest {
            message: message.to_owned(),
            payload: Vec::new(),
        });
        let codec = ProstCodec::<EchoRequest, EchoReply>::default();
        let path = PathAndQuery::from_static(ECHO);
        Ok(self.grpc.unary(request, path, codec).await?.into_inner())
    }

    /// `Demo/Upload`: streams `parts` to the server.
    pub async fn upload(
        &mut self,
        parts: impl Stream<Item = EchoRequest> + Send + 'static,
    ) -> Result<EchoReply, Status> {
        self.ready().await?;
        let codec = ProstCodec::<EchoRequest, EchoReply>::default();
        let path = PathAndQuery::from_static(UPLOAD);
        let response = self.grpc.client_streaming(Request::new(parts), path, codec);
        Ok(response.await?.into_inner())
    }

    /// `Demo/Watch`: `count` replies streamed back.
    pub async fn watch(&mut self, message: &str, count: usize) -> Result<Vec<EchoReply>, Status> {
        self.ready().await?;
        let request = Request::new(EchoRequest {
            message: message.to_owned(),
            payload: vec![0; count],
        });
        let codec = ProstCodec::<EchoRequest, EchoReply>::default();
        let path = PathAndQuery::from_static(WATCH);
        let mut stream = self
            .grpc
            .server_streaming(request, path, codec)
            .await?
            .into_inner();
        let mut replies = Vec::new();
        while let Some(reply) = stream.next().await {
            replies.push(reply?);
        }
        Ok(replies)
    }
}

/// What the demo did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Calls made.
    pub calls: u64,
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls that ended with `UNAUTHENTICATED`.
    pub unauthenticated: u64,
    /// Rejections the server sent (first attempts and retries).
    pub server_rejections: u64,
    /// Tokens the issuer handed out.
    pub issued: u64,
    /// The layer's counters.
    pub stats: CacheStats,
}

/// Concurrent calls per wave.
pub const CONCURRENCY: usize = 16;

/// Runs the whole demo against a fresh server.
pub async fn run() -> Result<Report, BoxError> {
    let issuer = Issuer::default();
    let addr = serve(issuer.clone(), false).await?;

    let source = {
        let issuer = issuer.clone();
        from_fn(move || {
            let token = issuer.issue();
            async move { Ok(token) }
        })
    };
    // tonic's request bodies are streams: record them as they are sent (up to
    // 64 KiB) so that a rejected call can be sent again.
    // Replacements after the third in quick succession wait a minute, and
    // then longer each time.
    let cache = TokenCache::builder(source)
        .backoff(Duration::from_secs(60), Duration::from_secs(600))
        .build();
    let layer = BearerAuthLayer::from_cache(cache).replay(BufferBody::new(Body::new));
    let channel = ServiceBuilder::new()
        .layer(layer.clone())
        .service(connect(addr).await?);
    let client = DemoClient::new(channel);

    let mut calls = 0;
    let mut ok = 0;
    let mut unauthenticated = 0;
    let mut tally = |results: Vec<Result<EchoReply, Status>>| {
        for result in results {
            calls += 1;
            match result {
                Ok(_) => ok += 1,
                Err(status) if status.code() == Code::Unauthenticated => unauthenticated += 1,
                Err(status) => panic!("unexpected status: {status}"),
            }
        }
    };

    // 1. An empty cache: one fetch for all.
    tally(wave(&client, "warm-up").await);
    // 2. Key rotation: every call carries the stale token, is rejected, and is
    //    sent again with the one fresh token fetched for all of them.
    issuer.rotate();
    issuer.hold_stale(CONCURRENCY);
    tally(wave(&client, "rotation").await);
    // 3. One call's token is revoked: that call is retried, the others go on.
    issuer.force_rejections(1);
    tally(wave(&client, "revocation").await);
    // 4. Rejected twice: retried once, then the rejection is the answer.
    issuer.force_rejections(2);
    tally(vec![client.clone().echo("rejected twice").await]);
    // The retry's rejection asked for a replacement, which is paced: the
    // token at hand is still what a call gets, and nothing is fetched.
    layer.cache().acquire().await?;

    Ok(Report {
        calls,
        ok,
        unauthenticated,
        server_rejections: issuer.rejections(),
        issued: issuer.issued(),
        stats: layer.cache().stats(),
    })
}

async fn wave<T>(client: &DemoClient<T>, name: &str) -> Vec<Result<EchoReply, Status>>
where
    T: GrpcService<Body> + Clone + Send + 'static,
    T::Error: Into<BoxError>,
    T::Future: Send,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let calls: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let mut client = client.clone();
            let message = format!("{name} {i}");
            tokio::spawn(async move { client.echo(&message).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.expect("call panicked"));
    }
    results
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let report = run().await?;
    println!(
        "calls: {} ({} ok, {} unauthenticated)",
        report.calls, report.ok, report.unauthenticated
    );
    println!("server rejections: {}", report.server_rejections);
    println!(
        "token fetches: {} (tokens issued: {})",
        report.stats.fetches, report.issued
    );
    println!("retries: {}", report.stats.retries);
    Ok(())
}
