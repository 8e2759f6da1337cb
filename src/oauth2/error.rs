//! Every way an OAuth2 operation fails, in three types: [`BuildError`] when a
//! configuration is refused (nothing was sent), [`OAuth2Error`] when the
//! authorization server answers with an RFC 6749 error, and [`ExchangeError`]
//! for everything else that goes wrong while talking to it.
//!
//! Exchange failures reach callers as a [`TokenError`], whose
//! [`cause`](TokenError::cause) downcasts to `OAuth2Error` or `ExchangeError`.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use super::transport_error::TransportError;
use crate::error::{BoxError, ErrorKind, TokenError};
use crate::redact;

/// A configuration that was refused before anything was sent: a token
/// endpoint or authorization URL that cannot carry credentials safely, no
/// HTTP client, a PKCE verifier length RFC 7636 does not allow.
///
/// URLs in it are shown without user info or query.
///
/// ```
/// use tower_bearer::oauth2::{BuildError, TokenEndpoint};
///
/// let err = TokenEndpoint::builder("http://auth.example.com/token").build().unwrap_err();
/// assert!(matches!(err, BuildError::InsecureUrl { .. }));
/// assert!(err.to_string().contains("allow_insecure_http"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The URL could not be used.
    InvalidUrl {
        /// The URL as given, redacted.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// A plain `http://` URL for a host other than loopback, without
    /// [`allow_insecure_http`](super::TokenEndpointBuilder::allow_insecure_http).
    InsecureUrl {
        /// The URL as given, redacted.
        url: String,
    },
    /// No HTTP client was given and the `rustls` feature is off.
    NoHttpClient,
    /// The TLS settings of an [`HttpClientBuilder`](super::HttpClientBuilder)
    /// cannot be used: a certificate bundle or key that cannot be read, a
    /// certificate that does not fit its key, no root to trust.
    Tls(String),
    /// A proxy URL that cannot be used.
    InvalidProxy {
        /// The URL as given, redacted.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// A PKCE verifier length outside the 43 to 128 characters of RFC 7636 §4.1.
    VerifierLength(usize),
    /// A client authentication method without what it needs: `private_key_jwt`
    /// without a signing key, `client_secret_jwt` without a client secret of
    /// at least 32 bytes, either without a client id.
    MissingCredential {
        /// The method (`private_key_jwt`, `client_secret_jwt`).
        method: &'static str,
        /// What it lacks.
        needs: &'static str,
    },
    /// A JWT assertion that cannot be made as configured (no issuer, no
    /// audience, a zero lifetime, a registered claim set by hand), said why.
    InvalidAssertion(&'static str),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidUrl { url, reason } => write!(f, "invalid URL `{url}`: {reason}"),
            BuildError::InsecureUrl { url } => write!(
                f,
                "refusing plain-http URL `{url}`: use https://, a loopback host, or allow_insecure_http(true)"
            ),
            BuildError::NoHttpClient => f.write_str(
                "no HTTP client for the token endpoint: pass one with http_client() or enable the `rustls` feature",
            ),
            BuildError::Tls(reason) => write!(f, "TLS settings refused: {reason}"),
            BuildError::InvalidProxy { url, reason } => {
                write!(f, "invalid proxy URL `{url}`: {reason}")
            }
            BuildError::VerifierLength(len) => write!(
                f,
                "a PKCE verifier has 43 to 128 characters (RFC 7636 §4.1), not {len}"
            ),
            BuildError::MissingCredential { method, needs } => {
                write!(f, "client authentication `{method}` needs {needs}")
            }
            BuildError::InvalidAssertion(reason) => write!(f, "invalid JWT assertion: {reason}"),
        }
    }
}

impl StdError for BuildError {}

impl From<BuildError> for TokenError {
    fn from(err: BuildError) -> Self {
        TokenError::from_cause(ErrorKind::Permanent, err, None)
    }
}

