//! Interoperability with a real authorization server: npm's `oidc-provider`
//! (panva's certified OpenID provider), started on 127.0.0.1 by these tests.
//!
//! `tests/interop/` holds its `package.json`, `package-lock.json` and
//! `server.mjs`. The first test to run installs it with `npm ci` (once, under a
//! lock shared by test processes). Without node and npm, or if the install
//! fails, these tests fail: they never skip.
//!
//! Real time is used (the server's clock): token lifetimes are 3 s where
//! expiry matters, and no assertion depends on timing.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{COOKIE, LOCATION, SET_COOKIE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_bearer::oauth2::{
    AuthorizationCode, AuthorizationRequest, Callback, ClientAuth, ClientCredentials, CsrfState,
    Discovery, ErrorCode, ExchangeError, HttpClient, OAuth2Error, PendingAuthorization,
    RefreshTokenSource, TokenEndpoint,
};
use tower_bearer::{BearerAuthLayer, BoxError, TokenCache, TokenError, TokenSource};

const SPECIAL_SECRET: &str = "p@ss w0rd:+/%&=?";
const APP_SECRET: &str = "app secret/+=";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

type Plain = Client<HttpConnector, Full<Bytes>>;

fn plain() -> Plain {
    Client::builder(TokioExecutor::new()).build_http()
}

