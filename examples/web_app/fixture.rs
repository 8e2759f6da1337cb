//! The world the web app lives in, on 127.0.0.1: an authorization server
//! (discovery document, authorization endpoint, token endpoint) and the API
//! the app calls on each user's behalf. Strict where a real one is: one
//! registered client and redirect URI, `client_secret_basic`, PKCE S256,
//! single-use codes, rotating refresh tokens, `iss` on every response
//! (RFC 9207), and an API that answers `401 invalid_token` to any token it
//! does not know.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

pub const CLIENT_ID: &str = "web-app";
pub const CLIENT_SECRET: &str = "web-app-secret";
/// The cookie by which the browser is already signed in at the
/// authorization server (who the user is there is its business).
pub const IDP_USER_COOKIE: &str = "idp_user";

/// What the fixture counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Token requests with `grant_type=authorization_code`.
    pub code_exchanges: usize,
    /// Token requests with `grant_type=refresh_token`.
    pub refreshes: usize,
    /// Token requests refused (a replayed code, a bad verifier, …).
    pub refused_token_requests: usize,
    /// Requests to the API, and those it rejected with 401.
    pub api_requests: usize,
    pub api_rejections: usize,
}

#[derive(Default)]
struct Ledger {
    issuer: String,
    redirect_uri: String,
    issued: usize,
    /// code -> (user, PKCE challenge, redirect_uri)
    codes: HashMap<String, (String, String, String)>,
    /// access token -> user
    access_tokens: HashMap<String, String>,
    /// refresh token -> user (only the newest of each grant is valid)
    refresh_tokens: HashMap<String, String>,
    counts: Counts,
}

type Shared = Arc<Mutex<Ledger>>;

/// The authorization server and the API, running.
pub struct Fixture {
    addr: SocketAddr,
    state: Shared,
}

impl Fixture {
    /// Starts both on one loopback port, for a client whose only registered
    /// redirect URI is `redirect_uri`.
    pub async fn start(redirect_uri: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Shared::default();
        {
            let mut s = state.lock().unwrap();
            s.issuer = format!("http://{addr}");
            s.redirect_uri = redirect_uri.to_owned();
        }
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(metadata))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/api/me", get(api_me))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Self { addr, state })
    }

    /// The issuer identifier, which is also where its metadata is found.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API's URL for "who am I".
    pub fn api_me_url(&self) -> String {
        format!("http://{}/api/me", self.addr)
    }

    /// Forgets every access token issued to `user` (an admin revoked them):
    /// the API rejects them from now on.
    pub fn revoke_access_tokens_of(&self, user: &str) {
        self.state
            .lock()
            .unwrap()
            .access_tokens
            .retain(|_, owner| owner != user);
    }

    pub fn counts(&self) -> Counts {
        self.state.lock().unwrap().counts.clone()
    }
}

async fn metadata(State(state): State<Shared>) -> Json<serde_json::Value> {
    let issuer = state.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

fn form(query: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str(query).unwrap_or_default()
}

fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({ "error": code }))).into_response()
}

/// The authorization endpoint: the user is whoever the browser is signed
/// in as here; consent is implied. Redirects back with `code`, `state` and `iss`.
async fn authorize(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = form(query.as_deref().unwrap_or(""));
    let param = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let mut s = state.lock().unwrap();
    if param("client_id") != CLIENT_ID || param("redirect_uri") != s.redirect_uri {
        // Never redirect to an unregistered URI (RFC 6749 §4.1.2.1).
        return (StatusCode::BAD_REQUEST, "unknown client or redirect_uri").into_response();
    }
    if param("response_type") != "code"
        || param("code_challenge_method") != "S256"
        || param("code_challenge").is_empty()
        || param("state").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "PKCE S256 and state are required").into_response();
    }
    let Some(user) = cookie(&headers, IDP_USER_COOKIE) else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    s.issued += 1;
    let code = format!("code-{}", s.issued);
    let grant = (
        user,
        param("code_challenge").to_owned(),
        s.redirect_uri.clone(),
    );
    s.codes.insert(code.clone(), grant);
    let back = serde_urlencoded::to_string([
        ("code", code.as_str()),
        ("state", param("state")),
        ("iss", s.issuer.as_str()),
    ])
    .unwrap();
    Redirect::to(&format!("{}?{back}", s.redirect_uri)).into_response()
}

/// The token endpoint: `authorization_code` (single use, PKCE checked) and
/// `refresh_token` (rotated: the old one dies), for the one client, with
/// HTTP Basic authentication.
async fn token(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let params = form(&body);
    let param = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let mut s = state.lock().unwrap();
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        s.counts.refused_token_requests += 1;
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let user = match param("grant_type") {
        "authorization_code" => {
            s.counts.code_exchanges += 1;
            let verified = s.codes.remove(param("code")).filter(|(_, challenge, uri)| {
                let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(param("code_verifier")));
                *challenge == computed && uri == param("redirect_uri")
            });
            verified.map(|(user, _, _)| user)
        }
        "refresh_token" => {
            s.counts.refreshes += 1;
            s.refresh_tokens.remove(param("refresh_token"))
        }
        _ => return error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    };
    let Some(user) = user else {
        s.counts.refused_token_requests += 1;
        return error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    s.issued += 1;
    let (access, refresh) = (
        format!("at-{user}-{}", s.issued),
        format!("rt-{user}-{}", s.issued),
    );
    s.access_tokens.insert(access.clone(), user.clone());
    s.refresh_tokens.insert(refresh.clone(), user);
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": refresh,
    }))
    .into_response()
}

/// The API: who the bearer token belongs to.
async fn api_me(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut s = state.lock().unwrap();
    s.counts.api_requests += 1;
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| s.access_tokens.get(t)) {
        Some(user) => format!("hello {user}").into_response(),
        None => {
            s.counts.api_rejections += 1;
            (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)],
            )
                .into_response()
        }
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}
