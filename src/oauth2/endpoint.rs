//! `TokenEndpoint`: sends token requests and reads their responses.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value};

use super::builder::{BodyFormat, ClientAuth, TokenEndpointBuilder};
use super::encode::{basic_auth, form_body, json_body};
use super::endpoint_error::EndpointError;
use super::http_client::HttpClient;
use super::parse::parse_fields;
use super::response::TokenResponse;
use crate::error::TokenError;
use crate::secret::Secret;

/// How long one token request may take, connection included, unless set with
/// [`TokenEndpointBuilder::timeout`]. Separate from the timeouts of the
/// requests the token authenticates.
///
/// ```
/// assert_eq!(tower_bearer::oauth2::DEFAULT_ENDPOINT_TIMEOUT.as_secs(), 10);
/// ```
pub const DEFAULT_ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest token endpoint response read (1 MiB); larger ones are an error.
///
/// ```
/// assert_eq!(tower_bearer::oauth2::DEFAULT_MAX_RESPONSE_BYTES, 1 << 20);
/// ```
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A token endpoint and how to talk to it: URL, client credentials, HTTP
/// client, timeout and response cap. Cheap to clone; shared by the grant sources.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::oauth2::{BodyFormat, ClientAuth, TokenEndpoint};
///
/// let endpoint = TokenEndpoint::builder("https://login.blooma.ai/oauth/token")
///     .client_id("id")
///     .client_secret("secret")
///     .client_auth(ClientAuth::RequestBody)
///     .body_format(BodyFormat::Json)
///     .timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(endpoint.client_id(), Some("id"));
/// assert!(!format!("{endpoint:?}").contains("secret\""));
/// ```
#[derive(Clone)]
pub struct TokenEndpoint {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) url: Uri,
    /// The URL as logs may show it: no query (it may carry a key).
    pub(super) url_for_logs: String,
    pub(super) client: HttpClient,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<Secret>,
    pub(super) auth: ClientAuth,
    pub(super) format: BodyFormat,
    pub(super) timeout: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) headers: HeaderMap,
}

impl TokenEndpoint {
    pub(super) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Starts configuring the token endpoint at `url`.
    ///
    /// Defaults: [`ClientAuth::Basic`], [`BodyFormat::Form`],
    /// [`DEFAULT_ENDPOINT_TIMEOUT`], [`DEFAULT_MAX_RESPONSE_BYTES`], `https://`
    /// only (plain `http://` for loopback hosts), and [`HttpClient::https`]
    /// (feature `rustls`) as the HTTP client.
    ///
    /// ```
    /// use tower_bearer::oauth2::TokenEndpoint;
    ///
    /// let endpoint = TokenEndpoint::builder("http://127.0.0.1:8080/token").build().unwrap();
    /// assert_eq!(endpoint.url().port_u16(), Some(8080));
    /// ```
    pub fn builder(url: impl Into<String>) -> TokenEndpointBuilder {
        TokenEndpointBuilder::new(url.into())
    }

    /// The endpoint's URL.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenEndpoint;
    /// let endpoint = TokenEndpoint::builder("https://auth.example/token").build().unwrap();
    /// assert_eq!(endpoint.url().host(), Some("auth.example"));
    /// ```
    pub fn url(&self) -> &Uri {
        &self.inner.url
    }

    /// The client id, if set.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenEndpoint;
    /// let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("me").build().unwrap();
    /// assert_eq!(endpoint.client_id(), Some("me"));
    /// ```
    pub fn client_id(&self) -> Option<&str> {
        self.inner.client_id.as_deref()
    }

    /// The HTTP client requests go through.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenEndpoint;
    /// let endpoint = TokenEndpoint::builder("https://auth.example/token").build().unwrap();
    /// let client = endpoint.http_client().clone(); // share it with a custom exchange
    /// # let _ = client;
    /// ```
    pub fn http_client(&self) -> &HttpClient {
        &self.inner.client
    }

    /// Sends a token request with these parameters (plus client
    /// authentication) and parses the token response.
    ///
    /// ```no_run
    /// # async fn f(endpoint: tower_bearer::oauth2::TokenEndpoint) -> Result<(), tower_bearer::TokenError> {
    /// let response = endpoint.request(&[("grant_type", "client_credentials")]).await?;
    /// println!("expires in {:?}", response.expires_in());
    /// # Ok(()) }
    /// ```
    pub async fn request(&self, params: &[(&str, &str)]) -> Result<TokenResponse, TokenError> {
        let fields = self.request_fields(params).await?;
        Ok(TokenResponse::from_fields(fields)?)
    }

