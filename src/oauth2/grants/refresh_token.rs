//! The refresh-token grant (RFC 6749 §6), with rotation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::grant_params::{grant_setters, GrantParams};
use crate::error::TokenError;
use crate::oauth2::endpoint::response::TokenResponse;
use crate::oauth2::endpoint::token_endpoint::TokenEndpoint;
use crate::redact::Redacted;
use crate::secret::Secret;
use crate::source::TokenSource;
use crate::token::{AccessToken, Expiry};
use crate::token_ask::TokenAsk;

type RotateCallback = Arc<dyn Fn(&Secret) + Send + Sync>;

/// Keeps access alive from a refresh token (RFC 6749 §6).
///
/// When the server rotates the refresh token (returns a new one), the new one
/// replaces the old for the next refresh and the [`on_rotate`](Self::on_rotate)
/// callback is told, so it can be persisted.
///
/// Refreshes are serialized by an async mutex inside the source, so the same
/// refresh token is never sent by two concurrent fetches, even without the
/// cache's single-flight: a fetch that waited while another one refreshed
/// returns that one's token instead of refreshing again.
///
/// ```
/// use tower_bearer::oauth2::{RefreshTokenSource, TokenEndpoint};
/// use tower_bearer::{AccessToken, BearerAuthLayer, TokenSource};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let endpoint = TokenEndpoint::builder("https://api.gluegroups.com/oauth/token")
///     .client_id("id")
///     .client_secret("secret")
///     .build()
///     .unwrap();
/// let source = RefreshTokenSource::new(endpoint, "stored-refresh-token")
///     .on_rotate(|new_refresh_token| {
///         // store new_refresh_token.expose() somewhere safe
///         # let _ = new_refresh_token;
///     })
///     // A token at hand (from a code exchange) is served before any refresh.
///     .with_initial_token(AccessToken::new("a").never_expires());
/// assert_eq!(source.fetch().await.unwrap().secret(), "a");
/// assert_eq!(source.refresh_token().await.expose(), "stored-refresh-token");
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; }
/// ```
pub struct RefreshTokenSource {
    endpoint: TokenEndpoint,
    params: GrantParams,
    on_rotate: Option<RotateCallback>,
    /// Bumped after every successful refresh.
    refreshes: AtomicU64,
    state: Mutex<State>,
}

struct State {
    refresh_token: Secret,
    /// A token obtained with the refresh token (from the code exchange),
    /// handed out by the first fetch while still valid.
    initial: Option<AccessToken>,
    /// The latest token, shared with fetches that waited for its refresh.
    latest: Option<AccessToken>,
}

impl RefreshTokenSource {
    /// A source that refreshes with `refresh_token` at `endpoint`.
    pub fn new(endpoint: TokenEndpoint, refresh_token: impl Into<Secret>) -> Self {
        Self {
            endpoint,
            params: GrantParams::default(),
            on_rotate: None,
            refreshes: AtomicU64::new(0),
            state: Mutex::new(State {
                refresh_token: refresh_token.into(),
                initial: None,
                latest: None,
            }),
        }
    }

    /// A source seeded from a token response that carries a refresh token
    /// (an authorization-code exchange): its access token is served first.
    /// `None` if the response has no refresh token.
    pub fn from_response(endpoint: TokenEndpoint, response: &TokenResponse) -> Option<Self> {
        let refresh_token = response.refresh_token()?.clone();
        Some(Self::new(endpoint, refresh_token).with_initial_token(response.to_access_token()))
    }

    // A scope asks for a narrower one on refresh (RFC 6749 §6); every
    // parameter is sent with every refresh request.
    grant_setters!(params);

    /// Declares a client capability, sent as claims with every refresh
    /// (Microsoft Entra's `cp1`: the client answers claims challenges). With
    /// it, a user's token that an API challenges for claims (continuous
    /// access evaluation: the user's session changed) is refreshed once with
    /// the challenge's claims merged in, and the request replayed; if the
    /// server wants the user back instead (`interaction_required`), that is
    /// the fetch's error and the caller gets the API's answer.
    ///
    /// ```
    /// use tower_bearer::oauth2::{RefreshTokenSource, TokenEndpoint};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let endpoint = TokenEndpoint::builder("https://login.microsoftonline.com/tenant/oauth2/v2.0/token")
    ///     .client_id("desktop-app")
    ///     .build()?;
    /// let source = RefreshTokenSource::new(endpoint, "the user's refresh token")
    ///     .scope("https://graph.microsoft.com/User.Read offline_access")
    ///     .client_capability("cp1");
    /// # let _ = source; Ok(()) }
    /// ```
    pub fn client_capability(mut self, capability: impl Into<String>) -> Self {
        self.params.add_capability(capability);
        self
    }

    /// Called with the new refresh token whenever the server rotates it, while
    /// refreshes are held off, so calls come in order. Keep it quick.
    pub fn on_rotate(mut self, callback: impl Fn(&Secret) + Send + Sync + 'static) -> Self {
        self.on_rotate = Some(Arc::new(callback));
        self
    }

    /// Serves `token` on the first fetch, if it has not expired by then.
    pub fn with_initial_token(mut self, token: AccessToken) -> Self {
        self.state.get_mut().initial = Some(token);
        self
    }

    /// The current refresh token (after any rotation).
    pub async fn refresh_token(&self) -> Secret {
        self.state.lock().await.refresh_token.clone()
    }

