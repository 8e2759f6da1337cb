//! A GitHub Actions job's own identity: its OpenID Connect token
//! (`platform::github::ActionsIdToken`), exchanged for an API's token (RFC
//! 8693 token exchange) and presented as a client assertion to Entra ID (a
//! federated credential), with no secret stored in the repository.
//!
//! The documented request: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…`
//! with `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered
//! `{"value": "<jwt>"}`; GitHub sets both variables in jobs with
//! `permissions: id-token: write`. The JWT's `iss` is
//! `https://token.actions.githubusercontent.com`, its `sub`
//! `repo:OWNER/REPO:ref:refs/heads/BRANCH`, its `aud` the audience asked
//! for (the owner's URL when none is).
//!
//! This example starts a loopback stand-in for GitHub's token service, an
//! API's token service (`POST /oauth/token`, RFC 8693, which trusts
//! GitHub's tokens for audience `https://api.example.com`), Entra ID
//! (`POST /{tenant}/oauth2/v2.0/token`, which trusts them for
//! `api://AzureADTokenExchange`) and the two APIs. Anything not shaped as
//! documented gets a `400` or `401`. The job's environment is an `Env`
//! built in code. Run it with `cargo run --example platform_github`.

#[path = "support/mod.rs"]
mod support;

pub use support::platform::claims;

use std::sync::Mutex;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use support::platform::{caller, jwt, unix_now};
use tower::ServiceBuilder;
use tower_bearer::oauth2::{
    ClientAuth, HttpClient, SecurityToken, TokenEndpoint, TokenExchange, TokenType,
};
use tower_bearer::platform::azure::WorkloadIdentity;
use tower_bearer::platform::github::ActionsIdToken;
use tower_bearer::platform::Env;
use tower_bearer::BearerAuthLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const API_AUDIENCE: &str = "https://api.example.com";
pub const ENTRA_AUDIENCE: &str = "api://AzureADTokenExchange";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const APP_CLIENT_ID: &str = "3c1d2e4f-0000-4000-8000-0000000dep10";
pub const SUBJECT: &str = "repo:acme/billing:ref:refs/heads/main";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let github = Fixture::start().await;
    support::print_outcome(run(&github).await)
}

/// What the run observed.
#[derive(Debug)]
pub struct Outcome {
    /// Who the API saw (through token exchange), twice, then who the Azure
    /// API saw (through Entra).
    pub callers: Vec<String>,
    /// Token fetches of the two caches.
    pub fetches: [u64; 2],
    /// The audiences GitHub issued OIDC tokens for, in order.
    pub audiences: Vec<String>,
}

pub async fn run(github: &Fixture) -> Result<Outcome, BoxError> {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Leave out against the real services: the default HTTPS client.
    let plain = HttpClient::new(http.clone());
    let job = github.job_env();

    // An API that trusts GitHub: exchange the job's token for its own.
    let oidc = ActionsIdToken::builder()
        .audience(API_AUDIENCE)
        .env(job.clone())
        .http_client(plain.clone())
        .build()?;
    let sts = TokenEndpoint::builder(github.url("/oauth/token"))
        .client_auth(ClientAuth::None)
        .http_client(plain.clone())
        .build()?;
    let source = TokenExchange::new(sts, SecurityToken::from_source(oidc, TokenType::JWT))
        .requested_token_type(TokenType::ACCESS_TOKEN)
        .scope("deployments:write");
    let layer = BearerAuthLayer::new(source);
    let api_cache = layer.cache().clone();
    let api = ServiceBuilder::new().layer(layer).service(http.clone());
    let mut callers = Vec::new();
    for _ in 0..2 {
        callers.push(caller(&api, &github.url("/v1/deployments")).await?);
    }

    // Azure: an app registration with a federated credential for this
    // repository; the job's token is the client assertion.
    let oidc = ActionsIdToken::builder()
        .audience(ENTRA_AUDIENCE)
        .env(job)
        .http_client(plain.clone())
        .build()?;
    let source = WorkloadIdentity::builder("https://management.azure.com/.default")
        .env(Env::new())
        .tenant_id(TENANT)
        .client_id(APP_CLIENT_ID)
        .authority_host(github.url("/"))
        .assertion(SecurityToken::from_source(oidc, TokenType::JWT))
        .http_client(plain)
        .build()?;
    let layer = BearerAuthLayer::new(source);
    let azure_cache = layer.cache().clone();
    let azure = ServiceBuilder::new().layer(layer).service(http);
    callers.push(caller(&azure, &github.url("/subscriptions")).await?);

    Ok(Outcome {
        callers,
        fetches: [api_cache.stats().fetches, azure_cache.stats().fetches],
        audiences: github.state().issued.clone(),
    })
}

/// The stand-in for GitHub's token service, an API's token service, Entra
/// ID and the two APIs, on one loopback port.
pub struct Fixture(support::StandIn<State>);

/// The stand-in's `url` and `state`; the fixture adds the environments.
impl std::ops::Deref for Fixture {
    type Target = support::StandIn<State>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// What the stand-in saw and holds.
#[derive(Default)]
pub struct State {
    /// Requests to GitHub's token service, those refused included.
    pub oidc_requests: usize,
    /// The audience of each OIDC token issued, in order.
    pub issued: Vec<String>,
    /// The job's `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub request_token: String,
    /// OIDC tokens GitHub issued (which the token services accept once).
    oidc_tokens: Vec<String>,
    /// Access tokens the APIs accept, and whom each is for.
    tokens: Vec<(String, String)>,
}

impl Fixture {
    pub async fn start() -> Self {
        let stand_in = support::StandIn::serve(handle).await;
        stand_in.state().request_token = format!("eyJ0eXAi.request-{}", std::process::id());
        Self(stand_in)
    }

