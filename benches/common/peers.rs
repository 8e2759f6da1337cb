//! The peers the benchmarks compare `BearerAuth` with, besides tower-http's
//! `AddAuthorization` (the floor: a static header, no cache at all).
//!
//! - [`AliriLayer`]: aliri_tokens' `TokenWatcher` with the header that its
//!   middleware (aliri_reqwest's `AccessTokenMiddleware`) builds per request.
//!   aliri_tokens is not a dependency: it pulls in reqwest, aliri_clock,
//!   aliri_braid and more, a long build on this 2-core machine, for two
//!   functions. What is here is a line-for-line equivalent of its hot path
//!   (aliri_tokens 0.3 `watcher.rs`, aliri_reqwest 0.5 `lib.rs`): the token
//!   lives in a `tokio::sync::watch` channel whose sender a background task
//!   owns; a request borrows it (the channel's read lock), checks whether
//!   TRACE is enabled, and builds `Bearer <token>` into a new `BytesMut`, a
//!   sensitive `HeaderValue`, inserted unless the request has one. Its
//!   predicate is "always" (the default `HttpsOnly` would skip the
//!   benchmark's `http://` request), and the middleware's `async_trait` box
//!   is left out (a Tower service returns the inner future): both in
//!   aliri's favour. It has no replay after a 401 and checks no expiry on
//!   the request path (its task replaces the token when it goes stale).
//! - [`RwLockLayer`]: what one writes by hand: the header value and its
//!   expiry under a `std::sync::RwLock`, read per request with
//!   `Instant::now()`; no replay.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use tokio::sync::{watch, OnceCell};
use tower::{Layer, Service};

/// aliri_tokens' `TokenWithLifetime`: the token and its times in Unix
/// seconds (`AccessTokenRef` and `IdTokenRef` are `str` braids).
#[derive(Debug)]
pub struct TokenWithLifetime {
    access_token: Box<str>,
    #[allow(dead_code)]
    id_token: Option<Box<str>>,
    lifetime: u64,
    issued: u64,
    stale: u64,
    expiry: u64,
}

impl TokenWithLifetime {
    /// A token issued now for `lifetime`, stale at three quarters of it
    /// (aliri's default).
    pub fn new(token: &str, lifetime: Duration) -> Self {
        let issued = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let lifetime = lifetime.as_secs();
        Self {
            access_token: token.into(),
            id_token: None,
            lifetime,
            issued,
            stale: issued + lifetime * 3 / 4,
            expiry: issued + lifetime,
        }
    }

    fn access_token(&self) -> &str {
        &self.access_token
    }
}

/// aliri_tokens' `TokenWatcher`: a receiver of the token its task publishes.
#[derive(Clone, Debug)]
pub struct TokenWatcher {
    watcher: watch::Receiver<TokenWithLifetime>,
}

impl TokenWatcher {
    /// `spawn_from_token_source`: fetches the first token, then spawns the
    /// task that replaces it when it goes stale (here: sleeps until then,
    /// with aliri's 30 s heartbeat, and fetches again).
    pub async fn spawn_from_token_source<F, Fut>(source: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = TokenWithLifetime> + Send,
    {
        let initial = source().await;
        let (tx, rx) = watch::channel(initial);
        tokio::spawn(async move {
            loop {
                let stale = tx.borrow().stale;
                loop {
                    let now = unix_now();
                    if now >= stale {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs((stale - now).min(30))).await;
                }
                if tx.send(source().await).is_err() {
                    return;
                }
            }
        });
        Self { watcher: rx }
    }

    /// `token()`: borrows the current token (the channel's read lock).
    pub fn token(&self) -> watch::Ref<'_, TokenWithLifetime> {
        self.watcher.borrow()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// aliri_reqwest's `AccessTokenMiddleware::get_token_from_source`.
fn get_token_from_source(watcher: &TokenWatcher) -> HeaderValue {
    let token = watcher.token();
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(
            token.lifetime = token.lifetime,
            token.issued = token.issued,
            token.stale = token.stale,
            token.expiry = token.expiry,
            "obtained access token"
        );
    }
    let mut header_value = BytesMut::with_capacity(token.access_token().len() + 7);
    header_value.put_slice(b"Bearer ");
    header_value.put_slice(token.access_token().as_bytes());
    let mut value = HeaderValue::from_maybe_shared(header_value).expect("only valid header bytes");
    value.set_sensitive(true);
    value
}

/// The middleware's `handle`, as a Tower layer.
#[derive(Clone)]
pub struct AliriLayer {
    watcher: TokenWatcher,
}

impl AliriLayer {
    pub fn new(watcher: TokenWatcher) -> Self {
        Self { watcher }
    }
}

impl<S> Layer<S> for AliriLayer {
    type Service = Aliri<S>;

