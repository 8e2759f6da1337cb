//! `WorkloadIdentity`: Entra ID tokens for a federated credential, the
//! projected token of AKS workload identity (or any token Entra trusts)
//! sent as the client assertion.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::TokenError;
use crate::oauth2::{ClientAuth, HttpClient, SecurityToken, TokenEndpoint, TokenType};
use crate::platform::error::SetupError;
use crate::platform::settings::HttpSettings;
use crate::platform::Env;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// The name in errors.
pub(crate) const NAME: &str = "Azure workload identity";

/// Entra ID's authority unless `AZURE_AUTHORITY_HOST` says otherwise (a
/// sovereign cloud).
pub(crate) const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Entra ID access tokens for an application that trusts a federated
/// credential: AKS workload identity (the projected service-account token
/// in `AZURE_FEDERATED_TOKEN_FILE`), or any token Entra is set up to trust
/// (a GitHub Actions OIDC token, through
/// [`assertion`](WorkloadIdentityBuilder::assertion)).
///
/// Each fetch reads the assertion again (the kubelet rotates the file) and
/// sends `POST {authority}/{tenant}/oauth2/v2.0/token` with
/// `grant_type=client_credentials`, `client_id`, `scope`,
/// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
/// and `client_assertion`; the answer's `expires_in` sets the lifetime.
/// Entra's errors are [`OAuth2Error`](crate::oauth2::OAuth2Error)s (an
/// `AADSTS…` description), the assertion never shown.
///
/// ```no_run
/// use tower_bearer::platform::azure::WorkloadIdentity;
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), tower_bearer::platform::SetupError> {
/// // In an AKS pod labelled azure.workload.identity/use: "true".
/// let source = WorkloadIdentity::builder("https://vault.azure.net/.default").build()?;
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
pub struct WorkloadIdentity {
    endpoint: TokenEndpoint,
    assertion: SecurityToken,
    scope: String,
}

impl WorkloadIdentity {
    /// Starts configuring the source of tokens for `scope` (Entra's
    /// `{resource}/.default`).
    pub fn builder(scope: impl Into<String>) -> WorkloadIdentityBuilder {
        WorkloadIdentityBuilder {
            scope: scope.into(),
            env: None,
            tenant_id: None,
            client_id: None,
            assertion: None,
            authority_host: None,
            http: HttpSettings::default(),
            timeout_set: false,
        }
    }

    /// The token endpoint asked.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }
}

impl TokenSource for WorkloadIdentity {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let assertion = self.assertion.value().await?;
        let response = self
            .endpoint
            .request(&[
                ("grant_type", "client_credentials"),
                ("scope", &self.scope),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.expose()),
            ])
            .await?;
        Ok(response.to_access_token())
    }
}

impl fmt::Debug for WorkloadIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadIdentity")
            .field("endpoint", &self.endpoint)
            .field("assertion", &self.assertion)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Builds a [`WorkloadIdentity`]; see [`WorkloadIdentity::builder`].
///
/// ```
/// use tower_bearer::platform::azure::WorkloadIdentity;
/// use tower_bearer::platform::Env;
///
/// // What the AKS workload identity webhook injects into a pod.
/// let env = Env::new()
///     .with("AZURE_CLIENT_ID", "6a1c0e2b-0000-4000-8000-000000000001")
///     .with("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
///     .with("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token")
///     .with("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/");
/// let source = WorkloadIdentity::builder("https://vault.azure.net/.default")
///     .env(env)
///     .build()
///     .unwrap();
/// assert_eq!(
///     source.endpoint().url(),
///     "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
/// );
/// ```
#[must_use]
pub struct WorkloadIdentityBuilder {
    scope: String,
    env: Option<Env>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    assertion: Option<SecurityToken>,
    authority_host: Option<String>,
    http: HttpSettings,
    timeout_set: bool,
}

