//! Google service accounts: access tokens from a service-account key file,
//! with the JWT-bearer grant (RFC 7523 §2.1), as Google's own libraries get
//! them.
//!
//! Google's documented exchange: `POST {token_uri}` (from the key file,
//! `https://oauth2.googleapis.com/token`) with
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and `assertion`,
//! an RS256 JWT signed with the file's `private_key` under its
//! `private_key_id` as `kid`: `iss` the `client_email`, `scope` the scopes
//! asked for (space-separated), `aud` the `token_uri`, `iat`, and `exp` at
//! most an hour later; `sub` names a user to act for (domain-wide
//! delegation). No client authentication. The answer is `{access_token,
//! expires_in: 3599, token_type: "Bearer"}`.
//!
//! This example writes a key file whose `token_uri` is a loopback stand-in
//! for Google's token endpoint; the stand-in verifies each assertion's
//! signature with the account's public key (with `ring`, not with the
//! crate's signing code), checks every claim, and answers `400` to anything
//! else. The source is built from the file, then calls a stand-in API twice,
//! once as the service account and once acting for a user. Run it with
//! `cargo run --example google_service_account --features jwt`.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::oauth2::{GoogleServiceAccount, HttpClient, ServiceAccountKey};
use tower_bearer::BearerAuthLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const CLIENT_EMAIL: &str = "reporter@demo-project.iam.gserviceaccount.com";
pub const PRIVATE_KEY_ID: &str = "8f3a2c1d9e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39";
pub const SCOPE: &str = "https://www.googleapis.com/auth/bigquery.readonly";
pub const USER: &str = "analyst@example.com";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let google = Fixture::start().await;
    let outcome = run(&google).await?;
    println!("{outcome:#?}");
    Ok(())
}

/// What the run observed.
#[derive(Debug)]
pub struct Outcome {
    /// What the API answered: who called, as the service account and then
    /// acting for the user, twice each.
    pub callers: Vec<String>,
    /// Token fetches of the two sources.
    pub fetches: [u64; 2],
    /// The claims of the assertions Google accepted.
    pub assertions: Vec<Value>,
}

pub async fn run(google: &Fixture) -> Result<Outcome, BoxError> {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // The key file, as downloaded from the Cloud console, but pointing at
    // the stand-in.
    let key_file = KeyFile::write(&google.token_uri())?;
    let key = ServiceAccountKey::from_file(&key_file.0)?;
    drop(key_file);

    let mut callers = Vec::new();
    let mut fetches = [0; 2];
    for (i, subject) in [None, Some(USER)].into_iter().enumerate() {
        let mut source = GoogleServiceAccount::builder(key.clone())
            .scope(SCOPE)
            .http_client(HttpClient::new(http.clone())); // leave out against Google
        if let Some(user) = subject {
            source = source.subject(user);
        }
        let layer = BearerAuthLayer::new(source.build()?);
        let cache = layer.cache().clone();
        let api = ServiceBuilder::new().layer(layer).service(http.clone());
        for _ in 0..2 {
            let req = Request::get(format!(
                "{}/bigquery/v2/projects/demo-project/datasets",
                google.base()
            ))
            .body(Full::default())?;
            let res = api.clone().oneshot(req).await?;
            let body: Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
            callers.push(body["caller"].as_str().unwrap_or("?").to_owned());
        }
        fetches[i] = cache.stats().fetches;
    }
    Ok(Outcome {
        callers,
        fetches,
        assertions: google.accepted().into_iter().map(|v| v.claims).collect(),
    })
}

/// A service-account key file in the temporary directory, removed on drop.
struct KeyFile(PathBuf);

