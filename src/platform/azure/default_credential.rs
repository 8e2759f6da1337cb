//! `DefaultCredential`: Azure's credential chosen from the environment in
//! the order of the Azure SDKs' `DefaultAzureCredential`.

use std::fmt;
use std::path::PathBuf;

use super::managed_identity::{
    ManagedIdentity, ManagedIdentityId, ManagedIdentityKind, DEFAULT_IMDS_HOST,
};
use super::workload_identity::{entra_token_endpoint, WorkloadIdentity, DEFAULT_AUTHORITY_HOST};
use crate::error::TokenError;
use crate::oauth2::{ClientAuth, ClientCredentials};
use crate::platform::error::{SetupError, Skipped};
use crate::platform::settings::{chooser_setters, HttpSettings};
use crate::platform::Env;
use crate::secret::Secret;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// The chooser's name in errors.
const CHOOSER: &str = "Azure default credential";

/// The candidates' names in [`Skipped`] lists, in the chooser's order.
const ENVIRONMENT: &str = "environment";
const WORKLOAD_IDENTITY: &str = "workload identity";
const MANAGED_IDENTITY: &str = "managed identity";

/// The name of the client-secret credential in errors.
const CLIENT_SECRET: &str = "Azure client secret";

/// Which credential [`DefaultCredential`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AzureCredential {
    /// An application's client secret (`AZURE_CLIENT_SECRET`, with
    /// `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`), through
    /// [`ClientCredentials`](crate::oauth2::ClientCredentials).
    ClientSecret,
    /// A federated token file, through [`WorkloadIdentity`](super::WorkloadIdentity).
    WorkloadIdentity,
    /// A managed identity, through [`ManagedIdentity`](super::ManagedIdentity).
    ManagedIdentity(ManagedIdentityKind),
}

/// What the environment says to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    ClientSecret {
        authority: String,
        tenant: String,
        client_id: String,
        secret: Secret,
    },
    WorkloadIdentity {
        authority: String,
        tenant: String,
        client_id: String,
        file: PathBuf,
    },
    AppService {
        endpoint: String,
        header: Secret,
        client_id: Option<String>,
    },
    Imds {
        host: String,
        client_id: Option<String>,
    },
}

/// The Azure SDKs' order: an application secret in the environment, then
/// workload identity, then managed identity (App Service's endpoint when
/// its variables are set, else IMDS). Each candidate that does not apply
/// is listed with the reason; a managed-identity environment this crate
/// does not speak (Azure Arc, Service Fabric, Cloud Shell) stops the
/// search, since IMDS is not there either.
pub(crate) fn choose(env: &Env) -> Result<(Decision, Vec<Skipped>), Vec<Skipped>> {
    let mut skipped = Vec::new();
    let authority = env
        .var("AZURE_AUTHORITY_HOST")
        .unwrap_or(DEFAULT_AUTHORITY_HOST)
        .to_owned();
    let tenant = env.var("AZURE_TENANT_ID");
    let client_id = env.var("AZURE_CLIENT_ID");
    let unset = |set: &str, needed: &[&str]| {
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|name| env.var(name).is_none())
            .collect();
        let verb = if missing.len() > 1 { "are" } else { "is" };
        format!("{set} is set but {} {verb} not", missing.join(" and "))
    };

    match (env.var("AZURE_CLIENT_SECRET"), tenant, client_id) {
        (Some(secret), Some(tenant), Some(client_id)) => {
            let decision = Decision::ClientSecret {
                authority,
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                secret: Secret::new(secret),
            };
            return Ok((decision, skipped));
        }
        (Some(_), ..) => skipped.push(Skipped::new(
            ENVIRONMENT,
            unset(
                "AZURE_CLIENT_SECRET",
                &["AZURE_TENANT_ID", "AZURE_CLIENT_ID"],
            ),
        )),
        (None, ..) if env.var("AZURE_CLIENT_CERTIFICATE_PATH").is_some() => {
            skipped.push(Skipped::new(
                ENVIRONMENT,
                "AZURE_CLIENT_CERTIFICATE_PATH is set: certificates are not read here \
                 (use oauth2's private_key_jwt with the certificate's key)",
            ));
        }
        (None, ..) => skipped.push(Skipped::new(ENVIRONMENT, "AZURE_CLIENT_SECRET is not set")),
    }

    match (env.var("AZURE_FEDERATED_TOKEN_FILE"), tenant, client_id) {
        (Some(file), Some(tenant), Some(client_id)) => {
            let decision = Decision::WorkloadIdentity {
                authority,
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                file: PathBuf::from(file),
            };
            return Ok((decision, skipped));
        }
        (Some(_), ..) => skipped.push(Skipped::new(
            WORKLOAD_IDENTITY,
            unset(
                "AZURE_FEDERATED_TOKEN_FILE",
                &["AZURE_TENANT_ID", "AZURE_CLIENT_ID"],
            ),
        )),
        (None, ..) => skipped.push(Skipped::new(
            WORKLOAD_IDENTITY,
            "AZURE_FEDERATED_TOKEN_FILE is not set",
        )),
    }

    // A user-assigned identity is named by AZURE_CLIENT_ID, as in the SDKs.
    let client_id = client_id.map(str::to_owned);
    let unsupported = |what: &str| {
        let mut skipped = skipped.clone();
        skipped.push(Skipped::new(
            MANAGED_IDENTITY,
            format!("{what} is not supported"),
        ));
        skipped
    };
    match env.var("IDENTITY_ENDPOINT") {
        Some(_) if env.var("IMDS_ENDPOINT").is_some() => Err(unsupported(
            "Azure Arc (IDENTITY_ENDPOINT with IMDS_ENDPOINT)",
        )),
        Some(_) if env.var("IDENTITY_SERVER_THUMBPRINT").is_some() => Err(unsupported(
            "Service Fabric (IDENTITY_ENDPOINT with IDENTITY_SERVER_THUMBPRINT)",
        )),
        Some(endpoint) => match env.var("IDENTITY_HEADER") {
            Some(header) => Ok((
                Decision::AppService {
                    endpoint: endpoint.to_owned(),
                    header: Secret::new(header),
                    client_id,
                },
                skipped,
            )),
            None => {
                skipped.push(Skipped::new(
                    MANAGED_IDENTITY,
                    "IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not",
                ));
                Err(skipped)
            }
        },
        None if env.var("MSI_ENDPOINT").is_some() => Err(unsupported(
            "MSI_ENDPOINT (Cloud Shell, or App Service's 2017 protocol)",
        )),
        None => Ok((
            Decision::Imds {
                host: env
                    .var("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                    .unwrap_or(DEFAULT_IMDS_HOST)
                    .to_owned(),
                client_id,
            },
            skipped,
        )),
    }
}

