//! What comes back to the redirect URI: `code`, `state` and `iss`, or an
//! `error`; and the checks it must pass before its code is spent.

use std::fmt;

use super::issuer_check;
use super::pending_authorization::PendingAuthorization;
use super::uri_reference::UriReference;
use crate::error::TokenError;
use crate::oauth2::{ExchangeError, OAuth2Error};
use crate::redact::Redacted;
use crate::secret::Secret;

/// The parameters of an authorization response; finding them only in a
/// fragment means the server answered in a mode this client does not read.
const RESPONSE_PARAMETERS: [&str; 6] =
    ["code", "state", "error", "iss", "access_token", "id_token"];

/// What came back to the redirect URI: `code`, `state` and `iss` (RFC 9207),
/// or an `error`.
///
/// ```
/// use tower_bearer::oauth2::{Callback, ExchangeError};
///
/// let cb = Callback::from_url("https://app.example/cb?code=9a51&state=b1ad&iss=https%3A%2F%2Fidp.example#_=_").unwrap();
/// assert_eq!(cb.code().unwrap().expose(), "9a51");
/// assert_eq!(cb.state(), Some("b1ad"));
/// assert_eq!(cb.iss(), Some("https://idp.example"));
/// // The code and the CSRF state are secrets: neither is printed.
/// assert_eq!(
///     format!("{cb:?}"),
///     r#"Callback { code: Some([redacted]), state: Some([redacted]), iss: Some("https://idp.example"), error: None }"#
/// );
///
/// // Web frameworks hand over the path and query: that works too.
/// assert_eq!(Callback::from_url("/cb?code=9a51&state=b1ad").unwrap().state(), Some("b1ad"));
///
/// let denied = Callback::from_query("error=access_denied&error_description=no&state=b1ad").unwrap();
/// assert!(denied.code().is_none());
/// assert_eq!(denied.error().unwrap().error(), "access_denied");
/// assert_eq!(denied.error().unwrap().error_description(), Some("no"));
///
/// // A response in the fragment (`response_mode=fragment`) never reaches a
/// // server; this client reads the query, and says so.
/// let err = Callback::from_url("https://app.example/cb#code=9a51&state=b1ad").unwrap_err();
/// let cause = err.cause().unwrap().downcast_ref::<ExchangeError>().unwrap();
/// assert!(matches!(cause, ExchangeError::InvalidCallback(_)));
/// assert!(err.to_string().contains("fragment"));
/// ```
#[derive(Clone)]
pub struct Callback {
    code: Option<Secret>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<OAuth2Error>,
}

