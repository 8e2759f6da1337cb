//! Token exchange (RFC 8693): a Kubernetes workload trades its projected
//! service-account token, which the kubelet rotates on disk, for an access
//! token to an internal API.
//!
//! The documented exchange: `POST {sts}/oauth2/token` with
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//! `subject_token` (the file's contents), `subject_token_type` (`…:jwt`),
//! `requested_token_type` (`…:access_token`), `audience`, `resource` and
//! `scope`; the client authenticates as usual (here HTTP Basic). The answer
//! is `{access_token, issued_token_type, token_type: "Bearer", expires_in}`.
//!
//! This example starts loopback stand-ins for the security token service
//! (STS) and the API. The STS accepts only the subject tokens the cluster
//! currently vouches for, checks every parameter, and answers `400` to
//! anything else. Midway, the kubelet rotates the token file and the cluster
//! stops vouching for the old token; the API forgets the access token. The
//! next call is rejected once, and the exchange that follows reads the new
//! token from the file. Run it with `cargo run --example token_exchange`.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::oauth2::{HttpClient, SecurityToken, TokenEndpoint, TokenExchange, TokenType};
use tower_bearer::BearerAuthLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const CLIENT_ID: &str = "billing-gateway";
pub const CLIENT_SECRET: &str = "gw-s3cret/+=";
pub const AUDIENCE: &str = "billing-api";
pub const RESOURCE: &str = "https://billing.internal.example.com/";
pub const SCOPE: &str = "invoices:read";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let cluster = Fixture::start().await;
    let outcome = run(&cluster).await?;
    println!("{outcome:#?}");
    Ok(())
}

/// What the run observed.
#[derive(Debug)]
pub struct Outcome {
    /// The API's answers: two calls, then the call after the rotation.
    pub statuses: Vec<StatusCode>,
    pub fetches: u64,
    pub retries: u64,
    /// The subject tokens the STS accepted, in order.
    pub exchanged: Vec<String>,
}

pub async fn run(cluster: &Fixture) -> Result<Outcome, BoxError> {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let token_file = TokenFile::new()?;
    cluster.kubelet_writes(&token_file, 1)?;

    let sts = TokenEndpoint::builder(format!("{}/oauth2/token", cluster.base()))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .http_client(HttpClient::new(http.clone())) // leave out against an https:// STS
        .build()?;
    let subject = SecurityToken::from_file(&token_file.0, TokenType::JWT);
    let source = TokenExchange::new(sts, subject)
        .audience(AUDIENCE)
        .resource(RESOURCE)
        .scope(SCOPE)
        .requested_token_type(TokenType::ACCESS_TOKEN);
    let layer = BearerAuthLayer::new(source);
    let cache = layer.cache().clone();
    let api = ServiceBuilder::new().layer(layer).service(http.clone());
    let call = || {
        let req =
            Request::get(format!("{}/v1/invoices", cluster.base())).body(Full::<Bytes>::default());
        let api = api.clone();
        async move { Ok::<_, BoxError>(api.oneshot(req?).await?.status()) }
    };

    let mut statuses = vec![call().await?, call().await?];
    // The kubelet rotates the projected token; the old one stops being
    // valid, and the access token obtained with it is revoked.
    cluster.kubelet_writes(&token_file, 2)?;
    cluster.revoke_access_tokens();
    statuses.push(call().await?);

    let stats = cache.stats();
    Ok(Outcome {
        statuses,
        fetches: stats.fetches,
        retries: stats.retries,
        exchanged: cluster.exchanged(),
    })
}

/// The projected token's file, in the temporary directory; removed on drop.
pub struct TokenFile(pub PathBuf);

impl TokenFile {
    pub fn new() -> std::io::Result<Self> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-bearer-k8s-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir.join("token")))
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Loopback stand-ins for the cluster (which issues projected tokens), the
/// STS and the API.
pub struct Fixture {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// The projected token the cluster vouches for now.
    valid_subject: String,
    exchanged: Vec<String>,
    access_tokens: Vec<String>,
}

impl Fixture {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let addr = support::serve(Arc::new(move |parts, body| handle(&shared, parts, body))).await;
        Self { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Issues projected token number `n` and writes it as the kubelet does:
    /// to a new file renamed over the old one, with a final newline.
    pub fn kubelet_writes(&self, file: &TokenFile, n: usize) -> std::io::Result<()> {
        let token = projected_token(n);
        let staged = file.0.with_extension("new");
        std::fs::write(&staged, format!("{token}\n"))?;
        std::fs::rename(&staged, &file.0)?;
        self.state.lock().unwrap().valid_subject = token;
        Ok(())
    }

    pub fn revoke_access_tokens(&self) {
        self.state.lock().unwrap().access_tokens.clear();
    }

    pub fn exchanged(&self) -> Vec<String> {
        self.state.lock().unwrap().exchanged.clone()
    }
}

/// A projected service-account token, as a JWT looks (not verified here:
/// the cluster vouches for it).
pub fn projected_token(n: usize) -> String {
    let claims = json!({"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:billing:gateway", "n": n});
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn handle(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/oauth2/token") => exchange(state, &parts, &body),
        (&Method::GET, "/v1/invoices") => {
            let token = support::header(&parts, AUTHORIZATION.as_str())
                .and_then(|v| v.strip_prefix("Bearer "));
            if token.is_some_and(|t| state.lock().unwrap().access_tokens.iter().any(|v| v == t)) {
                support::json_response(StatusCode::OK, json!({"invoices": []}))
            } else {
                support::json_response(StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"}))
            }
        }
        _ => support::json_response(StatusCode::NOT_FOUND, json!({})),
    }
}

fn exchange(state: &Mutex<State>, parts: &Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let invalid_request =
        |why| support::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why);
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:gw-s3cret%2F%2B%3D"))
    );
    if support::header(parts, AUTHORIZATION.as_str()) != Some(basic.as_str()) {
        return support::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let Some(fields) = support::form(body)
        .as_deref()
        .and_then(support::unique_fields)
    else {
        return invalid_request("a form body without repeated fields");
    };
    let expected = [
        ("audience", AUDIENCE),
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("resource", RESOURCE),
        ("scope", SCOPE),
        ("subject_token_type", JWT_TYPE),
    ];
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    if keys
        != [
            "audience",
            "grant_type",
            "requested_token_type",
            "resource",
            "scope",
            "subject_token",
            "subject_token_type",
        ]
        || expected.iter().any(|(k, v)| fields[*k] != *v)
    {
        return invalid_request("unexpected token exchange parameters");
    }
    let mut state = state.lock().unwrap();
    if fields["subject_token"] != state.valid_subject {
        return support::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the subject token is not valid",
        );
    }
    state.exchanged.push(fields["subject_token"].clone());
    let token = format!("billing-at-{}", state.exchanged.len());
    state.access_tokens.push(token.clone());
    support::json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": 600,
        }),
    )
}