/// Anything but an RFC 6749 error response that goes wrong while exchanging
/// with a token endpoint or checking what came back to the redirect URI.
///
/// Never shows a secret: response excerpts are kept only for non-2xx
/// responses, cut short, and redacted.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::oauth2::ExchangeError;
/// use tower_bearer::{ErrorKind, TokenError};
///
/// let err = TokenError::from(ExchangeError::Timeout(Duration::from_secs(10)));
/// assert_eq!(err.kind(), ErrorKind::Transient);
/// let cause = err.cause().and_then(|c| c.downcast_ref::<ExchangeError>());
/// assert!(matches!(cause, Some(ExchangeError::Timeout(_))));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The endpoint did not answer in time.
    Timeout(Duration),
    /// The request could not be sent or the response not read: the HTTP
    /// client's error, its text made safe to print (also the error's
    /// [`source`](std::error::Error::source)).
    Transport(TransportError),
    /// The TLS handshake failed over a certificate: the endpoint's was not
    /// trusted (unknown issuer, expired, another name) or the endpoint did
    /// not accept the client's. Permanent: trying again cannot help until the
    /// trusted roots, the client certificate or the endpoint change. Holds
    /// the TLS library's verdict (`invalid peer certificate: UnknownIssuer`),
    /// the root cause of the failure.
    Certificate(String),
    /// The response body was larger than the cap.
    ResponseTooLarge {
        /// The response status.
        status: StatusCode,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The response was neither a token nor an RFC 6749 error.
    UnexpectedResponse {
        /// The response status.
        status: StatusCode,
        /// What was wrong with it.
        reason: String,
        /// The start of the body, redacted (only for non-2xx responses).
        excerpt: Option<String>,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The server issued a token of another type than `Bearer` or `DPoP`
    /// (as sent, made safe to print), or a `DPoP` token to an endpoint
    /// without a DPoP key, which cannot make the proofs it needs.
    UnsupportedTokenType(String),
    /// The server answered a token request that carried a DPoP proof with a
    /// `Bearer` token, from an endpoint that
    /// [requires](super::TokenEndpointBuilder::require_dpop_bound) DPoP-bound
    /// tokens (RFC 9449 §5 lets a server decline to bind; the client may
    /// then refuse the token).
    DpopNotBound,
    /// The `state` returned to the redirect URI is not the one sent (possible CSRF).
    StateMismatch,
    /// The redirect URI was reached without a `code`.
    MissingCode,
    /// The authorization response names another issuer than the one the
    /// authorization request was sent to (RFC 9207 `iss`): a mix-up attack,
    /// or a response meant for another flow. Nothing was sent.
    IssuerMismatch {
        /// The issuer the request was sent to.
        expected: String,
        /// The `iss` returned, made safe to print.
        returned: String,
    },
    /// The authorization response has no `iss`, though the authorization
    /// server says it always sends one (its metadata's
    /// `authorization_response_iss_parameter_supported`). Nothing was sent.
    MissingIssuer {
        /// The issuer the request was sent to.
        expected: String,
    },
    /// This pending authorization was already exchanged (or its exchange
    /// began): its code is sent at most once, since a server that sees a
    /// code twice must revoke what it issued for it (RFC 6749 §4.1.2).
    /// Nothing was sent; start a new authorization.
    AlreadyExchanged,
    /// What reached the redirect URI is not an authorization response this
    /// client can read (an unparsable query, a repeated parameter, parameters
    /// in the fragment).
    InvalidCallback(&'static str),
    /// An authorization started with one issuer was being finished with the
    /// flow of another, whose token endpoint must not receive the code (an
    /// app choosing the flow from something the attacker controls is the
    /// classic mix-up). Nothing was sent.
    FlowMismatch {
        /// The issuer the authorization was started with.
        started_with: String,
        /// The issuer of the flow asked to finish it.
        finishing_with: String,
    },
}

impl ExchangeError {
    /// A transport failure: a certificate failure found anywhere in its chain
    /// becomes [`ExchangeError::Certificate`], anything else stays a
    /// [`ExchangeError::Transport`].
    /// `sent` are the secrets the request carried, should the client's
    /// error quote it.
    pub(crate) fn transport(err: BoxError, sent: &[&str]) -> Self {
        match super::tls_failure::certificate_failure(&*err) {
            Some(reason) => ExchangeError::Certificate(reason),
            None => ExchangeError::Transport(TransportError::with_secrets_sent(err, sent)),
        }
    }

    /// Transient for timeouts, transport errors and 5xx/429/408 responses;
    /// permanent for everything else, certificate failures included.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExchangeError::Timeout(_) | ExchangeError::Transport(_) => ErrorKind::Transient,
            ExchangeError::ResponseTooLarge { status, .. }
            | ExchangeError::UnexpectedResponse { status, .. } => status_kind(Some(*status)),
            _ => ErrorKind::Permanent,
        }
    }

    /// `true` for an answer that is about the endpoint itself (`429 Too Many
    /// Requests`, `503 Service Unavailable`), not about this client: see
    /// [`TokenError::endpoint_overloaded`].
    pub fn is_endpoint_overload(&self) -> bool {
        match self {
            ExchangeError::ResponseTooLarge { status, .. }
            | ExchangeError::UnexpectedResponse { status, .. } => overloaded_status(*status),
            _ => false,
        }
    }
}

