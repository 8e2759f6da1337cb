//! Google Cloud's identities (issue 26) against the loopback stand-in of
//! `examples/platform_google.rs`, which answers 400, 403 or 404 to any
//! request not shaped as Google documents it: the metadata server's access
//! and ID tokens, workload identity federation from a file or a URL, the
//! application-default chooser, failing fast where no metadata server is,
//! and no secret in what is printed or logged.

// The example includes `examples/support`, and with it `loopback/`, which
// `support` (tests/support) includes too.
#![allow(clippy::duplicate_mod)]

#[path = "../examples/platform_google.rs"]
#[allow(dead_code)]
mod google;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use tower_bearer::platform::google::{
    ApplicationDefault, ExternalAccount, GoogleCredential, MetadataAccessToken, MetadataIdToken,
};
use tower_bearer::platform::{Env, Failure, SetupError};
use tower_bearer::{ErrorKind, TokenError, TokenSource};

use support::captured_log::Captured;
use support::oauth2::http_client;
use support::platform::platform_error;
use support::token_server::{refused_addr, Endpoint, TokenServer};

fn status_of(err: &TokenError) -> StatusCode {
    match platform_error(err).failure() {
        Failure::Status { status, .. } => *status,
        other => panic!("not a status: {other:?}"),
    }
}

/// Writes `contents` to `name` in `dir`.
fn write(dir: &google::PlatformDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn metadata_source(fixture: &google::Fixture) -> MetadataAccessToken {
    MetadataAccessToken::builder()
        .scope(google::SCOPE)
        .env(fixture.env())
        .http_client(http_client())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_example_on_a_vm_and_federated_from_aks() {
    let fixture = google::Fixture::start().await;
    let outcome = google::run(&fixture).await.unwrap();
    assert_eq!(
        outcome.chosen,
        [
            GoogleCredential::MetadataServer,
            GoogleCredential::ExternalAccount
        ]
    );
    assert_eq!(
        outcome.storage_callers,
        [
            google::INSTANCE_ACCOUNT,
            google::INSTANCE_ACCOUNT,
            google::FEDERATED_ACCOUNT,
            google::FEDERATED_ACCOUNT
        ]
    );
    assert_eq!(outcome.cloud_run, google::INSTANCE_ACCOUNT);
    assert_eq!(
        outcome.fetches,
        [1, 2],
        "one token on the VM; on AKS one more after the rotation's 401"
    );
    assert_eq!(outcome.exchanged, [1, 2], "the file is read again");
    let state = fixture.state();
    assert_eq!(state.metadata_requests, 1);
    assert_eq!(state.identity_requests, 1);
    assert_eq!(state.sts_requests, 2);
    assert_eq!(state.impersonations, 2);
}

#[tokio::test]
async fn the_metadata_servers_access_token_for_an_account_and_scopes() {
    let fixture = google::Fixture::start().await;
    let token = MetadataAccessToken::builder()
        .account(google::INSTANCE_ACCOUNT)
        .scope(google::SCOPE)
        .scope(google::CLOUD_PLATFORM)
        .env(fixture.env())
        .http_client(http_client())
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap();
    assert_eq!(token.secret(), "ya29.metadata-1");
    let lifetime = token.expires_at().unwrap() - token.received_at();
    assert_eq!(lifetime, Duration::from_secs(3599), "expires_in");

    // The stand-in checks the documented request: another account, a scope
    // the instance lacks, and a request without the header are refused.
    let err = MetadataAccessToken::builder()
        .account("other@demo-project.iam.gserviceaccount.com")
        .env(fixture.env())
        .http_client(http_client())
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), StatusCode::NOT_FOUND);
    assert_eq!(err.kind(), ErrorKind::Permanent);
    let err = MetadataAccessToken::builder()
        .scope("https://www.googleapis.com/auth/admin")
        .env(fixture.env())
        .http_client(http_client())
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), StatusCode::BAD_REQUEST);
    assert_eq!(
        err.to_string(),
        format!(
            "Google metadata server at {}/computeMetadata/v1/instance/service-accounts/default/token?[redacted]: \
             answered 400 Bad Request: invalid scopes",
            fixture.url("")
        )
    );
    let plain = support::oauth2::plain_client();
    let bare = plain
        .get(
            fixture
                .url("/computeMetadata/v1/instance/service-accounts/default/token")
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        bare.status(),
        StatusCode::FORBIDDEN,
        "Metadata-Flavor is required"
    );
}

