//! Azure's identities (issue 26) against the loopback stand-in of
//! `examples/platform_azure.rs`, which answers as IMDS, App Service's token
//! service and Entra ID document it, errors included: managed identity
//! (system- and user-assigned, both endpoints), IMDS's documented failures,
//! workload identity reading its file again, the default credential's
//! choice, failing fast where no IMDS is, and no secret in what is printed
//! or logged.

// The example includes `examples/support`, and with it `loopback/`, which
// `support` (tests/support) includes too.
#![allow(clippy::duplicate_mod)]

#[path = "../examples/platform_azure.rs"]
#[allow(dead_code)]
mod azure;
mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use tower_bearer::oauth2::{ErrorCode, OAuth2Error, SecurityToken, TokenFileError, TokenType};
use tower_bearer::platform::azure::{
    AzureCredential, DefaultCredential, ManagedIdentity, ManagedIdentityId, ManagedIdentityKind,
    WorkloadIdentity,
};
use tower_bearer::platform::{Env, Failure, SetupError};
use tower_bearer::{ErrorKind, StaticToken, TokenSource};

use support::captured_log::Captured;
use support::oauth2::http_client;
use support::platform::platform_error;
use support::token_server::{refused_addr, Endpoint, TokenServer};

fn managed(env: Env) -> ManagedIdentity {
    ManagedIdentity::builder(azure::SCOPE)
        .env(env)
        .http_client(http_client())
        .build()
        .unwrap()
}

fn pairs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test]
async fn the_example_on_a_vm_on_app_service_and_on_aks() {
    let fixture = azure::Fixture::start().await;
    let outcome = azure::run(&fixture).await.unwrap();
    assert_eq!(
        outcome.chosen,
        [
            AzureCredential::ManagedIdentity(ManagedIdentityKind::Imds),
            AzureCredential::ManagedIdentity(ManagedIdentityKind::AppService),
            AzureCredential::WorkloadIdentity,
        ]
    );
    let vm = format!("vm:{}", azure::SYSTEM_ASSIGNED);
    let app = format!("app:{}", azure::SYSTEM_ASSIGNED);
    let aks = format!("aks:{}", azure::APP_CLIENT_ID);
    assert_eq!(
        outcome.vault_callers,
        [&vm, &vm, &app, &aks, &aks].map(String::clone)
    );
    assert_eq!(outcome.fetches, [1, 1, 2]);
    assert_eq!(outcome.assertions, [1, 2], "the token file is read again");
    let state = fixture.state();
    assert_eq!(
        (
            state.imds_requests,
            state.app_service_requests,
            state.entra_requests
        ),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn user_assigned_identities_by_each_endpoints_parameter() {
    let fixture = azure::Fixture::start().await;
    let imds = ManagedIdentity::builder(azure::SCOPE)
        .user_assigned(ManagedIdentityId::ClientId(azure::USER_ASSIGNED.into()))
        .env(fixture.vm())
        .http_client(http_client())
        .build()
        .unwrap();
    assert_eq!(imds.kind(), ManagedIdentityKind::Imds);
    let token = imds.fetch().await.unwrap();
    let lifetime = token.expires_at().unwrap() - token.received_at();
    assert_eq!(
        lifetime,
        Duration::from_secs(86_399),
        "IMDS's expires_in, a string"
    );

    // The stand-in knows one user-assigned identity, by client id: the
    // other two parameters reach it under their documented names.
    for (identity, kind, param) in [
        (
            ManagedIdentityId::ObjectId("oid".into()),
            ManagedIdentityKind::Imds,
            "object_id",
        ),
        (
            ManagedIdentityId::ResourceId("/sub/rid".into()),
            ManagedIdentityKind::Imds,
            "msi_res_id",
        ),
        (
            ManagedIdentityId::ObjectId("oid".into()),
            ManagedIdentityKind::AppService,
            "principal_id",
        ),
        (
            ManagedIdentityId::ResourceId("/sub/rid".into()),
            ManagedIdentityKind::AppService,
            "mi_res_id",
        ),
    ] {
        let env = match kind {
            ManagedIdentityKind::Imds => fixture.vm(),
            ManagedIdentityKind::AppService => fixture.app_service(),
        };
        let err = ManagedIdentity::builder(azure::SCOPE)
            .user_assigned(identity)
            .env(env)
            .http_client(http_client())
            .build()
            .unwrap()
            .fetch()
            .await
            .unwrap_err();
        let Failure::Status {
            status,
            error,
            description,
            ..
        } = platform_error(&err).failure()
        else {
            panic!("{err:?}");
        };
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{param}");
        assert_eq!(error.as_deref(), Some("invalid_request"));
        assert_eq!(description.as_deref(), Some("Identity not found"));
        assert_eq!(
            err.kind(),
            ErrorKind::Permanent,
            "a 400 is the request's mistake"
        );
        let state = fixture.state();
        let sent = state.identity_params.last().unwrap();
        assert_eq!(pairs(sent).len(), 1);
        assert_eq!(pairs(sent)[0].0, param);
    }
    let app = ManagedIdentity::builder(azure::SCOPE)
        .user_assigned(ManagedIdentityId::ClientId(azure::USER_ASSIGNED.into()))
        .env(fixture.app_service())
        .http_client(http_client())
        .build()
        .unwrap();
    let token = app.fetch().await.unwrap();
    let lifetime = token.expires_at().unwrap() - token.received_at();
    assert!(
        lifetime <= Duration::from_secs(86_399) && lifetime > Duration::from_secs(86_000),
        "App Service's expires_on, a Unix time as a string: {lifetime:?}"
    );
    let state = fixture.state();
    let client_id = [("client_id", azure::USER_ASSIGNED)];
    assert_eq!(pairs(&state.identity_params[0]), client_id);
    assert_eq!(pairs(&state.identity_params[5]), client_id);
}

#[tokio::test]
async fn imds_documented_failures_are_transient_with_their_retry_after() {
    let fixture = azure::Fixture::start().await;
    let source = managed(fixture.vm());
    let answer = |status: u16, retry_after: Option<&str>| {
        let body = r#"{"error":"temporarily_unavailable","error_description":"busy"}"#;
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(delay) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", delay.parse().unwrap());
        }
        response
    };
    // (status, Retry-After, overloaded)
    let table = [
        (429, Some("3"), true),
        (503, Some("Thu, 01 Jan 1970 00:00:00 GMT"), true),
        (500, None, false),
        (502, None, false),
        (504, None, false),
        (404, None, false),
        (410, None, false),
    ];
    fixture.state().imds_failures.extend(
        table
            .iter()
            .map(|(status, retry_after, _)| answer(*status, *retry_after)),
    );
    for (status, retry_after, overloaded) in table {
        let err = source.fetch().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient, "{status}");
        assert_eq!(err.is_endpoint_overload(), overloaded, "{status}");
        let expected = match retry_after {
            Some("3") => Some(Duration::from_secs(3)),
            Some(_) => Some(Duration::ZERO),
            None => None,
        };
        assert_eq!(err.retry_after(), expected, "{status}");
        assert_eq!(platform_error(&err).source_name(), "Azure IMDS");
    }
    assert!(source.fetch().await.is_ok(), "then the token");
    assert_eq!(fixture.state().imds_requests, table.len() + 1);

    // Other 4xx are permanent: a resource Entra does not know.
    let err = ManagedIdentity::builder("https://unknown.example.com/.default")
        .env(fixture.vm())
        .http_client(http_client())
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(err.to_string().contains("invalid_resource"), "{err}");
}

