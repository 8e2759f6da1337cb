//! Successful token responses (RFC 6749 §5.1).

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value};

use super::endpoint_error::EndpointError;
use super::parse::{parse_expires_in, parse_fields};
use crate::error::TokenError;
use crate::secret::Secret;
use crate::token::AccessToken;

/// A successful token response (RFC 6749 §5.1).
///
/// Lenient where servers differ: `expires_in` may be a number or a numeric
/// string, missing, or huge; `token_type` is matched case-insensitively;
/// unknown fields (`user_id`, …) are kept in [`extra`](Self::extra).
/// A `token_type` other than `Bearer` is refused
/// ([`EndpointError::UnsupportedTokenType`](super::EndpointError::UnsupportedTokenType));
/// a missing one is taken to be `Bearer`.
///
/// An `expires_in` that is missing, zero or negative means the lifetime is
/// unknown (as Go's `golang.org/x/oauth2` treats it): the cache then applies
/// its default lifetime. One too large to represent (`u64::MAX` seconds)
/// means the token never expires.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::oauth2::TokenResponse;
///
/// let body = br#"{"access_token":"abc","token_type":"bearer","expires_in":"3600","user_id":"usr_1"}"#;
/// let response = TokenResponse::from_json(body).unwrap();
/// assert_eq!(response.access_token().expose(), "abc");
/// assert_eq!(response.expires_in(), Some(Duration::from_secs(3600)));
/// assert_eq!(response.extra("user_id").and_then(|v| v.as_str()), Some("usr_1"));
/// assert!(!format!("{response:?}").contains("abc"));
/// ```
#[derive(Clone)]
pub struct TokenResponse {
    access_token: Secret,
    token_type: Option<String>,
    expires_in: Option<Duration>,
    refresh_token: Option<Secret>,
    scope: Option<String>,
    id_token: Option<Secret>,
    extra: Map<String, Value>,
}

impl TokenResponse {
    /// Parses a JSON token response body (status 200 assumed).
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// # let _ = r;
    /// ```
    pub fn from_json(body: &[u8]) -> Result<Self, TokenError> {
        let fields = parse_fields(StatusCode::OK, Some("application/json"), body, None)?;
        Ok(Self::from_fields(fields)?)
    }

    /// Builds a response from already parsed fields.
    pub(crate) fn from_fields(mut fields: Map<String, Value>) -> Result<Self, EndpointError> {
        let access_token = match fields.remove("access_token") {
            Some(Value::String(token)) if !token.is_empty() => Secret::new(token),
            _ => {
                return Err(EndpointError::UnexpectedResponse {
                    status: StatusCode::OK,
                    reason: "no `access_token` in the token response".into(),
                    excerpt: None,
                    retry_after: None,
                })
            }
        };
        let token_type = take_string(&mut fields, "token_type");
        if let Some(kind) = &token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(EndpointError::UnsupportedTokenType(kind.clone()));
            }
        }
        let expires_in = fields
            .remove("expires_in")
            .and_then(|v| parse_expires_in(&v));
        Ok(Self {
            access_token,
            token_type,
            expires_in,
            refresh_token: take_string(&mut fields, "refresh_token").map(Secret::new),
            scope: take_string(&mut fields, "scope"),
            id_token: take_string(&mut fields, "id_token").map(Secret::new),
            extra: fields,
        })
    }

    /// The access token.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// assert_eq!(r.access_token().expose(), "a");
    /// ```
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The `token_type` as sent (any case of `Bearer`), if sent.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// assert_eq!(r.token_type(), Some("Bearer"));
    /// ```
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// The lifetime, if known (see the type's documentation).
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// assert_eq!(r.expires_in(), Some(std::time::Duration::from_secs(60)));
    /// ```
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The refresh token, if one was issued.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// assert_eq!(r.refresh_token().unwrap().expose(), "r");
    /// ```
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// The granted scope, if the server said.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// assert_eq!(r.scope(), Some("read"));
    /// ```
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The OpenID Connect ID token, if one was issued.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// assert_eq!(r.id_token().unwrap().expose(), "i");
    /// ```
    pub fn id_token(&self) -> Option<&Secret> {
        self.id_token.as_ref()
    }

    /// Any other field of the response, such as Glue's `user_id`.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// assert_eq!(r.extra("user_id").and_then(|v| v.as_str()), Some("u"));
    /// ```
    pub fn extra(&self, name: &str) -> Option<&Value> {
        self.extra.get(name)
    }

    /// All other fields of the response.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// assert_eq!(r.extra_fields().len(), 1);
    /// ```
    pub fn extra_fields(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// The access token for the cache, its lifetime counted from now.
    ///
    /// ```
    /// # use tower_bearer::oauth2::TokenResponse;
    /// let r = TokenResponse::from_json(br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"read","id_token":"i","user_id":"u"}"#).unwrap();
    /// let token = r.to_access_token();
    /// assert_eq!(token.secret(), "a");
    /// assert_eq!(token.scope(), Some("read"));
    /// assert!(token.expires_at().is_some());
    /// ```
    pub fn to_access_token(&self) -> AccessToken {
        let mut token = AccessToken::new(self.access_token.expose());
        if let Some(lifetime) = self.expires_in {
            token = token.with_expires_in(lifetime);
        }
        if let Some(scope) = &self.scope {
            token = token.with_scope(scope.clone());
        }
        token
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Extra fields are listed by name only: they may hold credentials too.
        let extra: Vec<&String> = self.extra.keys().collect();
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.scope)
            .field("id_token", &self.id_token)
            .field("extra", &extra)
            .finish()
    }
}

fn take_string(fields: &mut Map<String, Value>, key: &str) -> Option<String> {
    match fields.remove(key)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        other => {
            fields.insert(key.to_owned(), other);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_lifetime_never_expires() {
        let body = format!(
            r#"{{"access_token":"a","token_type":"BEARER","expires_in":{}}}"#,
            u64::MAX
        );
        let token = TokenResponse::from_json(body.as_bytes())
            .unwrap()
            .to_access_token();
        assert_eq!(token.expiry(), crate::Expiry::Never);
    }

    #[test]
    fn non_bearer_rejected() {
        let err =
            TokenResponse::from_json(br#"{"access_token":"a","token_type":"mac"}"#).unwrap_err();
        assert!(err.is_permanent());
        assert!(err.to_string().contains("mac"), "{err}");
    }
}