#[tokio::test]
async fn the_metadata_servers_failures_and_their_kinds() {
    let fixture = google::Fixture::start().await;
    let source = metadata_source(&fixture);
    let answer = |status: u16, retry_after: Option<&str>, body: &str| {
        let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(delay) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", delay.parse().unwrap());
        }
        response
    };
    let table = [
        (
            answer(503, Some("7"), "unavailable"),
            ErrorKind::Transient,
            true,
            Some(7),
        ),
        (answer(500, None, ""), ErrorKind::Transient, false, None),
        (
            answer(429, None, "slow down"),
            ErrorKind::Transient,
            true,
            None,
        ),
        (
            answer(404, None, "not found"),
            ErrorKind::Permanent,
            false,
            None,
        ),
        (
            answer(403, None, "Forbidden"),
            ErrorKind::Permanent,
            false,
            None,
        ),
        (
            answer(200, None, "<html>captive portal</html>"),
            ErrorKind::Permanent,
            false,
            None,
        ),
        (
            answer(200, None, r#"{"token_type":"Bearer"}"#),
            ErrorKind::Permanent,
            false,
            None,
        ),
    ];
    let expected: Vec<_> = table
        .iter()
        .map(|(r, kind, overload, delay)| (r.status(), *kind, *overload, *delay))
        .collect();
    fixture
        .state()
        .metadata_failures
        .extend(table.into_iter().map(|(r, ..)| r));
    for (status, kind, overload, delay) in expected {
        let err = source.fetch().await.unwrap_err();
        assert_eq!(err.kind(), kind, "{status}: {err}");
        assert_eq!(err.is_endpoint_overload(), overload, "{status}");
        assert_eq!(
            err.retry_after(),
            delay.map(Duration::from_secs),
            "{status}"
        );
        let cause = platform_error(&err);
        assert_eq!(cause.source_name(), "Google metadata server");
        if !status.is_success() {
            assert_eq!(status_of(&err), status);
        }
    }
    assert_eq!(source.fetch().await.unwrap().secret(), "ya29.metadata-8");
    assert_eq!(fixture.state().metadata_requests, 8);
}

#[tokio::test]
async fn an_id_token_for_cloud_run_lives_until_its_exp() {
    let fixture = google::Fixture::start().await;
    let source = MetadataIdToken::builder(google::RUN_URL)
        .env(fixture.env())
        .http_client(http_client())
        .build()
        .unwrap();
    let token = source.fetch().await.unwrap();
    let claims = google::claims(token.secret());
    assert_eq!(claims["aud"], google::RUN_URL);
    assert_eq!(
        claims["google"]["compute_engine"]["project_id"], "demo-project",
        "format=full"
    );
    let lifetime = token.expires_at().unwrap() - token.received_at();
    assert!(
        lifetime <= Duration::from_secs(3600) && lifetime > Duration::from_secs(3000),
        "from exp: {lifetime:?}"
    );
    assert!(MetadataIdToken::builder("")
        .env(fixture.env())
        .build()
        .is_err());
}

/// A credential configuration without impersonation: the STS token is the
/// token, asked with the scopes given (here the default, cloud-platform).
fn direct_configuration(fixture: &google::Fixture, credential_source: Value) -> String {
    let mut config = fixture.credential_configuration(credential_source);
    config
        .as_object_mut()
        .unwrap()
        .remove("service_account_impersonation_url");
    config.to_string()
}

#[tokio::test]
async fn a_url_sourced_subject_token_in_json_asked_again_for_every_exchange() {
    let fixture = google::Fixture::start().await;
    let dir = google::PlatformDir::new("platform-google-test").unwrap();
    fixture.cluster_writes(&dir.path("unused"), 1).unwrap();
    let config = direct_configuration(
        &fixture,
        json!({
            "url": fixture.url("/subject"),
            "headers": {"Metadata": "True"},
            "format": {"type": "json", "subject_token_field_name": "access_token"},
        }),
    );
    let source = ExternalAccount::from_json(&config)
        .unwrap()
        .http_client(http_client())
        .build()
        .unwrap();
    assert_eq!(source.fetch().await.unwrap().secret(), "ya29.sts-1");
    fixture.cluster_writes(&dir.path("unused"), 2).unwrap();
    assert_eq!(source.fetch().await.unwrap().secret(), "ya29.sts-2");
    let state = fixture.state();
    assert_eq!(state.subject_requests, 2);
    let rotations: Vec<u64> = state
        .exchanged
        .iter()
        .map(|t| google::claims(t)["n"].as_u64().unwrap())
        .collect();
    assert_eq!(rotations, [1, 2]);
}

