//! `TokenEndpoint` and its builder: where token requests go, how they are
//! sent, and how long and how much of an answer is waited for.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value};

use super::body_format::BodyFormat;
#[cfg(feature = "jwt")]
use super::client_auth::AssertionSettings;
use super::client_auth::{ClientAuth, ClientIdentity};
use super::error::{BuildError, ExchangeError};
use super::http_client::{HttpBody, HttpClient};
use super::response::{parse_fields, TokenResponse};
use super::secure_url;
#[cfg(feature = "jwt")]
use super::signing_key::SigningKey;
#[cfg(feature = "jwt")]
use super::wall_clock::WallClock;
use crate::error::{Chain, TokenError};
use crate::redact;
use crate::secret::Secret;

/// How long one token request may take unless set otherwise. Separate from
/// the timeouts of the requests the token authenticates.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest token endpoint response read unless set otherwise: token
/// responses are a few KiB; a larger one is an error page or an attack.
const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A token endpoint and how to talk to it: URL, client credentials, HTTP
/// client, timeout and response cap. Cheap to clone; shared by the grant sources.
///
/// ```
/// use tower_bearer::oauth2::TokenEndpoint;
/// use tower_bearer::TokenError;
///
/// let endpoint = TokenEndpoint::builder("https://platform.ai.gloo.com/oauth2/token")
///     .client_id("id")
///     .client_secret("secret")
///     .build()
///     .unwrap();
/// assert_eq!(endpoint.client_id(), Some("id"));
/// assert!(!format!("{endpoint:?}").contains("secret\""));
///
/// // The grant sources call `request`; so can a custom exchange.
/// async fn ask(endpoint: &TokenEndpoint) -> Result<(), TokenError> {
///     let response = endpoint.request(&[("grant_type", "client_credentials")]).await?;
///     println!("expires in {:?}", response.expires_in());
///     Ok(())
/// }
/// # let _ = ask;
/// ```
#[derive(Clone)]
pub struct TokenEndpoint {
    inner: Arc<Inner>,
}

struct Inner {
    url: Uri,
    /// The URL as logs and errors may show it.
    url_for_logs: String,
    http: HttpClient,
    client: ClientIdentity,
    format: BodyFormat,
    timeout: Duration,
    max_response_bytes: usize,
    headers: HeaderMap,
}