/// The statuses by which a server says it is overloaded, whoever asks.
fn overloaded_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Timeout(limit) => {
                write!(f, "token endpoint did not answer within {limit:?}")
            }
            // The cause is the source, not repeated here.
            ExchangeError::Transport(_) => f.write_str("token endpoint unreachable"),
            ExchangeError::Certificate(reason) => {
                write!(f, "TLS certificate failure with the token endpoint: {reason}")
            }
            ExchangeError::ResponseTooLarge { status, limit } => write!(
                f,
                "token endpoint response (HTTP {}) is larger than {limit} bytes",
                status.as_u16()
            ),
            ExchangeError::UnexpectedResponse {
                status,
                reason,
                excerpt,
                ..
            } => {
                write!(f, "unexpected token endpoint response (HTTP {}): {reason}", status.as_u16())?;
                if let Some(excerpt) = excerpt {
                    write!(f, "; body starts: \"{excerpt}\"")?;
                }
                Ok(())
            }
            ExchangeError::UnsupportedTokenType(kind) if kind.eq_ignore_ascii_case("dpop") => write!(
                f,
                "token endpoint issued a `{kind}` token, but this endpoint has no DPoP key to make its proofs (TokenEndpointBuilder::dpop)"
            ),
            ExchangeError::UnsupportedTokenType(kind) => write!(
                f,
                "token endpoint issued a `{kind}` token; Bearer and DPoP tokens are supported"
            ),
            ExchangeError::DpopNotBound => f.write_str(
                "token endpoint issued a Bearer token though the request carried a DPoP proof and DPoP-bound tokens are required",
            ),
            ExchangeError::StateMismatch => f.write_str(
                "the `state` returned to the redirect URI does not match the one sent (possible CSRF)",
            ),
            ExchangeError::MissingCode => f.write_str("the redirect URI was reached without a `code`"),
            ExchangeError::IssuerMismatch { expected, returned } => write!(
                f,
                "the authorization response comes from issuer `{returned}`, not `{expected}` (RFC 9207 `iss`; possible mix-up attack); the code was not exchanged"
            ),
            ExchangeError::MissingIssuer { expected } => write!(
                f,
                "the authorization response has no `iss`, though `{expected}` always sends one (RFC 9207; possible mix-up attack); the code was not exchanged"
            ),
            ExchangeError::AlreadyExchanged => f.write_str(
                "this pending authorization was already exchanged; a code is sent at most once (RFC 6749 §4.1.2); the code was not sent again",
            ),
            ExchangeError::InvalidCallback(reason) => {
                write!(f, "invalid authorization response: {reason}")
            }
            ExchangeError::FlowMismatch {
                started_with,
                finishing_with,
            } => write!(
                f,
                "the authorization was started with issuer `{started_with}`, not `{finishing_with}`, whose flow was asked to finish it; the code was not exchanged"
            ),
        }
    }
}

