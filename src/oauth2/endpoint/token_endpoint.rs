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

use crate::dpop::{DpopProver, DPOP, DPOP_NONCE};
use crate::error::{Chain, TokenError};
#[cfg(feature = "jwt")]
use crate::oauth2::client_authentication::client_auth::AssertionSettings;
use crate::oauth2::client_authentication::client_auth::{ClientAuth, ClientIdentity};
use crate::oauth2::endpoint::body_format::BodyFormat;
use crate::oauth2::endpoint::response::{parse_fields, TokenResponse};
#[cfg(feature = "jwt")]
use crate::oauth2::signing::signing_key::SigningKey;
#[cfg(feature = "jwt")]
use crate::oauth2::signing::wall_clock::WallClock;
use crate::oauth2::transport::http_client::{HttpBody, HttpClient};
use crate::oauth2::transport::secure_url;
use crate::oauth2::{BuildError, ErrorCode, ExchangeError, OAuth2Error};
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
    /// The URL as proofs name it (`htu`) and nonces are kept by.
    url_text: String,
    /// The DPoP key every token request proves possession of, if any.
    dpop: Option<Arc<dyn DpopProver>>,
    /// Whether a `Bearer` answer to a request with a proof is an error.
    require_dpop_bound: bool,
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
            dpop: None,
            require_dpop_bound: false,
            #[cfg(feature = "jwt")]
            assertion: AssertionSettings::default(),
        }
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &Uri {
        &self.inner.url
    }

    /// The URL as logs and errors may show it: no user info, no query.
    pub(crate) fn url_for_logs(&self) -> &str {
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

    /// The DPoP key token requests prove possession of, if one was
    /// [set](TokenEndpointBuilder::dpop): the key `DPoP` tokens from here are
    /// bound to, whose thumbprint an authorization request names (`dpop_jkt`).
    pub fn dpop(&self) -> Option<&Arc<dyn DpopProver>> {
        self.inner.dpop.as_ref()
    }

    /// Sends a token request with these parameters (plus client
    /// authentication, and a DPoP proof when the endpoint has a key) and
    /// parses the token response. A `DPoP` token comes back bound to the
    /// endpoint's key ([`TokenResponse::dpop`]).
    pub async fn request(&self, params: &[(&str, &str)]) -> Result<TokenResponse, TokenError> {
        let fields = self.request_fields(params).await?;
        let response = TokenResponse::from_fields(fields)?;
        Ok(self.bind(response)?)
    }

    /// What the token type says of the key: a `DPoP` token is bound to the
    /// endpoint's key (and useless without one); a `Bearer` answer to a
    /// request with a proof is the server declining to bind (RFC 9449 §5),
    /// which is an error only where bound tokens are
    /// [required](TokenEndpointBuilder::require_dpop_bound).
    fn bind(&self, response: TokenResponse) -> Result<TokenResponse, ExchangeError> {
        let inner = &*self.inner;
        match (&inner.dpop, response.is_dpop()) {
            (Some(key), true) => Ok(response.with_dpop(Arc::clone(key))),
            (None, true) => Err(ExchangeError::UnsupportedTokenType(
                response.token_type().unwrap_or("DPoP").to_owned(),
            )),
            (Some(_), false) if inner.require_dpop_bound => Err(ExchangeError::DpopNotBound),
            (Some(_), false) => {
                tracing::warn!(
                    endpoint = %inner.url_for_logs,
                    "the token endpoint issued a Bearer token to a request with a DPoP proof: the token is not sender-constrained"
                );
                Ok(response)
            }
            (None, false) => Ok(response),
        }
    }

    /// Like [`request`](Self::request), but returns the response's fields as
    /// they are, for non-standard exchanges (Glama's `{"apiKey": …}`). Error
    /// responses, status codes, the timeout and the size cap are handled the
    /// same way, and so are DPoP proofs and nonces.
    ///
    /// With a DPoP key, a `400` whose `error` is `use_dpop_nonce` and that
    /// hands out a nonce (`DPoP-Nonce`) is sent once more, with a new proof
    /// carrying that nonce and new client authentication; a second one is
    /// the caller's error ([`ErrorCode::UseDpopNonce`](crate::oauth2::ErrorCode::UseDpopNonce),
    /// transient). The `timeout` applies to each of the two requests.
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
        match self.send(params).await {
            Sent::NonceChallenge(_) => {
                // The nonce is learned; one more request carries it. Its own
                // challenge is not followed: nonces that never satisfy the
                // server must not make a loop.
                tracing::debug!(endpoint = %inner.url_for_logs, "sending the token request again with the server's DPoP nonce");
                match self.send(params).await {
                    Sent::NonceChallenge(result) | Sent::Answered(result) => result,
                }
            }
            Sent::Answered(result) => result,
        }
    }

    /// Sends one token request: fresh client authentication and a fresh
    /// proof, a nonce the answer hands out learned.
    async fn send(&self, params: &[(&str, &str)]) -> Sent {
        let inner = &*self.inner;
        let presented = match inner.client.present() {
            Ok(presented) => presented,
            Err(err) => return Sent::Answered(Err(err)),
        };
        let mut params = params.to_vec();
        params.extend(presented.params.iter().map(|(k, v)| (*k, v.as_ref())));
        let proof = match &inner.dpop {
            Some(key) => match key.proof(&Method::POST, &inner.url_text, None) {
                Ok(proof) => Some(proof),
                Err(err) => return Sent::Answered(Err(err)),
            },
            None => None,
        };
        let request = self.build_request(&params, presented.authorization.clone(), proof.clone());
        let mut sent = secrets_sent(&params, &inner.client, presented.authorization.as_ref());
        if let Some(proof) = proof.as_ref().and_then(|p| p.to_str().ok()) {
            sent.push(proof);
        }
        let exchange = async {
            let response = inner
                .http
                .send(request)
                .await
                .map_err(|err| ExchangeError::transport(err, &sent))?;
            let (parts, body) = response.into_parts();
            let body = read_capped(body, &parts, inner.max_response_bytes, &sent).await?;
            Ok::<_, ExchangeError>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(inner.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(err)) => {
                tracing::debug!(endpoint = %inner.url_for_logs, error = %Chain(&err), "token request failed");
                return Sent::Answered(Err(err.into()));
            }
            Err(_) => {
                tracing::debug!(endpoint = %inner.url_for_logs, "token request timed out");
                return Sent::Answered(Err(ExchangeError::Timeout(inner.timeout).into()));
            }
        };
        tracing::debug!(endpoint = %inner.url_for_logs, status = parts.status.as_u16(), "token response");
        // RFC 9449 §8.2: a nonce on any answer is the one to use from now on.
        let mut nonce = None;
        if let Some(key) = &inner.dpop {
            nonce = parts.headers.get(DPOP_NONCE).and_then(|v| v.to_str().ok());
            if let Some(nonce) = nonce {
                key.learn_nonce(&inner.url_text, nonce);
                sent.push(nonce);
            }
        }
        let result = parse_fields(parts.status, &parts.headers, &body, &sent);
        match result {
            Err(err) if nonce.is_some() && asks_for_nonce(&err) => Sent::NonceChallenge(Err(err)),
            result => Sent::Answered(result),
        }
    }

    /// The token request carrying `params` (client authentication included),
    /// the client's `authorization` and a DPoP `proof`, if any.
    fn build_request(
        &self,
        params: &[(&str, &str)],
        authorization: Option<HeaderValue>,
        proof: Option<HeaderValue>,
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
        if let Some(proof) = proof {
            headers.insert(DPOP, proof);
        }
        request
    }
}

