//! What a token endpoint answers: a token (RFC 6749 §5.1), an error (§5.2),
//! or something else, read leniently where servers differ.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use crate::dpop::DpopProver;
use crate::error::TokenError;
use crate::oauth2::{ExchangeError, OAuth2Error};
use crate::redact;
use crate::secret::Secret;
use crate::token::AccessToken;

/// A successful token response (RFC 6749 §5.1).
///
/// Lenient where servers differ: `expires_in` may be a number or a numeric
/// string, missing, or huge; `token_type` is matched case-insensitively;
/// unknown fields (`user_id`, …) are kept in [`extra`](Self::extra).
/// A `token_type` other than `Bearer` or `DPoP` is refused
/// ([`ExchangeError::UnsupportedTokenType`](crate::oauth2::ExchangeError::UnsupportedTokenType));
/// a missing one is taken to be `Bearer`.
///
/// A `DPoP` token (RFC 9449 §5) is bound to the key whose proof asked for
/// it: a [`TokenEndpoint`](crate::oauth2::TokenEndpoint) with a DPoP key
/// ([`dpop`](crate::oauth2::TokenEndpointBuilder::dpop)) hands the key over with the
/// response ([`dpop`](Self::dpop)), and [`to_access_token`](Self::to_access_token)
/// binds the token to it. A response parsed here by hand has no key: bind
/// its token with [`AccessToken::bound_with_dpop`].
///
/// `expires_in` counts whole seconds (RFC 6749 §5.1), and one rule reads it:
///
/// - a positive value, number or numeric string, fractions and exponents
///   included (`1.5`, `0.001`, `"1e-3"`, `1e-12`), is rounded **up** to whole
///   seconds, so a token that expires at all lives at least 1 s;
/// - zero, a negative value, a non-finite one (`"NaN"`, `"inf"`), `null`, a
///   missing field or anything non-numeric means the server did not say: the
///   lifetime is unknown (as Go's `golang.org/x/oauth2` treats it), and the
///   cache applies its default lifetime;
/// - a value too large to represent (`u64::MAX` seconds or more) means the
///   token never expires.
///
/// `Debug` shows the tokens as `[redacted]` and other fields by name only.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::oauth2::TokenResponse;
///
/// let body = br#"{"access_token":"abc","token_type":"bearer","expires_in":"3600",
///     "refresh_token":"r","scope":"read","id_token":"i","user_id":"usr_1"}"#;
/// let response = TokenResponse::from_json(body).unwrap();
/// assert_eq!(response.access_token().expose(), "abc");
/// assert_eq!(response.token_type(), Some("bearer"));
/// assert_eq!(response.expires_in(), Some(Duration::from_secs(3600)));
/// assert_eq!(response.refresh_token().unwrap().expose(), "r");
/// assert_eq!(response.scope(), Some("read"));
/// assert_eq!(response.id_token().unwrap().expose(), "i");
/// assert_eq!(response.extra("user_id").and_then(|v| v.as_str()), Some("usr_1"));
/// assert_eq!(response.extra_fields().len(), 1);
/// assert!(!format!("{response:?}").contains("abc"));
///
/// // What the cache keeps: the token, its scope, its lifetime counted from now.
/// let token = response.to_access_token();
/// assert_eq!(token.secret(), "abc");
/// assert_eq!(token.scope(), Some("read"));
/// assert!(token.expires_at().is_some());
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
    /// The key a `DPoP` token is bound to, set by the endpoint that asked.
    dpop: Option<Arc<dyn DpopProver>>,
}

impl TokenResponse {
    /// Parses a JSON token response body (status 200 assumed).
    pub fn from_json(body: &[u8]) -> Result<Self, TokenError> {
        let fields = parse_fields(StatusCode::OK, &HeaderMap::new(), body, &[])?;
        Ok(Self::from_fields(fields)?)
    }

    /// Builds a response from the fields of a successful answer.
    pub(crate) fn from_fields(mut fields: Map<String, Value>) -> Result<Self, ExchangeError> {
        let access_token = match fields.remove("access_token") {
            Some(Value::String(token)) if !token.is_empty() => Secret::new(token),
            _ => {
                return Err(ExchangeError::UnexpectedResponse {
                    status: StatusCode::OK,
                    reason: "no `access_token` in the token response".into(),
                    excerpt: None,
                    retry_after: None,
                })
            }
        };
        let token_type = take_string(&mut fields, "token_type");
        if let Some(kind) = &token_type {
            if !kind.eq_ignore_ascii_case("bearer") && !kind.eq_ignore_ascii_case("dpop") {
                let kind = redact::server_text(kind, &[]);
                return Err(ExchangeError::UnsupportedTokenType(kind));
            }
        }
        let expires_in = fields.remove("expires_in").and_then(|v| expires_in(&v));
        Ok(Self {
            access_token,
            token_type,
            expires_in,
            refresh_token: take_string(&mut fields, "refresh_token").map(Secret::new),
            scope: take_string(&mut fields, "scope"),
            id_token: take_string(&mut fields, "id_token").map(Secret::new),
            extra: fields,
            dpop: None,
        })
    }