    /// What GitHub sets in a job with `permissions: id-token: write`.
    pub fn job_env(&self) -> Env {
        Env::new()
            .with(
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                self.url("/_apis/pipelines/1/runs/7/idtoken?api-version=2.0"),
            )
            .with(
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                self.state().request_token.clone(),
            )
    }
}

fn handle(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    let mut state = state.lock().unwrap();
    let path = parts.uri.path().to_owned();
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/_apis/pipelines/1/runs/7/idtoken") => oidc(&mut state, &parts),
        (&Method::POST, "/oauth/token") => exchange(&mut state, &body),
        (&Method::POST, p) if p == format!("/{TENANT}/oauth2/v2.0/token") => {
            entra(&mut state, &body)
        }
        (&Method::GET, "/v1/deployments" | "/subscriptions") => {
            let caller = support::bearer_token(&parts)
                .and_then(|t| state.tokens.iter().find(|(token, _)| token == t));
            match caller {
                Some((_, who)) => support::json_response(StatusCode::OK, json!({"caller": who})),
                None => {
                    support::oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "unknown token")
                }
            }
        }
        _ => support::json_response(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
    }
}

/// GitHub's token service: the request token as `bearer`, the
/// `api-version` kept, an optional `audience`.
fn oidc(state: &mut State, parts: &Parts) -> Response<Full<Bytes>> {
    state.oidc_requests += 1;
    let expected = format!("bearer {}", state.request_token);
    if support::header(parts, "authorization") != Some(expected.as_str()) {
        return support::json_response(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Unable to get ACTIONS_ID_TOKEN_REQUEST_TOKEN"}),
        );
    }
    let query = support::query_map(parts).unwrap_or_default();
    let known = |k: &String| k == "api-version" || k == "audience";
    if query.get("api-version").map(String::as_str) != Some("2.0") || !query.keys().all(known) {
        return support::json_response(StatusCode::BAD_REQUEST, json!({"message": "Bad request"}));
    }
    let audience = query
        .get("audience")
        .cloned()
        .unwrap_or_else(|| "https://github.com/acme".into());
    let now = unix_now();
    let claims = json!({
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "iss": "https://token.actions.githubusercontent.com",
        "jti": format!("jti-{}", state.oidc_requests),
        "ref": "refs/heads/main",
        "repository": "acme/billing",
        "sub": SUBJECT,
    });
    let token = jwt(claims);
    state.issued.push(audience);
    state.oidc_tokens.push(token.clone());
    support::json_response(StatusCode::OK, json!({"count": 1, "value": token}))
}

/// A GitHub token the stand-in issued for `audience`, taken (once).
fn take_oidc(state: &mut State, token: &str, audience: &str) -> bool {
    let Some(at) = state.oidc_tokens.iter().position(|t| t == token) else {
        return false;
    };
    let claims = claims(token);
    let valid = claims["aud"] == audience && claims["sub"] == SUBJECT;
    if valid {
        state.oidc_tokens.remove(at);
    }
    valid
}

/// An API's token service: RFC 8693 with a GitHub subject token.
fn exchange(state: &mut State, body: &[u8]) -> Response<Full<Bytes>> {
    let Some(fields) = support::form_map(body) else {
        return support::bad_request("a form body");
    };
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    let expected = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("scope", "deployments:write"),
        ("subject_token_type", JWT_TYPE),
    ];
    if keys
        != [
            "grant_type",
            "requested_token_type",
            "scope",
            "subject_token",
            "subject_token_type",
        ]
        || expected.iter().any(|(k, v)| fields[*k] != *v)
    {
        return support::bad_request("unexpected token exchange parameters");
    }
    if !take_oidc(state, &fields["subject_token"], API_AUDIENCE) {
        return support::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "untrusted subject token",
        );
    }
    let token = format!("api-at-{}", state.tokens.len() + 1);
    state.tokens.push((token.clone(), SUBJECT.into()));
    support::json_response(
        StatusCode::OK,
        json!({"access_token": token, "issued_token_type": ACCESS_TOKEN_TYPE, "token_type": "Bearer", "expires_in": 900}),
    )
}

/// Entra ID: client credentials, the GitHub token as the assertion.
fn entra(state: &mut State, body: &[u8]) -> Response<Full<Bytes>> {
    let Some(fields) = support::form_map(body) else {
        return support::bad_request("AADSTS900144: a form body");
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
        || fields["client_assertion_type"] != JWT_BEARER
        || fields["client_id"] != APP_CLIENT_ID
        || fields["grant_type"] != "client_credentials"
        || fields["scope"] != "https://management.azure.com/.default"
    {
        return support::bad_request("AADSTS900144: unexpected parameters");
    }
    if !take_oidc(state, &fields["client_assertion"], ENTRA_AUDIENCE) {
        return support::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS70021: No matching federated identity record found for presented assertion.",
        );
    }
    let token = format!("eyJ0eXAi.entra-{}", state.tokens.len() + 1);
    state
        .tokens
        .push((token.clone(), format!("app:{APP_CLIENT_ID}")));
    support::json_response(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}
