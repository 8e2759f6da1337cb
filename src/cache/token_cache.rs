//! `TokenCache`: the front of one token's cache, and its protocol for clients.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::current_token::{CurrentToken, Generation};
use super::decide::Want;
use super::entry::{Entry, Step, USED};
use super::stats::Event;
use super::{CacheStats, Common, EndpointGate, TokenCacheBuilder};
use crate::error::{CacheError, TokenError};
use crate::source::{BoxTokenSource, TokenSource};
use crate::token::AccessToken;
use crate::token_ask::TokenAsk;

/// Caches the token of one [`TokenSource`] and refreshes it.
///
/// Cheap to clone: clones share one cache. A [`BearerAuthLayer`](crate::BearerAuthLayer)
/// owns one; build one yourself to tune it ([`TokenCache::builder`]), to share
/// it between layers, to read its [`stats`](TokenCache::stats), or to use it
/// from a client of your own through its protocol:
///
/// - [`current`](TokenCache::current): the token to send now, if one may be
///   sent without waiting (no lock, no allocation);
/// - [`acquire`](TokenCache::acquire): waits for one;
/// - [`replace`](TokenCache::replace) / [`reject`](TokenCache::reject): a
///   server rejected the token of this [`Generation`];
/// - [`accepted`](TokenCache::accepted): a server accepted it.
///
/// Fetches run as tokio tasks on the runtime of the caller that needs them;
/// the cache itself depends on no runtime staying alive, so one cache may be
/// shared by clients on many runtimes, one after another or at once.
///
/// ```
/// use std::time::Duration;
/// use http::header::AUTHORIZATION;
/// use tower_bearer::{from_fn, AccessToken, TokenCache};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = TokenCache::new(from_fn(|| async {
///     Ok(AccessToken::new("fresh").with_expires_in(Duration::from_secs(3600)))
/// }));
///
/// // A thousand concurrent callers on an empty cache cause one fetch.
/// let callers: Vec<_> = (0..1000).map(|_| tokio::spawn(cache.acquire())).collect();
/// for caller in callers {
///     assert_eq!(caller.await.unwrap().unwrap().header_value(), "Bearer fresh");
/// }
/// assert_eq!(cache.stats().fetches, 1);
///
/// // Your own client: send with the current token, report what the server said.
/// let token = match cache.current() {
///     Some(token) => token,
///     None => cache.acquire().await.unwrap(),
/// };
/// let mut request = http::Request::get("http://127.0.0.1/").body(()).unwrap();
/// request.headers_mut().insert(AUTHORIZATION, token.header_value().clone());
/// let status = http::StatusCode::UNAUTHORIZED; // what the server answered
/// if status == http::StatusCode::UNAUTHORIZED {
///     // One refresh however many requests report the same generation;
///     // send the request once more with the replacement.
///     let fresh = cache.replace(token.generation()).await.unwrap();
///     assert_ne!(fresh.generation(), token.generation());
/// } else {
///     cache.accepted(token.generation());
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Entry>,
}

impl TokenCache {
    /// A cache with default settings around `source`.
    pub fn new(source: impl TokenSource) -> Self {
        Self::builder(source).build()
    }

    /// A builder to tune timing, backoff, limits and the header scheme.
    pub fn builder(source: impl TokenSource) -> TokenCacheBuilder {
        TokenCacheBuilder::new(source)
    }

    /// The cache of one token from `source`; `label` names its key in tracing.
    pub(crate) fn from_parts(
        source: BoxTokenSource,
        common: Arc<Common>,
        label: Option<Box<str>>,
    ) -> Self {
        Self {
            shared: Arc::new(Entry::new(source, common, label)),
        }
    }

    /// Marks the entry used for a keyed cache's eviction sweep: a load, and
    /// an atomic or only the first time after each sweep.
    #[inline]
    pub(crate) fn mark_used(&self) {
        // A read-modify-write only when the bit is clear: the word also
        // holds the unconfirmed generation, which a plain store would undo.
        if self.shared.unconfirmed.load(Ordering::Relaxed) & USED == 0 {
            self.shared.unconfirmed.fetch_or(USED, Ordering::Relaxed);
        }
    }

    /// Takes the use bit: `true` if the entry was used since the last take.
    pub(crate) fn take_used(&self) -> bool {
        self.shared.unconfirmed.fetch_and(!USED, Ordering::Relaxed) & USED != 0
    }

    /// `true` while a fetch is in flight.
    pub(crate) fn is_fetching(&self) -> bool {
        self.shared.lock_slow().flights.busy()
    }

    /// The token endpoint's gate this cache fetches through, if any.
    pub fn gate(&self) -> Option<&EndpointGate> {
        self.shared.common.gate.as_ref()
    }

