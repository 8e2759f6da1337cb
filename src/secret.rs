//! Secret strings that never print.

use std::fmt;
use std::sync::Arc;

/// Placeholder printed wherever a secret would be.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `url` fit for an error message or a log: user info and query replaced by
/// `[redacted]` (either may carry credentials), works on any input.
pub(crate) fn url_for_display(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("[redacted]@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let tail = match tail.find(['?', '#']) {
        Some(q) => format!("{}?[redacted]", &tail[..q]),
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// A secret string (client secret, refresh token, PKCE verifier, authorization
/// code): cheap to clone, printed as `[redacted]` by both `Debug` and `Display`.
///
/// ```
/// use tower_bearer::Secret;
///
/// let secret = Secret::new("hunter2");
/// assert_eq!(secret.expose(), "hunter2");
/// assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The secret value. Only call this where the value must be sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Redacted, f)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::url_for_display;

    #[test]
    fn urls_lose_user_info_and_query() {
        assert_eq!(
            url_for_display("https://user:pw@auth.example/token?key=k#f"),
            "https://[redacted]@auth.example/token?[redacted]"
        );
        assert_eq!(
            url_for_display("http://127.0.0.1:8/t"),
            "http://127.0.0.1:8/t"
        );
        assert_eq!(url_for_display("a@b"), "[redacted]@b");
        assert_eq!(url_for_display("é://ü@"), "é://[redacted]@");
    }
}
