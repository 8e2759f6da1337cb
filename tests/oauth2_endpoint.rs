//! The token endpoint client against loopback servers: request shapes,
//! RFC 6749 §5.1 parsing, §5.2 errors, status codes, caps, timeouts, and the
//! refresh-token source's serialization.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use support::oauth2::{field, form, http_client, json, response, serve};
use tower::service_fn;
use tower_bearer::oauth2::{
    AuthorizationCode, BodyFormat, BuildError, Callback, ClientAuth, ClientCredentials, CsrfState,
    ErrorCode, ExchangeError, HttpClient, OAuth2Error, PkceVerifier, RefreshTokenSource,
    TokenEndpoint, TokenResponse,
};
use tower_bearer::Expiry;
use tower_bearer::{TokenError, TokenSource};

fn endpoint_at(addr: std::net::SocketAddr) -> TokenEndpoint {
    TokenEndpoint::builder(format!("http://{addr}/token"))
        .client_id("id")
        .client_secret("s3cr3t")
        .http_client(http_client())
        .build()
        .unwrap()
}

/// An endpoint whose server always answers `res`.
async fn answering(
    res: impl Fn() -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> TokenEndpoint {
    endpoint_at(serve(move |_, _| res()).await)
}

fn exchange_error(err: &TokenError) -> &ExchangeError {
    err.cause()
        .and_then(|c| c.downcast_ref::<ExchangeError>())
        .unwrap_or_else(|| panic!("not an ExchangeError: {err:?}"))
}

fn oauth2_error(err: &TokenError) -> &OAuth2Error {
    err.cause()
        .and_then(|c| c.downcast_ref::<OAuth2Error>())
        .unwrap_or_else(|| panic!("not an OAuth2Error: {err:?}"))
}

async fn fetch(endpoint: TokenEndpoint) -> Result<tower_bearer::AccessToken, TokenError> {
    ClientCredentials::new(endpoint).fetch().await
}

/// The last request a server got, head and body.
type Recorded = Arc<Mutex<Option<(http::request::Parts, Bytes)>>>;

/// A server that records each request and answers with a token.
async fn recording() -> (std::net::SocketAddr, Recorded) {
    let seen = Recorded::default();
    let record = seen.clone();
    let addr = serve(move |parts, body| {
        *record.lock().unwrap() = Some((parts, body));
        json(
            StatusCode::OK,
            json!({"access_token": "t", "token_type": "Bearer"}),
        )
    })
    .await;
    (addr, seen)
}

#[tokio::test]
async fn request_shape_form_and_basic() {
    let (addr, seen) = recording().await;
    let endpoint = TokenEndpoint::builder(format!("http://{addr}/token"))
        .client_id("my id")
        .client_secret("p@ss w0rd:+/%&=?")
        .header(
            HeaderName::from_static("user-agent"),
            HeaderValue::from_static("tb-test"),
        )
        .http_client(http_client())
        .build()
        .unwrap();
    ClientCredentials::new(endpoint)
        .scope("a")
        .scope("b")
        .audience("https://api.example/")
        .resource("urn:one")
        .resource("urn:two")
        .param("subject", "wks_1")
        .fetch()
        .await
        .unwrap();
    let (parts, body) = seen.lock().unwrap().take().expect("no request");
    assert_eq!(parts.method, "POST");
    assert_eq!(
        parts.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(parts.headers["accept"], "application/json");
    assert_eq!(parts.headers["user-agent"], "tb-test");
    // base64("my%20id:p%40ss%20w0rd%3A%2B%2F%25%26%3D%3F")
    assert_eq!(
        parts.headers["authorization"],
        "Basic bXklMjBpZDpwJTQwc3MlMjB3MHJkJTNBJTJCJTJGJTI1JTI2JTNEJTNG"
    );
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        "grant_type=client_credentials&scope=a+b&audience=https%3A%2F%2Fapi.example%2F&resource=urn%3Aone&resource=urn%3Atwo&subject=wks_1"
    );
}

#[tokio::test]
async fn request_shape_json_body_credentials() {
    let (addr, seen) = recording().await;
    let endpoint = TokenEndpoint::builder(format!("http://{addr}/token"))
        .client_id("id")
        .client_secret("sec")
        .client_auth(ClientAuth::RequestBody)
        .body_format(BodyFormat::Json)
        .http_client(http_client())
        .build()
        .unwrap();
    ClientCredentials::new(endpoint)
        .resource("r1")
        .resource("r2")
        .fetch()
        .await
        .unwrap();
    let (parts, body) = seen.lock().unwrap().take().expect("no request");
    assert_eq!(parts.headers["content-type"], "application/json");
    assert!(!parts.headers.contains_key("authorization"));
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({"grant_type": "client_credentials", "resource": ["r1", "r2"], "client_id": "id", "client_secret": "sec"})
    );
}

