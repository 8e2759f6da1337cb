//! Azure's own identities: managed identity on a VM (IMDS) and on App
//! Service, and AKS workload identity, each chosen from the environment in
//! the order of the Azure SDKs' `DefaultAzureCredential`
//! (`platform::azure::DefaultCredential`).
//!
//! The documented requests:
//!
//! - IMDS: `GET
//!   http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
//!   (`client_id`, `object_id` or `msi_res_id` for a user-assigned
//!   identity) with `Metadata: true`, answered `{access_token, client_id,
//!   expires_in, expires_on, ext_expires_in, not_before, resource,
//!   token_type}`, numbers as strings;
//! - App Service: `GET $IDENTITY_ENDPOINT?resource=…&api-version=2019-08-01`
//!   with `X-IDENTITY-HEADER: $IDENTITY_HEADER`, answered `{access_token,
//!   expires_on, resource, token_type, client_id}`;
//! - workload identity: `POST
//!   $AZURE_AUTHORITY_HOST/$AZURE_TENANT_ID/oauth2/v2.0/token` with
//!   `client_id`, `scope`, `grant_type=client_credentials`,
//!   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//!   and `client_assertion`, the contents of `AZURE_FEDERATED_TOKEN_FILE`.
//!
//! This example starts a loopback stand-in for IMDS, App Service's token
//! service, Entra ID and Key Vault, which answers `400` or `401` to
//! anything not shaped as documented (IMDS's own error bodies). Each
//! platform is an `Env` built in code, the override variables naming the
//! stand-in (`AZURE_POD_IDENTITY_AUTHORITY_HOST` for IMDS): nothing touches
//! the process environment. On AKS the kubelet rotates the token file
//! midway. Run it with `cargo run --example platform_azure`.

#[path = "support/mod.rs"]
mod support;

pub use support::platform::claims;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use support::platform::{caller, jwt, rotate, unix_now, PlatformDir};
use tower::ServiceBuilder;
use tower_bearer::oauth2::HttpClient;
use tower_bearer::platform::azure::{AzureCredential, DefaultCredential};
use tower_bearer::platform::Env;
use tower_bearer::BearerAuthLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const SCOPE: &str = "https://vault.azure.net/.default";
pub const RESOURCE: &str = "https://vault.azure.net";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The application that trusts the AKS service account.
pub const APP_CLIENT_ID: &str = "3c1d2e4f-0000-4000-8000-00000000a11c";
/// A user-assigned identity of the VM.
pub const USER_ASSIGNED: &str = "6a1c0e2b-0000-4000-8000-000000000001";
/// The system-assigned identity's client id, as IMDS reports it.
pub const SYSTEM_ASSIGNED: &str = "9e8d7c6b-0000-4000-8000-0000000005a5";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let azure = Fixture::start().await;
    support::print_outcome(run(&azure).await)
}

/// What the run observed.
#[derive(Debug)]
pub struct Outcome {
    /// What the chooser picked on the VM, on App Service, on AKS.
    pub chosen: [AzureCredential; 3],
    /// Who Key Vault saw: twice on the VM, once on App Service, on AKS
    /// before and after the token file's rotation.
    pub vault_callers: Vec<String>,
    /// Token fetches of each platform's cache.
    pub fetches: [u64; 3],
    /// The rotation (`n` claim) of each assertion Entra accepted, in order.
    pub assertions: Vec<u64>,
}

pub async fn run(azure: &Fixture) -> Result<Outcome, BoxError> {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let aks = TokenFile::new()?;
    azure.kubelet_writes(&aks.path, 1)?;
    let platforms = [azure.vm(), azure.app_service(), azure.aks(&aks.path)];

    let mut chosen = Vec::new();
    let mut vault_callers = Vec::new();
    let mut fetches = Vec::new();
    for (i, env) in platforms.into_iter().enumerate() {
        let source = DefaultCredential::builder(SCOPE)
            .env(env)
            // Leave out in production: the default never goes through a
            // proxy to IMDS and gives up connecting after 1 s.
            .http_client(HttpClient::new(http.clone()))
            .build()?;
        chosen.push(source.chosen());
        let layer = BearerAuthLayer::new(source);
        let cache = layer.cache().clone();
        let vault = ServiceBuilder::new().layer(layer).service(http.clone());
        let calls = if i == 1 { 1 } else { 2 };
        for call in 0..calls {
            if i == 2 && call == 1 {
                // The kubelet rotates the projected token; Entra revokes the
                // tokens bought with the old one. The 401 brings one new
                // token request, which reads the file again.
                azure.kubelet_writes(&aks.path, 2)?;
                azure.revoke_tokens();
            }
            vault_callers
                .push(caller(&vault, &azure.url("/secrets/db-password?api-version=7.4")).await?);
        }
        fetches.push(cache.stats().fetches);
    }
    Ok(Outcome {
        chosen: chosen.try_into().expect("three platforms"),
        vault_callers,
        fetches: fetches.try_into().expect("three platforms"),
        assertions: azure
            .state()
            .assertions
            .iter()
            .map(|a| claims(a)["n"].as_u64().unwrap_or(0))
            .collect(),
    })
}

