//! Loopback servers for the core tests: a token endpoint that mints numbered
//! tokens, and a protected API that checks them.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower_bearer::source::BoxTokenSource;
use tower_bearer::{from_fn, AccessToken, TokenError};

#[path = "../../examples/support/loopback.rs"]
mod loopback;
pub use loopback::serve;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2-only client: many concurrent requests share one connection.
pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A token endpoint minting `tok-1`, `tok-2`, … with a fixed lifetime.
#[derive(Clone)]
pub struct TokenEndpoint {
    pub addr: SocketAddr,
    state: Arc<TokenState>,
}

struct TokenState {
    minted: AtomicUsize,
    attempts: AtomicUsize,
    lifetime: Duration,
    latency: Duration,
    failing: AtomicBool,
    issued: Mutex<HashMap<String, Instant>>,
    revoked: Mutex<HashSet<String>>,
}

impl TokenEndpoint {
    pub async fn start(lifetime: Duration, latency: Duration) -> Self {
        let state = Arc::new(TokenState {
            minted: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
            lifetime,
            latency,
            failing: AtomicBool::new(false),
            issued: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashSet::new()),
        });
        let handler_state = Arc::clone(&state);
        let addr = serve(move |_req| {
            let state = Arc::clone(&handler_state);
            async move {
                state.attempts.fetch_add(1, Ordering::SeqCst);
                if !state.latency.is_zero() {
                    tokio::time::sleep(state.latency).await;
                }
                if state.failing.load(Ordering::SeqCst) {
                    return json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"error":"temporarily_unavailable"}"#.into(),
                    );
                }
                let n = state.minted.fetch_add(1, Ordering::SeqCst) + 1;
                let token = format!("tok-{n}");
                state
                    .issued
                    .lock()
                    .unwrap()
                    .insert(token.clone(), Instant::now() + state.lifetime);
                json(
                    StatusCode::OK,
                    format!(
                        r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                        state.lifetime.as_secs_f64()
                    ),
                )
            }
        })
        .await;
        Self { addr, state }
    }

    /// Tokens minted so far: the number of successful fetches.
    pub fn minted(&self) -> usize {
        self.state.minted.load(Ordering::SeqCst)
    }

    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// `true` if `token` was minted here, has not expired and was not revoked.
    pub fn is_valid(&self, token: &str) -> bool {
        !self.state.revoked.lock().unwrap().contains(token)
            && self
                .state
                .issued
                .lock()
                .unwrap()
                .get(token)
                .is_some_and(|exp| Instant::now() < *exp)
    }

    /// Revokes `token`, which may not have been minted yet (a token the API
    /// will refuse on its first use).
    pub fn revoke(&self, token: &str) {
        self.state.revoked.lock().unwrap().insert(token.to_owned());
    }

    /// Token requests received, successful or not.
    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }

    /// A token source that posts to this endpoint and parses its JSON.
    ///
    /// It keeps no idle connection: a pooled connection belongs to the
    /// runtime that opened it, and the cache may fetch from any runtime.
    pub fn source(&self) -> BoxTokenSource {
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        let url = format!("http://{}/token", self.addr);
        BoxTokenSource::new(from_fn(move || {
            let client = client.clone();
            let url = url.clone();
            async move {
                let req = Request::post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Full::new(Bytes::from_static(
                        b"grant_type=client_credentials",
                    )))
                    .unwrap();
                let res = client.request(req).await.map_err(|e| {
                    TokenError::transient(format!("token endpoint unreachable: {e}"))
                })?;
                let status = res.status();
                let body = res
                    .into_body()
                    .collect()
                    .await
                    .map_err(|_| TokenError::transient("token response body failed"))?
                    .to_bytes();
                if !status.is_success() {
                    return Err(TokenError::transient(format!(
                        "token endpoint answered {status}"
                    )));
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|_| TokenError::permanent("bad json"))?;
                let token = v["access_token"]
                    .as_str()
                    .ok_or_else(|| TokenError::permanent("no access_token"))?;
                let lifetime = v["expires_in"].as_f64().unwrap_or(3600.0);
                Ok(AccessToken::new(token).with_expires_in(Duration::from_secs_f64(lifetime)))
            }
        }))
    }
}

pub fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// How the protected API answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiMode {
    /// 200 for tokens the endpoint says are valid, 401 `invalid_token` otherwise.
    CheckTokens,
    /// 401 for every request.
    RejectAll,
    /// 403 `insufficient_scope` for every request.
    Forbidden,
    /// 503 for the first attempt of each request id, then as `CheckTokens`.
    FlakyThenCheck,
}

/// A protected API on 127.0.0.1 that validates tokens against a [`TokenEndpoint`].
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    state: Arc<ApiState>,
}

struct ApiState {
    mode: Mutex<ApiMode>,
    requests: AtomicUsize,
    rejected: AtomicUsize,
    /// How often each `x-request-id` arrived.
    attempts: Mutex<HashMap<String, usize>>,
    /// Authorization values seen, in order.
    seen: Mutex<Vec<String>>,
}

impl Api {
    pub async fn start(tokens: TokenEndpoint, mode: ApiMode) -> Self {
        let state = Arc::new(ApiState {
            mode: Mutex::new(mode),
            requests: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            attempts: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
        });
        let handler_state = Arc::clone(&state);
        let addr = serve(move |req: Request<Incoming>| {
            let state = Arc::clone(&handler_state);
            let tokens = tokens.clone();
            async move {
                state.requests.fetch_add(1, Ordering::SeqCst);
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let attempt = {
                    let mut attempts = state.attempts.lock().unwrap();
                    let n = attempts.entry(id).or_insert(0);
                    *n += 1;
                    *n
                };
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                state.seen.lock().unwrap().push(auth.clone());
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let mode = *state.mode.lock().unwrap();
                let token_ok = auth
                    .strip_prefix("Bearer ")
                    .is_some_and(|t| tokens.is_valid(t));
                let reject = || {
                    state.rejected.fetch_add(1, Ordering::SeqCst);
                    Response::builder()
                        .status(StatusCode::UNAUTHORIZED)
                        .header("www-authenticate", r#"Bearer error="invalid_token""#)
                        .body(Full::default())
                        .unwrap()
                };
                match mode {
                    ApiMode::RejectAll => reject(),
                    ApiMode::Forbidden => Response::builder()
                        .status(StatusCode::FORBIDDEN)
                        .header("www-authenticate", r#"Bearer error="insufficient_scope""#)
                        .body(Full::default())
                        .unwrap(),
                    ApiMode::FlakyThenCheck if attempt == 1 => Response::builder()
                        .status(StatusCode::SERVICE_UNAVAILABLE)
                        .body(Full::default())
                        .unwrap(),
                    _ if token_ok => Response::new(Full::new(body)),
                    _ => reject(),
                }
            }
        })
        .await;
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_mode(&self, mode: ApiMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn rejected(&self) -> usize {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// The most times any single request id arrived.
    pub fn max_attempts(&self) -> usize {
        self.state
            .attempts
            .lock()
            .unwrap()
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }

    pub fn attempts_of(&self, id: &str) -> usize {
        self.state
            .attempts
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    pub fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().clone()
    }
}

/// A GET request to `url` tagged with `x-request-id: id`.
pub fn get(url: &str, id: usize) -> Request<Full<Bytes>> {
    Request::get(url)
        .header("x-request-id", id.to_string())
        .header("user-agent", "tower-bearer-tests")
        .body(Full::default())
        .unwrap()
}