#[tokio::test]
async fn public_client_sends_only_its_id() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let addr = serve(move |parts, body| {
        assert!(!parts.headers.contains_key("authorization"));
        *record.lock().unwrap() = form(&body);
        json(StatusCode::OK, json!({"access_token": "t"}))
    })
    .await;
    let endpoint = TokenEndpoint::builder(format!("http://{addr}/token"))
        .client_id("public")
        .http_client(http_client())
        .build()
        .unwrap();
    fetch(endpoint).await.unwrap();
    assert_eq!(field(&seen.lock().unwrap(), "client_id"), Some("public"));
}

#[tokio::test]
async fn lenient_token_responses() {
    // Form-encoded, lower-case type, string lifetime, extra fields.
    let endpoint = answering(|| {
        response(
            StatusCode::OK,
            "application/x-www-form-urlencoded",
            "access_token=abc&token_type=bearer&expires_in=60&user_id=usr_1&scope=repo",
        )
    })
    .await;
    let res = endpoint
        .request(&[("grant_type", "client_credentials")])
        .await
        .unwrap();
    assert_eq!(res.access_token().expose(), "abc");
    assert_eq!(res.expires_in(), Some(Duration::from_secs(60)));
    assert_eq!(res.extra("user_id").and_then(|v| v.as_str()), Some("usr_1"));
    assert_eq!(res.scope(), Some("repo"));

    for (expires_in, expected) in [
        (json!(u64::MAX), Expiry::Never),
        (json!("18446744073709551615"), Expiry::Never),
        (json!("99999999999999999999999"), Expiry::Never),
        (
            json!(315_705_599u64),
            Expiry::At(tokio::time::Instant::now()),
        ), // checked below
        (json!(0), Expiry::Unknown),
        (json!(-1), Expiry::Unknown),
        (json!(null), Expiry::Unknown),
    ] {
        let body = json!({"access_token": "a", "token_type": "BEARER", "expires_in": expires_in});
        let token = fetch(answering(move || json(StatusCode::OK, body.clone())).await)
            .await
            .unwrap();
        match expected {
            Expiry::At(_) => assert!(matches!(token.expiry(), Expiry::At(_)), "{expires_in}"),
            other => assert_eq!(token.expiry(), other, "{expires_in}"),
        }
    }
    let token = fetch(answering(|| json(StatusCode::OK, json!({"access_token": "a"}))).await)
        .await
        .unwrap();
    assert_eq!(token.expiry(), Expiry::Unknown);
    // Tiny and fractional lifetimes are whole seconds, rounded up: never a
    // zero lifetime that would be refetched in a loop.
    for expires_in in [json!(0.001), json!("1e-3"), json!(1e-12), json!(0.05)] {
        let body = json!({"access_token": "a", "expires_in": expires_in.clone()});
        let res = answering(move || json(StatusCode::OK, body.clone()))
            .await
            .request(&[("grant_type", "client_credentials")])
            .await
            .unwrap();
        assert_eq!(
            res.expires_in(),
            Some(Duration::from_secs(1)),
            "{expires_in}"
        );
    }
}

#[tokio::test]
async fn non_bearer_tokens_are_refused() {
    let endpoint = answering(|| {
        json(
            StatusCode::OK,
            json!({"access_token": "a", "token_type": "DPoP"}),
        )
    })
    .await;
    let err = fetch(endpoint).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(matches!(exchange_error(&err), ExchangeError::UnsupportedTokenType(t) if t == "DPoP"));
}

#[tokio::test]
async fn rfc6749_errors_are_typed_and_classified() {
    let cases = [
        (StatusCode::BAD_REQUEST, "invalid_grant", true),
        (StatusCode::UNAUTHORIZED, "invalid_client", true),
        (StatusCode::BAD_REQUEST, "unauthorized_client", true),
        (StatusCode::BAD_REQUEST, "unsupported_grant_type", true),
        (StatusCode::BAD_REQUEST, "invalid_scope", true),
        (StatusCode::BAD_REQUEST, "invalid_request", true),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            false,
        ),
        (StatusCode::INTERNAL_SERVER_ERROR, "server_error", false),
        (StatusCode::BAD_GATEWAY, "x_vendor_code", false),
    ];
    for (status, code, permanent) in cases {
        let endpoint = answering(move || {
            json(
                status,
                json!({"error": code, "error_description": "because", "error_uri": "https://err.example/x"}),
            )
        })
        .await;
        let err = fetch(endpoint).await.unwrap_err();
        assert_eq!(err.is_permanent(), permanent, "{code}");
        let cause = oauth2_error(&err);
        assert_eq!(cause.error(), code);
        assert_eq!(cause.status(), Some(status));
        assert_eq!(cause.error_description(), Some("because"));
        assert_eq!(cause.error_uri(), Some("https://err.example/x"));
    }
    // A 200 whose body is an error is an error.
    let endpoint = answering(|| json(StatusCode::OK, json!({"error": "invalid_grant"}))).await;
    let err = fetch(endpoint).await.unwrap_err();
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidGrant);
}