#[tokio::test]
async fn a_json_subject_token_file_and_what_makes_it_fail() {
    let fixture = google::Fixture::start().await;
    let dir = google::PlatformDir::new("platform-google-test").unwrap();
    // The stand-in vouches for the token written last.
    fixture.cluster_writes(&dir.path("token"), 1).unwrap();
    let current = std::fs::read_to_string(dir.path("token")).unwrap();
    let file = write(
        &dir,
        "subject.json",
        &json!({"id_token": current.trim()}).to_string(),
    );
    let config = direct_configuration(
        &fixture,
        json!({"file": file, "format": {"type": "json", "subject_token_field_name": "id_token"}}),
    );
    let source = ExternalAccount::from_json(&config)
        .unwrap()
        .http_client(http_client())
        .build()
        .unwrap();
    assert_eq!(source.fetch().await.unwrap().secret(), "ya29.sts-1");

    // Another field: permanent, and the file's contents are never shown.
    write(
        &dir,
        "subject.json",
        &json!({"other": current.trim()}).to_string(),
    );
    let err = source.fetch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(
        err.to_string().contains("no string field \"id_token\""),
        "{err}"
    );
    assert!(!format!("{err:?}").contains(current.trim()));
    // No file (yet): transient.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        source.fetch().await.unwrap_err().kind(),
        ErrorKind::Transient
    );
    // The STS refuses a subject token it does not vouch for, without
    // showing it.
    write(
        &dir,
        "subject.json",
        &json!({"id_token": "eyJ.forged.token"}).to_string(),
    );
    let err = source.fetch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(!format!("{err:?}{err}").contains("eyJ.forged.token"));
}

#[tokio::test]
async fn credential_configurations_that_are_refused() {
    for (config, why) in [
        (
            json!({"type": "service_account"}),
            "type is not external_account",
        ),
        (json!({"type": "external_account"}), "no credential_source"),
        (
            json!({"type": "external_account", "credential_source": {"file": "/t"}}),
            "no audience",
        ),
        (
            json!({"type": "external_account", "audience": "a", "subject_token_type": "t", "token_url": "http://sts.example.com/v1/token", "credential_source": {"file": "/t"}}),
            "cannot build",
        ),
        (
            json!({"type": "external_account", "audience": "a", "subject_token_type": "t", "token_url": "https://sts.googleapis.com/v1/token", "credential_source": {"environment_id": "aws1"}}),
            "AWS",
        ),
    ] {
        let err = ExternalAccount::from_json(&config.to_string())
            .and_then(|b| b.http_client(http_client()).build())
            .unwrap_err();
        assert!(err.to_string().contains(why), "{config}: {err}");
    }
}

