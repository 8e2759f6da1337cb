//! Everything other than an RFC 6749 §5.2 error response that can go wrong
//! with a token endpoint, and the secret-free excerpts of unexpected responses.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use super::error::status_kind;
use crate::error::{BoxError, ErrorKind, TokenError};

/// Everything other than an RFC 6749 §5.2 error response that can go wrong with
/// a token endpoint: configuration, transport, and responses that make no sense.
///
/// Messages never contain a secret: response excerpts are only kept for
/// non-2xx responses, cut short, and values of token-like keys are redacted.
///
/// ```
/// use tower_bearer::oauth2::{EndpointError, TokenEndpoint};
///
/// let err = TokenEndpoint::builder("http://auth.example.com/token").build().unwrap_err();
/// assert!(matches!(err, EndpointError::InsecureUrl { .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum EndpointError {
    /// The URL could not be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// A plain `http://` URL for a host other than loopback, without
    /// [`allow_insecure_http`](super::TokenEndpointBuilder::allow_insecure_http).
    InsecureUrl {
        /// The URL as given.
        url: String,
    },
    /// No HTTP client was given and the `rustls` feature is off.
    NoHttpClient,
    /// The endpoint did not answer in time.
    Timeout(Duration),
    /// The request could not be sent or the response not read.
    Transport(BoxError),
    /// The response body was larger than the cap.
    ResponseTooLarge {
        /// The response status.
        status: StatusCode,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The response was neither a token nor an RFC 6749 error.
    UnexpectedResponse {
        /// The response status.
        status: StatusCode,
        /// What was wrong with it.
        reason: String,
        /// The start of the body, secret-free (only for non-2xx responses).
        excerpt: Option<String>,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The server issued a token of another type than `Bearer`.
    UnsupportedTokenType(String),
    /// The `state` returned to the redirect URI is not the one sent (possible CSRF).
    StateMismatch,
    /// The redirect URI was reached without a `code`.
    MissingCode,
}

impl EndpointError {
    /// Transient for timeouts, transport errors and 5xx/429/408 responses;
    /// permanent for everything else.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_bearer::{oauth2::EndpointError, ErrorKind};
    /// assert_eq!(EndpointError::Timeout(Duration::from_secs(10)).kind(), ErrorKind::Transient);
    /// assert_eq!(EndpointError::StateMismatch.kind(), ErrorKind::Permanent);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            EndpointError::Timeout(_) | EndpointError::Transport(_) => ErrorKind::Transient,
            EndpointError::ResponseTooLarge { status, .. }
            | EndpointError::UnexpectedResponse { status, .. } => status_kind(Some(*status)),
            _ => ErrorKind::Permanent,
        }
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::InvalidUrl { url, reason } => {
                write!(f, "invalid token endpoint URL `{url}`: {reason}")
            }
            EndpointError::InsecureUrl { url } => write!(
                f,
                "refusing plain-http token endpoint `{url}`: use https://, a loopback host, or allow_insecure_http(true)"
            ),
            EndpointError::NoHttpClient => f.write_str(
                "no HTTP client for the token endpoint: pass one with http_client() or enable the `rustls` feature",
            ),
            EndpointError::Timeout(limit) => {
                write!(f, "token endpoint did not answer within {limit:?}")
            }
            EndpointError::Transport(err) => write!(f, "token endpoint unreachable: {err}"),
            EndpointError::ResponseTooLarge { status, limit } => write!(
                f,
                "token endpoint response (HTTP {}) is larger than {limit} bytes",
                status.as_u16()
            ),
            EndpointError::UnexpectedResponse {
                status,
                reason,
                excerpt,
                ..
            } => {
                write!(f, "unexpected token endpoint response (HTTP {}): {reason}", status.as_u16())?;
                if let Some(excerpt) = excerpt {
                    write!(f, "; body starts: {excerpt:?}")?;
                }
                Ok(())
            }
            EndpointError::UnsupportedTokenType(kind) => write!(
                f,
                "token endpoint issued a `{kind}` token; only Bearer tokens are supported"
            ),
            EndpointError::StateMismatch => f.write_str(
                "the `state` returned to the redirect URI does not match the one sent (possible CSRF)",
            ),
            EndpointError::MissingCode => f.write_str("the redirect URI was reached without a `code`"),
        }
    }
}

impl StdError for EndpointError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            EndpointError::Transport(err) => Some(&**err),
            _ => None,
        }
    }
}

impl From<EndpointError> for TokenError {
    fn from(err: EndpointError) -> Self {
        let retry_after = match &err {
            EndpointError::UnexpectedResponse { retry_after, .. } => *retry_after,
            _ => None,
        };
        let kind = err.kind();
        TokenError::from_cause(kind, err, retry_after)
    }
}

