//! Secrets stay secret: no token, client secret, refresh token, PKCE verifier,
//! `state` or authorization code in any `Debug`/`Display` output or tracing
//! event; the `Authorization` header is sensitive; the token does not follow a
//! redirect to another origin; token endpoints must be `https://`; and the
//! parsers that read what servers send never panic.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, LOCATION};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;
use support::api::*;
use support::captured_log::Captured;
use support::stack::*;
use support::token_server::*;
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};
use tower_bearer::oauth2::{
    AuthorizationCode, AuthorizeUrl, BodyFormat, BuildError, Callback, ClientAuth,
    ClientCredentials, CsrfState, ExchangeError, HttpClient, OAuth2Error, PkceVerifier,
    RefreshTokenSource, TokenEndpoint, TokenResponse,
};
use tower_bearer::{
    from_fn, AccessToken, BearerAuthError, BearerAuthLayer, Origin, Secret, StaticToken,
    TokenCache, TokenError, TokenSource,
};
use tower_http::follow_redirect::FollowRedirectLayer;

const ACCESS_TOKEN: &str = "AT-7d1c-do-not-print";
const CLIENT_ID: &str = "client-42";
const CLIENT_SECRET: &str = "CS-93ab-do-not-print";
const REFRESH_TOKEN: &str = "RT-5e20-do-not-print";
const ROTATED_REFRESH_TOKEN: &str = "RT2-61fa-do-not-print";
const ID_TOKEN: &str = "IDT-0b77-do-not-print";
const AUTH_CODE: &str = "AC-c4d2-do-not-print";

fn token_body() -> String {
    format!(
        r#"{{"access_token":"{ACCESS_TOKEN}","token_type":"Bearer","expires_in":3600,"refresh_token":"{ROTATED_REFRESH_TOKEN}","id_token":"{ID_TOKEN}","scope":"api"}}"#
    )
}

/// Every secret the tests use, plus the Basic credentials that carry one.
fn secrets(extra: &[&str]) -> Vec<String> {
    let basic = base64_encode(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes());
    let mut all: Vec<String> = [
        ACCESS_TOKEN,
        CLIENT_SECRET,
        REFRESH_TOKEN,
        ROTATED_REFRESH_TOKEN,
        ID_TOKEN,
        AUTH_CODE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Any part of the Basic credentials that reaches into the secret (an
    // excerpt may cut it short).
    all.push(basic[..16].to_owned());
    all.extend(extra.iter().map(|s| s.to_string()));
    all
}

#[track_caller]
fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} shows a secret ({secret}): {text}"
        );
    }
}

