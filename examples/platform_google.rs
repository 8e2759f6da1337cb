//! Google Cloud's own identities: the metadata server's access and ID
//! tokens, and workload identity federation, chosen as Google's libraries
//! choose them (`platform::google::ApplicationDefault`).
//!
//! The documented requests:
//!
//! - access token: `GET
//!   http://$GCE_METADATA_HOST/computeMetadata/v1/instance/service-accounts/default/token?scopes=…`
//!   with `Metadata-Flavor: Google`, answered `{access_token, expires_in,
//!   token_type: "Bearer"}`;
//! - ID token: `GET …/service-accounts/default/identity?audience=…&format=full`,
//!   answered with the JWT;
//! - federation (AIP-4117): the subject token from the configuration's
//!   `credential_source`, exchanged at its `token_url` (`POST`, RFC 8693:
//!   `audience`, `grant_type`, `requested_token_type`, `scope`,
//!   `subject_token`, `subject_token_type`), then the STS token `POST`ed to
//!   the `service_account_impersonation_url` with `{"scope": […],
//!   "lifetime": "3600s"}`, answered `{accessToken, expireTime}`.
//!
//! This example starts a loopback stand-in for the metadata server, the
//! STS, the IAM credentials API, Cloud Storage and a Cloud Run service; it
//! answers `400`, `403` or `404` to anything not shaped as documented. The
//! environment is an `Env` built in code (`GCE_METADATA_HOST` naming the
//! stand-in): nothing touches the process environment. First on "Compute
//! Engine" (the metadata server), then "on AKS" with a credential
//! configuration whose subject token file is rotated midway. Run it with
//! `cargo run --example platform_google`.

#[path = "support/mod.rs"]
mod support;

pub use support::platform::{claims, jwt, PlatformDir};

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use support::platform::{caller, rotate, unix_now};
use tower::ServiceBuilder;
use tower_bearer::oauth2::HttpClient;
use tower_bearer::platform::google::{ApplicationDefault, GoogleCredential, MetadataIdToken};
use tower_bearer::platform::Env;
use tower_bearer::BearerAuthLayer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const INSTANCE_ACCOUNT: &str = "vm-runner@demo-project.iam.gserviceaccount.com";
pub const FEDERATED_ACCOUNT: &str = "reporter@demo-project.iam.gserviceaccount.com";
pub const RUN_URL: &str = "https://billing-abc123-uc.a.run.app";
pub const POOL_AUDIENCE: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/aks/providers/cluster";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let google = Fixture::start().await;
    support::print_outcome(run(&google).await)
}

/// What the run observed.
#[derive(Debug)]
pub struct Outcome {
    /// What each chooser picked: on the VM, then on AKS.
    pub chosen: [GoogleCredential; 2],
    /// Who Cloud Storage saw, twice on the VM, then on AKS before and
    /// after the subject token's rotation.
    pub storage_callers: Vec<String>,
    /// What the Cloud Run service answered the ID token.
    pub cloud_run: String,
    /// Token fetches of the VM's cache and of the AKS cache.
    pub fetches: [u64; 2],
    /// The rotation (`n` claim) of each subject token the STS accepted,
    /// in order: never the tokens themselves.
    pub exchanged: Vec<u64>,
}

