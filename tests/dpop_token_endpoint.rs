//! The token endpoint with a DPoP key (RFC 9449 §5, §8), against a loopback
//! server that checks every proof with `support::dpop_api::verify_proof`
//! (ring's verifiers, independent of the crate's signing): a proof on every
//! grant, one retry per `use_dpop_nonce`, nonces learned from any answer,
//! tokens bound to the key, and no proof or nonce in errors or logs.
#![cfg(feature = "jwt")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use support::captured_log::Captured;
use support::dpop_api::verify_proof;
use support::oauth2::{field, form, http_client, json, serve};
use tower_bearer::dpop::DpopProver;
use tower_bearer::oauth2::{
    AuthorizationCode, Callback, ClientCredentials, DpopKey, ErrorCode, ExchangeError,
    JwtAssertion, JwtBearer, OAuth2Error, PendingAuthorization, RefreshTokenSource,
    SigningAlgorithm, SigningKey, TokenEndpoint,
};
use tower_bearer::{TokenCache, TokenError, TokenSource};

/// What the server does with a proof's nonce.
#[derive(Clone, Copy, PartialEq)]
enum Nonces {
    /// Proofs must carry the server's nonce; a challenge hands it out.
    Required,
    /// Every request is challenged, with a new nonce each time (a server
    /// whose nonces never satisfy it).
    AlwaysChallenge,
    /// `use_dpop_nonce` without a `DPoP-Nonce` header.
    ChallengeWithoutNonce,
    /// No nonce required; every success hands out the next one.
    HandedOutOnSuccess,
}

/// One token request, as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    grant_type: String,
    jti: String,
    nonce: Option<String>,
    has_ath: bool,
    jkt: String,
    client_assertion: Option<String>,
    /// A JWT-bearer grant's `assertion`.
    assertion: Option<String>,
}

#[derive(Default)]
struct ServerState {
    seen: Vec<Seen>,
    challenges: usize,
    nonces_made: usize,
}

/// A token endpoint on 127.0.0.1 that verifies DPoP proofs.
struct Server {
    url: String,
    state: Arc<Mutex<ServerState>>,
}

impl Server {
    /// `token_type` is what successes say (`DPoP` or `Bearer`).
    async fn start(nonces: Nonces, token_type: &'static str) -> Self {
        let state = Arc::new(Mutex::new(ServerState::default()));
        let url = Arc::new(Mutex::new(String::new()));
        let addr = serve({
            let (state, url) = (Arc::clone(&state), Arc::clone(&url));
            move |parts, body| {
                handle(
                    &state,
                    &url.lock().unwrap(),
                    nonces,
                    token_type,
                    parts,
                    body,
                )
            }
        })
        .await;
        let token_url = format!("http://{addr}/token");
        *url.lock().unwrap() = token_url.clone();
        Self {
            url: token_url,
            state,
        }
    }

    fn endpoint(&self, key: &DpopKey) -> TokenEndpoint {
        TokenEndpoint::builder(&self.url)
            .client_id("client")
            .client_secret("client-s3cr3t")
            .http_client(http_client())
            .dpop(key.clone())
            .build()
            .unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().seen.len()
    }

    fn challenges(&self) -> usize {
        self.state.lock().unwrap().challenges
    }
}

fn nonce_number(n: usize) -> String {
    format!("server-nonce-{n}")
}

