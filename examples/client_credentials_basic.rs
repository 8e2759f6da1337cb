//! Gloo AI: OAuth2 client credentials with HTTP Basic client authentication.
//!
//! Gloo's documented exchange: `POST {base}/oauth2/token` with
//! `Content-Type: application/x-www-form-urlencoded`, body
//! `grant_type=client_credentials&scope=api/access`, client id and secret in
//! `Authorization: Basic` (form-encoded first, RFC 6749 §2.3.1). Then
//! `POST {base}/ai/v1/chat/completions` with the bearer token. A 401 means
//! refresh; a 403 means missing permission, not to be retried.
//!
//! This example starts a loopback stand-in for Gloo that answers `400` to any
//! request not shaped exactly that way, and calls it through
//! `BearerAuthLayer`. Run it with
//! `cargo run --example client_credentials_basic`.

#[path = "support/mod.rs"]
// tests/providers.rs compiles the providers together, each with its own copy.
#[allow(clippy::duplicate_mod)]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use support::{
    bad_request, basic_credentials, bearer_token, form_map, header, json_response, StandIn,
};
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::oauth2::{ClientCredentials, HttpClient, TokenEndpoint};
use tower_bearer::BearerAuthLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const CLIENT_ID: &str = "gloo-client";
/// Characters that must be form-encoded before Basic authentication.
pub const CLIENT_SECRET: &str = "gl00 s3cret:+/%&=?";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let gloo = Fixture::start().await;
    support::print_outcome(run(&gloo).await)
}

/// What the run observed: the API's answers, fetches and retries, and the
/// token requests Gloo saw.
#[derive(Debug)]
pub struct Outcome {
    pub first: StatusCode,
    pub reply: String,
    pub after_revocation: StatusCode,
    pub forbidden: StatusCode,
    /// Tokens the cache fetched, requests it replayed.
    pub fetches: u64,
    pub retries: u64,
    /// Token requests the server saw.
    pub token_requests: usize,
}

pub async fn run(gloo: &Fixture) -> Result<Outcome, BoxError> {
    let base = gloo.base();
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // The whole Gloo configuration. Basic authentication is the default.
    let endpoint = TokenEndpoint::builder(format!("{base}/oauth2/token"))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        // Against the real https:// endpoint, leave this out: the built-in
        // rustls client is the default.
        .http_client(HttpClient::new(http.clone()))
        .build()?;
    let layer = BearerAuthLayer::new(ClientCredentials::new(endpoint).scope("api/access"));
    let cache = layer.cache().clone();
    let api = ServiceBuilder::new().layer(layer).service(http);

    let chat = |path: &str| {
        let body = json!({
            "model": "us.anthropic.claude-sonnet-4-20250514-v1:0",
            "messages": [{"role": "user", "content": "Hello!"}],
        });
        Request::post(format!("{base}{path}"))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::from(body.to_string()))
            .unwrap()
    };

    let res = api.clone().oneshot(chat("/ai/v1/chat/completions")).await?;
    let first = res.status();
    let body: Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
    let reply = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("chat: {first} {reply:?}");

    // The server forgets its tokens: the next call gets a 401, the layer
    // fetches a new token once and sends the request again.
    gloo.revoke_tokens();
    let after_revocation = api
        .clone()
        .oneshot(chat("/ai/v1/chat/completions"))
        .await?
        .status();
    println!(
        "after revocation: {after_revocation}, stats {:?}",
        cache.stats()
    );

    // A 403 is about permissions: no new token, no retry.
    let forbidden = api
        .clone()
        .oneshot(chat("/ai/v1/admin/usage"))
        .await?
        .status();
    println!("admin endpoint: {forbidden}, stats {:?}", cache.stats());

    let stats = cache.stats();
    Ok(Outcome {
        first,
        reply,
        after_revocation,
        forbidden,
        fetches: stats.fetches,
        retries: stats.retries,
        token_requests: gloo.token_requests(),
    })
}

/// A loopback stand-in for Gloo AI.
pub type Fixture = StandIn<State>;

#[derive(Default)]
pub struct State {
    issued: usize,
    valid: Vec<String>,
}

impl Fixture {
    pub async fn start() -> Self {
        Self::serve(handle).await
    }

    pub fn revoke_tokens(&self) {
        self.state().valid.clear();
    }

    pub fn token_requests(&self) -> usize {
        self.state().issued
    }
}

fn handle(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/oauth2/token") => token(state, &parts, &body),
        (&Method::POST, "/ai/v1/chat/completions") => {
            if !authorized(state, &parts) {
                return json_response(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}));
            }
            if header(&parts, CONTENT_TYPE.as_str()) != Some("application/json")
                || serde_json::from_slice::<Value>(&body).is_err()
            {
                return bad_request("expected a JSON body");
            }
            json_response(
                StatusCode::OK,
                json!({"choices": [{"message": {"role": "assistant", "content": "Hello from Gloo!"}}]}),
            )
        }
        (&Method::POST, "/ai/v1/admin/usage") if authorized(state, &parts) => {
            json_response(StatusCode::FORBIDDEN, json!({"message": "Forbidden"}))
        }
        (_, "/ai/v1/admin/usage") => json_response(StatusCode::UNAUTHORIZED, json!({})),
        _ => json_response(StatusCode::NOT_FOUND, json!({})),
    }
}

fn token(state: &Mutex<State>, parts: &Parts, body: &Bytes) -> Response<Full<Bytes>> {
    if header(parts, CONTENT_TYPE.as_str()) != Some("application/x-www-form-urlencoded") {
        return bad_request("Content-Type must be application/x-www-form-urlencoded");
    }
    let Some((id, secret)) = basic_credentials(parts) else {
        return json_response(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    };
    if id != CLIENT_ID || secret != CLIENT_SECRET {
        return json_response(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let expected = BTreeMap::from([
        ("grant_type".to_owned(), "client_credentials".to_owned()),
        ("scope".to_owned(), "api/access".to_owned()),
    ]);
    if form_map(body) != Some(expected) {
        return bad_request("body must be exactly grant_type=client_credentials&scope=api/access");
    }
    let mut state = state.lock().unwrap();
    state.issued += 1;
    let token = format!("gloo-token-{}", state.issued);
    state.valid.push(token.clone());
    json_response(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600}),
    )
}

fn authorized(state: &Mutex<State>, parts: &Parts) -> bool {
    let token = bearer_token(parts);
    token.is_some_and(|t| state.lock().unwrap().valid.iter().any(|v| v == t))
}
