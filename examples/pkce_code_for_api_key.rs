//! Glama: PKCE in the browser, then a non-standard exchange for a long-lived
//! API key, used as a static bearer token.
//!
//! Glama's documented flow:
//! - the browser goes to `{site}/oauth/authorize?callback_url=…&code_challenge=…&code_challenge_method=S256`
//!   and comes back to `callback_url?code=…`;
//! - `POST {api}/v1/auth/exchange-code` with a JSON body
//!   `{code, code_verifier, code_challenge_method}` answers `{apiKey}`;
//! - `POST {api}/openai/v1/chat/completions` with `Authorization: Bearer <apiKey>`.
//!
//! Glama's sample verifier is 256 random bytes (342 characters), more than
//! RFC 7636 allows; `PkceVerifier::generate` makes compliant 43-character ones.
//!
//! This example starts a loopback stand-in for Glama that answers `400` to any
//! request not shaped that way (and checks the verifier against the
//! challenge), and calls the chat API through `BearerAuthLayer`. Run it with
//! `cargo run --example pkce_code_for_api_key`.

#[path = "support/mod.rs"]
// tests/providers.rs compiles the providers together, each with its own copy.
#[allow(clippy::duplicate_mod)]
mod support;

use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{bad_request, follow_authorization, header, json_response, query_map, StandIn};
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::oauth2::{
    AuthorizeUrl, BodyFormat, ClientAuth, HttpClient, PkceVerifier, TokenEndpoint,
};
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, StaticToken, TokenError, TokenSource};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const CALLBACK_URL: &str = "http://localhost:3000/glama/callback";
pub const API_KEY: &str = "glama-api-key-0001";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let glama = Fixture::start().await;
    support::print_outcome(run(&glama).await)
}

/// What the run observed: the PKCE verifier, the chat call, and how often
/// the code was exchanged for the key.
#[derive(Debug)]
pub struct Outcome {
    pub verifier_len: usize,
    pub chat: StatusCode,
    pub reply: String,
    pub fetches: u64,
    pub exchanges: usize,
}