// ---------------------------------------------------------------------------
// Installing and running the server

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Runs `npm ci` in tests/interop unless a previous run completed it for the
/// current lock file. Threads of this process wait on a `OnceLock`; other
/// test processes (nextest) on a lock directory created atomically.
fn ensure_installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = interop_dir();
        let lock_file =
            std::fs::read(dir.join("package-lock.json")).expect("tests/interop/package-lock.json");
        let stamp = format!("{:x}", fnv1a(&lock_file));
        let marker = dir.join("node_modules/.tower-bearer-installed");
        let done = || std::fs::read_to_string(&marker).is_ok_and(|s| s == stamp);
        if done() {
            return;
        }
        let lock = dir.join(".npm-install.lock");
        loop {
            match std::fs::create_dir(&lock) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if done() {
                        return;
                    }
                    // A lock left by a killed process is stale after 5 minutes.
                    let age = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > Duration::from_secs(300)) {
                        let _ = std::fs::remove_dir(&lock);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot create {}: {e}", lock.display()),
            }
        }
        struct Unlock(PathBuf);
        impl Drop for Unlock {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let _unlock = Unlock(lock);
        if done() {
            return;
        }
        let output = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("interop tests need node and npm on PATH to install oidc-provider: {e}")
            });
        assert!(
            output.status.success(),
            "`npm ci` in tests/interop failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(&marker, &stamp).expect("write install marker");
    });
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A running oidc-provider; killed when dropped.
struct AuthServer {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl AuthServer {
    fn start(token_ttl_secs: u64) -> Self {
        ensure_installed();
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(interop_dir())
            .env("TOKEN_TTL", token_ttl_secs.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("interop tests need node on PATH: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(port.trim().parse::<u16>().expect("port"));
                }
                out_log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let err_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                err_log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => Self { child, port, log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("oidc-provider did not start:\n{}", log.lock().unwrap());
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn endpoint(&self, client_id: &str, secret: &str, auth: ClientAuth) -> TokenEndpoint {
        TokenEndpoint::builder(self.url("/token"))
            .client_id(client_id)
            .client_secret(secret)
            .client_auth(auth)
            .http_client(HttpClient::new(plain()))
            .build()
            .unwrap()
    }

    /// Asks the server (as the resource server) about an access token.
    async fn introspect(&self, token: &str) -> Value {
        introspect_at(&plain(), &self.url("/token/introspection"), token).await
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn introspect_at(client: &Plain, url: &str, token: &str) -> Value {
    let body = serde_urlencoded::to_string([("token", token)]).unwrap();
    let req = Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic YXBpOmFwaS1zZWNyZXQ=") // api:api-secret
        .body(Full::from(body))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

fn oauth2_error(err: &TokenError) -> &OAuth2Error {
    err.cause()
        .and_then(|c| c.downcast_ref::<OAuth2Error>())
        .unwrap_or_else(|| panic!("not an OAuth2Error: {err:?}"))
}

/// Fetches with `source`, which the server refuses: a permanent error whose
/// cause is `invalid_client` with a 401, and whose Debug and Display never
/// show `hidden` (the secret, or the assertion, that was refused).
async fn assert_refused_as_invalid_client(source: ClientCredentials, hidden: &str) {
    let err = source.fetch().await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    let cause = oauth2_error(&err);
    assert_eq!(cause.code(), &ErrorCode::InvalidClient);
    assert_eq!(cause.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(
        !format!("{err:?} {err}").contains(hidden),
        "{hidden} shown: {err:?}"
    );
}

// ---------------------------------------------------------------------------
// The browser, played by a cookie jar that follows redirects

/// Follows the authorization URL's redirects, through the provider's
/// interaction endpoint (which logs in and consents), until the redirect URI.
async fn authorize(server: &AuthServer, request: &AuthorizationRequest) -> Callback {
    Callback::from_url(&redirect_location(server, request.url()).await).unwrap()
}

/// Plays the browser from `url` to the redirect URI, and returns the URL it
/// was redirected to, as the browser would request it.
async fn redirect_location(server: &AuthServer, url: &str) -> String {
    let client = plain();
    let mut jar: BTreeMap<String, (String, String)> = BTreeMap::new(); // name -> (value, path)
    let mut url = url.to_owned();
    for _ in 0..10 {
        let path = url
            .splitn(4, '/')
            .nth(3)
            .map_or("/".to_owned(), |p| format!("/{p}"));
        let cookies: Vec<String> = jar
            .iter()
            .filter(|(_, (_, cookie_path))| path.starts_with(cookie_path.as_str()))
            .map(|(name, (value, _))| format!("{name}={value}"))
            .collect();
        let mut req = Request::get(&url);
        if !cookies.is_empty() {
            req = req.header(COOKIE, cookies.join("; "));
        }
        let res = client
            .request(req.body(Full::default()).unwrap())
            .await
            .unwrap();
        for set in res.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let mut attrs = set.split(';').map(str::trim);
            let (name, value) = attrs.next().unwrap().split_once('=').unwrap();
            let mut cookie_path = "/".to_owned();
            let mut expired = value.is_empty();
            for attr in attrs {
                let lower = attr.to_ascii_lowercase();
                if let Some(p) = attr
                    .strip_prefix("path=")
                    .or_else(|| attr.strip_prefix("Path="))
                {
                    cookie_path = p.to_owned();
                }
                expired |= lower == "max-age=0" || lower.contains("1970");
            }
            if expired {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), (value.to_owned(), cookie_path));
            }
        }
        let status = res.status();
        let Some(location) = res.headers().get(LOCATION) else {
            let body = res.into_body().collect().await.unwrap().to_bytes();
            panic!(
                "no redirect from {url} ({status}): {}\nserver log:\n{}",
                String::from_utf8_lossy(&body),
                server.log()
            );
        };
        let location = location.to_str().unwrap().to_owned();
        if location.starts_with(REDIRECT_URI) {
            return location;
        }
        url = if location.starts_with('/') {
            server.url(&location)
        } else {
            location
        };
    }
    panic!("too many redirects");
}

fn code_flow(server: &AuthServer) -> AuthorizationCode {
    let endpoint = server.endpoint("app", APP_SECRET, ClientAuth::Basic);
    AuthorizationCode::new(server.url("/auth"), endpoint)
        .unwrap()
        .redirect_uri(REDIRECT_URI)
        .scope("openid")
        .scope("api:read")
}

// ---------------------------------------------------------------------------
// Client credentials

#[tokio::test]
async fn client_credentials_with_basic_auth_and_a_special_secret() {
    let server = AuthServer::start(60);
    let source =
        ClientCredentials::new(server.endpoint("cc-basic", SPECIAL_SECRET, ClientAuth::Basic))
            .scope("api:read")
            .scope("api:write");
    let token = source
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(token.scope(), Some("api:read api:write"));
    let info = server.introspect(token.secret()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], "cc-basic");
    assert_eq!(info["scope"], "api:read api:write");
}

#[tokio::test]
async fn client_credentials_with_post_auth_and_a_resource() {
    let server = AuthServer::start(60);
    let source =
        ClientCredentials::new(server.endpoint("cc-post", SPECIAL_SECRET, ClientAuth::RequestBody))
            .scope("api:read")
            .resource("urn:tower-bearer:api");
    let token = source
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let info = server.introspect(token.secret()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], "cc-post");
    assert_eq!(info["aud"], "urn:tower-bearer:api");
}

#[tokio::test]
async fn a_wrong_secret_is_a_typed_invalid_client() {
    let server = AuthServer::start(60);
    for auth in [ClientAuth::Basic, ClientAuth::RequestBody] {
        let client_id = if auth == ClientAuth::Basic {
            "cc-basic"
        } else {
            "cc-post"
        };
        let source = ClientCredentials::new(server.endpoint(client_id, "p@ss w0rd:+/%&=!", auth));
        assert_refused_as_invalid_client(source, "w0rd").await;
    }
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_through_the_layer() {
    let server = AuthServer::start(3);
    let source =
        ClientCredentials::new(server.endpoint("cc-basic", SPECIAL_SECRET, ClientAuth::Basic))
            .scope("api:read");
    // No refresh ahead: each fetch is caused by a request, so they can be counted.
    let cache = TokenCache::builder(source)
        .refresh_ahead(Duration::ZERO)
        .build();
    // The API stands in for a resource server: it introspects every token.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let api = {
        let (seen, url, client) = (seen.clone(), server.url("/token/introspection"), plain());
        service_fn(move |req: Request<Full<Bytes>>| {
            let (seen, url, client) = (seen.clone(), url.clone(), client.clone());
            async move {
                let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
                let token = auth.strip_prefix("Bearer ").unwrap().to_owned();
                let active = introspect_at(&client, &url, &token).await["active"] == true;
                seen.lock().unwrap().push(token);
                let status = if active {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                };
                Ok::<_, BoxError>(
                    Response::builder()
                        .status(status)
                        .body(Full::<Bytes>::default())
                        .unwrap(),
                )
            }
        })
    };
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()))
        .service(api);
    let call = || {
        client.clone().oneshot(
            Request::get("http://api.local/v1")
                .body(Full::default())
                .unwrap(),
        )
    };

    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
    assert_eq!(cache.stats().fetches, 1);
    // Outlive the 3 s token (real time: the server's clock decides).
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
    let stats = cache.stats();
    assert_eq!(stats.fetches, 2, "{stats:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0], seen[1]);
    assert_ne!(seen[1], seen[2], "the expired token was replaced");
}

// ---------------------------------------------------------------------------
// Authorization code + PKCE, refresh tokens

#[tokio::test]
async fn authorization_code_with_pkce_without_a_browser() {
    let server = AuthServer::start(60);
    let request = code_flow(&server).start();
    assert!(request.url().contains("code_challenge_method=S256"));
    let callback = authorize(&server, &request).await;
    assert!(callback.code().is_some(), "{callback:?}");
    let response = request
        .exchange(&callback)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(response.refresh_token().is_some());
    assert!(response.id_token().is_some());
    assert_eq!(response.scope(), Some("api:read"));
    let info = server.introspect(response.access_token().expose()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], "alice");

    // The same pending authorization is not exchanged twice: refused here,
    // nothing sent.
    let err = request.exchange(&callback).await.unwrap_err();
    let cause = err.cause().and_then(|c| c.downcast_ref::<ExchangeError>());
    assert!(
        matches!(cause, Some(ExchangeError::AlreadyExchanged)),
        "{err:?}"
    );

