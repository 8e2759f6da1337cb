//! Which token cache a request's token comes from: the one cache of a
//! layer, or the cache of the request's key in a keyed cache.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use http::Request;

use crate::cache::TokenCache;
use crate::error::{CacheError, TokenError};
use crate::keyed::KeyedTokenCache;

/// Chooses, for each request of type `R`, the [`TokenCache`] its token comes
/// from.
///
/// `R` is the front end's request: `http::Request<B>` under
/// [`BearerAuth`](crate::BearerAuth), and for the reqwest middleware the
/// pair of a `reqwest::Request` and its middleware `Extensions`. The front
/// end asks once per request (not for requests that pass through untouched),
/// then uses the chosen cache for the whole exchange: the token, its
/// rejection, the replacement and the replay. A request can therefore never
/// be replayed with another cache's token.
///
/// Implemented by [`TokenCache`] (always itself) and by [`KeyedBy`] (the
/// request's key in a [`KeyedTokenCache`]); implement it to route requests
/// to caches some other way.
///
/// ```
/// use http::Request;
/// use tower_bearer::{StaticToken, TokenCache, TokenError};
/// use tower_bearer::keyed::CacheSelector;
///
/// /// Internal hosts get one token, everything else another.
/// #[derive(Clone)]
/// struct ByHost {
///     internal: TokenCache,
///     public: TokenCache,
/// }
///
/// impl<B> CacheSelector<Request<B>> for ByHost {
///     fn select(&self, request: &Request<B>) -> Result<TokenCache, TokenError> {
///         let internal = request.uri().host().is_some_and(|h| h.ends_with(".internal"));
///         Ok(if internal { &self.internal } else { &self.public }.clone())
///     }
/// }
/// # let _ = ByHost { internal: TokenCache::new(StaticToken::new("a")), public: TokenCache::new(StaticToken::new("b")) };
/// ```
pub trait CacheSelector<R> {
    /// The cache for `request`, or why there is none: the request is then
    /// not sent, and the call fails with
    /// [`BearerAuthError::Token`](crate::BearerAuthError::Token).
    fn select(&self, request: &R) -> Result<TokenCache, TokenError>;
}

impl<R> CacheSelector<R> for TokenCache {
    #[inline]
    fn select(&self, _request: &R) -> Result<TokenCache, TokenError> {
        Ok(self.clone())
    }
}

/// A [`KeyedTokenCache`] and the function that reads a request's key: the
/// request gets the token of its key. Built by
/// [`BearerAuthLayer::keyed`](crate::BearerAuthLayer::keyed).
///
/// The key function runs on every request, so it should be cheap: read an
/// extension or a header, clone a key that is cheap to clone. When it returns
/// `None` the request is not sent, and the call fails with
/// [`CacheError::KeyMissing`]: a request never goes out without a token,
/// and never with another key's.
///
/// ```
/// use http::Request;
/// use tower_bearer::StaticToken;
/// use tower_bearer::keyed::{CacheSelector, KeyedBy, KeyedTokenCache};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let tenants = KeyedTokenCache::new(|tenant: &u32| StaticToken::new(format!("t{tenant}")));
/// let by_tenant = KeyedBy::new(tenants, |req: &Request<()>| req.extensions().get::<u32>().copied());
///
/// let mut request = Request::new(());
/// assert!(by_tenant.select(&request).is_err(), "no key: no token");
/// request.extensions_mut().insert(7u32);
/// let cache = by_tenant.select(&request).unwrap();
/// assert_eq!(cache.acquire().await.unwrap().header_value(), "Bearer t7");
/// # }
/// ```
pub struct KeyedBy<K, F> {
    cache: KeyedTokenCache<K>,
    key: Arc<F>,
}

impl<K, F> KeyedBy<K, F> {
    /// Chooses `cache`'s token for the key `key` reads from each request.
    pub fn new(cache: KeyedTokenCache<K>, key: F) -> Self {
        Self {
            cache,
            key: Arc::new(key),
        }
    }

    /// The key function.
    #[cfg(feature = "reqwest")]
    pub(crate) fn key_fn(&self) -> &F {
        &self.key
    }

    /// The keyed cache, for its [`stats`](KeyedTokenCache::stats).
    pub fn cache(&self) -> &KeyedTokenCache<K> {
        &self.cache
    }
}

impl<K, F> Clone for KeyedBy<K, F> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            key: Arc::clone(&self.key),
        }
    }
}

impl<K, F> fmt::Debug for KeyedBy<K, F>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBy")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<B, K, F> CacheSelector<Request<B>> for KeyedBy<K, F>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Fn(&Request<B>) -> Option<K>,
{
    #[inline]
    fn select(&self, request: &Request<B>) -> Result<TokenCache, TokenError> {
        match (self.key)(request) {
            Some(key) => self.cache.get(&key),
            None => Err(CacheError::KeyMissing.into()),
        }
    }
}