fn handle(
    state: &Mutex<ServerState>,
    url: &str,
    nonces: Nonces,
    token_type: &str,
    parts: Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let fields = form(&body);
    let Some(proof) = parts.headers.get("dpop").and_then(|v| v.to_str().ok()) else {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_dpop_proof", "error_description": "no proof"}),
        );
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let verified = match verify_proof(proof, "POST", url, now, Duration::from_secs(60)) {
        Ok(verified) => verified,
        Err(reason) => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_dpop_proof", "error_description": format!("{reason:?}")}),
            )
        }
    };
    let mut state = state.lock().unwrap();
    state.seen.push(Seen {
        grant_type: field(&fields, "grant_type").unwrap_or("").to_owned(),
        jti: verified.jti.clone(),
        nonce: verified.nonce().map(str::to_owned),
        has_ath: verified.ath().is_some(),
        jkt: verified.jkt.clone(),
        client_assertion: field(&fields, "client_assertion").map(str::to_owned),
        assertion: field(&fields, "assertion").map(str::to_owned),
    });
    let current = nonce_number(state.nonces_made);
    let challenge = match nonces {
        Nonces::Required => verified.nonce() != Some(current.as_str()),
        Nonces::AlwaysChallenge | Nonces::ChallengeWithoutNonce => true,
        Nonces::HandedOutOnSuccess => false,
    };
    if challenge {
        state.challenges += 1;
        if nonces == Nonces::AlwaysChallenge {
            state.nonces_made += 1;
        }
        let nonce = nonce_number(state.nonces_made);
        // The description echoes the proof and the nonce, as a careless
        // server might: neither may reach an error or a log.
        let mut response = json(
            StatusCode::BAD_REQUEST,
            json!({
                "error": "use_dpop_nonce",
                "error_description": format!("use nonce {nonce}, not the one in {proof}"),
            }),
        );
        if nonces != Nonces::ChallengeWithoutNonce {
            response
                .headers_mut()
                .insert("dpop-nonce", nonce.parse().unwrap());
        }
        return response;
    }
    let n = state.seen.len();
    let mut body = json!({
        "access_token": format!("at-{n}"),
        "token_type": token_type,
        "expires_in": 3600,
    });
    if field(&fields, "grant_type") != Some("client_credentials") {
        body["refresh_token"] = json!(format!("rt-{n}"));
    }
    let mut response = json(StatusCode::OK, body);
    if nonces == Nonces::HandedOutOnSuccess {
        state.nonces_made += 1;
        let next = nonce_number(state.nonces_made);
        response
            .headers_mut()
            .insert("dpop-nonce", next.parse().unwrap());
    }
    response
}

fn oauth2_error(err: &TokenError) -> &OAuth2Error {
    err.cause()
        .and_then(|c| c.downcast_ref::<OAuth2Error>())
        .unwrap_or_else(|| panic!("not an OAuth2Error: {err:?}"))
}

fn exchange_error(err: &TokenError) -> &ExchangeError {
    err.cause()
        .and_then(|c| c.downcast_ref::<ExchangeError>())
        .unwrap_or_else(|| panic!("not an ExchangeError: {err:?}"))
}

#[tokio::test]
async fn a_nonce_challenge_costs_one_more_request_once_and_the_token_is_bound() {
    let server = Server::start(Nonces::Required, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let source = ClientCredentials::new(server.endpoint(&key)).scope("api");

    let token = source.fetch().await.unwrap();
    assert_eq!((server.requests(), server.challenges()), (2, 1));
    let bound = token.dpop().expect("a DPoP token is bound to the key");
    assert_eq!(bound.thumbprint(), key.thumbprint());

    // The nonce is known now: the next token request is not challenged.
    source.fetch().await.unwrap();
    assert_eq!((server.requests(), server.challenges()), (3, 1));

    let seen = server.seen();
    for request in &seen {
        assert_eq!(request.grant_type, "client_credentials");
        assert!(!request.has_ath, "no ath at the token endpoint");
        assert_eq!(request.jkt, key.thumbprint());
    }
    let nonces: Vec<_> = seen.iter().map(|s| s.nonce.as_deref()).collect();
    let first = nonce_number(0);
    assert_eq!(nonces, [None, Some(first.as_str()), Some(first.as_str())]);
    let jtis: std::collections::HashSet<_> = seen.iter().map(|s| &s.jti).collect();
    assert_eq!(jtis.len(), 3, "a new proof for every request");
}

#[tokio::test]
async fn a_server_that_keeps_challenging_gets_two_requests_and_a_transient_error() {
    let server = Server::start(Nonces::AlwaysChallenge, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let (captured, _guard) = Captured::trace();
    let err = ClientCredentials::new(server.endpoint(&key))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!((server.requests(), server.challenges()), (2, 2));
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::UseDpopNonce);
    assert!(err.is_transient(), "{err:?}");
    // The server echoed the nonces and the proof: neither is shown.
    let shown = format!("{err} {err:?} {}", captured.text());
    for secret in [nonce_number(1), nonce_number(2)] {
        assert!(!shown.contains(&secret), "{secret} in {shown}");
    }
    assert!(
        !shown.contains("eyJ0eXAiOiJkcG9wK2p3dCI"),
        "a proof in {shown}"
    );
    assert!(shown.contains("[redacted]"), "{shown}");
    // The last nonce handed out is kept all the same.
    assert_eq!(
        server.seen()[1].nonce.as_deref(),
        Some(nonce_number(1).as_str())
    );
}

#[tokio::test]
async fn use_dpop_nonce_without_a_nonce_is_not_retried() {
    let server = Server::start(Nonces::ChallengeWithoutNonce, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let err = ClientCredentials::new(server.endpoint(&key))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 1, "nothing new to send");
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::UseDpopNonce);
}

