//! The four identity providers of IDPS.md, each against its example's loopback
//! stand-in, which answers 400 to any request not shaped as the provider
//! documents. The examples are compiled in here as they are, so what they show
//! is what is tested.

#[path = "../examples/client_credentials_basic.rs"]
#[allow(dead_code)]
mod client_credentials_basic;
#[path = "../examples/client_credentials_json_body.rs"]
#[allow(dead_code)]
mod client_credentials_json_body;
#[path = "../examples/code_flow_comma_scopes.rs"]
#[allow(dead_code)]
mod code_flow_comma_scopes;
#[path = "../examples/pkce_code_for_api_key.rs"]
#[allow(dead_code)]
mod pkce_code_for_api_key;

use http::StatusCode;
use tower_bearer::oauth2::{
    AuthorizationCode, BodyFormat, Callback, ClientAuth, ClientCredentials, ErrorCode,
    ExchangeError, HttpClient, OAuth2Error, TokenEndpoint,
};
use tower_bearer::{TokenError, TokenSource};

fn plain() -> HttpClient {
    HttpClient::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<bytes::Bytes>>(),
    )
}

fn oauth2_error(err: &TokenError) -> &OAuth2Error {
    err.cause()
        .and_then(|c| c.downcast_ref::<OAuth2Error>())
        .unwrap_or_else(|| panic!("not an OAuth2Error: {err:?}"))
}

#[tokio::test]
async fn gloo_basic_auth_refreshes_on_401_and_not_on_403() {
    let fixture = client_credentials_basic::Fixture::start().await;
    let outcome = client_credentials_basic::run(&fixture).await.unwrap();
    assert_eq!(outcome.first, StatusCode::OK);
    assert_eq!(outcome.reply, "Hello from Gloo!");
    assert_eq!(outcome.after_revocation, StatusCode::OK);
    assert_eq!(outcome.forbidden, StatusCode::FORBIDDEN);
    assert_eq!(
        outcome.fetches, 2,
        "one token, one more after the 401, none for the 403"
    );
    assert_eq!(outcome.retries, 1);
    assert_eq!(outcome.token_requests, 2);
}

#[tokio::test]
async fn gloo_fixture_rejects_other_shapes() {
    use client_credentials_basic::{Fixture, CLIENT_ID, CLIENT_SECRET};
    let fixture = Fixture::start().await;
    let endpoint = |auth, secret: &str| {
        TokenEndpoint::builder(format!("{}/oauth2/token", fixture.base()))
            .client_id(CLIENT_ID)
            .client_secret(secret)
            .client_auth(auth)
            .http_client(plain())
            .build()
            .unwrap()
    };
    // Credentials in the body instead of Basic.
    let err = ClientCredentials::new(endpoint(ClientAuth::RequestBody, CLIENT_SECRET))
        .scope("api/access")
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidClient);
    // Another scope.
    let err = ClientCredentials::new(endpoint(ClientAuth::Basic, CLIENT_SECRET))
        .scope("api/other")
        .fetch()
        .await
        .unwrap_err();
    let cause = oauth2_error(&err);
    assert_eq!(cause.code(), &ErrorCode::InvalidRequest);
    assert_eq!(cause.status(), Some(StatusCode::BAD_REQUEST));
    assert!(err.is_permanent());
    // A wrong secret.
    let err = ClientCredentials::new(endpoint(ClientAuth::Basic, "wrong"))
        .scope("api/access")
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidClient);
    assert_eq!(oauth2_error(&err).status(), Some(StatusCode::UNAUTHORIZED));
    assert!(!format!("{err:?}{err}").contains("wrong"));
    assert_eq!(fixture.token_requests(), 0);
}

#[tokio::test]
async fn glue_client_credentials_and_authorization_code_with_rotation() {
    let fixture = code_flow_comma_scopes::Fixture::start().await;
    let outcome = code_flow_comma_scopes::run(&fixture).await.unwrap();
    assert_eq!(outcome.app_user, code_flow_comma_scopes::USER_ID);
    assert_eq!(
        outcome.client_credentials_fetches, 1,
        "a ten-year token is fetched once"
    );
    assert_eq!(outcome.code_flow_first, StatusCode::OK);
    assert_eq!(outcome.code_flow_after_revocation, StatusCode::OK);
    assert_eq!(
        outcome.refresh_requests, 1,
        "the code's token served first, one refresh after the 401"
    );
    assert_eq!(outcome.rotated_refresh_tokens.len(), 1);
    assert_eq!(
        Some(outcome.rotated_refresh_tokens[0].expose()),
        fixture.current_refresh_token().as_deref(),
        "the callback saw the refresh token the server now accepts"
    );
}

