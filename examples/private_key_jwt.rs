//! `private_key_jwt`: client credentials with a signed client assertion
//! instead of a shared secret, as Okta, Microsoft Entra ID, Auth0 and
//! Keycloak ask of confidential clients.
//!
//! The documented exchange (RFC 7523 §2.2, OpenID Connect Core §9): `POST
//! {token endpoint}` with `grant_type=client_credentials`, `scope`,
//! `client_id`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! and `client_assertion`, a JWT signed with the client's private key (its
//! public key registered with the provider under a `kid`): `iss` and `sub`
//! the client id, `aud` the token endpoint URL, a `jti` never used before,
//! `exp` shortly after `iat`. No `Authorization` header, no `client_secret`.
//!
//! This example starts a loopback stand-in for such a provider and an API.
//! The provider knows the client by the public keys registered for it
//! (`SigningKey::public_jwk`), verifies each assertion's signature with them
//! (with `ring`, not with the crate's signing code), checks every claim,
//! refuses a replayed `jti`, and answers `400`/`401` to anything else. The
//! client signs with RS256 (a PKCS#8 PEM key), PS256 (the same key, PKCS#1
//! PEM) and ES256 (a P-256 JWK), calls the API twice with each, and once
//! more after the API revoked the token. Run it with
//! `cargo run --example private_key_jwt --features jwt`.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::oauth2::{
    ClientCredentials, HttpClient, SigningAlgorithm, SigningKey, TokenEndpoint,
};
use tower_bearer::BearerAuthLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const CLIENT_ID: &str = "0oa-reporting-service";
pub const SCOPE: &str = "reports:read";
/// The longest assertion lifetime the provider accepts (Okta: one hour).
const MAX_ASSERTION_SECONDS: u64 = 3600;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let keys = keys()?;
    let provider = Fixture::start(&keys).await;
    let outcome = run(&provider, &keys).await?;
    println!("{outcome:#?}");
    Ok(())
}

/// The client's keys, as a user would load them: from a PEM file (PKCS#8,
/// then the same RSA key as PKCS#1 for PS256) and from a private JWK, each
/// under the `kid` its public key is registered with.
pub fn keys() -> Result<Vec<SigningKey>, BoxError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let read = |file: &str| std::fs::read_to_string(dir.join(file));
    Ok(vec![
        SigningKey::from_pem(SigningAlgorithm::Rs256, read("rsa.pkcs8.pem")?)?.with_kid("rsa-1"),
        SigningKey::from_pem(SigningAlgorithm::Ps256, read("rsa.pkcs1.pem")?)?.with_kid("rsa-1"),
        SigningKey::from_jwk(&read("ec.jwk.json")?)?,
    ])
}

/// What the run observed.
#[derive(Debug)]
pub struct Outcome {
    /// Per key: the status of two calls, then of the call after revocation.
    pub statuses: Vec<[StatusCode; 3]>,
    /// Token fetches per key.
    pub fetches: Vec<u64>,
    /// Assertions the provider accepted, in order: algorithm and `kid`.
    pub accepted: Vec<(String, String)>,
}

pub async fn run(provider: &Fixture, keys: &[SigningKey]) -> Result<Outcome, BoxError> {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut statuses = Vec::new();
    let mut fetches = Vec::new();
    for key in keys {
        let endpoint = TokenEndpoint::builder(provider.token_url())
            .client_id(CLIENT_ID)
            .private_key_jwt(key.clone())
            .http_client(HttpClient::new(http.clone())) // leave out against a real https:// provider
            .build()?;
        let layer = BearerAuthLayer::new(ClientCredentials::new(endpoint).scope(SCOPE));
        let cache = layer.cache().clone();
        let api = ServiceBuilder::new().layer(layer).service(http.clone());
        let call = || {
            let req = Request::get(format!("{}/api/v1/reports", provider.base()))
                .body(Full::<Bytes>::default());
            let api = api.clone();
            async move { Ok::<_, BoxError>(api.oneshot(req?).await?.status()) }
        };
        let (first, second) = (call().await?, call().await?);
        provider.revoke_tokens();
        let after_revocation = call().await?;
        statuses.push([first, second, after_revocation]);
        fetches.push(cache.stats().fetches);
    }
    let accepted = provider
        .accepted()
        .iter()
        .map(|v| {
            let field = |name: &str| v.header[name].as_str().unwrap_or("").to_owned();
            (field("alg"), field("kid"))
        })
        .collect();
    Ok(Outcome {
        statuses,
        fetches,
        accepted,
    })
}

