//! Where tokens come from: the `TokenSource` trait and the simplest sources.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::dpop::DpopProver;
use crate::error::TokenError;
use crate::secret::Secret;
use crate::token::AccessToken;
use crate::token_ask::TokenAsk;

/// A boxed, `Send` future, as returned by the object-safe form of a source.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Anything that can asynchronously produce an access token.
///
/// The cache calls [`fetch`](TokenSource::fetch) at most once at a time, from a
/// task of its own, and never for a caller that merely wants the current token.
/// Implementations therefore need no caching or locking of their own.
///
/// Implement it for your own types, or use [`from_fn`] for a closure:
///
/// ```
/// use tower_bearer::{AccessToken, TokenError, TokenSource};
///
/// struct FromEnv;
///
/// impl TokenSource for FromEnv {
///     async fn fetch(&self) -> Result<AccessToken, TokenError> {
///         std::env::var("API_TOKEN")
///             .map(|t| AccessToken::new(t).never_expires())
///             .map_err(|_| TokenError::permanent("API_TOKEN is not set"))
///     }
/// }
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// Obtains a fresh token.
    fn fetch(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send;

    /// Obtains a token to replace `rejected`, which a server refused.
    ///
    /// The cache calls this instead of [`fetch`](TokenSource::fetch) after a
    /// rejection. The default fetches; a source that shares tokens with other
    /// processes uses it to drop `rejected` from the shared store, but only if
    /// the store still holds it, so that one rejection seen by many processes
    /// causes one refresh.
    fn fetch_replacing<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'a {
        let _ = rejected;
        self.fetch()
    }

    /// The key this source's tokens are bound to (DPoP), if it binds them: a
    /// shared tier shares a bound token only with processes whose source
    /// declares the same key. By default none.
    fn dpop(&self) -> Option<Arc<dyn DpopProver>> {
        None
    }

    /// `true` if the source can ask for `ask` (claims a server's challenge
    /// named, a wider scope) in [`fetch_asking`](TokenSource::fetch_asking).
    /// By default no: the challenge's answer then goes to the caller as it
    /// is.
    fn can_ask(&self, ask: &TokenAsk) -> bool {
        let _ = ask;
        false
    }

    /// Obtains a token to replace `rejected`, asking for what a server's
    /// challenge named; called only when [`can_ask`](TokenSource::can_ask)
    /// said yes. The default ignores `ask`.
    fn fetch_asking<'a>(
        &'a self,
        rejected: &'a AccessToken,
        ask: &'a TokenAsk,
    ) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'a {
        let _ = ask;
        self.fetch_replacing(rejected)
    }
}

/// The object-safe form of [`TokenSource`], implemented for every source.
///
/// Use it (through [`BoxTokenSource`]) to store sources of different types together.
pub(crate) trait DynTokenSource: Send + Sync + 'static {
    /// Like [`TokenSource::fetch`], boxed.
    fn fetch_boxed(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>>;

    /// Like [`TokenSource::fetch_replacing`], boxed.
    fn fetch_replacing_boxed<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>>;

    /// Like [`TokenSource::can_ask`].
    fn can_ask_dyn(&self, ask: &TokenAsk) -> bool;

    /// Like [`TokenSource::dpop`].
    fn dpop_dyn(&self) -> Option<Arc<dyn DpopProver>>;

    /// Like [`TokenSource::fetch_asking`], boxed.
    fn fetch_asking_boxed<'a>(
        &'a self,
        rejected: &'a AccessToken,
        ask: &'a TokenAsk,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>>;
}

impl<T: TokenSource> DynTokenSource for T {
    fn fetch_boxed(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(self.fetch())
    }

    fn fetch_replacing_boxed<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        Box::pin(self.fetch_replacing(rejected))
    }

    fn can_ask_dyn(&self, ask: &TokenAsk) -> bool {
        self.can_ask(ask)
    }

    fn dpop_dyn(&self) -> Option<Arc<dyn DpopProver>> {
        self.dpop()
    }

    fn fetch_asking_boxed<'a>(
        &'a self,
        rejected: &'a AccessToken,
        ask: &'a TokenAsk,
    ) -> BoxFuture<'a, Result<AccessToken, TokenError>> {
        Box::pin(self.fetch_asking(rejected, ask))
    }
}

