//! The client-credentials grant (RFC 6749 §4.4).

use super::grant_params::{grant_setters, GrantParams};
use crate::error::TokenError;
use crate::oauth2::endpoint::token_endpoint::TokenEndpoint;
use crate::source::TokenSource;
use crate::token::AccessToken;
use crate::token_ask::TokenAsk;

/// Tokens for the client itself (RFC 6749 §4.4): `grant_type=client_credentials`
/// plus `scope`, `audience`, `resource` (RFC 8707) and any other parameters,
/// sent in that order.
///
/// No refresh token is involved: each fetch asks again.
///
/// ```
/// use tower_bearer::oauth2::{ClientAuth, ClientCredentials, TokenEndpoint};
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), tower_bearer::oauth2::BuildError> {
/// // Glue: credentials in the form body, a workspace as `subject`.
/// let endpoint = TokenEndpoint::builder("https://api.gluegroups.com/oauth/token")
///     .client_id("id")
///     .client_secret("secret")
///     .client_auth(ClientAuth::RequestBody)
///     .build()?;
/// let source = ClientCredentials::new(endpoint)
///     .scope("workspaces:read")
///     .scope("chats:write")
///     .audience("https://api.gluegroups.com/")
///     .resource("urn:glue:api")
///     .param("subject", "wks_32kbzWHxtQvfVEgwEdQduuxRTYG");
/// assert_eq!(source.endpoint().url().path(), "/oauth/token");
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    endpoint: TokenEndpoint,
    params: GrantParams,
}

impl ClientCredentials {
    /// A source asking `endpoint` for client-credentials tokens.
    pub fn new(endpoint: TokenEndpoint) -> Self {
        Self {
            endpoint,
            params: GrantParams::default(),
        }
    }

    grant_setters!(params);

    /// The endpoint asked.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }

    /// The parameters sent (without client authentication), borrowed.
    /// Declares a client capability, sent with every token request as the
    /// claims `{"access_token":{"xms_cc":{"values":[…]}}}`: Microsoft Entra's
    /// `cp1` says the client answers claims challenges (continuous access
    /// evaluation), which the layer does. A claims challenge's claims are
    /// merged with these.
    ///
    /// ```
    /// use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let endpoint = TokenEndpoint::builder("https://login.microsoftonline.com/tenant/oauth2/v2.0/token")
    ///     .client_id("app")
    ///     .client_secret("s3cr3t")
    ///     .build()?;
    /// let source = ClientCredentials::new(endpoint)
    ///     .scope("https://graph.microsoft.com/.default")
    ///     .client_capability("cp1");
    /// # let _ = source; Ok(()) }
    /// ```
    pub fn client_capability(mut self, capability: impl Into<String>) -> Self {
        self.params.add_capability(capability);
        self
    }

    /// One token request, asking for what a challenge named, if anything.
    async fn request(&self, ask: Option<&TokenAsk>) -> Result<AccessToken, TokenError> {
        let claims = self.params.claims(ask.and_then(TokenAsk::claims))?;
        let scope = ask
            .and_then(TokenAsk::scope)
            .map(|asked| self.params.scope_with(asked));
        let mut params = vec![("grant_type", "client_credentials")];
        self.params
            .append_asking(&mut params, scope.as_deref(), claims.as_deref());
        let response = self.endpoint.request(&params).await?;
        Ok(response.to_access_token())
    }
}

impl TokenSource for ClientCredentials {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        self.request(None).await
    }

    fn dpop(&self) -> Option<std::sync::Arc<dyn crate::dpop::DpopProver>> {
        self.endpoint.dpop().cloned()
    }

    /// Claims (a claims challenge) and scopes (a step-up) are request
    /// parameters this grant can send.
    fn can_ask(&self, _ask: &TokenAsk) -> bool {
        true
    }

    async fn fetch_asking(
        &self,
        _rejected: &AccessToken,
        ask: &TokenAsk,
    ) -> Result<AccessToken, TokenError> {
        self.request(Some(ask)).await
    }
}
