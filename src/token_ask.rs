//! `TokenAsk`: what a token request asks for beyond the usual, when a server
//! challenged the token it had (a claims challenge, a step-up of scope).

use std::fmt;
use std::sync::Arc;

/// What a server's challenge asked a new token to carry: the `claims` of a
/// claims challenge (Microsoft Entra's continuous access evaluation,
/// `error="insufficient_claims"`), or a wider `scope` (a `403` with
/// `error="insufficient_scope"`, when step-up is on).
///
/// A [`TokenSource`](crate::TokenSource) that can send them says so in
/// [`can_ask`](crate::TokenSource::can_ask) and sends them in
/// [`fetch_asking`](crate::TokenSource::fetch_asking); the `oauth2` grants
/// that can do.
///
/// ```
/// use tower_bearer::TokenAsk;
///
/// let ask = TokenAsk::for_claims(r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#);
/// assert!(ask.claims().unwrap().contains("nbf"));
/// assert_eq!(ask.scope(), None);
/// assert_eq!(TokenAsk::for_scope("invoices:write").scope(), Some("invoices:write"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenAsk {
    claims: Option<Arc<str>>,
    scope: Option<Arc<str>>,
}

impl TokenAsk {
    /// Asks for a token with these claims: the JSON of the challenge's
    /// `claims` parameter, decoded from base64.
    pub fn for_claims(json: impl Into<String>) -> Self {
        Self {
            claims: Some(Arc::from(json.into())),
            scope: None,
        }
    }

    /// Asks for a token with this scope (space-separated).
    pub fn for_scope(scope: impl Into<String>) -> Self {
        Self {
            claims: None,
            scope: Some(Arc::from(scope.into())),
        }
    }

    /// The claims asked for (JSON), if any.
    pub fn claims(&self) -> Option<&str> {
        self.claims.as_deref()
    }

    /// The scope asked for, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
}

/// Shows what is asked for: claims and scopes are requirements, not secrets.
impl fmt::Debug for TokenAsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAsk")
            .field("claims", &self.claims)
            .field("scope", &self.scope)
            .finish()
    }
}
