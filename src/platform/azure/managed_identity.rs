//! `ManagedIdentity`: Azure's managed identity, from IMDS on VMs and scale
//! sets, or from the local token service of App Service and Functions.

use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Request, Uri};
use http_body_util::Full;

use crate::error::TokenError;
use crate::platform::error::{SetupError, Skipped, StatusPolicy};
use crate::platform::settings::{local_http_setters, HttpSettings};
use crate::platform::transport::Endpoint;
use crate::platform::Env;
use crate::secret::Secret;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// IMDS's documented address.
pub(crate) const DEFAULT_IMDS_HOST: &str = "http://169.254.169.254";

/// The path of IMDS's token endpoint.
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";

/// The names in errors and logs.
pub(crate) const IMDS: &str = "Azure IMDS";
pub(crate) const APP_SERVICE: &str = "Azure App Service managed identity";

/// Which user-assigned identity to ask for; without one, the
/// system-assigned identity is used.
///
/// ```
/// use tower_bearer::platform::azure::{ManagedIdentity, ManagedIdentityId};
/// use tower_bearer::platform::Env;
///
/// let source = ManagedIdentity::builder("https://vault.azure.net/.default")
///     .user_assigned(ManagedIdentityId::ClientId("6a1c0e2b-0000-4000-8000-000000000001".into()))
///     .env(Env::new())
///     .build()
///     .unwrap();
/// # let _ = source;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedIdentityId {
    /// Its client (application) id: `client_id` on both endpoints.
    ClientId(String),
    /// Its object (principal) id: `object_id` on IMDS, `principal_id` on
    /// App Service.
    ObjectId(String),
    /// Its Azure resource id
    /// (`/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/…`):
    /// `msi_res_id` on IMDS, `mi_res_id` on App Service.
    ResourceId(String),
}

impl ManagedIdentityId {
    /// The query parameter naming it on `kind`'s endpoint.
    fn param(&self, kind: ManagedIdentityKind) -> (&'static str, &str) {
        match (self, kind) {
            (ManagedIdentityId::ClientId(id), _) => ("client_id", id),
            (ManagedIdentityId::ObjectId(id), ManagedIdentityKind::Imds) => ("object_id", id),
            (ManagedIdentityId::ObjectId(id), ManagedIdentityKind::AppService) => {
                ("principal_id", id)
            }
            (ManagedIdentityId::ResourceId(id), ManagedIdentityKind::Imds) => ("msi_res_id", id),
            (ManagedIdentityId::ResourceId(id), ManagedIdentityKind::AppService) => {
                ("mi_res_id", id)
            }
        }
    }
}

/// Which endpoint a [`ManagedIdentity`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedIdentityKind {
    /// The Instance Metadata Service of VMs and scale sets (AKS nodes too).
    Imds,
    /// The local token service of App Service, Functions and Container
    /// Apps (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`).
    AppService,
}

/// Access tokens of an Azure managed identity, for one resource.
///
/// On a VM or scale set, from IMDS: `GET
/// http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
/// with `Metadata: true` (the host can be moved with
/// `AZURE_POD_IDENTITY_AUTHORITY_HOST`, as the Azure SDKs allow). On App
/// Service, Functions and Container Apps, from the local token service:
/// `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=…` with
/// `X-IDENTITY-HEADER: $IDENTITY_HEADER`. A user-assigned identity is named
/// by a [`ManagedIdentityId`]. Both answer `{"access_token", "expires_on",
/// "resource", "token_type"}` (IMDS adds `"expires_in"`), numbers as
/// strings; the lifetime is `expires_in` if sent, else `expires_on`.
///
/// The resource is the scope given with its `/.default` dropped, as the
/// Azure SDKs do: `https://vault.azure.net/.default` asks for
/// `resource=https://vault.azure.net`.
///
/// IMDS's documented failures are transient: `429` and `5xx` under load
/// (`Retry-After` kept; `429` and `503` mark the endpoint overloaded), and
/// `404` and `410` while it updates or a new identity is assigned. Off
/// Azure the source fails fast: at once when the connection is refused,
/// after the connect timeout (1 s unless set) when packets are dropped,
/// after the timeout (5 s unless set) when nothing answers.
///
/// ```no_run
/// use tower_bearer::platform::azure::ManagedIdentity;
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), tower_bearer::platform::SetupError> {
/// // IMDS on a VM, App Service's endpoint where IDENTITY_ENDPOINT is set.
/// let source = ManagedIdentity::builder("https://vault.azure.net/.default").build()?;
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ManagedIdentity {
    kind: ManagedIdentityKind,
    uri: Uri,
    /// App Service's `IDENTITY_HEADER`.
    header: Option<Secret>,
    endpoint: Endpoint,
}

impl ManagedIdentity {
    /// Starts configuring the source of tokens for `scope` (a resource's
    /// `…/.default` scope, or the resource URI itself).
    pub fn builder(scope: impl Into<String>) -> ManagedIdentityBuilder {
        ManagedIdentityBuilder {
            scope: scope.into(),
            identity: None,
            env: None,
            target: None,
            http: HttpSettings::default(),
        }
    }

    /// The endpoint asked.
    pub fn kind(&self) -> ManagedIdentityKind {
        self.kind
    }
}

impl TokenSource for ManagedIdentity {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let mut request = Request::new(Full::<Bytes>::default());
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        let sent: Vec<&str> = match &self.header {
            None => {
                headers.insert("metadata", HeaderValue::from_static("true"));
                Vec::new()
            }
            Some(secret) => {
                let mut value = HeaderValue::try_from(secret.expose())
                    .expect("checked when the source was built");
                value.set_sensitive(true);
                headers.insert("x-identity-header", value);
                vec![secret.expose()]
            }
        };
        let answer = self.endpoint.send(request, &sent).await?;
        self.endpoint.bearer_token(&answer)
    }
}

impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentity")
            .field("kind", &self.kind)
            .field("url", &crate::redact::url(&self.uri.to_string()))
            .field("header", &self.header)
            .finish()
    }
}

/// Where a [`ManagedIdentityBuilder`] was told to ask.
#[derive(Clone)]
enum Target {
    Imds(String),
    AppService { endpoint: String, header: Secret },
}

/// Builds a [`ManagedIdentity`]; see [`ManagedIdentity::builder`].
///
/// ```
/// use tower_bearer::platform::azure::{ManagedIdentity, ManagedIdentityKind};
/// use tower_bearer::platform::Env;
///
/// // The environment App Service gives an app.
/// let env = Env::new()
///     .with("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/MSI/token/")
///     .with("IDENTITY_HEADER", "853b9a84-5bfa-4b22-a3f3-0b9a43d9ad8a");
/// let source = ManagedIdentity::builder("https://vault.azure.net/.default")
///     .env(env)
///     .build()
///     .unwrap();
/// assert_eq!(source.kind(), ManagedIdentityKind::AppService);
/// assert!(!format!("{source:?}").contains("853b9a84"));
///
/// // Nowhere else: IMDS.
/// let source = ManagedIdentity::builder("https://vault.azure.net/.default")
///     .env(Env::new())
///     .build()
///     .unwrap();
/// assert_eq!(source.kind(), ManagedIdentityKind::Imds);
/// ```
#[must_use]
pub struct ManagedIdentityBuilder {
    scope: String,
    identity: Option<ManagedIdentityId>,
    env: Option<Env>,
    target: Option<Target>,
    http: HttpSettings,
}

impl ManagedIdentityBuilder {
    local_http_setters!();

    /// A user-assigned identity. Defaults to none: the system-assigned
    /// identity.
    pub fn user_assigned(mut self, identity: ManagedIdentityId) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The environment that says where the endpoint is: App Service's when
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, else IMDS, at
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST` if set. Defaults to the
    /// process's, read by [`build`](Self::build).
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// Asks IMDS at `host` (`http://host[:port]`), whatever the environment
    /// says.
    pub fn imds(mut self, host: impl Into<String>) -> Self {
        self.target = Some(Target::Imds(host.into()));
        self
    }

    /// Asks App Service's token service at `endpoint` with `header` (its
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`), whatever the environment
    /// says.
    pub fn app_service(mut self, endpoint: impl Into<String>, header: impl Into<Secret>) -> Self {
        self.target = Some(Target::AppService {
            endpoint: endpoint.into(),
            header: header.into(),
        });
        self
    }

    /// Builds the source. Fails for an endpoint URL or header that cannot
    /// be used, and without an HTTP client.
    pub fn build(self) -> Result<ManagedIdentity, SetupError> {
        self.build_after(&[])
    }

    /// Builds the source chosen after a chooser passed over `skipped`.
    pub(crate) fn build_after(self, skipped: &[Skipped]) -> Result<ManagedIdentity, SetupError> {
        let target = match self.target {
            Some(target) => target,
            None => target_in(&self.env.unwrap_or_else(Env::from_process)),
        };
        let resource = self
            .scope
            .strip_suffix("/.default")
            .unwrap_or(&self.scope)
            .to_owned();
        let (kind, name, base, api_version, header) = match target {
            Target::Imds(host) => (
                ManagedIdentityKind::Imds,
                IMDS,
                format!("{}{IMDS_PATH}", host.trim_end_matches('/')),
                "2018-02-01",
                None,
            ),
            Target::AppService { endpoint, header } => {
                if HeaderValue::try_from(header.expose()).is_err() {
                    return Err(SetupError::source(
                        APP_SERVICE,
                        "IDENTITY_HEADER cannot go into a header",
                    ));
                }
                (
                    ManagedIdentityKind::AppService,
                    APP_SERVICE,
                    endpoint,
                    "2019-08-01",
                    Some(header),
                )
            }
        };
        let mut query = vec![("api-version", api_version), ("resource", &resource)];
        if let Some(identity) = &self.identity {
            query.push(identity.param(kind));
        }
        let query = serde_urlencoded::to_string(&query).expect("string pairs encode");
        let separator = if base.contains('?') { '&' } else { '?' };
        let uri: Uri = format!("{base}{separator}{query}")
            .parse()
            .ok()
            .filter(|uri: &Uri| matches!(uri.scheme_str(), Some("http" | "https")))
            .ok_or_else(|| {
                SetupError::source(
                    name,
                    format!("{} is not an http URL", crate::redact::url(&base)),
                )
            })?;
        let policy = match kind {
            ManagedIdentityKind::Imds => StatusPolicy::Imds,
            ManagedIdentityKind::AppService => StatusPolicy::Plain,
        };
        let endpoint = Endpoint::new(name, self.http.local_client()?, self.http.timeout, policy)
            .passed_over(skipped);
        Ok(ManagedIdentity {
            kind,
            uri,
            header,
            endpoint,
        })
    }
}

/// The endpoint the environment names: App Service's when both of its
/// variables are set, IMDS otherwise.
fn target_in(env: &Env) -> Target {
    match (env.var("IDENTITY_ENDPOINT"), env.var("IDENTITY_HEADER")) {
        (Some(endpoint), Some(header)) => Target::AppService {
            endpoint: endpoint.to_owned(),
            header: Secret::new(header),
        },
        _ => Target::Imds(
            env.var("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                .unwrap_or(DEFAULT_IMDS_HOST)
                .to_owned(),
        ),
    }
}

impl fmt::Debug for ManagedIdentityBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityBuilder")
            .field("scope", &self.scope)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}
