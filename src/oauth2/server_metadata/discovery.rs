//! Discovery: from an issuer URL to its metadata document (RFC 8414 §3,
//! OpenID Connect Discovery §4), at the well-known locations both define.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::ACCEPT;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;

use super::metadata::AuthorizationServerMetadata;
use crate::oauth2::browser_flow::uri_reference::UriReference;
use crate::oauth2::endpoint::response::retry_after;
use crate::oauth2::endpoint::token_endpoint::read_capped;
use crate::oauth2::transport::http_client::HttpClient;
use crate::oauth2::transport::secure_url;
use crate::oauth2::{BuildError, DiscoveryError, ExchangeError};
use crate::redact;

/// How long fetching one document may take unless set otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest document read unless set otherwise: real ones are a few KiB.
const DEFAULT_MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Finds an authorization server's metadata from its issuer identifier
/// (RFC 8414, OpenID Connect Discovery) and checks that the document is
/// that issuer's (RFC 8414 §3.3), so that the endpoints, the client
/// authentication and the RFC 9207 `iss` check come from the server itself.
///
/// [`fetch`](Self::fetch) asks, in order, until one answers other than 4xx:
///
/// 1. `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery §4);
/// 2. `{origin}/.well-known/oauth-authorization-server{path}` (RFC 8414 §3.1);
/// 3. `{origin}/.well-known/openid-configuration{path}` (RFC 8414 §5), for
///    issuers with a path.
///
/// The issuer must be `https://` (or `http://` on a loopback host, or with
/// [`allow_insecure_http`](Self::allow_insecure_http)), without query or
/// fragment (RFC 8414 §2), and so must every endpoint the document names.
/// Redirects are not followed.
///
/// ```no_run
/// use tower_bearer::oauth2::Discovery;
/// use tower_bearer::BearerAuthLayer;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let metadata = Discovery::new("https://accounts.example.com").fetch().await?;
/// let endpoint = metadata
///     .token_endpoint_builder()
///     .client_id("app")
///     .client_secret("secret")
///     .build()?;
/// let flow = metadata
///     .authorization_code(endpoint)?
///     .redirect_uri("https://app.example/callback")
///     .scope("openid");
/// let request = flow.start();
/// // Send the user to request.url(); keep request.pending() in the session.
/// # let _ = request; Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct Discovery {
    issuer: String,
    http: Option<HttpClient>,
    timeout: Duration,
    max_document_bytes: usize,
    allow_insecure_http: bool,
}

impl Discovery {
    /// Discovery for the issuer identifier `issuer`, compared exactly with
    /// the document's `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            http: None,
            timeout: DEFAULT_TIMEOUT,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            allow_insecure_http: false,
        }
    }

    /// The HTTP client to fetch through, and for the token endpoint built
    /// from the metadata. Defaults to [`HttpClient::https`] with the
    /// `rustls` feature; required without it.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// How long fetching one document may take, body included. Defaults to
    /// 10 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest document read, in bytes. Defaults to 256 KiB.
    pub fn max_document_bytes(mut self, limit: usize) -> Self {
        self.max_document_bytes = limit;
        self
    }

    /// Allows plain `http://` for the issuer and its endpoints on hosts
    /// other than loopback; see
    /// [`TokenEndpointBuilder::allow_insecure_http`](crate::oauth2::TokenEndpointBuilder::allow_insecure_http).
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Fetches the metadata from the well-known locations and checks it.
    pub async fn fetch(&self) -> Result<AuthorizationServerMetadata, DiscoveryError> {
        let locations = well_known_urls(&self.issuer, self.allow_insecure_http)?;
        let http = match &self.http {
            Some(client) => client.clone(),
            None => default_http_client()?,
        };
        let mut tried = Vec::new();
        for location in locations {
            let shown = redact::url(&location);
            tracing::debug!(issuer = %redact::url(&self.issuer), location = %shown, "discovery");
            let fetched = tokio::time::timeout(self.timeout, self.get(&http, &location)).await;
            let (status, retry_after, body) = match fetched {
                Ok(result) => result.map_err(DiscoveryError::Fetch)?,
                Err(_) => return Err(DiscoveryError::Fetch(ExchangeError::Timeout(self.timeout))),
            };
            match step(status) {
                Step::Read => {
                    return AuthorizationServerMetadata::parse(
                        &self.issuer,
                        &body,
                        self.http.clone(),
                        self.allow_insecure_http,
                    )
                }
                Step::TryNext => tried.push(shown),
                Step::Fail(reason) => {
                    return Err(DiscoveryError::Fetch(ExchangeError::UnexpectedResponse {
                        status,
                        reason: format!("{reason} ({shown})"),
                        excerpt: Some(redact::excerpt(&body, &[])),
                        retry_after,
                    }))
                }
            }
        }
        Err(DiscoveryError::NotFound { tried })
    }

    /// Checks a metadata document obtained otherwise (a copy kept from an
    /// earlier [`fetch`](Self::fetch), a non-standard location) exactly as
    /// `fetch` checks what it fetches.
    pub fn parse(&self, document: &[u8]) -> Result<AuthorizationServerMetadata, DiscoveryError> {
        well_known_urls(&self.issuer, self.allow_insecure_http)?;
        AuthorizationServerMetadata::parse(
            &self.issuer,
            document,
            self.http.clone(),
            self.allow_insecure_http,
        )
    }

    async fn get(
        &self,
        http: &HttpClient,
        location: &str,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), ExchangeError> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.method_mut() = Method::GET;
        *request.uri_mut() = location
            .parse()
            .map_err(|_| ExchangeError::UnexpectedResponse {
                status: StatusCode::BAD_REQUEST,
                reason: "the well-known URL is not a valid request URI".to_owned(),
                excerpt: None,
                retry_after: None,
            })?;
        request
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let response = http
            .send(request)
            .await
            .map_err(|err| ExchangeError::transport(err, &[]))?;
        let (parts, body) = response.into_parts();
        let retry_after = retry_after(&parts.headers, SystemTime::now());
        let body = read_capped(body, &parts, self.max_document_bytes, &[]).await?;
        Ok((parts.status, retry_after, body))
    }
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("issuer", &redact::url(&self.issuer))
            .field("timeout", &self.timeout)
            .field("max_document_bytes", &self.max_document_bytes)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish_non_exhaustive()
    }
}

