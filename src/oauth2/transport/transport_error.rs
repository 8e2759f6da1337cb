//! `TransportError`: why a request could not be sent or its answer read, in
//! words fit to print.

use std::error::Error as StdError;
use std::fmt;

use crate::error::BoxError;
use crate::redact;

/// The HTTP client's error behind an
/// [`ExchangeError::Transport`](crate::oauth2::ExchangeError::Transport), made safe
/// to print.
///
/// HTTP clients name the URL they failed to reach, query and all (reqwest:
/// `error sending request for url (https://idp.example/token?subscription-key=…)`),
/// and some token endpoints take an API key there. So this error's text is
/// the client's chain of errors with the user info and query of every URL
/// cut out, with the secrets the request carried and any log-forging
/// characters, as for everything a server sends; it has no
/// [`source`](std::error::Error::source), since the client's own errors
/// would print the URL again. [`cause`](Self::cause) still hands over the
/// client's error for a program to inspect (`reqwest::Error::is_connect`,
/// [`std::io::Error::kind`]); do not print it.
///
/// ```
/// use tower_bearer::oauth2::{ExchangeError, TransportError};
///
/// let refused = std::io::Error::new(
///     std::io::ErrorKind::ConnectionRefused,
///     "error sending request for url (https://idp.example/token?subscription-key=k3y)",
/// );
/// let err = TransportError::new(Box::new(refused));
/// assert_eq!(
///     err.to_string(),
///     "error sending request for url (https://idp.example/token?[redacted])"
/// );
/// assert!(!format!("{err:?}").contains("k3y"));
/// let io = err.cause().downcast_ref::<std::io::Error>().unwrap();
/// assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
/// # let _ = ExchangeError::Transport(err);
/// ```
pub struct TransportError {
    /// The cause's chain, each error redacted, joined by `: `.
    text: String,
    cause: BoxError,
}

impl TransportError {
    /// The HTTP client's error `cause`, its text made safe to print.
    pub fn new(cause: BoxError) -> Self {
        Self::with_secrets_sent(cause, &[])
    }

    /// As [`new`](Self::new), also cutting out the secrets the request
    /// carried, should the client's error quote the request.
    pub(crate) fn with_secrets_sent(cause: BoxError, sent: &[&str]) -> Self {
        let mut text = String::new();
        let mut next: Option<&(dyn StdError + 'static)> = Some(&*cause);
        while let Some(err) = next {
            let level = redact::error_text(&err.to_string(), sent);
            // Errors that repeat their source's text (`{source}` in their own
            // Display) would print it twice.
            if !text.ends_with(&level) {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&level);
            }
            next = err.source();
        }
        Self { text, cause }
    }

    /// The HTTP client's error, to inspect. Its text is the client's own and
    /// may hold the request URL with its query: print this
    /// [`TransportError`] instead.
    pub fn cause(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.cause
    }

    /// The HTTP client's error; see [`cause`](Self::cause).
    pub fn into_cause(self) -> BoxError {
        self.cause
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TransportError").field(&self.text).finish()
    }
}

impl StdError for TransportError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Level(&'static str, Option<Box<Level>>);

    impl fmt::Display for Level {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Level {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn the_chain_is_one_redacted_line() {
        let chain = Level(
            "error sending request for url (https://u:p@idp.example/token?key=k3y)",
            Some(Box::new(Level(
                "client error (Connect)",
                Some(Box::new(Level("tcp connect error\nINFO forged", None))),
            ))),
        );
        let err = TransportError::with_secrets_sent(Box::new(chain), &["k3y"]);
        assert_eq!(
            err.to_string(),
            "error sending request for url (https://[redacted]@idp.example/token?[redacted]): \
             client error (Connect): tcp connect error\\nINFO forged"
        );
        assert!(err.source().is_none());
        assert!(!format!("{err:?}").contains("k3y"));
        assert_eq!(
            err.cause().to_string(),
            "error sending request for url (https://u:p@idp.example/token?key=k3y)"
        );
    }

    #[test]
    fn a_level_that_repeats_its_source_is_printed_once() {
        let chain = Level("refused", Some(Box::new(Level("refused", None))));
        assert_eq!(TransportError::new(Box::new(chain)).to_string(), "refused");
    }
}