#[tokio::test]
async fn app_service_needs_its_header_and_never_shows_it() {
    let fixture = azure::Fixture::start().await;
    let header = fixture.state().identity_header.clone();
    let wrong = ManagedIdentity::builder(azure::SCOPE)
        .app_service(fixture.url("/MSI/token/"), format!("{header}-old"))
        .http_client(http_client())
        .build()
        .unwrap();
    let err = wrong.fetch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert_eq!(
        platform_error(&err).source_name(),
        "Azure App Service managed identity"
    );
    let right = managed(fixture.app_service());
    assert!(right.fetch().await.is_ok());
    for shown in [
        format!("{err:?}{err}"),
        format!("{right:?}{wrong:?}"),
        format!("{:?}", fixture.app_service()),
    ] {
        assert!(!shown.contains(&header), "{shown}");
    }
}

#[tokio::test]
async fn workload_identity_reads_the_file_for_every_request() {
    let fixture = azure::Fixture::start().await;
    let file = azure::TokenFile::new().unwrap();
    let source = WorkloadIdentity::builder(azure::SCOPE)
        .env(fixture.aks(&file.path))
        .http_client(http_client())
        .build()
        .unwrap();
    // Not written yet: transient, as the kubelet may be about to.
    let err = source.fetch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(err
        .cause()
        .unwrap()
        .downcast_ref::<TokenFileError>()
        .is_some());
    for n in 1..=2 {
        fixture.kubelet_writes(&file.path, n).unwrap();
        let token = source.fetch().await.unwrap();
        assert_eq!(token.secret(), format!("eyJ0eXAi.entra-{n}"));
        let lifetime = token.expires_at().unwrap() - token.received_at();
        assert_eq!(lifetime, Duration::from_secs(3599));
    }
    // A token Entra does not trust (stale): invalid_client, the assertion
    // never shown.
    let stale = std::fs::read_to_string(&file.path).unwrap();
    fixture
        .kubelet_writes(&file.path.with_extension("elsewhere"), 3)
        .unwrap();
    let err = source.fetch().await.unwrap_err();
    let oauth = err
        .cause()
        .and_then(|c| c.downcast_ref::<OAuth2Error>())
        .unwrap();
    assert_eq!(oauth.code(), &ErrorCode::InvalidClient);
    assert!(err.is_permanent());
    assert!(!format!("{err:?}{err}{source:?}").contains(stale.trim()));
    assert_eq!(fixture.state().entra_requests, 3);
}