pub async fn run(google: &Fixture) -> Result<Outcome, BoxError> {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Leave `.http_client(...)` out in production: the default never goes
    // through a proxy to the metadata server and gives up connecting after 1 s.
    let plain = HttpClient::new(http.clone());

    // On a VM: nothing but the metadata server.
    let vm = google.env();
    let source = ApplicationDefault::builder()
        .scope(SCOPE)
        .env(vm.clone())
        .http_client(plain.clone())
        .build()?;
    let vm_choice = source.chosen();
    let layer = BearerAuthLayer::new(source);
    let vm_cache = layer.cache().clone();
    let storage = ServiceBuilder::new().layer(layer).service(http.clone());
    let mut storage_callers = Vec::new();
    for _ in 0..2 {
        storage_callers.push(caller(&storage, &google.url("/storage/v1/b?project=demo")).await?);
    }

    // Calling a Cloud Run service: an ID token for its URL.
    let id_token = MetadataIdToken::builder(RUN_URL)
        .env(vm)
        .http_client(plain.clone())
        .build()?;
    let run_service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(id_token))
        .service(http.clone());
    let cloud_run = caller(&run_service, &google.url("/run/billing")).await?;

    // On AKS: a credential configuration, the projected token it names.
    let aks = Aks::new(google)?;
    google.cluster_writes(&aks.token_file, 1)?;
    let source = ApplicationDefault::builder()
        .scope(SCOPE)
        .env(google.env().with(
            "GOOGLE_APPLICATION_CREDENTIALS",
            aks.config.to_string_lossy(),
        ))
        .http_client(plain)
        .build()?;
    let aks_choice = source.chosen();
    let layer = BearerAuthLayer::new(source);
    let aks_cache = layer.cache().clone();
    let storage = ServiceBuilder::new().layer(layer).service(http);
    storage_callers.push(caller(&storage, &google.url("/storage/v1/b?project=demo")).await?);
    // The kubelet rotates the projected token; Google revokes the tokens
    // bought with the old one. The 401 brings one new exchange, which reads
    // the file again.
    google.cluster_writes(&aks.token_file, 2)?;
    google.revoke_tokens();
    storage_callers.push(caller(&storage, &google.url("/storage/v1/b?project=demo")).await?);

    Ok(Outcome {
        chosen: [vm_choice, aks_choice],
        storage_callers,
        cloud_run,
        fetches: [vm_cache.stats().fetches, aks_cache.stats().fetches],
        exchanged: google
            .state()
            .exchanged
            .iter()
            .map(|t| claims(t)["n"].as_u64().unwrap_or(0))
            .collect(),
    })
}

/// An AKS pod's files: the projected token and the credential
/// configuration naming it; removed on drop.
pub struct Aks {
    _dir: PlatformDir,
    pub token_file: PathBuf,
    pub config: PathBuf,
}

impl Aks {
    pub fn new(google: &Fixture) -> std::io::Result<Self> {
        let dir = PlatformDir::new("gcp")?;
        let token_file = dir.path("token");
        let config = dir.path("credential-configuration.json");
        // As `gcloud iam workload-identity-pools create-cred-config` writes it.
        let configuration = google.credential_configuration(json!({"file": token_file}));
        std::fs::write(&config, configuration.to_string())?;
        Ok(Self {
            _dir: dir,
            token_file,
            config,
        })
    }
}

/// The projected token number `n` of the AKS pod.
pub fn projected_token(n: usize) -> String {
    jwt(json!({
        "iss": "https://oidc.prod-aks.azure.com/tenant/cluster/",
        "sub": "system:serviceaccount:reports:reporter",
        "exp": unix_now() + 3600,
        "n": n,
    }))
}

/// Unix seconds as RFC 3339 (`expireTime`).
fn rfc3339(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.250Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The stand-in for Google: metadata server, STS, IAM credentials, Cloud
/// Storage and a Cloud Run service, on one loopback port.
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
    pub metadata_requests: usize,
    pub identity_requests: usize,
    pub subject_requests: usize,
    pub sts_requests: usize,
    pub impersonations: usize,
    /// The subject tokens the STS accepted, in order.
    pub exchanged: Vec<String>,
    /// The metadata server's next answers, before any token (a test's
    /// failures: a 503, a 404).
    pub metadata_failures: VecDeque<Response<Full<Bytes>>>,
    /// The projected token the cluster vouches for now.
    valid_subject: String,
    /// Access tokens accepted by the APIs, and whom each is for.
    tokens: Vec<(String, String)>,
    /// Tokens the STS issued, which only impersonation accepts.
    sts_tokens: Vec<String>,
}

impl Fixture {
    pub async fn start() -> Self {
        Self(support::StandIn::serve(handle).await)
    }

    /// `GCE_METADATA_HOST` naming the stand-in, as an emulator sets it.
    pub fn env(&self) -> Env {
        Env::new().with(
            "GCE_METADATA_HOST",
            self.0.base().trim_start_matches("http://"),
        )
    }

