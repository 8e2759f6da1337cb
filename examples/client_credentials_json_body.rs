//! Blooma: client credentials with `audience`, credentials in a JSON body
//! (Auth0 style).
//!
//! Blooma's documented exchange: `POST https://login…/oauth/token` with
//! `client_id`, `client_secret`, `audience={BASE_URL}/api/` and
//! `grant_type=client_credentials`, as a form body or as a JSON body
//! (`content-type: application/json`); the answer is `{access_token,
//! token_type: "Bearer", scope: "USER", expires_in: 86400}`.
//!
//! This example starts loopback stand-ins for Blooma's login server and API
//! (two ports, as in production) that answer `400` to any token request not
//! shaped that way, then calls the API through `BearerAuthLayer`, once with
//! the JSON body and once with the form body. Run it with
//! `cargo run --example client_credentials_json_body`.

#[path = "support/mod.rs"]
// tests/providers.rs compiles the providers together, each with its own copy.
#[allow(clippy::duplicate_mod)]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use support::{bad_request, bearer_token, form_map, header, json_response, serve_collected};
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::oauth2::{BodyFormat, ClientAuth, ClientCredentials, HttpClient, TokenEndpoint};
use tower_bearer::BearerAuthLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const CLIENT_ID: &str = "blooma-client";
pub const CLIENT_SECRET: &str = "bl00ma/secret+1";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let blooma = Fixture::start().await;
    support::print_outcome(run(&blooma).await)
}

/// What the run observed: the API's answers with each body encoding, and
/// the token requests Blooma saw.
#[derive(Debug)]
pub struct Outcome {
    pub json_body: StatusCode,
    pub form_body: StatusCode,
    pub deals: usize,
    pub fetches: u64,
    pub token_requests: Vec<&'static str>,
}

pub async fn run(blooma: &Fixture) -> Result<Outcome, BoxError> {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let audience = format!("{}/api/", blooma.api_base());

    let mut statuses = Vec::new();
    let mut deals = 0;
    let mut fetches = 0;
    for format in [BodyFormat::Json, BodyFormat::Form] {
        let endpoint = TokenEndpoint::builder(format!("{}/oauth/token", blooma.login_base()))
            .client_id(CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .client_auth(ClientAuth::RequestBody)
            .body_format(format)
            .http_client(HttpClient::new(http.clone())) // leave out against https://login.blooma.ai
            .build()?;
        let layer =
            BearerAuthLayer::new(ClientCredentials::new(endpoint).audience(audience.clone()));
        let cache = layer.cache().clone();
        let api = ServiceBuilder::new().layer(layer).service(http.clone());
        for _ in 0..2 {
            let req =
                Request::get(format!("{}/api/v1/deals", blooma.api_base())).body(Full::default())?;
            let res = api.clone().oneshot(req).await?;
            statuses.push(res.status());
            let body: Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
            deals = body["deals"].as_array().map_or(0, Vec::len);
        }
        fetches += cache.stats().fetches;
        println!("{format:?} body: {statuses:?}, stats {:?}", cache.stats());
    }
    Ok(Outcome {
        json_body: statuses[1],
        form_body: statuses[3],
        deals,
        fetches,
        token_requests: blooma.token_requests(),
    })
}

/// Loopback stand-ins for Blooma's login server and API.
pub struct Fixture {
    login: SocketAddr,
    api: SocketAddr,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    audience: String,
    tokens: Vec<String>,
    /// The encoding of each token request seen.
    requests: Vec<&'static str>,
}

impl Fixture {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let api = serve_collected(move |parts, _body| api(&shared, parts)).await;
        state.lock().unwrap().audience = format!("http://{api}/api/");
        let shared = state.clone();
        let login = serve_collected(move |parts, body| token(&shared, parts, body)).await;
        Self { login, api, state }
    }

    pub fn login_base(&self) -> String {
        format!("http://{}", self.login)
    }

    pub fn api_base(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn token_requests(&self) -> Vec<&'static str> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn token(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    if parts.method != Method::POST || parts.uri.path() != "/oauth/token" {
        return json_response(StatusCode::NOT_FOUND, json!({}));
    }
    if parts.headers.contains_key(AUTHORIZATION) {
        return bad_request("credentials go in the body");
    }
    let (encoding, fields) = match header(&parts, CONTENT_TYPE.as_str()) {
        Some("application/json") => match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => {
                let strings: Option<BTreeMap<String, String>> = map
                    .into_iter()
                    .map(|(k, v)| Some((k, v.as_str()?.to_owned())))
                    .collect();
                ("json", strings)
            }
            _ => ("json", None),
        },
        Some("application/x-www-form-urlencoded") => ("form", form_map(&body)),
        _ => {
            return bad_request(
                "content-type must be application/json or application/x-www-form-urlencoded",
            )
        }
    };
    let Some(fields) = fields else {
        return bad_request("malformed body");
    };
    let mut state = state.lock().unwrap();
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    if keys != ["audience", "client_id", "client_secret", "grant_type"]
        || fields["grant_type"] != "client_credentials"
        || fields["audience"] != state.audience
    {
        return json_response(
            StatusCode::FORBIDDEN,
            json!({"error": "access_denied", "error_description": "expected client_id, client_secret, audience, grant_type"}),
        );
    }
    if fields["client_id"] != CLIENT_ID || fields["client_secret"] != CLIENT_SECRET {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "access_denied", "error_description": "Unauthorized"}),
        );
    }
    state.requests.push(encoding);
    let token = format!("eyJz93a.blooma.{}", state.requests.len());
    state.tokens.push(token.clone());
    json_response(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "Bearer", "scope": "USER", "expires_in": 86400}),
    )
}

fn api(state: &Mutex<State>, parts: Parts) -> Response<Full<Bytes>> {
    let token = bearer_token(&parts);
    if !token.is_some_and(|t| state.lock().unwrap().tokens.iter().any(|v| v == t)) {
        return json_response(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}));
    }
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/api/v1/deals") => {
            json_response(StatusCode::OK, json!({"deals": [{"id": 1}, {"id": 2}]}))
        }
        _ => json_response(StatusCode::NOT_FOUND, json!({})),
    }
}
