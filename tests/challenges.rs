//! Server challenges the exchange answers (issue 23): Microsoft Entra's
//! claims challenges (continuous access evaluation), step-up on
//! `insufficient_scope`, and challenges of the user's own, through the Tower
//! layer over hyper-util and through reqwest-middleware, against a loopback
//! stand-in that answers as Entra documents.
//!
//! The stand-in issues numbered tokens by client credentials; a token asked
//! for with the claims the API requires (and the client's `cp1` capability)
//! is "good". The API answers `401` with the documented challenge
//! (`Bearer realm="", authorization_uri="…", error="insufficient_claims",
//! claims="<base64 JSON>"`) to any other token. Counts, never durations.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::body::Incoming;
use support::loopback::serve;
use support::stack::hyper_client;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::exchange::{Challenge, ChallengeAnswer};
use tower_bearer::oauth2::{ClientCredentials, RefreshTokenSource, TokenEndpoint};
use tower_bearer::reqwest::BearerAuthMiddleware;
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, TokenCache};

/// The claims the API requires of a token (a CAE event: tokens issued before
/// this instant are no longer good enough).
const REQUIRED: &str = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;

/// What the stand-in saw and issued.
#[derive(Default)]
struct Seen {
    /// The `claims` and `scope` parameters of each token request, in order.
    token_requests: Vec<(Option<String>, Option<String>)>,
    /// Tokens issued, with whether each carries the required claims and its
    /// scope.
    issued: HashMap<String, (bool, String)>,
    /// API requests, with the token each carried.
    api_requests: Vec<String>,
    /// The refresh token each refresh-token grant presented, in order.
    refreshes: Vec<String>,
    /// The refresh token that is good now: each refresh rotates it, and a
    /// spent one is `invalid_grant`.
    live_refresh_token: String,
}

#[derive(Clone)]
struct Entra {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    /// When set, a claims challenge is held until this many requests wait
    /// for one: concurrent requests are all sent with the same token.
    hold_challenges: Arc<Mutex<Option<Arc<tokio::sync::Barrier>>>>,
}