impl StdError for ExchangeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ExchangeError::Transport(err) => Some(err),
            _ => None,
        }
    }
}

impl From<ExchangeError> for TokenError {
    fn from(err: ExchangeError) -> Self {
        let retry_after = match &err {
            ExchangeError::UnexpectedResponse { retry_after, .. } => *retry_after,
            _ => None,
        };
        let overloaded = err.is_endpoint_overload();
        TokenError::from_cause(err.kind(), err, retry_after).endpoint_overloaded_if(overloaded)
    }
}

/// The `error` code of an RFC 6749 §5.2 error response (or of an authorization
/// redirect, §4.1.2.1).
///
/// ```
/// use tower_bearer::oauth2::ErrorCode;
///
/// assert_eq!(ErrorCode::from("invalid_grant"), ErrorCode::InvalidGrant);
/// assert_eq!(ErrorCode::InvalidScope.as_str(), "invalid_scope");
/// assert_eq!(ErrorCode::from("x_custom").as_str(), "x_custom");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`: malformed request.
    InvalidRequest,
    /// `invalid_client`: client authentication failed (wrong secret, unknown client).
    InvalidClient,
    /// `invalid_grant`: the code, refresh token or credentials are invalid, expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant type.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`.
    InvalidScope,
    /// `invalid_target` (RFC 8707): an unknown `resource`.
    InvalidTarget,
    /// `access_denied` (authorization redirect): the user said no.
    AccessDenied,
    /// `server_error`.
    ServerError,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// `slow_down` (RFC 8628).
    SlowDown,
    /// `use_dpop_nonce` (RFC 9449 §8): the server wants a nonce in the DPoP
    /// proof, and hands one out in the `DPoP-Nonce` header. A token endpoint
    /// with a DPoP key retries once with it by itself; transient.
    UseDpopNonce,
    /// `invalid_dpop_proof` (RFC 9449 §5): the DPoP proof was refused.
    InvalidDpopProof,
    /// Any other code.
    Other(String),
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::Other(code) => code,
        }
    }
}

impl From<&str> for ErrorCode {
    fn from(code: &str) -> Self {
        match code {
            "invalid_request" => ErrorCode::InvalidRequest,
            "invalid_client" => ErrorCode::InvalidClient,
            "invalid_grant" => ErrorCode::InvalidGrant,
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => ErrorCode::UnsupportedGrantType,
            "invalid_scope" => ErrorCode::InvalidScope,
            "invalid_target" => ErrorCode::InvalidTarget,
            "access_denied" => ErrorCode::AccessDenied,
            "server_error" => ErrorCode::ServerError,
            "temporarily_unavailable" => ErrorCode::TemporarilyUnavailable,
            "slow_down" => ErrorCode::SlowDown,
            "use_dpop_nonce" => ErrorCode::UseDpopNonce,
            "invalid_dpop_proof" => ErrorCode::InvalidDpopProof,
            other => ErrorCode::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error response from an authorization server (RFC 6749 §5.2), or an
/// error returned to the redirect URI (§4.1.2.1, no HTTP status then).
///
/// What the server sent is kept safe to print, whoever prints it: control
/// characters escaped (no forged log lines), at most 200 characters per text,
/// the values of secret parameters and any secret the client sent (the
/// refresh token, the client secret, the code) shown as `[redacted]`, and the
/// `error_uri` without user info or query. The constructors below apply the
/// same rules.
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use tower_bearer::oauth2::{ErrorCode, OAuth2Error};
/// use tower_bearer::TokenError;
///
/// let err = OAuth2Error::new(Some(StatusCode::UNAUTHORIZED), "invalid_client")
///     .with_description("client authentication failed")
///     .with_retry_after(Duration::from_secs(5));
/// assert!(err.is_permanent());
/// assert_eq!(err.error_description(), Some("client authentication failed"));
///
/// // Fetches report it inside a `TokenError`.
/// let token_error = TokenError::from(err);
/// let cause = token_error.cause().unwrap().downcast_ref::<OAuth2Error>().unwrap();
/// assert_eq!(cause.code(), &ErrorCode::InvalidClient);
/// assert_eq!(cause.status(), Some(StatusCode::UNAUTHORIZED));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Error {
    status: Option<StatusCode>,
    code: ErrorCode,
    description: Option<String>,
    uri: Option<String>,
    retry_after: Option<Duration>,
}

impl OAuth2Error {
    /// An error with the HTTP status it came with and its `error` code.
    pub fn new(status: Option<StatusCode>, error: &str) -> Self {
        Self::from_server(status, error, None, None, &[])
    }

    /// What a server sent, made safe to print; `sent` are the secrets the
    /// client sent it, hidden wherever the server echoes them.
    pub(super) fn from_server(
        status: Option<StatusCode>,
        error: &str,
        description: Option<&str>,
        uri: Option<&str>,
        sent: &[&str],
    ) -> Self {
        Self {
            status,
            code: ErrorCode::from(redact::server_text(error, sent).as_str()),
            description: description.map(|d| redact::server_text(d, sent)),
            uri: uri.map(|u| redact::server_url(u, sent)),
            retry_after: None,
        }
    }

    /// Adds the `error_description`.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(redact::server_text(&description.into(), &[]));
        self
    }

    /// Adds the `error_uri`.
    pub fn with_uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = Some(redact::server_url(&uri.into(), &[]));
        self
    }

