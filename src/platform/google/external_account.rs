//! `ExternalAccount`: Google's workload identity federation (AIP-4117), a
//! subject token from the workload's own platform exchanged at Google's STS,
//! then, if configured, for a service account's token.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde_json::{json, Map, Value};

use super::subject_token::{SubjectToken, EXTERNAL_ACCOUNT as NAME};
use crate::error::TokenError;
use crate::oauth2::{ClientAuth, HttpClient, TokenEndpoint, TokenExchange, TokenType};
use crate::platform::error::{SetupError, StatusPolicy};
use crate::platform::lifetime;
use crate::platform::settings::HttpSettings;
use crate::platform::transport::Endpoint;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// The name of the impersonation endpoint in errors and logs.
const IMPERSONATION: &str = "Google service account impersonation";

/// The scope asked for unless set otherwise, and the one the STS token
/// needs to call the impersonation endpoint.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// An impersonated token's lifetime unless the file sets one (AIP-4117).
const DEFAULT_IMPERSONATED_LIFETIME: u64 = 3600;

/// The largest credential configuration file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Access tokens through Google's workload identity federation: a workload
/// outside Google Cloud (AKS, EKS, GitHub Actions, any OIDC or SAML
/// identity provider) presents its own platform's token to Google's
/// Security Token Service, and gets a Google access token, as AIP-4117
/// describes and `gcloud iam workload-identity-pools create-cred-config`
/// writes the configuration:
///
/// ```json
/// {
///   "type": "external_account",
///   "audience": "//iam.googleapis.com/projects/$NUMBER/locations/global/workloadIdentityPools/$POOL/providers/$PROVIDER",
///   "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
///   "token_url": "https://sts.googleapis.com/v1/token",
///   "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/$EMAIL:generateAccessToken",
///   "credential_source": {"file": "/var/run/secrets/tokens/gcp-ksa/token"}
/// }
/// ```
///
/// Each fetch reads the subject token again (`credential_source`: a
/// `file`, or a `url` asked with its `headers`, in plain text or `json`
/// with a `subject_token_field_name`), and exchanges it at `token_url`
/// (RFC 8693: the `audience`, the `subject_token_type`,
/// `requested_token_type` an access token, and the scopes; no client
/// authentication unless the file has a `client_id` and `client_secret`).
/// With `service_account_impersonation_url`, the STS token (asked with the
/// `cloud-platform` scope) then buys the service account's token there:
/// `POST {"scope": [...], "lifetime": "3600s"}`
/// (`service_account_impersonation.token_lifetime_seconds` if set),
/// answered `{"accessToken", "expireTime"}`, which sets the lifetime.
///
/// Not supported: AWS (`environment_id`) and executable credential
/// sources, which are refused when the file is read.
///
/// The configuration names the URLs tokens are sent to: read it only from
/// a place you trust, as Google's own libraries warn.
///
/// ```no_run
/// use tower_bearer::platform::google::ExternalAccount;
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), tower_bearer::platform::SetupError> {
/// let source = ExternalAccount::from_file("/etc/gcp/credential-configuration.json")?
///     .scope("https://www.googleapis.com/auth/devstorage.read_only")
///     .build()?;
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
pub struct ExternalAccount {
    sts: TokenExchange,
    impersonation: Option<Impersonation>,
}

/// The service account whose token the STS token buys.
struct Impersonation {
    uri: Uri,
    scopes: Vec<String>,
    lifetime: u64,
    endpoint: Endpoint,
}

impl ExternalAccount {
    /// Reads a credential configuration file (at most 64 KiB); see
    /// [`from_json`](Self::from_json).
    pub fn from_file(path: impl AsRef<Path>) -> Result<ExternalAccountBuilder, SetupError> {
        let path = path.as_ref();
        let text = read_config(path)
            .map_err(|why| SetupError::source(NAME, format!("{}: {why}", path.display())))?;
        Self::from_json(&text)
    }

    /// Reads a credential configuration (`"type": "external_account"`).
    /// Fails if it is not one, lacks `audience`, `subject_token_type`,
    /// `token_url` or `credential_source`, or has a credential source this
    /// crate does not read.
    pub fn from_json(text: &str) -> Result<ExternalAccountBuilder, SetupError> {
        let invalid = |reason: &str| SetupError::source(NAME, reason.to_owned());
        let config: Map<String, Value> = match serde_json::from_str(text) {
            Ok(Value::Object(config)) => config,
            _ => return Err(invalid("the configuration is not a JSON object")),
        };
        if config.get("type").and_then(Value::as_str) != Some("external_account") {
            return Err(invalid("the configuration's type is not external_account"));
        }
        let text_field = |name: &'static str| {
            config
                .get(name)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let required = |name: &'static str| {
            text_field(name).ok_or_else(|| SetupError::source(NAME, format!("no {name}")))
        };
        let credential_source = config
            .get("credential_source")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| invalid("no credential_source"))?;
        let lifetime = config
            .get("service_account_impersonation")
            .and_then(|o| o.get("token_lifetime_seconds"))
            .map(|v| {
                lifetime::seconds(v)
                    .ok_or_else(|| invalid("token_lifetime_seconds is not a number"))
            })
            .transpose()?;
        Ok(ExternalAccountBuilder {
            audience: required("audience")?,
            subject_token_type: required("subject_token_type")?,
            token_url: required("token_url")?,
            impersonation_url: text_field("service_account_impersonation_url"),
            lifetime: lifetime.unwrap_or(DEFAULT_IMPERSONATED_LIFETIME),
            client_id: text_field("client_id"),
            client_secret: text_field("client_secret"),
            user_project: text_field("workforce_pool_user_project"),
            credential_source,
            scopes: Vec::new(),
            http: HttpSettings::default(),
            sts_timeout: None,
        })
    }
}