pub async fn run(glama: &Fixture) -> Result<Outcome, BoxError> {
    let base = glama.base();
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // 1. PKCE: a compliant verifier, its S256 challenge, Glama's authorize URL.
    let verifier = PkceVerifier::generate();
    let verifier_len = verifier.secret().expose().len();
    let challenge = verifier.challenge();
    let url = AuthorizeUrl::new(format!("{base}/oauth/authorize"))
        .param("callback_url", CALLBACK_URL)
        .param("code_challenge", challenge.as_str())
        .param("code_challenge_method", challenge.method())
        .build();
    println!("authorize at {url}");
    // Stands in for the browser: Glama redirects to the callback URL.
    let callback = follow_authorization(&http, &url).await?;
    let code = callback.code().ok_or("no code")?.clone();

    // 2. The custom exchange, as a closure: JSON in, `{apiKey}` out, through
    // the same endpoint client (https-only, timeout, size cap, typed errors).
    let exchange_endpoint =
        TokenEndpoint::builder(format!("{base}/api/gateway/v1/auth/exchange-code"))
            .client_auth(ClientAuth::None)
            .body_format(BodyFormat::Json)
            .http_client(HttpClient::new(http.clone())) // leave out against https://glama.ai
            .build()?;
    let exchange = from_fn(move || {
        let (endpoint, code, verifier) =
            (exchange_endpoint.clone(), code.clone(), verifier.clone());
        async move {
            let fields = endpoint
                .request_fields(&[
                    ("code", code.expose()),
                    ("code_verifier", verifier.secret().expose()),
                    ("code_challenge_method", "S256"),
                ])
                .await?;
            let key = fields.get("apiKey").and_then(Value::as_str);
            let key = key.ok_or_else(|| TokenError::permanent("no apiKey in Glama's answer"))?;
            Ok(AccessToken::new(key).never_expires())
        }
    });
    // The code is single-use: exchange once, then the key is a static token.
    let api_key = exchange.fetch().await?;
    let source = StaticToken::new(api_key.secret());

    // 3. The OpenAI-compatible API with the key as a bearer token.
    let layer = BearerAuthLayer::new(source);
    let cache = layer.cache().clone();
    let api = ServiceBuilder::new().layer(layer).service(http);
    let body = json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hello, World!"}]});
    let req = Request::post(format!("{base}/api/gateway/openai/v1/chat/completions"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(body.to_string()))?;
    let res = api.clone().oneshot(req).await?;
    let chat = res.status();
    let body: Value = serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
    let reply = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("chat: {chat} {reply:?}");

    Ok(Outcome {
        verifier_len,
        chat,
        reply,
        fetches: cache.stats().fetches,
        exchanges: glama.exchanges(),
    })
}

/// A loopback stand-in for Glama (site and gateway on one port).
pub type Fixture = StandIn<State>;

#[derive(Default)]
pub struct State {
    /// Issued codes and the challenge each was issued for.
    codes: Vec<(String, String)>,
    exchanges: usize,
}

impl Fixture {
    pub async fn start() -> Self {
        Self::serve(handle).await
    }

    pub fn exchanges(&self) -> usize {
        self.state().exchanges
    }
}

fn handle(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/oauth/authorize") => {
            let Some(query) = query_map(&parts) else {
                return bad_request("bad query");
            };
            let keys: Vec<&str> = query.keys().map(String::as_str).collect();
            let challenge = query.get("code_challenge").cloned().unwrap_or_default();
            if keys != ["callback_url", "code_challenge", "code_challenge_method"]
                || query["callback_url"] != CALLBACK_URL
                || query["code_challenge_method"] != "S256"
                || challenge.len() != 43
            {
                return bad_request(
                    "authorize needs callback_url, code_challenge, code_challenge_method=S256",
                );
            }
            let mut state = state.lock().unwrap();
            let code = format!("glama-code-{}", state.codes.len() + 1);
            state.codes.push((code.clone(), challenge));
            Response::builder()
                .status(StatusCode::FOUND)
                .header(LOCATION, format!("{CALLBACK_URL}?code={code}"))
                .body(Full::default())
                .unwrap()
        }
        (&Method::POST, "/api/gateway/v1/auth/exchange-code") => {
            let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
                return bad_request("expected a JSON object");
            };
            let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
            if keys != ["code", "code_challenge_method", "code_verifier"]
                || fields["code_challenge_method"] != "S256"
            {
                return bad_request("expected {code, code_verifier, code_challenge_method}");
            }
            let (Some(code), Some(verifier)) =
                (fields["code"].as_str(), fields["code_verifier"].as_str())
            else {
                return bad_request("code and code_verifier are strings");
            };
            let challenge =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
            let mut state = state.lock().unwrap();
            state.exchanges += 1;
            let Some(at) = state
                .codes
                .iter()
                .position(|(c, ch)| c == code && *ch == challenge)
            else {
                return bad_request("unknown code or wrong verifier");
            };
            state.codes.remove(at);
            json_response(StatusCode::OK, json!({"apiKey": API_KEY}))
        }
        (&Method::POST, "/api/gateway/openai/v1/chat/completions") => {
            if header(&parts, AUTHORIZATION.as_str()) != Some(&format!("Bearer {API_KEY}")) {
                return json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": {"message": "invalid api key"}}),
                );
            }
            if serde_json::from_slice::<Value>(&body).map_or(true, |b| !b["messages"].is_array()) {
                return bad_request("expected a chat completion request");
            }
            json_response(
                StatusCode::OK,
                json!({"choices": [{"message": {"role": "assistant", "content": "Hello from Glama!"}}]}),
            )
        }
        _ => json_response(StatusCode::NOT_FOUND, json!({})),
    }
}
