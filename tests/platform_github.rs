//! A GitHub Actions job's OIDC token (issue 26) against the loopback
//! stand-in of `examples/platform_github.rs`, which answers as GitHub's
//! token service documents it: the request as documented, the token's
//! lifetime from its `exp`, as a token exchange's subject and as Entra's
//! client assertion, the errors outside a job, and the request token never
//! shown or logged.

// The example includes `examples/support`, and with it `loopback/`, which
// `support` (tests/support) includes too.
#![allow(clippy::duplicate_mod)]

#[path = "../examples/platform_github.rs"]
#[allow(dead_code)]
mod github;
mod support;

use std::time::Duration;

use tower_bearer::oauth2::BuildError;
use tower_bearer::platform::github::ActionsIdToken;
use tower_bearer::platform::{Env, Failure, SetupError};
use tower_bearer::{ErrorKind, TokenSource};

use support::captured_log::Captured;
use support::oauth2::http_client;
use support::platform::platform_error;
use support::token_server::{refused_addr, Endpoint, TokenServer};

#[tokio::test]
async fn the_example_exchanges_the_jobs_token_and_presents_it_to_entra() {
    let fixture = github::Fixture::start().await;
    let outcome = github::run(&fixture).await.unwrap();
    let app = format!("app:{}", github::APP_CLIENT_ID);
    assert_eq!(
        outcome.callers,
        [github::SUBJECT, github::SUBJECT, app.as_str()]
    );
    assert_eq!(outcome.fetches, [1, 1]);
    assert_eq!(
        outcome.audiences,
        [github::API_AUDIENCE, github::ENTRA_AUDIENCE]
    );
    assert_eq!(fixture.state().oidc_requests, 2);
}

#[tokio::test]
async fn the_documented_request_and_the_tokens_lifetime() {
    let fixture = github::Fixture::start().await;
    let source = |audience: Option<&str>| {
        let mut builder = ActionsIdToken::builder()
            .env(fixture.job_env())
            .http_client(http_client());
        if let Some(audience) = audience {
            builder = builder.audience(audience);
        }
        builder.build().unwrap()
    };
    // The audience joins the URL's own query; the stand-in refuses any
    // other parameter, a missing api-version, another Authorization.
    let token = source(Some("sts.amazonaws.com")).fetch().await.unwrap();
    let claims = github::claims(token.secret());
    assert_eq!(claims["aud"], "sts.amazonaws.com");
    assert_eq!(claims["iss"], "https://token.actions.githubusercontent.com");
    let lifetime = token.expires_at().unwrap() - token.received_at();
    assert!(
        lifetime <= Duration::from_secs(300) && lifetime > Duration::from_secs(200),
        "from exp: {lifetime:?}"
    );
    // Without an audience: GitHub's default, the owner's URL.
    let token = source(None).fetch().await.unwrap();
    assert_eq!(
        github::claims(token.secret())["aud"],
        "https://github.com/acme"
    );
    assert_eq!(fixture.state().oidc_requests, 2);
}

#[tokio::test]
async fn a_wrong_request_token_is_refused_and_never_shown() {
    let fixture = github::Fixture::start().await;
    let stale = "eyJ0eXAi.stale-request-token";
    let env = fixture
        .job_env()
        .with("ACTIONS_ID_TOKEN_REQUEST_TOKEN", stale);
    let source = ActionsIdToken::builder()
        .audience(github::API_AUDIENCE)
        .env(env.clone())
        .http_client(http_client())
        .build()
        .unwrap();
    let err = source.fetch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    let cause = platform_error(&err);
    assert_eq!(cause.source_name(), "GitHub Actions OIDC");
    assert!(matches!(cause.failure(), Failure::Status { status, .. } if status.as_u16() == 401));
    assert!(
        err.to_string()
            .ends_with("answered 401 Unauthorized: Unable to get ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        "{err}"
    );
    for shown in [
        format!("{err:?}{err}"),
        format!("{source:?}"),
        format!("{env:?}"),
    ] {
        assert!(!shown.contains(stale), "{shown}");
    }
}

#[tokio::test]
async fn outside_a_job_or_over_plain_http_it_cannot_be_set_up() {
    let err = ActionsIdToken::builder()
        .env(Env::new())
        .build()
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("ACTIONS_ID_TOKEN_REQUEST_URL is not set"));
    let only_url = Env::new().with(
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "https://pipelines.actions.githubusercontent.com/x/idtoken?api-version=2.0",
    );
    let err = ActionsIdToken::builder().env(only_url).build().unwrap_err();
    assert!(err
        .to_string()
        .contains("ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set"));
    // The request token only goes over https (or to loopback).
    let insecure = Env::new()
        .with(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "http://pipelines.example.com/x/idtoken?api-version=2.0",
        )
        .with("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t");
    let err = ActionsIdToken::builder()
        .env(insecure)
        .http_client(http_client())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, SetupError::Build(BuildError::InsecureUrl { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_or_silent_token_service_fails_with_one_try() {
    let nowhere = refused_addr().await;
    let env = |addr: std::net::SocketAddr| {
        Env::new()
            .with(
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                format!("http://{addr}/x/idtoken?api-version=2.0"),
            )
            .with("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t0k3n")
    };
    let err = ActionsIdToken::builder()
        .env(env(nowhere))
        .http_client(http_client())
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert!(matches!(
        platform_error(&err).failure(),
        Failure::Unreachable(_)
    ));
    let silent = TokenServer::start(Endpoint::Hang).await;
    let err = ActionsIdToken::builder()
        .env(env(silent.addr))
        .http_client(http_client())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(
        platform_error(&err).failure(),
        Failure::TimedOut(_)
    ));
    // No second connection or request.
    assert_eq!(silent.counts_after_first_request().await, (1, 1));
}

#[tokio::test]
async fn no_request_token_or_oidc_token_reaches_a_log() {
    let fixture = github::Fixture::start().await;
    let request_token = fixture.state().request_token.clone();
    let (log, guard) = Captured::trace();
    let outcome = github::run(&fixture).await.unwrap();
    drop(guard);
    let log = log.text();
    assert!(log.contains("platform token request"), "{log}");
    for secret in [
        request_token.as_str(),
        "eyJhbGciOiJSUzI1NiJ9.",
        "api-at-",
        "eyJ0eXAi.",
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!format!("{outcome:?}").contains(secret));
    }
}
