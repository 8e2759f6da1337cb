//! The authorization-code grant (RFC 6749 §4.1) with PKCE (RFC 7636),
//! `state` and the issuer check (RFC 9207): what to ask the user's
//! authorization server for, the authorization in progress, and how to
//! exchange what comes back.

use super::authorize_url::AuthorizeUrl;
use super::callback::Callback;
use super::csrf_state::CsrfState;
use super::issuer_check::{self, ExpectedIssuer};
use super::pending_authorization::PendingAuthorization;
use super::pkce::PkceVerifier;
use super::uri_reference::UriReference;
use crate::error::TokenError;
use crate::oauth2::endpoint::response::TokenResponse;
use crate::oauth2::endpoint::token_endpoint::TokenEndpoint;
use crate::oauth2::grants::refresh_token::RefreshTokenSource;
use crate::oauth2::transport::secure_url;
use crate::oauth2::{BuildError, ExchangeError};
use crate::redact;
use std::fmt;

/// Configuration of an authorization-code flow: where to send the user, what
/// to ask for, the token endpoint that exchanges the code, and what every
/// token request adds.
///
/// [`start`](Self::start) makes a fresh [`AuthorizationRequest`] (new `state`
/// and PKCE verifier) whose URL the user visits; [`finish`](Self::finish)
/// checks what came back to the redirect URI against its
/// [`PendingAuthorization`], exchanges the code, and hands over a
/// [`RefreshTokenSource`]. Between the two, the pending authorization can be
/// saved in a session, so the callback may land in another process.
/// [`Discovery`](crate::oauth2::Discovery) builds the flow from an issuer URL.
///
/// ```
/// use tower_bearer::oauth2::{AuthorizationCode, ClientAuth, TokenEndpoint};
///
/// # fn main() -> Result<(), tower_bearer::oauth2::BuildError> {
/// let endpoint = TokenEndpoint::builder("https://api.gluegroups.com/oauth/token")
///     .client_id("client1")
///     .client_secret("secret")
///     .client_auth(ClientAuth::RequestBody)
///     .build()?;
/// let flow = AuthorizationCode::new("https://api.gluegroups.com/oauth/authorize", endpoint)?
///     .redirect_uri("http://localhost:3000/oauth/callback")
///     .scope("workspaces:read")
///     .scope("chats:write")
///     .scope_separator(",")
///     .resource("https://api.gluegroups.com/")
///     .param("prompt", "consent");
/// let request = flow.start();
/// assert!(request.url().starts_with("https://api.gluegroups.com/oauth/authorize?response_type=code&client_id=client1"));
/// assert!(request.url().contains("&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Foauth%2Fcallback"));
/// assert!(request.url().contains("&scope=workspaces%3Aread%2Cchats%3Awrite"));
/// assert!(request.url().contains("&code_challenge_method=S256"));
/// assert!(request.url().contains("&resource=https%3A%2F%2Fapi.gluegroups.com%2F"));
/// assert!(request.url().ends_with("&prompt=consent"));
///
/// // Servers that reject PKCE's parameters:
/// let request = flow.without_pkce().start();
/// assert!(request.verifier().is_none() && !request.url().contains("code_challenge"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthorizationCode {
    authorize_url: AuthorizeUrl,
    endpoint: TokenEndpoint,
    redirect_uri: Option<String>,
    scopes: Vec<String>,
    scope_separator: String,
    pkce: bool,
    issuer: Option<ExpectedIssuer>,
    params: Vec<(String, String)>,
    resources: Vec<String>,
    token_params: Vec<(String, String)>,
    dpop_jkt: bool,
}

/// Extra parameters show their names only: their values may be secrets.
impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("authorize_url", &self.authorize_url)
            .field("endpoint", &self.endpoint)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .field("pkce", &self.pkce)
            .field("issuer", &self.issuer)
            .field("params", &redact::ParamNames(&self.params))
            .field("resources", &self.resources)
            .field("token_params", &redact::ParamNames(&self.token_params))
            .field("dpop_jkt", &self.dpop_jkt)
            .finish_non_exhaustive()
    }
}

impl AuthorizationCode {
    /// A flow sending users to `authorize_url` and exchanging codes at
    /// `endpoint`. The authorization URL must be `https://` (or loopback
    /// `http://`), like the token endpoint's, and may have a query but no
    /// fragment (RFC 6749 §3.1).
    pub fn new(
        authorize_url: impl Into<String>,
        endpoint: TokenEndpoint,
    ) -> Result<Self, BuildError> {
        let authorize_url = authorize_url.into();
        secure_url::parse(&authorize_url, false)?;
        if UriReference::split(&authorize_url).fragment.is_some() {
            return Err(BuildError::InvalidUrl {
                url: redact::url(&authorize_url),
                reason: "an authorization endpoint has no fragment (RFC 6749 §3.1)",
            });
        }
        Ok(Self {
            authorize_url: AuthorizeUrl::new(authorize_url),
            endpoint,
            redirect_uri: None,
            scopes: Vec::new(),
            scope_separator: " ".to_owned(),
            pkce: true,
            issuer: None,
            params: Vec::new(),
            resources: Vec::new(),
            token_params: Vec::new(),
            dpop_jkt: true,
        })
    }