#[tokio::test]
async fn workload_identity_takes_an_assertion_from_any_source() {
    let fixture = azure::Fixture::start().await;
    let file = azure::TokenFile::new().unwrap();
    fixture.kubelet_writes(&file.path, 1).unwrap();
    let assertion = std::fs::read_to_string(&file.path)
        .unwrap()
        .trim()
        .to_owned();
    let source = WorkloadIdentity::builder(azure::SCOPE)
        .env(Env::new())
        .tenant_id(azure::TENANT)
        .client_id(azure::APP_CLIENT_ID)
        .authority_host(fixture.url(""))
        .assertion(SecurityToken::from_source(
            StaticToken::new(assertion),
            TokenType::JWT,
        ))
        .http_client(http_client())
        .build()
        .unwrap();
    assert_eq!(source.fetch().await.unwrap().secret(), "eyJ0eXAi.entra-1");
    for (env, missing) in [
        (Env::new(), "AZURE_TENANT_ID"),
        (Env::new().with("AZURE_TENANT_ID", "t"), "AZURE_CLIENT_ID"),
        (
            Env::new()
                .with("AZURE_TENANT_ID", "t")
                .with("AZURE_CLIENT_ID", "c"),
            "AZURE_FEDERATED_TOKEN_FILE",
        ),
        (
            Env::new()
                .with("AZURE_TENANT_ID", "../evil")
                .with("AZURE_CLIENT_ID", "c")
                .with("AZURE_FEDERATED_TOKEN_FILE", "/f"),
            "not a tenant id",
        ),
    ] {
        let err = WorkloadIdentity::builder(azure::SCOPE)
            .env(env)
            .http_client(http_client())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(missing), "{err}");
    }
}

/// Which source the chooser picks from which environment, each against
/// the stand-in.
#[tokio::test]
async fn the_chooser_picks_from_the_environment() {
    let fixture = azure::Fixture::start().await;
    let file = azure::TokenFile::new().unwrap();
    fixture.kubelet_writes(&file.path, 1).unwrap();
    let user_assigned_vm = fixture.vm().with("AZURE_CLIENT_ID", azure::USER_ASSIGNED);
    // Workload identity's variables half set: passed over for IMDS.
    let half = fixture
        .vm()
        .with("AZURE_FEDERATED_TOKEN_FILE", file.path.to_string_lossy());
    for (env, chosen, skipped, caller) in [
        (
            fixture.vm(),
            AzureCredential::ManagedIdentity(ManagedIdentityKind::Imds),
            2,
            "eyJ0eXAi.imds-1",
        ),
        (
            user_assigned_vm,
            AzureCredential::ManagedIdentity(ManagedIdentityKind::Imds),
            2,
            "eyJ0eXAi.imds-2",
        ),
        (
            half,
            AzureCredential::ManagedIdentity(ManagedIdentityKind::Imds),
            2,
            "eyJ0eXAi.imds-3",
        ),
        (
            fixture.app_service(),
            AzureCredential::ManagedIdentity(ManagedIdentityKind::AppService),
            2,
            "eyJ0eXAi.app-service-1",
        ),
        (
            // Workload identity comes before managed identity.
            fixture
                .aks(&file.path)
                .with("AZURE_POD_IDENTITY_AUTHORITY_HOST", fixture.url("")),
            AzureCredential::WorkloadIdentity,
            1,
            "eyJ0eXAi.entra-1",
        ),
    ] {
        let source = DefaultCredential::builder(azure::SCOPE)
            .env(env.clone())
            .http_client(http_client())
            .build()
            .unwrap();
        assert_eq!(source.chosen(), chosen, "{env:?}");
        assert_eq!(source.skipped().len(), skipped, "{env:?}");
        assert_eq!(source.fetch().await.unwrap().secret(), caller, "{env:?}");
    }
    let state = fixture.state();
    assert_eq!(
        pairs(&state.identity_params[1]),
        [("client_id", azure::USER_ASSIGNED)]
    );

    // A client secret comes first, and is never shown.
    let secret_env = Env::new()
        .with("AZURE_TENANT_ID", azure::TENANT)
        .with("AZURE_CLIENT_ID", azure::APP_CLIENT_ID)
        .with("AZURE_CLIENT_SECRET", "s3cr3t-value")
        .with("AZURE_FEDERATED_TOKEN_FILE", file.path.to_string_lossy());
    let source = DefaultCredential::builder(azure::SCOPE)
        .env(secret_env)
        .http_client(http_client())
        .build()
        .unwrap();
    assert_eq!(source.chosen(), AzureCredential::ClientSecret);
    assert!(!format!("{source:?}").contains("s3cr3t-value"));
}

