//! `DefaultCredential`: Azure's credential chosen from the environment in
//! the order of the Azure SDKs' `DefaultAzureCredential`.

use std::fmt;

use super::credential_choice::{choose, Decision};
use super::managed_identity::{ManagedIdentity, ManagedIdentityId, ManagedIdentityKind};
use super::workload_identity::{entra_token_endpoint, WorkloadIdentity};
use crate::error::TokenError;
use crate::oauth2::{ClientAuth, ClientCredentials};
use crate::platform::error::{SetupError, Skipped};
use crate::platform::settings::{chooser_setters, HttpSettings};
use crate::platform::Env;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// The chooser's name in errors.
const CHOOSER: &str = "Azure default credential";

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