impl TokenEndpoint {
    /// Starts configuring the token endpoint at `url`.
    pub fn builder(url: impl Into<String>) -> TokenEndpointBuilder {
        TokenEndpointBuilder {
            url: url.into(),
            http: None,
            client_id: None,
            client_secret: None,
            auth: ClientAuth::default(),
            format: BodyFormat::default(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            headers: HeaderMap::new(),
            allow_insecure_http: false,
            #[cfg(feature = "jwt")]
            assertion: AssertionSettings::default(),
        }
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &Uri {
        &self.inner.url
    }

    /// The URL as logs and errors may show it: no user info, no query.
    pub(super) fn url_for_logs(&self) -> &str {
        &self.inner.url_for_logs
    }

    /// The client id, if set.
    pub fn client_id(&self) -> Option<&str> {
        self.inner.client.id()
    }

    /// The HTTP client requests go through, to share with a custom exchange.
    pub fn http_client(&self) -> &HttpClient {
        &self.inner.http
    }

    /// Sends a token request with these parameters (plus client
    /// authentication) and parses the token response.
    pub async fn request(&self, params: &[(&str, &str)]) -> Result<TokenResponse, TokenError> {
        let fields = self.request_fields(params).await?;
        Ok(TokenResponse::from_fields(fields)?)
    }

    /// Like [`request`](Self::request), but returns the response's fields as
    /// they are, for non-standard exchanges (Glama's `{"apiKey": …}`). Error
    /// responses, status codes, the timeout and the size cap are handled the
    /// same way.
    pub async fn request_fields(
        &self,
        params: &[(&str, &str)],
    ) -> Result<Map<String, Value>, TokenError> {
        let inner = &*self.inner;
        let grant_type = params
            .iter()
            .find(|(k, _)| *k == "grant_type")
            .map_or("", |(_, v)| *v);
        tracing::debug!(endpoint = %inner.url_for_logs, grant_type, "token request");
        let presented = inner.client.present()?;
        let mut params = params.to_vec();
        params.extend(presented.params.iter().map(|(k, v)| (*k, v.as_ref())));
        let request = self.build_request(&params, presented.authorization.clone());
        let sent = secrets_sent(&params, &inner.client, presented.authorization.as_ref());
        let exchange = async {
            let response = inner
                .http
                .send(request)
                .await
                .map_err(ExchangeError::transport)?;
            let (parts, body) = response.into_parts();
            let body = read_capped(body, &parts, inner.max_response_bytes).await?;
            Ok((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(inner.timeout, exchange).await {
            Ok(result) => result.inspect_err(|err: &ExchangeError| {
                tracing::debug!(endpoint = %inner.url_for_logs, error = %Chain(err), "token request failed");
            })?,
            Err(_) => {
                tracing::debug!(endpoint = %inner.url_for_logs, "token request timed out");
                return Err(ExchangeError::Timeout(inner.timeout).into());
            }
        };
        tracing::debug!(endpoint = %inner.url_for_logs, status = parts.status.as_u16(), "token response");
        parse_fields(parts.status, &parts.headers, &body, &sent)
    }

    /// The token request carrying `params` (client authentication included)
    /// and the client's `authorization`, if any.
    fn build_request(
        &self,
        params: &[(&str, &str)],
        authorization: Option<HeaderValue>,
    ) -> Request<Full<Bytes>> {
        let inner = &*self.inner;
        let (body, content_type) = inner.format.encode(params);
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = inner.url.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &inner.headers {
            headers.append(name, value.clone());
        }
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, value);
        }
        request
    }
}

/// The secrets a token request carries, which a server may echo back: the
/// values of its secret parameters (a client secret or assertion among
/// them), the client secret, the Basic credentials.
fn secrets_sent<'a>(
    params: &[(&'a str, &'a str)],
    client: &'a ClientIdentity,
    authorization: Option<&'a HeaderValue>,
) -> Vec<&'a str> {
    let basic_credentials = authorization
        .and_then(|value| value.to_str().ok()?.split_once(' '))
        .map(|(_scheme, credentials)| credentials);
    params
        .iter()
        .filter(|(key, _)| redact::is_secret_key(key))
        .map(|(_, value)| *value)
        .chain(client.secret().map(Secret::expose))
        .chain(basic_credentials)
        .collect()
}

/// Reads a response body, refusing one larger than `limit` bytes: before
/// reading when its `content-length` says so, while reading otherwise.
pub(super) async fn read_capped(
    mut body: HttpBody,
    parts: &http::response::Parts,
    limit: usize,
) -> Result<Vec<u8>, ExchangeError> {
    let too_large = || ExchangeError::ResponseTooLarge {
        status: parts.status,
        limit,
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ExchangeError::transport)?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > limit {
                return Err(too_large());
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected)
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("TokenEndpoint")
            .field("url", &inner.url_for_logs)
            .field("client", &inner.client)
            .field("format", &inner.format)
            .field("timeout", &inner.timeout)
            .field("max_response_bytes", &inner.max_response_bytes)
            .finish()
    }
}

/// Builds a [`TokenEndpoint`]; see [`TokenEndpoint::builder`].
///
/// ```
/// use std::time::Duration;
/// use http::{header::USER_AGENT, HeaderValue};
/// use tower_bearer::oauth2::{BodyFormat, ClientAuth, TokenEndpoint};
///
/// let endpoint = TokenEndpoint::builder("https://login.blooma.ai/oauth/token")
///     .client_id("id")
///     .client_secret("secret")
///     .client_auth(ClientAuth::RequestBody)
///     .body_format(BodyFormat::Json)
///     .timeout(Duration::from_secs(5))
///     .max_response_bytes(64 * 1024)
///     .header(USER_AGENT, HeaderValue::from_static("my-app/1.0"))
///     .build()
///     .unwrap();
/// # let _ = endpoint;
/// ```
#[must_use]
pub struct TokenEndpointBuilder {
    url: String,
    http: Option<HttpClient>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    /// Also set by the JWT client authentication methods (`client_auth.rs`).
    pub(super) auth: ClientAuth,
    format: BodyFormat,
    timeout: Duration,
    max_response_bytes: usize,
    headers: HeaderMap,
    allow_insecure_http: bool,
    /// Set by the JWT client authentication methods (`client_auth.rs`).
    #[cfg(feature = "jwt")]
    pub(super) assertion: AssertionSettings,
}

impl TokenEndpointBuilder {
    /// The client id.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The client secret (kept as a [`Secret`]).
    pub fn client_secret(mut self, client_secret: impl Into<Secret>) -> Self {
        self.client_secret = Some(client_secret.into());
        self
    }

    /// How the client authenticates. Defaults to [`ClientAuth::Basic`].
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// How parameters are encoded. Defaults to [`BodyFormat::Form`].
    pub fn body_format(mut self, format: BodyFormat) -> Self {
        self.format = format;
        self
    }