/// The projected token's file, in its own temporary directory, removed
/// on drop.
pub struct TokenFile {
    _dir: PlatformDir,
    pub path: PathBuf,
}

impl TokenFile {
    pub fn new() -> std::io::Result<Self> {
        let dir = PlatformDir::new("azure")?;
        let path = dir.path("azure-identity-token");
        Ok(Self { _dir: dir, path })
    }
}

/// The stand-in for Azure: IMDS, App Service's token service, Entra ID and
/// Key Vault, on one loopback port.
pub struct Fixture(support::StandIn<State>);

/// The stand-in's `url` and `state`; the fixture adds the environments.
impl std::ops::Deref for Fixture {
    type Target = support::StandIn<State>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// What the stand-in saw and holds.
#[derive(Default)]
pub struct State {
    /// Requests per endpoint, those refused included.
    pub imds_requests: usize,
    pub app_service_requests: usize,
    pub entra_requests: usize,
    /// IMDS's next answers, before any token (a test's 429, 404, 500).
    pub imds_failures: VecDeque<Response<Full<Bytes>>>,
    /// The client assertions Entra accepted, in order.
    pub assertions: Vec<String>,
    /// The identity query parameters of each managed-identity request.
    pub identity_params: Vec<Vec<(String, String)>>,
    /// App Service's `IDENTITY_HEADER`, rotated by the platform.
    pub identity_header: String,
    /// The projected token the cluster vouches for now.
    valid_assertion: String,
    /// Access tokens Key Vault accepts, and whom each is for.
    tokens: Vec<(String, String)>,
}

impl Fixture {
    pub async fn start() -> Self {
        let stand_in = support::StandIn::serve(handle).await;
        stand_in.state().identity_header = format!("853b9a84-{}", std::process::id());
        Self(stand_in)
    }

    /// A VM: IMDS, at the stand-in.
    pub fn vm(&self) -> Env {
        Env::new().with("AZURE_POD_IDENTITY_AUTHORITY_HOST", self.0.base())
    }

    /// An App Service app: its token service and header.
    pub fn app_service(&self) -> Env {
        Env::new()
            .with("IDENTITY_ENDPOINT", self.url("/MSI/token/"))
            .with("IDENTITY_HEADER", self.state().identity_header.clone())
    }

    /// An AKS pod with workload identity: what the webhook injects.
    pub fn aks(&self, token_file: &Path) -> Env {
        Env::new()
            .with("AZURE_CLIENT_ID", APP_CLIENT_ID)
            .with("AZURE_TENANT_ID", TENANT)
            .with("AZURE_FEDERATED_TOKEN_FILE", token_file.to_string_lossy())
            .with("AZURE_AUTHORITY_HOST", self.url("/"))
    }

    /// Issues projected token `n` and writes it as the kubelet does.
    pub fn kubelet_writes(&self, file: &Path, n: usize) -> std::io::Result<()> {
        let token = jwt(json!({
            "aud": ["api://AzureADTokenExchange"],
            "iss": "https://oidc.prod-aks.azure.com/tenant/cluster/",
            "sub": "system:serviceaccount:payments:api",
            "exp": unix_now() + 3600,
            "n": n,
        }));
        rotate(file, &token)?;
        self.state().valid_assertion = token;
        Ok(())
    }

    pub fn revoke_tokens(&self) {
        self.state().tokens.clear();
    }
}

/// IMDS's and Entra's error body.
fn error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    support::oauth_error(status, error, description)
}

fn handle(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    let mut state = state.lock().unwrap();
    let path = parts.uri.path().to_owned();
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/metadata/identity/oauth2/token") => imds(&mut state, &parts),
        (&Method::GET, "/MSI/token/") => app_service(&mut state, &parts),
        (&Method::POST, p) if p == format!("/{TENANT}/oauth2/v2.0/token") => {
            entra(&mut state, &body)
        }
        (&Method::GET, "/secrets/db-password") => {
            let caller = support::bearer_token(&parts)
                .and_then(|t| state.tokens.iter().find(|(token, _)| token == t));
            match caller {
                Some((_, who)) => support::json_response(StatusCode::OK, json!({"caller": who})),
                None => support::json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}),
                ),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "unknown path"),
    }
}