/// Access tokens from the Azure credential the environment calls for,
/// chosen in the order of the Azure SDKs' `DefaultAzureCredential` (less
/// its developer tools):
///
/// 1. **environment**: an application secret (`AZURE_TENANT_ID`,
///    `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), client credentials at
///    Entra ID;
/// 2. **workload identity**: `AZURE_FEDERATED_TOKEN_FILE` with
///    `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`
///    ([`WorkloadIdentity`](super::WorkloadIdentity));
/// 3. **managed identity** ([`ManagedIdentity`](super::ManagedIdentity)): App
///    Service's endpoint where `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are
///    set, else IMDS; `AZURE_CLIENT_ID`, if set, names a user-assigned
///    identity.
///
/// `AZURE_AUTHORITY_HOST` moves Entra ID (a sovereign cloud). The choice is
/// made once, by [`build`](DefaultCredentialBuilder::build), from the
/// [`Env`] (the process's unless one is given). It fails with
/// [`SetupError::NothingApplies`], listing every candidate and why it did
/// not apply, where a managed-identity platform this crate does not speak
/// is detected (Azure Arc, Service Fabric, Cloud Shell) or App Service's
/// variables are half set. IMDS's absence shows on the first fetch, within
/// a second off Azure, as a [`PlatformError`](crate::platform::PlatformError)
/// that lists the candidates passed over.
///
/// ```no_run
/// use tower_bearer::platform::azure::DefaultCredential;
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), tower_bearer::platform::SetupError> {
/// let source = DefaultCredential::builder("https://vault.azure.net/.default").build()?;
/// println!("using {:?}", source.chosen());
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
pub struct DefaultCredential {
    chosen: Chosen,
    skipped: Vec<Skipped>,
}

enum Chosen {
    ClientSecret(ClientCredentials),
    Workload(WorkloadIdentity),
    Managed(ManagedIdentity),
}

impl DefaultCredential {
    /// Starts configuring the chooser for `scope` (Entra's
    /// `{resource}/.default`).
    pub fn builder(scope: impl Into<String>) -> DefaultCredentialBuilder {
        DefaultCredentialBuilder {
            scope: scope.into(),
            env: None,
            http: HttpSettings::default(),
            timeout_set: false,
        }
    }

    /// The credential chosen.
    pub fn chosen(&self) -> AzureCredential {
        match &self.chosen {
            Chosen::ClientSecret(_) => AzureCredential::ClientSecret,
            Chosen::Workload(_) => AzureCredential::WorkloadIdentity,
            Chosen::Managed(source) => AzureCredential::ManagedIdentity(source.kind()),
        }
    }

    /// The candidates passed over before it, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }
}

impl TokenSource for DefaultCredential {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        match &self.chosen {
            Chosen::ClientSecret(source) => source.fetch().await,
            Chosen::Workload(source) => source.fetch().await,
            Chosen::Managed(source) => source.fetch().await,
        }
    }
}

