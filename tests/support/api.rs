//! The one fake protected API on 127.0.0.1 (hyper, HTTP/1 and HTTP/2, so that
//! a tonic `Channel` speaks to it too). Its [`ApiMode`] says how it treats
//! tokens: accept any, check them against the tokens a [`TokenEndpoint`]
//! issued, reject some or all (with a 401, or gRPC `UNAUTHENTICATED`), or
//! every other request, answer 403, 503 or a first 503, redirect, or hold
//! requests until released. Whatever the mode, it records what arrived
//! (for counts per request id and the `Authorization` values in order) and
//! every attempt it answered (for [`Api::assert_invariants`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::Notify;

use super::loopback;
use super::stack::REQUEST_ID;
use super::token_endpoint::TokenEndpoint;

/// How the API treats the tokens it sees. A request without a bearer token is
/// rejected with 401 in every mode that looks at tokens.
#[derive(Clone)]
pub enum ApiMode {
    /// Any bearer token is fine.
    AcceptAny,
    /// 200 for tokens this endpoint says are valid, 401 `invalid_token` otherwise.
    CheckTokens(TokenEndpoint),
    /// Every request is rejected with 401 `invalid_token`.
    RejectAll,
    /// These tokens are rejected; others accepted.
    Reject(HashSet<String>),
    /// The first `n` requests bearing this token are held until
    /// [`Api::release`], then rejected with 401; later ones bearing it are
    /// rejected at once; others are accepted.
    HoldThenReject(String, usize),
    /// 403 `insufficient_scope` for every request.
    Forbidden,
    /// 503 for the first attempt of each request id, then as `CheckTokens`.
    FlakyThenCheck(TokenEndpoint),
    /// 503 for every request: an answer that says nothing about the token.
    Unavailable,
    /// gRPC `UNAUTHENTICATED` for these tokens, as a gRPC server answers it
    /// (trailers-only: HTTP 200 with `grpc-status: 16` in the headers);
    /// others accepted.
    GrpcUnauthenticated(HashSet<String>),
    /// `302 Found` to this URL for every request.
    RedirectTo(String),
    /// 200 and 401 in turn, whatever the token (a flaky gateway): the first,
    /// third, fifth… request to arrive is accepted, the others rejected.
    Alternate,
}

/// One attempt the API answered.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub request_id: Option<String>,
    pub token: Option<String>,
    pub status: StatusCode,
}

/// What arrived, counted before the API decides anything.
struct Arrival {
    request_id: String,
    authorization: String,
}

struct ApiState {
    mode: Mutex<ApiMode>,
    arrivals: Mutex<Vec<Arrival>>,
    attempts: Mutex<Vec<Attempt>>,
    held: AtomicUsize,
    held_changed: Notify,
    release: Notify,
    released: AtomicBool,
}

/// A protected API on 127.0.0.1. It answers 200 with the request's body and
/// the token it saw in `x-seen-token`, or 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"`.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    state: Arc<ApiState>,
}

