//! Discovery (RFC 8414, OpenID Connect Discovery) against loopback servers:
//! which well-known locations are asked and in what order, what stops it,
//! and that the endpoints it yields work. Every request is counted.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use support::oauth2::{form, http_client, json, response, serve};
use tower::service_fn;
use tower_bearer::oauth2::{
    ClientAuth, ClientCredentials, Discovery, DiscoveryError, ExchangeError, HttpClient,
};
use tower_bearer::TokenSource;

/// Requests a server got, as `METHOD /path`.
type Seen = Arc<Mutex<Vec<String>>>;

/// A server for issuer `http://{addr}{issuer_path}` whose metadata lives only
/// at `document_path` (answered by `document`), with a token endpoint at
/// `{issuer_path}/token` that wants `client_secret_post`.
async fn server(
    issuer_path: &'static str,
    document_path: &'static str,
    document: impl Fn(&str) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> (String, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let addr: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let own = addr.clone();
    let bound = serve(move |parts, body| {
        let path = parts.uri.path().to_owned();
        record
            .lock()
            .unwrap()
            .push(format!("{} {path}", parts.method));
        let issuer = format!("http://{}{issuer_path}", own.lock().unwrap().unwrap());
        if parts.method == Method::GET && path == document_path {
            return document(&issuer);
        }
        if parts.method == Method::POST && path == format!("{issuer_path}/token") {
            let fields = form(&body);
            let has = |k: &str, v: &str| fields.iter().any(|(a, b)| a == k && b == v);
            if has("client_id", "app") && has("client_secret", "s3cr3t") {
                return json(
                    StatusCode::OK,
                    json!({"access_token": "t", "token_type": "Bearer", "expires_in": 60}),
                );
            }
            return json(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
        }
        response(StatusCode::NOT_FOUND, "text/plain", "not found")
    })
    .await;
    *addr.lock().unwrap() = Some(bound);
    (format!("http://{bound}{issuer_path}"), seen)
}

fn metadata(issuer: &str) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post"],
            "authorization_response_iss_parameter_supported": true,
            "code_challenge_methods_supported": ["S256"],
            "revocation_endpoint": format!("{issuer}/revoke"),
        }),
    )
}

fn discovery(issuer: &str) -> Discovery {
    Discovery::new(issuer).http_client(http_client())
}

#[tokio::test]
async fn locations_are_asked_in_order_until_a_document_and_its_endpoints_work() {
    let (issuer, seen) = server(
        "/tenants/42",
        "/.well-known/oauth-authorization-server/tenants/42",
        metadata,
    )
    .await;
    let found = discovery(&issuer).fetch().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "GET /tenants/42/.well-known/openid-configuration",
            "GET /.well-known/oauth-authorization-server/tenants/42",
        ]
    );
    assert_eq!(found.issuer(), issuer);
    assert_eq!(found.token_endpoint(), format!("{issuer}/token"));
    assert_eq!(
        found.authorization_endpoint(),
        Some(format!("{issuer}/authorize").as_str())
    );
    assert!(found.authorization_response_iss_parameter_supported());
    assert_eq!(found.code_challenge_methods_supported(), ["S256"]);
    assert_eq!(
        found.field("revocation_endpoint"),
        Some(&json!(format!("{issuer}/revoke")))
    );
    // Of the methods offered, the one this crate has: credentials in the body.
    assert_eq!(found.client_auth(), Some(ClientAuth::RequestBody));

    // The endpoint built from it works as is: URL, client authentication
    // and HTTP client all come from discovery.
    let endpoint = found
        .token_endpoint_builder()
        .client_id("app")
        .client_secret("s3cr3t")
        .build()
        .unwrap();
    let token = ClientCredentials::new(endpoint).fetch().await.unwrap();
    assert_eq!(token.secret(), "t");
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(seen.lock().unwrap()[2], "POST /tenants/42/token");

    // And the flow checks `iss`, required since the server promised it.
    let endpoint = found.token_endpoint_builder().build().unwrap();
    let request = found.authorization_code(endpoint).unwrap().start();
    assert!(request
        .url()
        .starts_with(&format!("{issuer}/authorize?response_type=code")));
    assert_eq!(request.pending().issuer(), Some(issuer.as_str()));
    assert!(request.pending().issuer_required());
}