impl Callback {
    /// From the query string of the redirect (without the `?`).
    pub fn from_query(query: &str) -> Result<Self, TokenError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|_| {
            ExchangeError::InvalidCallback("the redirect's query string could not be parsed")
        })?;
        let mut seen: Vec<String> = Vec::with_capacity(pairs.len());
        let mut callback = Callback {
            code: None,
            state: None,
            iss: None,
            error: None,
        };
        let (mut error, mut description, mut uri) = (None, None, None);
        for (key, value) in pairs {
            if let Some(repeated) = repeated_parameter(&key, &seen) {
                return Err(ExchangeError::InvalidCallback(repeated).into());
            }
            seen.push(key.clone());
            match key.as_str() {
                "code" => callback.code = Some(Secret::new(value)),
                "state" => callback.state = Some(value),
                "iss" => callback.iss = Some(value),
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

    /// From the URL the user was redirected to: absolute, or the path and
    /// query a web framework hands over. A fragment is ignored, unless the
    /// response is only there (`response_mode=fragment`, or an implicit
    /// grant): that is [`ExchangeError::InvalidCallback`], since browsers
    /// never send fragments to servers.
    pub fn from_url(url: &str) -> Result<Self, TokenError> {
        let parts = UriReference::split(url);
        let callback = Self::from_query(parts.query.unwrap_or(""))?;
        if callback.is_empty() && parts.fragment.is_some_and(carries_a_response) {
            return Err(ExchangeError::InvalidCallback(
                "its parameters are in the URL fragment, which browsers never send to a server; \
                 ask for the response in the query (response_mode=query, the default for response_type=code)",
            )
            .into());
        }
        Ok(callback)
    }

    /// The authorization code, if any.
    pub fn code(&self) -> Option<&Secret> {
        self.code.as_ref()
    }

    /// The returned `state`, if any.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The issuer that sent this response (RFC 9207 `iss`), if it said.
    pub fn iss(&self) -> Option<&str> {
        self.iss.as_deref()
    }

    /// The error the server sent instead of a code, if any.
    pub fn error(&self) -> Option<&OAuth2Error> {
        self.error.as_ref()
    }

    /// The code, once this response has passed every check against the
    /// authorization it answers, in this order:
    ///
    /// 1. the `state` is the one sent, compared in constant time, else
    ///    [`ExchangeError::StateMismatch`] (an error response with a forged
    ///    state is an attack, and its text must not reach the caller as the
    ///    server's word);
    /// 2. the `iss`, if the issuer is known: the one the user was sent to,
    ///    else [`ExchangeError::IssuerMismatch`]; absent while the issuer
    ///    promised it, [`ExchangeError::MissingIssuer`] (RFC 9207 §2.4; an
    ///    error response is checked too, since it may come from the attacker);
    /// 3. no `error`, else that [`OAuth2Error`];
    /// 4. a `code`, else [`ExchangeError::MissingCode`].
    ///
    /// [`AuthorizationCode::exchange`](crate::oauth2::AuthorizationCode::exchange)
    /// calls it before sending anything; call it yourself before a custom
    /// exchange.
    ///
    /// ```
    /// use tower_bearer::oauth2::{Callback, CsrfState, ExchangeError, PendingAuthorization};
    ///
    /// let pending = PendingAuthorization::new(CsrfState::new("b1ad"))
    ///     .with_required_issuer("https://idp.example");
    /// let ok = Callback::from_query("code=9a51&state=b1ad&iss=https%3A%2F%2Fidp.example").unwrap();
    /// assert_eq!(ok.verified_code(&pending).unwrap().expose(), "9a51");
    ///
    /// let mixed_up = Callback::from_query("code=9a51&state=b1ad&iss=https%3A%2F%2Fevil.example").unwrap();
    /// let err = mixed_up.verified_code(&pending).unwrap_err();
    /// let cause = err.cause().unwrap().downcast_ref::<ExchangeError>().unwrap();
    /// assert!(matches!(cause, ExchangeError::IssuerMismatch { .. }));
    /// ```
    pub fn verified_code(&self, pending: &PendingAuthorization) -> Result<&Secret, TokenError> {
        match self.state() {
            Some(state) if pending.state().matches(state) => {}
            _ => return Err(ExchangeError::StateMismatch.into()),
        }
        issuer_check::check(pending.expected_issuer(), self.iss())?;
        if let Some(err) = self.error() {
            return Err(err.clone().into());
        }
        Ok(self.code().ok_or(ExchangeError::MissingCode)?)
    }

    fn is_empty(&self) -> bool {
        self.code.is_none() && self.state.is_none() && self.iss.is_none() && self.error.is_none()
    }
}

/// The reason to refuse `key` if it is a response parameter already `seen`:
/// RFC 6749 §3.1 forbids repeated parameters, and reading either copy would
/// let an attacker who can add one to the URL (`state=forged&state=<good>`)
/// choose what the checks see.
fn repeated_parameter(key: &str, seen: &[String]) -> Option<&'static str> {
    if !seen.iter().any(|s| s == key) {
        return None;
    }
    macro_rules! repeated {
        ($parameter:literal) => {
            concat!(
                "`",
                $parameter,
                "` appears more than once (RFC 6749 §3.1 forbids repeated parameters)"
            )
        };
    }
    Some(match key {
        "code" => repeated!("code"),
        "state" => repeated!("state"),
        "iss" => repeated!("iss"),
        "error" => repeated!("error"),
        "error_description" => repeated!("error_description"),
        "error_uri" => repeated!("error_uri"),
        _ => return None,
    })
}