    /// Whether the `token_type` is `DPoP` (in any case): the token is bound
    /// to the key whose proof the request carried (RFC 9449 §5). Users see
    /// it as [`dpop`](Self::dpop): the key it is bound to.
    pub(crate) fn is_dpop(&self) -> bool {
        self.token_type
            .as_deref()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("dpop"))
    }

    /// The key a `DPoP` token is bound to, when the endpoint that asked for
    /// it has one; `None` for a bearer token.
    pub fn dpop(&self) -> Option<&Arc<dyn DpopProver>> {
        self.dpop.as_ref()
    }

    /// Binds a `DPoP` token to the key that asked for it (the endpoint's).
    pub(crate) fn with_dpop(mut self, prover: Arc<dyn DpopProver>) -> Self {
        self.dpop = Some(prover);
        self
    }

    /// The access token.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The `token_type` as sent (any case of `Bearer` or `DPoP`), if sent.
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// The lifetime, if known (see the type's documentation).
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The refresh token, if one was issued.
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// The granted scope, if the server said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The OpenID Connect ID token, if one was issued.
    pub fn id_token(&self) -> Option<&Secret> {
        self.id_token.as_ref()
    }

    /// Any other field of the response, such as Glue's `user_id`.
    pub fn extra(&self, name: &str) -> Option<&Value> {
        self.extra.get(name)
    }

    /// All other fields of the response.
    pub fn extra_fields(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// The access token for the cache, its lifetime counted from now, bound
    /// to the [DPoP key](Self::dpop) if there is one.
    pub fn to_access_token(&self) -> AccessToken {
        let mut token = AccessToken::new(self.access_token.expose());
        if let Some(lifetime) = self.expires_in {
            token = token.with_expires_in(lifetime);
        }
        if let Some(scope) = &self.scope {
            token = token.with_scope(scope.clone());
        }
        if let Some(prover) = &self.dpop {
            token = token.bound_with_dpop(Arc::clone(prover));
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
            .field("dpop_jkt", &self.dpop.as_ref().map(|p| p.thumbprint()))
            .finish()
    }
}

/// Reads a token endpoint's answer into its fields, or the error it carries.
///
/// JSON unless the content type says form-encoded (GitHub's legacy format);
/// an `error` field makes an [`OAuth2Error`] whatever the status (a 200 whose
/// body is an error is an error). `sent` are the secrets the request carried:
/// errors never show them, whatever the server echoes.
pub(crate) fn parse_fields(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    sent: &[&str],
) -> Result<Map<String, Value>, TokenError> {
    let retry_after = retry_after(headers, SystemTime::now());
    let unexpected = |reason: &str| -> TokenError {
        ExchangeError::UnexpectedResponse {
            status,
            reason: reason.to_owned(),
            excerpt: (!status.is_success()).then(|| redact::excerpt(body, sent)),
            retry_after,
        }
        .into()
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let form = content_type.starts_with("application/x-www-form-urlencoded")
        || (content_type.starts_with("text/plain") && !body.trim_ascii_start().starts_with(b"{"));
    let fields = if form {
        match serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
            Ok(pairs) => pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect::<Map<_, _>>(),
            Err(_) => return Err(unexpected("the form-encoded body could not be parsed")),
        }
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(unexpected("the JSON body is not an object")),
            Err(_) if body.is_empty() => return Err(unexpected("the body is empty")),
            Err(_) => return Err(unexpected("the body is not JSON")),
        }
    };
    if let Some(Value::String(code)) = fields.get("error") {
        let text = |key| match fields.get(key) {
            Some(Value::String(text)) => Some(text.as_str()),
            _ => None,
        };
        let description = text("error_description");
        let mut err =
            OAuth2Error::from_server(Some(status), code, description, text("error_uri"), sent);
        if let Some(delay) = retry_after {
            err = err.with_retry_after(delay);
        }
        return Err(err.into());
    }
    if !status.is_success() {
        return Err(unexpected(
            "an error status without an RFC 6749 `error` field",
        ));
    }
    Ok(fields)
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as the
/// delay from `now` (zero for a date in the past).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The lifetime `expires_in` gives, by the rule on [`TokenResponse`]: whole
/// seconds, positive values rounded up, `None` when the server did not say.
fn expires_in(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => match n.as_u64() {
            Some(secs) => secs,
            None => whole_seconds(n.as_f64()?)?,
        },
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                // Digits only: exact, however long (`u64::MAX` when too long).
                s.parse::<u64>().unwrap_or(u64::MAX)
            } else {
                whole_seconds(s.parse::<f64>().ok()?)?
            }
        }
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// `secs` rounded up to whole seconds (`u64::MAX` when too large); `None`
/// unless positive and finite.
fn whole_seconds(secs: f64) -> Option<u64> {
    // The cast saturates: 1e300 becomes u64::MAX.
    (secs.is_finite() && secs > 0.0).then(|| secs.ceil() as u64)
}

