//! Token type identifiers of OAuth 2.0 token exchange (RFC 8693 §3).

use std::borrow::Cow;
use std::fmt;

/// A token type URI (RFC 8693 §3): what kind of token a subject or actor
/// token is, or which kind is asked for.
///
/// ```
/// use tower_bearer::oauth2::TokenType;
///
/// assert_eq!(TokenType::JWT.as_str(), "urn:ietf:params:oauth:token-type:jwt");
/// let github = TokenType::new("urn:x-oath:params:oauth:token-type:github");
/// assert_eq!(github.to_string(), "urn:x-oath:params:oauth:token-type:github");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenType(Cow<'static, str>);

impl TokenType {
    /// An OAuth 2.0 access token.
    pub const ACCESS_TOKEN: TokenType = TokenType(Cow::Borrowed(
        "urn:ietf:params:oauth:token-type:access_token",
    ));
    /// An OAuth 2.0 refresh token.
    pub const REFRESH_TOKEN: TokenType = TokenType(Cow::Borrowed(
        "urn:ietf:params:oauth:token-type:refresh_token",
    ));
    /// An OpenID Connect ID token.
    pub const ID_TOKEN: TokenType =
        TokenType(Cow::Borrowed("urn:ietf:params:oauth:token-type:id_token"));
    /// A JWT (RFC 7519), such as a Kubernetes service-account token or a CI
    /// system's OIDC token.
    pub const JWT: TokenType = TokenType(Cow::Borrowed("urn:ietf:params:oauth:token-type:jwt"));
    /// A base64url-encoded SAML 1.1 assertion.
    pub const SAML1: TokenType = TokenType(Cow::Borrowed("urn:ietf:params:oauth:token-type:saml1"));
    /// A base64url-encoded SAML 2.0 assertion.
    pub const SAML2: TokenType = TokenType(Cow::Borrowed("urn:ietf:params:oauth:token-type:saml2"));

    /// Any other token type URI a server defines.
    pub fn new(uri: impl Into<String>) -> Self {
        Self(Cow::Owned(uri.into()))
    }

    /// The URI.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
