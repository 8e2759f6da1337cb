//! Glue: client credentials with `subject` (credentials in the form body), and
//! the authorization-code grant with comma-separated scopes, `state`, and
//! refresh tokens.
//!
//! Glue's documented requests:
//! - `POST {base}/oauth/token`, `application/x-www-form-urlencoded`:
//!   `grant_type=client_credentials`, `client_id`, `client_secret`,
//!   `subject=wks_…`, `redirect_uri` → `{user_id, access_token, token_type:
//!   "Bearer", expires_in: 315705599}` (ten years: no overflow);
//! - `GET {base}/oauth/authorize?response_type=code&client_id&redirect_uri&scope=a,b&state`
//!   → redirect to `redirect_uri?code&state`; exchange with
//!   `grant_type=authorization_code&code&redirect_uri&client_id&client_secret`
//!   → the same plus `refresh_token`, which keeps access alive afterwards;
//! - `POST {base}/public/graphql` with the bearer token.
//!
//! This example starts a loopback stand-in for Glue that answers `400` to any
//! request not shaped that way, and drives both flows through
//! `BearerAuthLayer`. Run it with
//! `cargo run --example code_flow_comma_scopes`.

#[path = "support/mod.rs"]
// tests/providers.rs compiles the providers together, each with its own copy.
#[allow(clippy::duplicate_mod)]
mod support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use support::{
    bad_request, bearer_token, follow_authorization, form_map, header, json_response, query_map,
    StandIn,
};
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::oauth2::{
    AuthorizationCode, ClientAuth, ClientCredentials, HttpClient, TokenEndpoint,
};
use tower_bearer::{BearerAuthLayer, Secret};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClientImpl = Client<HttpConnector, Full<Bytes>>;

pub const CLIENT_ID: &str = "client1";
pub const CLIENT_SECRET: &str = "glue secret&=";
pub const WORKSPACE: &str = "wks_32kbzWHxtQvfVEgwEdQduuxRTYG";
pub const REDIRECT_URI: &str = "http://localhost:3000/oauth/callback";
pub const USER_ID: &str = "usr_uxRTYG32kbzWHxtQvfVEgwEdQdu";
const SCOPES: &str = "workspaces:read,chats:write";
const TEN_YEARS: u64 = 315_705_599;

/// What the run observed: both grants, and the refresh tokens Glue rotated.
#[derive(Debug)]
pub struct Outcome {
    /// Client credentials: the GraphQL answer and the tokens fetched.
    pub app_user: String,
    pub client_credentials_fetches: u64,
    /// Authorization code: GraphQL status before and after the access token
    /// was revoked, refresh requests the server saw, and the refresh tokens
    /// the rotation callback was given.
    pub code_flow_first: StatusCode,
    pub code_flow_after_revocation: StatusCode,
    pub refresh_requests: usize,
    /// (Printed redacted: they are credentials.)
    pub rotated_refresh_tokens: Vec<Secret>,
}

fn endpoint(base: &str, http: &HttpClientImpl) -> Result<TokenEndpoint, BoxError> {
    Ok(TokenEndpoint::builder(format!("{base}/oauth/token"))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        // Glue reads the credentials from the form body.
        .client_auth(ClientAuth::RequestBody)
        // Against the real https:// endpoint, leave this out.
        .http_client(HttpClient::new(http.clone()))
        .build()?)
}

fn graphql(base: &str) -> Request<Full<Bytes>> {
    Request::post(format!("{base}/public/graphql"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(
            json!({"query": "{ me { id name } }"}).to_string(),
        ))
        .unwrap()
}

pub async fn run(glue: &Fixture) -> Result<Outcome, BoxError> {
    let base = glue.base();
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // 1. Client credentials for the app user of a workspace.
    let source = ClientCredentials::new(endpoint(&base, &http)?)
        .param("subject", WORKSPACE)
        .param("redirect_uri", REDIRECT_URI);
    let layer = BearerAuthLayer::new(source);
    let cache = layer.cache().clone();
    let api = ServiceBuilder::new().layer(layer).service(http.clone());
    let res = api.clone().oneshot(graphql(&base)).await?;
    let body: Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
    let app_user = body["data"]["me"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    api.clone().oneshot(graphql(&base)).await?;
    println!(
        "client credentials: me = {app_user}, stats {:?}",
        cache.stats()
    );

    // 2. Authorization code: send the user to Glue, take the redirect back.
    let flow = AuthorizationCode::new(format!("{base}/oauth/authorize"), endpoint(&base, &http)?)?
        .redirect_uri(REDIRECT_URI)
        .scope("workspaces:read")
        .scope("chats:write")
        .scope_separator(",")
        // Glue documents no PKCE; its fixture accepts exactly the documented parameters.
        .without_pkce();
    let request = flow.start();
    println!("authorize at {}", request.url());
    // Stands in for the browser: Glue redirects to the redirect URI.
    let callback = follow_authorization(&http, request.url()).await?;

    let rotated = Arc::new(Mutex::new(Vec::new()));
    let persisted = rotated.clone();
    let source = request.finish(&callback).await?.on_rotate(move |new| {
        // Persist the new refresh token here; the old one is now dead.
        persisted.lock().unwrap().push(new.clone());
    });
    let api = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(source))
        .service(http.clone());
    let code_flow_first = api.clone().oneshot(graphql(&base)).await?.status();

    // Glue's tokens live ten years, so make the server forget this one: the
    // layer refreshes (the refresh token rotates) and retries once.
    glue.revoke_access_tokens();
    let code_flow_after_revocation = api.clone().oneshot(graphql(&base)).await?.status();
    println!("authorization code: {code_flow_first} then {code_flow_after_revocation}");

    let rotated_refresh_tokens = rotated.lock().unwrap().clone();
    Ok(Outcome {
        app_user,
        client_credentials_fetches: cache.stats().fetches,
        code_flow_first,
        code_flow_after_revocation,
        refresh_requests: glue.refresh_requests(),
        rotated_refresh_tokens,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let glue = Fixture::start().await;
    support::print_outcome(run(&glue).await)
}

/// A loopback stand-in for Glue.
pub type Fixture = StandIn<State>;

#[derive(Default)]
pub struct State {
    issued: usize,
    access_tokens: Vec<String>,
    codes: Vec<String>,
    refresh_token: Option<String>,
    refresh_requests: usize,
}

impl Fixture {
    pub async fn start() -> Self {
        Self::serve(handle).await
    }

    pub fn revoke_access_tokens(&self) {
        self.state().access_tokens.clear();
    }

    pub fn refresh_requests(&self) -> usize {
        self.state().refresh_requests
    }

    /// The refresh token the server currently accepts.
    pub fn current_refresh_token(&self) -> Option<String> {
        self.state().refresh_token.clone()
    }
}

fn handle(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/oauth/authorize") => authorize(state, &parts),
        (&Method::POST, "/oauth/token") => token(state, &parts, &body),
        (&Method::POST, "/public/graphql") => {
            let token = bearer_token(&parts);
            let valid =
                token.is_some_and(|t| state.lock().unwrap().access_tokens.iter().any(|v| v == t));
            if !valid {
                return json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"errors": [{"message": "unauthenticated"}]}),
                );
            }
            let query = serde_json::from_slice::<Value>(&body).ok();
            if header(&parts, CONTENT_TYPE.as_str()) != Some("application/json")
                || !query.as_ref().is_some_and(|q| q["query"].is_string())
            {
                return bad_request("expected a JSON GraphQL body");
            }
            json_response(
                StatusCode::OK,
                json!({"data": {"me": {"id": USER_ID, "name": "Glue App"}}}),
            )
        }
        _ => json_response(StatusCode::NOT_FOUND, json!({})),
    }
}

