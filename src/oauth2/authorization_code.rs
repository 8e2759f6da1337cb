//! The authorization-code grant (RFC 6749 §4.1) with PKCE (RFC 7636) and `state`.

use std::fmt;

use super::builder::check_url;
use super::callback::Callback;
use super::endpoint::TokenEndpoint;
use super::endpoint_error::EndpointError;
use super::pkce::{AuthorizeUrl, CsrfState, PkceVerifier};
use super::refresh::RefreshTokenSource;
use super::response::TokenResponse;
use crate::error::TokenError;

/// Configuration of an authorization-code flow: where to send the user, what
/// to ask for, and the token endpoint that exchanges the code.
///
/// [`start`](Self::start) makes a fresh [`AuthorizationRequest`] (new `state`
/// and PKCE verifier) whose URL the user visits; its
/// [`finish`](AuthorizationRequest::finish) checks what came back to the
/// redirect URI, exchanges the code, and hands over a [`RefreshTokenSource`].
///
/// ```
/// use tower_bearer::oauth2::{AuthorizationCode, ClientAuth, TokenEndpoint};
///
/// # fn main() -> Result<(), tower_bearer::oauth2::EndpointError> {
/// let endpoint = TokenEndpoint::builder("https://api.gluegroups.com/oauth/token")
///     .client_id("client1")
///     .client_secret("secret")
///     .client_auth(ClientAuth::RequestBody)
///     .build()?;
/// let flow = AuthorizationCode::new("https://api.gluegroups.com/oauth/authorize", endpoint)?
///     .redirect_uri("http://localhost:3000/oauth/callback")
///     .scope("workspaces:read")
///     .scope("chats:write")
///     .scope_separator(",");
/// let request = flow.start();
/// assert!(request.url().starts_with("https://api.gluegroups.com/oauth/authorize?response_type=code&client_id=client1"));
/// assert!(request.url().contains("scope=workspaces%3Aread%2Cchats%3Awrite"));
/// assert!(request.url().contains("code_challenge_method=S256"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    authorize_url: String,
    endpoint: TokenEndpoint,
    redirect_uri: Option<String>,
    scopes: Vec<String>,
    scope_separator: String,
    pkce: bool,
    params: Vec<(String, String)>,
}

impl AuthorizationCode {
    /// A flow sending users to `authorize_url` and exchanging codes at `endpoint`.
    ///
    /// The authorization URL must be `https://` (or loopback `http://`), like
    /// the token endpoint's.
    ///
    /// ```
    /// use tower_bearer::oauth2::{AuthorizationCode, EndpointError, TokenEndpoint};
    ///
    /// let endpoint = TokenEndpoint::builder("https://auth.example/token").build().unwrap();
    /// assert!(AuthorizationCode::new("https://auth.example/authorize", endpoint.clone()).is_ok());
    /// assert!(matches!(
    ///     AuthorizationCode::new("http://auth.example/authorize", endpoint),
    ///     Err(EndpointError::InsecureUrl { .. })
    /// ));
    /// ```
    pub fn new(
        authorize_url: impl Into<String>,
        endpoint: TokenEndpoint,
    ) -> Result<Self, EndpointError> {
        let authorize_url = authorize_url.into();
        check_url(&authorize_url, false)?;
        Ok(Self {
            authorize_url,
            endpoint,
            redirect_uri: None,
            scopes: Vec::new(),
            scope_separator: " ".to_owned(),
            pkce: true,
            params: Vec::new(),
        })
    }

    /// The `redirect_uri`, sent with both the authorization request and the exchange.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap()
    ///     .redirect_uri("https://app.example/cb");
    /// let request = flow.start();
    /// assert!(request.url().contains("redirect_uri=https%3A%2F%2Fapp.example%2Fcb"));
    /// ```
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// Adds a scope.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap()
    ///     .scope("openid")
    ///     .scope("email");
    /// let request = flow.start();
    /// assert!(request.url().contains("scope=openid+email"));
    /// ```
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// What joins scopes: a space by default (RFC 6749 §3.3); Glue uses `,`.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap()
    ///     .scope("a")
    ///     .scope("b")
    ///     .scope_separator(",");
    /// let request = flow.start();
    /// assert!(request.url().contains("scope=a%2Cb"));
    /// ```
    pub fn scope_separator(mut self, separator: impl Into<String>) -> Self {
        self.scope_separator = separator.into();
        self
    }

    /// Turns PKCE off, for servers that reject its parameters (it is on by default).
    ///
    /// ```
    /// # use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap()
    ///     .without_pkce();
    /// let request = flow.start();
    /// assert!(request.verifier().is_none());
    /// assert!(!request.url().contains("code_challenge"));
    /// ```
    pub fn without_pkce(mut self) -> Self {
        self.pkce = false;
        self
    }

