//! Authorization URLs: a base URL with form-encoded query parameters.

use std::fmt;

use super::uri_reference::UriReference;
use crate::oauth2::endpoint::form_urlencoded::{encode_into, Space};
use crate::redact;

/// Builds a URL by appending form-encoded query parameters, for
/// authorization requests (standard or not). A query already in the base is
/// kept, and the parameters follow it; a fragment stays at the end, where
/// URLs keep it. `Debug` leaves the query out: it carries the `state`.
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
/// let url = AuthorizeUrl::new("https://a.example/auth#top").param("state", "s").build();
/// assert_eq!(url, "https://a.example/auth?state=s#top");
/// ```
#[derive(Clone)]
#[must_use]
pub struct AuthorizeUrl {
    /// The base and the query so far, without the fragment.
    url: String,
    has_query: bool,
    /// The base's fragment with its `#`, or empty.
    fragment: String,
}

impl AuthorizeUrl {
    /// Starts from a base URL, which may already have a query (kept) or a
    /// fragment (kept after the query).
    pub fn new(base: impl Into<String>) -> Self {
        let base = base.into();
        let parts = UriReference::split(&base);
        let fragment = parts.fragment.map_or(String::new(), |f| format!("#{f}"));
        let mut url = parts.base.to_owned();
        if let Some(query) = parts.query {
            url.push('?');
            url.push_str(query);
        }
        Self {
            url,
            has_query: parts.query.is_some(),
            fragment,
        }
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
        let mut url = self.url;
        url.push_str(&self.fragment);
        url
    }
}

impl fmt::Debug for AuthorizeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AuthorizeUrl")
            .field(&redact::url(&self.url))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_go_into_the_query_before_any_fragment() {
        let cases = [
            (
                "https://idp.example/auth",
                "https://idp.example/auth?state=s&x=a+b",
            ),
            (
                "https://idp.example/auth?",
                "https://idp.example/auth?state=s&x=a+b",
            ),
            (
                "https://idp.example/auth?t=1",
                "https://idp.example/auth?t=1&state=s&x=a+b",
            ),
            (
                "https://idp.example/auth?t=1&",
                "https://idp.example/auth?t=1&state=s&x=a+b",
            ),
            // The bug: this was `https://idp.example/auth#frag?state=…`, which
            // sends no parameter at all (a fragment never leaves the browser).
            (
                "https://idp.example/auth#frag",
                "https://idp.example/auth?state=s&x=a+b#frag",
            ),
            (
                "https://idp.example/auth?t=1#frag",
                "https://idp.example/auth?t=1&state=s&x=a+b#frag",
            ),
            (
                "https://idp.example/auth#",
                "https://idp.example/auth?state=s&x=a+b#",
            ),
            (
                "https://idp.example/auth#f?g=1",
                "https://idp.example/auth?state=s&x=a+b#f?g=1",
            ),
        ];
        for (base, expected) in cases {
            let url = AuthorizeUrl::new(base)
                .param("state", "s")
                .param("x", "a b")
                .build();
            assert_eq!(url, expected, "{base}");
        }
        assert_eq!(
            AuthorizeUrl::new("https://idp.example/a#f").build(),
            "https://idp.example/a#f"
        );
    }

    #[test]
    fn debug_shows_neither_query_nor_fragment() {
        let url = AuthorizeUrl::new("https://idp.example/auth#frag").param("state", "s3cr3t");
        assert_eq!(
            format!("{url:?}"),
            "AuthorizeUrl(\"https://idp.example/auth?[redacted]\")"
        );
    }
}