    /// Adds the delay of a `Retry-After` header.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The HTTP status of the response (`None` for an authorization redirect).
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The `error` code as sent.
    pub fn error(&self) -> &str {
        self.code.as_str()
    }

    /// The `error` code, typed.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The `error_description`, if any, made safe to print.
    pub fn error_description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `error_uri`, if any, without user info or query.
    pub fn error_uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }

    /// The server's `Retry-After`, if it sent one (delay-seconds, or an
    /// HTTP-date turned into the delay from when the response arrived).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Transient for `server_error`, `temporarily_unavailable`, `slow_down`,
    /// `use_dpop_nonce` (the next request carries the nonce the server handed
    /// out), and for unknown codes with a 5xx, 429 or 408 status; permanent otherwise
    /// (`invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_request`, …).
    pub fn kind(&self) -> ErrorKind {
        match &self.code {
            ErrorCode::ServerError
            | ErrorCode::TemporarilyUnavailable
            | ErrorCode::SlowDown
            | ErrorCode::UseDpopNonce => ErrorKind::Transient,
            ErrorCode::Other(_) => status_kind(self.status),
            _ => ErrorKind::Permanent,
        }
    }

    /// `true` if retrying cannot help without a change of configuration or credentials.
    pub fn is_permanent(&self) -> bool {
        self.kind() == ErrorKind::Permanent
    }

    /// `true` for `temporarily_unavailable` and `slow_down`, and for any code
    /// that came with `429` or `503`: the endpoint speaks of itself, not of
    /// this client (see [`TokenError::endpoint_overloaded`]). `invalid_client`
    /// or `server_error` are the client's own, whatever `Retry-After` says.
    pub fn is_endpoint_overload(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::TemporarilyUnavailable | ErrorCode::SlowDown
        ) || self.status.is_some_and(overloaded_status)
    }
}

impl fmt::Display for OAuth2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authorization server error `{}`", self.code)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {})", status.as_u16())?;
        }
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        Ok(())
    }
}

impl StdError for OAuth2Error {}

impl From<OAuth2Error> for TokenError {
    fn from(err: OAuth2Error) -> Self {
        let (kind, retry_after) = (err.kind(), err.retry_after);
        let overloaded = err.is_endpoint_overload();
        TokenError::from_cause(kind, err, retry_after).endpoint_overloaded_if(overloaded)
    }
}

