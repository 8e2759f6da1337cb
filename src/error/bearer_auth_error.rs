//! [`BearerAuthError`]: the error of a `BearerAuth` service.

use std::error::Error as StdError;
use std::fmt;

use super::token_error::TokenError;

/// The error of a [`BearerAuth`](crate::BearerAuth) service: either no token could
/// be had (the request was never sent), or the inner service failed.
///
/// A request is never sent without credentials because a fetch failed.
///
/// Its `Display` says which of the two it is; the error itself is its
/// [`source`](std::error::Error::source) (see [`TokenError`] for the rule).
///
/// ```
/// use std::error::Error;
/// use tower_bearer::{BearerAuthError, TokenError};
///
/// let err: BearerAuthError<std::io::Error> = BearerAuthError::Token(TokenError::transient("down"));
/// assert!(err.token_error().is_some());
/// assert_eq!(err.to_string(), "no access token");
/// assert_eq!(err.source().unwrap().to_string(), "down");
/// ```
#[derive(Debug)]
pub enum BearerAuthError<E> {
    /// No token could be obtained; the request was not sent.
    Token(TokenError),
    /// The inner service returned an error.
    Service(E),
}

impl<E> BearerAuthError<E> {
    /// The token error, if this is one.
    pub fn token_error(&self) -> Option<&TokenError> {
        match self {
            BearerAuthError::Token(err) => Some(err),
            BearerAuthError::Service(_) => None,
        }
    }

    /// The inner service's error, if this is one.
    pub fn service_error(&self) -> Option<&E> {
        match self {
            BearerAuthError::Token(_) => None,
            BearerAuthError::Service(err) => Some(err),
        }
    }
}

impl<E> fmt::Display for BearerAuthError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BearerAuthError::Token(_) => f.write_str("no access token"),
            BearerAuthError::Service(_) => f.write_str("the inner service failed"),
        }
    }
}

impl<E: StdError + 'static> StdError for BearerAuthError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BearerAuthError::Token(err) => Some(err),
            BearerAuthError::Service(err) => Some(err),
        }
    }
}