fn authorize(state: &Mutex<State>, parts: &Parts) -> Response<Full<Bytes>> {
    let Some(query) = query_map(parts) else {
        return bad_request("bad query");
    };
    let keys: Vec<&str> = query.keys().map(String::as_str).collect();
    if keys
        != [
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
        ]
        || query["response_type"] != "code"
        || query["client_id"] != CLIENT_ID
        || query["redirect_uri"] != REDIRECT_URI
        || query["scope"] != SCOPES
        || query["state"].len() < 16
    {
        return bad_request("authorize needs response_type=code, client_id, redirect_uri, comma-separated scope, state");
    }
    let mut state_ = state.lock().unwrap();
    state_.issued += 1;
    let code = format!("code{}", state_.issued);
    state_.codes.push(code.clone());
    let location = format!(
        "{REDIRECT_URI}?{}",
        serde_urlencoded::to_string([("code", code.as_str()), ("state", query["state"].as_str())])
            .unwrap()
    );
    Response::builder()
        .status(StatusCode::FOUND)
        .header(LOCATION, location)
        .body(Full::default())
        .unwrap()
}

fn token(state: &Mutex<State>, parts: &Parts, body: &Bytes) -> Response<Full<Bytes>> {
    if header(parts, CONTENT_TYPE.as_str()) != Some("application/x-www-form-urlencoded") {
        return bad_request("Content-Type must be application/x-www-form-urlencoded");
    }
    if parts.headers.contains_key(AUTHORIZATION) {
        return bad_request("credentials go in the body");
    }
    let Some(fields) = form_map(body) else {
        return bad_request("bad form body");
    };
    if fields.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || fields.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return json_response(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    let mut state = state.lock().unwrap();
    let mut response = match fields["grant_type"].as_str() {
        "client_credentials" => {
            if keys
                != [
                    "client_id",
                    "client_secret",
                    "grant_type",
                    "redirect_uri",
                    "subject",
                ]
                || fields["subject"] != WORKSPACE
                || fields["redirect_uri"] != REDIRECT_URI
            {
                return bad_request("client_credentials needs exactly subject and redirect_uri");
            }
            json!({})
        }
        "authorization_code" => {
            if keys
                != [
                    "client_id",
                    "client_secret",
                    "code",
                    "grant_type",
                    "redirect_uri",
                ]
                || fields["redirect_uri"] != REDIRECT_URI
            {
                return bad_request("authorization_code needs exactly code and redirect_uri");
            }
            let Some(at) = state.codes.iter().position(|c| *c == fields["code"]) else {
                return json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
            };
            state.codes.remove(at);
            json!({"scope": "workspaces:read"})
        }
        "refresh_token" => {
            if keys != ["client_id", "client_secret", "grant_type", "refresh_token"] {
                return bad_request("refresh_token needs exactly refresh_token");
            }
            state.refresh_requests += 1;
            if state.refresh_token.as_deref() != Some(fields["refresh_token"].as_str()) {
                return json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
            }
            json!({"scope": "workspaces:read"})
        }
        _ => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type"}),
            )
        }
    };
    state.issued += 1;
    let access_token = format!("glue-access-{}", state.issued);
    state.access_tokens.push(access_token.clone());
    response["user_id"] = json!(USER_ID);
    response["access_token"] = json!(access_token);
    response["token_type"] = json!("Bearer");
    response["expires_in"] = json!(TEN_YEARS);
    if fields["grant_type"] != "client_credentials" {
        let refresh_token = format!("glue-refresh-{}", state.issued);
        state.refresh_token = Some(refresh_token.clone());
        response["refresh_token"] = json!(refresh_token);
    }
    json_response(StatusCode::OK, response)
}