/// Why an authorization server's metadata (RFC 8414, OpenID Connect
/// Discovery) could not be had from [`Discovery`](super::Discovery):
/// the issuer URL or the document was refused, or fetching it failed.
///
/// Anything the server sent is made safe to print before it is kept.
///
/// ```
/// use tower_bearer::oauth2::{Discovery, DiscoveryError};
///
/// // RFC 8414 §3.3: the document must name the issuer it was asked for.
/// let err = Discovery::new("https://idp.example")
///     .parse(br#"{"issuer":"https://evil.example","token_endpoint":"https://evil.example/token"}"#)
///     .unwrap_err();
/// assert!(matches!(err, DiscoveryError::IssuerMismatch { ref found, .. } if found == "https://evil.example"));
/// assert!(err.is_permanent());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer URL can't be used (not `https://`, a query or fragment,
    /// RFC 8414 §2), or there is no HTTP client.
    Build(BuildError),
    /// Fetching a document failed: timeout, transport, a response too large,
    /// a status other than success or "not here" (4xx).
    Fetch(ExchangeError),
    /// No well-known location had a document (each answered 4xx).
    NotFound {
        /// The URLs asked, in order.
        tried: Vec<String>,
    },
    /// The document names another issuer than the one asked for
    /// (RFC 8414 §3.3): it must not be used, or an attacker's endpoints
    /// would stand in for the real ones.
    IssuerMismatch {
        /// The issuer asked for.
        expected: String,
        /// The `issuer` in the document, made safe to print.
        found: String,
    },
    /// The document is not valid metadata (not a JSON object, no
    /// `token_endpoint`, a field of the wrong type).
    InvalidDocument(String),
    /// An endpoint in the document can't be used (`http://` to a host that
    /// is not loopback, not a URL).
    InvalidEndpoint {
        /// The metadata field (`token_endpoint`, `authorization_endpoint`).
        field: &'static str,
        /// Why not.
        error: BuildError,
    },
    /// The document has no such endpoint, and it is needed
    /// (`authorization_endpoint` for the authorization-code flow).
    MissingEndpoint(&'static str),
}

impl DiscoveryError {
    /// Transient when fetching failed in a way that may pass (timeouts,
    /// transport errors, 5xx, 429); permanent otherwise.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DiscoveryError::Fetch(err) => err.kind(),
            _ => ErrorKind::Permanent,
        }
    }

    /// `true` if retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        self.kind() == ErrorKind::Permanent
    }
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("authorization server discovery failed: ")?;
        match self {
            DiscoveryError::Build(err) => fmt::Display::fmt(err, f),
            DiscoveryError::Fetch(err) => fmt::Display::fmt(err, f),
            DiscoveryError::NotFound { tried } => {
                write!(f, "no metadata document at {}", tried.join(", "))
            }
            DiscoveryError::IssuerMismatch { expected, found } => write!(
                f,
                "the metadata names issuer `{found}`, not `{expected}` (RFC 8414 §3.3); it was not used"
            ),
            DiscoveryError::InvalidDocument(reason) => write!(f, "invalid metadata: {reason}"),
            DiscoveryError::InvalidEndpoint { field, error } => write!(f, "`{field}`: {error}"),
            DiscoveryError::MissingEndpoint(field) => {
                write!(f, "the metadata has no `{field}`")
            }
        }
    }
}

impl StdError for DiscoveryError {
    // The crate's rule: `Display` does not repeat the source. These variants
    // display their cause's message as their own, so they continue with the
    // cause's source rather than print it twice.
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            DiscoveryError::Build(err) | DiscoveryError::InvalidEndpoint { error: err, .. } => {
                err.source()
            }
            DiscoveryError::Fetch(err) => err.source(),
            _ => None,
        }
    }
}

impl From<BuildError> for DiscoveryError {
    fn from(err: BuildError) -> Self {
        DiscoveryError::Build(err)
    }
}

impl From<DiscoveryError> for TokenError {
    fn from(err: DiscoveryError) -> Self {
        let retry_after = match &err {
            DiscoveryError::Fetch(ExchangeError::UnexpectedResponse { retry_after, .. }) => {
                *retry_after
            }
            _ => None,
        };
        let overloaded =
            matches!(&err, DiscoveryError::Fetch(fetch) if fetch.is_endpoint_overload());
        TokenError::from_cause(err.kind(), err, retry_after).endpoint_overloaded_if(overloaded)
    }
}