    /// Adds a parameter to the authorization URL (`prompt`, `access_type`, …).
    ///
    /// ```
    /// # use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap()
    ///     .param("prompt", "consent");
    /// let request = flow.start();
    /// assert!(request.url().ends_with("&prompt=consent"));
    /// ```
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// Starts an authorization: a fresh `state` and PKCE verifier, and the URL
    /// to send the user to. Keep the request (or its state and verifier) until
    /// the user comes back.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap()
    ///     ;
    /// let request = flow.start();
    /// assert!(request.url().contains("&state="));
    /// assert!(request.verifier().is_some());
    /// ```
    pub fn start(&self) -> AuthorizationRequest {
        let state = CsrfState::generate();
        let verifier = self.pkce.then(PkceVerifier::generate);
        let mut url = AuthorizeUrl::new(self.authorize_url.clone()).param("response_type", "code");
        if let Some(id) = self.endpoint.client_id() {
            url = url.param("client_id", id);
        }
        if let Some(uri) = &self.redirect_uri {
            url = url.param("redirect_uri", uri);
        }
        if !self.scopes.is_empty() {
            url = url.param("scope", &self.scopes.join(&self.scope_separator));
        }
        url = url.param("state", state.secret().expose());
        if let Some(verifier) = &verifier {
            let challenge = verifier.challenge();
            url = url
                .param("code_challenge", challenge.as_str())
                .param("code_challenge_method", challenge.method());
        }
        for (key, value) in &self.params {
            url = url.param(key, value);
        }
        AuthorizationRequest {
            url: url.build(),
            state,
            verifier,
            flow: self.clone(),
        }
    }
}

/// One authorization in progress; see [`AuthorizationCode::start`].
///
/// ```
/// use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
///
/// let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
/// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap();
/// let request = flow.start();
/// // Send the user to request.url(); keep `request` until they come back.
/// assert!(!format!("{request:?}").contains(request.state().secret().expose()));
/// ```
pub struct AuthorizationRequest {
    url: String,
    state: CsrfState,
    verifier: Option<PkceVerifier>,
    flow: AuthorizationCode,
}

impl AuthorizationRequest {
    /// The URL to send the user to.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap()
    ///     ;
    /// let request = flow.start();
    /// assert!(request.url().starts_with("https://auth.example/authorize?response_type=code&client_id=app"));
    /// ```
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `state` sent.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap()
    ///     ;
    /// let request = flow.start();
    /// let state = request.state().secret().expose();
    /// assert!(request.url().contains(state));
    /// ```
    pub fn state(&self) -> &CsrfState {
        &self.state
    }

    /// The PKCE verifier, unless PKCE is off.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{AuthorizationCode, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").client_id("app").build().unwrap();
    /// let flow = AuthorizationCode::new("https://auth.example/authorize", endpoint).unwrap()
    ///     ;
    /// let request = flow.start();
    /// let challenge = request.verifier().unwrap().challenge();
    /// assert!(request.url().contains(challenge.as_str()));
    /// ```
    pub fn verifier(&self) -> Option<&PkceVerifier> {
        self.verifier.as_ref()
    }

    /// Checks the callback (`state`, in constant time, then an error from the
    /// server) and exchanges the code for tokens.
    ///
    /// ```no_run
    /// # async fn f(request: tower_bearer::oauth2::AuthorizationRequest) -> Result<(), tower_bearer::TokenError> {
    /// use tower_bearer::oauth2::Callback;
    /// let callback = Callback::from_url("http://localhost:3000/oauth/callback?code=abc&state=xyz")?;
    /// let response = request.exchange(&callback).await?;
    /// # let _ = response; Ok(()) }
    /// ```
    pub async fn exchange(&self, callback: &Callback) -> Result<TokenResponse, TokenError> {
        // `state` first: an error callback with a forged state is an attack,
        // and its text must not reach the caller as the server's word.
        match &callback.state {
            Some(state) if self.state.matches(state) => {}
            _ => return Err(EndpointError::StateMismatch.into()),
        }
        if let Some(err) = &callback.error {
            return Err(err.clone().into());
        }
        let code = callback.code.as_ref().ok_or(EndpointError::MissingCode)?;
        let mut params = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
        ];
        if let Some(uri) = &self.flow.redirect_uri {
            params.push(("redirect_uri", uri));
        }
        if let Some(verifier) = &self.verifier {
            params.push(("code_verifier", verifier.secret().expose()));
        }
        self.flow.endpoint.request(&params).await
    }

    /// [`exchange`](Self::exchange)s the code, then returns a
    /// [`RefreshTokenSource`] that serves the access token just obtained and
    /// refreshes it from then on. Fails if no refresh token was issued.
    ///
    /// ```no_run
    /// # async fn f(request: tower_bearer::oauth2::AuthorizationRequest, redirected_to: &str) -> Result<(), tower_bearer::TokenError> {
    /// use tower_bearer::oauth2::Callback;
    /// use tower_bearer::BearerAuthLayer;
    ///
    /// let source = request.finish(&Callback::from_url(redirected_to)?).await?;
    /// let layer = BearerAuthLayer::new(source.on_rotate(|new| { /* persist new.expose() */ let _ = new; }));
    /// # let _ = layer; Ok(()) }
    /// ```
    pub async fn finish(&self, callback: &Callback) -> Result<RefreshTokenSource, TokenError> {
        let response = self.exchange(callback).await?;
        RefreshTokenSource::from_response(self.flow.endpoint.clone(), &response).ok_or_else(|| {
            TokenError::permanent(
                "the authorization server issued no refresh token (ask for `offline_access`?)",
            )
        })
    }
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("state", &self.state)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}