impl fmt::Debug for DefaultCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("DefaultCredential");
        match &self.chosen {
            Chosen::ClientSecret(source) => d.field("source", source),
            Chosen::Workload(source) => d.field("source", source),
            Chosen::Managed(source) => d.field("source", source),
        };
        d.field("skipped", &self.skipped).finish()
    }
}

/// Builds a [`DefaultCredential`]; see [`DefaultCredential::builder`].
///
/// ```
/// use tower_bearer::platform::azure::{AzureCredential, DefaultCredential, ManagedIdentityKind};
/// use tower_bearer::platform::{Env, SetupError};
///
/// // Nothing set: IMDS, after the other two were passed over.
/// let source = DefaultCredential::builder("https://vault.azure.net/.default")
///     .env(Env::new())
///     .build()
///     .unwrap();
/// assert_eq!(source.chosen(), AzureCredential::ManagedIdentity(ManagedIdentityKind::Imds));
/// assert_eq!(source.skipped().len(), 2);
///
/// // Azure Arc is detected, and not spoken.
/// let arc = Env::new()
///     .with("IDENTITY_ENDPOINT", "http://localhost:40342/metadata/identity/oauth2/token")
///     .with("IMDS_ENDPOINT", "http://localhost:40342");
/// let err = DefaultCredential::builder("https://vault.azure.net/.default")
///     .env(arc)
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, SetupError::NothingApplies { ref skipped, .. } if skipped.len() == 3));
/// ```
#[must_use]
pub struct DefaultCredentialBuilder {
    scope: String,
    env: Option<Env>,
    http: HttpSettings,
    timeout_set: bool,
}

impl DefaultCredentialBuilder {
    chooser_setters!();

    /// Chooses and builds the source; see [`DefaultCredential`].
    pub fn build(self) -> Result<DefaultCredential, SetupError> {
        let env = self.env.clone().unwrap_or_else(Env::from_process);
        let (decision, skipped) = choose(&env).map_err(|skipped| SetupError::NothingApplies {
            chooser: CHOOSER,
            skipped,
        })?;
        let chosen = match decision {
            Decision::ClientSecret {
                authority,
                tenant,
                client_id,
                secret,
            } => {
                let mut endpoint = entra_token_endpoint(CLIENT_SECRET, &authority, &tenant)?
                    .client_id(client_id)
                    .client_secret(secret)
                    // Entra takes the secret in the body, as MSAL sends it.
                    .client_auth(ClientAuth::RequestBody)
                    .http_client(self.http.remote_client()?);
                if self.timeout_set {
                    endpoint = endpoint.timeout(self.http.timeout);
                }
                Chosen::ClientSecret(ClientCredentials::new(endpoint.build()?).scope(self.scope))
            }
            Decision::WorkloadIdentity {
                authority,
                tenant,
                client_id,
                file,
            } => {
                let mut builder = WorkloadIdentity::builder(self.scope)
                    .env(env)
                    .authority_host(authority)
                    .tenant_id(tenant)
                    .client_id(client_id)
                    .token_file(file);
                if let Some(client) = &self.http.client {
                    builder = builder.http_client(client.clone());
                }
                if self.timeout_set {
                    builder = builder.timeout(self.http.timeout);
                }
                Chosen::Workload(builder.build()?)
            }
            Decision::AppService {
                endpoint,
                header,
                client_id,
            } => Chosen::Managed(
                self.managed(client_id)
                    .app_service(endpoint, header)
                    .build_after(&skipped)?,
            ),
            Decision::Imds { host, client_id } => {
                Chosen::Managed(self.managed(client_id).imds(host).build_after(&skipped)?)
            }
        };
        Ok(DefaultCredential { chosen, skipped })
    }

    fn managed(&self, client_id: Option<String>) -> super::ManagedIdentityBuilder {
        let mut builder = ManagedIdentity::builder(self.scope.clone())
            .timeout(self.http.timeout)
            .connect_timeout(self.http.connect_timeout);
        if let Some(id) = client_id {
            builder = builder.user_assigned(ManagedIdentityId::ClientId(id));
        }
        if let Some(client) = &self.http.client {
            builder = builder.http_client(client.clone());
        }
        builder
    }
}