    /// The HTTP client to send through. Defaults to [`HttpClient::https`]
    /// with the `rustls` feature; required without it.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// How long one token request may take, connection and body included.
    /// Defaults to 10 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest response read, in bytes; a larger one is an error.
    /// Defaults to 1 MiB.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// A header sent with every token request (e.g. `user-agent`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Allows a plain `http://` URL for a host other than loopback. Only for
    /// networks where something else protects the traffic: the client secret
    /// and tokens travel in clear text. Defaults to `false`: `https://` only,
    /// plain `http://` for loopback hosts.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Checks the URL and builds the endpoint.
    ///
    /// Fails with [`BuildError::InsecureUrl`] for `http://` on a non-loopback
    /// host (unless allowed), [`BuildError::InvalidUrl`] for anything else
    /// that is not an absolute `https://` URL, [`BuildError::NoHttpClient`]
    /// without a client or the `rustls` feature, and
    /// [`BuildError::MissingCredential`] for a JWT client authentication
    /// without a client id, a key or a long enough secret.
    pub fn build(self) -> Result<TokenEndpoint, BuildError> {
        let url = secure_url::parse(&self.url, self.allow_insecure_http)?;
        let client = ClientIdentity::new(
            self.client_id,
            self.client_secret,
            self.auth,
            #[cfg(feature = "jwt")]
            self.assertion,
            #[cfg(feature = "jwt")]
            &self.url,
        )?;
        let http = match self.http {
            Some(client) => client,
            None => default_http_client()?,
        };
        Ok(TokenEndpoint {
            inner: Arc::new(Inner {
                url_for_logs: redact::url(&url.to_string()),
                url,
                http,
                client,
                format: self.format,
                timeout: self.timeout,
                max_response_bytes: self.max_response_bytes,
                headers: self.headers,
            }),
        })
    }
}

/// The settings of signed client assertions, on the endpoint's builder.
#[cfg(feature = "jwt")]
impl TokenEndpointBuilder {
    /// `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID
    /// Connect Core §9) with `key`: each token request, whatever its grant,
    /// carries a new JWT signed with it (`iss` and `sub` the client id, `aud`
    /// the token endpoint URL unless [set](Self::assertion_audience), a new
    /// `jti`, `exp` a [minute](Self::assertion_lifetime) away), and the
    /// `client_id`. Sets [`ClientAuth::PrivateKeyJwt`]; needs a client id.
    ///
    /// ```
    /// use tower_bearer::oauth2::{ClientCredentials, SigningAlgorithm, SigningKey, TokenEndpoint};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem")?;
    /// let key = SigningKey::from_pem(SigningAlgorithm::Rs256, &pem)?.with_kid("2026-11");
    /// let endpoint = TokenEndpoint::builder("https://login.microsoftonline.com/TENANT/oauth2/v2.0/token")
    ///     .client_id("00000000-0000-0000-0000-000000000000")
    ///     .private_key_jwt(key)
    ///     .build()?;
    /// let source = ClientCredentials::new(endpoint).scope("https://graph.microsoft.com/.default");
    /// # let _ = source; Ok(()) }
    /// ```
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn private_key_jwt(mut self, key: SigningKey) -> Self {
        self.auth = ClientAuth::PrivateKeyJwt;
        self.assertion.key = Some(key);
        self
    }

    /// The `aud` of client assertions (`private_key_jwt`,
    /// `client_secret_jwt`). Defaults to the token endpoint URL as given,
    /// which OpenID Connect names and Okta, Entra ID and Google expect; some
    /// servers want their issuer identifier instead (Auth0, FAPI 2.0
    /// profiles, servers that applied the 2025 audience fix).
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        self.assertion.audience = Some(audience.into());
        self
    }

    /// How long each client assertion is valid (`exp` − `iat`). Defaults to
    /// 60 seconds.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.assertion.lifetime = Some(lifetime);
        self
    }

    /// The clock client assertions take `iat`, `nbf` and `exp` from.
    /// Defaults to the system's.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn assertion_clock(mut self, clock: WallClock) -> Self {
        self.assertion.clock = clock;
        self
    }
}

impl fmt::Debug for TokenEndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("TokenEndpointBuilder");
        debug
            .field("url", &redact::url(&self.url))
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("auth", &self.auth)
            .field("format", &self.format)
            .field("allow_insecure_http", &self.allow_insecure_http);
        #[cfg(feature = "jwt")]
        debug.field("assertion", &self.assertion);
        debug.finish_non_exhaustive()
    }
}

#[cfg(feature = "rustls")]
fn default_http_client() -> Result<HttpClient, BuildError> {
    Ok(HttpClient::https())
}

#[cfg(not(feature = "rustls"))]
fn default_http_client() -> Result<HttpClient, BuildError> {
    Err(BuildError::NoHttpClient)
}
