//! Glue, many workspaces, one client: a keyed token cache chosen per request.
//!
//! Glue issues one client-credentials token per workspace (`subject=wks_…`,
//! see `../shared/IDPS.md`). A backend serving many workspaces keeps one
//! `KeyedTokenCache` keyed by workspace; each request names its workspace in
//! an extension, and the layer picks that workspace's token.
//!
//! This example starts a loopback stand-in for Glue: its token endpoint
//! answers `400` to any request not shaped as Glue documents, records which
//! workspace each token was issued for and how many token requests it served
//! at once; its API refuses (`403`) a request whose token belongs to another
//! workspace than the one the request was meant for. Then it serves 1,000
//! workspaces concurrently from one client, with at most 8 token requests in
//! flight, and prints what happened. Run it with
//! `cargo run --example keyed_per_workspace`.

#[path = "../loopback/mod.rs"]
// Tests that include this example include the module too (`tests/support`).
#[allow(clippy::duplicate_mod)]
mod loopback;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::cache::EndpointGate;
use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::oauth2::{ClientAuth, ClientCredentials, HttpClient, TokenEndpoint};
use tower_bearer::BearerAuthLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type HyperClient = Client<HttpConnector, Full<Bytes>>;

pub const CLIENT_ID: &str = "client1";
pub const CLIENT_SECRET: &str = "glue secret&=";
pub const REDIRECT_URI: &str = "http://localhost:3000/oauth/callback";
/// The header a request names its workspace in, for the fixture's check.
pub const WORKSPACE_HEADER: &str = "x-glue-workspace";
/// Glue's tokens last about ten years.
const TEN_YEARS: u64 = 315_705_599;

/// A Glue workspace id (`wks_…`): the key of the token cache. Cheap to clone
/// (a reference count), as a key read on every request should be.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Workspace(pub Arc<str>);

impl Workspace {
    pub fn numbered(n: usize) -> Self {
        Self(format!("wks_{n:06}").into())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let glue = Fixture::start(Duration::from_millis(20)).await;
    let outcome = run(&glue, 1_000, 3).await?;
    println!("{outcome:#?}");
    Ok(())
}

/// What a run observed.
#[derive(Debug)]
pub struct Outcome {
    pub workspaces: usize,
    pub api_requests: usize,
    pub ok: usize,
    /// Requests whose token belonged to another workspace (must be 0).
    pub wrong_workspace: usize,
    pub token_requests: usize,
    pub peak_token_requests_at_once: usize,
    pub keys_held: usize,
}

/// The token cache for Glue workspaces: each workspace's source is the
/// client-credentials grant with that workspace as `subject`.
pub fn workspace_tokens(
    base: &str,
    http: &HyperClient,
    gate: EndpointGate,
) -> Result<KeyedTokenCache<Workspace>, BoxError> {
    let endpoint = TokenEndpoint::builder(format!("{base}/oauth/token"))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .client_auth(ClientAuth::RequestBody)
        // Against the real https:// endpoint, leave this out.
        .http_client(HttpClient::new(http.clone()))
        .build()?;
    Ok(KeyedTokenCache::builder(move |workspace: &Workspace| {
        ClientCredentials::new(endpoint.clone())
            .param("subject", &*workspace.0)
            .param("redirect_uri", REDIRECT_URI)
    })
    .max_keys(10_000)
    .evict_idle_after(Duration::from_secs(3600))
    // Log lines name the workspace, never the token.
    .label(|workspace| workspace.0.to_string())
    .gate(gate)
    .build())
}

/// A GraphQL request meant for `workspace`.
pub fn graphql(base: &str, workspace: &Workspace) -> Request<Full<Bytes>> {
    let mut request = Request::post(format!("{base}/public/graphql"))
        .header(CONTENT_TYPE, "application/json")
        .header(WORKSPACE_HEADER, &*workspace.0)
        .body(Full::from(json!({"query": "{ me { id } }"}).to_string()))
        .unwrap();
    request.extensions_mut().insert(workspace.clone());
    request
}

/// The workspace a request is for: set by the application as an extension.
pub fn workspace_of(request: &Request<Full<Bytes>>) -> Option<Workspace> {
    request.extensions().get::<Workspace>().cloned()
}

pub async fn run(glue: &Fixture, workspaces: usize, rounds: usize) -> Result<Outcome, BoxError> {
    let base = glue.base();
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // At most 8 token requests at once, whatever the number of workspaces.
    let tokens = workspace_tokens(&base, &http, EndpointGate::new(8))?;
    // One client for every workspace: each request gets its workspace's token.
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::keyed(tokens.clone(), workspace_of))
        .service(http);