impl Entra {
    /// The token endpoint, and an API at `/api` that requires the claims, at
    /// `/admin` that requires the `admin` scope (a `403 insufficient_scope`
    /// otherwise), and at `/pop` that challenges with a scheme of its own
    /// once per request id.
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Seen {
            live_refresh_token: "r0".to_owned(),
            ..Seen::default()
        }));
        let hold_challenges: Arc<Mutex<Option<Arc<tokio::sync::Barrier>>>> =
            Arc::new(Mutex::new(None));
        let state = Arc::clone(&seen);
        let handler = move |parts: http::request::Parts, body: Bytes| {
            let mut seen = state.lock().unwrap();
            match parts.uri.path() {
                "/token" => {
                    let form: HashMap<String, String> =
                        serde_urlencoded::from_bytes(&body).unwrap();
                    let claims = form.get("claims").cloned();
                    let scope = form.get("scope").cloned();
                    let good = claims.as_deref().is_some_and(satisfies_required);
                    let mut rotated = String::new();
                    if form["grant_type"] == "refresh_token" {
                        let presented = form["refresh_token"].clone();
                        seen.refreshes.push(presented.clone());
                        if presented != seen.live_refresh_token {
                            return Response::builder()
                                .status(StatusCode::BAD_REQUEST)
                                .header("content-type", "application/json")
                                .body(Full::from(r#"{"error":"invalid_grant"}"#))
                                .unwrap();
                        }
                        seen.live_refresh_token = format!("r{}", seen.refreshes.len());
                        rotated = format!(r#","refresh_token":"{}""#, seen.live_refresh_token);
                    }
                    seen.token_requests.push((claims, scope.clone()));
                    let token = format!("t{}", seen.token_requests.len());
                    seen.issued
                        .insert(token.clone(), (good, scope.unwrap_or_default()));
                    json(&format!(
                        r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600{rotated}}}"#
                    ))
                }
                path => {
                    let token = parts
                        .headers
                        .get(AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or_default()
                        .to_owned();
                    seen.api_requests.push(token.clone());
                    let (good, scope) = seen.issued.get(&token).cloned().unwrap_or_default();
                    match path {
                        "/api" if good => ok(),
                        "/api" => claims_challenge(),
                        "/admin" if scope.split(' ').any(|s| s == "admin") => ok(),
                        "/admin" => Response::builder()
                            .status(StatusCode::FORBIDDEN)
                            .header(
                                WWW_AUTHENTICATE,
                                r#"Bearer error="insufficient_scope", scope="admin""#,
                            )
                            .body(Full::default())
                            .unwrap(),
                        _ => {
                            // `/pop`: the first request of each token is told
                            // its (imaginary) signature is stale; the next
                            // with the same token passes.
                            let times = seen.api_requests.iter().filter(|t| **t == token).count();
                            if times == 1 {
                                Response::builder()
                                    .status(StatusCode::UNAUTHORIZED)
                                    .header(WWW_AUTHENTICATE, r#"PoP error="stale_signature""#)
                                    .body(Full::default())
                                    .unwrap()
                            } else {
                                ok()
                            }
                        }
                    }
                }
            }
        };
        let hold = Arc::clone(&hold_challenges);
        let addr = serve(move |req: Request<Incoming>| {
            let (handler, hold) = (handler.clone(), Arc::clone(&hold));
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let response = handler(parts, body);
                let barrier = hold.lock().unwrap().clone();
                let challenged = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .is_some_and(|v| v.to_str().is_ok_and(|v| v.contains("insufficient_claims")));
                if let (Some(barrier), true) = (barrier, challenged) {
                    if barrier.wait().await.is_leader() {
                        *hold.lock().unwrap() = None;
                    }
                }
                response
            }
        })
        .await;
        Self {
            addr,
            seen,
            hold_challenges,
        }
    }

    /// Holds claims challenges until `n` requests wait for one.
    fn hold_challenges_for(&self, n: usize) {
        *self.hold_challenges.lock().unwrap() = Some(Arc::new(tokio::sync::Barrier::new(n)));
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn source(&self) -> ClientCredentials {
        let endpoint = TokenEndpoint::builder(self.url("/token"))
            .client_id("app")
            .client_secret("s3cr3t")
            .http_client(support::oauth2::http_client())
            .build()
            .unwrap();
        ClientCredentials::new(endpoint)
            .scope("api")
            .client_capability("cp1")
    }

    /// A signed-in user's refresh token (`r0`), refreshed for the API's
    /// scope by a client that answers claims challenges.
    fn user_source(&self) -> RefreshTokenSource {
        let endpoint = TokenEndpoint::builder(self.url("/token"))
            .client_id("desktop-app")
            .http_client(support::oauth2::http_client())
            .build()
            .unwrap();
        RefreshTokenSource::new(endpoint, "r0")
            .scope("api")
            .client_capability("cp1")
    }

    fn refreshes(&self) -> Vec<String> {
        self.seen.lock().unwrap().refreshes.clone()
    }

    fn token_requests(&self) -> Vec<(Option<String>, Option<String>)> {
        self.seen.lock().unwrap().token_requests.clone()
    }

    fn api_requests(&self) -> usize {
        self.seen.lock().unwrap().api_requests.len()
    }
}

/// `true` if a token request's claims carry the required ones and `cp1`.
fn satisfies_required(claims: &str) -> bool {
    let claims: serde_json::Value = serde_json::from_str(claims).unwrap();
    let required: serde_json::Value = serde_json::from_str(REQUIRED).unwrap();
    claims["access_token"]["nbf"] == required["access_token"]["nbf"]
        && claims["access_token"]["xms_cc"]["values"] == serde_json::json!(["cp1"])
}

fn claims_challenge() -> Response<Full<Bytes>> {
    let claims = base64::engine::general_purpose::STANDARD.encode(REQUIRED);
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(
            WWW_AUTHENTICATE,
            format!(
                r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="{claims}""#
            ),
        )
        .body(Full::from(r#"{"error":"insufficient_claims"}"#))
        .unwrap()
}

fn ok() -> Response<Full<Bytes>> {
    Response::new(Full::from("ok"))
}

fn json(body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::from(body.to_owned()))
        .unwrap()
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

/// What a request to the API at `/api` gets through the layer on `cache`.
async fn api_status(cache: &TokenCache, entra: &Entra) -> StatusCode {
    ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()))
        .service(hyper_client())
        .oneshot(get(&entra.url("/api")))
        .await
        .unwrap()
        .status()
}

/// The capability alone, then the required claims merged with it.
fn cae_token_requests() -> Vec<(Option<String>, Option<String>)> {
    vec![
        (
            Some(r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#.to_owned()),
            Some("api".to_owned()),
        ),
        (
            Some(
                r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"},"xms_cc":{"values":["cp1"]}}}"#
                    .to_owned(),
            ),
            Some("api".to_owned()),
        ),
    ]
}

#[tokio::test]
async fn a_claims_challenge_costs_one_token_request_and_one_replay_under_the_layer() {
    let entra = Entra::start().await;
    let cache = TokenCache::new(entra.source());

    assert_eq!(api_status(&cache, &entra).await, StatusCode::OK);
    assert_eq!(entra.token_requests(), cae_token_requests());
    assert_eq!(entra.api_requests(), 2);
    // The token with the claims serves every later request.
    for _ in 0..5 {
        assert_eq!(api_status(&cache, &entra).await, StatusCode::OK);
    }
    assert_eq!(entra.token_requests().len(), 2);
    assert_eq!(entra.api_requests(), 7);
    assert_eq!(cache.stats().retries, 1);
}

#[tokio::test]
async fn concurrent_claims_challenges_of_one_token_share_one_token_request() {
    let entra = Entra::start().await;
    let cache = TokenCache::new(entra.source());
    cache.token().await.unwrap();
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()))
        .service(hyper_client());

    // The 50 challenges are answered only once all 50 requests were sent
    // with the first token.
    entra.hold_challenges_for(50);
    let calls: Vec<_> = (0..50)
        .map(|_| tokio::spawn(client.clone().oneshot(get(&entra.url("/api")))))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(entra.token_requests(), cae_token_requests());
    // Each request: challenged once, replayed once.
    assert_eq!(entra.api_requests(), 100);
    assert_eq!(cache.stats().retries, 50);
}

