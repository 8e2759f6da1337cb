//! The tokens a token exchange presents (RFC 8693 §2.1): where each comes
//! from, and its type.

use std::fmt;
use std::path::PathBuf;

use super::token_file;
use super::token_type::TokenType;
use crate::error::TokenError;
use crate::secret::Secret;
use crate::source::{BoxTokenSource, TokenSource};

/// A token presented in a [`TokenExchange`](crate::oauth2::TokenExchange), as the
/// subject (whom the new token is for) or the actor (who acts for the
/// subject): a fixed value, a file a platform rotates, or another source,
/// with its [`TokenType`].
///
/// Read when each exchange happens: a file is read again every time (a
/// Kubernetes projected token is replaced on disk before it expires), and
/// a source is asked for a fresh token. `Debug` never shows the value.
///
/// ```
/// use tower_bearer::oauth2::{SecurityToken, TokenType};
/// use tower_bearer::StaticToken;
///
/// // A Kubernetes projected service-account token.
/// let k8s = SecurityToken::from_file("/var/run/secrets/tokens/sts-token", TokenType::JWT);
/// assert_eq!(k8s.token_type(), &TokenType::JWT);
/// // An access token from another source (any `TokenSource`).
/// let upstream = SecurityToken::from_source(StaticToken::new("t0k3n"), TokenType::ACCESS_TOKEN);
/// // A fixed value.
/// let fixed = SecurityToken::new("eyJhbGciOi…", TokenType::ID_TOKEN);
/// assert!(!format!("{upstream:?} {fixed:?}").contains("t0k3n"));
/// ```
#[derive(Clone)]
pub struct SecurityToken {
    origin: Origin,
    token_type: TokenType,
}

#[derive(Clone)]
enum Origin {
    Value(Secret),
    File(PathBuf),
    Source(BoxTokenSource),
}

impl SecurityToken {
    /// A fixed token.
    pub fn new(value: impl Into<Secret>, token_type: TokenType) -> Self {
        Self {
            origin: Origin::Value(value.into()),
            token_type,
        }
    }

    /// The token in the file at `path`, read again for every exchange and
    /// trimmed of the whitespace around it. A missing or empty file fails
    /// the exchange as transient (the platform may not have written it
    /// yet); a file that holds something else fails it as permanent
    /// ([`TokenFileError`](crate::oauth2::TokenFileError)).
    pub fn from_file(path: impl Into<PathBuf>, token_type: TokenType) -> Self {
        Self {
            origin: Origin::File(path.into()),
            token_type,
        }
    }

    /// A token fetched from `source` for every exchange; its errors fail the
    /// exchange as they are.
    pub fn from_source(source: impl TokenSource, token_type: TokenType) -> Self {
        Self {
            origin: Origin::Source(BoxTokenSource::new(source)),
            token_type,
        }
    }

    /// The token's type.
    pub fn token_type(&self) -> &TokenType {
        &self.token_type
    }

    /// The token's value now.
    pub(crate) async fn value(&self) -> Result<Secret, TokenError> {
        match &self.origin {
            Origin::Value(value) => Ok(value.clone()),
            Origin::File(path) => Ok(token_file::read(path).await?),
            Origin::Source(source) => Ok(Secret::new(source.fetch().await?.secret())),
        }
    }
}

impl fmt::Debug for SecurityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("SecurityToken");
        match &self.origin {
            Origin::Value(value) => debug.field("value", value),
            Origin::File(path) => debug.field("file", path),
            Origin::Source(source) => debug.field("source", source),
        };
        debug
            .field("token_type", &self.token_type.as_str())
            .finish()
    }
}