/// A loopback stand-in for an identity provider with one `private_key_jwt`
/// client, and an API that accepts the tokens it issued.
pub struct Fixture {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

struct State {
    /// The public keys registered for the client.
    jwks: Value,
    token_url: String,
    jtis: HashSet<String>,
    accepted: Vec<support::Verified>,
    tokens: Vec<String>,
    issued: usize,
}

impl Fixture {
    /// A provider where the client registered the public halves of `keys`.
    pub async fn start(keys: &[SigningKey]) -> Self {
        let jwks = json!({"keys": keys.iter().map(SigningKey::public_jwk).collect::<Vec<_>>()});
        Self::with_jwks(jwks).await
    }

    /// A provider where the client registered `jwks`.
    pub async fn with_jwks(jwks: Value) -> Self {
        let state = Arc::new(Mutex::new(State {
            jwks,
            token_url: String::new(),
            jtis: HashSet::new(),
            accepted: Vec::new(),
            tokens: Vec::new(),
            issued: 0,
        }));
        let shared = state.clone();
        let addr = support::serve(Arc::new(move |parts, body| handle(&shared, parts, body))).await;
        state.lock().unwrap().token_url = format!("http://{addr}/oauth2/v1/token");
        Self { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_url(&self) -> String {
        self.state.lock().unwrap().token_url.clone()
    }

    /// The assertions accepted so far, verified.
    pub fn accepted(&self) -> Vec<support::Verified> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// Forgets every token issued: the API answers 401 to them.
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }
}

fn handle(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/oauth2/v1/token") => token(state, &parts, &body),
        (&Method::GET, "/api/v1/reports") => {
            let token = support::header(&parts, AUTHORIZATION.as_str())
                .and_then(|v| v.strip_prefix("Bearer "));
            if token.is_some_and(|t| state.lock().unwrap().tokens.iter().any(|v| v == t)) {
                support::json_response(StatusCode::OK, json!({"reports": []}))
            } else {
                support::json_response(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}))
            }
        }
        _ => support::json_response(StatusCode::NOT_FOUND, json!({})),
    }
}

fn token(state: &Mutex<State>, parts: &Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let invalid_request =
        |why| support::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why);
    let invalid_client =
        |why: &str| support::oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why);
    if parts.headers.contains_key(AUTHORIZATION) {
        return invalid_request("private_key_jwt clients send no Authorization header");
    }
    let Some(fields) = support::form(body)
        .as_deref()
        .and_then(support::unique_fields)
    else {
        return invalid_request("a form body without repeated fields");
    };
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    if keys
        != [
            "client_assertion",
            "client_assertion_type",
            "client_id",
            "grant_type",
            "scope",
        ]
        || fields["grant_type"] != "client_credentials"
        || fields["client_assertion_type"]
            != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    {
        return invalid_request(
            "expected grant_type, scope, client_id, client_assertion_type, client_assertion",
        );
    }
    if fields["scope"] != SCOPE {
        return support::oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "unknown scope");
    }
    let mut state = state.lock().unwrap();
    let verified = match support::verify(&fields["client_assertion"], &state.jwks) {
        Ok(verified) => verified,
        Err(why) => return invalid_client(&why),
    };
    let claims = &verified.claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    if claims["iss"] != CLIENT_ID || claims["sub"] != CLIENT_ID || fields["client_id"] != CLIENT_ID
    {
        return invalid_client("iss and sub must be the client id");
    }
    if claims["aud"] != state.token_url.as_str() {
        return invalid_client("aud must be the token endpoint URL");
    }
    let Some((iat, exp)) = iat.zip(exp) else {
        return invalid_client("iat and exp are required");
    };
    if exp <= now || iat > now + 5 || exp - iat > MAX_ASSERTION_SECONDS {
        return invalid_client("expired, not yet valid, or valid too long");
    }
    let Some(jti) = claims["jti"].as_str() else {
        return invalid_client("jti is required");
    };
    if !state.jtis.insert(jti.to_owned()) {
        return invalid_client("jti already used");
    }
    state.accepted.push(verified);
    state.issued += 1;
    let token = format!("okta.{}", state.issued);
    state.tokens.push(token.clone());
    support::json_response(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": SCOPE}),
    )
}
