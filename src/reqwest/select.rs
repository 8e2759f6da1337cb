//! Keyed caches under the reqwest middleware: the key from the request and
//! its middleware extensions.

use std::hash::Hash;

use ::reqwest::Request;
use http::Extensions;

use crate::cache::TokenCache;
use crate::error::{CacheError, TokenError};
use crate::keyed::{CacheSelector, KeyedBy};

impl<'a, K, F> CacheSelector<(&'a Request, &'a Extensions)> for KeyedBy<K, F>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Fn(&Request, &Extensions) -> Option<K>,
{
    fn select(
        &self,
        (request, extensions): &(&'a Request, &'a Extensions),
    ) -> Result<TokenCache, TokenError> {
        match (self.key_fn())(request, extensions) {
            Some(key) => self.cache().get(&key),
            None => Err(CacheError::KeyMissing.into()),
        }
    }
}
