//! A token endpoint on 127.0.0.1 minting numbered tokens (`tok-1`, `tok-2`, …)
//! with a fixed lifetime, which can fail on demand and revoke tokens, and the
//! plain hyper clients the lifecycle suites drive it with.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower_bearer::BoxTokenSource;
use tower_bearer::{from_fn, AccessToken, TokenError};

use super::loopback;

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

#[derive(Default)]
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
            lifetime,
            latency,
            ..TokenState::default()
        });
        let handler_state = Arc::clone(&state);
        let addr = loopback::serve(move |_req| {
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