    /// The token to send now, if there is one that may be sent without
    /// waiting; `None` means [`acquire`](TokenCache::acquire) it.
    ///
    /// Takes no lock and allocates nothing while the token is fresh. The first
    /// call after the token enters its last part of life starts a refresh in
    /// the background (on the caller's tokio runtime) and still returns the
    /// token.
    pub fn current(&self) -> Option<CurrentToken> {
        if let Some(token) = self.shared.current.load().as_deref() {
            if token.is_fresh_now() {
                return Some(token.handout());
            }
        }
        match Entry::step(&self.shared, Want::Any, None) {
            Step::Serve(token) => Some(token.handout()),
            Step::Wait(_) | Step::Fail(_) => None,
        }
    }

    /// Waits for a token that may be sent: the current one, or the result of
    /// the fetch in flight, or of a fetch it starts.
    ///
    /// Fails at once, without fetching, while the source is backing off after
    /// failures or the endpoint is paused, unless a token that has not
    /// expired is at hand, which is then returned: a valid one, or one a
    /// server rejected whose replacement cannot start yet (paced, backing
    /// off), so that the request is sent and the API gives its own answer.
    /// The future does not borrow the cache.
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move { Ok(Entry::acquire(shared, Want::Any, None).await?.handout()) }
    }

    /// A server rejected the token of `rejected`: drops it if it is still
    /// current, and waits for a token other than it, to send the request once
    /// more with.
    ///
    /// However many callers report the same generation, the token is dropped
    /// and replaced once. Fails without fetching while replacements are
    /// paced ([`CacheError::ReplacementPaced`]: servers keep rejecting
    /// tokens; see [`rejections_before_pacing`](crate::TokenCacheBuilder::rejections_before_pacing)),
    /// the source is backing off or the endpoint is paused; the caller then
    /// returns the rejection it holds, without sending the request again. The
    /// future does not borrow the cache.
    pub fn replace(
        &self,
        rejected: Generation,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        self.replace_with(rejected, None)
    }

    /// A server challenged the token of `rejected`, naming what a new one
    /// must carry (claims, a wider scope): like [`replace`](Self::replace),
    /// but the replacement is fetched with [`TokenSource::fetch_asking`].
    /// Fails at once, without dropping the token, if the source cannot ask
    /// for it ([`TokenSource::can_ask`]): the caller then returns the
    /// challenge as it is. Concurrent challenges of one token share one
    /// fetch, made with what the first asked for.
    pub fn replace_asking(
        &self,
        rejected: Generation,
        ask: TokenAsk,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        let can = self.shared.source.can_ask(&ask);
        let replacement = self.replace_with(rejected, Some(ask));
        async move {
            if !can {
                return Err(CacheError::CannotAsk.into());
            }
            replacement.await
        }
    }

    fn replace_with(
        &self,
        rejected: Generation,
        ask: Option<TokenAsk>,
    ) -> impl Future<Output = Result<CurrentToken, TokenError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            match Entry::acquire(Arc::clone(&shared), Want::Replace(rejected), ask).await {
                Ok(token) => Ok(token.handout()),
                Err(err) => {
                    if is_paced(&err) {
                        // Its caller returns the rejection it holds.
                        shared.count(Event::Paced);
                    }
                    Err(err)
                }
            }
        }
    }

    /// A server rejected the token of `rejected` on a request that will not be
    /// sent again: drops it if it is still current and starts its replacement,
    /// without waiting.
    pub fn reject(&self, rejected: Generation) {
        let _ = Entry::step(&self.shared, Want::Replace(rejected), None);
    }

    /// A server accepted the token of `generation`.
    ///
    /// Costs one atomic load, except for the first acceptance of each token,
    /// which is recorded: a token that was accepted and then lived longer
    /// than the pace before it was rejected ends a run of replacements (see
    /// [`rejections_before_pacing`](crate::TokenCacheBuilder::rejections_before_pacing)).
    #[inline]
    pub fn accepted(&self, generation: Generation) {
        if self.shared.unconfirmed.load(Ordering::Relaxed) & !USED == generation.0 {
            self.shared.note_accepted(generation);
        }
    }

    /// The current token itself (not the header value), fetching one if
    /// needed, as [`acquire`](TokenCache::acquire) does.
    ///
    /// The cache keeps a token's secret once, in its prepared header value,
    /// so this makes a copy of it (an allocation); requests never call it.
    pub fn token(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            let token = Entry::acquire(shared, Want::Any, None).await?;
            Ok(token.access_token())
        }
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        self.shared.stats.snapshot()
    }

    pub(crate) fn record_retry(&self) {
        self.shared.count(Event::Retry);
    }
}

/// `true` if `err` says that replacements are paced.
fn is_paced(err: &TokenError) -> bool {
    err.cause()
        .and_then(|cause| cause.downcast_ref::<CacheError>())
        .is_some_and(|err| matches!(err, CacheError::ReplacementPaced { .. }))
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.shared.current.load();
        f.debug_struct("TokenCache")
            .field(
                "current_generation",
                &current.as_ref().map(|c| c.generation),
            )
            .field("key", &self.shared.label)
            .field("config", &self.shared.common.config)
            .field("gate", &self.shared.common.gate)
            .field("stats", &self.stats())
            .finish()
    }
}