/// The error of a fetch from a server that answers `status`, `body` and
/// `Retry-After: retry_after`.
async fn fetch_failing_with(
    status: StatusCode,
    body: serde_json::Value,
    retry_after: &'static str,
) -> TokenError {
    let endpoint = answering(move || {
        let mut res = json(status, body.clone());
        res.headers_mut()
            .insert("retry-after", HeaderValue::from_static(retry_after));
        res
    })
    .await;
    fetch(endpoint).await.unwrap_err()
}

#[tokio::test]
async fn retry_after_is_passed_on() {
    let err = fetch_failing_with(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"message": "slow down"}),
        "7",
    )
    .await;
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(
        err.to_string().contains("429") && err.to_string().contains("slow down"),
        "{err}"
    );

    let err = fetch_failing_with(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "temporarily_unavailable"}),
        "3",
    )
    .await;
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(
        oauth2_error(&err).retry_after(),
        Some(Duration::from_secs(3))
    );
}

#[tokio::test]
async fn unexpected_bodies_give_a_short_secret_free_excerpt() {
    let endpoint = answering(|| {
        response(
            StatusCode::BAD_GATEWAY,
            "text/html",
            "<html><h1>502 Bad Gateway</h1></html>",
        )
    })
    .await;
    let err = fetch(endpoint).await.unwrap_err();
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("HTTP 502") && text.contains("Bad Gateway"),
        "{text}"
    );

    // A 4xx echoing a token: the value is redacted.
    let endpoint = answering(|| {
        response(
            StatusCode::FORBIDDEN,
            "application/json",
            r#"{"message":"no","access_token":"leaked-value"}"#,
        )
    })
    .await;
    let err = fetch(endpoint).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(!format!("{err} {err:?}").contains("leaked-value"), "{err}");

    // A 2xx that is not a token response: nothing of the body is shown.
    let endpoint = answering(|| {
        response(
            StatusCode::OK,
            "text/html",
            "<p>access_token=leaked-value</p>",
        )
    })
    .await;
    let err = fetch(endpoint).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("leaked"), "{err}");
    assert!(err.to_string().contains("HTTP 200"), "{err}");
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    // Declared by Content-Length (a real server).
    let endpoint = answering(|| {
        response(
            StatusCode::OK,
            "application/json",
            vec![b' '; (1 << 20) + 1],
        )
    })
    .await;
    let err = fetch(endpoint).await.unwrap_err();
    assert!(
        matches!(exchange_error(&err), ExchangeError::ResponseTooLarge { limit, .. } if *limit == 1 << 20)
    );

    // Not declared: counted while reading.
    let client = HttpClient::new(service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(vec![b' '; 4096]))))
    }));
    let endpoint = TokenEndpoint::builder("https://auth.example/token")
        .http_client(client)
        .max_response_bytes(1024)
        .build()
        .unwrap();
    let err = fetch(endpoint).await.unwrap_err();
    assert!(matches!(
        exchange_error(&err),
        ExchangeError::ResponseTooLarge { limit: 1024, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn the_endpoint_has_its_own_timeout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let hang = HttpClient::new(service_fn(move |_req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
    }));
    let endpoint = TokenEndpoint::builder("https://auth.example/token")
        .http_client(hang)
        .build()
        .unwrap();
    let err = fetch(endpoint).await.unwrap_err();
    assert!(err.is_transient());
    assert!(
        matches!(exchange_error(&err), ExchangeError::Timeout(d) if *d == Duration::from_secs(10))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = fetch(endpoint_at(addr)).await.unwrap_err();
    assert!(err.is_transient());
    assert!(matches!(exchange_error(&err), ExchangeError::Transport(_)));
}

#[test]
fn only_https_unless_loopback_or_allowed() {
    let build = |url: &str, allow: bool| {
        TokenEndpoint::builder(url)
            .allow_insecure_http(allow)
            .http_client(http_client())
            .build()
    };
    let err = build("http://auth.example.com/token", false).unwrap_err();
    assert!(matches!(err, BuildError::InsecureUrl { .. }));
    assert!(err.to_string().contains("allow_insecure_http"), "{err}");
    assert!(build("http://auth.example.com/token", true).is_ok());
    assert!(build("http://[::1]:9/token", false).is_ok());
    assert!(build("http://localhost:9/token", false).is_ok());
    assert!(matches!(
        build("file:///etc/passwd", false),
        Err(BuildError::InvalidUrl { .. })
    ));
    let err = AuthorizationCode::new(
        "http://auth.example.com/authorize",
        build("https://a.example/t", false).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, BuildError::InsecureUrl { .. }));
}

/// A server that rotates refresh tokens and refuses a reused one.
struct Rotating {
    current: Mutex<String>,
    requests: AtomicUsize,
    reused: AtomicUsize,
}

#[tokio::test]
async fn concurrent_refreshes_never_send_a_refresh_token_twice() {
    let state = Arc::new(Rotating {
        current: Mutex::new("r0".into()),
        requests: 0.into(),
        reused: 0.into(),
    });
    let server = state.clone();
    let addr = serve(move |_, body| {
        let fields = form(&body);
        let n = server.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let mut current = server.current.lock().unwrap();
        if field(&fields, "refresh_token") != Some(current.as_str()) {
            server.reused.fetch_add(1, Ordering::SeqCst);
            return json(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
        }
        *current = format!("r{n}");
        json(
            StatusCode::OK,
            json!({"access_token": format!("a{n}"), "token_type": "Bearer", "expires_in": 60, "refresh_token": *current}),
        )
    })
    .await;
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let seen = rotated.clone();
    let source = Arc::new(
        RefreshTokenSource::new(endpoint_at(addr), "r0")
            .on_rotate(move |new| seen.lock().unwrap().push(new.expose().to_owned())),
    );
    // Spawned on this single-threaded runtime, all eight start before the
    // first refresh completes: they queue on the source's lock.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.fetch().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap().secret().to_owned());
    }
    assert!(tokens.iter().all(|t| t == "a1"), "{tokens:?}");
    assert_eq!(state.requests.load(Ordering::SeqCst), 1);
    assert_eq!(state.reused.load(Ordering::SeqCst), 0);
    // A later fetch refreshes again, with the rotated token.
    assert_eq!(source.fetch().await.unwrap().secret(), "a2");
    assert_eq!(state.reused.load(Ordering::SeqCst), 0);
    assert_eq!(*rotated.lock().unwrap(), ["r1", "r2"]);
    assert_eq!(source.refresh_token().await.expose(), "r2");
}

#[tokio::test]
async fn debug_output_is_redacted() {
    let endpoint = TokenEndpoint::builder("https://auth.example/token")
        .client_id("id")
        .client_secret("CLIENT-SECRET")
        .http_client(http_client())
        .build()
        .unwrap();
    let builder =
        TokenEndpoint::builder("https://auth.example/token").client_secret("CLIENT-SECRET");
    let refresh = RefreshTokenSource::new(endpoint.clone(), "REFRESH-TOKEN");
    let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint.clone()).unwrap();
    let request = flow.start();
    let verifier = request.verifier().unwrap().secret().expose().to_owned();
    let state = request.state().secret().expose().to_owned();
    let callback = Callback::from_query("code=AUTH-CODE&state=x").unwrap();
    let response = TokenResponse::from_json(
        br#"{"access_token":"ACCESS-TOKEN","refresh_token":"REFRESH-TOKEN","id_token":"ID-TOKEN","apiKey":"API-KEY"}"#,
    )
    .unwrap();
    let printed = format!(
        "{endpoint:?} {builder:?} {refresh:?} {:?} {request:?} {callback:?} {response:?} {:?} {:?} {:?}",
        ClientCredentials::new(endpoint.clone()),
        PkceVerifier::generate(),
        CsrfState::generate(),
        response.to_access_token(),
    );
    for secret in [
        "CLIENT-SECRET",
        "REFRESH-TOKEN",
        "AUTH-CODE",
        "ACCESS-TOKEN",
        "ID-TOKEN",
        "API-KEY",
        &verifier,
        &state,
    ] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(printed.contains("[redacted]"));
}

/// Without `http_client`, the built-in hyper-rustls client is used; it speaks
/// plain HTTP to loopback hosts too.
#[cfg(feature = "rustls")]
#[tokio::test]
async fn the_default_client_works() {
    let addr = serve(|_, _| {
        json(
            StatusCode::OK,
            json!({"access_token": "t", "token_type": "Bearer"}),
        )
    })
    .await;
    let endpoint = TokenEndpoint::builder(format!("http://{addr}/token"))
        .client_id("id")
        .client_secret("s")
        .build()
        .unwrap();
    assert_eq!(fetch(endpoint).await.unwrap().secret(), "t");
}