impl fmt::Debug for DefaultCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultCredentialBuilder")
            .field("scope", &self.scope)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKLOAD: [(&str, &str); 3] = [
        ("AZURE_CLIENT_ID", "cid"),
        ("AZURE_TENANT_ID", "tid"),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            "/var/run/secrets/azure/tokens/azure-identity-token",
        ),
    ];

    type Vars = Vec<(&'static str, &'static str)>;

    fn env(vars: &[(&str, &str)]) -> Env {
        vars.iter().copied().collect()
    }

    fn reasons(skipped: &[Skipped]) -> Vec<String> {
        skipped.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_sdks_order_with_every_reason() {
        let imds = |client_id: Option<&str>| Decision::Imds {
            host: DEFAULT_IMDS_HOST.into(),
            client_id: client_id.map(Into::into),
        };
        // (environment, decision, reasons of what was passed over)
        let table: Vec<(Vars, Decision, Vec<&str>)> = vec![
            (
                vec![],
                imds(None),
                vec![
                    "environment: AZURE_CLIENT_SECRET is not set",
                    "workload identity: AZURE_FEDERATED_TOKEN_FILE is not set",
                ],
            ),
            (
                vec![
                    ("AZURE_CLIENT_SECRET", "s"),
                    ("AZURE_TENANT_ID", "tid"),
                    ("AZURE_CLIENT_ID", "cid"),
                    ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
                ],
                Decision::ClientSecret {
                    authority: DEFAULT_AUTHORITY_HOST.into(),
                    tenant: "tid".into(),
                    client_id: "cid".into(),
                    secret: Secret::new("s"),
                },
                vec![],
            ),
            (
                WORKLOAD.to_vec(),
                Decision::WorkloadIdentity {
                    authority: DEFAULT_AUTHORITY_HOST.into(),
                    tenant: "tid".into(),
                    client_id: "cid".into(),
                    file: WORKLOAD[2].1.into(),
                },
                vec!["environment: AZURE_CLIENT_SECRET is not set"],
            ),
            (
                [WORKLOAD.as_slice(), &[("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/")]].concat(),
                Decision::WorkloadIdentity {
                    authority: "https://login.microsoftonline.us/".into(),
                    tenant: "tid".into(),
                    client_id: "cid".into(),
                    file: WORKLOAD[2].1.into(),
                },
                vec!["environment: AZURE_CLIENT_SECRET is not set"],
            ),
            (
                vec![("AZURE_FEDERATED_TOKEN_FILE", "/f"), ("AZURE_CLIENT_ID", "cid")],
                imds(Some("cid")),
                vec![
                    "environment: AZURE_CLIENT_SECRET is not set",
                    "workload identity: AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID is not",
                ],
            ),
            (
                vec![("AZURE_CLIENT_SECRET", "s"), ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")],
                Decision::Imds { host: "http://127.0.0.1:9".into(), client_id: None },
                vec![
                    "environment: AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID and AZURE_CLIENT_ID are not",
                    "workload identity: AZURE_FEDERATED_TOKEN_FILE is not set",
                ],
            ),
            (
                vec![("AZURE_CLIENT_CERTIFICATE_PATH", "/c.pem"), ("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/MSI/token/"), ("IDENTITY_HEADER", "h")],
                Decision::AppService {
                    endpoint: "http://127.0.0.1:41741/MSI/token/".into(),
                    header: Secret::new("h"),
                    client_id: None,
                },
                vec![
                    "environment: AZURE_CLIENT_CERTIFICATE_PATH is set: certificates are not read here (use oauth2's private_key_jwt with the certificate's key)",
                    "workload identity: AZURE_FEDERATED_TOKEN_FILE is not set",
                ],
            ),
        ];
        for (vars, decision, skipped) in table {
            let (got, got_skipped) =
                choose(&env(&vars)).unwrap_or_else(|s| panic!("{vars:?}: {s:?}"));
            assert_eq!(got, decision, "{vars:?}");
            assert_eq!(reasons(&got_skipped), skipped, "{vars:?}");
        }
    }

    #[test]
    fn managed_identity_platforms_not_spoken_stop_the_search() {
        for (vars, last) in [
            (
                vec![("IDENTITY_ENDPOINT", "http://localhost:40342/x"), ("IMDS_ENDPOINT", "http://localhost:40342")],
                "managed identity: Azure Arc (IDENTITY_ENDPOINT with IMDS_ENDPOINT) is not supported",
            ),
            (
                vec![("IDENTITY_ENDPOINT", "https://10.0.0.4:2377/x"), ("IDENTITY_HEADER", "h"), ("IDENTITY_SERVER_THUMBPRINT", "ab")],
                "managed identity: Service Fabric (IDENTITY_ENDPOINT with IDENTITY_SERVER_THUMBPRINT) is not supported",
            ),
            (
                vec![("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/MSI/token/")],
                "managed identity: IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not",
            ),
            (
                vec![("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")],
                "managed identity: MSI_ENDPOINT (Cloud Shell, or App Service's 2017 protocol) is not supported",
            ),
        ] {
            let skipped = choose(&env(&vars)).unwrap_err();
            assert_eq!(reasons(&skipped).len(), 3, "{vars:?}");
            assert_eq!(reasons(&skipped)[2], last, "{vars:?}");
        }
    }
}