    // A copy of it (as a session store hands one back) has no such memory:
    // the server refuses the code it already redeemed.
    let copy =
        PendingAuthorization::new(CsrfState::new(request.state().secret().expose().to_owned()))
            .with_verifier(request.verifier().unwrap().clone());
    let copy = match request.pending().redirect_uri() {
        Some(uri) => copy.with_redirect_uri(uri),
        None => copy,
    };
    let err = code_flow(&server)
        .exchange(&copy, &callback)
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn pkce_is_required_by_the_server() {
    let server = AuthServer::start(60);
    let request = code_flow(&server).without_pkce().start();
    let callback = authorize(&server, &request).await;
    let err = request.exchange(&callback).await.unwrap_err();
    let cause = oauth2_error(&err);
    assert_eq!(cause.code(), &ErrorCode::InvalidRequest, "{cause:?}");
    assert_eq!(
        cause.status(),
        None,
        "returned to the redirect URI, not by the token endpoint"
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_the_old_one_is_refused() {
    let server = AuthServer::start(60);
    let request = code_flow(&server).start();
    let callback = authorize(&server, &request).await;
    let rotations = Arc::new(AtomicUsize::new(0));
    let latest = Arc::new(Mutex::new(String::new()));
    let (count, store) = (rotations.clone(), latest.clone());
    let source = request
        .finish(&callback)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
        .on_rotate(move |new| {
            count.fetch_add(1, Ordering::SeqCst);
            *store.lock().unwrap() = new.expose().to_owned();
        });
    let original = source.refresh_token().await;

    // The first fetch serves the code exchange's token; no refresh yet.
    let first = source.fetch().await.unwrap();
    assert_eq!(rotations.load(Ordering::SeqCst), 0);
    // Concurrent fetches: one refresh, the same refresh token never sent twice.
    let (a, b) = tokio::join!(source.fetch(), source.fetch());
    let (a, b) = (
        a.unwrap_or_else(|e| panic!("{e}\n{}", server.log())),
        b.unwrap(),
    );
    assert_eq!(a.secret(), b.secret());
    assert_ne!(a.secret(), first.secret());
    assert_eq!(rotations.load(Ordering::SeqCst), 1);
    let current = source.refresh_token().await;
    assert_ne!(current, original);
    assert_eq!(current.expose(), latest.lock().unwrap().as_str());
    assert_eq!(server.introspect(a.secret()).await["active"], true);

    // Another refresh rotates again.
    let c = source.fetch().await.unwrap();
    assert_ne!(c.secret(), a.secret());
    assert_eq!(rotations.load(Ordering::SeqCst), 2);
    assert_eq!(server.introspect(c.secret()).await["active"], true);

    // The original refresh token was spent: reusing it is invalid_grant.
    let endpoint = server.endpoint("app", APP_SECRET, ClientAuth::Basic);
    let stale = RefreshTokenSource::new(endpoint, original);
    let err = stale.fetch().await.unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidGrant);
    // Refused as reused, not merely as unknown: a reuse revokes the whole
    // grant before the server answers (INTEROP.md), so the newest access and
    // refresh tokens die with it. (The server's log says "already used" too,
    // but its stderr reaches the test on another thread, after the answer, so
    // the log is not asserted: that raced.)
    assert_eq!(server.introspect(c.secret()).await["active"], false);
    let err = source.fetch().await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidGrant);
    assert_eq!(
        rotations.load(Ordering::SeqCst),
        2,
        "no rotation on a refusal"
    );
}

// ---------------------------------------------------------------------------
// Web apps (issue 13): discovery, the RFC 9207 issuer check, a flow finished
// by another process, `resource` on the token requests

const API_RESOURCE: &str = "urn:tower-bearer:api";
const REPORTS_RESOURCE: &str = "urn:tower-bearer:reports";

/// How many requests the token endpoint has received (the server counts them).
async fn token_requests(server: &AuthServer) -> u64 {
    test_count(server, "/test/token-requests").await
}

/// A count the server keeps for the tests (`GET /test/…` → `{"count": n}`).
async fn test_count(server: &AuthServer, route: &str) -> u64 {
    let res = plain()
        .request(
            Request::get(server.url(route))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    body["count"].as_u64().unwrap()
}

/// The `app` client's flow, configured from the server's metadata alone.
async fn discovered_flow(issuer: &str) -> AuthorizationCode {
    let metadata = Discovery::new(issuer)
        .http_client(HttpClient::new(plain()))
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let endpoint = metadata
        .token_endpoint_builder()
        .client_id("app")
        .client_secret(APP_SECRET)
        .build()
        .unwrap();
    metadata
        .authorization_code(endpoint)
        .unwrap()
        .redirect_uri(REDIRECT_URI)
        .scope("openid")
        .scope("api:read")
}

#[tokio::test]
async fn discovery_yields_working_endpoints() {
    let server = AuthServer::start(60);
    let issuer = server.url("");
    let metadata = Discovery::new(&issuer)
        .http_client(HttpClient::new(plain()))
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(metadata.issuer(), issuer);
    assert_eq!(metadata.token_endpoint(), server.url("/token"));
    assert_eq!(
        metadata.authorization_endpoint(),
        Some(server.url("/auth").as_str())
    );
    assert!(metadata.authorization_response_iss_parameter_supported());
    assert!(metadata
        .code_challenge_methods_supported()
        .contains(&"S256".to_owned()));
    assert_eq!(metadata.client_auth(), Some(ClientAuth::Basic));

    // Client credentials through the discovered token endpoint.
    let endpoint = metadata
        .token_endpoint_builder()
        .client_id("cc-basic")
        .client_secret(SPECIAL_SECRET)
        .build()
        .unwrap();
    let token = ClientCredentials::new(endpoint)
        .scope("api:read")
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(server.introspect(token.secret()).await["active"], true);

    // The authorization-code flow from the same document, end to end.
    let request = discovered_flow(&issuer).await.start();
    assert!(request.pending().issuer_required());
    let callback = authorize(&server, &request).await;
    assert_eq!(callback.iss(), Some(issuer.as_str()));
    let source = request
        .finish(&callback)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let token = source.fetch().await.unwrap();
    let info = server.introspect(token.secret()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], "alice");
    assert_eq!(token_requests(&server).await, 2);
}

#[tokio::test]
async fn a_callback_with_a_rewritten_or_missing_iss_is_refused_without_a_token_request() {
    let server = AuthServer::start(60);
    let issuer = server.url("");
    let request = discovered_flow(&issuer).await.start();
    let location = redirect_location(&server, request.url()).await;
    let sent_iss = format!("iss={}", encode(&issuer));
    assert!(location.contains(&sent_iss), "{location}");

    let before = token_requests(&server).await;
    // The mix-up: the response names another authorization server.
    let rewritten = location.replace(&sent_iss, "iss=https%3A%2F%2Fattacker.example");
    let err = request
        .exchange(&Callback::from_url(&rewritten).unwrap())
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert!(
        matches!(exchange_error(&err), ExchangeError::IssuerMismatch { expected, returned }
            if *expected == issuer && returned == "https://attacker.example"),
        "{err:?}"
    );
    // The same response with `iss` removed: the server promised to send it.
    let stripped = location
        .replace(&format!("&{sent_iss}"), "")
        .replace(&format!("{sent_iss}&"), "");
    assert!(!stripped.contains("iss="), "{stripped}");
    let err = request
        .exchange(&Callback::from_url(&stripped).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(exchange_error(&err), ExchangeError::MissingIssuer { expected } if *expected == issuer),
        "{err:?}"
    );
    assert_eq!(
        token_requests(&server).await,
        before,
        "a refused callback sends nothing"
    );

    // The untouched response is exchanged: the code was good all along.
    let response = request
        .exchange(&Callback::from_url(&location).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(
        server.introspect(response.access_token().expose()).await["active"],
        true
    );
    assert_eq!(token_requests(&server).await, before + 1);
}

fn encode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)]).unwrap()[1..].to_owned()
}