#[tokio::test]
async fn a_nonce_handed_out_on_a_success_is_used_next() {
    let server = Server::start(Nonces::HandedOutOnSuccess, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let source = ClientCredentials::new(server.endpoint(&key));
    for _ in 0..3 {
        source.fetch().await.unwrap();
    }
    let nonces: Vec<_> = server.seen().into_iter().map(|s| s.nonce).collect();
    assert_eq!(
        nonces,
        [None, Some(nonce_number(1)), Some(nonce_number(2))],
        "each answer's nonce is the next proof's"
    );
    assert_eq!(server.challenges(), 0);
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch_and_its_one_retry() {
    let server = Server::start(Nonces::Required, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let cache = TokenCache::new(ClientCredentials::new(server.endpoint(&key)));
    let callers: Vec<_> = (0..32).map(|_| tokio::spawn(cache.token())).collect();
    for caller in callers {
        let token = caller.await.unwrap().unwrap();
        assert_eq!(token.dpop().unwrap().thumbprint(), key.thumbprint());
    }
    assert_eq!((server.requests(), server.challenges()), (2, 1));
}

#[tokio::test]
async fn a_bearer_answer_is_a_bearer_token_unless_bound_tokens_are_required() {
    let server = Server::start(Nonces::HandedOutOnSuccess, "Bearer").await;
    let key = DpopKey::generate_es256().unwrap();
    let (captured, _guard) = Captured::trace();
    let token = ClientCredentials::new(server.endpoint(&key))
        .fetch()
        .await
        .unwrap();
    assert!(token.dpop().is_none(), "the server declined to bind it");
    assert!(
        captured.text().contains("not sender-constrained"),
        "{}",
        captured.text()
    );

    let strict = TokenEndpoint::builder(&server.url)
        .client_id("client")
        .client_secret("client-s3cr3t")
        .http_client(http_client())
        .dpop(key.clone())
        .require_dpop_bound(true)
        .build()
        .unwrap();
    let err = ClientCredentials::new(strict).fetch().await.unwrap_err();
    assert!(matches!(exchange_error(&err), ExchangeError::DpopNotBound));
    assert!(err.is_permanent());
}

#[tokio::test]
async fn the_retry_carries_a_new_client_assertion() {
    let server = Server::start(Nonces::Required, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem").unwrap();
    let signing = SigningKey::from_pem(SigningAlgorithm::Rs256, pem).unwrap();
    let endpoint = TokenEndpoint::builder(&server.url)
        .client_id("client")
        .private_key_jwt(signing)
        .http_client(http_client())
        .dpop(key)
        .build()
        .unwrap();
    ClientCredentials::new(endpoint).fetch().await.unwrap();
    let assertions: Vec<_> = server
        .seen()
        .into_iter()
        .map(|s| s.client_assertion.unwrap())
        .collect();
    assert_eq!(assertions.len(), 2);
    assert_ne!(
        assertions[0], assertions[1],
        "a server keeps assertion jtis"
    );
}

#[tokio::test]
async fn the_retry_of_a_jwt_bearer_grant_carries_a_new_assertion() {
    let server = Server::start(Nonces::Required, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem").unwrap();
    let signing = SigningKey::from_pem(SigningAlgorithm::Rs256, pem).unwrap();
    let assertion = JwtAssertion::builder(signing)
        .issuer("service@example")
        .audience(&server.url)
        .build()
        .unwrap();
    let grant = JwtBearer::new(server.endpoint(&key), assertion);
    let token = grant.fetch().await.unwrap();
    assert!(token.dpop().is_some());
    let seen = server.seen();
    assert_eq!(server.challenges(), 1);
    assert!(seen
        .iter()
        .all(|s| s.grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer"));
    let assertions: Vec<_> = seen.into_iter().map(|s| s.assertion.unwrap()).collect();
    assert_eq!(assertions.len(), 2);
    assert_ne!(
        assertions[0], assertions[1],
        "a server may take an assertion's jti once"
    );
}

#[tokio::test]
async fn the_code_exchange_and_refreshes_prove_the_same_key() {
    let server = Server::start(Nonces::Required, "DPoP").await;
    let key = DpopKey::generate_ed25519().unwrap();
    let flow = AuthorizationCode::new("http://127.0.0.1:9/authorize", server.endpoint(&key))
        .unwrap()
        .redirect_uri("http://127.0.0.1:9/callback");
    let request = flow.start();
    // RFC 9449 §10: the code is bound to the key's thumbprint.
    assert!(
        request
            .url()
            .contains(&format!("&dpop_jkt={}", key.thumbprint())),
        "{}",
        request.url()
    );
    let callback = Callback::from_url(&format!(
        "http://127.0.0.1:9/callback?code=c0de&state={}",
        request.state().secret().expose()
    ))
    .unwrap();
    let source = request.finish(&callback).await.unwrap();
    let first = source.fetch().await.unwrap();
    assert_eq!(first.dpop().unwrap().thumbprint(), key.thumbprint());
    let refreshed = source.fetch().await.unwrap();
    assert_ne!(refreshed.secret(), first.secret());
    assert_eq!(refreshed.dpop().unwrap().thumbprint(), key.thumbprint());

    // A refresh token from elsewhere, refreshed at an endpoint with the key.
    let again = RefreshTokenSource::new(server.endpoint(&key), "rt-elsewhere")
        .fetch()
        .await
        .unwrap();
    assert!(again.dpop().is_some());

    let grants: Vec<_> = server.seen().into_iter().map(|s| s.grant_type).collect();
    assert_eq!(
        grants,
        [
            "authorization_code",
            "authorization_code",
            "refresh_token",
            "refresh_token"
        ],
        "one nonce challenge (on the code exchange), then the nonce is known"
    );
    assert!(server.seen().iter().all(|s| s.jkt == key.thumbprint()));
    assert_eq!(server.challenges(), 1);
}

#[tokio::test]
async fn a_code_bound_to_one_key_is_exchanged_only_by_a_flow_holding_it() {
    let server = Server::start(Nonces::Required, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let flow_for = |endpoint| {
        AuthorizationCode::new("http://127.0.0.1:9/authorize", endpoint)
            .unwrap()
            .redirect_uri("http://127.0.0.1:9/callback")
    };
    let request = flow_for(server.endpoint(&key)).start();
    // Saved in a session, as a web app does, and read back after a restart.
    let saved = serde_json::to_string(request.pending()).unwrap();
    let pending: PendingAuthorization = serde_json::from_str(&saved).unwrap();
    assert_eq!(pending.dpop_jkt(), Some(key.thumbprint()));
    let callback = Callback::from_url(&format!(
        "http://127.0.0.1:9/callback?code=c0de&state={}",
        pending.state().secret().expose()
    ))
    .unwrap();

    // The restart generated a new key; another flow has none.
    let other = DpopKey::generate_es256().unwrap();
    let plain = TokenEndpoint::builder(&server.url)
        .client_id("client")
        .http_client(http_client())
        .build()
        .unwrap();
    for (endpoint, held) in [
        (server.endpoint(&other), Some(other.thumbprint().to_owned())),
        (plain, None),
    ] {
        let err = flow_for(endpoint)
            .exchange(&pending, &callback)
            .await
            .unwrap_err();
        match exchange_error(&err) {
            ExchangeError::DpopKeyMismatch { bound_to, held: h } => {
                assert_eq!(bound_to, key.thumbprint());
                assert_eq!(*h, held);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.is_permanent());
    }
    assert_eq!(server.requests(), 0, "the code was not sent");

    // Not used up: the flow with the key finishes it.
    let response = flow_for(server.endpoint(&key))
        .exchange(&pending, &callback)
        .await
        .unwrap();
    assert!(response.dpop().is_some());
    assert!(server.seen().iter().all(|s| s.jkt == key.thumbprint()));
}

#[tokio::test]
async fn without_dpop_jkt_the_authorization_url_does_not_name_the_key() {
    let server = Server::start(Nonces::Required, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let flow = AuthorizationCode::new("http://127.0.0.1:9/authorize", server.endpoint(&key))
        .unwrap()
        .without_dpop_jkt();
    assert!(!flow.start().url().contains("dpop_jkt"));
    // An endpoint without a key names none.
    let plain = TokenEndpoint::builder(&server.url)
        .client_id("client")
        .http_client(http_client())
        .build()
        .unwrap();
    let flow = AuthorizationCode::new("http://127.0.0.1:9/authorize", plain).unwrap();
    assert!(!flow.start().url().contains("dpop_jkt"));
}

#[tokio::test]
async fn debug_of_the_endpoint_shows_the_thumbprint_only() {
    let server = Server::start(Nonces::Required, "DPoP").await;
    let key = DpopKey::generate_es256().unwrap();
    let endpoint = server.endpoint(&key);
    let source = ClientCredentials::new(endpoint.clone());
    let token = source.fetch().await.unwrap();
    let shown = format!("{endpoint:?} {token:?}");
    assert!(shown.contains(key.thumbprint()), "{shown}");
    assert!(!shown.contains(&nonce_number(0)), "{shown}");
    assert!(!shown.contains("at-2"), "{shown}");
}
