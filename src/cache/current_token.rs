//! What the cache hands to a request: the prepared header value, and the
//! generation to name when a server rejects it.

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Method};

use crate::dpop::DpopProver;
use crate::error::TokenError;

/// Which token a request carried, so that a rejection names exactly that token.
///
/// Every token the cache installs gets the next generation. Reporting a
/// rejection by generation, rather than "the current token", is what makes a
/// thousand concurrent 401s for one token cause one refresh: only the first
/// report finds that generation still current.
///
/// ```
/// use tower_bearer::{StaticToken, TokenCache};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = TokenCache::new(StaticToken::new("k"));
/// let first = cache.acquire().await.unwrap().generation();
/// cache.reject(first);
/// let second = cache.acquire().await.unwrap().generation();
/// assert!(second > first);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub(crate) u64);

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A token as a request carries it: the ready `Authorization` header value
/// (scheme and token, marked sensitive) and its [`Generation`].
///
/// Getting one is cheap: [`TokenCache::current`](crate::TokenCache::current)
/// takes no lock, allocates nothing and only bumps a reference count. Its
/// `Debug` never shows the token.
///
/// ```
/// use http::header::AUTHORIZATION;
/// use tower_bearer::{StaticToken, TokenCache};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = TokenCache::new(StaticToken::new("s3cr3t"));
/// let token = cache.acquire().await.unwrap();
/// let mut request = http::Request::get("http://127.0.0.1/").body(()).unwrap();
/// request.headers_mut().insert(AUTHORIZATION, token.header_value().clone());
/// assert_eq!(request.headers()[AUTHORIZATION], "Bearer s3cr3t");
/// assert!(request.headers()[AUTHORIZATION].is_sensitive());
/// assert!(!format!("{token:?}").contains("s3cr3t"));
/// # }
/// ```
#[derive(Clone)]
pub struct CurrentToken {
    pub(crate) value: HeaderValue,
    pub(crate) generation: Generation,
    /// The key a DPoP-bound token is bound to; `None` for a bearer token.
    pub(crate) dpop: Option<Arc<dyn DpopProver>>,
}

impl CurrentToken {
    /// The `Authorization` header value: the scheme, a space and the token.
    pub fn header_value(&self) -> &HeaderValue {
        &self.value
    }

    /// The header value, without a clone.
    pub fn into_header_value(self) -> HeaderValue {
        self.value
    }

    /// The token's generation, to report a rejection with.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The prover of the key a DPoP-bound token is bound to; `None` for a
    /// bearer token. Every request that carries a bound token needs a fresh
    /// proof: [`dpop_proof`](Self::dpop_proof).
    pub fn dpop(&self) -> Option<&Arc<dyn DpopProver>> {
        self.dpop.as_ref()
    }

    /// The `DPoP` header value for a request with this method and URL, if
    /// the token is DPoP-bound: a fresh proof whose `ath` is this token's
    /// hash, with the nonce kept for the URL's origin.
    pub fn dpop_proof(
        &self,
        method: &Method,
        url: &str,
    ) -> Option<Result<HeaderValue, TokenError>> {
        let prover = self.dpop.as_ref()?;
        // The header value is `DPoP <token>`; `ath` is the hash of the token.
        let token = self
            .value
            .as_bytes()
            .splitn(2, |b| *b == b' ')
            .nth(1)
            .and_then(|t| std::str::from_utf8(t).ok());
        Some(prover.proof(method, url, token))
    }
}

impl fmt::Debug for CurrentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentToken")
            .field("header_value", &crate::redact::Redacted)
            .field("generation", &self.generation)
            .field("dpop_jkt", &self.dpop.as_ref().map(|p| p.thumbprint()))
            .finish()
    }
}