fn exchange_error(err: &TokenError) -> &ExchangeError {
    err.cause()
        .and_then(|c| c.downcast_ref::<ExchangeError>())
        .unwrap_or_else(|| panic!("not an ExchangeError: {err:?}"))
}

/// Where the second process of the test below finds the first one's files.
const RESUME_DIR_ENV: &str = "TOWER_BEARER_INTEROP_RESUME_DIR";
const RESUME_TEST: &str = "a_flow_started_in_one_process_is_finished_in_another";

/// A web app's callback landing on another instance: this process starts
/// the flow and plays the browser; a second OS process (this test binary
/// again, running only this test with the hand-over directory in its
/// environment) gets nothing but the saved `PendingAuthorization` (JSON), the
/// redirect URL and the issuer, and finishes the flow.
#[tokio::test]
async fn a_flow_started_in_one_process_is_finished_in_another() {
    if let Some(dir) = std::env::var_os(RESUME_DIR_ENV) {
        return finish_in_this_process(Path::new(&dir)).await;
    }
    let server = AuthServer::start(60);
    let issuer = server.url("");
    let dir = std::env::temp_dir().join(format!(
        "tower-bearer-resume-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    {
        let request = discovered_flow(&issuer).await.start();
        let pending = serde_json::to_value(request.pending()).unwrap();
        let location = redirect_location(&server, request.url()).await;
        let handover =
            serde_json::json!({"issuer": issuer, "pending": pending, "callback": location});
        std::fs::write(dir.join("handover.json"), handover.to_string()).unwrap();
    } // Nothing of the flow is left in this process.

    let output = Command::new(std::env::current_exe().unwrap())
        .args([RESUME_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(RESUME_DIR_ENV, &dir)
        .output()
        .unwrap();
    let result = std::fs::read_to_string(dir.join("result.json"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success() && result.is_ok(),
        "the second process failed ({}):\n{}\n{}\nserver log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    let result: Value = serde_json::from_str(&result.unwrap()).unwrap();
    assert_ne!(result["pid"], std::process::id());

    // The other process holds a live token for alice, from one exchange.
    let info = server
        .introspect(result["access_token"].as_str().unwrap())
        .await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["client_id"], "app");
    assert_eq!(token_requests(&server).await, 1);
    // And its refresh token keeps the grant alive from here.
    let endpoint = server.endpoint("app", APP_SECRET, ClientAuth::Basic);
    let refresh_token = result["refresh_token"].as_str().unwrap();
    let refreshed = RefreshTokenSource::new(endpoint, refresh_token)
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(server.introspect(refreshed.secret()).await["sub"], "alice");
}

/// The second process: a fresh runtime, a fresh flow from discovery, and the
/// saved state; writes what it obtained for the first process to check.
async fn finish_in_this_process(dir: &Path) {
    let handover: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("handover.json")).unwrap()).unwrap();
    let flow = discovered_flow(handover["issuer"].as_str().unwrap()).await;
    let pending: PendingAuthorization =
        serde_json::from_value(handover["pending"].clone()).unwrap();
    assert_eq!(pending.issuer(), handover["issuer"].as_str());
    let callback = Callback::from_url(handover["callback"].as_str().unwrap()).unwrap();
    let source = flow
        .finish(&pending, &callback)
        .await
        .unwrap_or_else(|e| panic!("finishing the saved flow: {e}"));
    let token = source.fetch().await.unwrap();
    let result = serde_json::json!({
        "pid": std::process::id(),
        "access_token": token.secret(),
        "refresh_token": source.refresh_token().await.expose(),
    });
    std::fs::write(dir.join("result.json"), result.to_string()).unwrap();
}

#[tokio::test]
async fn resource_on_the_token_requests_selects_the_audience() {
    let server = AuthServer::start(60);
    let audience = |token: &str| {
        let token = token.to_owned();
        let server = &server;
        async move {
            let info = server.introspect(&token).await;
            assert_eq!(info["active"], true, "{info}");
            info["aud"].as_str().unwrap().to_owned()
        }
    };

    // `resource`: on the authorization URL, the exchange and each refresh.
    let request = code_flow(&server).resource(REPORTS_RESOURCE).start();
    assert!(request
        .url()
        .contains("&resource=urn%3Atower-bearer%3Areports"));
    let callback = authorize(&server, &request).await;
    let source = request
        .finish(&callback)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let exchanged = source.fetch().await.unwrap();
    let refreshed = source.fetch().await.unwrap();
    assert_ne!(exchanged.secret(), refreshed.secret());
    assert_eq!(audience(exchanged.secret()).await, REPORTS_RESOURCE);
    assert_eq!(audience(refreshed.secret()).await, REPORTS_RESOURCE);

    // One authorization for both resources: the exchange's parameter alone
    // decides which one each grant's tokens are for.
    let both = code_flow(&server)
        .param("resource", API_RESOURCE)
        .param("resource", REPORTS_RESOURCE);
    for chosen in [REPORTS_RESOURCE, API_RESOURCE] {
        let request = both.clone().token_param("resource", chosen).start();
        let callback = authorize(&server, &request).await;
        let source = request
            .finish(&callback)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_eq!(
            audience(source.fetch().await.unwrap().secret()).await,
            chosen
        );
        assert_eq!(
            audience(source.fetch().await.unwrap().secret()).await,
            chosen
        );
    }
    assert_eq!(token_requests(&server).await, 6);
}

// ---------------------------------------------------------------------------
// Refresh-token rotation across replicas

/// One code exchange, as every replica of a fleet is seeded with it: its
/// refresh token (and access token) in each replica's configuration.
fn seeded_fleet_sources(
    server: &AuthServer,
    response: &tower_bearer::oauth2::TokenResponse,
    n: usize,
    rotations: &Arc<Mutex<Vec<String>>>,
) -> Vec<RefreshTokenSource> {
    (0..n)
        .map(|_| {
            let rotations = rotations.clone();
            let endpoint = server.endpoint("app", APP_SECRET, ClientAuth::Basic);
            RefreshTokenSource::from_response(endpoint, response)
                .unwrap()
                .on_rotate(move |new| rotations.lock().unwrap().push(new.expose().to_owned()))
        })
        .collect()
}

/// Why the shared tier exists: four replicas that each redeem the refresh
/// token they were seeded with. The first redemption rotates it; the others
/// reuse a spent one, and the server revokes the whole grant.
#[tokio::test]
async fn four_replicas_rotating_refresh_tokens_on_their_own_revoke_the_grant_hazard() {
    let server = AuthServer::start(60);
    let request = code_flow(&server).start();
    let callback = authorize(&server, &request).await;
    let response = request.exchange(&callback).await.unwrap();
    let rotations = Arc::new(Mutex::new(Vec::new()));
    let caches: Vec<TokenCache> = seeded_fleet_sources(&server, &response, 4, &rotations)
        .into_iter()
        .map(TokenCache::new)
        .collect();
    for cache in &caches {
        cache.acquire().await.unwrap(); // the code exchange's token
    }
    // The token is rejected everywhere: each replica refreshes.
    let refreshes = caches.iter().map(|cache| {
        let cache = cache.clone();
        async move {
            let generation = cache.acquire().await.unwrap().generation();
            cache.replace(generation).await
        }
    });
    let results = futures_join_all(refreshes).await;
    let refused = results
        .iter()
        .filter(|r| {
            r.as_ref()
                .is_err_and(|e| oauth2_error(e).code() == &ErrorCode::InvalidGrant)
        })
        .count();
    assert!(refused >= 1, "{results:?}");
    // The hazard: a reuse revoked the whole grant before the server answered
    // (INTEROP.md), so even the refresh tokens the winner rotated to are dead.
    // (Asserted through the server's answers, not its log, which reaches the
    // test on another thread after the answer.)
    let rotated = rotations.lock().unwrap().clone();
    assert!(!rotated.is_empty(), "{results:?}");
    for refresh_token in rotated {
        let endpoint = server.endpoint("app", APP_SECRET, ClientAuth::Basic);
        let err = RefreshTokenSource::new(endpoint, refresh_token)
            .fetch()
            .await
            .unwrap_err();
        assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidGrant);
    }
}

async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

#[cfg(feature = "redis")]
mod support;

/// The shared tier: four replicas seeded with the same code exchange, each
/// with its own runtime, cache and tier on one Redis, rotation on, 3 s tokens
/// refreshed ahead under load for 7 s, then a rejection seen by all four.
/// Each refresh token is redeemed once: not one `invalid_grant`.
#[cfg(feature = "redis")]
#[test]
fn four_replicas_rotating_refresh_tokens_through_the_shared_tier_never_see_invalid_grant() {
    use support::fleet::{key, together, total, Replica};
    use support::redis::RedisServer;
    use tower_bearer::shared_tier::SharedTier;

    let server = AuthServer::start(3);
    let redis = RedisServer::start();
    let setup = tokio::runtime::Runtime::new().unwrap();
    let response = setup.block_on(async {
        let request = code_flow(&server).start();
        let callback = authorize(&server, &request).await;
        request.exchange(&callback).await.unwrap()
    });
    let seed = response.refresh_token().unwrap().expose().to_owned();
    let rotations = Arc::new(Mutex::new(Vec::new()));
    let replicas: Vec<Replica> = seeded_fleet_sources(&server, &response, 4, &rotations)
        .into_iter()
        .enumerate()
        .map(|(i, source)| {
            let tier = SharedTier::builder(redis.url())
                .namespace("interop-rotation")
                .encryption_key(key("k1", 1))
                .build_refreshing(source)
                .unwrap();
            Replica::around(format!("r{i}"), tier, server.url("/unused"), |c| c)
        })
        .collect();

    // Load: 4 workers per replica, each asking for a token every 10 ms.
    let results = together(&replicas, |r| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(7);
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let cache = r.cache.clone();
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    while tokio::time::Instant::now() < deadline {
                        outcomes.push(cache.acquire().await.map(|_| ()));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    outcomes
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.unwrap());
        }
        all
    });
    for (i, outcomes) in results.iter().enumerate() {
        for outcome in outcomes {
            assert!(
                outcome.is_ok(),
                "replica {i}: {outcome:?}\n{}",
                server.log()
            );
        }
    }
    // A rejection seen by all four: one more rotation, no reuse.
    let replaced = together(&replicas, |r| async move {
        let token = r.cache.acquire().await.unwrap();
        r.cache.replace(token.generation()).await.map(|_| ())
    });
    for outcome in &replaced {
        assert!(outcome.is_ok(), "{outcome:?}\n{}", server.log());
    }

    let log = server.log();
    assert!(
        !log.contains("grant.error"),
        "a refresh token was reused:\n{log}"
    );
    let rotated = rotations.lock().unwrap().clone();
    let distinct: std::collections::HashSet<_> = rotated.iter().collect();
    assert_eq!(
        distinct.len(),
        rotated.len(),
        "each refresh token was handed out once"
    );
    assert!(
        rotated.len() >= 3,
        "7 s of 3 s tokens and a rejection: {} rotations",
        rotated.len()
    );
    // Every lease but the first (which published the code exchange's token)
    // redeemed a refresh token once.
    assert_eq!(total(&replicas, |s| s.leases), rotated.len() as u64 + 1);
    assert_eq!(total(&replicas, |s| s.fallbacks), 0);
    // The newest access token is alive at the server.
    let current = setup.block_on(replicas[0].cache.token()).unwrap();
    assert_eq!(
        setup.block_on(server.introspect(current.secret()))["active"],
        true
    );
    // Neither token is in Redis in the clear.
    let newest_refresh = rotated.last().unwrap();
    for (key, values) in redis.dump() {
        for value in values {
            for secret in [newest_refresh.as_str(), seed.as_str(), current.secret()] {
                assert!(
                    !value.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{key} holds a token in the clear"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Issue 15: clients that authenticate with a signed JWT (feature `jwt`). The
// server registers the public keys of tests/fixtures/keys for its
// private_key_jwt clients, and refuses any client assertion used twice.

#[cfg(feature = "jwt")]
mod signed_client_auth {
    use super::*;
    use tower_bearer::oauth2::{SigningAlgorithm, SigningKey, TokenEndpointBuilder};

    const CLIENT_SECRET_JWT_SECRET: &str = "client-secret-jwt: at least 32 bytes, HS256";

    fn key(algorithm: SigningAlgorithm, file: &str, kid: &str) -> SigningKey {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/keys")
            .join(file);
        SigningKey::from_pem(algorithm, std::fs::read_to_string(path).unwrap())
            .unwrap()
            .with_kid(kid)
    }

    fn endpoint(server: &AuthServer, client_id: &str, key: SigningKey) -> TokenEndpointBuilder {
        TokenEndpoint::builder(server.url("/token"))
            .client_id(client_id)
            .private_key_jwt(key)
            .http_client(HttpClient::new(plain()))
    }

    #[tokio::test]
    async fn private_key_jwt_client_credentials_with_rs256_ps256_and_es256() {
        let server = AuthServer::start(60);
        for key in [
            key(SigningAlgorithm::Rs256, "rsa.pkcs8.pem", "rsa-1"),
            key(SigningAlgorithm::Ps256, "rsa.pkcs1.pem", "rsa-1"),
            key(SigningAlgorithm::Es256, "ec.sec1.pem", "ec-1"),
        ] {
            let algorithm = key.algorithm();
            let source = ClientCredentials::new(
                endpoint(&server, "cc-private-key-jwt", key)
                    .build()
                    .unwrap(),
            )
            .scope("api:read");
            // Twice: the server refuses a client assertion it has seen.
            for _ in 0..2 {
                let token = source
                    .fetch()
                    .await
                    .unwrap_or_else(|e| panic!("{algorithm}: {e}\n{}", server.log()));
                let info = server.introspect(token.secret()).await;
                assert_eq!(info["active"], true, "{info}");
                assert_eq!(info["client_id"], "cc-private-key-jwt");
                assert_eq!(info["scope"], "api:read");
            }
        }
    }

    #[tokio::test]
    async fn private_key_jwt_with_the_issuer_as_audience() {
        let server = AuthServer::start(60);
        let client = "cc-private-key-jwt-issuer-aud";
        let rsa = || key(SigningAlgorithm::Rs256, "rsa.pkcs8.pem", "rsa-1");
        // The token endpoint URL (the default) is not what this client's
        // server wants: a typed invalid_client. That the audience was the
        // reason shows below, where only the audience changes and the same
        // key is accepted (the server's log says so too, but it reaches the
        // test on another thread, after the answer: asserting it raced).
        let source = ClientCredentials::new(endpoint(&server, client, rsa()).build().unwrap());
        let err = source.fetch().await.unwrap_err();
        assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidClient);

        let issuer = server.url("");
        let source = ClientCredentials::new(
            endpoint(&server, client, rsa())
                .assertion_audience(issuer)
                .build()
                .unwrap(),
        );
        let token = source
            .fetch()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_eq!(server.introspect(token.secret()).await["client_id"], client);
    }

    #[tokio::test]
    async fn private_key_jwt_with_a_wrong_key_is_a_typed_invalid_client() {
        let server = AuthServer::start(60);
        for kid in ["rsa-1", "unknown"] {
            let other = key(SigningAlgorithm::Rs256, "rsa-other.pkcs8.pem", kid);
            let source = ClientCredentials::new(
                endpoint(&server, "cc-private-key-jwt", other)
                    .build()
                    .unwrap(),
            );
            // "eyJ": the start of any JWT, so of an assertion.
            assert_refused_as_invalid_client(source, "eyJ").await;
        }
    }

    /// The code exchange and every refresh authenticate with a new assertion.
    #[tokio::test]
    async fn private_key_jwt_for_the_authorization_code_flow_and_refreshes() {
        let server = AuthServer::start(60);
        let ec = key(SigningAlgorithm::Es256, "ec.pkcs8.pem", "ec-1");
        let flow = AuthorizationCode::new(
            server.url("/auth"),
            endpoint(&server, "app-private-key-jwt", ec)
                .build()
                .unwrap(),
        )
        .unwrap()
        .redirect_uri(REDIRECT_URI)
        .scope("openid")
        .scope("api:read");
        let request = flow.start();
        let callback = authorize(&server, &request).await;
        let source = request
            .finish(&callback)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        let first = source.fetch().await.unwrap();
        let refreshed = source
            .fetch()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        let again = source
            .fetch()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_ne!(first.secret(), refreshed.secret());
        assert_ne!(refreshed.secret(), again.secret());
        let info = server.introspect(again.secret()).await;
        assert_eq!(info["active"], true, "{info}");
        assert_eq!(info["client_id"], "app-private-key-jwt");
        assert_eq!(info["sub"], "alice");
    }

    #[tokio::test]
    async fn client_secret_jwt_client_credentials() {
        let server = AuthServer::start(60);
        let endpoint = |secret: &str| {
            TokenEndpoint::builder(server.url("/token"))
                .client_id("cc-client-secret-jwt")
                .client_secret(secret)
                .client_auth(ClientAuth::ClientSecretJwt)
                .http_client(HttpClient::new(plain()))
                .build()
                .unwrap()
        };
        let source = ClientCredentials::new(endpoint(CLIENT_SECRET_JWT_SECRET)).scope("api:read");
        for _ in 0..2 {
            let token = source
                .fetch()
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
            assert_eq!(
                server.introspect(token.secret()).await["client_id"],
                "cc-client-secret-jwt"
            );
        }
        let wrong = ClientCredentials::new(endpoint("client-secret-jwt: at least 32 bytes, HS25!"));
        let err = wrong.fetch().await.unwrap_err();
        assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidClient);
    }
}

// ---------------------------------------------------------------------------
// Issue 23: DPoP (RFC 9449, feature `jwt`). The server requires its nonce in
// every proof at the token endpoint, binds the `cc-dpop` and
// `app-dpop-public` clients' access tokens (and the public client's refresh
// tokens) to the proof's key, and says so through introspection
// (`token_type`, `cnf.jkt`). Its nonces are derived from the minute and stay
// valid for minutes, and a success hands out the next one when it changes:
// each key is challenged once, whatever the clock does during a test.

#[cfg(feature = "jwt")]
mod dpop {
    use super::*;
    use tower_bearer::dpop::DpopProver;
    use tower_bearer::oauth2::{DpopKey, SigningAlgorithm};

    const CC_DPOP_SECRET: &str = "cc-dpop secret";
    const PUBLIC_CLIENT: &str = "app-dpop-public";

    /// (token requests, nonce challenges) the server has seen.
    async fn counts(server: &AuthServer) -> (u64, u64) {
        let challenges = test_count(server, "/test/dpop-nonce-challenges").await;
        (token_requests(server).await, challenges)
    }

    /// The endpoint for `client_id` (with its secret, if it has one) that
    /// proves possession of `key`.
    fn dpop_endpoint(
        server: &AuthServer,
        client_id: &str,
        secret: Option<&str>,
        key: &DpopKey,
    ) -> TokenEndpoint {
        let mut builder = TokenEndpoint::builder(server.url("/token"))
            .client_id(client_id)
            .http_client(HttpClient::new(plain()))
            .dpop(key.clone());
        if let Some(secret) = secret {
            builder = builder.client_secret(secret);
        }
        builder.build().unwrap()
    }

    fn cc_endpoint(server: &AuthServer, key: &DpopKey) -> TokenEndpoint {
        dpop_endpoint(server, "cc-dpop", Some(CC_DPOP_SECRET), key)
    }

    fn public_endpoint(server: &AuthServer, key: &DpopKey) -> TokenEndpoint {
        dpop_endpoint(server, PUBLIC_CLIENT, None, key)
    }

    fn public_flow(server: &AuthServer, key: &DpopKey) -> AuthorizationCode {
        AuthorizationCode::new(server.url("/auth"), public_endpoint(server, key))
            .unwrap()
            .redirect_uri(REDIRECT_URI)
            .scope("openid")
            .scope("api:read")
    }

    /// Introspection says the token is DPoP-bound to `key`.
    async fn assert_bound_to(server: &AuthServer, token: &str, key: &DpopKey) {
        let info = server.introspect(token).await;
        assert_eq!(info["active"], true, "{info}");
        assert_eq!(info["token_type"], "DPoP", "{info}");
        assert_eq!(info["cnf"]["jkt"], key.thumbprint(), "{info}");
    }

    fn keys() -> Vec<DpopKey> {
        let pem = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys/rsa.pkcs8.pem"),
        )
        .unwrap();
        vec![
            DpopKey::generate_es256().unwrap(),
            DpopKey::from_pem(SigningAlgorithm::Rs256, &pem).unwrap(),
            DpopKey::from_pem(SigningAlgorithm::Ps256, &pem).unwrap(),
            DpopKey::generate_ed25519().unwrap(),
        ]
    }

    #[tokio::test]
    async fn client_credentials_tokens_are_bound_and_each_key_is_challenged_once() {
        let server = AuthServer::start(60);
        for (i, key) in keys().into_iter().enumerate() {
            let i = i as u64;
            let source = ClientCredentials::new(cc_endpoint(&server, &key)).scope("api:read");
            let token = source
                .fetch()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", key.algorithm(), server.log()));
            // The first request had no nonce: one challenge, one retry.
            assert_eq!(
                counts(&server).await,
                (3 * i + 2, i + 1),
                "{}",
                key.algorithm()
            );
            assert_eq!(token.dpop().unwrap().thumbprint(), key.thumbprint());
            assert_bound_to(&server, token.secret(), &key).await;
            // The nonce is known now: one request, no challenge.
            let again = source.fetch().await.unwrap();
            assert_eq!(
                counts(&server).await,
                (3 * i + 3, i + 1),
                "{}",
                key.algorithm()
            );
            assert_bound_to(&server, again.secret(), &key).await;
        }
    }

    /// End to end: oidc-provider issues the bound token (its nonce asked
    /// for once), the layer sends it with a fresh proof per request to the
    /// verifying resource server, whose own nonce costs each request at most
    /// one replay with the same token, and never a token request.
    #[tokio::test]
    async fn bound_tokens_from_oidc_provider_through_the_layer_to_a_verifying_api() {
        use support::dpop_api::DpopApi;
        use tower::Layer;

        let server = AuthServer::start(60);
        let key = DpopKey::generate_es256().unwrap();
        let api = DpopApi::start().await;
        api.expect_jkt(key.thumbprint());
        let cache =
            TokenCache::new(ClientCredentials::new(cc_endpoint(&server, &key)).scope("api:read"));
        let client = BearerAuthLayer::from_cache(cache.clone()).layer(plain());
        let calls: Vec<_> = (0..16)
            .map(|i| {
                let request = Request::post(api.url(&format!("/v1/things/{i}")))
                    .body(Full::new(Bytes::from_static(b"{}")))
                    .unwrap();
                tokio::spawn(client.clone().oneshot(request))
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        // The token endpoint: one token, its nonce challenge answered once.
        assert_eq!(counts(&server).await, (2, 1));
        assert_eq!(cache.stats().fetches, 1);
        // The API: each request accepted, challenged for the nonce at most
        // once (a replay with the same token), every proof new.
        let counts = api.counts();
        assert_eq!(counts.accepted, 16);
        assert_eq!(counts.requests, 16 + counts.nonce_challenges);
        assert_eq!((counts.rejected, counts.reused_jti), (0, 0));
        api.assert_no_proof_reused();
        // The nonce is known now: one send per request.
        let request = Request::get(api.url("/v1/me"))
            .body(Full::default())
            .unwrap();
        assert_eq!(
            client.oneshot(request).await.unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(api.counts().requests, counts.requests + 1);
    }

    #[tokio::test]
    async fn concurrent_callers_cost_one_token_request_and_one_challenge() {
        let server = AuthServer::start(60);
        let key = DpopKey::generate_es256().unwrap();
        let cache = TokenCache::new(ClientCredentials::new(cc_endpoint(&server, &key)));
        let callers: Vec<_> = (0..16).map(|_| tokio::spawn(cache.token())).collect();
        let mut tokens = std::collections::HashSet::new();
        for caller in callers {
            tokens.insert(caller.await.unwrap().unwrap().secret().to_owned());
        }
        assert_eq!(tokens.len(), 1);
        assert_eq!(counts(&server).await, (2, 1));
    }

    #[tokio::test]
    async fn a_client_that_must_use_dpop_is_refused_without_a_key() {
        let server = AuthServer::start(60);
        let endpoint = server.endpoint("cc-dpop", CC_DPOP_SECRET, ClientAuth::Basic);
        let err = ClientCredentials::new(endpoint).fetch().await.unwrap_err();
        assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidGrant);
        assert_eq!(counts(&server).await, (1, 0));
    }

    /// A public client: the code exchange and its refresh token are bound
    /// to the key; a refresh with another key is refused, and the refresh
    /// token still works with the right one.
    #[tokio::test]
    async fn a_public_clients_refresh_token_is_bound_to_its_key() {
        let server = AuthServer::start(60);
        let key = DpopKey::generate_es256().unwrap();
        let request = public_flow(&server, &key).start();
        assert!(request
            .url()
            .contains(&format!("&dpop_jkt={}", key.thumbprint())));
        let callback = authorize(&server, &request).await;
        let source = request
            .finish(&callback)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_eq!(
            counts(&server).await,
            (2, 1),
            "the exchange was challenged once"
        );
        let first = source.fetch().await.unwrap();
        assert_eq!(first.dpop().unwrap().thumbprint(), key.thumbprint());
        assert_bound_to(&server, first.secret(), &key).await;

        // Another key cannot refresh it (its first proof has no nonce: one
        // challenge, then the refusal).
        let thief = DpopKey::generate_es256().unwrap();
        let stolen = RefreshTokenSource::new(
            public_endpoint(&server, &thief),
            source.refresh_token().await,
        );
        let err = stolen.fetch().await.unwrap_err();
        assert_eq!(
            oauth2_error(&err).code(),
            &ErrorCode::InvalidGrant,
            "{err}\n{}",
            server.log()
        );
        assert_eq!(counts(&server).await, (4, 2));

        // The key's own refreshes work, bound to it, without a challenge.
        let refreshed = source
            .fetch()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_ne!(refreshed.secret(), first.secret());
        assert_bound_to(&server, refreshed.secret(), &key).await;
        let again = source.fetch().await.unwrap();
        assert_bound_to(&server, again.secret(), &key).await;
        assert_eq!(counts(&server).await, (6, 2));
    }

    /// RFC 9449 §10: a code issued for one key's `dpop_jkt` cannot be
    /// exchanged with another key. The crate refuses before sending it; the
    /// server refuses a pending authorization that did not keep the key.
    #[tokio::test]
    async fn dpop_jkt_binds_the_code_to_the_key() {
        let server = AuthServer::start(60);
        let key = DpopKey::generate_es256().unwrap();
        let other = DpopKey::generate_ed25519().unwrap();
        let request = public_flow(&server, &key).start();
        let callback = authorize(&server, &request).await;
        let err = public_flow(&server, &other)
            .exchange(request.pending(), &callback)
            .await
            .unwrap_err();
        let cause = err.cause().and_then(|c| c.downcast_ref::<ExchangeError>());
        assert!(
            matches!(cause, Some(ExchangeError::DpopKeyMismatch { .. })),
            "{err}"
        );
        assert_eq!(counts(&server).await, (0, 0), "the code was not sent");

        // A session saved without the thumbprint: the crate cannot tell, and
        // oidc-provider refuses the other key's proof.
        let mut saved = serde_json::to_value(request.pending()).unwrap();
        saved.as_object_mut().unwrap().remove("dpop_jkt");
        let unbound: PendingAuthorization = serde_json::from_value(saved).unwrap();
        let err = public_flow(&server, &other)
            .exchange(&unbound, &callback)
            .await
            .unwrap_err();
        assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidGrant);
        // One challenge (the other key had no nonce), then the refusal.
        assert_eq!(counts(&server).await, (2, 1));

        // The same flow with the key the code was issued for.
        let request = public_flow(&server, &key).start();
        let callback = authorize(&server, &request).await;
        let response = request
            .exchange(&callback)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_eq!(response.token_type(), Some("DPoP"));
        assert!(response.dpop().is_some());
        assert_bound_to(&server, response.access_token().expose(), &key).await;
    }
}