/// Which source the chooser picks from which environment.
#[tokio::test]
async fn the_chooser_picks_from_the_environment() {
    let fixture = google::Fixture::start().await;
    let dir = google::PlatformDir::new("platform-google-test").unwrap();
    let aks = google::Aks::new(&fixture).unwrap();
    fixture.cluster_writes(&aks.token_file, 1).unwrap();
    let authorized_user = write(
        &dir,
        "adc.json",
        r#"{"type":"authorized_user","client_id":"x","client_secret":"s3cr3t","refresh_token":"r"}"#,
    );
    let chosen = |env: Env| {
        ApplicationDefault::builder()
            .env(env)
            .http_client(http_client())
            .build()
    };
    let adc = chosen(fixture.env()).unwrap();
    assert_eq!(adc.chosen(), GoogleCredential::MetadataServer);
    assert_eq!(
        adc.skipped()[0].reason(),
        "GOOGLE_APPLICATION_CREDENTIALS is not set"
    );
    assert_eq!(adc.fetch().await.unwrap().secret(), "ya29.metadata-1");

    let federated = fixture.env().with(
        "GOOGLE_APPLICATION_CREDENTIALS",
        aks.config.to_string_lossy(),
    );
    let adc = ApplicationDefault::builder()
        .env(federated)
        .scope(google::SCOPE)
        .http_client(http_client())
        .build()
        .unwrap();
    assert_eq!(adc.chosen(), GoogleCredential::ExternalAccount);
    assert!(adc.skipped().is_empty());
    assert_eq!(adc.fetch().await.unwrap().secret(), "ya29.impersonated-1");

    // A file that is named and cannot be used is an error, not a fallback.
    for (path, why) in [
        (authorized_user.as_path(), "authorized_user"),
        (Path::new("/nonexistent/key.json"), "cannot read it"),
    ] {
        let env = fixture
            .env()
            .with("GOOGLE_APPLICATION_CREDENTIALS", path.to_string_lossy());
        let err = chosen(env).unwrap_err();
        assert!(
            matches!(&err, SetupError::Source { source_name: "key file", reason } if reason.contains(why)),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cr3t"));
    }
}

#[cfg(feature = "jwt")]
#[tokio::test]
async fn the_chooser_reads_a_service_account_key() {
    let dir = google::PlatformDir::new("platform-google-test").unwrap();
    let pem = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys/rsa.pkcs8.pem"),
    )
    .unwrap();
    let key = write(
        &dir,
        "key.json",
        &json!({
            "type": "service_account",
            "private_key_id": "0123abcd",
            "private_key": pem,
            "client_email": "reporter@demo.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string(),
    );
    let adc = ApplicationDefault::builder()
        .env(Env::new().with("GOOGLE_APPLICATION_CREDENTIALS", key.to_string_lossy()))
        .scope(google::SCOPE)
        .build()
        .unwrap();
    assert_eq!(adc.chosen(), GoogleCredential::ServiceAccountKey);
    assert!(!format!("{adc:?}").contains("PRIVATE KEY"));
}

/// Nothing applies: no key file, and no metadata server where it should be.
/// The error names the server and what was passed over, at once.
#[tokio::test]
async fn no_metadata_server_fails_at_once_and_says_what_was_passed_over() {
    let nowhere = refused_addr().await;
    // The default client: never a proxy, a short connect timeout.
    let adc = ApplicationDefault::builder()
        .env(Env::new().with("GCE_METADATA_HOST", nowhere.to_string()))
        .build()
        .unwrap();
    let err = adc.fetch().await.unwrap_err();
    assert!(err.is_transient());
    let cause = platform_error(&err);
    assert!(
        matches!(cause.failure(), Failure::Unreachable(_)),
        "{cause:?}"
    );
    assert_eq!(cause.skipped().len(), 1);
    assert_eq!(
        err.to_string(),
        format!(
            "Google metadata server at http://{nowhere}/computeMetadata/v1/instance/service-accounts/default/token: \
             no connection (passed over: key file: GOOGLE_APPLICATION_CREDENTIALS is not set)"
        )
    );
}

/// Something accepts the connection and never answers: the source's own
/// timeout ends the wait, after one connection and one request.
#[tokio::test]
async fn a_metadata_server_that_never_answers_times_out() {
    let silent = TokenServer::start(Endpoint::Hang).await;
    let source = MetadataAccessToken::builder()
        .host(silent.addr.to_string())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = source.fetch().await.unwrap_err();
    assert!(err.is_transient());
    assert!(
        matches!(platform_error(&err).failure(), Failure::TimedOut(after) if *after == Duration::from_millis(200)),
        "{err:?}"
    );
    // No second connection or request.
    assert_eq!(silent.counts_after_first_request().await, (1, 1));
}

#[tokio::test]
async fn no_token_reaches_a_log_an_error_or_a_debug() {
    let fixture = google::Fixture::start().await;
    let (log, guard) = Captured::trace();
    let outcome = google::run(&fixture).await.unwrap();
    drop(guard);
    let log = log.text();
    assert!(log.contains("platform token request"), "{log}");
    for secret in ["ya29.", "eyJhbGciOiJSUzI1NiJ9."] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!format!("{outcome:?}").contains(secret));
    }
    let source = metadata_source(&fixture);
    let token = source.fetch().await.unwrap();
    assert!(!format!("{source:?}{token:?}").contains(token.secret()));
}