    /// The `redirect_uri`, sent with both the authorization request and the exchange.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// Adds a scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// What joins scopes. Defaults to a space (RFC 6749 §3.3); Glue uses `,`.
    pub fn scope_separator(mut self, separator: impl Into<String>) -> Self {
        self.scope_separator = separator.into();
        self
    }

    /// Turns PKCE off, for servers that reject its parameters. PKCE is on by default.
    pub fn without_pkce(mut self) -> Self {
        self.pkce = false;
        self
    }

    /// Leaves `dpop_jkt` off the authorization URL, for servers that refuse
    /// the parameter. With a token endpoint that has a DPoP key
    /// ([`TokenEndpointBuilder::dpop`](crate::oauth2::TokenEndpointBuilder::dpop)),
    /// the authorization URL names the key's thumbprint in `dpop_jkt` by
    /// default (RFC 9449 §10), which binds the code to the key: a code stolen
    /// on its way back cannot be exchanged without the key. Servers that do
    /// not know the parameter ignore it (RFC 6749 §3.1).
    ///
    /// ```
    /// # #[cfg(feature = "jwt")] {
    /// use tower_bearer::dpop::DpopProver as _;
    /// use tower_bearer::oauth2::{AuthorizationCode, DpopKey, TokenEndpoint};
    ///
    /// let key = DpopKey::generate_es256().unwrap();
    /// let endpoint = TokenEndpoint::builder("https://auth.example/token")
    ///     .client_id("app")
    ///     .dpop(key.clone())
    ///     .build()
    ///     .unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap();
    /// let url = flow.start().url().to_owned();
    /// assert!(url.contains(&format!("&dpop_jkt={}", key.thumbprint())));
    /// assert!(!flow.without_dpop_jkt().start().url().contains("dpop_jkt"));
    /// # }
    /// ```
    pub fn without_dpop_jkt(mut self) -> Self {
        self.dpop_jkt = false;
        self
    }