/// A type-erased, cheaply cloneable token source.
///
/// ```
/// use tower_bearer::{StaticToken, TokenSource};
/// use tower_bearer::BoxTokenSource;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let source = BoxTokenSource::new(StaticToken::new("abc"));
/// let token = source.fetch().await.unwrap();
/// assert_eq!(token.secret(), "abc");
/// # }
/// ```
#[derive(Clone)]
pub struct BoxTokenSource(Arc<dyn DynTokenSource>);

impl BoxTokenSource {
    /// Erases the type of a source.
    pub fn new(source: impl TokenSource) -> Self {
        Self(Arc::new(source))
    }
}

impl TokenSource for BoxTokenSource {
    fn fetch(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send {
        self.0.fetch_boxed()
    }

    fn fetch_replacing<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'a {
        self.0.fetch_replacing_boxed(rejected)
    }

    fn can_ask(&self, ask: &TokenAsk) -> bool {
        self.0.can_ask_dyn(ask)
    }

    fn dpop(&self) -> Option<Arc<dyn DpopProver>> {
        self.0.dpop_dyn()
    }

    fn fetch_asking<'a>(
        &'a self,
        rejected: &'a AccessToken,
        ask: &'a TokenAsk,
    ) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'a {
        self.0.fetch_asking_boxed(rejected, ask)
    }
}

impl fmt::Debug for BoxTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxTokenSource")
    }
}

impl<T: TokenSource> TokenSource for Arc<T> {
    fn fetch(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send {
        (**self).fetch()
    }

    fn fetch_replacing<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'a {
        (**self).fetch_replacing(rejected)
    }

    fn can_ask(&self, ask: &TokenAsk) -> bool {
        (**self).can_ask(ask)
    }

    fn dpop(&self) -> Option<Arc<dyn DpopProver>> {
        (**self).dpop()
    }

    fn fetch_asking<'a>(
        &'a self,
        rejected: &'a AccessToken,
        ask: &'a TokenAsk,
    ) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'a {
        (**self).fetch_asking(rejected, ask)
    }
}

/// A token that never changes: an API key or a long-lived personal token.
///
/// ```
/// use tower_bearer::{StaticToken, TokenSource};
/// use tower_bearer::Expiry;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let source = StaticToken::new("my-api-key");
/// let token = source.fetch().await.unwrap();
/// assert_eq!(token.expiry(), Expiry::Never);
/// assert_eq!(format!("{source:?}"), "StaticToken { secret: [redacted] }");
/// # }
/// ```
#[derive(Clone)]
pub struct StaticToken {
    secret: Secret,
}

impl StaticToken {
    /// A source that always yields `secret`, never expiring.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl TokenSource for StaticToken {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        Ok(AccessToken::new(self.secret.expose()).never_expires())
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken")
            .field("secret", &self.secret)
            .finish()
    }
}

/// A token source built from an async closure; see [`from_fn`].
#[derive(Clone)]
pub struct FnSource<F> {
    f: F,
}

/// Makes a token source from an async closure, for providers that need custom
/// code (a non-standard exchange, a token read from a sidecar, a test).
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::{from_fn, AccessToken, TokenSource};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let source = from_fn(|| async {
///     // e.g. call a custom endpoint here
///     Ok(AccessToken::new("minted").with_expires_in(Duration::from_secs(300)))
/// });
/// assert_eq!(source.fetch().await.unwrap().secret(), "minted");
/// # }
/// ```
pub fn from_fn<F, Fut>(f: F) -> FnSource<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AccessToken, TokenError>> + Send,
{
    FnSource { f }
}

impl<F, Fut> TokenSource for FnSource<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AccessToken, TokenError>> + Send,
{
    fn fetch(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send {
        (self.f)()
    }
}

impl<F> fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnSource")
    }
}
