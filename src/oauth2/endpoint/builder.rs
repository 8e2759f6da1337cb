//! `TokenEndpointBuilder`: the token endpoint's URL, client credentials,
//! HTTP client, and how long and how much of an answer is waited for.

use super::body_format::BodyFormat;
use super::token_endpoint::{Inner, TokenEndpoint};
use crate::dpop::DpopProver;
#[cfg(feature = "jwt")]
use crate::oauth2::client_authentication::client_auth::AssertionSettings;
use crate::oauth2::client_authentication::client_auth::{ClientAuth, ClientIdentity};
#[cfg(feature = "jwt")]
use crate::oauth2::signing::signing_key::SigningKey;
#[cfg(feature = "jwt")]
use crate::oauth2::signing::wall_clock::WallClock;
use crate::oauth2::transport::http_client::HttpClient;
use crate::oauth2::transport::secure_url;
use crate::oauth2::BuildError;
use crate::redact;
use crate::secret::Secret;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long one token request may take unless set otherwise. Separate from
/// the timeouts of the requests the token authenticates.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest token endpoint response read unless set otherwise: token
/// responses are a few KiB; a larger one is an error page or an attack.
const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

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
    pub(super) fn new(url: String) -> Self {
        TokenEndpointBuilder {
            url,
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
    /// proof ([`ExchangeError::DpopNotBound`](crate::oauth2::ExchangeError::DpopNotBound), permanent), for clients that
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