impl TokenSource for ExternalAccount {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let federated = self.sts.fetch().await?;
        match &self.impersonation {
            None => Ok(federated),
            Some(impersonation) => impersonation.fetch(&federated).await,
        }
    }
}

impl Impersonation {
    /// `POST` the impersonation URL with the STS token; the answer's
    /// `accessToken` lives until its `expireTime`.
    async fn fetch(&self, federated: &AccessToken) -> Result<AccessToken, TokenError> {
        let body = json!({"scope": self.scopes, "lifetime": format!("{}s", self.lifetime)});
        let mut request = Request::new(Full::new(Bytes::from(body.to_string())));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", federated.secret()))
            .map_err(|_| TokenError::permanent("the STS token cannot go into a header"))?;
        bearer.set_sensitive(true);
        headers.insert(AUTHORIZATION, bearer);
        let answer = self.endpoint.send(request, &[federated.secret()]).await?;
        let fields = self.endpoint.json(&answer)?;
        let token = match fields.get("accessToken") {
            Some(Value::String(token)) if !token.is_empty() => AccessToken::new(token.as_str()),
            _ => return Err(self.endpoint.invalid(&answer, "no `accessToken`").into()),
        };
        Ok(
            match fields
                .get("expireTime")
                .and_then(Value::as_str)
                .and_then(lifetime::rfc3339)
            {
                Some(at) => lifetime::expiring_at(token, at, SystemTime::now()),
                None => token,
            },
        )
    }
}

impl fmt::Debug for ExternalAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalAccount")
            .field("sts", &self.sts)
            .field(
                "impersonation_url",
                &self
                    .impersonation
                    .as_ref()
                    .map(|i| crate::redact::url(&i.uri.to_string())),
            )
            .finish()
    }
}