    /// The issuer identifier of the authorization server (RFC 9207): a
    /// callback whose `iss` names another issuer is refused before the code
    /// is sent anywhere ([`ExchangeError::IssuerMismatch`](crate::oauth2::ExchangeError::IssuerMismatch)).
    /// A callback without `iss` passes; use [`require_issuer`](Self::require_issuer)
    /// for servers that always send it. [`Discovery`](crate::oauth2::Discovery) sets
    /// the right one.
    pub fn expect_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(ExpectedIssuer {
            issuer: issuer.into(),
            required: false,
        });
        self
    }

    /// Like [`expect_issuer`](Self::expect_issuer), for a server that always
    /// sends `iss` (its metadata has `authorization_response_iss_parameter_supported`):
    /// a callback without it is refused too
    /// ([`ExchangeError::MissingIssuer`](crate::oauth2::ExchangeError::MissingIssuer)).
    pub fn require_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(ExpectedIssuer {
            issuer: issuer.into(),
            required: true,
        });
        self
    }

    /// Adds a parameter to the authorization URL (`prompt`, `access_type`, …).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// Adds a `resource` indicator (RFC 8707), sent on the authorization
    /// URL, the code exchange and every refresh, so that each access token
    /// is issued for that resource. May be given more than once.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// Adds a parameter to the token requests: the code exchange and every
    /// refresh of the source [`finish`](Self::finish) returns (`audience`, a
    /// provider's extras). Not sent on the authorization URL; use
    /// [`param`](Self::param) for that.
    pub fn token_param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.token_params.push((key.into(), value.into()));
        self
    }

    /// The token endpoint codes are exchanged at.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }

    /// Starts an authorization: a fresh `state` and PKCE verifier, and the URL
    /// to send the user to. Keep the request, or its
    /// [`pending`](AuthorizationRequest::pending) part, until the user comes back.
    pub fn start(&self) -> AuthorizationRequest {
        let mut pending = PendingAuthorization::new(CsrfState::generate());
        if self.pkce {
            pending = pending.with_verifier(PkceVerifier::generate());
        }
        if let Some(uri) = &self.redirect_uri {
            pending = pending.with_redirect_uri(uri.clone());
        }
        pending = pending.with_issuer(self.issuer.clone());
        if let Some(key) = self.endpoint.dpop().filter(|_| self.dpop_jkt) {
            pending = pending.with_dpop_jkt(key.thumbprint());
        }
        let url = self.authorize_url(&pending);
        AuthorizationRequest::new(url, pending, self.clone())
    }

    fn authorize_url(&self, pending: &PendingAuthorization) -> String {
        let mut url = self.authorize_url.clone().param("response_type", "code");
        if let Some(id) = self.endpoint.client_id() {
            url = url.param("client_id", id);
        }
        if let Some(uri) = pending.redirect_uri() {
            url = url.param("redirect_uri", uri);
        }
        if !self.scopes.is_empty() {
            url = url.param("scope", &self.scopes.join(&self.scope_separator));
        }
        url = url.param("state", pending.state().secret().expose());
        if let Some(verifier) = pending.verifier() {
            let challenge = verifier.challenge();
            url = url
                .param("code_challenge", challenge.as_str())
                .param("code_challenge_method", challenge.method());
        }
        if let Some(jkt) = pending.dpop_jkt() {
            url = url.param("dpop_jkt", jkt);
        }
        for resource in &self.resources {
            url = url.param("resource", resource);
        }
        for (key, value) in &self.params {
            url = url.param(key, value);
        }
        url.build()
    }

    /// Checks the callback against the authorization it answers
    /// ([`Callback::verified_code`]: `state`, then `iss`, then an error from
    /// the server) and only then exchanges the code for tokens, sending the
    /// pending authorization's `redirect_uri` and PKCE verifier, this flow's
    /// `resource`s and [`token_param`](Self::token_param)s.
    ///
    /// The pending authorization may come from another process (a session
    /// store); finish it with the flow for its
    /// [`issuer`](PendingAuthorization::issuer): a flow configured for
    /// another issuer refuses it ([`ExchangeError::FlowMismatch`](crate::oauth2::ExchangeError::FlowMismatch)),
    /// since its token endpoint must not get the code. A flow's issuer also
    /// applies to a pending authorization saved without one.
    ///
    /// A pending authorization is exchanged once; a second exchange from it
    /// is [`ExchangeError::AlreadyExchanged`](crate::oauth2::ExchangeError::AlreadyExchanged)
    /// (see [`PendingAuthorization`]).
    pub async fn exchange(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<TokenResponse, TokenError> {
        // The flow's issuer applies to a pending authorization saved
        // without one, and must agree with one saved with it.
        let expected = issuer_check::for_exchange(self.issuer.as_ref(), pending.expected_issuer())?;
        let pending = &pending.clone().with_issuer(expected);
        self.check_dpop_key(pending)?;
        let code = callback.verified_code(pending)?;
        // Only a callback that passed the checks uses the authorization up:
        // a forged one must not lock the user out of a good one.
        if !pending.begin_exchange() {
            return Err(ExchangeError::AlreadyExchanged.into());
        }
        let mut params = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
        ];
        if let Some(uri) = pending.redirect_uri() {
            params.push(("redirect_uri", uri));
        }
        if let Some(verifier) = pending.verifier() {
            params.push(("code_verifier", verifier.secret().expose()));
        }
        params.extend(self.token_params());
        self.endpoint.request(&params).await
    }

    /// A code bound to a DPoP key (`dpop_jkt`) goes only to a token endpoint
    /// that can prove that key: the server would refuse another's proof,
    /// after taking the code. A new key (a restart that generated one) needs
    /// a new authorization.
    fn check_dpop_key(&self, pending: &PendingAuthorization) -> Result<(), ExchangeError> {
        let Some(bound_to) = pending.dpop_jkt() else {
            return Ok(());
        };
        let held = self.endpoint.dpop().map(|key| key.thumbprint());
        if held == Some(bound_to) {
            return Ok(());
        }
        Err(ExchangeError::DpopKeyMismatch {
            bound_to: bound_to.to_owned(),
            held: held.map(str::to_owned),
        })
    }

    /// [`exchange`](Self::exchange)s the code, then returns a
    /// [`RefreshTokenSource`] that serves the access token just obtained and
    /// refreshes it from then on, with this flow's `resource`s and
    /// [`token_param`](Self::token_param)s. Fails if no refresh token was issued.
    ///
    /// ```
    /// use tower_bearer::oauth2::{AuthorizationCode, Callback, PendingAuthorization};
    /// use tower_bearer::{BearerAuthLayer, TokenError};
    ///
    /// // The callback handler of a web app, on whichever instance it lands.
    /// async fn on_callback(flow: &AuthorizationCode, saved: PendingAuthorization, path_and_query: &str)
    ///     -> Result<BearerAuthLayer, TokenError>
    /// {
    ///     let source = flow.finish(&saved, &Callback::from_url(path_and_query)?).await?;
    ///     Ok(BearerAuthLayer::new(source.on_rotate(|_new| { /* persist _new.expose() */ })))
    /// }
    /// # let _ = on_callback;
    /// ```
    pub async fn finish(
        &self,
        pending: &PendingAuthorization,
        callback: &Callback,
    ) -> Result<RefreshTokenSource, TokenError> {
        let response = self.exchange(pending, callback).await?;
        let source = RefreshTokenSource::from_response(self.endpoint.clone(), &response)
            .ok_or_else(|| {
                TokenError::permanent(
                    "the authorization server issued no refresh token (ask for `offline_access`?)",
                )
            })?;
        Ok(self
            .token_params()
            .fold(source, |source, (key, value)| source.param(key, value)))
    }

    /// What every token request adds: the `resource`s, then the other parameters.
    fn token_params(&self) -> impl Iterator<Item = (&str, &str)> {
        let resources = self.resources.iter().map(|r| ("resource", r.as_str()));
        resources.chain(
            self.token_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }
}

