//! Reading a token endpoint's answer: JSON or form-encoded fields, RFC 6749
//! §5.2 errors, and `expires_in` in its many shapes.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value};

use super::endpoint_error::EndpointError;
use super::error::OAuth2Error;
use crate::error::TokenError;
use crate::redact::excerpt;

/// `expires_in` as seconds: a number or a numeric string; `None` when missing,
/// not a number, zero or negative; `u64::MAX` seconds (never expires) when too
/// large.
pub(crate) fn parse_expires_in(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => {
            if let Some(secs) = n.as_u64() {
                secs
            } else if n.as_i64().is_some() {
                return None; // negative
            } else {
                return duration_from_f64(n.as_f64()?);
            }
        }
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse::<u64>().unwrap_or(u64::MAX)
            } else {
                return duration_from_f64(s.parse::<f64>().ok()?);
            }
        }
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn duration_from_f64(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs <= 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(u64::MAX)))
}

/// Parses a token endpoint response into its fields, or the error it carries.
///
/// JSON unless the content type says form-encoded (GitHub's legacy format);
/// an `error` field makes an [`OAuth2Error`] whatever the status (a 200 whose
/// body is an error is an error).
pub(crate) fn parse_fields(
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<Map<String, Value>, TokenError> {
    let unexpected = |reason: &str| -> TokenError {
        EndpointError::UnexpectedResponse {
            status,
            reason: reason.to_owned(),
            excerpt: (!status.is_success()).then(|| excerpt(body)),
            retry_after,
        }
        .into()
    };
    let content_type = content_type.unwrap_or("").to_ascii_lowercase();
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
        let mut err = OAuth2Error::new(Some(status), code);
        if let Some(Value::String(d)) = fields.get("error_description") {
            err = err.with_description(d.clone());
        }
        if let Some(Value::String(u)) = fields.get("error_uri") {
            err = err.with_uri(u.clone());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth2::TokenResponse;
    use serde_json::json;

    #[test]
    fn expires_in_forms() {
        let d = |v: Value| parse_expires_in(&v);
        assert_eq!(d(json!(3600)), Some(Duration::from_secs(3600)));
        assert_eq!(d(json!("3600")), Some(Duration::from_secs(3600)));
        assert_eq!(d(json!(" 60 ")), Some(Duration::from_secs(60)));
        assert_eq!(d(json!(0)), None);
        assert_eq!(d(json!(-5)), None);
        assert_eq!(d(json!("-5")), None);
        assert_eq!(d(json!(u64::MAX)), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(
            d(json!("99999999999999999999999999")),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(d(json!(1e300)), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(d(json!(1.5)), Some(Duration::from_millis(1500)));
        assert_eq!(d(json!("soon")), None);
        assert_eq!(d(json!(null)), None);
    }

    #[test]
    fn error_in_200() {
        let err = parse_fields(
            StatusCode::OK,
            None,
            br#"{"error":"bad_verification_code"}"#,
            None,
        )
        .unwrap_err();
        let cause = err.cause().unwrap().downcast_ref::<OAuth2Error>().unwrap();
        assert_eq!(cause.error(), "bad_verification_code");
        assert!(err.is_permanent());
    }

    #[test]
    fn form_response() {
        let fields = parse_fields(
            StatusCode::OK,
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"access_token=abc&token_type=bearer&scope=repo%2Cuser",
            None,
        )
        .unwrap();
        let r = TokenResponse::from_fields(fields).unwrap();
        assert_eq!(r.scope(), Some("repo,user"));
    }

    #[test]
    fn non_json_error_has_excerpt_without_secrets() {
        let err = parse_fields(
            StatusCode::BAD_GATEWAY,
            Some("text/html"),
            b"<html>bad gateway</html>",
            None,
        )
        .unwrap_err();
        assert!(err.is_transient());
        assert!(
            err.to_string().contains("502") && err.to_string().contains("bad gateway"),
            "{err}"
        );
        let err = parse_fields(
            StatusCode::OK,
            Some("text/html"),
            b"<html>access_token</html>",
            None,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("html"), "{err}");
    }
}