/// What one token request came to.
enum Sent {
    /// The server wants a DPoP nonce and handed one out, now learned: worth
    /// one more request. Holds the `use_dpop_nonce` error, for when it is not.
    NonceChallenge(Result<Map<String, Value>, TokenError>),
    /// Anything else: the answer, or why there is none.
    Answered(Result<Map<String, Value>, TokenError>),
}

/// Whether `err` is a server's `use_dpop_nonce` (RFC 9449 §8).
fn asks_for_nonce(err: &TokenError) -> bool {
    err.cause()
        .and_then(|cause| cause.downcast_ref::<OAuth2Error>())
        .is_some_and(|cause| cause.code() == &ErrorCode::UseDpopNonce)
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
pub(crate) async fn read_capped(
    mut body: HttpBody,
    parts: &http::response::Parts,
    limit: usize,
    sent: &[&str],
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
        let frame = frame.map_err(|err| ExchangeError::transport(err, sent))?;
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
            .field("dpop", &inner.dpop)
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
    pub(crate) auth: ClientAuth,
    format: BodyFormat,
    timeout: Duration,
    max_response_bytes: usize,
    headers: HeaderMap,
    allow_insecure_http: bool,
    dpop: Option<Arc<dyn DpopProver>>,
    require_dpop_bound: bool,
    /// Set by the JWT client authentication methods (`client_auth.rs`).
    #[cfg(feature = "jwt")]
    pub(crate) assertion: AssertionSettings,
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

    /// Proves possession of `key` in every token request (DPoP, RFC 9449):
    /// client credentials, the code exchange, refreshes, JWT bearer and token
    /// exchange alike. Each request carries a fresh proof (`htm` `POST`, `htu`
    /// this endpoint's URL, no `ath`); a token that comes back with
    /// `token_type: DPoP` is bound to `key`, and the front ends send it as
    /// `Authorization: DPoP …` with a proof per request. A public client's
    /// refresh token is bound to the key too (RFC 9449 §5), so refreshes must
    /// use the same key: keep the key as long as the refresh token.
    ///
    /// Nonces (RFC 9449 §8): a `400 use_dpop_nonce` that hands out a nonce
    /// (`DPoP-Nonce`) is retried once with it, and a nonce on any answer is
    /// kept for this endpoint's origin, in `key`.
    ///
    /// A server may decline to bind and answer `token_type: Bearer`
    /// (RFC 9449 §5): the token is then used as a bearer token, with a
    /// warning, unless [`require_dpop_bound`](Self::require_dpop_bound) is set.
    /// Unset by default: no proofs, and a `DPoP` answer is an error.
    ///
    /// `key` is usually an [`oauth2::DpopKey`](crate::oauth2) (feature
    /// `jwt`); any [`DpopProver`] will do, such as one whose key is in an HSM.
    ///
    /// ```
    /// # #[cfg(feature = "jwt")] {
    /// use tower_bearer::dpop::DpopProver as _;
    /// use tower_bearer::oauth2::{ClientCredentials, DpopKey, TokenEndpoint};
    ///
    /// let key = DpopKey::generate_es256().unwrap();
    /// let endpoint = TokenEndpoint::builder("https://auth.example.com/oauth2/token")
    ///     .client_id("my-client")
    ///     .client_secret("my-secret")
    ///     .dpop(key.clone())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(endpoint.dpop().unwrap().thumbprint(), key.thumbprint());
    /// let source = ClientCredentials::new(endpoint).scope("api/access");
    /// # let _ = source; }
    /// ```
    pub fn dpop(mut self, key: impl DpopProver) -> Self {
        self.dpop = Some(Arc::new(key));
        self
    }

    /// Refuses a `Bearer` token answered to a request that carried a DPoP
    /// proof ([`ExchangeError::DpopNotBound`], permanent), for clients that
    /// must only use sender-constrained tokens (FAPI 2.0). Defaults to
    /// `false`: RFC 9449 §5 lets a server decline to bind, and such a token
    /// is used as a bearer token, with a warning. Only matters with a
    /// [`dpop`](Self::dpop) key.
    pub fn require_dpop_bound(mut self, required: bool) -> Self {
        self.require_dpop_bound = required;
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
                url_text: url.to_string(),
                dpop: self.dpop,
                require_dpop_bound: self.require_dpop_bound,
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
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("dpop", &self.dpop)
            .field("require_dpop_bound", &self.require_dpop_bound);
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