/// Who a managed-identity request asks for, by the identity parameters
/// it carries (recorded, whatever the answer).
fn identity(
    state: &mut State,
    query: &std::collections::BTreeMap<String, String>,
    names: [&str; 3],
) -> Result<&'static str, &'static str> {
    let given: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let who = match given.as_slice() {
        [] => Ok(SYSTEM_ASSIGNED),
        [(name, id)] if name == "client_id" && id == USER_ASSIGNED => Ok(USER_ASSIGNED),
        [_] => Err("Identity not found"),
        _ => Err("Only one of client_id, object_id and msi_res_id may be given"),
    };
    state.identity_params.push(given);
    who
}

/// IMDS: `Metadata: true`, no proxy, api-version and resource exactly.
fn imds(state: &mut State, parts: &Parts) -> Response<Full<Bytes>> {
    state.imds_requests += 1;
    if support::header(parts, "metadata") != Some("true")
        || parts.headers.contains_key("x-forwarded-for")
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    if let Some(failure) = state.imds_failures.pop_front() {
        return failure;
    }
    let Some(query) = support::query_map(parts) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "repeated parameters",
        );
    };
    let names = ["client_id", "object_id", "msi_res_id"];
    let known = |k: &String| {
        ["api-version", "resource"].contains(&k.as_str()) || names.contains(&k.as_str())
    };
    if query.get("api-version").map(String::as_str) != Some("2018-02-01")
        || !query.keys().all(known)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid api-version or parameters",
        );
    }
    if query.get("resource").map(String::as_str) != Some(RESOURCE) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            "AADSTS500011: The resource principal was not found",
        );
    }
    let who = match identity(state, &query, names) {
        Ok(who) => who,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    let token = format!("eyJ0eXAi.imds-{}", state.imds_requests);
    state.tokens.push((token.clone(), format!("vm:{who}")));
    let now = unix_now();
    support::json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "client_id": who,
            "expires_in": "86399",
            "expires_on": (now + 86_399).to_string(),
            "ext_expires_in": "86399",
            "not_before": now.to_string(),
            "resource": RESOURCE,
            "token_type": "Bearer",
        }),
    )
}

/// App Service: `X-IDENTITY-HEADER`, api-version 2019-08-01.
fn app_service(state: &mut State, parts: &Parts) -> Response<Full<Bytes>> {
    state.app_service_requests += 1;
    if support::header(parts, "x-identity-header") != Some(state.identity_header.as_str()) {
        return support::json_response(
            StatusCode::BAD_REQUEST,
            json!({"statusCode": 400, "message": "Unable to load the proper Managed Identity."}),
        );
    }
    let Some(query) = support::query_map(parts) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "repeated parameters",
        );
    };
    let names = ["client_id", "principal_id", "mi_res_id"];
    let known = |k: &String| {
        ["api-version", "resource"].contains(&k.as_str()) || names.contains(&k.as_str())
    };
    if query.get("api-version").map(String::as_str) != Some("2019-08-01")
        || query.get("resource").map(String::as_str) != Some(RESOURCE)
        || !query.keys().all(known)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "api-version 2019-08-01 and a resource",
        );
    }
    let who = match identity(state, &query, names) {
        Ok(who) => who,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    let token = format!("eyJ0eXAi.app-service-{}", state.app_service_requests);
    state.tokens.push((token.clone(), format!("app:{who}")));
    support::json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "expires_on": (unix_now() + 86_399).to_string(),
            "resource": RESOURCE,
            "token_type": "Bearer",
            "client_id": who,
        }),
    )
}

/// Entra ID's v2 token endpoint, client credentials with a federated
/// assertion.
fn entra(state: &mut State, body: &[u8]) -> Response<Full<Bytes>> {
    state.entra_requests += 1;
    let Some(fields) = support::form_map(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: a form body",
        );
    };
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    let expected = [
        ("client_assertion_type", JWT_BEARER),
        ("client_id", APP_CLIENT_ID),
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
    ];
    if keys
        != [
            "client_assertion",
            "client_assertion_type",
            "client_id",
            "grant_type",
            "scope",
        ]
        || expected.iter().any(|(k, v)| fields[*k] != *v)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: unexpected parameters",
        );
    }
    if fields["client_assertion"] != state.valid_assertion {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS700024: Client assertion is not within its valid time range.",
        );
    }
    state.assertions.push(fields["client_assertion"].clone());
    let token = format!("eyJ0eXAi.entra-{}", state.assertions.len());
    state
        .tokens
        .push((token.clone(), format!("aks:{APP_CLIENT_ID}")));
    support::json_response(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}