/// Keys whose values are never shown in an excerpt (matched as whole words).
const SENSITIVE_KEYS: [&str; 14] = [
    "access_token",
    "refresh_token",
    "id_token",
    "subject_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "code_verifier",
    "code",
    "password",
    "apikey",
    "api_key",
    "state",
    // An error page that echoes the request shows `authorization: Basic
    // base64(id:secret)`: the client secret, merely encoded.
    "authorization",
];

/// The longest excerpt kept from an unexpected response.
const EXCERPT_CHARS: usize = 160;

/// A short, printable, secret-free start of a response body.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4 * EXCERPT_CHARS)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    redact(&mut out);
    if out.chars().count() > EXCERPT_CHARS {
        out = out.chars().take(EXCERPT_CHARS).collect::<String>() + "…";
    }
    out
}

/// Replaces the value after each sensitive key (`"key": "value"` or `key=value`).
fn redact(text: &mut String) {
    let lower = text.to_ascii_lowercase();
    let mut ranges = Vec::new();
    for key in SENSITIVE_KEYS {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let key_start = from + pos;
            let mut i = key_start + key.len();
            from = i;
            let bytes = lower.as_bytes();
            let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            if key_start > 0 && is_word(bytes[key_start - 1])
                || bytes.get(i).is_some_and(|b| is_word(*b))
            {
                continue; // part of a longer word (`error_code`, `codes`)
            }
            let mut quote = None;
            while i < bytes.len() && matches!(bytes[i], b'"' | b'\'' | b' ' | b':' | b'=') {
                if matches!(bytes[i], b'"' | b'\'') {
                    quote = Some(bytes[i]);
                }
                i += 1;
            }
            // `authorization: Basic <credentials>`: the scheme may show, the
            // credentials after it may not.
            let scheme_end = i + bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .count();
            if key == "authorization" && bytes.get(scheme_end) == Some(&b' ') {
                i = scheme_end;
                while i < bytes.len() && bytes[i] == b' ' {
                    i += 1;
                }
            }
            let start = i;
            match quote {
                // A quoted value runs to its closing quote, spaces and escaped
                // quotes included.
                Some(q) => {
                    while i < bytes.len() && bytes[i] != q {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i = i.min(bytes.len());
                }
                None => {
                    while i < bytes.len() && !matches!(bytes[i], b'&' | b',' | b'}' | b' ') {
                        i += 1;
                    }
                }
            }
            if i > start {
                ranges.push((start, i));
            }
        }
    }
    ranges.sort_unstable();
    // Merge overlaps (a value may contain another key) so that every
    // replacement works on untouched, char-aligned (ASCII-delimited) indices.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    for (start, end) in merged.into_iter().rev() {
        text.replace_range(start..end, "[redacted]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_hide_tokens() {
        let e = excerpt(br#"{"access_token": "abc.def", "refresh_token":"r1","x":1}"#);
        assert!(!e.contains("abc.def") && !e.contains("r1"), "{e}");
        assert!(e.contains("[redacted]"));
        let e = excerpt(b"access_token=zzz&token_type=bearer");
        assert!(!e.contains("zzz"), "{e}");
        let e = excerpt(b"<pre>POST /token\r\nAuthorization: Basic aWQ6c2VjcmV0\r\nhost: x</pre>");
        assert!(
            !e.contains("aWQ6c2VjcmV0") && e.contains("Basic [redacted]"),
            "{e}"
        );
        let long = "x".repeat(10_000);
        assert!(excerpt(long.as_bytes()).chars().count() <= EXCERPT_CHARS + 1);
    }

    #[test]
    fn quoted_values_are_hidden_whole_and_words_are_matched_whole() {
        let e = excerpt(br#"{"client_secret":"p@ss w0rd \" tail","error_code":"invalid_grant"}"#);
        assert!(!e.contains("w0rd") && !e.contains("tail"), "{e}");
        assert!(e.contains("invalid_grant"), "{e}");
        let e = excerpt(b"grant_type=authorization_code&code=AUTHCODE&state=CSRF&password=hunter2");
        for secret in ["AUTHCODE", "CSRF", "hunter2"] {
            assert!(!e.contains(secret), "{e}");
        }
        assert!(e.contains("authorization_code"), "{e}");
    }

    #[test]
    fn overlapping_keys_do_not_panic() {
        let e = excerpt("access_token=é_id_token=ü&refresh_token=x,id_token=\"ß\"".as_bytes());
        assert!(
            !e.contains('é') && !e.contains('ü') && !e.contains('ß'),
            "{e}"
        );
    }
}
