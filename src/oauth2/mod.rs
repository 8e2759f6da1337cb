//! OAuth2 token sources and the token endpoint client.
//!
//! Every standard grant is a [`TokenSource`](crate::TokenSource) configured
//! through a [`TokenEndpoint`]:
//!
//! | grant | source |
//! | --- | --- |
//! | client credentials (RFC 6749 §4.4) | [`ClientCredentials`] |
//! | refresh token (RFC 6749 §6), with rotation | [`RefreshTokenSource`] |
//! | authorization code + PKCE (RFC 7636) + `state` + `iss` (RFC 9207) | [`AuthorizationCode`], which hands over a [`RefreshTokenSource`]; [`PendingAuthorization`] (serializable with feature `serde`) lets another process finish it |
//! | token exchange (RFC 8693): a subject token from a file, a source or a value | [`TokenExchange`] with [`SecurityToken`]s |
//! | JWT bearer (RFC 7523 §2.1), feature `jwt` | `JwtBearer` with a `JwtAssertion` |
//! | Google service account (a key file), feature `jwt` | `GoogleServiceAccount` from a `ServiceAccountKey` |
//! | anything else (a custom code-for-API-key exchange) | [`from_fn`](crate::from_fn) + [`PkceVerifier`] + [`TokenEndpoint::request_fields`] + [`StaticToken`](crate::StaticToken) |
//!
//! Clients authenticate with a shared secret ([`ClientAuth`]: HTTP Basic,
//! request parameters), or, with the `jwt` feature, with a signed assertion
//! made afresh for every token request, whatever the grant: `private_key_jwt`
//! (`TokenEndpointBuilder::private_key_jwt` with a `SigningKey`: RS256,
//! PS256 or ES256 from PEM or a JWK, with a `kid`) or `client_secret_jwt`
//! (HS256 with the client secret).
//!
//! The endpoint client sends through any Tower HTTP service you hand it
//! ([`HttpClient::new`]), or, with the default `rustls` feature, through a
//! ready HTTPS client ([`HttpClient::https`], used when none is given). It
//! accepts `https://` URLs only, except on loopback hosts or after
//! [`allow_insecure_http`](TokenEndpointBuilder::allow_insecure_http); has its
//! own timeout (10 seconds unless [set](TokenEndpointBuilder::timeout)) and
//! response cap (1 MiB unless [set](TokenEndpointBuilder::max_response_bytes));
//! and reads token responses leniently ([`TokenResponse`]).
//!
//! Tokens can be bound to a key (DPoP, RFC 9449, feature `jwt`): give the
//! endpoint a `DpopKey` ([`TokenEndpointBuilder::dpop`]) and every token
//! request proves possession of it; see [below](#dpop-sender-constrained-tokens).
//!
//! [`Discovery`] builds the endpoints from an issuer URL (RFC 8414, OpenID
//! Connect Discovery): the token and authorization endpoints, the client
//! authentication and the `iss` check come from the server's own metadata.
//!
//! # Example: client credentials with HTTP Basic authentication
//!
//! ```no_run
//! use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
//! use tower_bearer::BearerAuthLayer;
//!
//! # fn main() -> Result<(), tower_bearer::oauth2::BuildError> {
//! let endpoint = TokenEndpoint::builder("https://platform.ai.gloo.com/oauth2/token")
//!     .client_id("my-client")
//!     .client_secret("my-secret")
//!     .build()?;
//! let layer = BearerAuthLayer::new(ClientCredentials::new(endpoint).scope("api/access"));
//! # let _ = layer; Ok(()) }
//! ```
//!
//! # Web apps: sign users in, call APIs as them
//!
//! [`Discovery`] configures the flow from the issuer URL; the document must
//! name exactly the issuer asked for. Between the redirect and the callback,
//! keep the [`PendingAuthorization`] (`state`, PKCE verifier, redirect URI,
//! expected issuer) in the session: with the `serde` feature it is JSON, so
//! the callback may land after a restart or on another instance. Each
//! signed-in user's [`RefreshTokenSource`] goes into one
//! [`KeyedTokenCache`](crate::keyed::KeyedTokenCache) with
//! [`insert`](crate::keyed::KeyedTokenCache::insert): bounded, idle users
//! dropped, one gate for the token endpoint, one API client for all.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http::Request;
//! use http_body_util::Full;
//! use tower::{Layer, ServiceExt};
//! use tower_bearer::keyed::KeyedTokenCache;
//! use tower_bearer::oauth2::{AuthorizationCode, Callback, Discovery, PendingAuthorization};
//! use tower_bearer::BearerAuthLayer;
//!
//! /// Who a request is for: the session of a signed-in user.
//! #[derive(Clone, PartialEq, Eq, Hash)]
//! struct SessionId(u64);
//!
//! # async fn app(
//! #     client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! // At start-up, on every instance.
//! let metadata = Discovery::new("https://accounts.example.com").fetch().await?;
//! let endpoint = metadata
//!     .token_endpoint_builder()
//!     .client_id("web-app")
//!     .client_secret(std::env::var("CLIENT_SECRET")?)
//!     .build()?;
//! let flow: AuthorizationCode = metadata
//!     .authorization_code(endpoint)?
//!     .redirect_uri("https://app.example.com/callback")
//!     .scope("openid offline_access");
//! let users = KeyedTokenCache::<SessionId>::without_factory().max_keys(10_000).build();
//! let api = BearerAuthLayer::keyed(users.clone(), |req: &Request<Full<Bytes>>| {
//!     req.extensions().get::<SessionId>().cloned()
//! })
//! .layer(client);
//!
//! // GET /login: send the user to `request.url()`, keep the pending part.
//! let request = flow.start();
//! let saved: String = serde_json::to_string(request.pending())?;
//!
//! // GET /callback?code=..&state=.., on whichever instance.
//! let pending: PendingAuthorization = serde_json::from_str(&saved)?;
//! let callback = Callback::from_query("code=..&state=..")?;
//! let source = flow.finish(&pending, &callback).await?;
//! users.insert(SessionId(7), source);
//!
//! // Any handler: call the API as that user.
//! let mut call = Request::get("https://api.example.com/v1/me").body(Full::default())?;
//! call.extensions_mut().insert(SessionId(7));
//! let response = api.oneshot(call).await?;
//! # let _ = response; Ok(()) }
//! ```
//!
//! [`finish`](AuthorizationCode::finish) checks the callback before anything
//! is sent: the `state` (in constant time), then the `iss` against the issuer
//! the user was sent to (RFC 9207), then an error from the server, then the
//! code; a flow configured for another issuer refuses the pending
//! authorization. `examples/web_app` is an axum app doing all of this against
//! loopback servers.
//!
//! # DPoP: sender-constrained tokens
//!
//! With a DPoP key (RFC 9449) on the endpoint, every token request, whatever
//! its grant, carries a fresh proof (`DPoP: <signed JWT>`, `htm` `POST`,
//! `htu` the endpoint's URL). The server binds the token to the key and says
//! `token_type: DPoP`; the token comes back bound
//! ([`AccessToken::dpop`](crate::AccessToken::dpop)), and each request that
//! carries it (`Authorization: DPoP …`) carries a proof of its own, with
//! `ath`, the hash of the token. A public client's refresh token is bound to
//! the key too, so refreshes prove the same key; an authorization URL names
//! the key's thumbprint (`dpop_jkt`, RFC 9449 §10), which binds the code to it.
//!
//! Servers hand out nonces (`DPoP-Nonce`) that proofs must carry. A token
//! endpoint's `400 use_dpop_nonce` is sent once more with the nonce it handed
//! out, never more; a nonce on any answer is kept per origin, in the key, so
//! that the next proof carries it without a challenge. Concurrent callers of
//! a cache share one fetch, and so one challenge.
//!
//! A server may decline to bind and answer `token_type: Bearer` (RFC 9449
//! §5): the token is used as a bearer token unless
//! [`require_dpop_bound`](TokenEndpointBuilder::require_dpop_bound) says
//! otherwise.
//!
//! ```no_run
//! # #[cfg(feature = "jwt")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tower_bearer::oauth2::{ClientCredentials, DpopKey, SigningAlgorithm, TokenEndpoint};
//! use tower_bearer::TokenSource;
//!
//! // A key kept with the client's other secrets (a generated one,
//! // `DpopKey::generate_es256()`, lives as long as the process).
//! let key = DpopKey::from_pem(SigningAlgorithm::Es256, std::fs::read("dpop-key.pem")?)?;
//! let endpoint = TokenEndpoint::builder("https://auth.example.com/oauth2/token")
//!     .client_id("my-client")
//!     .client_secret("my-secret")
//!     .dpop(key)
//!     .build()?;
//! let token = ClientCredentials::new(endpoint).scope("api/access").fetch().await?;
//! // Bound to the key: each request with it carries a proof from `prover`.
//! let prover = token.dpop().expect("the server bound the token");
//! let proof = prover.proof(&http::Method::GET, "https://api.example.com/v1/things", Some(token.secret()))?;
//! # let _ = proof; Ok(()) }
//! ```
//!
//! # Errors
//!
//! What a server says in an error (its `error`, `error_description`,
//! `error_uri`, a token type, the start of an error page) is made safe to
//! print before an error keeps it: control characters escaped, at most 200
//! characters, values of secret parameters and every secret the request
//! carried shown as `[redacted]`, URLs without query.
//!
//! A configuration that is refused is a [`BuildError`], before anything is
//! sent. A failed exchange is a [`TokenError`](crate::TokenError) whose
//! [`cause`](crate::TokenError::cause) is an [`OAuth2Error`] when the server
//! answered with an RFC 6749 §5.2 error, and an [`ExchangeError`] otherwise
//! (timeout, transport, a response that makes no sense, a forged `state`).
//!
//! ```
//! use tower_bearer::oauth2::{ErrorCode, ExchangeError, OAuth2Error};
//! use tower_bearer::TokenError;
//!
//! fn explain(err: &TokenError) -> String {
//!     let cause = err.cause();
//!     if let Some(e) = cause.and_then(|c| c.downcast_ref::<OAuth2Error>()) {
//!         if e.code() == &ErrorCode::InvalidClient {
//!             return "check the client secret".into();
//!         }
//!         return format!("the server said {}", e.error());
//!     }
//!     if let Some(ExchangeError::Timeout(_)) = cause.and_then(|c| c.downcast_ref::<ExchangeError>()) {
//!         return "the token endpoint is slow".into();
//!     }
//!     err.to_string()
//! }
//! # let _ = explain;
//! ```

