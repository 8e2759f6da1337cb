//! `Chain`: an error and each of its sources on one line.

use std::error::Error as StdError;
use std::fmt;

/// Shows an error and each of its sources, separated by `: ` (as `anyhow`'s
/// `{:#}` does), for log lines: under the crate's rule a `Display` alone
/// says only what failed at its own level.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)?;
        let mut next = self.0.source();
        while let Some(err) = next {
            write!(f, ": {err}")?;
            next = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BearerAuthError, CacheError, ErrorKind, TokenError};

    /// Each message once when the chain is printed, whichever way the error
    /// was built (the rule of the Rust API guidelines).
    #[test]
    fn a_chain_prints_each_message_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let wrapped = TokenError::with_source(ErrorKind::Transient, "unreachable", io);
        let transparent = TokenError::from(CacheError::FetchTimedOut);
        let service: BearerAuthError<std::io::Error> = BearerAuthError::Service(
            std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
        );
        let table: [(&(dyn StdError + 'static), &str); 5] = [
            (&wrapped, "unreachable: refused"),
            (&transparent, "the token fetch timed out"),
            (
                &BearerAuthError::<std::io::Error>::Token(wrapped.clone()),
                "no access token: unreachable: refused",
            ),
            (
                &BearerAuthError::<std::io::Error>::Token(transparent.clone()),
                "no access token: the token fetch timed out",
            ),
            (&service, "the inner service failed: timed out"),
        ];
        for (err, chain) in table {
            assert_eq!(Chain(err).to_string(), chain);
        }
    }
}
