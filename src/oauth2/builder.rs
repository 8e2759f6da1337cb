//! Configuring a token endpoint: client authentication, body format, URL checks.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::endpoint::{Inner, TokenEndpoint, DEFAULT_ENDPOINT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES};
use super::endpoint_error::EndpointError;
use super::http_client::HttpClient;
use crate::secret::Secret;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3).
///
/// Without a client secret, every method sends only `client_id` in the body
/// (a public client, RFC 6749 §2.1).
///
/// ```
/// use tower_bearer::oauth2::{ClientAuth, TokenEndpoint};
///
/// let endpoint = TokenEndpoint::builder("https://auth.example/token")
///     .client_id("id")
///     .client_secret("secret")
///     .client_auth(ClientAuth::RequestBody)
///     .build()
///     .unwrap();
/// # let _ = endpoint;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded id and secret
    /// (`client_secret_basic`, RFC 6749 §2.3.1). Spaces are encoded `%20`.
    #[default]
    Basic,
    /// `client_id` and `client_secret` as request parameters, in the form or
    /// JSON body (`client_secret_post`).
    RequestBody,
    /// Only `client_id` (if set) in the body: public clients, or custom exchanges.
    None,
}

/// How the request parameters are encoded.
///
/// ```
/// use tower_bearer::oauth2::BodyFormat;
///
/// assert_eq!(BodyFormat::default(), BodyFormat::Form);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`, as RFC 6749 requires.
    #[default]
    Form,
    /// `application/json`, a flat object of strings (Blooma accepts it; repeated
    /// parameters become arrays).
    Json,
}

/// Builds a [`TokenEndpoint`]; see [`TokenEndpoint::builder`].
///
/// ```
/// use tower_bearer::oauth2::TokenEndpoint;
///
/// let endpoint = TokenEndpoint::builder("https://platform.ai.gloo.com/oauth2/token")
///     .client_id("id")
///     .client_secret("secret")
///     .build()
///     .unwrap();
/// # let _ = endpoint;
/// ```
#[must_use]
pub struct TokenEndpointBuilder {
    url: String,
    client: Option<HttpClient>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    auth: ClientAuth,
    format: BodyFormat,
    timeout: Duration,
    max_response_bytes: usize,
    headers: HeaderMap,
    allow_insecure_http: bool,
}

impl TokenEndpointBuilder {
    pub(super) fn new(url: String) -> Self {
        Self {
            url,
            client: None,
            client_id: None,
            client_secret: None,
            auth: ClientAuth::default(),
            format: BodyFormat::default(),
            timeout: DEFAULT_ENDPOINT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            headers: HeaderMap::new(),
            allow_insecure_http: false,
        }
    }
}

impl TokenEndpointBuilder {
    /// The client id.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenEndpoint;
    /// let builder = TokenEndpoint::builder("https://auth.example/token").client_id("my-client");
    /// # let _ = builder;
    /// ```
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The client secret (kept as a [`Secret`]).
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenEndpoint;
    /// let builder = TokenEndpoint::builder("https://auth.example/token").client_secret("hunter2");
    /// assert!(!format!("{builder:?}").contains("hunter2"));
    /// ```
    pub fn client_secret(mut self, client_secret: impl Into<Secret>) -> Self {
        self.client_secret = Some(client_secret.into());
        self
    }

    /// How the client authenticates ([`ClientAuth::Basic`] by default).
    ///
    /// ```
    /// # use tower_bearer::oauth2::{ClientAuth, TokenEndpoint};
    /// // client_secret_post: credentials as form parameters.
    /// let builder = TokenEndpoint::builder("https://auth.example/token").client_auth(ClientAuth::RequestBody);
    /// # let _ = builder;
    /// ```
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// How parameters are encoded ([`BodyFormat::Form`] by default).
    ///
    /// ```
    /// # use tower_bearer::oauth2::{BodyFormat, TokenEndpoint};
    /// let builder = TokenEndpoint::builder("https://auth.example/token").body_format(BodyFormat::Json);
    /// # let _ = builder;
    /// ```
    pub fn body_format(mut self, format: BodyFormat) -> Self {
        self.format = format;
        self
    }