mod browser_flow;
mod build_error;
mod client_authentication;
mod endpoint;
mod grants;
mod random;
mod server_metadata;
#[cfg(feature = "jwt")]
mod signing;
mod transport;

pub use self::browser_flow::{
    AuthorizationCode, AuthorizationRequest, AuthorizeUrl, Callback, CsrfState,
    PendingAuthorization, PkceChallenge, PkceVerifier,
};
pub use self::build_error::BuildError;
pub use self::client_authentication::ClientAuth;
#[cfg(feature = "jwt")]
pub use self::client_authentication::{JwtAssertion, JwtAssertionBuilder};
pub use self::endpoint::{
    BodyFormat, ErrorCode, ExchangeError, OAuth2Error, TokenEndpoint, TokenEndpointBuilder,
    TokenResponse,
};
pub use self::grants::{
    ClientCredentials, RefreshTokenSource, SecurityToken, TokenExchange, TokenFileError, TokenType,
};
#[cfg(feature = "jwt")]
pub use self::grants::{GoogleServiceAccount, GoogleServiceAccountBuilder, JwtBearer};
pub use self::server_metadata::{AuthorizationServerMetadata, Discovery, DiscoveryError};
#[cfg(feature = "jwt")]
pub use self::signing::{
    DpopKey, KeyError, ServiceAccountKey, SigningAlgorithm, SigningKey, WallClock,
};
#[cfg(feature = "rustls")]
pub use self::transport::HttpClientBuilder;
pub use self::transport::{HttpBody, HttpClient, TransportError};

// For `platform`: what a `Retry-After` asks, and which URLs may carry secrets.
pub(crate) use self::endpoint::response::retry_after;
pub(crate) use self::transport::secure_url::parse as parse_secure_url;
