//! `BearerAuthLayer` over a hyper-util client, pointed at a
//! [`api::Api`](super::api::Api), driving bursts of
//! concurrent callers, each bounded by a timeout so that a hang fails the test;
//! and asserts over what the callers got.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::api::Api;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_bearer::{
    BearerAuth, BearerAuthError, BearerAuthLayer, ErrorKind, TokenCache, TokenSource,
};

/// How long one caller may take before the test calls it a hang. Tests run on
/// tokio's paused clock, so this is virtual time and costs nothing.
pub const CALL_BOUND: Duration = Duration::from_secs(300);

/// The header carrying a request's id, so that the API can count attempts.
pub const REQUEST_ID: &str = "x-request-id";

pub type HyperClient = Client<HttpConnector, Full<Bytes>>;
pub type AuthClient = BearerAuth<HyperClient>;

pub fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What one caller got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response, with the token the API saw.
    Response(StatusCode, Option<String>),
    /// No token could be had; the request was not sent.
    Token(ErrorKind),
    /// The HTTP client failed.
    Service,
}

impl Outcome {
    pub fn is_ok_with(&self, token: &str) -> bool {
        matches!(self, Outcome::Response(StatusCode::OK, Some(t)) if t == token)
    }
}

/// `BearerAuthLayer` over a hyper-util client, pointed at an [`Api`].
#[derive(Clone)]
pub struct Stack {
    pub client: AuthClient,
    pub cache: TokenCache,
    pub api: Api,
    next_id: Arc<AtomicU64>,
}

impl Stack {
    pub fn new(cache: TokenCache, api: Api) -> Self {
        let client = BearerAuthLayer::from_cache(cache.clone()).layer(hyper_client());
        Stack {
            client,
            cache,
            api,
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn request(&self) -> Request<Full<Bytes>> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        Request::get(self.api.url("/v1/things"))
            .header(REQUEST_ID, HeaderValue::from(id))
            .body(Full::default())
            .unwrap()
    }

    /// One caller, bounded by [`CALL_BOUND`].
    pub async fn call(&self) -> Outcome {
        let request = self.request();
        let client = self.client.clone();
        match tokio::time::timeout(CALL_BOUND, client.oneshot(request)).await {
            Err(_) => panic!("a caller hung for {CALL_BOUND:?}"),
            Ok(Ok(res)) => Outcome::Response(
                res.status(),
                res.headers()
                    .get("x-seen-token")
                    .map(|v| v.to_str().unwrap().to_owned()),
            ),
            Ok(Err(BearerAuthError::Token(err))) => Outcome::Token(err.kind()),
            Ok(Err(BearerAuthError::Service(_))) => Outcome::Service,
        }
    }

    /// `n` concurrent callers, each bounded by [`CALL_BOUND`]; panics (fails the
    /// test) if any of them hangs or panics.
    pub async fn burst(&self, n: usize) -> Vec<Outcome> {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let stack = self.clone();
                tokio::spawn(async move { stack.call().await })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            out.push(h.await.expect("a caller panicked"));
        }
        out
    }
}

/// A cache tuned for the suites: short backoff and fetch timeout so that virtual
/// time stays small, otherwise defaults.
pub fn cache_for(source: impl TokenSource) -> TokenCache {
    TokenCache::builder(source)
        .fetch_timeout(Duration::from_secs(5))
        .backoff(Duration::from_millis(250), Duration::from_secs(30))
        .build()
}

/// Asserts that every outcome is a token error of `kind`.
#[track_caller]
pub fn assert_all_token_errors(outcomes: &[Outcome], kind: ErrorKind) {
    for o in outcomes {
        assert_eq!(o, &Outcome::Token(kind), "outcomes: {outcomes:?}");
    }
}

/// Asserts that every outcome is a 200 that carried `token`.
#[track_caller]
pub fn assert_all_ok_with(outcomes: &[Outcome], token: &str) {
    for o in outcomes {
        assert!(o.is_ok_with(token), "expected 200 with {token}, got {o:?}");
    }
}