    /// Redeems `refresh_token` once at the endpoint and returns the whole
    /// response, its rotated refresh token included, without touching this
    /// source's own refresh token or calling [`on_rotate`](Self::on_rotate).
    ///
    /// For callers that keep the current refresh token elsewhere, such as the
    /// shared tier, which keeps it in Redis so that each refresh token is
    /// redeemed once in a whole fleet. The scope and extra parameters set on
    /// this source are sent as on every refresh.
    ///
    /// ```no_run
    /// use tower_bearer::oauth2::{RefreshTokenSource, TokenEndpoint};
    /// use tower_bearer::Secret;
    ///
    /// # async fn run(endpoint: TokenEndpoint) -> Result<(), tower_bearer::TokenError> {
    /// let source = RefreshTokenSource::new(endpoint, "seed");
    /// let stored = Secret::new("the-fleet's-current-refresh-token");
    /// let response = source.redeem(&stored).await?;
    /// // With rotation on, the server returned the one to redeem next time.
    /// let next = response.refresh_token().unwrap_or(&stored).clone();
    /// # let _ = next; Ok(()) }
    /// ```
    pub async fn redeem(&self, refresh_token: &Secret) -> Result<TokenResponse, TokenError> {
        self.redeem_asking(refresh_token, None).await
    }

    /// Redeems `refresh_token` asking for the claims a challenge named, if
    /// any, merged with the client's capabilities.
    async fn redeem_asking(
        &self,
        refresh_token: &Secret,
        ask: Option<&TokenAsk>,
    ) -> Result<TokenResponse, TokenError> {
        let claims = self.params.claims(ask.and_then(TokenAsk::claims))?;
        let mut params: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        self.params
            .append_asking(&mut params, None, claims.as_deref());
        self.endpoint.request(&params).await
    }

    /// Redeems the current refresh token (asking for what a challenge named,
    /// if anything), keeps the rotated one, and shares the token with fetches
    /// that waited.
    async fn refresh(
        &self,
        state: &mut State,
        ask: Option<&TokenAsk>,
    ) -> Result<AccessToken, TokenError> {
        let refresh_token = state.refresh_token.clone();
        let response = self.redeem_asking(&refresh_token, ask).await?;
        if let Some(new) = response.refresh_token() {
            if *new != state.refresh_token {
                state.refresh_token = new.clone();
                self.rotated(new);
            }
        }
        let token = response.to_access_token();
        state.latest = Some(token.clone());
        self.refreshes.fetch_add(1, Ordering::Release);
        Ok(token)
    }

    /// Takes `refresh_token` as the current one, learnt from elsewhere (a
    /// shared store); `redeemed_here` says this process redeemed the one it
    /// replaces, so that [`on_rotate`](Self::on_rotate) is told.
    #[cfg(feature = "redis")]
    pub(crate) async fn adopt(&self, refresh_token: &Secret, redeemed_here: bool) {
        let mut state = self.state.lock().await;
        if state.refresh_token != *refresh_token {
            state.refresh_token = refresh_token.clone();
            if redeemed_here {
                self.rotated(refresh_token);
            }
        }
        // A token from the code exchange is no longer this process's to hand
        // out: the fleet has moved on.
        state.initial = None;
    }

    /// The token from the code exchange, if it is still worth serving; taken,
    /// so that it is handed out once.
    #[cfg(feature = "redis")]
    pub(crate) async fn take_initial_token(&self) -> Option<AccessToken> {
        self.state
            .lock()
            .await
            .initial
            .take()
            .filter(has_useful_life)
    }

    fn rotated(&self, new: &Secret) {
        tracing::debug!(endpoint = %self.endpoint.url_for_logs(), "refresh token rotated");
        if let Some(callback) = &self.on_rotate {
            callback(new);
        }
    }
}

/// Whether a token handed in at construction is worth serving instead of
/// refreshing at once: more than a tenth of its lifetime, and at least a
/// second, left. A token about to expire would only reach the cache as
/// "expired on arrival" and cost a round of backoff.
fn has_useful_life(token: &AccessToken) -> bool {
    match token.expiry() {
        Expiry::At(at) => {
            let left = at.saturating_duration_since(Instant::now());
            let lifetime = at.saturating_duration_since(token.received_at());
            left >= std::time::Duration::from_secs(1) && left > lifetime / 10
        }
        Expiry::Unknown | Expiry::Never => true,
    }
}

impl TokenSource for RefreshTokenSource {
    fn dpop(&self) -> Option<std::sync::Arc<dyn crate::dpop::DpopProver>> {
        self.endpoint.dpop().cloned()
    }

    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let seen = self.refreshes.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        if let Some(token) = state.initial.take() {
            if has_useful_life(&token) {
                state.latest = Some(token.clone());
                return Ok(token);
            }
        }
        if self.refreshes.load(Ordering::Acquire) != seen {
            // Another fetch refreshed while this one waited: share its token
            // rather than spend the (possibly just rotated) refresh token again.
            if let Some(token) = state.latest.as_ref().filter(|t| has_useful_life(t)) {
                return Ok(token.clone());
            }
        }
        self.refresh(&mut state, None).await
    }

    /// Claims (a claims challenge) go with a refresh. A wider scope (a
    /// step-up) does not: a refresh may only narrow the scope granted
    /// (RFC 6749 §6), so more takes the user, and the `403` is returned.
    fn can_ask(&self, ask: &TokenAsk) -> bool {
        ask.scope().is_none()
    }

    async fn fetch_asking(
        &self,
        _rejected: &AccessToken,
        ask: &TokenAsk,
    ) -> Result<AccessToken, TokenError> {
        let mut state = self.state.lock().await;
        // The token the flow began with lacks what the server asks for.
        state.initial = None;
        self.refresh(&mut state, Some(ask)).await
    }
}

impl fmt::Debug for RefreshTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenSource")
            .field("endpoint", &self.endpoint)
            .field("refresh_token", &Redacted)
            .field("params", &self.params)
            .field("on_rotate", &self.on_rotate.as_ref().map(|_| "Fn"))
            .finish_non_exhaustive()
    }
}
