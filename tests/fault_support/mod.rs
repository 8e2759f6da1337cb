//! Loopback servers and sources that misbehave on demand, for the fault and
//! security suites.
//!
//! - [`TokenServer`]: a raw-TCP token endpoint on 127.0.0.1 whose behaviour can
//!   be switched at any time (answer, hang, trickle, huge body, close).
//! - [`Api`]: a hyper API server on 127.0.0.1 that accepts or rejects tokens,
//!   can hold requests, and records every attempt it saw.
//! - [`Scripted`]: a `from_fn` token source with switchable faults (fail,
//!   panic, hang, expired on arrival).
//! - [`Stack`]: `BearerAuthLayer` over a hyper-util client, driving bursts of
//!   concurrent callers, each bounded by a timeout so that a hang fails the test.

#![allow(dead_code, unreachable_pub)]

#[path = "../../examples/support/loopback.rs"]
mod loopback;
pub use loopback::serve as serve_hyper;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::{Layer, ServiceExt};
use tower_bearer::{
    from_fn, AccessToken, BearerAuth, BearerAuthError, BearerAuthLayer, ErrorKind, TokenCache,
    TokenError, TokenSource,
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

// ---------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------

/// What the loopback token endpoint does with the next request.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// 200 with a fresh numbered token `tok-N` and this `expires_in` JSON value
    /// (raw JSON text, e.g. `3600`, `0`, `-5`, `"3600"`), or none.
    Mint { expires_in: Option<String> },
    /// Answers with exactly this status, extra headers and body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// Answers a valid token response one byte per second.
    Trickle,
    /// 200 with a JSON-looking body of this many bytes, streamed, with or
    /// without a `content-length` that says so.
    Huge { size: usize, declared: bool },
    /// Accepts the connection and closes it at once.
    Close,
    /// Answers with this status and the whole request (head and body) echoed
    /// back as `text/html`, like a debugging error page.
    Echo(u16),
}

impl Endpoint {
    pub fn ok() -> Self {
        Endpoint::Mint {
            expires_in: Some("3600".into()),
        }
    }

    pub fn status(status: u16) -> Self {
        Endpoint::Respond {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn json(status: u16, body: &str) -> Self {
        Endpoint::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }
}

struct TokenServerState {
    /// `false`: the listening socket is closed, so connections are refused.
    listening: tokio::sync::watch::Sender<bool>,
    /// What the accept task has done about `listening`.
    bound: tokio::sync::watch::Sender<bool>,
    mode: Mutex<Endpoint>,
    /// Requests that reached the endpoint (fully read).
    requests: AtomicUsize,
    /// Connections accepted.
    connections: AtomicUsize,
    minted: AtomicU64,
    bodies: Mutex<Vec<Bytes>>,
}

/// A token endpoint on 127.0.0.1 speaking just enough HTTP/1.1 (one request per
/// connection, `Connection: close`) to misbehave precisely.
#[derive(Clone)]
pub struct TokenServer {
    state: Arc<TokenServerState>,
    pub addr: SocketAddr,
}

impl TokenServer {
    pub async fn start(mode: Endpoint) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(TokenServerState {
            listening: tokio::sync::watch::Sender::new(true),
            bound: tokio::sync::watch::Sender::new(true),
            mode: Mutex::new(mode),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            minted: AtomicU64::new(0),
            bodies: Mutex::new(Vec::new()),
        });
        let server = TokenServer { state, addr };
        let accept = server.clone();
        tokio::spawn(async move {
            let mut listening = accept.state.listening.subscribe();
            let mut listener = Some(listener);
            loop {
                match &listener {
                    Some(l) => tokio::select! {
                        accepted = l.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            accept.state.connections.fetch_add(1, Ordering::SeqCst);
                            let conn = accept.clone();
                            tokio::spawn(async move { conn.handle(stream).await });
                        }
                        _ = listening.wait_for(|on| !*on) => {
                            listener = None;
                            accept.state.bound.send_replace(false);
                        }
                    },
                    None => {
                        if listening.wait_for(|on| *on).await.is_err() {
                            return;
                        }
                        let socket = tokio::net::TcpSocket::new_v4().unwrap();
                        socket.set_reuseaddr(true).unwrap();
                        socket
                            .bind(addr)
                            .expect("rebinding the token endpoint's port");
                        listener = Some(socket.listen(1024).unwrap());
                        accept.state.bound.send_replace(true);
                    }
                }
            }
        });
        server
    }

    /// Closes (`false`) or reopens (`true`) the listening socket: while closed,
    /// connections are refused. Takes effect once the accept task has run.
    pub async fn listen(&self, on: bool) {
        let mut bound = self.state.bound.subscribe();
        self.state.listening.send_replace(on);
        bound.wait_for(|b| *b == on).await.unwrap();
    }

    pub fn url(&self) -> String {
        format!("http://{}/oauth2/token", self.addr)
    }

    pub fn set(&self, mode: Endpoint) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Requests the endpoint has read so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn bodies(&self) -> Vec<Bytes> {
        self.state.bodies.lock().unwrap().clone()
    }