/// 5xx, 429 and 408 may pass; other failures will not.
fn status_kind(status: Option<StatusCode>) -> ErrorKind {
    match status {
        Some(s) if s.is_server_error() => ErrorKind::Transient,
        Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT) => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which answers say the endpoint itself is overloaded, so that an
    /// `EndpointGate` pauses the other keys, and which stay the key's own.
    #[test]
    fn overload_answers_are_marked_and_others_are_not() {
        let oauth = |status: u16, code: &str| {
            TokenError::from(OAuth2Error::new(
                Some(StatusCode::from_u16(status).unwrap()),
                code,
            ))
        };
        let unexpected = |status: u16| {
            TokenError::from(ExchangeError::UnexpectedResponse {
                status: StatusCode::from_u16(status).unwrap(),
                reason: "not JSON".into(),
                excerpt: None,
                retry_after: Some(Duration::from_secs(600)),
            })
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, TokenError, bool)> = vec![
            ("429 page", unexpected(429), true),
            ("503 page", unexpected(503), true),
            ("500 page with Retry-After", unexpected(500), false),
            ("temporarily_unavailable", oauth(400, "temporarily_unavailable"), true),
            ("slow_down", oauth(400, "slow_down"), true),
            ("unknown code with 429", oauth(429, "rate_limited"), true),
            ("invalid_client", oauth(401, "invalid_client"), false),
            ("invalid_client with Retry-After", OAuth2Error::new(Some(StatusCode::UNAUTHORIZED), "invalid_client").with_retry_after(Duration::from_secs(600)).into(), false),
            ("server_error", oauth(500, "server_error"), false),
            ("timeout", ExchangeError::Timeout(Duration::from_secs(1)).into(), false),
            ("discovery behind a 503", DiscoveryError::Fetch(ExchangeError::UnexpectedResponse { status: StatusCode::SERVICE_UNAVAILABLE, reason: "x".into(), excerpt: None, retry_after: None }).into(), true),
        ];
        for (name, error, overloaded) in cases {
            assert_eq!(error.is_endpoint_overload(), overloaded, "{name}");
        }
    }

    /// The crate's rule holds for discovery errors too: each message once.
    #[test]
    fn discovery_errors_print_each_message_once() {
        use crate::error::Chain;
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let fetch =
            DiscoveryError::Fetch(ExchangeError::Transport(TransportError::new(Box::new(io))));
        assert_eq!(
            Chain(&fetch).to_string(),
            "authorization server discovery failed: token endpoint unreachable: refused"
        );
        let build = DiscoveryError::Build(BuildError::NoHttpClient);
        assert_eq!(Chain(&build).to_string(), build.to_string());
    }

    #[test]
    fn classification() {
        let permanent = [
            OAuth2Error::new(Some(StatusCode::BAD_REQUEST), "invalid_grant").kind(),
            ExchangeError::StateMismatch.kind(),
            ExchangeError::UnexpectedResponse {
                status: StatusCode::FORBIDDEN,
                reason: String::new(),
                excerpt: None,
                retry_after: None,
            }
            .kind(),
        ];
        assert!(permanent.iter().all(|k| *k == ErrorKind::Permanent));
        let transient = [
            OAuth2Error::new(Some(StatusCode::SERVICE_UNAVAILABLE), "whatever").kind(),
            OAuth2Error::new(Some(StatusCode::BAD_REQUEST), "temporarily_unavailable").kind(),
            ExchangeError::Timeout(Duration::from_secs(1)).kind(),
            ExchangeError::ResponseTooLarge {
                status: StatusCode::TOO_MANY_REQUESTS,
                limit: 1,
            }
            .kind(),
        ];
        assert!(transient.iter().all(|k| *k == ErrorKind::Transient));
    }
}