/// Whether a fragment holds an authorization response's parameters.
fn carries_a_response(fragment: &str) -> bool {
    serde_urlencoded::from_str::<Vec<(String, String)>>(fragment).is_ok_and(|pairs| {
        pairs
            .iter()
            .any(|(k, _)| RESPONSE_PARAMETERS.contains(&k.as_str()))
    })
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("code", &self.code)
            .field("state", &self.state.as_ref().map(|_| Redacted))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Read {
        /// code, state, iss as read.
        Response(
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        ),
        Error(&'static str),
        InFragment,
        /// Refused: this parameter appears twice.
        Repeated(&'static str),
    }

    #[test]
    fn callback_urls() {
        use Read::*;
        let cases: &[(&str, Read)] = &[
            (
                "https://app.example/cb?code=c&state=st4te",
                Response(Some("c"), Some("st4te"), None),
            ),
            (
                "https://app.example/cb?code=c&state=st4te&iss=https%3A%2F%2Fidp.example",
                Response(Some("c"), Some("st4te"), Some("https://idp.example")),
            ),
            (
                "/cb?code=c&state=st4te",
                Response(Some("c"), Some("st4te"), None),
            ),
            ("cb?state=st4te", Response(None, Some("st4te"), None)),
            // A fragment after the query is ignored (some servers add `#_=_`).
            (
                "https://app.example/cb?code=c&state=st4te#_=_",
                Response(Some("c"), Some("st4te"), None),
            ),
            (
                "https://app.example/cb?code=c&state=st4te#code=other",
                Response(Some("c"), Some("st4te"), None),
            ),
            (
                "https://app.example/cb?code=c&state=st4te#frag",
                Response(Some("c"), Some("st4te"), None),
            ),
            // A `?` after the `#` is part of the fragment, not a query (the
            // old split read `code=c` here as if it had been sent).
            ("https://app.example/cb#frag?code=c&state=st4te", InFragment),
            (
                "https://app.example/cb?error=access_denied&state=st4te",
                Error("access_denied"),
            ),
            // Only in the fragment: a clear error, not a `state` mismatch later.
            ("https://app.example/cb#code=c&state=st4te", InFragment),
            ("https://app.example/cb?#code=c&state=st4te", InFragment),
            (
                "https://app.example/cb#error=access_denied&state=st4te",
                InFragment,
            ),
            (
                "https://app.example/cb#access_token=t&token_type=bearer",
                InFragment,
            ),
            ("https://app.example/cb?unrelated=1#state=st4te", InFragment),
            // A fragment that is no response leaves an empty callback, which
            // `verified_code` refuses as a state mismatch.
            (
                "https://app.example/cb#section-2",
                Response(None, None, None),
            ),
            ("https://app.example/cb", Response(None, None, None)),
            // A repeated response parameter is refused, whichever copy is
            // the good one (RFC 6749 §3.1).
            ("https://app.example/cb?code=c&state=nope&state=st4te", Repeated("state")),
            ("https://app.example/cb?code=c&state=st4te&state=st4te", Repeated("state")),
            ("https://app.example/cb?code=c&code=d&state=st4te", Repeated("code")),
            (
                "https://app.example/cb?code=c&state=st4te&iss=https%3A%2F%2Fidp.example&iss=https%3A%2F%2Fevil.example",
                Repeated("iss"),
            ),
            (
                "https://app.example/cb?error=access_denied&error=server_error&state=st4te",
                Repeated("error"),
            ),
            // Other parameters may repeat: they are not read.
            (
                "https://app.example/cb?code=c&state=st4te&session_state=a&session_state=b",
                Response(Some("c"), Some("st4te"), None),
            ),
        ];
        for (url, expected) in cases {
            let read = match Callback::from_url(url) {
                Ok(cb) => match cb.error() {
                    Some(err) => Error(match err.error() {
                        "access_denied" => "access_denied",
                        other => panic!("{other}"),
                    }),
                    None => Response(
                        cb.code().map(|c| leak(c.expose())),
                        cb.state().map(leak),
                        cb.iss().map(leak),
                    ),
                },
                Err(err) => {
                    let cause = err.cause().unwrap().downcast_ref::<ExchangeError>();
                    let Some(ExchangeError::InvalidCallback(reason)) = cause else {
                        panic!("{url}: {err}");
                    };
                    assert!(!err.to_string().contains("st4te"), "{url}: {err}");
                    match ["code", "state", "iss", "error"]
                        .into_iter()
                        .find(|p| reason.starts_with(&format!("`{p}` appears more than once")))
                    {
                        Some(parameter) => Repeated(parameter),
                        None => InFragment,
                    }
                }
            };
            assert_eq!(&read, expected, "{url}");
        }
    }

    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_owned().into_boxed_str())
    }

    #[test]
    fn checks_run_in_order_state_issuer_error_code() {
        let pending = PendingAuthorization::new(crate::oauth2::CsrfState::new("s"))
            .with_required_issuer("https://idp.example");
        let iss = "iss=https%3A%2F%2Fidp.example";
        let evil = "iss=https%3A%2F%2Fevil.example";
        let cases: &[(String, &str)] = &[
            (format!("code=c&state=s&{iss}"), "ok"),
            (format!("code=c&state=forged&{iss}"), "state"),
            // A forged state is reported as such, whatever else is wrong.
            (format!("error=access_denied&state=forged&{evil}"), "state"),
            (format!("code=c&state=s&{evil}"), "issuer"),
            ("code=c&state=s".to_owned(), "missing issuer"),
            // An error response from another issuer is not that issuer's word.
            (format!("error=access_denied&state=s&{evil}"), "issuer"),
            (format!("error=access_denied&state=s&{iss}"), "error"),
            (format!("state=s&{iss}"), "code"),
            (format!("code=c&{iss}"), "state"),
        ];
        for (query, expected) in cases {
            let callback = Callback::from_query(query).unwrap();
            let got = match callback.verified_code(&pending) {
                Ok(code) => {
                    assert_eq!(code.expose(), "c");
                    "ok"
                }
                Err(err) => match err.cause() {
                    Some(c) if c.is::<OAuth2Error>() => "error",
                    Some(c) => match c.downcast_ref::<ExchangeError>().unwrap() {
                        ExchangeError::StateMismatch => "state",
                        ExchangeError::IssuerMismatch { .. } => "issuer",
                        ExchangeError::MissingIssuer { .. } => "missing issuer",
                        ExchangeError::MissingCode => "code",
                        other => panic!("{other:?}"),
                    },
                    None => panic!("{err:?}"),
                },
            };
            assert_eq!(got, *expected, "{query}");
        }
    }
}