#[tokio::test]
async fn a_claims_challenge_through_reqwest_middleware() {
    let entra = Entra::start().await;
    let auth = BearerAuthMiddleware::new(entra.source());
    let cache = auth.cache().clone();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let res = client.get(entra.url("/api")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(entra.token_requests(), cae_token_requests());
    assert_eq!(entra.api_requests(), 2);
    assert_eq!(cache.stats().retries, 1);
}

#[tokio::test]
async fn a_source_that_cannot_ask_for_claims_gets_the_challenge_as_it_is() {
    let entra = Entra::start().await;
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(from_fn(|| async {
            Ok(AccessToken::new("plain"))
        })))
        .service(hyper_client());
    let res = client.oneshot(get(&entra.url("/api"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("insufficient_claims"));
    assert_eq!(entra.api_requests(), 1, "not replayed");
}

#[tokio::test]
async fn step_up_asks_for_the_named_scope_once_when_switched_on() {
    let entra = Entra::start().await;
    // Off (the default): the 403 is the answer, and nothing is fetched.
    let cache = TokenCache::new(entra.source());
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()))
        .service(hyper_client());
    let res = client.oneshot(get(&entra.url("/admin"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(entra.token_requests().len(), 1);
    assert_eq!(entra.api_requests(), 1);

    // On: one token request with the scope added, one replay.
    let cache = TokenCache::new(entra.source());
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()).step_up())
        .service(hyper_client());
    let res = client.oneshot(get(&entra.url("/admin"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let requests = entra.token_requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].1.as_deref(), Some("api admin"));
    assert_eq!(entra.api_requests(), 3);
    assert_eq!(cache.stats().retries, 1);
}

#[tokio::test]
async fn a_challenge_of_the_users_own_is_answered_by_its_handler() {
    let entra = Entra::start().await;
    let cache = TokenCache::new(entra.source());
    let layer = BearerAuthLayer::from_cache(cache.clone()).on_challenge(|c: &Challenge<'_>| {
        (c.is_scheme("PoP") && c.error() == Some("stale_signature"))
            .then_some(ChallengeAnswer::Replay)
    });
    let client = ServiceBuilder::new().layer(layer).service(hyper_client());
    let res = client.oneshot(get(&entra.url("/pop"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Sent again with the same token: no token request for it.
    assert_eq!(entra.token_requests().len(), 1);
    assert_eq!(entra.api_requests(), 2);

    // Without the handler, the crate does not know the scheme: the 401 is
    // returned, and the token is not replaced.
    let cache = TokenCache::new(entra.source());
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()))
        .service(hyper_client());
    let res = client.oneshot(get(&entra.url("/pop"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cache.stats().fetches, 1);
}

#[tokio::test]
async fn a_claims_challenge_to_a_users_token_refreshes_once_with_the_claims() {
    let entra = Entra::start().await;
    let rotations = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&rotations);
    let source = entra
        .user_source()
        .on_rotate(move |new| kept.lock().unwrap().push(new.expose().to_owned()));
    let cache = TokenCache::new(source);

    assert_eq!(api_status(&cache, &entra).await, StatusCode::OK);
    // The capability alone, then the challenge's claims merged with it, each
    // on a refresh: the second redeems the refresh token the first rotated.
    assert_eq!(entra.token_requests(), cae_token_requests());
    assert_eq!(entra.refreshes(), ["r0", "r1"]);
    assert_eq!(*rotations.lock().unwrap(), ["r1", "r2"]);
    assert_eq!(entra.api_requests(), 2);
    assert_eq!(cache.stats().retries, 1);

    // The claims token serves what follows; a later refresh redeems r2.
    for _ in 0..3 {
        assert_eq!(api_status(&cache, &entra).await, StatusCode::OK);
    }
    assert_eq!(entra.api_requests(), 5);
    cache
        .replace(cache.current().unwrap().generation())
        .await
        .unwrap();
    assert_eq!(entra.refreshes(), ["r0", "r1", "r2"]);
}

#[tokio::test]
async fn a_refresh_cannot_widen_the_scope_so_a_step_up_is_returned_as_it_is() {
    let entra = Entra::start().await;
    let cache = TokenCache::new(entra.user_source());
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()).step_up())
        .service(hyper_client());
    let res = client.oneshot(get(&entra.url("/admin"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The first token only: a refresh may narrow the scope, never widen it.
    assert_eq!(entra.refreshes(), ["r0"]);
    assert_eq!(entra.api_requests(), 1);
    assert_eq!(cache.stats().retries, 0);
}