    /// The HTTP client to send through (by default [`HttpClient::https`] with
    /// the `rustls` feature; required without it).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::TokioExecutor;
    /// use tower_bearer::oauth2::{HttpClient, TokenEndpoint};
    ///
    /// // Your own hyper-util client (here plain HTTP, for a loopback endpoint).
    /// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    /// let endpoint = TokenEndpoint::builder("http://127.0.0.1:8080/token")
    ///     .http_client(HttpClient::new(client))
    ///     .build()
    ///     .unwrap();
    /// # let _ = endpoint;
    /// ```
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.client = Some(client);
        self
    }

    /// How long one token request may take ([`DEFAULT_ENDPOINT_TIMEOUT`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_bearer::oauth2::TokenEndpoint;
    /// let builder = TokenEndpoint::builder("https://auth.example/token").timeout(Duration::from_secs(3));
    /// # let _ = builder;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest response read ([`DEFAULT_MAX_RESPONSE_BYTES`]).
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenEndpoint;
    /// let builder = TokenEndpoint::builder("https://auth.example/token").max_response_bytes(64 * 1024);
    /// # let _ = builder;
    /// ```
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// A header sent with every token request (e.g. `user-agent`).
    ///
    /// ```
    /// # use http::{header::USER_AGENT, HeaderValue};
    /// # use tower_bearer::oauth2::TokenEndpoint;
    /// let builder = TokenEndpoint::builder("https://auth.example/token")
    ///     .header(USER_AGENT, HeaderValue::from_static("my-app/1.0"));
    /// # let _ = builder;
    /// ```
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Allows a plain `http://` URL for a host other than loopback. Only for
    /// networks where something else protects the traffic: the client secret
    /// and tokens travel in clear text.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenEndpoint;
    /// let endpoint = TokenEndpoint::builder("http://auth.internal/token")
    ///     .allow_insecure_http(true)
    ///     .build()
    ///     .unwrap();
    /// # let _ = endpoint;
    /// ```
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Checks the URL and builds the endpoint.
    ///
    /// Fails with [`EndpointError::InsecureUrl`] for `http://` on a
    /// non-loopback host (unless allowed), [`EndpointError::InvalidUrl`] for
    /// anything else that is not an absolute `https://` URL, and
    /// [`EndpointError::NoHttpClient`] without a client or the `rustls` feature.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{EndpointError, TokenEndpoint};
    /// assert!(TokenEndpoint::builder("https://auth.example/token").build().is_ok());
    /// assert!(matches!(
    ///     TokenEndpoint::builder("not a url").build(),
    ///     Err(EndpointError::InvalidUrl { .. })
    /// ));
    /// ```
    pub fn build(self) -> Result<TokenEndpoint, EndpointError> {
        let url = check_url(&self.url, self.allow_insecure_http)?;
        let client = match self.client {
            Some(client) => client,
            None => default_client()?,
        };
        Ok(TokenEndpoint::from_inner(Inner {
            url_for_logs: crate::redact::url(&url.to_string()),
            url,
            client,
            client_id: self.client_id,
            client_secret: self.client_secret,
            auth: self.auth,
            format: self.format,
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
            headers: self.headers,
        }))
    }
}

impl fmt::Debug for TokenEndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpointBuilder")
            .field("url", &crate::redact::url(&self.url))
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("auth", &self.auth)
            .field("format", &self.format)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "rustls")]
fn default_client() -> Result<HttpClient, EndpointError> {
    Ok(HttpClient::https())
}

#[cfg(not(feature = "rustls"))]
fn default_client() -> Result<HttpClient, EndpointError> {
    Err(EndpointError::NoHttpClient)
}

/// `https://` anywhere, `http://` only on loopback hosts or when allowed.
pub(crate) fn check_url(url: &str, allow_insecure_http: bool) -> Result<Uri, EndpointError> {
    let invalid = |reason| EndpointError::InvalidUrl {
        url: crate::redact::url(url),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        // It would be logged with the URL; use client_id/client_secret instead.
        return Err(invalid("credentials in the URL are not supported"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_insecure_http || is_loopback(host) => Ok(uri),
        Some("http") => Err(EndpointError::InsecureUrl {
            url: crate::redact::url(url),
        }),
        _ => Err(invalid("the scheme must be https")),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("https://auth.example.com/token", false).is_ok());
        for ok in [
            "http://127.0.0.1:1/t",
            "http://[::1]:8/t",
            "http://localhost/t",
            "http://127.3.4.5/t",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        assert!(matches!(
            check_url("http://auth.example.com/token", false),
            Err(EndpointError::InsecureUrl { .. })
        ));
        assert!(matches!(
            check_url("http://localhost.evil.com/token", false),
            Err(EndpointError::InsecureUrl { .. })
        ));
        assert!(check_url("http://auth.example.com/token", true).is_ok());
        assert!(matches!(
            check_url("ftp://x/y", false),
            Err(EndpointError::InvalidUrl { .. })
        ));
        assert!(matches!(
            check_url("/token", false),
            Err(EndpointError::InvalidUrl { .. })
        ));
        assert!(matches!(
            check_url("https://user:pw@auth.example.com/token", false),
            Err(EndpointError::InvalidUrl { .. })
        ));
    }
}
