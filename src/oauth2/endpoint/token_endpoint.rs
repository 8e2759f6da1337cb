//! `TokenEndpoint`: where token requests go and how each is sent and read.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value};

use super::body_format::BodyFormat;
use super::response::{parse_fields, TokenResponse};
use crate::dpop::{DpopProver, DPOP, DPOP_NONCE};
use crate::error::{Chain, TokenError};
use crate::oauth2::client_authentication::client_auth::ClientIdentity;
use crate::oauth2::transport::http_client::{HttpBody, HttpClient};
use crate::oauth2::{ErrorCode, ExchangeError, OAuth2Error, TokenEndpointBuilder};
use crate::redact;
use crate::secret::Secret;

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
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) url: Uri,
    /// The URL as logs and errors may show it.
    pub(super) url_for_logs: String,
    pub(super) http: HttpClient,
    pub(super) client: ClientIdentity,
    pub(super) format: BodyFormat,
    pub(super) timeout: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) headers: HeaderMap,
    /// The URL as proofs name it (`htu`) and nonces are kept by.
    pub(super) url_text: String,
    /// The DPoP key every token request proves possession of, if any.
    pub(super) dpop: Option<Arc<dyn DpopProver>>,
    /// Whether a `Bearer` answer to a request with a proof is an error.
    pub(super) require_dpop_bound: bool,
}

impl TokenEndpoint {
    /// Starts configuring the token endpoint at `url`.
    pub fn builder(url: impl Into<String>) -> TokenEndpointBuilder {
        TokenEndpointBuilder::new(url.into())
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
        self.request_with(params, None).await
    }

    /// Like [`request`](Self::request), with a parameter made afresh for
    /// each request sent: a grant's signed assertion (RFC 7523 §2.1), which
    /// a server may take once (its `jti`), so that the second request of a
    /// DPoP nonce challenge carries a new one, as client authentication does.
    pub(crate) async fn request_with(
        &self,
        params: &[(&str, &str)],
        fresh: Option<FreshParam<'_>>,
    ) -> Result<TokenResponse, TokenError> {
        let fields = self.exchange(params, fresh).await?;
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
        self.exchange(params, None).await
    }

    /// A token request, and its second send when the server asks for a
    /// DPoP nonce.
    async fn exchange(
        &self,
        params: &[(&str, &str)],
        fresh: Option<FreshParam<'_>>,
    ) -> Result<Map<String, Value>, TokenError> {
        let inner = &*self.inner;
        let grant_type = params
            .iter()
            .find(|(k, _)| *k == "grant_type")
            .map_or("", |(_, v)| *v);
        tracing::debug!(endpoint = %inner.url_for_logs, grant_type, "token request");
        match self.send(params, fresh).await {
            Sent::NonceChallenge(_) => {
                // The nonce is learned; one more request carries it. Its own
                // challenge is not followed: nonces that never satisfy the
                // server must not make a loop.
                tracing::debug!(endpoint = %inner.url_for_logs, "sending the token request again with the server's DPoP nonce");
                match self.send(params, fresh).await {
                    Sent::NonceChallenge(result) | Sent::Answered(result) => result,
                }
            }
            Sent::Answered(result) => result,
        }
    }

    /// Sends one token request: fresh client authentication and a fresh
    /// proof, a nonce the answer hands out learned.
    async fn send(&self, params: &[(&str, &str)], fresh: Option<FreshParam<'_>>) -> Sent {
        let inner = &*self.inner;
        let presented = match inner.client.present() {
            Ok(presented) => presented,
            Err(err) => return Sent::Answered(Err(err)),
        };
        let fresh = match fresh
            .map(|f| (f.make)().map(|value| (f.name, value)))
            .transpose()
        {
            Ok(fresh) => fresh,
            Err(err) => return Sent::Answered(Err(err)),
        };
        let mut params = params.to_vec();
        if let Some((name, value)) = &fresh {
            // Where the grant would have put it: after `grant_type`.
            params.insert(params.len().min(1), (name, value.expose()));
        }
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

/// A token request parameter made afresh for each request sent (see
/// [`TokenEndpoint::request_with`]). Its value is kept out of errors by its
/// name, as every parameter's is: `assertion` names a secret.
#[derive(Clone, Copy)]
pub(crate) struct FreshParam<'a> {
    pub(crate) name: &'static str,
    pub(crate) make: &'a (dyn Fn() -> Result<Secret, TokenError> + Sync),
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