impl KeyFile {
    fn write(token_uri: &str) -> Result<Self, BoxError> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let pem = std::fs::read_to_string(fixture_keys().join("rsa.pkcs8.pem"))?;
        let file = json!({
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": PRIVATE_KEY_ID,
            "private_key": pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "104729384756102938475",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "universe_domain": "googleapis.com",
        });
        let path = std::env::temp_dir().join(format!(
            "tower-bearer-sa-{}-{}.json",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, file.to_string())?;
        Ok(Self(path))
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn fixture_keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys")
}

/// A loopback stand-in for Google's token endpoint, which knows the
/// service account's public key, and for an API.
pub struct Fixture {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

struct State {
    jwks: Value,
    token_uri: String,
    accepted: Vec<support::Verified>,
    /// Issued tokens and whom each is for.
    tokens: Vec<(String, String)>,
}

impl Fixture {
    pub async fn start() -> Self {
        // Google publishes each account's public keys by key id.
        let public: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture_keys().join("public.jwks.json")).unwrap(),
        )
        .unwrap();
        let mut key = public["keys"][0].clone();
        key["kid"] = json!(PRIVATE_KEY_ID);
        let state = Arc::new(Mutex::new(State {
            jwks: json!({"keys": [key]}),
            token_uri: String::new(),
            accepted: Vec::new(),
            tokens: Vec::new(),
        }));
        let shared = state.clone();
        let addr = support::serve(Arc::new(move |parts, body| handle(&shared, parts, body))).await;
        state.lock().unwrap().token_uri = format!("http://{addr}/token");
        Self { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_uri(&self) -> String {
        self.state.lock().unwrap().token_uri.clone()
    }

    pub fn accepted(&self) -> Vec<support::Verified> {
        self.state.lock().unwrap().accepted.clone()
    }
}

fn handle(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/token") => token(state, &parts, &body),
        (&Method::GET, "/bigquery/v2/projects/demo-project/datasets") => {
            let token = support::header(&parts, AUTHORIZATION.as_str())
                .and_then(|v| v.strip_prefix("Bearer "));
            let state = state.lock().unwrap();
            match state.tokens.iter().find(|(t, _)| Some(t.as_str()) == token) {
                Some((_, caller)) => support::json_response(
                    StatusCode::OK,
                    json!({"kind": "bigquery#datasetList", "caller": caller}),
                ),
                None => support::json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
                ),
            }
        }
        _ => support::json_response(StatusCode::NOT_FOUND, json!({})),
    }
}

fn token(state: &Mutex<State>, parts: &Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let invalid_grant =
        |why: &str| support::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    if parts.headers.contains_key(AUTHORIZATION) {
        return support::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "no client authentication",
        );
    }
    let Some(fields) = support::form(body)
        .as_deref()
        .and_then(support::unique_fields)
    else {
        return support::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "a form body");
    };
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    if keys != ["assertion", "grant_type"]
        || fields["grant_type"] != "urn:ietf:params:oauth:grant-type:jwt-bearer"
    {
        return support::oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: expected the JWT-bearer grant with an assertion only",
        );
    }
    let mut state = state.lock().unwrap();
    let verified = match support::verify(&fields["assertion"], &state.jwks) {
        Ok(verified) => verified,
        Err(why) => return invalid_grant(&format!("Invalid JWT Signature: {why}")),
    };
    let claims = &verified.claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if verified.header["alg"] != "RS256" || verified.header["kid"] != PRIVATE_KEY_ID {
        return invalid_grant("RS256 under the private_key_id");
    }
    if claims["iss"] != CLIENT_EMAIL || claims["aud"] != state.token_uri.as_str() {
        return invalid_grant("Invalid JWT: iss must be the client_email, aud the token_uri");
    }
    if claims["scope"] != SCOPE {
        return support::oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "unknown scope");
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return invalid_grant("Invalid JWT: iat and exp are required");
    };
    if exp <= now || iat > now + 5 || exp - iat > 3600 {
        return invalid_grant("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe");
    }
    let caller = claims["sub"].as_str().unwrap_or(CLIENT_EMAIL).to_owned();
    state.accepted.push(verified);
    let token = format!("ya29.c.{}", state.tokens.len() + 1);
    state.tokens.push((token.clone(), caller));
    support::json_response(
        StatusCode::OK,
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}