    /// A credential configuration for the AKS pool with `credential_source`,
    /// impersonating the federated account, URLs on the stand-in.
    pub fn credential_configuration(&self, credential_source: Value) -> Value {
        json!({
            "type": "external_account",
            "audience": POOL_AUDIENCE,
            "subject_token_type": JWT_TYPE,
            "token_url": self.url("/v1/token"),
            "service_account_impersonation_url": self.url(&format!(
                "/v1/projects/-/serviceAccounts/{FEDERATED_ACCOUNT}:generateAccessToken"
            )),
            "credential_source": credential_source,
        })
    }

    /// Issues projected token `n` and writes it as the kubelet does: a new
    /// file renamed over the old one.
    pub fn cluster_writes(&self, file: &std::path::Path, n: usize) -> std::io::Result<()> {
        let token = projected_token(n);
        rotate(file, &token)?;
        self.state().valid_subject = token;
        Ok(())
    }

    pub fn revoke_tokens(&self) {
        self.state().tokens.clear();
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

/// The metadata server marks its answers, as Google's libraries check.
fn from_metadata(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert("metadata-flavor", http::HeaderValue::from_static("Google"));
    response
}

fn handle(state: &Mutex<State>, parts: Parts, body: Bytes) -> Response<Full<Bytes>> {
    let path = parts.uri.path().to_owned();
    let mut state = state.lock().unwrap();
    if let Some(rest) = path.strip_prefix("/computeMetadata/v1/instance/service-accounts/") {
        return from_metadata(metadata(&mut state, &parts, rest));
    }
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/subject") => subject(&mut state, &parts),
        (&Method::POST, "/v1/token") => sts(&mut state, &parts, &body),
        (&Method::POST, p) if p.starts_with("/v1/projects/-/serviceAccounts/") => {
            impersonate(&mut state, &parts, &body)
        }
        (&Method::GET, "/storage/v1/b") => {
            let caller = support::bearer_token(&parts)
                .and_then(|t| state.tokens.iter().find(|(token, _)| token == t));
            match caller {
                Some((_, who)) => support::json_response(StatusCode::OK, json!({"caller": who})),
                None => support::json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
                ),
            }
        }
        (&Method::GET, "/run/billing") => {
            // Cloud Run checks the ID token's audience (and its signature).
            match support::bearer_token(&parts).map(claims) {
                Some(c) if c["aud"] == RUN_URL && c["iss"] == "https://accounts.google.com" => {
                    support::json_response(StatusCode::OK, json!({"caller": c["email"]}))
                }
                _ => text(StatusCode::UNAUTHORIZED, "Unauthorized"),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `…/service-accounts/{account}/token` and `…/identity`.
fn metadata(state: &mut State, parts: &Parts, rest: &str) -> Response<Full<Bytes>> {
    // The documented protections: the header is required, and a request
    // that went through a proxy is refused.
    if support::header(parts, "metadata-flavor") != Some("Google")
        || parts.headers.contains_key("x-forwarded-for")
        || parts.method != Method::GET
    {
        return text(
            StatusCode::FORBIDDEN,
            "Missing required header: Metadata-Flavor",
        );
    }
    let Some((account, what)) = rest.split_once('/') else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    if account != "default" && account != INSTANCE_ACCOUNT {
        return text(StatusCode::NOT_FOUND, "service account not found");
    }
    let Some(query) = support::query_map(parts) else {
        return text(StatusCode::BAD_REQUEST, "non-unique query parameter");
    };
    match what {
        "token" => {
            state.metadata_requests += 1;
            if let Some(failure) = state.metadata_failures.pop_front() {
                return failure;
            }
            let granted = [SCOPE, CLOUD_PLATFORM];
            let scopes_ok = query
                .get("scopes")
                .is_none_or(|s| s.split(',').all(|scope| granted.contains(&scope)));
            if query.keys().any(|k| k != "scopes") || !scopes_ok {
                return text(StatusCode::BAD_REQUEST, "invalid scopes");
            }
            let token = format!("ya29.metadata-{}", state.metadata_requests);
            state.tokens.push((token.clone(), INSTANCE_ACCOUNT.into()));
            support::json_response(
                StatusCode::OK,
                json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
            )
        }
        "identity" => {
            state.identity_requests += 1;
            let audience = query.get("audience").filter(|a| !a.is_empty());
            let keys: Vec<&str> = query.keys().map(String::as_str).collect();
            let (Some(audience), ["audience", "format"], Some("full")) = (
                audience,
                keys.as_slice(),
                query.get("format").map(String::as_str),
            ) else {
                return text(StatusCode::BAD_REQUEST, "audience and format=full");
            };
            let now = unix_now();
            text(
                StatusCode::OK,
                &jwt(json!({
                    "aud": audience,
                    "azp": "104729384756102938475",
                    "email": INSTANCE_ACCOUNT,
                    "exp": now + 3600,
                    "google": {"compute_engine": {"project_id": "demo-project", "zone": "us-central1-a"}},
                    "iat": now,
                    "iss": "https://accounts.google.com",
                    "sub": "104729384756102938475",
                })),
            )
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// A URL credential source: the subject token as JSON, behind a header.
fn subject(state: &mut State, parts: &Parts) -> Response<Full<Bytes>> {
    state.subject_requests += 1;
    if support::header(parts, "metadata") != Some("True") {
        return support::bad_request("Required metadata header not specified");
    }
    support::json_response(
        StatusCode::OK,
        json!({"access_token": state.valid_subject, "token_type": "Bearer"}),
    )
}

/// Google's STS: RFC 8693 exactly, no client authentication.
fn sts(state: &mut State, parts: &Parts, body: &[u8]) -> Response<Full<Bytes>> {
    state.sts_requests += 1;
    if parts.headers.contains_key(http::header::AUTHORIZATION) {
        return support::bad_request("do not send the Authorization header");
    }
    let Some(fields) = support::form_map(body) else {
        return support::bad_request("a form body without repeated fields");
    };
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    let expected = [
        ("audience", POOL_AUDIENCE),
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        // Impersonation follows: the STS token needs cloud-platform only.
        ("scope", CLOUD_PLATFORM),
        ("subject_token_type", JWT_TYPE),
    ];
    if keys
        != [
            "audience",
            "grant_type",
            "requested_token_type",
            "scope",
            "subject_token",
            "subject_token_type",
        ]
        || expected.iter().any(|(k, v)| fields[*k] != *v)
    {
        return support::bad_request("unexpected token exchange parameters");
    }
    if fields["subject_token"] != state.valid_subject {
        return support::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The audience or signature of the subject token is not valid",
        );
    }
    state.exchanged.push(fields["subject_token"].clone());
    let token = format!("ya29.sts-{}", state.exchanged.len());
    state.sts_tokens.push(token.clone());
    support::json_response(
        StatusCode::OK,
        json!({
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": 3600,
        }),
    )
}

/// IAM credentials' `generateAccessToken`, with an STS token.
fn impersonate(state: &mut State, parts: &Parts, body: &[u8]) -> Response<Full<Bytes>> {
    state.impersonations += 1;
    let denied = |status: StatusCode, code: &str, message: &str| {
        support::json_response(
            status,
            json!({"error": {"code": status.as_u16(), "message": message, "status": code}}),
        )
    };
    let expected_path =
        format!("/v1/projects/-/serviceAccounts/{FEDERATED_ACCOUNT}:generateAccessToken");
    if parts.uri.path() != expected_path {
        return denied(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "unknown service account",
        );
    }
    if !support::bearer_token(parts).is_some_and(|t| state.sts_tokens.iter().any(|s| s == t)) {
        return denied(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "invalid credentials",
        );
    }
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let json_body = support::header(parts, "content-type") == Some("application/json");
    if !json_body || request != json!({"scope": [SCOPE], "lifetime": "3600s"}) {
        return denied(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "scope and lifetime",
        );
    }
    let token = format!("ya29.impersonated-{}", state.impersonations);
    state.tokens.push((token.clone(), FEDERATED_ACCOUNT.into()));
    let expires = unix_now() + 3600;
    support::json_response(
        StatusCode::OK,
        json!({"accessToken": token, "expireTime": rfc3339(expires)}),
    )
}
