//! The client-credentials grant (RFC 6749 §4.4).

use super::endpoint::TokenEndpoint;
use crate::error::TokenError;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// Tokens for the client itself (RFC 6749 §4.4): `grant_type=client_credentials`
/// plus `scope`, `audience`, `resource` (RFC 8707) and any other parameters.
///
/// No refresh token is involved: each fetch asks again.
///
/// ```no_run
/// use tower_bearer::oauth2::{ClientAuth, ClientCredentials, TokenEndpoint};
///
/// # fn main() -> Result<(), tower_bearer::oauth2::EndpointError> {
/// // Glue: credentials in the form body, a workspace as `subject`.
/// let endpoint = TokenEndpoint::builder("https://api.gluegroups.com/oauth/token")
///     .client_id("id")
///     .client_secret("secret")
///     .client_auth(ClientAuth::RequestBody)
///     .build()?;
/// let source = ClientCredentials::new(endpoint)
///     .param("subject", "wks_32kbzWHxtQvfVEgwEdQduuxRTYG")
///     .param("redirect_uri", "https://app.example/callback");
/// # let _ = source; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    endpoint: TokenEndpoint,
    scopes: Vec<String>,
    audience: Option<String>,
    resources: Vec<String>,
    params: Vec<(String, String)>,
}

impl ClientCredentials {
    /// A source asking `endpoint` for client-credentials tokens.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").build().unwrap();
    /// let source = ClientCredentials::new(endpoint);
    /// assert_eq!(source.params().len(), 1); // grant_type only
    /// ```
    pub fn new(endpoint: TokenEndpoint) -> Self {
        Self {
            endpoint,
            scopes: Vec::new(),
            audience: None,
            resources: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Adds a scope; scopes are sent space-separated in one `scope` parameter.
    ///
    /// ```
    /// # let endpoint = tower_bearer::oauth2::TokenEndpoint::builder("https://a.example/t").build().unwrap();
    /// let source = tower_bearer::oauth2::ClientCredentials::new(endpoint).scope("read").scope("write");
    /// assert_eq!(source.params()[1], ("scope".to_owned(), "read write".to_owned()));
    /// ```
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Sets `audience` (Auth0-style APIs such as Blooma's).
    ///
    /// ```
    /// # use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").build().unwrap();
    /// let source = ClientCredentials::new(endpoint).audience("https://acme.blooma.ai/api/");
    /// assert_eq!(source.params()[1].0, "audience");
    /// ```
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Adds a `resource` indicator (RFC 8707); may be given more than once.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").build().unwrap();
    /// let source = ClientCredentials::new(endpoint).resource("urn:a").resource("urn:b");
    /// assert_eq!(source.params().iter().filter(|(k, _)| k == "resource").count(), 2);
    /// ```
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// Adds any other parameter (`subject`, `redirect_uri`, …).
    ///
    /// ```
    /// # use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").build().unwrap();
    /// let source = ClientCredentials::new(endpoint).param("subject", "wks_1");
    /// assert_eq!(source.params()[1], ("subject".to_owned(), "wks_1".to_owned()));
    /// ```
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// The parameters sent (without client authentication), in order.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").build().unwrap();
    /// assert_eq!(ClientCredentials::new(endpoint).params()[0].1, "client_credentials");
    /// ```
    pub fn params(&self) -> Vec<(String, String)> {
        let mut params = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
        if !self.scopes.is_empty() {
            params.push(("scope".to_owned(), self.scopes.join(" ")));
        }
        if let Some(audience) = &self.audience {
            params.push(("audience".to_owned(), audience.clone()));
        }
        for resource in &self.resources {
            params.push(("resource".to_owned(), resource.clone()));
        }
        params.extend(self.params.iter().cloned());
        params
    }

    /// The endpoint asked.
    ///
    /// ```
    /// # use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
    /// # let endpoint = TokenEndpoint::builder("https://auth.example/token").build().unwrap();
    /// let source = ClientCredentials::new(endpoint);
    /// assert_eq!(source.endpoint().url().path(), "/token");
    /// ```
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }
}

impl TokenSource for ClientCredentials {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let params = self.params();
        let borrowed: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let response = self.endpoint.request(&borrowed).await?;
        Ok(response.to_access_token())
    }
}
