//! Authorization URLs: a base URL with form-encoded query parameters.

use std::fmt;

use super::form_urlencoded::{encode_into, Space};
use crate::redact;

/// Builds a URL by appending form-encoded query parameters, for
/// authorization requests (standard or not). The base may already have a query.
/// `Debug` leaves the query out: it carries the `state`.
///
/// ```
/// use tower_bearer::oauth2::AuthorizeUrl;
///
/// let url = AuthorizeUrl::new("https://glama.ai/oauth/authorize")
///     .param("callback_url", "https://app.example/cb?x=1")
///     .param("code_challenge_method", "S256")
///     .build();
/// assert_eq!(
///     url,
///     "https://glama.ai/oauth/authorize?callback_url=https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1&code_challenge_method=S256"
/// );
/// let url = AuthorizeUrl::new("https://a.example/auth?tenant=1").param("scope", "a b").build();
/// assert_eq!(url, "https://a.example/auth?tenant=1&scope=a+b");
/// ```
#[derive(Clone)]
#[must_use]
pub struct AuthorizeUrl {
    url: String,
    has_query: bool,
}

impl AuthorizeUrl {
    /// Starts from a base URL, which may already have a query.
    pub fn new(base: impl Into<String>) -> Self {
        let url = base.into();
        let has_query = url.contains('?');
        Self { url, has_query }
    }

    /// Appends `key=value`, both form-encoded.
    pub fn param(mut self, key: &str, value: &str) -> Self {
        if self.has_query {
            if !self.url.ends_with(['?', '&']) {
                self.url.push('&');
            }
        } else {
            self.url.push('?');
            self.has_query = true;
        }
        encode_into(&mut self.url, key, Space::Plus);
        self.url.push('=');
        encode_into(&mut self.url, value, Space::Plus);
        self
    }

    /// The URL.
    pub fn build(self) -> String {
        self.url
    }
}

impl fmt::Debug for AuthorizeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AuthorizeUrl")
            .field(&redact::url(&self.url))
            .finish()
    }
}