impl Api {
    pub async fn start(mode: ApiMode) -> Self {
        let state = Arc::new(ApiState {
            mode: Mutex::new(mode),
            arrivals: Mutex::new(Vec::new()),
            attempts: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            held_changed: Notify::new(),
            release: Notify::new(),
            released: AtomicBool::new(false),
        });
        let addr = loopback::serve({
            let state = Arc::clone(&state);
            move |req| {
                let state = Arc::clone(&state);
                async move { handle(state, req).await }
            }
        })
        .await;
        Api { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, mode: ApiMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Every request that arrived, answered or not.
    pub fn requests(&self) -> usize {
        self.state.arrivals.lock().unwrap().len()
    }

    /// Attempts answered with 401.
    pub fn rejected(&self) -> usize {
        self.attempts()
            .iter()
            .filter(|a| a.status == StatusCode::UNAUTHORIZED)
            .count()
    }

    /// The most times any single request id arrived.
    pub fn max_attempts(&self) -> usize {
        let mut per_id: HashMap<String, usize> = HashMap::new();
        for arrival in self.state.arrivals.lock().unwrap().iter() {
            *per_id.entry(arrival.request_id.clone()).or_default() += 1;
        }
        per_id.into_values().max().unwrap_or(0)
    }

    pub fn attempts_of(&self, id: &str) -> usize {
        self.state
            .arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.request_id == id)
            .count()
    }

    /// `Authorization` values in the order they arrived ("" when absent).
    pub fn seen(&self) -> Vec<String> {
        let arrivals = self.state.arrivals.lock().unwrap();
        arrivals.iter().map(|a| a.authorization.clone()).collect()
    }

    /// Every attempt answered, in the order the answers were decided.
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

/// Records the arrival, lets the mode decide, records the answer.
async fn handle(state: Arc<ApiState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header(REQUEST_ID);
    let authorization = header(AUTHORIZATION.as_str()).unwrap_or_default();
    let token = authorization.strip_prefix("Bearer ").map(str::to_owned);
    let (attempt, nth) = {
        let mut arrivals = state.arrivals.lock().unwrap();
        let id = request_id.clone().unwrap_or_default();
        arrivals.push(Arrival {
            request_id: id.clone(),
            authorization,
        });
        let attempt = arrivals.iter().filter(|a| a.request_id == id).count();
        (attempt, arrivals.len())
    };
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mode = state.mode.lock().unwrap().clone();
    let grpc_rejection = match (&mode, &token) {
        (ApiMode::GrpcUnauthenticated(tokens), Some(t)) => tokens.contains(t),
        _ => false,
    };
    let status = match mode {
        ApiMode::Alternate if nth % 2 == 0 => StatusCode::UNAUTHORIZED,
        ApiMode::Alternate => StatusCode::OK,
        _ => decide(&state, &mode, token.as_deref(), attempt).await,
    };
    state.attempts.lock().unwrap().push(Attempt {
        request_id,
        token: token.clone(),
        status,
    });
    let mut res = Response::builder().status(status);
    match status {
        StatusCode::UNAUTHORIZED => {
            res = res.header(WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)
        }
        StatusCode::FORBIDDEN => {
            res = res.header(WWW_AUTHENTICATE, r#"Bearer error="insufficient_scope""#)
        }
        _ => {}
    }
    if grpc_rejection {
        res = res
            .header("content-type", "application/grpc")
            .header("grpc-status", "16")
            .header("grpc-message", "stale%20token");
    }
    if let ApiMode::RedirectTo(to) = &mode {
        res = res.header(http::header::LOCATION, to.as_str());
    }
    if let Some(t) = &token {
        res = res.header("x-seen-token", t.as_str());
    }
    let body = if status == StatusCode::OK {
        body
    } else {
        Bytes::new()
    };
    res.body(Full::new(body)).unwrap()
}

/// The status `mode` gives a request bearing `token`, on the `attempt`-th
/// arrival of its request id; holds it first where the mode says so.
async fn decide(
    state: &ApiState,
    mode: &ApiMode,
    token: Option<&str>,
    attempt: usize,
) -> StatusCode {
    let accepted = match (mode, token) {
        (ApiMode::Forbidden, _) => return StatusCode::FORBIDDEN,
        (ApiMode::Unavailable, _) => return StatusCode::SERVICE_UNAVAILABLE,
        (ApiMode::Alternate, _) => unreachable!("decided by arrival"),
        (ApiMode::RedirectTo(_), _) => return StatusCode::FOUND,
        (ApiMode::FlakyThenCheck(_), _) if attempt == 1 => return StatusCode::SERVICE_UNAVAILABLE,
        (_, None) | (ApiMode::RejectAll, _) => false,
        // A gRPC rejection is a 200 (its status is in `grpc-status`).
        (ApiMode::AcceptAny | ApiMode::GrpcUnauthenticated(_), _) => true,
        (ApiMode::CheckTokens(tokens) | ApiMode::FlakyThenCheck(tokens), Some(t)) => {
            tokens.is_valid(t)
        }
        (ApiMode::Reject(set), Some(t)) => !set.contains(t),
        (ApiMode::HoldThenReject(held, n), Some(t)) if held == t => {
            let released = state.release.notified();
            if !state.released.load(Ordering::SeqCst) && state.held.load(Ordering::SeqCst) < *n {
                state.held.fetch_add(1, Ordering::SeqCst);
                state.held_changed.notify_waiters();
                released.await;
            }
            false
        }
        (ApiMode::HoldThenReject(..), Some(_)) => true,
    };
    if accepted {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// A GET request to `url` tagged with `x-request-id: id`.
pub fn get(url: &str, id: usize) -> Request<Full<Bytes>> {
    Request::get(url)
        .header(REQUEST_ID, id.to_string())
        .header("user-agent", "tower-bearer-tests")
        .body(Full::default())
        .unwrap()
}