    let mut ok = 0;
    let mut api_requests = 0;
    for _ in 0..rounds {
        let calls: Vec<_> = (0..workspaces)
            .map(|n| {
                let request = graphql(&base, &Workspace::numbered(n));
                tokio::spawn(client.clone().oneshot(request))
            })
            .collect();
        for call in calls {
            api_requests += 1;
            if call.await??.status() == StatusCode::OK {
                ok += 1;
            }
        }
    }
    let stats = tokens.stats();
    println!(
        "{} workspaces: {} token fetches, {} waits, gate {:?}",
        stats.keys,
        stats.tokens.fetches,
        stats.tokens.waits,
        tokens.gate().stats()
    );
    Ok(Outcome {
        workspaces,
        api_requests,
        ok,
        wrong_workspace: glue.wrong_workspace(),
        token_requests: glue.token_requests(),
        peak_token_requests_at_once: glue.peak_in_flight(),
        keys_held: tokens.len(),
    })
}

// ---- the loopback stand-in for Glue ------------------------------------------

/// Glue's token endpoint and API on 127.0.0.1.
#[derive(Clone)]
pub struct Fixture {
    addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    latency: Mutex<Duration>,
    /// Token → the workspace it was issued for.
    issued: Mutex<HashMap<String, String>>,
    revoked: Mutex<Vec<String>>,
    /// Workspace → `Retry-After` seconds of a 429 its next token request gets.
    overload_next: Mutex<HashMap<String, u64>>,
    requests_by_workspace: Mutex<HashMap<String, usize>>,
    minted: AtomicU64,
    token_requests: AtomicUsize,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    rejected_token_requests: AtomicUsize,
    api_requests: AtomicUsize,
    wrong_workspace: AtomicUsize,
    unknown_token: AtomicUsize,
}