    async fn handle(&self, mut stream: TcpStream) {
        let mode = self.state.mode.lock().unwrap().clone();
        if let Endpoint::Close = mode {
            return;
        }
        let Some((head, body)) = read_request(&mut stream).await else {
            return;
        };
        self.state.requests.fetch_add(1, Ordering::SeqCst);
        self.state.bodies.lock().unwrap().push(body.clone());
        match mode {
            Endpoint::Close => {}
            Endpoint::Echo(status) => {
                let mut echo = b"<html><pre>".to_vec();
                echo.extend_from_slice(&head);
                echo.extend_from_slice(&body);
                echo.extend_from_slice(b"</pre></html>");
                let _ = stream
                    .write_all(&response_bytes(
                        status,
                        &[("content-type", "text/html")],
                        &echo,
                    ))
                    .await;
            }
            Endpoint::Mint { expires_in } => {
                let n = self.state.minted.fetch_add(1, Ordering::SeqCst) + 1;
                let body = match expires_in {
                    Some(e) => format!(
                        r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{e}}}"#
                    ),
                    None => format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer"}}"#),
                };
                let _ = stream
                    .write_all(&response_bytes(
                        200,
                        &[("content-type", "application/json")],
                        body.as_bytes(),
                    ))
                    .await;
            }
            Endpoint::Respond {
                status,
                headers,
                body,
            } => {
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let _ = stream
                    .write_all(&response_bytes(status, &headers, &body))
                    .await;
            }
            Endpoint::Hang => {
                // Keep the connection open until the client gives up.
                let mut sink = [0u8; 64];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            }
            Endpoint::Trickle => {
                let bytes = response_bytes(
                    200,
                    &[("content-type", "application/json")],
                    br#"{"access_token":"tok-trickle","token_type":"Bearer","expires_in":3600}"#,
                );
                for b in bytes {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if stream.write_all(&[b]).await.is_err() {
                        return;
                    }
                }
            }
            Endpoint::Huge { size, declared } => {
                let length = if declared {
                    format!("content-length: {size}\r\n")
                } else {
                    String::new()
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n"
                );
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if stream.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            }
        }
        let _ = stream.shutdown().await;
    }
}

/// Reads one request head and its `content-length` body.
async fn read_request(stream: &mut TcpStream) -> Option<(Bytes, Bytes)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((
        Bytes::copy_from_slice(&buf[..head_end]),
        Bytes::copy_from_slice(&buf[head_end..head_end + len]),
    ))
}

fn response_bytes(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// An address on 127.0.0.1 where nothing listens (connection refused).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

// ---------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------

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
        let addr = serve_hyper({
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

// ---------------------------------------------------------------------------
// A scripted token source
// ---------------------------------------------------------------------------

/// What the scripted source does on its next fetch.
#[derive(Clone, Debug)]
pub enum Script {
    /// A fresh `tok-N` with this lifetime.
    Ok(Duration),
    /// A fresh `tok-N` that expired before it arrived.
    Expired,
    /// This error.
    Fail(TokenError),
    /// Panics.
    Panic,
    /// Never completes.
    Hang,
    /// Waits until [`Scripted::open`], then a fresh `tok-N` with this lifetime.
    Gate(Duration),
}

struct ScriptedState {
    script: Mutex<Script>,
    calls: AtomicUsize,
    minted: AtomicU64,
    entered: Notify,
    gate: Notify,
    open: std::sync::atomic::AtomicBool,
}

/// A `from_fn` source whose behaviour the test switches.
#[derive(Clone)]
pub struct Scripted {
    state: Arc<ScriptedState>,
}

impl Scripted {
    pub fn new(script: Script) -> Self {
        Scripted {
            state: Arc::new(ScriptedState {
                script: Mutex::new(script),
                calls: AtomicUsize::new(0),
                minted: AtomicU64::new(0),
                entered: Notify::new(),
                gate: Notify::new(),
                open: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    pub fn set(&self, script: Script) {
        *self.state.script.lock().unwrap() = script;
    }

    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Lets every fetch waiting at a [`Script::Gate`] (and every later one) finish.
    pub fn open(&self) {
        self.state.open.store(true, Ordering::SeqCst);
        self.state.gate.notify_waiters();
    }

    /// Waits until the source has been called `n` times in total.
    pub async fn wait_calls(&self, n: usize) {
        loop {
            let entered = self.state.entered.notified();
            if self.calls() >= n {
                return;
            }
            entered.await;
        }
    }

    pub fn source(&self) -> impl TokenSource {
        let state = Arc::clone(&self.state);
        from_fn(move || {
            let state = Arc::clone(&state);
            async move {
                let script = state.script.lock().unwrap().clone();
                state.calls.fetch_add(1, Ordering::SeqCst);
                state.entered.notify_waiters();
                let n = state.minted.fetch_add(1, Ordering::SeqCst) + 1;
                match script {
                    Script::Ok(lifetime) => {
                        Ok(AccessToken::new(format!("tok-{n}")).with_expires_in(lifetime))
                    }
                    Script::Expired => Ok(AccessToken::new(format!("tok-{n}"))
                        .with_expires_at(tokio::time::Instant::now() - Duration::from_secs(1))),
                    Script::Fail(err) => Err(err),
                    Script::Panic => panic!("scripted token source panicked"),
                    Script::Hang => std::future::pending().await,
                    Script::Gate(lifetime) => {
                        let opened = state.gate.notified();
                        if !state.open.load(Ordering::SeqCst) {
                            opened.await;
                        }
                        Ok(AccessToken::new(format!("tok-{n}")).with_expires_in(lifetime))
                    }
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------
// The full stack
// ---------------------------------------------------------------------------

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
