//! A protected API on 127.0.0.1 (hyper, HTTP/1) that accepts or rejects tokens,
//! can hold requests, and records every attempt it saw.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::loopback;
use super::stack::REQUEST_ID;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::Notify;

/// How the loopback API treats the tokens it sees.
#[derive(Clone, Debug)]
pub enum ApiMode {
    /// Any bearer token is fine.
    AcceptAny,
    /// Every token is rejected with 401 `invalid_token`.
    RejectAll,
    /// These tokens are rejected; others accepted.
    Reject(HashSet<String>),
    /// The first `n` requests bearing this token are held until
    /// [`Api::release`], then rejected with 401; later ones bearing it are
    /// rejected at once; others are accepted.
    HoldThenReject(String, usize),
}

/// One attempt the API saw.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub request_id: Option<String>,
    pub token: Option<String>,
    pub status: StatusCode,
}

struct ApiState {
    mode: Mutex<ApiMode>,
    attempts: Mutex<Vec<Attempt>>,
    held: AtomicUsize,
    held_changed: Notify,
    release: Notify,
    released: std::sync::atomic::AtomicBool,
}

/// A protected API on 127.0.0.1 (hyper, HTTP/1). It answers 200 with the token
/// it saw in `x-seen-token`, or 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
#[derive(Clone)]
pub struct Api {
    state: Arc<ApiState>,
    pub addr: SocketAddr,
}

impl Api {
    pub async fn start(mode: ApiMode) -> Self {
        let state = Arc::new(ApiState {
            mode: Mutex::new(mode),
            attempts: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            held_changed: Notify::new(),
            release: Notify::new(),
            released: std::sync::atomic::AtomicBool::new(false),
        });
        let addr = loopback::serve({
            let state = Arc::clone(&state);
            move |req| {
                let state = Arc::clone(&state);
                async move { api_handle(state, req).await }
            }
        })
        .await;
        Api { state, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, mode: ApiMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.state.attempts.lock().unwrap().clone()
    }

    /// Waits until `n` requests are being held.
    pub async fn wait_held(&self, n: usize) {
        loop {
            let notified = self.state.held_changed.notified();
            if self.state.held.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }

    /// Lets every held request (and every later one) through to its 401.
    pub fn release(&self) {
        self.state.released.store(true, Ordering::SeqCst);
        self.state.release.notify_waiters();
    }

    /// Checks the invariants every fault test shares: no request reached the API
    /// without a token, no request was sent more than twice, and a retried
    /// request never carried the same token twice.
    pub fn assert_invariants(&self) {
        let attempts = self.attempts();
        let mut per_request: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for a in &attempts {
            assert!(
                a.token.is_some(),
                "a request reached the API without a token: {a:?}"
            );
            if let Some(id) = &a.request_id {
                per_request
                    .entry(id.clone())
                    .or_default()
                    .push(a.token.clone());
            }
        }
        for (id, tokens) in per_request {
            assert!(
                tokens.len() <= 2,
                "request {id} was sent {} times",
                tokens.len()
            );
            if tokens.len() == 2 {
                assert_ne!(
                    tokens[0], tokens[1],
                    "request {id} was retried with the token that was just rejected"
                );
            }
        }
    }
}

async fn api_handle(state: Arc<ApiState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mode = state.mode.lock().unwrap().clone();
    let reject = match (&mode, &token) {
        (_, None) => true,
        (ApiMode::AcceptAny, _) => false,
        (ApiMode::RejectAll, _) => true,
        (ApiMode::Reject(set), Some(t)) => set.contains(t),
        (ApiMode::HoldThenReject(held, n), Some(t)) if held == t => {
            let released = state.release.notified();
            if !state.released.load(Ordering::SeqCst) && state.held.load(Ordering::SeqCst) < *n {
                state.held.fetch_add(1, Ordering::SeqCst);
                state.held_changed.notify_waiters();
                released.await;
            }
            true
        }
        (ApiMode::HoldThenReject(..), Some(_)) => false,
    };
    let status = if reject {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    state.attempts.lock().unwrap().push(Attempt {
        request_id,
        token: token.clone(),
        status,
    });
    let mut res = Response::builder().status(status);
    if reject {
        res = res.header(
            http::header::WWW_AUTHENTICATE,
            r#"Bearer realm="api", error="invalid_token""#,
        );
    }
    if let Some(t) = &token {
        res = res.header("x-seen-token", t.as_str());
    }
    res.body(Full::default()).unwrap()
}
