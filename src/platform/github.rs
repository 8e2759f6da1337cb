//! GitHub Actions: the job's OpenID Connect token, for a token exchange or a
//! client assertion.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderValue, Request, Uri};
use http_body_util::Full;
use serde_json::Value;

use super::error::{SetupError, StatusPolicy};
use super::settings::HttpSettings;
use super::transport::Endpoint;
use super::{lifetime, Env};
use crate::error::TokenError;
use crate::oauth2::HttpClient;
use crate::secret::Secret;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// The name in errors and logs.
const NAME: &str = "GitHub Actions OIDC";

/// The OpenID Connect token of a GitHub Actions job (a JWT whose `sub`
/// names the repository and ref), for one audience: what a cloud or an API
/// that trusts GitHub's issuer exchanges for its own token.
///
/// `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with `Authorization:
/// bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered `{"value": "<jwt>"}`;
/// the token lives until its `exp` claim (minutes). GitHub sets the two
/// variables only in jobs with `permissions: id-token: write`. The request
/// token is a secret of the job: it never appears in `Debug`, errors or
/// logs, and is only sent over `https://` (plain `http://` to loopback).
///
/// Use it as the subject of a [`TokenExchange`](crate::oauth2::TokenExchange)
/// (`SecurityToken::from_source(token, TokenType::JWT)`), or as a client
/// assertion, as Entra ID's federated credentials take it
/// ([`WorkloadIdentityBuilder::assertion`](super::azure::WorkloadIdentityBuilder::assertion)).
/// Either way a fresh token is asked for every exchange.
///
/// ```no_run
/// use tower_bearer::oauth2::{ClientAuth, SecurityToken, TokenEndpoint, TokenExchange, TokenType};
/// use tower_bearer::platform::github::ActionsIdToken;
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let github = ActionsIdToken::builder().audience("https://api.example.com").build()?;
/// let sts = TokenEndpoint::builder("https://api.example.com/oauth/token")
///     .client_auth(ClientAuth::None)
///     .build()?;
/// let source = TokenExchange::new(sts, SecurityToken::from_source(github, TokenType::JWT));
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ActionsIdToken {
    uri: Uri,
    request_token: Secret,
    endpoint: Endpoint,
}

impl ActionsIdToken {
    /// Starts configuring the source.
    pub fn builder() -> ActionsIdTokenBuilder {
        ActionsIdTokenBuilder {
            audience: None,
            env: None,
            http: HttpSettings::default(),
        }
    }
}

impl TokenSource for ActionsIdToken {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let mut request = Request::new(Full::<Bytes>::default());
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        let mut bearer = HeaderValue::try_from(format!("bearer {}", self.request_token.expose()))
            .expect("checked when the source was built");
        bearer.set_sensitive(true);
        headers.insert(AUTHORIZATION, bearer);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let answer = self
            .endpoint
            .send(request, &[self.request_token.expose()])
            .await?;
        let fields = self.endpoint.json(&answer)?;
        let jwt = match fields.get("value") {
            Some(Value::String(jwt)) if !jwt.is_empty() => jwt.as_str(),
            _ => return Err(self.endpoint.invalid(&answer, "no `value`").into()),
        };
        let token = AccessToken::new(jwt);
        Ok(match lifetime::jwt_exp(jwt) {
            Some(exp) => lifetime::expiring_at(token, exp, SystemTime::now()),
            None => token,
        })
    }
}

impl fmt::Debug for ActionsIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionsIdToken")
            .field("url", &crate::redact::url(&self.uri.to_string()))
            .field("request_token", &self.request_token)
            .finish()
    }
}

/// Builds an [`ActionsIdToken`]; see [`ActionsIdToken::builder`].
///
/// ```
/// use tower_bearer::platform::github::ActionsIdToken;
/// use tower_bearer::platform::Env;
///
/// // What GitHub gives a job with `permissions: id-token: write`.
/// let env = Env::new()
///     .with("ACTIONS_ID_TOKEN_REQUEST_URL", "https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0")
///     .with("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "eyJ0eXAi.request.token");
/// let source = ActionsIdToken::builder()
///     .audience("api://AzureADTokenExchange")
///     .env(env)
///     .build()
///     .unwrap();
/// assert!(!format!("{source:?}").contains("request.token"));
/// ```
#[must_use]
pub struct ActionsIdTokenBuilder {
    audience: Option<String>,
    env: Option<Env>,
    http: HttpSettings,
}

impl ActionsIdTokenBuilder {
    /// The audience (`aud`) the token is for: what the party that
    /// exchanges it expects (`api://AzureADTokenExchange` for Entra ID,
    /// `sts.amazonaws.com`, an API's URL). Defaults to none: GitHub's
    /// default, the URL of the repository's owner.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The environment to read `ACTIONS_ID_TOKEN_REQUEST_URL` and
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` from. Defaults to the process's,
    /// read by [`build`](Self::build).
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// The HTTP client to send through. Defaults to the default HTTPS
    /// client (feature `rustls`; required without it).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http.client = Some(client);
        self
    }

    /// How long one request may take. Defaults to 5 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http.timeout = timeout;
        self
    }

    /// Builds the source. Fails outside a job that may ask for a token
    /// (either variable missing), for a request URL that is not `https://`
    /// (plain `http://` only to loopback), and without an HTTP client.
    pub fn build(self) -> Result<ActionsIdToken, SetupError> {
        let env = self.env.unwrap_or_else(Env::from_process);
        let missing = |name: &str| {
            SetupError::source(
                NAME,
                format!("{name} is not set (the job needs `permissions: id-token: write`)"),
            )
        };
        let url = env
            .var("ACTIONS_ID_TOKEN_REQUEST_URL")
            .ok_or_else(|| missing("ACTIONS_ID_TOKEN_REQUEST_URL"))?;
        let request_token = env
            .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
            .ok_or_else(|| missing("ACTIONS_ID_TOKEN_REQUEST_TOKEN"))?;
        if HeaderValue::try_from(format!("bearer {request_token}")).is_err() {
            return Err(SetupError::source(
                NAME,
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN cannot go into a header",
            ));
        }
        // The URL carries a query (`api-version`); the audience joins it.
        let url = match &self.audience {
            None => url.to_owned(),
            Some(audience) => {
                let query = serde_urlencoded::to_string([("audience", audience)])
                    .expect("a string pair encodes");
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}{query}")
            }
        };
        let uri = crate::oauth2::parse_secure_url(&url, false)?;
        let endpoint = Endpoint::new(
            NAME,
            self.http.remote_client()?,
            self.http.timeout,
            StatusPolicy::Plain,
        );
        Ok(ActionsIdToken {
            uri,
            request_token: Secret::new(request_token),
            endpoint,
        })
    }
}

impl fmt::Debug for ActionsIdTokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionsIdTokenBuilder")
            .field("audience", &self.audience)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}