#[tokio::test]
async fn the_openid_location_is_asked_first_and_alone_when_it_answers() {
    let (issuer, seen) = server("", "/.well-known/openid-configuration", metadata).await;
    let found = discovery(&issuer).fetch().await.unwrap();
    assert_eq!(found.issuer(), issuer);
    assert_eq!(
        *seen.lock().unwrap(),
        ["GET /.well-known/openid-configuration"]
    );
}

#[tokio::test]
async fn no_document_anywhere_names_every_location_asked() {
    let (issuer, seen) = server("/realm", "/nowhere", metadata).await;
    let err = discovery(&issuer).fetch().await.unwrap_err();
    let DiscoveryError::NotFound { tried } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(tried.len(), 3);
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert!(err.is_permanent());
    assert!(
        err.to_string()
            .contains("/.well-known/openid-configuration/realm"),
        "{err}"
    );
}

#[tokio::test]
async fn a_document_for_another_issuer_is_refused_and_nothing_else_is_asked() {
    let (issuer, seen) = server("", "/.well-known/openid-configuration", |issuer| {
        metadata(&issuer.replace("127.0.0.1", "localhost"))
    })
    .await;
    let err = discovery(&issuer).fetch().await.unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::IssuerMismatch { expected, found }
            if *expected == issuer && found.starts_with("http://localhost:")),
        "{err:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_error_stops_discovery_as_transient_with_its_retry_after() {
    let (issuer, seen) = server("", "/.well-known/openid-configuration", |_| {
        let mut busy = json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable"}),
        );
        busy.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("7"));
        busy
    })
    .await;
    let err = discovery(&issuer).fetch().await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert!(
        matches!(&err, DiscoveryError::Fetch(ExchangeError::UnexpectedResponse { status, .. }) if *status == 503)
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    // Callers inside a token source can use `?`: it is a transient TokenError
    // that keeps the server's Retry-After for the cache's backoff.
    let token_error = tower_bearer::TokenError::from(err);
    assert!(token_error.is_transient());
    assert_eq!(token_error.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn endpoints_as_insecure_as_plain_http_elsewhere_are_refused() {
    let (issuer, _) = server("", "/.well-known/openid-configuration", |issuer| {
        json(
            StatusCode::OK,
            json!({"issuer": issuer, "token_endpoint": "http://auth.example.com/token"}),
        )
    })
    .await;
    let err = discovery(&issuer).fetch().await.unwrap_err();
    assert!(
        matches!(
            err,
            DiscoveryError::InvalidEndpoint {
                field: "token_endpoint",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_huge_document_is_cut_off() {
    let (issuer, _) = server("", "/.well-known/openid-configuration", |issuer| {
        let padding = "x".repeat(300 * 1024);
        json(
            StatusCode::OK,
            json!({"issuer": issuer, "token_endpoint": format!("{issuer}/token"), "padding": padding}),
        )
    })
    .await;
    let err = discovery(&issuer).fetch().await.unwrap_err();
    assert!(
        matches!(
            err,
            DiscoveryError::Fetch(ExchangeError::ResponseTooLarge { limit: 262_144, .. })
        ),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_times_out() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let hang = HttpClient::new(service_fn(move |_req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
    }));
    let err = Discovery::new("https://idp.example")
        .http_client(hang)
        .timeout(Duration::from_secs(3))
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(err, DiscoveryError::Fetch(ExchangeError::Timeout(d)) if d == Duration::from_secs(3))
    );
    assert!(!err.is_permanent());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_issuer_that_cannot_be_is_refused_before_any_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let counting = HttpClient::new(service_fn(move |_req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
    }));
    for issuer in [
        "http://idp.example.com",
        "https://idp.example?tenant=1",
        "https://idp.example#x",
        "idp.example",
    ] {
        let err = Discovery::new(issuer)
            .http_client(counting.clone())
            .fetch()
            .await
            .unwrap_err();
        assert!(matches!(err, DiscoveryError::Build(_)), "{issuer}: {err:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
