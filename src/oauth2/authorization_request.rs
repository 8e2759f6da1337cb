//! One authorization in progress: the URL the user visits, the `state` and
//! PKCE verifier kept until they come back, and the code exchange.

use std::fmt;

use super::callback::Callback;
use super::csrf_state::CsrfState;
use super::endpoint::TokenEndpoint;
use super::error::ExchangeError;
use super::pkce::PkceVerifier;
use super::refresh_token::RefreshTokenSource;
use super::response::TokenResponse;
use crate::error::TokenError;

/// One authorization in progress; see
/// [`AuthorizationCode::start`](super::AuthorizationCode::start).
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
    state: CsrfState,
    verifier: Option<PkceVerifier>,
    endpoint: TokenEndpoint,
    redirect_uri: Option<String>,
}

impl AuthorizationRequest {
    pub(super) fn new(
        url: String,
        state: CsrfState,
        verifier: Option<PkceVerifier>,
        endpoint: TokenEndpoint,
        redirect_uri: Option<String>,
    ) -> Self {
        Self {
            url,
            state,
            verifier,
            endpoint,
            redirect_uri,
        }
    }

    /// The URL to send the user to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `state` sent.
    pub fn state(&self) -> &CsrfState {
        &self.state
    }

    /// The PKCE verifier, unless PKCE is off.
    pub fn verifier(&self) -> Option<&PkceVerifier> {
        self.verifier.as_ref()
    }

    /// Checks the callback (`state`, in constant time, then an error from the
    /// server) and exchanges the code for tokens.
    pub async fn exchange(&self, callback: &Callback) -> Result<TokenResponse, TokenError> {
        // `state` first: an error callback with a forged state is an attack,
        // and its text must not reach the caller as the server's word.
        match callback.state() {
            Some(state) if self.state.matches(state) => {}
            _ => return Err(ExchangeError::StateMismatch.into()),
        }
        if let Some(err) = callback.error() {
            return Err(err.clone().into());
        }
        let code = callback.code().ok_or(ExchangeError::MissingCode)?;
        let mut params = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
        ];
        if let Some(uri) = &self.redirect_uri {
            params.push(("redirect_uri", uri));
        }
        if let Some(verifier) = &self.verifier {
            params.push(("code_verifier", verifier.secret().expose()));
        }
        self.endpoint.request(&params).await
    }

    /// [`exchange`](Self::exchange)s the code, then returns a
    /// [`RefreshTokenSource`] that serves the access token just obtained and
    /// refreshes it from then on. Fails if no refresh token was issued.
    pub async fn finish(&self, callback: &Callback) -> Result<RefreshTokenSource, TokenError> {
        let response = self.exchange(callback).await?;
        RefreshTokenSource::from_response(self.endpoint.clone(), &response).ok_or_else(|| {
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
