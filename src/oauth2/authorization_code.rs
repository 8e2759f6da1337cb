//! The authorization-code grant (RFC 6749 §4.1) with PKCE (RFC 7636) and
//! `state`: what to ask the user's authorization server for.

use super::authorization_request::AuthorizationRequest;
use super::authorize_url::AuthorizeUrl;
use super::csrf_state::CsrfState;
use super::endpoint::TokenEndpoint;
use super::error::BuildError;
use super::pkce::PkceVerifier;
use super::secure_url;

/// Configuration of an authorization-code flow: where to send the user, what
/// to ask for, and the token endpoint that exchanges the code.
///
/// [`start`](Self::start) makes a fresh [`AuthorizationRequest`] (new `state`
/// and PKCE verifier) whose URL the user visits; its
/// [`finish`](AuthorizationRequest::finish) checks what came back to the
/// redirect URI, exchanges the code, and hands over a
/// [`RefreshTokenSource`](super::RefreshTokenSource).
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
///     .param("prompt", "consent");
/// let request = flow.start();
/// assert!(request.url().starts_with("https://api.gluegroups.com/oauth/authorize?response_type=code&client_id=client1"));
/// assert!(request.url().contains("&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Foauth%2Fcallback"));
/// assert!(request.url().contains("&scope=workspaces%3Aread%2Cchats%3Awrite"));
/// assert!(request.url().contains("&code_challenge_method=S256"));
/// assert!(request.url().ends_with("&prompt=consent"));
///
/// // Servers that reject PKCE's parameters:
/// let request = flow.without_pkce().start();
/// assert!(request.verifier().is_none() && !request.url().contains("code_challenge"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    authorize_url: AuthorizeUrl,
    endpoint: TokenEndpoint,
    redirect_uri: Option<String>,
    scopes: Vec<String>,
    scope_separator: String,
    pkce: bool,
    params: Vec<(String, String)>,
}

impl AuthorizationCode {
    /// A flow sending users to `authorize_url` and exchanging codes at
    /// `endpoint`. The authorization URL must be `https://` (or loopback
    /// `http://`), like the token endpoint's.
    pub fn new(
        authorize_url: impl Into<String>,
        endpoint: TokenEndpoint,
    ) -> Result<Self, BuildError> {
        let authorize_url = authorize_url.into();
        secure_url::parse(&authorize_url, false)?;
        Ok(Self {
            authorize_url: AuthorizeUrl::new(authorize_url),
            endpoint,
            redirect_uri: None,
            scopes: Vec::new(),
            scope_separator: " ".to_owned(),
            pkce: true,
            params: Vec::new(),
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

    /// Adds a parameter to the authorization URL (`prompt`, `access_type`, …).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// Starts an authorization: a fresh `state` and PKCE verifier, and the URL
    /// to send the user to. Keep the request (or its state and verifier) until
    /// the user comes back.
    pub fn start(&self) -> AuthorizationRequest {
        let state = CsrfState::generate();
        let verifier = self.pkce.then(PkceVerifier::generate);
        let mut url = self.authorize_url.clone().param("response_type", "code");
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
        AuthorizationRequest::new(
            url.build(),
            state,
            verifier,
            self.endpoint.clone(),
            self.redirect_uri.clone(),
        )
    }
}