/// None applies: the chooser says why, candidate by candidate.
#[tokio::test]
async fn when_nothing_applies_every_candidate_says_why() {
    let arc = Env::new()
        .with(
            "IDENTITY_ENDPOINT",
            "http://localhost:40342/metadata/identity/oauth2/token",
        )
        .with("IMDS_ENDPOINT", "http://localhost:40342")
        .with("AZURE_CLIENT_SECRET", "s3cr3t-value");
    let err = DefaultCredential::builder(azure::SCOPE)
        .env(arc)
        .build()
        .unwrap_err();
    let SetupError::NothingApplies { chooser, skipped } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*chooser, "Azure default credential");
    assert_eq!(
        skipped.iter().map(|s| s.source()).collect::<Vec<_>>(),
        ["environment", "workload identity", "managed identity"]
    );
    assert_eq!(
        err.to_string(),
        "Azure default credential: no source applies (environment: AZURE_CLIENT_SECRET is set \
         but AZURE_TENANT_ID and AZURE_CLIENT_ID are not; workload identity: \
         AZURE_FEDERATED_TOKEN_FILE is not set; managed identity: Azure Arc (IDENTITY_ENDPOINT \
         with IMDS_ENDPOINT) is not supported)"
    );

    // Nothing set and no IMDS: the fallback fails at once, saying what it
    // passed over, with the default client (no proxy, a short connect timeout).
    let nowhere = refused_addr().await;
    let source = DefaultCredential::builder(azure::SCOPE)
        .env(Env::new().with(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            format!("http://{nowhere}"),
        ))
        .build()
        .unwrap();
    let err = source.fetch().await.unwrap_err();
    assert!(err.is_transient());
    assert!(matches!(
        platform_error(&err).failure(),
        Failure::Unreachable(_)
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "Azure IMDS at http://{nowhere}/metadata/identity/oauth2/token?[redacted]: no connection \
             (passed over: environment: AZURE_CLIENT_SECRET is not set; workload identity: \
             AZURE_FEDERATED_TOKEN_FILE is not set)"
        )
    );
}

/// An IMDS that accepts and never answers: the source's own timeout, one
/// connection, one request.
#[tokio::test]
async fn an_imds_that_never_answers_times_out() {
    let silent = TokenServer::start(Endpoint::Hang).await;
    let source = ManagedIdentity::builder(azure::SCOPE)
        .imds(format!("http://{}", silent.addr))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = source.fetch().await.unwrap_err();
    assert!(err.is_transient());
    assert!(
        matches!(platform_error(&err).failure(), Failure::TimedOut(_)),
        "{err:?}"
    );
    // No second connection or request.
    assert_eq!(silent.counts_after_first_request().await, (1, 1));
}

#[tokio::test]
async fn no_token_header_or_assertion_reaches_a_log() {
    let fixture = azure::Fixture::start().await;
    let header = fixture.state().identity_header.clone();
    let (log, guard) = Captured::trace();
    let outcome = azure::run(&fixture).await.unwrap();
    // A failure with the header sent, too.
    let wrong = ManagedIdentity::builder(azure::SCOPE)
        .app_service(fixture.url("/MSI/token/"), "not-the-header")
        .http_client(http_client())
        .build()
        .unwrap();
    let _ = wrong.fetch().await.unwrap_err();
    drop(guard);
    let log = log.text();
    assert!(log.contains("platform token request"), "{log}");
    for secret in [
        header.as_str(),
        "eyJ0eXAi.",
        "eyJhbGciOiJSUzI1NiJ9.",
        "not-the-header",
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!format!("{outcome:?}").contains(secret));
    }
}

/// A platform source is a `TokenSource` like any other: behind a cache,
/// fifty callers at once cost IMDS one request.
#[tokio::test]
async fn behind_a_cache_fifty_callers_make_one_imds_request() {
    let fixture = azure::Fixture::start().await;
    let cache = tower_bearer::TokenCache::new(managed(fixture.vm()));
    let callers: Vec<_> = (0..50).map(|_| tokio::spawn(cache.token())).collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().secret(), "eyJ0eXAi.imds-1");
    }
    assert_eq!(fixture.state().imds_requests, 1);
    assert_eq!(cache.stats().fetches, 1);
}
