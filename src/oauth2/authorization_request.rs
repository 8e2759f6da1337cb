//! One authorization in progress: the URL the user visits, what is kept
//! until they come back, and the code exchange.

use std::fmt;

use super::authorization_code::AuthorizationCode;
use super::callback::Callback;
use super::csrf_state::CsrfState;
use super::pending_authorization::PendingAuthorization;
use super::pkce::PkceVerifier;
use super::refresh_token::RefreshTokenSource;
use super::response::TokenResponse;
use crate::error::TokenError;

/// One authorization in progress; see
/// [`AuthorizationCode::start`](super::AuthorizationCode::start): the URL to
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
    pub(super) fn new(url: String, pending: PendingAuthorization, flow: AuthorizationCode) -> Self {
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