fn base64_encode(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn endpoint(server: &TokenServer) -> tower_bearer::oauth2::TokenEndpointBuilder {
    TokenEndpoint::builder(server.url())
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .http_client(HttpClient::new(hyper_client()))
        .timeout(Duration::from_secs(3))
}

// ---------------------------------------------------------------------------
// Debug and Display
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn debug_and_display_of_public_types_and_errors_show_no_secret() {
    let server = TokenServer::start(Endpoint::json(200, &token_body())).await;
    let mut shown: Vec<(&str, String)> = Vec::new();

    let token = AccessToken::new(ACCESS_TOKEN).with_expires_in(Duration::from_secs(60));
    shown.push(("AccessToken", format!("{token:?}")));
    let secret = Secret::new(CLIENT_SECRET);
    shown.push(("Secret", format!("{secret:?} {secret}")));
    shown.push((
        "StaticToken",
        format!("{:?}", StaticToken::new(ACCESS_TOKEN)),
    ));

    // The cache and the layer, holding a token.
    let cache = TokenCache::new(StaticToken::new(ACCESS_TOKEN));
    cache.token().await.unwrap();
    shown.push(("TokenCache", format!("{cache:?}")));
    shown.push((
        "TokenCacheBuilder",
        format!("{:?}", TokenCache::builder(StaticToken::new(ACCESS_TOKEN))),
    ));
    let layer = BearerAuthLayer::from_cache(cache.clone())
        .only_for_origins([Origin::parse("http://127.0.0.1:1").unwrap()]);
    shown.push(("BearerAuthLayer", format!("{layer:?}")));
    let service = layer.layer(hyper_client());
    shown.push(("BearerAuth", format!("{service:?}")));
    shown.push(("CacheStats", format!("{:?}", cache.stats())));

    // oauth2 configuration and sources.
    let builder = endpoint(&server);
    shown.push(("TokenEndpointBuilder", format!("{builder:?}")));
    let ep = builder.build().unwrap();
    shown.push(("TokenEndpoint", format!("{ep:?}")));
    let cc = ClientCredentials::new(ep.clone()).scope("api");
    shown.push(("ClientCredentials", format!("{cc:?}")));
    let rt = RefreshTokenSource::new(ep.clone(), REFRESH_TOKEN);
    shown.push(("RefreshTokenSource", format!("{rt:?}")));
    let response = ep
        .request(&[("grant_type", "client_credentials")])
        .await
        .unwrap();
    shown.push(("TokenResponse", format!("{response:?}")));
    shown.push((
        "AccessToken from response",
        format!("{:?}", response.to_access_token()),
    ));
    let flow = AuthorizationCode::new(format!("http://{}/authorize", server.addr), ep.clone())
        .unwrap()
        .redirect_uri("http://127.0.0.1/callback");
    shown.push(("AuthorizationCode", format!("{flow:?}")));
    let request = flow.start();
    let verifier = request.verifier().unwrap().secret().expose().to_owned();
    let state = request.state().secret().expose().to_owned();
    shown.push(("AuthorizationRequest", format!("{request:?}")));
    let pending = format!("{:?}", request.pending());
    assert!(!pending.contains(&state), "{pending}");
    shown.push(("PendingAuthorization", pending));
    shown.push((
        "PkceVerifier",
        format!("{:?}", PkceVerifier::new(verifier.clone()).unwrap()),
    ));
    shown.push(("CsrfState", format!("{:?}", CsrfState::new(state.clone()))));
    let callback = Callback::from_query(&format!("code={AUTH_CODE}&state={state}")).unwrap();
    shown.push(("Callback", format!("{callback:?}")));
    // rt is consumed by the cache below; exchange the code for real.
    let exchanged = request.exchange(&callback).await.unwrap();
    shown.push(("TokenResponse (code)", format!("{exchanged:?}")));
    let refreshing = RefreshTokenSource::from_response(ep.clone(), &exchanged).unwrap();
    shown.push(("RefreshTokenSource (rotated)", format!("{refreshing:?}")));

    // Errors: every kind of failure the endpoint can produce, including a
    // debugging error page that echoes the request (client secret in the body).
    let failing = [
        Endpoint::json(400, r#"{"error":"invalid_client"}"#),
        Endpoint::Echo(500),
        Endpoint::Echo(400),
        Endpoint::json(
            200,
            &format!(r#"{{"access_token":"{ACCESS_TOKEN}","token_type":"mac"}}"#),
        ),
        Endpoint::json(500, &token_body()),
        Endpoint::json(200, &format!(r#"{{"access_token":"{ACCESS_TOKEN}""#)),
        Endpoint::Huge {
            size: 2 << 20,
            declared: false,
        },
        Endpoint::Hang,
    ];
    for auth in [ClientAuth::Basic, ClientAuth::RequestBody] {
        for format in [BodyFormat::Form, BodyFormat::Json] {
            let ep = endpoint(&server)
                .client_auth(auth)
                .body_format(format)
                .build()
                .unwrap();
            for mode in &failing {
                server.set(mode.clone());
                let err = ep
                    .request(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", REFRESH_TOKEN),
                    ])
                    .await
                    .unwrap_err();
                shown.push(("TokenError", format!("{err} {err:?}")));
                if let Some(cause) = err.cause() {
                    shown.push(("TokenError cause", format!("{cause} {cause:?}")));
                    if let Some(e) = cause.downcast_ref::<OAuth2Error>() {
                        shown.push(("OAuth2Error", format!("{e} {e:?}")));
                    }
                    if let Some(e) = cause.downcast_ref::<ExchangeError>() {
                        shown.push(("ExchangeError", format!("{e} {e:?}")));
                    }
                }
                let wrapped: BearerAuthError<std::io::Error> = BearerAuthError::Token(err);
                shown.push(("BearerAuthError", format!("{wrapped} {wrapped:?}")));
            }
        }
    }
    let callback_err = Callback::from_query("error=access_denied&error_description=no").unwrap();
    shown.push(("Callback (error)", format!("{callback_err:?}")));

    // The `state` is a CSRF nonce, not a credential: `CsrfState` hides it,
    // but the `Callback` (what the server sent back) may show it.
    shown.push((
        "CsrfState (alone)",
        format!("{:?}", CsrfState::new(state.clone())),
    ));
    let secrets = secrets(&[&verifier]);
    if std::env::var_os("SHOW_SECURITY_OUTPUT").is_some() {
        for (what, text) in &shown {
            eprintln!("{what}: {text}");
        }
    }
    assert!(!shown.last().unwrap().1.contains(&state));
    for (what, text) in &shown {
        assert_no_secret(what, text, &secrets);
    }
}

#[tokio::test]
async fn authorization_header_is_sensitive_on_first_send_and_retry() {
    let seen: Arc<Mutex<Vec<(bool, String)>>> = Arc::default();
    let inner = {
        let seen = Arc::clone(&seen);
        service_fn(move |req: Request<Full<Bytes>>| {
            let seen = Arc::clone(&seen);
            async move {
                let value = &req.headers()[AUTHORIZATION];
                let debug = format!("{req:?}");
                let mut seen = seen.lock().unwrap();
                seen.push((value.is_sensitive(), debug));
                // Reject the first attempt so the retry is checked too.
                let status = if seen.len() == 1 {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::OK
                };
                Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
            }
        })
    };
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let source = from_fn(move || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok(AccessToken::new(format!("{ACCESS_TOKEN}-{i}"))) }
    });
    let client = BearerAuthLayer::new(source).layer(inner);
    let req = Request::get("http://127.0.0.1/x")
        .body(Full::default())
        .unwrap();
    let res = client.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // And once more on the fast path (token cached).
    let req = Request::get("http://127.0.0.1/y")
        .body(Full::default())
        .unwrap();
    client.oneshot(req).await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for (sensitive, debug) in seen.iter() {
        assert!(sensitive, "Authorization not marked sensitive");
        assert!(debug.contains("Sensitive"), "{debug}");
        assert_no_secret("the request's Debug", debug, &secrets(&[]));
    }
}

// ---------------------------------------------------------------------------
// Tracing
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn tracing_at_trace_level_shows_no_secret() {
    let (captured, _guard) = Captured::trace();

    let server = TokenServer::start(Endpoint::json(200, &token_body())).await;
    let api = Api::start(ApiMode::AcceptAny).await;

    // Client credentials: fetch, serve, rejection, refresh, retry.
    let cc = ClientCredentials::new(endpoint(&server).build().unwrap());
    let stack = Stack::new(cache_for(cc), api.clone());
    assert!(stack.burst(5).await[0].is_ok_with(ACCESS_TOKEN));
    api.set(ApiMode::RejectAll);
    let _ = stack.burst(5).await;
    api.set(ApiMode::AcceptAny);

    // Failures of every kind, with the secret in the request (header or
    // body) and echoed back by an error page.
    for (mode, auth) in [
        (Endpoint::Echo(500), ClientAuth::Basic),
        (Endpoint::Echo(500), ClientAuth::RequestBody),
        (Endpoint::Echo(401), ClientAuth::Basic),
        (
            Endpoint::json(400, r#"{"error":"invalid_client"}"#),
            ClientAuth::Basic,
        ),
        (Endpoint::json(200, "{not json"), ClientAuth::RequestBody),
        (Endpoint::Hang, ClientAuth::Basic),
    ] {
        server.set(mode);
        let ep = endpoint(&server).client_auth(auth).build().unwrap();
        let stack = Stack::new(cache_for(ClientCredentials::new(ep)), api.clone());
        let _ = stack.burst(3).await;
        tokio::time::sleep(Duration::from_secs(40)).await;
        let _ = stack.burst(3).await;
    }

    // Refresh token grant with rotation, then the authorization code flow.
    server.set(Endpoint::json(200, &token_body()));
    let refresh = RefreshTokenSource::new(endpoint(&server).build().unwrap(), REFRESH_TOKEN);
    let stack = Stack::new(cache_for(refresh), api.clone());
    let _ = stack.burst(3).await;

    let ep = endpoint(&server).build().unwrap();
    let flow = AuthorizationCode::new(format!("http://{}/authorize", server.addr), ep).unwrap();
    let request = flow.start();
    let verifier = request.verifier().unwrap().secret().expose().to_owned();
    let state = request.state().secret().expose().to_owned();
    let callback = Callback::from_query(&format!("code={AUTH_CODE}&state={state}")).unwrap();
    let source = request.finish(&callback).await.unwrap();
    let stack = Stack::new(cache_for(source), api.clone());
    let _ = stack.burst(3).await;

    let log = captured.text();
    // The capture works: fetches, failures and rejections were logged.
    for expected in [
        "tower_bearer.fetch",
        "token rejected by a server",
        "backing off",
    ] {
        assert!(log.contains(expected), "no `{expected}` in the log:\n{log}");
    }
    assert_no_secret("the tracing output", &log, &secrets(&[&verifier]));
}

// ---------------------------------------------------------------------------
// What servers send: escaped, capped and redacted before anything shows it
// ---------------------------------------------------------------------------

/// Every way a failed fetch can be shown: the error's `Display` and `Debug`,
/// its cause's, and the server's texts as `OAuth2Error` hands them out.
fn renderings(err: &TokenError) -> Vec<String> {
    let mut shown = vec![err.to_string(), format!("{err:?}")];
    if let Some(cause) = err.cause() {
        shown.extend([cause.to_string(), format!("{cause:?}")]);
        if let Some(e) = cause.downcast_ref::<OAuth2Error>() {
            shown.push(e.error().to_owned());
            shown.extend(e.error_description().map(str::to_owned));
            shown.extend(e.error_uri().map(str::to_owned));
        }
    }
    shown
}

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Endpoint {
    Endpoint::Respond {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into(),
    }
}

/// A server that echoes the refresh token, the client secret, the
/// authorization code or the PKCE verifier it was sent: none of them shows in
/// errors or in the cache's WARN events.
#[tokio::test(start_paused = true)]
async fn a_server_echoing_what_the_client_sent_does_not_show_it() {
    let (captured, _guard) = Captured::trace();
    let echo = serde_json::json!({
        "error": "invalid_grant",
        "error_description": format!("refresh token {REFRESH_TOKEN} of {CLIENT_ID}:{CLIENT_SECRET} is revoked"),
        "error_uri": format!("https://err.example/{REFRESH_TOKEN}?token={REFRESH_TOKEN}"),
    });
    let server = TokenServer::start(Endpoint::json(400, &echo.to_string())).await;
    let mut shown = Vec::new();
    for auth in [ClientAuth::Basic, ClientAuth::RequestBody] {
        let ep = endpoint(&server).client_auth(auth).build().unwrap();
        let cache = cache_for(RefreshTokenSource::new(ep, REFRESH_TOKEN));
        let err = cache.token().await.unwrap_err();
        let cause = err.cause().unwrap().downcast_ref::<OAuth2Error>().unwrap();
        assert_eq!(
            cause.error_description(),
            Some("refresh token [redacted] of client-42:[redacted] is revoked")
        );
        assert_eq!(
            cause.error_uri(),
            Some("https://err.example/[redacted]?[redacted]")
        );
        shown.extend(renderings(&err));
    }

    // The code exchange: the code and the verifier, echoed.
    let ep = endpoint(&server).build().unwrap();
    let flow = AuthorizationCode::new(format!("http://{}/authorize", server.addr), ep).unwrap();
    let request = flow.start();
    let verifier = request.verifier().unwrap().secret().expose().to_owned();
    let state = request.state().secret().expose().to_owned();
    let echo = serde_json::json!({
        "error": "invalid_grant",
        "error_description": format!("code {AUTH_CODE} does not match {verifier}"),
    });
    server.set(Endpoint::json(400, &echo.to_string()));
    let callback = Callback::from_query(&format!("code={AUTH_CODE}&state={state}")).unwrap();
    let err = request.exchange(&callback).await.unwrap_err();
    shown.extend(renderings(&err));

    let log = captured.text();
    assert!(
        log.contains("is revoked"),
        "the failure was not logged:\n{log}"
    );
    let secrets = secrets(&[&verifier]);
    for text in &shown {
        assert_no_secret("an error", text, &secrets);
    }
    assert_no_secret("the tracing output", &log, &secrets);
}

/// A line a server tries to slip into the log.
const FORGED: &str = "1999-12-31T23:59:59.999999Z  INFO tower_bearer: FORGED token accepted";

/// Control characters in anything a server sends (error, description, URI,
/// token type, an error page) are escaped, so they cannot start a log line of
/// their own, and every text is capped.
#[tokio::test(start_paused = true)]
async fn server_text_cannot_forge_log_lines_or_flood_them() {
    let (captured, _guard) = Captured::trace();
    let long = "x".repeat(5000);
    let json = |value: serde_json::Value| respond(400, "application/json", value.to_string());
    let cases = [
        json(serde_json::json!({
            "error": "invalid_request",
            "error_description": format!("bad\n{FORGED}\r\n{FORGED}\u{1b}[2J\u{2028}{FORGED}{long}"),
        })),
        json(serde_json::json!({"error": format!("x_vendor\n{FORGED}{long}")})),
        json(serde_json::json!({
            "error": "invalid_request",
            "error_uri": format!("https://err.example/\n{FORGED}{long}"),
        })),
        respond(502, "text/html", format!("<pre>\n{FORGED}\n</pre>{long}")),
        respond(
            200,
            "application/json",
            serde_json::json!({"access_token": "a", "token_type": format!("mac\n{FORGED}")})
                .to_string(),
        ),
    ];
    let server = TokenServer::start(Endpoint::ok()).await;
    for case in cases {
        server.set(case.clone());
        let cache = cache_for(ClientCredentials::new(endpoint(&server).build().unwrap()));
        let err = cache.token().await.unwrap_err();
        for text in renderings(&err) {
            assert!(
                !text.contains(['\n', '\r', '\u{1b}', '\u{2028}']),
                "{case:?}: {text:?}"
            );
            assert!(text.chars().count() < 1000, "{case:?}: {text}");
        }
    }
    let log = captured.text();
    assert!(log.contains(r"\n1999-12-31"), "no escaped newline:\n{log}");
    assert!(
        !log.lines().any(|line| line.starts_with("1999-12-31")),
        "a forged line:\n{log}"
    );
    assert!(!log.contains(&long), "an uncapped text:\n{log}");
}

/// The token endpoint's query (here a tenant key) shows nowhere: not in the
/// rotation event, not in `Debug`, not in an `error_uri`.
#[tokio::test(start_paused = true)]
async fn urls_in_events_and_debug_output_have_no_query() {
    let (captured, _guard) = Captured::trace();
    let server = TokenServer::start(Endpoint::json(200, &token_body())).await;
    let ep = TokenEndpoint::builder(format!("{}?tenant=Q-SECRET-Q", server.url()))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .http_client(HttpClient::new(hyper_client()))
        .build()
        .unwrap();
    let source = RefreshTokenSource::new(ep.clone(), REFRESH_TOKEN);
    source.fetch().await.unwrap();
    assert_eq!(source.refresh_token().await.expose(), ROTATED_REFRESH_TOKEN);
    let authorize = format!("http://{}/authorize?tenant=Q-SECRET-Q", server.addr);
    let flow = AuthorizationCode::new(&authorize, ep.clone()).unwrap();
    let request = flow.start();
    let mut shown = vec![
        format!("{ep:?}"),
        format!("{source:?}"),
        format!("{flow:?}"),
        format!("{request:?}"),
        format!("{:?}", AuthorizeUrl::new(request.url())),
    ];
    server.set(Endpoint::json(
        400,
        r#"{"error":"invalid_grant","error_uri":"https://err.example/e?sig=Q-SECRET-Q"}"#,
    ));
    shown.extend(renderings(&source.fetch().await.unwrap_err()));
    let log = captured.text();
    assert!(log.contains("refresh token rotated"), "{log}");
    for text in shown.iter().chain([&log]) {
        assert!(!text.contains("Q-SECRET-Q"), "{text}");
    }
}

/// Every RFC 6749 / 7521 / 7523 / 7636 / 8628 / 8693 / OpenID Connect
/// parameter that carries a secret, and the `Authorization` header.
const SECRET_PARAMETERS: [&str; 16] = [
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "subject_token",
    "actor_token",
    "device_code",
    "user_code",
    "code",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
    "state",
    "authorization",
];

/// An error page that shows any of them, as JSON, as a form, or as a
/// header line, keeps the value out of the excerpt.
#[tokio::test]
async fn excerpts_hide_the_value_of_every_secret_parameter() {
    let server = TokenServer::start(Endpoint::ok()).await;
    let ep = endpoint(&server).build().unwrap();
    for key in SECRET_PARAMETERS {
        let value = format!("V-{key}-do-not-print");
        let header = key
            .split('_')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect::<Vec<_>>()
            .join("-");
        let mut pages = vec![
            format!(r#"{{"echo":{{"{key}":"{value}"}}}}"#),
            format!("a=1&{key}={value}&b=2"),
            format!("<pre>POST /token\r\n{header}: {value}\r\nHost: x</pre>"),
        ];
        if key == "authorization" {
            pages.push(format!("<pre>Authorization: Bearer {value}</pre>"));
            pages.push(format!(r#"{{"authorization": "Basic {value}"}}"#));
        }
        for page in pages {
            server.set(respond(500, "text/html", page.clone()));
            let err = ep
                .request(&[("grant_type", "client_credentials")])
                .await
                .unwrap_err();
            assert!(err.to_string().contains("[redacted]"), "{page}: {err}");
            for text in renderings(&err) {
                assert!(!text.contains(&value), "{page}: {text}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Redirects and origin scoping
// ---------------------------------------------------------------------------

/// The paths a server saw, each with its `Authorization`, if any.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Origin A redirects `/away` to origin B (another port) and `/here` to
/// itself; both record the `Authorization` they see.
struct Origins {
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    seen_a: Seen,
    seen_b: Seen,
}

async fn origins() -> Origins {
    fn record(seen: &Seen, req: &Request<hyper::body::Incoming>) {
        let auth = req
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned());
        seen.lock()
            .unwrap()
            .push((req.uri().path().to_owned(), auth));
    }
    let seen_b: Seen = Arc::default();
    let b = support::loopback::serve({
        let seen = Arc::clone(&seen_b);
        move |req| {
            record(&seen, &req);
            async { Response::new(Full::default()) }
        }
    })
    .await;
    let seen_a: Seen = Arc::default();
    let a = support::loopback::serve({
        let seen = Arc::clone(&seen_a);
        move |req| {
            record(&seen, &req);
            let location = match req.uri().path() {
                "/away" => Some(format!("http://{b}/landing")),
                "/here" => Some("/landed".to_owned()),
                _ => None,
            };
            async move {
                match location {
                    Some(to) => Response::builder()
                        .status(StatusCode::FOUND)
                        .header(LOCATION, to)
                        .body(Full::default())
                        .unwrap(),
                    None => Response::new(Full::default()),
                }
            }
        }
    })
    .await;
    Origins {
        a,
        b,
        seen_a,
        seen_b,
    }
}

fn get(addr: std::net::SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .unwrap()
}

fn bearer() -> String {
    format!("Bearer {ACCESS_TOKEN}")
}

/// `BearerAuth` outside, `FollowRedirect` inside: the token is added once, and
/// tower-http's standard policy strips it when the redirect leaves the origin.
#[tokio::test]
async fn follow_redirect_inside_bearer_auth_drops_the_token_cross_origin() {
    let o = origins().await;
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(StaticToken::new(ACCESS_TOKEN)))
        .layer(FollowRedirectLayer::new())
        .service(hyper_client());
    let res = client.clone().oneshot(get(o.a, "/away")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = client.oneshot(get(o.a, "/here")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let seen_a = o.seen_a.lock().unwrap().clone();
    assert!(seen_a
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some(&*bearer())));
    assert_eq!(seen_a.len(), 3, "{seen_a:?}"); // /away, /here, /landed
    assert_eq!(
        *o.seen_b.lock().unwrap(),
        vec![("/landing".to_owned(), None)]
    );
}

/// `FollowRedirect` outside `BearerAuth`: every hop passes through `BearerAuth`
/// again. Scoped to origin A, the hop to origin B gets no token.
#[tokio::test]
async fn follow_redirect_outside_scoped_bearer_auth_drops_the_token_cross_origin() {
    let o = origins().await;
    let scope = Origin::parse(&format!("http://{}", o.a)).unwrap();
    let cache = TokenCache::new(StaticToken::new(ACCESS_TOKEN));
    let client = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(BearerAuthLayer::from_cache(cache.clone()).only_for_origins([scope]))
        .service(hyper_client());
    client.clone().oneshot(get(o.a, "/away")).await.unwrap();
    client.clone().oneshot(get(o.a, "/here")).await.unwrap();
    // A request straight to B gets no token either, and fetches none.
    let other = TokenCache::new(StaticToken::new(ACCESS_TOKEN));
    let to_b =
        ServiceBuilder::new()
            .layer(
                BearerAuthLayer::from_cache(other.clone())
                    .only_for_origins([Origin::parse(&format!("http://{}", o.a)).unwrap()]),
            )
            .service(hyper_client());
    to_b.oneshot(get(o.b, "/direct")).await.unwrap();
    assert_eq!(other.stats().fetches, 0);

    let seen_a = o.seen_a.lock().unwrap().clone();
    assert!(seen_a
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some(&*bearer())));
    assert_eq!(
        *o.seen_b.lock().unwrap(),
        vec![("/landing".to_owned(), None), ("/direct".to_owned(), None)]
    );
}

/// The hazard the scope exists for: `FollowRedirect` outside an unscoped
/// `BearerAuth` hands the token to whatever origin the server redirects to.
/// (Put `BearerAuthLayer` outside, or scope it.)
#[tokio::test]
async fn follow_redirect_outside_unscoped_bearer_auth_forwards_the_token_hazard() {
    let o = origins().await;
    let client = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(BearerAuthLayer::new(StaticToken::new(ACCESS_TOKEN)))
        .service(hyper_client());
    client.oneshot(get(o.a, "/away")).await.unwrap();
    let _ = o.b;
    assert_eq!(
        *o.seen_b.lock().unwrap(),
        vec![("/landing".to_owned(), Some(bearer()))]
    );
}

// ---------------------------------------------------------------------------
// Token endpoint transport security
// ---------------------------------------------------------------------------

#[test]
fn token_endpoint_refuses_plain_http_unless_loopback_or_allowed() {
    let client = || {
        HttpClient::new(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }))
    };
    for url in [
        "http://auth.example.com/token",
        "http://10.0.0.1/token",
        "http://localhost.example.com/token",
        "http://127.0.0.1.example.com/token",
    ] {
        let err = TokenEndpoint::builder(url)
            .http_client(client())
            .client_secret(CLIENT_SECRET)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, BuildError::InsecureUrl { .. }),
            "{url}: {err:?}"
        );
        assert_no_secret("BuildError", &format!("{err} {err:?}"), &secrets(&[]));
    }
    for url in [
        "https://auth.example.com/token",
        "http://127.0.0.1:8080/token",
        "http://[::1]:8080/token",
        "http://localhost/token",
    ] {
        assert!(
            TokenEndpoint::builder(url)
                .http_client(client())
                .build()
                .is_ok(),
            "{url}"
        );
    }
    assert!(TokenEndpoint::builder("http://auth.example.com/token")
        .http_client(client())
        .allow_insecure_http(true)
        .build()
        .is_ok());
    for url in ["ftp://auth.example.com/token", "/token", "auth.example.com"] {
        assert!(
            matches!(
                TokenEndpoint::builder(url).http_client(client()).build(),
                Err(BuildError::InvalidUrl { .. })
            ),
            "{url}"
        );
    }
    // Credentials in a refused URL never reach the error's message.
    for url in [
        "https://client:SECRET-PW@auth.example.com/token",
        "http://client:SECRET-PW@auth.example.com/token?key=SECRET-KEY",
        "http://auth.example.com/token?client_secret=SECRET-KEY",
    ] {
        let err = TokenEndpoint::builder(url)
            .http_client(client())
            .build()
            .unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
    let err = tower_bearer::Origin::parse("https://user:SECRET-PW@api.example.com").unwrap_err();
    assert!(!format!("{err} {err:?}").contains("SECRET"));
}

// ---------------------------------------------------------------------------
// Parsers of what servers send
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn token_response_parse_never_panics(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = TokenResponse::from_json(&body);
    }

    #[test]
    fn token_response_parse_never_panics_on_json_like_input(
        body in r#"[{}\[\]":,0-9a-z_ .eE+-]{0,120}"#
    ) {
        let _ = TokenResponse::from_json(body.as_bytes());
        let wrapped = format!(r#"{{"access_token":"a","expires_in":{body}}}"#);
        let _ = TokenResponse::from_json(wrapped.as_bytes());
    }

    #[test]
    fn token_response_round_trips(
        access in "ZQX\\PC{1,40}",
        token_type in prop_oneof![Just("Bearer"), Just("bearer"), Just("BEARER")],
        expires_in in prop::option::of(1u64..=u64::from(u32::MAX)),
        expires_as_string in any::<bool>(),
        refresh in prop::option::of("\\PC{1,40}"),
        scope in prop::option::of("[a-z:/ ]{1,30}"),
        extra in prop::option::of("[a-z0-9]{1,10}"),
    ) {
        let mut json = serde_json::json!({ "access_token": access, "token_type": token_type });
        let fields = json.as_object_mut().unwrap();
        if let Some(secs) = expires_in {
            fields.insert(
                "expires_in".into(),
                if expires_as_string { secs.to_string().into() } else { secs.into() },
            );
        }
        if let Some(r) = &refresh { fields.insert("refresh_token".into(), r.clone().into()); }
        if let Some(s) = &scope { fields.insert("scope".into(), s.clone().into()); }
        if let Some(e) = &extra { fields.insert("user_id".into(), e.clone().into()); }
        let body = serde_json::to_vec(&json).unwrap();

        let response = TokenResponse::from_json(&body).unwrap();
        prop_assert_eq!(response.access_token().expose(), access.as_str());
        prop_assert_eq!(response.token_type(), Some(token_type));
        prop_assert_eq!(response.expires_in(), expires_in.map(Duration::from_secs));
        prop_assert_eq!(response.refresh_token().map(|s| s.expose()), refresh.as_deref());
        prop_assert_eq!(response.scope(), scope.as_deref());
        prop_assert_eq!(
            response.extra("user_id").and_then(|v| v.as_str()),
            extra.as_deref()
        );
        let debug = format!("{response:?}");
        prop_assert!(!debug.contains(&access), "{}", debug);
    }
}

// ---------------------------------------------------------------------------
// Signed credentials (issue 15): private keys, assertions, subject and actor
// tokens
// ---------------------------------------------------------------------------

#[cfg(feature = "jwt")]
mod signed_credentials {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower_bearer::oauth2::{
        GoogleServiceAccount, JwtAssertion, JwtBearer, SecurityToken, ServiceAccountKey,
        SigningAlgorithm, SigningKey, TokenExchange, TokenType,
    };

    const SUBJECT_TOKEN: &str = "ST-4a7e-do-not-print";
    const ACTOR_TOKEN: &str = "ACT-90c3-do-not-print";
    const JWT_SECRET: &str = "CSJWT-77d1-do-not-print-0123456789";

    fn fixture(file: &str) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
        std::fs::read_to_string(dir.join(file)).unwrap()
    }

    /// A token endpoint that echoes every secret it was sent: as bare words
    /// in a JSON `error_description` (no key names them), or as the raw
    /// request body at the start of an HTML error page.
    struct Echo {
        url: String,
        html: Arc<AtomicBool>,
        bodies: Arc<Mutex<Vec<String>>>,
    }

    impl Echo {
        async fn start() -> Self {
            let html = Arc::new(AtomicBool::new(false));
            let bodies = Arc::new(Mutex::new(Vec::new()));
            let (mode, log) = (html.clone(), bodies.clone());
            let addr = support::loopback::serve(move |req: Request<hyper::body::Incoming>| {
                let (mode, log) = (mode.clone(), log.clone());
                async move {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let body = String::from_utf8_lossy(&body).into_owned();
                    log.lock().unwrap().push(body.clone());
                    if mode.load(Ordering::SeqCst) {
                        return Response::builder()
                            .status(500)
                            .header("content-type", "text/html")
                            .body(Full::from(format!("<pre>{body}</pre>")))
                            .unwrap();
                    }
                    let values: Vec<String> =
                        serde_urlencoded::from_str::<Vec<(String, String)>>(&body)
                            .unwrap()
                            .into_iter()
                            .filter(|(k, _)| k.contains("assertion") || k.ends_with("_token"))
                            .map(|(_, v)| v)
                            .collect();
                    let echo = serde_json::json!({
                        "error": "invalid_grant",
                        "error_description": format!("refused {}", values.join(" and ")),
                    });
                    Response::builder()
                        .status(400)
                        .header("content-type", "application/json")
                        .body(Full::from(echo.to_string()))
                        .unwrap()
                }
            })
            .await;
            Self {
                url: format!("http://{addr}/token"),
                html,
                bodies,
            }
        }

        fn endpoint(&self) -> tower_bearer::oauth2::TokenEndpointBuilder {
            TokenEndpoint::builder(&self.url).http_client(HttpClient::new(hyper_client()))
        }

        /// Every assertion sent, whole and its signature alone.
        fn assertions(&self) -> Vec<String> {
            let mut found = Vec::new();
            for body in self.bodies.lock().unwrap().iter() {
                for (key, value) in
                    serde_urlencoded::from_str::<Vec<(String, String)>>(body).unwrap()
                {
                    if key.ends_with("assertion") {
                        found.push(value.rsplit('.').next().unwrap().to_owned());
                        found.push(value);
                    }
                }
            }
            found
        }
    }

    #[tokio::test]
    async fn keys_assertions_and_exchanged_tokens_never_show() {
        let (captured, _guard) = Captured::trace();
        let echo = Echo::start().await;
        let pem = fixture("rsa.pkcs8.pem");
        let key = SigningKey::from_pem(SigningAlgorithm::Rs256, &pem)
            .unwrap()
            .with_kid("rsa-1");
        let google_key = ServiceAccountKey::from_json(
            &serde_json::json!({
                "type": "service_account",
                "client_email": "sa@demo.iam.gserviceaccount.com",
                "private_key_id": "k1",
                "private_key": pem,
                "token_uri": echo.url,
            })
            .to_string(),
        )
        .unwrap();

        let private_key_jwt = || {
            echo.endpoint()
                .client_id(CLIENT_ID)
                .private_key_jwt(key.clone())
        };
        let client_secret_jwt = || {
            echo.endpoint()
                .client_id(CLIENT_ID)
                .client_secret(JWT_SECRET)
                .client_auth(ClientAuth::ClientSecretJwt)
        };
        let assertion = JwtAssertion::builder(key.clone())
            .issuer("svc")
            .subject("alice")
            .audience(&echo.url)
            .build()
            .unwrap();
        let exchange = || {
            TokenExchange::new(
                private_key_jwt().build().unwrap(),
                SecurityToken::new(SUBJECT_TOKEN, TokenType::ACCESS_TOKEN),
            )
            .actor(SecurityToken::new(ACTOR_TOKEN, TokenType::JWT))
        };
        let google = || {
            GoogleServiceAccount::builder(google_key.clone())
                .scope("s")
                .http_client(HttpClient::new(hyper_client()))
        };

        let mut shown = vec![
            format!("{key:?}"),
            format!("{assertion:?}"),
            format!("{:?}", private_key_jwt()),
            format!("{:?}", client_secret_jwt()),
            format!("{:?}", private_key_jwt().build().unwrap()),
            format!("{:?}", client_secret_jwt().build().unwrap()),
            format!("{:?}", exchange()),
            format!("{google_key:?}"),
            format!("{:?}", google()),
            format!("{:?}", google().build().unwrap()),
        ];
        let caches: Vec<Box<dyn Fn() -> TokenCache>> = vec![
            Box::new(|| cache_for(ClientCredentials::new(private_key_jwt().build().unwrap()))),
            Box::new(|| cache_for(ClientCredentials::new(client_secret_jwt().build().unwrap()))),
            Box::new(|| {
                let endpoint = echo
                    .endpoint()
                    .client_auth(ClientAuth::None)
                    .build()
                    .unwrap();
                cache_for(JwtBearer::new(endpoint, assertion.clone()))
            }),
            Box::new(|| cache_for(google().build().unwrap())),
            Box::new(|| cache_for(exchange())),
        ];
        for html in [false, true] {
            echo.html.store(html, Ordering::SeqCst);
            for make in &caches {
                let err = make().token().await.unwrap_err();
                shown.extend(renderings(&err));
            }
        }
        assert_eq!(echo.bodies.lock().unwrap().len(), 10);

        let log = captured.text();
        assert!(
            log.contains("refused"),
            "the failures were not logged:\n{log}"
        );
        let mut secrets = secrets(&[SUBJECT_TOKEN, ACTOR_TOKEN, JWT_SECRET]);
        secrets.extend(echo.assertions());
        secrets.push(pem.lines().nth(10).unwrap().to_owned());
        assert!(secrets.len() > 20, "assertions were sent: {secrets:?}");
        for text in &shown {
            assert_no_secret("Debug or an error", text, &secrets);
        }
        assert_no_secret("the tracing output", &log, &secrets);
        // What the server said is still shown, the secrets cut out.
        assert!(shown
            .iter()
            .any(|t| t.contains("refused [redacted] and [redacted]")));
    }
}

/// A transport error's text is the HTTP client's, and reqwest's names the
/// URL it failed to reach, query and all: an API key in the token
/// endpoint's query (`?subscription-key=…`) must not reach the error, its
/// `Debug`, or the log.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn a_transport_error_does_not_show_the_token_endpoints_query() {
    use http_body_util::BodyExt;

    let (captured, _guard) = Captured::trace();
    let refused = refused_addr().await;
    let reqwest_client = reqwest::Client::new();
    let http = HttpClient::new(service_fn(move |req: Request<Full<Bytes>>| {
        let client = reqwest_client.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await?.to_bytes();
            let request = reqwest::Request::try_from(Request::from_parts(parts, body))?;
            let response = client.execute(request).await?;
            Ok::<_, tower_bearer::BoxError>(Response::<reqwest::Body>::from(response))
        }
    }));
    let source = ClientCredentials::new(
        TokenEndpoint::builder(format!(
            "http://{refused}/token?subscription-key=Q-SECRET-Q"
        ))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .http_client(http)
        .build()
        .unwrap(),
    );
    let err = source.fetch().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let cause = err
        .cause()
        .unwrap()
        .downcast_ref::<ExchangeError>()
        .unwrap();
    let ExchangeError::Transport(transport) = cause else {
        panic!("{cause:?}");
    };
    // What reqwest said, less the query: the URL's path still shows.
    let text = transport.to_string();
    assert!(
        text.contains(&format!("http://{refused}/token?[redacted]")),
        "{text}"
    );
    // The client's own error is there to inspect, and does hold the query.
    let reqwest_error = transport.cause().downcast_ref::<reqwest::Error>().unwrap();
    assert!(reqwest_error.is_connect());
    assert!(reqwest_error.to_string().contains("Q-SECRET-Q"));

    let mut shown = renderings(&err);
    // The whole chain, as an error reporter walks it.
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(level) = next {
        shown.extend([level.to_string(), format!("{level:?}")]);
        next = level.source();
    }
    shown.push(captured.text());
    for text in &shown {
        assert!(!text.contains("Q-SECRET-Q"), "{text}");
        assert!(!text.contains(CLIENT_SECRET), "{text}");
    }
}