    /// Like [`request`](Self::request), but returns the response's fields as
    /// they are, for non-standard exchanges (Glama's `{"apiKey": …}`). Error
    /// responses, status codes, the timeout and the size cap are handled the
    /// same way.
    ///
    /// ```no_run
    /// # async fn f(endpoint: tower_bearer::oauth2::TokenEndpoint) -> Result<(), tower_bearer::TokenError> {
    /// let fields = endpoint.request_fields(&[("code", "…"), ("code_verifier", "…")]).await?;
    /// let api_key = fields.get("apiKey").and_then(|v| v.as_str());
    /// # let _ = api_key; Ok(()) }
    /// ```
    pub async fn request_fields(
        &self,
        params: &[(&str, &str)],
    ) -> Result<Map<String, Value>, TokenError> {
        let inner = &*self.inner;
        let grant_type = params
            .iter()
            .find(|(k, _)| *k == "grant_type")
            .map_or("", |(_, v)| *v);
        let request = self.build_request(params)?;
        tracing::debug!(endpoint = %inner.url_for_logs, grant_type, "token request");
        let exchange = async {
            let response = inner
                .client
                .send(request)
                .await
                .map_err(EndpointError::Transport)?;
            let (parts, body) = response.into_parts();
            let too_large = EndpointError::ResponseTooLarge {
                status: parts.status,
                limit: inner.max_response_bytes,
            };
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|len| len > inner.max_response_bytes as u64) {
                return Err(too_large);
            }
            let mut body = body;
            let mut collected = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(EndpointError::Transport)?;
                if let Ok(data) = frame.into_data() {
                    if collected.len() + data.len() > inner.max_response_bytes {
                        return Err(too_large);
                    }
                    collected.extend_from_slice(&data);
                }
            }
            Ok((parts, collected))
        };
        let (parts, body) = match tokio::time::timeout(inner.timeout, exchange).await {
            Ok(result) => result.inspect_err(|err| {
                tracing::debug!(endpoint = %inner.url_for_logs, error = %err, "token request failed");
            })?,
            Err(_) => {
                tracing::debug!(endpoint = %inner.url_for_logs, "token request timed out");
                return Err(EndpointError::Timeout(inner.timeout).into());
            }
        };
        tracing::debug!(endpoint = %inner.url_for_logs, status = parts.status.as_u16(), "token response");
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let retry_after = parts
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| parse_retry_after(v.to_str().ok()?, SystemTime::now()));
        parse_fields(parts.status, content_type, &body, retry_after)
    }

    fn build_request(&self, params: &[(&str, &str)]) -> Result<Request<Full<Bytes>>, TokenError> {
        let inner = &*self.inner;
        let mut all: Vec<(&str, &str)> = params.to_vec();
        let mut authorization = None;
        match (&inner.client_id, &inner.client_secret, inner.auth) {
            (Some(id), Some(secret), ClientAuth::Basic) => {
                authorization = Some(basic_auth(id, secret.expose()));
            }
            (Some(id), Some(secret), ClientAuth::RequestBody) => {
                all.push(("client_id", id));
                all.push(("client_secret", secret.expose()));
            }
            (Some(id), _, _) => all.push(("client_id", id)),
            (None, _, _) => {}
        }
        let (body, content_type) = match inner.format {
            BodyFormat::Form => (form_body(&all), "application/x-www-form-urlencoded"),
            BodyFormat::Json => (json_body(&all), "application/json"),
        };
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
        Ok(request)
    }
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("TokenEndpoint")
            .field("url", &inner.url_for_logs)
            .field("client_id", &inner.client_id)
            .field("client_secret", &inner.client_secret)
            .field("auth", &inner.auth)
            .field("format", &inner.format)
            .field("timeout", &inner.timeout)
            .field("max_response_bytes", &inner.max_response_bytes)
            .finish()
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as the
/// delay from `now` (zero for a date in the past).
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod retry_after_tests {
    use super::*;

    #[test]
    fn seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 22 Nov 2026 12:00:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 12:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