/// Takes a string field (a number is taken as its text); leaves other JSON
/// values among the extra fields.
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
    use http::HeaderValue;
    use serde_json::json;

    fn parse(
        status: StatusCode,
        content_type: &str,
        body: &[u8],
    ) -> Result<Map<String, Value>, TokenError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        parse_fields(status, &headers, body, &[])
    }

    #[test]
    fn expires_in_is_whole_seconds_rounded_up() {
        let secs = |s| Some(Duration::from_secs(s));
        let (unknown, never) = (None, secs(u64::MAX));
        for (value, expected) in [
            (json!(3600), secs(3600)),
            (json!("3600"), secs(3600)),
            (json!(" 60 "), secs(60)),
            (json!("+60"), secs(60)),
            (json!(59.0), secs(59)),
            (json!("1e3"), secs(1000)),
            // Fractions and exponents: rounded up, so at least a second.
            (json!(1.5), secs(2)),
            (json!(0.05), secs(1)),
            (json!("0.05"), secs(1)),
            (json!(0.001), secs(1)),
            (json!("1e-3"), secs(1)),
            (json!(1e-12), secs(1)),
            (json!(f64::MIN_POSITIVE), secs(1)),
            // The server did not say.
            (json!(0), unknown),
            (json!(0.0), unknown),
            (json!("0"), unknown),
            (json!("-0"), unknown),
            (json!("0e5"), unknown),
            (json!(-5), unknown),
            (json!(-0.5), unknown),
            (json!("-5"), unknown),
            (json!(i64::MIN), unknown),
            (json!(-1e300), unknown),
            (json!("NaN"), unknown),
            (json!("inf"), unknown),
            (json!("-infinity"), unknown),
            (json!("soon"), unknown),
            (json!("0x10"), unknown),
            (json!(""), unknown),
            (json!(null), unknown),
            (json!(true), unknown),
            (json!([60]), unknown),
            (json!({"seconds": 60}), unknown),
            // Too large to represent: never expires.
            (json!(u64::MAX), never),
            (json!("18446744073709551615"), never),
            (json!("99999999999999999999999999"), never),
            (json!(1e300), never),
            (json!("1e300"), never),
        ] {
            assert_eq!(expires_in(&value), expected, "expires_in: {value}");
        }
    }

    #[test]
    fn huge_lifetime_never_expires() {
        let body = format!(
            r#"{{"access_token":"a","token_type":"BEARER","expires_in":{}}}"#,
            u64::MAX
        );
        let token = TokenResponse::from_json(body.as_bytes())
            .unwrap()
            .to_access_token();
        assert_eq!(token.expiry(), crate::token::Expiry::Never);
    }

    #[test]
    fn dpop_tokens_are_accepted_in_any_case() {
        for kind in ["DPoP", "dpop", "DPOP"] {
            let body = format!(r#"{{"access_token":"a","token_type":"{kind}"}}"#);
            let response = TokenResponse::from_json(body.as_bytes()).unwrap();
            assert!(response.is_dpop());
            assert_eq!(response.token_type(), Some(kind));
            // Parsed by hand: no key to bind it to.
            assert!(response.dpop().is_none());
            assert!(response.to_access_token().dpop().is_none());
        }
        let bearer = TokenResponse::from_json(br#"{"access_token":"a"}"#).unwrap();
        assert!(!bearer.is_dpop());
    }

    #[test]
    fn non_bearer_rejected() {
        let err =
            TokenResponse::from_json(br#"{"access_token":"a","token_type":"mac"}"#).unwrap_err();
        assert!(err.is_permanent());
        assert!(err.to_string().contains("mac"), "{err}");
    }

    #[test]
    fn error_in_200() {
        let err = TokenResponse::from_json(br#"{"error":"bad_verification_code"}"#).unwrap_err();
        let cause = err.cause().unwrap().downcast_ref::<OAuth2Error>().unwrap();
        assert_eq!(cause.error(), "bad_verification_code");
        assert!(err.is_permanent());
    }

    #[test]
    fn form_response() {
        let fields = parse(
            StatusCode::OK,
            "application/x-www-form-urlencoded; charset=utf-8",
            b"access_token=abc&token_type=bearer&scope=repo%2Cuser",
        )
        .unwrap();
        let r = TokenResponse::from_fields(fields).unwrap();
        assert_eq!(r.scope(), Some("repo,user"));
    }

    #[test]
    fn non_json_error_has_excerpt_without_secrets() {
        let err = parse(
            StatusCode::BAD_GATEWAY,
            "text/html",
            b"<html>bad gateway</html>",
        )
        .unwrap_err();
        assert!(err.is_transient());
        assert!(
            err.to_string().contains("502") && err.to_string().contains("bad gateway"),
            "{err}"
        );
        let err = parse(StatusCode::OK, "text/html", b"<html>access_token</html>").unwrap_err();
        assert!(!err.to_string().contains("html"), "{err}");
    }

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 22 Nov 2026 12:00:00 GMT").unwrap();
        let delay = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            retry_after(&headers, now)
        };
        assert_eq!(delay(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            delay("Sun, 22 Nov 2026 12:01:30 GMT"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(delay("Sun, 22 Nov 2026 11:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(delay("soon"), None);
        assert_eq!(delay("-5"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