/// What a well-known location's answer means.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A document: read it (and stop, whatever it says).
    Read,
    /// Not here: ask the next location.
    TryNext,
    /// Something is wrong that another location will not fix.
    Fail(&'static str),
}

fn step(status: StatusCode) -> Step {
    if status.is_success() {
        Step::Read
    } else if status.is_redirection() {
        Step::Fail("redirects are not followed")
    } else if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        Step::Fail("the server is busy")
    } else if status.is_client_error() {
        Step::TryNext
    } else {
        Step::Fail("the server failed")
    }
}

/// Where the metadata of `issuer` may be, in the order asked; or why the
/// issuer cannot be one (RFC 8414 §2: `https`, no query, no fragment).
fn well_known_urls(issuer: &str, allow_insecure_http: bool) -> Result<Vec<String>, BuildError> {
    let invalid = |reason| BuildError::InvalidUrl {
        url: redact::url(issuer),
        reason,
    };
    let parts = UriReference::split(issuer);
    if parts.query.is_some() || parts.fragment.is_some() {
        return Err(invalid("an issuer has no query or fragment (RFC 8414 §2)"));
    }
    let uri = secure_url::parse(issuer, allow_insecure_http)?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(invalid("not an absolute URL"));
    };
    let origin = format!("{scheme}://{authority}");
    let path = uri.path().trim_end_matches('/');
    let mut urls = vec![
        format!("{origin}{path}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ];
    if !path.is_empty() {
        urls.push(format!("{origin}/.well-known/openid-configuration{path}"));
    }
    Ok(urls)
}

#[cfg(feature = "rustls")]
fn default_http_client() -> Result<HttpClient, BuildError> {
    Ok(HttpClient::https())
}

#[cfg(not(feature = "rustls"))]
fn default_http_client() -> Result<HttpClient, BuildError> {
    Err(BuildError::NoHttpClient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_locations() {
        let cases: &[(&str, &[&str])] = &[
            (
                "https://idp.example",
                &[
                    "https://idp.example/.well-known/openid-configuration",
                    "https://idp.example/.well-known/oauth-authorization-server",
                ],
            ),
            (
                "https://idp.example/",
                &[
                    "https://idp.example/.well-known/openid-configuration",
                    "https://idp.example/.well-known/oauth-authorization-server",
                ],
            ),
            (
                "https://idp.example:8443/tenants/42",
                &[
                    "https://idp.example:8443/tenants/42/.well-known/openid-configuration",
                    "https://idp.example:8443/.well-known/oauth-authorization-server/tenants/42",
                    "https://idp.example:8443/.well-known/openid-configuration/tenants/42",
                ],
            ),
            (
                "http://127.0.0.1:8080/realms/app/",
                &[
                    "http://127.0.0.1:8080/realms/app/.well-known/openid-configuration",
                    "http://127.0.0.1:8080/.well-known/oauth-authorization-server/realms/app",
                    "http://127.0.0.1:8080/.well-known/openid-configuration/realms/app",
                ],
            ),
        ];
        for (issuer, expected) in cases {
            assert_eq!(
                well_known_urls(issuer, false).unwrap(),
                *expected,
                "{issuer}"
            );
        }
    }

    #[test]
    fn issuers_that_cannot_be() {
        let cases = [
            ("https://idp.example?tenant=1", "no query or fragment"),
            ("https://idp.example/#x", "no query or fragment"),
            ("http://idp.example", "refusing plain-http"),
            ("idp.example", "invalid URL"),
            ("https://user:pw@idp.example", "credentials in the URL"),
        ];
        for (issuer, reason) in cases {
            let err = well_known_urls(issuer, false).unwrap_err();
            assert!(err.to_string().contains(reason), "{issuer}: {err}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
        assert!(well_known_urls("http://idp.example", true).is_ok());
    }

    #[test]
    fn what_each_status_means() {
        let cases = [
            (200, Step::Read),
            (203, Step::Read),
            (404, Step::TryNext),
            (410, Step::TryNext),
            (403, Step::TryNext),
            (400, Step::TryNext),
            (301, Step::Fail("redirects are not followed")),
            (429, Step::Fail("the server is busy")),
            (408, Step::Fail("the server is busy")),
            (500, Step::Fail("the server failed")),
            (503, Step::Fail("the server failed")),
        ];
        for (status, expected) in cases {
            assert_eq!(
                step(StatusCode::from_u16(status).unwrap()),
                expected,
                "{status}"
            );
        }
    }
}
