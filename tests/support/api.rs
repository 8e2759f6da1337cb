//! A protected API on 127.0.0.1 that checks tokens against a
//! [`TokenEndpoint`](super::token_endpoint::TokenEndpoint), in one of a few
//! modes, counting requests and attempts per request id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::loopback;
use super::token_endpoint::TokenEndpoint;

/// How the protected API answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ApiMode {
    /// 200 for tokens the endpoint says are valid, 401 `invalid_token` otherwise.
    #[default]
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

impl Api {
    pub async fn start(tokens: TokenEndpoint, mode: ApiMode) -> Self {
        let state = Arc::new(ApiState {
            mode: Mutex::new(mode),
            ..ApiState::default()
        });
        let handler_state = Arc::clone(&state);
        let addr = loopback::serve(move |req: Request<Incoming>| {
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

#[derive(Default)]
struct ApiState {
    mode: Mutex<ApiMode>,
    requests: AtomicUsize,
    rejected: AtomicUsize,
    /// How often each `x-request-id` arrived.
    attempts: Mutex<HashMap<String, usize>>,
    /// Authorization values seen, in order.
    seen: Mutex<Vec<String>>,
}

/// A GET request to `url` tagged with `x-request-id: id`.
pub fn get(url: &str, id: usize) -> Request<Full<Bytes>> {
    Request::get(url)
        .header("x-request-id", id.to_string())
        .header("user-agent", "tower-bearer-tests")
        .body(Full::default())
        .unwrap()
}