    fn layer(&self, inner: S) -> Aliri<S> {
        Aliri {
            inner,
            watcher: self.watcher.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Aliri<S> {
    inner: S,
    watcher: TokenWatcher,
}

impl<S, B> Service<Request<B>> for Aliri<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        // `if self.predicate.eval(&req)`: always.
        req.headers_mut()
            .entry(AUTHORIZATION)
            .or_insert_with(|| get_token_from_source(&self.watcher));
        self.inner.call(req)
    }
}

/// For a cold start with aliri: its watcher exists only once the first token
/// is fetched, so requests that arrive before wait for it in a `OnceCell`
/// (the way an application shares a watcher it starts lazily); then the
/// middleware's `handle`. Boxes its future, as the middleware's
/// `async_trait` does.
#[derive(Clone)]
pub struct LazyAliri<S, F> {
    inner: S,
    cell: Arc<OnceCell<TokenWatcher>>,
    source: F,
}

impl<S, F> LazyAliri<S, F> {
    pub fn new(inner: S, source: F) -> Self {
        Self {
            inner,
            cell: Arc::new(OnceCell::new()),
            source,
        }
    }
}

impl<S, F, Fut, B> Service<Request<B>> for LazyAliri<S, F>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = TokenWithLifetime> + Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let (mut inner, cell, source) =
            (self.inner.clone(), self.cell.clone(), self.source.clone());
        Box::pin(async move {
            let watcher = cell
                .get_or_init(|| TokenWatcher::spawn_from_token_source(source))
                .await;
            req.headers_mut()
                .entry(AUTHORIZATION)
                .or_insert_with(|| get_token_from_source(watcher));
            inner.call(req).await
        })
    }
}

/// A hand-written layer: the prepared header and its expiry under an
/// `RwLock`, checked with `Instant::now()` on every request.
#[derive(Clone)]
pub struct RwLockLayer {
    token: Arc<RwLock<Option<(HeaderValue, Instant)>>>,
}

impl RwLockLayer {
    /// Holding `token`, valid for `lifetime`.
    pub fn holding(token: &str, lifetime: Duration) -> Self {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        value.set_sensitive(true);
        Self {
            token: Arc::new(RwLock::new(Some((value, Instant::now() + lifetime)))),
        }
    }
}

impl<S> Layer<S> for RwLockLayer {
    type Service = RwLockAuth<S>;

    fn layer(&self, inner: S) -> RwLockAuth<S> {
        RwLockAuth {
            inner,
            token: Arc::clone(&self.token),
        }
    }
}

#[derive(Clone)]
pub struct RwLockAuth<S> {
    inner: S,
    token: Arc<RwLock<Option<(HeaderValue, Instant)>>>,
}

impl<S, B> Service<Request<B>> for RwLockAuth<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        let value = match &*self.token.read().unwrap() {
            Some((value, expires)) if Instant::now() < *expires => value.clone(),
            // The benchmarks keep it warm; a real layer would fetch here.
            _ => panic!("the token expired"),
        };
        req.headers_mut().insert(AUTHORIZATION, value);
        self.inner.call(req)
    }
}