/// Builds an [`ExternalAccount`] from its configuration; see
/// [`ExternalAccount::from_json`].
///
/// ```
/// use tower_bearer::platform::google::ExternalAccount;
///
/// let config = serde_json::json!({
///     "type": "external_account",
///     "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/aks/providers/cluster",
///     "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
///     "token_url": "https://sts.googleapis.com/v1/token",
///     "credential_source": {"file": "/var/run/secrets/azure/tokens/azure-identity-token"},
/// });
/// let source = ExternalAccount::from_json(&config.to_string())
///     .unwrap()
///     .scope("https://www.googleapis.com/auth/bigquery.readonly")
///     .build()
///     .unwrap();
/// assert!(format!("{source:?}").contains("sts.googleapis.com"));
/// ```
#[must_use]
pub struct ExternalAccountBuilder {
    audience: String,
    subject_token_type: String,
    token_url: String,
    impersonation_url: Option<String>,
    lifetime: u64,
    client_id: Option<String>,
    client_secret: Option<String>,
    user_project: Option<String>,
    credential_source: Map<String, Value>,
    scopes: Vec<String>,
    http: HttpSettings,
    sts_timeout: Option<Duration>,
}

impl ExternalAccountBuilder {
    /// Adds a scope the token must carry. Defaults to
    /// `https://www.googleapis.com/auth/cloud-platform`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// The HTTP client for every request (the subject-token URL, the STS,
    /// the impersonation endpoint). Defaults to the default HTTPS client
    /// (proxies from the environment) for the STS and the impersonation
    /// endpoint, and to one that never uses a proxy for the local
    /// subject-token URL (feature `rustls`; required without it).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http.client = Some(client);
        self
    }

    /// How long each request may take. Defaults to 5 seconds for the
    /// subject-token URL and the impersonation endpoint, and to the token
    /// endpoint's 10 seconds for the STS.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http.timeout = timeout;
        self.sts_timeout = Some(timeout);
        self
    }

    /// Builds the source. Fails for a `token_url` or impersonation URL
    /// that is not `https://` (plain `http://` only to loopback), for a
    /// `credential_source` that cannot be used, and without an HTTP client.
    pub fn build(self) -> Result<ExternalAccount, SetupError> {
        let subject = SubjectToken::from_config(&self.credential_source, &self.http)?
            .into_security_token(TokenType::new(self.subject_token_type.clone()));
        let mut sts =
            TokenEndpoint::builder(&self.token_url).http_client(self.http.remote_client()?);
        if let Some(timeout) = self.sts_timeout {
            sts = sts.timeout(timeout);
        }
        let sts = match (&self.client_id, &self.client_secret) {
            (Some(id), Some(secret)) => sts.client_id(id).client_secret(secret.as_str()),
            _ => sts.client_auth(ClientAuth::None),
        }
        .build()?;
        let scopes = if self.scopes.is_empty() {
            vec![CLOUD_PLATFORM.to_owned()]
        } else {
            self.scopes
        };
        let mut exchange = TokenExchange::new(sts, subject)
            .audience(self.audience)
            .requested_token_type(TokenType::ACCESS_TOKEN);
        // With impersonation, the STS token only has to call the
        // impersonation endpoint; the scopes asked go there (AIP-4117).
        exchange = match &self.impersonation_url {
            Some(_) => exchange.scope(CLOUD_PLATFORM),
            None => scopes
                .iter()
                .fold(exchange, |e, scope| e.scope(scope.clone())),
        };
        // Workforce pools name the project billed when the client does not
        // authenticate (as Google's libraries send it).
        if let (Some(project), None) = (&self.user_project, &self.client_id) {
            exchange = exchange.param("options", json!({"userProject": project}).to_string());
        }
        let impersonation = match self.impersonation_url {
            None => None,
            Some(url) => Some(Impersonation {
                uri: crate::oauth2::parse_secure_url(&url, false)?,
                scopes,
                lifetime: self.lifetime,
                endpoint: Endpoint::new(
                    IMPERSONATION,
                    self.http.remote_client()?,
                    self.http.timeout,
                    StatusPolicy::Plain,
                ),
            }),
        };
        Ok(ExternalAccount {
            sts: exchange,
            impersonation,
        })
    }
}

impl fmt::Debug for ExternalAccountBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalAccountBuilder")
            .field("audience", &self.audience)
            .field("token_url", &crate::redact::url(&self.token_url))
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// A configuration file's text, at most [`MAX_CONFIG_BYTES`].
pub(crate) fn read_config(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(|err| format!("cannot read it ({err})"))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err("larger than 64 KiB".into());
    }
    Ok(text)
}
