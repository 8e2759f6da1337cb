//! Google service accounts: the JWT-bearer grant, set up from a key file.

use std::fmt;
use std::time::Duration;

use super::jwt_bearer::JwtBearer;
use crate::error::TokenError;
use crate::oauth2::client_authentication::client_auth::ClientAuth;
use crate::oauth2::client_authentication::jwt_assertion::{
    JwtAssertion, DEFAULT_ASSERTION_LIFETIME,
};
use crate::oauth2::endpoint::token_endpoint::TokenEndpoint;
use crate::oauth2::signing::service_account_key::ServiceAccountKey;
use crate::oauth2::signing::wall_clock::WallClock;
use crate::oauth2::transport::http_client::HttpClient;
use crate::oauth2::BuildError;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// Access tokens for a Google service account, from its key file, the way
/// Google's own libraries obtain them: each fetch signs a new RS256
/// assertion (`iss` the account's email, `aud` its `token_uri`, `scope` the
/// scopes asked for, `sub` a user to act for if set, `kid` the key's id) and
/// exchanges it with the JWT-bearer grant at the `token_uri`.
///
/// ```no_run
/// use tower_bearer::oauth2::{GoogleServiceAccount, ServiceAccountKey};
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = ServiceAccountKey::from_file("/etc/secrets/reporter.json")?;
/// let source = GoogleServiceAccount::builder(key)
///     .scope("https://www.googleapis.com/auth/bigquery.readonly")
///     .build()?;
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Debug)]
pub struct GoogleServiceAccount {
    grant: JwtBearer,
    client_email: String,
}

impl GoogleServiceAccount {
    /// Starts configuring the account of `key`.
    pub fn builder(key: ServiceAccountKey) -> GoogleServiceAccountBuilder {
        GoogleServiceAccountBuilder {
            key,
            scopes: Vec::new(),
            subject: None,
            http: None,
            timeout: None,
            lifetime: DEFAULT_ASSERTION_LIFETIME,
            clock: WallClock::system(),
        }
    }

    /// The account's email.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The token endpoint asked (the key file's `token_uri`).
    pub fn endpoint(&self) -> &TokenEndpoint {
        self.grant.endpoint()
    }
}

impl TokenSource for GoogleServiceAccount {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        self.grant.fetch().await
    }
}

/// Builds a [`GoogleServiceAccount`]; see [`GoogleServiceAccount::builder`].
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::oauth2::{BuildError, GoogleServiceAccount, ServiceAccountKey};
///
/// let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem").unwrap();
/// let file = serde_json::json!({
///     "type": "service_account",
///     "client_email": "reporter@demo.iam.gserviceaccount.com",
///     "private_key": pem,
/// });
/// let key = ServiceAccountKey::from_json(&file.to_string()).unwrap();
/// // Google issues access tokens for a set of scopes: none is an error.
/// let err = GoogleServiceAccount::builder(key.clone()).build().unwrap_err();
/// assert!(matches!(err, BuildError::InvalidAssertion(_)));
/// let source = GoogleServiceAccount::builder(key)
///     .scope("https://www.googleapis.com/auth/devstorage.read_only")
///     .subject("admin@example.com") // domain-wide delegation
///     .timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(source.endpoint().url(), "https://oauth2.googleapis.com/token");
/// ```
#[must_use]
pub struct GoogleServiceAccountBuilder {
    key: ServiceAccountKey,
    scopes: Vec<String>,
    subject: Option<String>,
    http: Option<HttpClient>,
    timeout: Option<Duration>,
    lifetime: Duration,
    clock: WallClock,
}

impl GoogleServiceAccountBuilder {
    /// Adds a scope (`https://www.googleapis.com/auth/cloud-platform`, …).
    /// At least one is required.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Acts for this user (domain-wide delegation): the assertion's `sub`.
    pub fn subject(mut self, email: impl Into<String>) -> Self {
        self.subject = Some(email.into());
        self
    }

    /// The HTTP client to send through. Defaults to [`HttpClient::https`]
    /// with the `rustls` feature; required without it.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// How long one token request may take. Defaults to the token
    /// endpoint's 10 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long each assertion is valid; Google allows at most an hour.
    /// Defaults to 60 seconds.
    pub fn assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The clock assertions take `iat` and `exp` from. Defaults to the system's.
    pub fn clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the source.
    ///
    /// Fails with [`BuildError::InvalidAssertion`] without a scope, and as
    /// [`TokenEndpointBuilder::build`](crate::oauth2::TokenEndpointBuilder::build)
    /// does for the key file's `token_uri` (`https://`, or `http://` to a
    /// loopback host).
    pub fn build(self) -> Result<GoogleServiceAccount, BuildError> {
        if self.scopes.is_empty() {
            return Err(BuildError::InvalidAssertion(
                "no scope: Google issues access tokens for a set of scopes",
            ));
        }
        let mut endpoint =
            TokenEndpoint::builder(self.key.token_uri()).client_auth(ClientAuth::None);
        if let Some(http) = self.http {
            endpoint = endpoint.http_client(http);
        }
        if let Some(timeout) = self.timeout {
            endpoint = endpoint.timeout(timeout);
        }
        let mut assertion = JwtAssertion::builder(self.key.signing_key().clone())
            .issuer(self.key.client_email())
            .audience(self.key.token_uri())
            .claim("scope", self.scopes.join(" "))
            .lifetime(self.lifetime)
            .clock(self.clock);
        if let Some(subject) = self.subject {
            assertion = assertion.subject(subject);
        }
        Ok(GoogleServiceAccount {
            grant: JwtBearer::new(endpoint.build()?, assertion.build()?),
            client_email: self.key.client_email().to_owned(),
        })
    }
}

impl fmt::Debug for GoogleServiceAccountBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleServiceAccountBuilder")
            .field("key", &self.key)
            .field("scopes", &self.scopes)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}