/// One authorization in progress; see
/// [`AuthorizationCode::start`](crate::oauth2::AuthorizationCode::start): the URL to
/// send the user to, and the [`PendingAuthorization`] to keep until they come
/// back. Keep the whole request where the callback lands in the same
/// process, or save [`pending`](Self::pending) in a session and finish with
/// [`AuthorizationCode::finish`] wherever it lands.
/// `Debug` shows neither the `state` nor the verifier.
///
/// ```
/// use tower_bearer::oauth2::{AuthorizationCode, Callback, TokenEndpoint};
/// use tower_bearer::BearerAuthLayer;
///
/// let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
/// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap();
/// let request = flow.start();
/// // Send the user to request.url(); keep `request` until they come back.
/// let state = request.state().secret().expose();
/// assert!(request.url().contains(state));
/// assert!(request.url().contains(request.verifier().unwrap().challenge().as_str()));
/// assert!(!format!("{request:?}").contains(state));
///
/// // Where the user comes back to:
/// async fn on_callback(request: &tower_bearer::oauth2::AuthorizationRequest, redirected_to: &str)
///     -> Result<(), tower_bearer::TokenError>
/// {
///     let source = request.finish(&Callback::from_url(redirected_to)?).await?;
///     let layer = BearerAuthLayer::new(source.on_rotate(|_new| { /* persist _new.expose() */ }));
///     # let _ = layer;
///     Ok(())
/// }
/// # let _ = on_callback;
/// ```
pub struct AuthorizationRequest {
    url: String,
    pending: PendingAuthorization,
    flow: AuthorizationCode,
}

impl AuthorizationRequest {
    pub(crate) fn new(url: String, pending: PendingAuthorization, flow: AuthorizationCode) -> Self {
        Self { url, pending, flow }
    }

    /// The URL to send the user to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `state` sent.
    pub fn state(&self) -> &CsrfState {
        self.pending.state()
    }

    /// The PKCE verifier, unless PKCE is off.
    pub fn verifier(&self) -> Option<&PkceVerifier> {
        self.pending.verifier()
    }

    /// What to keep until the user comes back, to finish the flow in any
    /// process with [`AuthorizationCode::finish`].
    pub fn pending(&self) -> &PendingAuthorization {
        &self.pending
    }

    /// [`AuthorizationCode::exchange`] with this request's pending authorization.
    pub async fn exchange(&self, callback: &Callback) -> Result<TokenResponse, TokenError> {
        self.flow.exchange(&self.pending, callback).await
    }

    /// [`AuthorizationCode::finish`] with this request's pending authorization.
    pub async fn finish(&self, callback: &Callback) -> Result<RefreshTokenSource, TokenError> {
        self.flow.finish(&self.pending, callback).await
    }
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "rustls"))]
mod tests {
    use super::AuthorizationCode;
    use crate::oauth2::TokenEndpoint;

    #[test]
    fn debug_shows_extra_parameters_by_name_only() {
        let endpoint = TokenEndpoint::builder("https://auth.example/token")
            .client_id("app")
            .build()
            .unwrap();
        let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint)
            .unwrap()
            .param("login_hint", "alice@example.com")
            .token_param("client_assertion", "eyJ.secret.sig");
        let shown = format!("{flow:?}");
        assert!(
            shown.contains("login_hint") && shown.contains("client_assertion"),
            "{shown}"
        );
        assert!(
            !shown.contains("alice@example.com") && !shown.contains("eyJ.secret.sig"),
            "{shown}"
        );
    }
}
