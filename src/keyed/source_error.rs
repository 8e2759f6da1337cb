//! Why a keyed cache has no token source for a key.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::error::{ErrorKind, TokenError};

/// Why a [`KeyedTokenCache`](crate::keyed::KeyedTokenCache) has no token
/// source for a key, so that no token could be had for it (nor a request
/// sent). Reach it through [`TokenError::cause`].
///
/// The [`TokenError`] that carries it has the kind of the factory's error
/// ([`Permanent`](ErrorKind::Permanent) for
/// [`NotInserted`](Self::NotInserted)), and for a failed factory a
/// [`retry_after`](TokenError::retry_after): how long until the factory is
/// asked again for that key. Its `Display` says that the key's source could
/// not be made; [`source`](std::error::Error::source) goes on with the
/// factory's error.
///
/// ```
/// use tower_bearer::keyed::{KeyedTokenCache, SourceError};
/// use tower_bearer::{StaticToken, TokenError};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let tenants = KeyedTokenCache::try_builder(|tenant: &String| match tenant.as_str() {
///     "acme" => Ok(StaticToken::new("acme-key")),
///     _ => Err(TokenError::permanent("no such tenant")),
/// })
/// .build();
///
/// let err = tenants.acquire(&"initech".to_owned()).await.unwrap_err();
/// match err.cause().and_then(|cause| cause.downcast_ref::<SourceError>()) {
///     Some(SourceError::FactoryFailed(why)) => assert_eq!(why.to_string(), "no such tenant"),
///     other => panic!("{other:?}"),
/// }
/// assert!(err.is_permanent());
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SourceError {
    /// The factory failed for this key, with this error. Until its backoff
    /// ends, every use of the key gets this error again without the factory
    /// being asked ([`try_builder`](crate::keyed::KeyedTokenCache::try_builder)
    /// says for how long).
    FactoryFailed(TokenError),
    /// The cache makes no sources
    /// ([`without_factory`](crate::keyed::KeyedTokenCache::without_factory))
    /// and holds none for this key: none was
    /// [`insert`](crate::keyed::KeyedTokenCache::insert)ed, or it was dropped
    /// (evicted, idle or removed).
    NotInserted,
}

impl SourceError {
    /// The error a caller gets: of the factory error's kind, with the time
    /// left until the factory is asked again as its `retry_after`.
    pub(crate) fn factory_failed(error: TokenError, retry_in: Duration) -> TokenError {
        let kind = error.kind();
        TokenError::from_cause(kind, SourceError::FactoryFailed(error), Some(retry_in))
    }

    pub(crate) fn not_inserted() -> TokenError {
        TokenError::from_cause(ErrorKind::Permanent, SourceError::NotInserted, None)
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::FactoryFailed(_) => {
                f.write_str("the token source for this key could not be made")
            }
            SourceError::NotInserted => f.write_str("no token source was inserted for this key"),
        }
    }
}

impl StdError for SourceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SourceError::FactoryFailed(error) => Some(error),
            SourceError::NotInserted => None,
        }
    }
}