impl Fixture {
    /// Starts the stand-in; each token request takes `latency`.
    pub async fn start(latency: Duration) -> Self {
        let state = Arc::new(State::default());
        *state.latency.lock().unwrap() = latency;
        let server_state = Arc::clone(&state);
        let addr = loopback::serve(move |req| {
            let state = Arc::clone(&server_state);
            async move { state.handle(req).await }
        })
        .await;
        Self { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Token requests received, answered or not.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Token requests for one workspace.
    pub fn token_requests_for(&self, workspace: &Workspace) -> usize {
        let counts = self.state.requests_by_workspace.lock().unwrap();
        counts.get(&*workspace.0).copied().unwrap_or(0)
    }

    /// The most token requests the endpoint was serving at once.
    pub fn peak_in_flight(&self) -> usize {
        self.state.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Token requests refused because they were not shaped as Glue documents.
    pub fn malformed_token_requests(&self) -> usize {
        self.state.rejected_token_requests.load(Ordering::SeqCst)
    }

    pub fn api_requests(&self) -> usize {
        self.state.api_requests.load(Ordering::SeqCst)
    }

    /// API requests whose token belonged to another workspace.
    pub fn wrong_workspace(&self) -> usize {
        self.state.wrong_workspace.load(Ordering::SeqCst)
    }

    /// API requests with a token this endpoint never issued or revoked.
    pub fn unknown_token(&self) -> usize {
        self.state.unknown_token.load(Ordering::SeqCst)
    }

    /// The workspace a token was issued for.
    pub fn workspace_of(&self, token: &str) -> Option<String> {
        self.state.issued.lock().unwrap().get(token).cloned()
    }

    /// The API refuses `token` from now on (`401 invalid_token`).
    pub fn revoke(&self, token: &str) {
        self.state.revoked.lock().unwrap().push(token.to_owned());
    }

    /// The next token request for `workspace` gets `429` with `Retry-After`.
    pub fn overload_next(&self, workspace: &Workspace, retry_after_secs: u64) {
        self.state
            .overload_next
            .lock()
            .unwrap()
            .insert(workspace.0.to_string(), retry_after_secs);
    }

    pub fn set_latency(&self, latency: Duration) {
        *self.state.latency.lock().unwrap() = latency;
    }
}

impl State {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match (req.method(), req.uri().path()) {
            (&Method::POST, "/oauth/token") => self.token(req).await,
            (&Method::POST, "/public/graphql") => self.graphql(&req),
            _ => respond(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
        }
    }

    async fn token(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.token_requests.fetch_add(1, Ordering::SeqCst);
        let at_once = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(at_once, Ordering::SeqCst);
        let response = self.mint(req).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        response
    }

    async fn mint(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let form_ok = req
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v == "application/x-www-form-urlencoded");
        let body = match req.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return respond(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"})),
        };
        let params: HashMap<String, String> =
            serde_urlencoded::from_bytes(&body).unwrap_or_default();
        let param = |k: &str| params.get(k).map(String::as_str);
        let workspace = param("subject").unwrap_or_default().to_owned();
        *self
            .requests_by_workspace
            .lock()
            .unwrap()
            .entry(workspace.clone())
            .or_default() += 1;
        let latency = *self.latency.lock().unwrap();
        tokio::time::sleep(latency).await;
        if !form_ok
            || param("grant_type") != Some("client_credentials")
            || param("client_id") != Some(CLIENT_ID)
            || param("client_secret") != Some(CLIENT_SECRET)
            || param("redirect_uri") != Some(REDIRECT_URI)
            || !workspace.starts_with("wks_")
        {
            self.rejected_token_requests.fetch_add(1, Ordering::SeqCst);
            return respond(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
        }
        if let Some(secs) = self.overload_next.lock().unwrap().remove(&workspace) {
            let mut res = respond(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "rate_limited"}),
            );
            res.headers_mut().insert(RETRY_AFTER, secs.into());
            return res;
        }
        let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("glue_tok_{n}");
        self.issued
            .lock()
            .unwrap()
            .insert(token.clone(), workspace.clone());
        respond(
            StatusCode::OK,
            json!({
                "user_id": format!("usr_app_{workspace}"),
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": TEN_YEARS,
            }),
        )
    }

    fn graphql(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        self.api_requests.fetch_add(1, Ordering::SeqCst);
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let meant_for = req
            .headers()
            .get(WORKSPACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let issued_for = self.issued.lock().unwrap().get(token).cloned();
        let revoked = self.revoked.lock().unwrap().iter().any(|t| t == token);
        match issued_for {
            Some(workspace) if !revoked => {
                if workspace != meant_for {
                    self.wrong_workspace.fetch_add(1, Ordering::SeqCst);
                    return respond(StatusCode::FORBIDDEN, json!({"error": "wrong workspace"}));
                }
                respond(
                    StatusCode::OK,
                    json!({"data": {"me": {"id": format!("usr_app_{workspace}")}}}),
                )
            }
            _ => {
                self.unknown_token.fetch_add(1, Ordering::SeqCst);
                let mut res = respond(StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"}));
                res.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
                res
            }
        }
    }
}

fn respond(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(body.to_string()))
        .unwrap()
}