#[tokio::test]
async fn glue_state_mismatch_and_pkce_are_checked() {
    let fixture = code_flow_comma_scopes::Fixture::start().await;
    let endpoint = TokenEndpoint::builder(format!("{}/oauth/token", fixture.base()))
        .client_id(code_flow_comma_scopes::CLIENT_ID)
        .client_secret(code_flow_comma_scopes::CLIENT_SECRET)
        .client_auth(ClientAuth::RequestBody)
        .http_client(plain())
        .build()
        .unwrap();
    let with_pkce = AuthorizationCode::new(format!("{}/oauth/authorize", fixture.base()), endpoint)
        .unwrap()
        .redirect_uri(code_flow_comma_scopes::REDIRECT_URI)
        .scope("workspaces:read")
        .scope("chats:write")
        .scope_separator(",");
    let flow = with_pkce.clone().without_pkce();
    let request = flow.start();
    // A forged callback: the state does not match; nothing is sent.
    let forged = Callback::from_query("code=stolen&state=forged").unwrap();
    let err = request.exchange(&forged).await.unwrap_err();
    let cause = err
        .cause()
        .unwrap()
        .downcast_ref::<ExchangeError>()
        .unwrap();
    assert!(matches!(cause, ExchangeError::StateMismatch), "{cause:?}");
    assert_eq!(fixture.refresh_requests(), 0);
    // An error instead of a code.
    let state = request.state().secret().expose().to_owned();
    let denied = Callback::from_query(&format!("error=access_denied&state={state}")).unwrap();
    let err = request.exchange(&denied).await.unwrap_err();
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::AccessDenied);

    // With PKCE on, the URL carries parameters Glue does not document: its
    // stand-in refuses them.
    let url = with_pkce.start().url().to_owned();
    assert!(url.contains("code_challenge="));
    assert_eq!(support_get(&url).await, StatusCode::BAD_REQUEST);
    let url = flow
        .clone()
        .param("prompt", "consent")
        .start()
        .url()
        .to_owned();
    assert_eq!(support_get(&url).await, StatusCode::BAD_REQUEST);
    assert_eq!(support_get(flow.start().url()).await, StatusCode::FOUND);
}

async fn support_get(url: &str) -> StatusCode {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::get(url).body(Default::default()).unwrap();
    client.request(req).await.unwrap().status()
}

#[tokio::test]
async fn glama_pkce_exchange_then_static_key() {
    let fixture = pkce_code_for_api_key::Fixture::start().await;
    let outcome = pkce_code_for_api_key::run(&fixture).await.unwrap();
    assert_eq!(
        outcome.verifier_len, 43,
        "RFC 7636 verifiers, not Glama's 342-char sample"
    );
    assert_eq!(outcome.chat, StatusCode::OK);
    assert_eq!(outcome.reply, "Hello from Glama!");
    assert_eq!(outcome.exchanges, 1);
    assert_eq!(outcome.fetches, 1);
}

#[tokio::test]
async fn glama_exchange_rejects_a_wrong_verifier() {
    let fixture = pkce_code_for_api_key::Fixture::start().await;
    let endpoint = TokenEndpoint::builder(format!(
        "{}/api/gateway/v1/auth/exchange-code",
        fixture.base()
    ))
    .client_auth(ClientAuth::None)
    .body_format(BodyFormat::Json)
    .http_client(plain())
    .build()
    .unwrap();
    let err = endpoint
        .request_fields(&[
            ("code", "glama-code-1"),
            (
                "code_verifier",
                "not-the-verifier-not-the-verifier-not-the-verifier",
            ),
            ("code_challenge_method", "S256"),
        ])
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(oauth2_error(&err).status(), Some(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn blooma_json_and_form_bodies() {
    let fixture = client_credentials_json_body::Fixture::start().await;
    let outcome = client_credentials_json_body::run(&fixture).await.unwrap();
    assert_eq!(outcome.json_body, StatusCode::OK);
    assert_eq!(outcome.form_body, StatusCode::OK);
    assert_eq!(outcome.deals, 2);
    assert_eq!(
        outcome.fetches, 2,
        "one token per configuration, reused for the second call"
    );
    assert_eq!(outcome.token_requests, ["json", "form"]);
}

#[tokio::test]
async fn blooma_rejects_basic_auth_and_a_missing_audience() {
    let fixture = client_credentials_json_body::Fixture::start().await;
    let endpoint = |auth| {
        TokenEndpoint::builder(format!("{}/oauth/token", fixture.login_base()))
            .client_id(client_credentials_json_body::CLIENT_ID)
            .client_secret(client_credentials_json_body::CLIENT_SECRET)
            .client_auth(auth)
            .body_format(BodyFormat::Json)
            .http_client(plain())
            .build()
            .unwrap()
    };
    let audience = format!("{}/api/", fixture.api_base());
    let err = ClientCredentials::new(endpoint(ClientAuth::Basic))
        .audience(audience)
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidRequest);
    let err = ClientCredentials::new(endpoint(ClientAuth::RequestBody))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(oauth2_error(&err).code(), &ErrorCode::AccessDenied);
    assert!(err.is_permanent());
    assert!(fixture.token_requests().is_empty());
}
