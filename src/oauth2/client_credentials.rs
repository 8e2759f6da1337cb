//! The client-credentials grant (RFC 6749 §4.4).

use super::endpoint::TokenEndpoint;
use super::grant_params::GrantParams;
use crate::error::TokenError;
use crate::source::TokenSource;
use crate::token::AccessToken;

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

    /// Adds a scope; scopes are sent space-separated in one `scope` parameter.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.params.add_scope(scope);
        self
    }

    /// Sets `audience` (Auth0-style APIs such as Blooma's).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.params.set_audience(audience);
        self
    }

    /// Adds a `resource` indicator (RFC 8707); may be given more than once.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.params.add_resource(resource);
        self
    }

    /// Adds any other parameter (`subject`, `redirect_uri`, …).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.add(key, value);
        self
    }

    /// The endpoint asked.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }

    /// The parameters sent (without client authentication), borrowed.
    fn params(&self) -> Vec<(&str, &str)> {
        let mut params = vec![("grant_type", "client_credentials")];
        self.params.append_to(&mut params);
        params
    }
}

impl TokenSource for ClientCredentials {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let response = self.endpoint.request(&self.params()).await?;
        Ok(response.to_access_token())
    }
}
