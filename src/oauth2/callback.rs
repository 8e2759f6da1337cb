//! What comes back to the redirect URI: `code` and `state`, or an `error`.

use std::fmt;

use super::error::OAuth2Error;
use crate::error::TokenError;
use crate::redact::Redacted;
use crate::secret::Secret;

/// What came back to the redirect URI: `code` and `state`, or an `error`.
///
/// ```
/// use tower_bearer::oauth2::Callback;
///
/// let cb = Callback::from_url("https://app.example/cb?code=9a51&state=b1ad#frag").unwrap();
/// assert_eq!(cb.code().unwrap().expose(), "9a51");
/// assert_eq!(cb.state(), Some("b1ad"));
/// // The code and the CSRF state are secrets: neither is printed.
/// assert_eq!(format!("{cb:?}"), "Callback { code: Some([redacted]), state: Some([redacted]), error: None }");
///
/// let denied = Callback::from_query("error=access_denied&error_description=no&state=b1ad").unwrap();
/// assert!(denied.code().is_none());
/// assert_eq!(denied.error().unwrap().error(), "access_denied");
/// assert_eq!(denied.error().unwrap().error_description(), Some("no"));
/// ```
#[derive(Clone)]
pub struct Callback {
    code: Option<Secret>,
    state: Option<String>,
    error: Option<OAuth2Error>,
}

impl Callback {
    /// From the query string of the redirect (without the `?`).
    pub fn from_query(query: &str) -> Result<Self, TokenError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|_| {
            TokenError::permanent("the redirect's query string could not be parsed")
        })?;
        let mut callback = Callback {
            code: None,
            state: None,
            error: None,
        };
        let (mut error, mut description, mut uri) = (None, None, None);
        for (key, value) in pairs {
            match key.as_str() {
                "code" => callback.code = Some(Secret::new(value)),
                "state" => callback.state = Some(value),
                "error" => error = Some(value),
                "error_description" => description = Some(value),
                "error_uri" => uri = Some(value),
                _ => {}
            }
        }
        if let Some(error) = error {
            // The server may echo what it was sent: the code and the state.
            let code = callback.code.as_ref().map(Secret::expose);
            let sent: Vec<&str> = code.into_iter().chain(callback.state.as_deref()).collect();
            callback.error = Some(OAuth2Error::from_server(
                None,
                &error,
                description.as_deref(),
                uri.as_deref(),
                &sent,
            ));
        }
        Ok(callback)
    }

    /// From the full URL the user was redirected to.
    pub fn from_url(url: &str) -> Result<Self, TokenError> {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        Self::from_query(query)
    }

    /// The authorization code, if any.
    pub fn code(&self) -> Option<&Secret> {
        self.code.as_ref()
    }

    /// The returned `state`, if any.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The error the server sent instead of a code, if any.
    pub fn error(&self) -> Option<&OAuth2Error> {
        self.error.as_ref()
    }
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("code", &self.code)
            .field("state", &self.state.as_ref().map(|_| Redacted))
            .field("error", &self.error)
            .finish()
    }
}