impl WorkloadIdentityBuilder {
    /// The environment to read `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE` and `AZURE_AUTHORITY_HOST` from, for
    /// what is not set on the builder. Defaults to the process's, read by
    /// [`build`](Self::build).
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// The Entra tenant. Defaults to `AZURE_TENANT_ID`.
    pub fn tenant_id(mut self, tenant: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant.into());
        self
    }

    /// The application's client id. Defaults to `AZURE_CLIENT_ID`.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The file holding the federated token, read again for every token
    /// request. Defaults to `AZURE_FEDERATED_TOKEN_FILE`.
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.assertion = Some(SecurityToken::from_file(path, TokenType::JWT));
        self
    }

    /// The client assertion from anywhere: a file, a value, or another
    /// source asked for every token request (a GitHub Actions OIDC token:
    /// `SecurityToken::from_source(ActionsIdToken, TokenType::JWT)`).
    /// Defaults to the file in `AZURE_FEDERATED_TOKEN_FILE`.
    pub fn assertion(mut self, assertion: SecurityToken) -> Self {
        self.assertion = Some(assertion);
        self
    }

    /// Entra's authority host. Defaults to `AZURE_AUTHORITY_HOST`, else
    /// `https://login.microsoftonline.com/`.
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = Some(host.into());
        self
    }

    /// The HTTP client to send through. Defaults to the default HTTPS
    /// client (feature `rustls`; required without it).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http.client = Some(client);
        self
    }

    /// How long one token request may take. Defaults to the token
    /// endpoint's 10 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http.timeout = timeout;
        self.timeout_set = true;
        self
    }

    /// Builds the source. Fails when the tenant, the client id or the
    /// assertion is neither set nor in the environment, for a tenant that
    /// is not an id or a domain, and for an authority that is not
    /// `https://` (plain `http://` only to loopback).
    pub fn build(self) -> Result<WorkloadIdentity, SetupError> {
        let env = self.env.clone().unwrap_or_else(Env::from_process);
        let missing = |name: &str| SetupError::source(NAME, format!("{name} is not set"));
        let tenant = match self.tenant_id {
            Some(tenant) => tenant,
            None => env
                .var("AZURE_TENANT_ID")
                .ok_or_else(|| missing("AZURE_TENANT_ID"))?
                .to_owned(),
        };
        let client_id = match self.client_id {
            Some(id) => id,
            None => env
                .var("AZURE_CLIENT_ID")
                .ok_or_else(|| missing("AZURE_CLIENT_ID"))?
                .to_owned(),
        };
        let assertion = match self.assertion {
            Some(assertion) => assertion,
            None => SecurityToken::from_file(
                env.var("AZURE_FEDERATED_TOKEN_FILE")
                    .ok_or_else(|| missing("AZURE_FEDERATED_TOKEN_FILE"))?,
                TokenType::JWT,
            ),
        };
        let authority = self
            .authority_host
            .as_deref()
            .or(env.var("AZURE_AUTHORITY_HOST"))
            .unwrap_or(DEFAULT_AUTHORITY_HOST);
        let endpoint = entra_token_endpoint(NAME, authority, &tenant)?
            .client_id(client_id)
            .client_auth(ClientAuth::None)
            .http_client(self.http.remote_client()?);
        let endpoint = if self.timeout_set {
            endpoint.timeout(self.http.timeout)
        } else {
            endpoint
        };
        Ok(WorkloadIdentity {
            endpoint: endpoint.build()?,
            assertion,
            scope: self.scope,
        })
    }
}

/// The builder of Entra's v2 token endpoint of `tenant` at `authority`.
pub(crate) fn entra_token_endpoint(
    source: &'static str,
    authority: &str,
    tenant: &str,
) -> Result<crate::oauth2::TokenEndpointBuilder, SetupError> {
    // It goes into the path: a GUID or a domain, nothing that leaves it.
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if tenant.is_empty() || !tenant.chars().all(allowed) {
        return Err(SetupError::source(
            source,
            format!("{tenant:?} is not a tenant id or domain"),
        ));
    }
    let url = format!(
        "{}/{tenant}/oauth2/v2.0/token",
        authority.trim_end_matches('/')
    );
    Ok(TokenEndpoint::builder(url))
}

impl fmt::Debug for WorkloadIdentityBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadIdentityBuilder")
            .field("scope", &self.scope)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("assertion", &self.assertion)
            .finish_non_exhaustive()
    }
}
