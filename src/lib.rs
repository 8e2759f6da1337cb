//! Tower middleware for authenticated outbound HTTP.
//!
//! Wrap your HTTP client (hyper-util's `Client`, a tonic `Channel`, any
//! [`tower::Service`](tower_service::Service)) in a [`BearerAuthLayer`]. Every request
//! leaves with `Authorization: Bearer <token>`; the token comes from a pluggable
//! [`TokenSource`] and is kept in a [`TokenCache`] that
//!
//! - reads the current token without a lock or an allocation, checking its
//!   expiry against a coarse clock that needs no runtime, so one cache can
//!   serve clients on many runtimes;
//! - fetches **once** however many callers need a token at the same moment, in a
//!   task of its own, so a cancelled caller strands no one;
//! - refreshes **ahead** of expiry on use, while the current token is still
//!   served, so callers rarely wait; an idle token is never refreshed;
//! - **backs off** after failures (capped, jittered, honouring `Retry-After`) and
//!   keeps serving a still-valid token while a refresh fails;
//! - drops a token a server **rejected** (401 / gRPC `UNAUTHENTICATED`) only if it
//!   is still current, so a thousand rejections cause one refresh, and never
//!   replays a request with the token that was just rejected.
//!
//! A rejected request is sent again **once** with a fresh token, if its body
//! can be replayed; a second rejection is returned as is. The caller always
//! gets the API's own answer unless no token can be had at all: what a run of
//! rejections bounds is the token requests. After three replacements in a
//! row, each further one waits a pace (250 ms doubling to 30 s); meanwhile
//! requests are sent once with the token at hand and their callers get the
//! API's answer, its `WWW-Authenticate` included. [`exchange`] has the whole
//! decision, the same for every front end.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_bearer::{from_fn, AccessToken, BearerAuthLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Any async closure can be a token source; see `oauth2` for the standard grants.
//! let source = from_fn(|| async {
//!     Ok(AccessToken::new("t0k3n").with_expires_in(Duration::from_secs(3600)))
//! });
//! let layer = BearerAuthLayer::new(source);
//! let cache = layer.cache().clone();
//!
//! // Stands in for your HTTP client.
//! let api = service_fn(|req: Request<Full<Bytes>>| async move {
//!     let ok = req.headers()["authorization"] == "Bearer t0k3n";
//!     let status = if ok { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
//!     Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
//! });
//! let client = ServiceBuilder::new().layer(layer).service(api);
//!
//! let req = Request::get("http://127.0.0.1/v1/things").body(Full::default()).unwrap();
//! let res = client.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(cache.stats().fetches, 1);
//! # }
//! ```
//!
//! # Many tenants
//!
//! One client serving many tenants, each with its own token (a workspace, an
//! audience, a user), keeps a [`KeyedTokenCache`](keyed::KeyedTokenCache): the key comes from the
//! request ([`BearerAuthLayer::keyed`]), a factory makes each key's source,
//! every single-token guarantee holds per key, memory is bounded (least
//! recently used and idle keys go, no task per key), and an [`EndpointGate`](cache::EndpointGate)
//! caps the token requests in flight across keys and pauses every key when
//! the endpoint answers `429` or `temporarily_unavailable`.
//!
//! # Stacking with timeouts and retries
//!
//! Put `BearerAuthLayer` **inside** (after) tower's retry and timeout layers:
//!
//! ```text
//! ServiceBuilder::new()
//!     .timeout(total)                    // bounds everything: token wait, attempts, backoff
//!     .retry(RetryServerErrors::new(2))  // each attempt passes through BearerAuth again, so
//!                                        // a retried request picks up the current token
//!     .layer(BearerAuthLayer::new(source))
//!     .service(client)
//! ```
//!
//! `examples/stack.rs` is this stack, ready to copy, with its
//! `RetryServerErrors` policy (5xx, and transport errors of idempotent
//! requests).
//!
//! The timeout outermost bounds the caller's total wait, including a token
//! fetch. The retry layer above `BearerAuthLayer` makes each 5xx retry read the
//! cache again instead of reusing a header from the first attempt. Token
//! rejections are handled by `BearerAuthLayer` itself (once), so the retry policy
//! should not retry 401s.
//!
//! # Bodies and replay
//!
//! A request can only be sent twice if its body can be: the default
//! [`CloneBody`](replay::CloneBody) policy handles bodies that are `Clone`
//! (`Full<Bytes>`, `String`, `Empty`). Streams (a tonic request, a forwarded
//! hyper `Incoming`, a `StreamBody`) are recorded as they are sent, up to a
//! cap, by [`BufferBody`](replay::BufferBody), and replayed from that
//! recording; see [`replay`]. Use [`BearerAuthLayer::no_replay`] to never send
//! a request twice.
//!
//! # gRPC
//!
//! A tonic `Channel` is an HTTP service like any other. Its request bodies
//! are streams, so pair the layer with [`BufferBody`](replay::BufferBody),
//! which records them (64 KiB by default) for a replay. The default
//! classifier treats a `grpc-status: 16` (`UNAUTHENTICATED`) response, which
//! tonic servers send as a trailers-only HTTP 200, as a rejection. A
//! `Channel`'s requests carry a relative URI (the channel adds its origin
//! below the layer): name the origin with
//! [`relative_uri_origin`](BearerAuthLayer::relative_uri_origin) for DPoP
//! proofs and [`only_for_origins`](BearerAuthLayer::only_for_origins).
//!
//! ```no_run
//! use tonic::body::Body;
//! use tonic::transport::Channel;
//! use tower_bearer::replay::BufferBody;
//! use tower_bearer::{BearerAuthLayer, Origin, StaticToken};
//!
//! # async fn channel() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = BearerAuthLayer::new(StaticToken::new("api-key"))
//!     .replay(BufferBody::new(Body::new))
//!     .relative_uri_origin(Origin::parse("http://127.0.0.1:50051")?);
//! let channel = tower::ServiceBuilder::new()
//!     .layer(layer)
//!     .service(Channel::from_static("http://127.0.0.1:50051").connect().await?);
//! // Hand `channel` to any generated or hand-written tonic client.
//! # let _ = channel; Ok(()) }
//! ```
//!
//! `examples/grpc.rs` runs a tonic server and client across a key rotation
//! and a revoked token.
//!
//! # A fleet
//!
//! With the `redis` feature, `shared_tier::SharedTier` wraps a source so
//! that many processes share one token through Redis: one of them fetches
//! (under a lease), the others read, and every process's cache stays its hot
//! path. See the module for how it works and how it fails safe.
//!
//! # Other clients, TLS, errors and metrics
//!
//! - **reqwest**: `reqwest::BearerAuthMiddleware` for reqwest-middleware
//!   (feature `reqwest-middleware`), `reqwest::ReqwestService` to put a
//!   plain `reqwest::Client` under the layer (feature `reqwest`).
//! - **The platform's own identity**: [`platform`] has the token sources of
//!   Google Cloud's metadata server and workload identity federation,
//!   Azure's managed and workload identity, and GitHub Actions' OIDC token,
//!   with choosers that read the environment as the platforms' SDKs do.
//! - **Any client**: the [`TokenCache`] protocol (`current`, `acquire`,
//!   `replace`, `reject`, `accepted`).
//! - **TLS and proxies for the token endpoint**: [`oauth2::HttpClient::builder`]
//!   (extra roots, platform roots, a rustls `ClientConfig`, a client
//!   certificate, proxies from the environment or set in code). A
//!   certificate failure is a permanent error that names its cause.
//! - **Errors**: `Display` never repeats the source, so chains print each
//!   message once; [`TokenError::find_in`] finds the token error in any
//!   error chain (a tower `BoxError`, an `anyhow::Error`).
//! - **Metrics** (feature `metrics`): see below.
//!
//! # Metrics
//!
//! With the `metrics` feature the cache pushes what it does through the
//! `metrics` facade, so any exporter (Prometheus, OpenTelemetry, StatsD)
//! sees it. Every metric has a `cache` label with the cache's
//! [name](TokenCacheBuilder::name), which also goes on the
//! `tower_bearer.fetch` tracing span; [`TokenCache::stats`] gives the same
//! counts on demand.
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `tower_bearer_fetches_total` | counter | `cache`, `reason` (`empty`, `expired`, `refresh_ahead`, `rejected`), `outcome` (`ok`, `transient_error`, `permanent_error`, `timeout`, `panicked`, `abandoned`) |
//! | `tower_bearer_fetch_duration_seconds` | histogram | `cache`, `reason`, `outcome` |
//! | `tower_bearer_waits_total` | counter | `cache`: callers that waited for a fetch |
//! | `tower_bearer_invalidations_total` | counter | `cache`: tokens dropped after a rejection |
//! | `tower_bearer_retries_total` | counter | `cache`: requests sent once more |
//! | `tower_bearer_paced_rejections_total` | counter | `cache`: rejections returned without a replay because the replacement was paced |
//! | `tower_bearer_token_expires_in_seconds` | gauge | `cache`: the current token's life when it was installed (0 once rejected) |
//! | `tower_bearer_token_expiry_timestamp_seconds` | gauge | `cache`: when the current token expires, Unix time; alert on `… - time() < 60` |
//!
//! # Secrets
//!
//! Tokens, client secrets, refresh tokens, PKCE verifiers, authorization
//! codes, private keys, signed assertions and exchanged tokens are printed as
//! `[redacted]` by every `Debug` and `Display`, never
//! appear in tracing events, and the `Authorization` header value is marked
//! sensitive.
//!
//! A request that arrives with an `Authorization` header of its own gets the
//! layer's token instead ([`CallerAuthorization`](exchange::CallerAuthorization)): a proxy never forwards
//! its callers' credentials upstream (`examples/proxy.rs`).
//!
//! The token goes to every request that passes through the layer. If some
//! requests may go elsewhere (a redirect-following layer outside this one, a
//! client shared between APIs), restrict it with
//! [`BearerAuthLayer::only_for_origins`]; or put tower-http's `FollowRedirect`
//! *inside* `BearerAuthLayer`, where its default policy strips the header when
//! a redirect leaves the origin. `RELIABILITY.md` lists how the crate handles
//! every failure of a token endpoint or an API, and the test that shows it.

#![deny(missing_docs, unsafe_code, unreachable_pub)]
#![warn(missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cache;
pub mod classify;
pub mod dpop;
mod error;
pub mod exchange;
pub mod keyed;
mod layer;
pub mod oauth2;
mod origin;
pub mod platform;
mod redact;
pub mod replay;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
mod secret;
pub mod service;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod shared_tier;
mod source;
mod token;
mod token_ask;
mod www_authenticate;

pub use crate::cache::{TokenCache, TokenCacheBuilder};
pub use crate::error::{BearerAuthError, BoxError, CacheError, ErrorKind, TokenError};
pub use crate::layer::BearerAuthLayer;
pub use crate::origin::{InvalidOrigin, Origin};
pub use crate::secret::Secret;
pub use crate::service::BearerAuth;
pub use crate::source::{from_fn, BoxTokenSource, FnSource, StaticToken, TokenSource};
pub use crate::token::{AccessToken, Expiry};
pub use crate::token_ask::TokenAsk;

/// The README's Rust snippets, compiled by `cargo test --all-features` so
/// that what users copy builds.
#[cfg(all(
    doctest,
    feature = "rustls",
    feature = "reqwest-middleware",
    feature = "metrics"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
