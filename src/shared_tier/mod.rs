//! A shared tier on Redis behind the in-process cache, so that a fleet of
//! processes fetches one token per token lifetime instead of one per process
//! (feature `redis`).
//!
//! # When to use it
//!
//! When many replicas call one API with one client identity, and the
//! identity provider bills or throttles token requests (Auth0 counts every
//! machine-to-machine token against a monthly quota, Cognito charges per
//! thousand), or when refresh tokens rotate: two replicas redeeming the same
//! refresh token make a server with reuse detection revoke the whole grant.
//!
//! # How it works
//!
//! A [`SharedTier`] wraps your [`TokenSource`] and is itself the source of an
//! ordinary [`TokenCache`](crate::TokenCache) (or
//! [`BearerAuthLayer`](crate::BearerAuthLayer)). The cache stays the hot path:
//! requests never touch Redis. The tier is asked only when the cache needs a
//! token (none yet, one due for refresh, one a server rejected), at most once
//! at a time per process (the cache's single flight). Then it
//!
//! 1. reads the shared entry (one `HMGET`): a token that is not yet due for
//!    refresh is handed to the cache, and no token request is made;
//! 2. otherwise takes the fleet's lease (a Lua script: a key with a time to
//!    live and a fencing number), fetches from your source while renewing the
//!    lease, writes the token under its fence, releases the lease and
//!    publishes a message;
//! 3. or, if another process holds the lease, waits for its message (pub/sub,
//!    re-reading at least every second) and reads what it wrote.
//!
//! Entries expire in Redis when their token does. Each entry records the
//! moment the first cache of the fleet will want the token refreshed,
//! computed with the caches' own schedule, so a process asking because its
//! token is due never gets that same token back. After a rejection the cache
//! calls [`TokenSource::fetch_replacing`]; the tier then drops the entry only
//! if it still holds the rejected token (an atomic compare-and-delete), so a
//! 401 seen by a thousand replicas causes one refresh.
//!
//! Tokens (and refresh tokens) are sealed with AES-256-GCM under a key you
//! supply before they reach Redis ([`EncryptionKey`], which also describes
//! key rotation); keys live under a namespace you set. The Redis URL's
//! password never appears in `Debug` output, errors or logs.
//!
//! # How it fails safe
//!
//! Every Redis command is bounded by a timeout
//! ([`redis_timeout`](SharedTierBuilder::redis_timeout), 500 ms). When Redis
//! is down, stalled, flushed or failing over, a fetch falls back to your
//! source directly (the cache's single flight still makes it one fetch per
//! process), and Redis is left alone for a backoff (1 s doubling to 30 s) so
//! that it is not hammered; the caches keep serving their valid tokens
//! throughout. A process that dies holding the lease delays the others by at
//! most the lease's time to live (5 s), after which one of them takes over;
//! a process that lost its lease can never overwrite a newer entry (fencing).
//! When a lease holder's fetch fails, the rest of the fleet gets that failure
//! for a short hold instead of repeating the request.
//!
//! With rotating refresh tokens ([`SharedTierBuilder::build_refreshing`]) a
//! fetch does not fall back: without Redis no process can know whether its
//! refresh token is still the current one, and redeeming a spent one revokes
//! the grant. The caches keep serving valid tokens and retry after their
//! backoff; [`local_fallback`](SharedTierBuilder::local_fallback) changes
//! this.
//!
//! # Example
//!
//! ```no_run
//! use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
//! use tower_bearer::shared_tier::{EncryptionKey, SharedTier};
//! use tower_bearer::BearerAuthLayer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = TokenEndpoint::builder("https://login.example.com/oauth/token")
//!     .client_id("billing")
//!     .client_secret(std::env::var("CLIENT_SECRET")?)
//!     .build()?;
//! let key = EncryptionKey::from_base64("2026-11", &std::env::var("TOKEN_KEY")?)?;
//! let tier = SharedTier::builder(std::env::var("REDIS_URL")?)
//!     .namespace("billing-api:prod")
//!     .encryption_key(key)
//!     .build(ClientCredentials::new(endpoint).scope("invoices"))?;
//! let layer = BearerAuthLayer::new(tier);
//! # let _ = layer; Ok(()) }
//! ```

mod builder;
mod encryption;
mod entry;
mod error;
mod freshness;
mod keyed;
mod keys;
mod lease;
mod redis_link;
mod scripts;
mod stats;
mod wait;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

pub use self::builder::SharedTierBuilder;
pub use self::encryption::EncryptionKey;
pub use self::error::SharedTierBuildError;
pub use self::keyed::KeyedSharedTier;
pub use self::stats::SharedTierStats;

use self::builder::TierConfig;
use self::encryption::{Keyring, Unreadable};
use self::entry::{with_timing, Fields, RefreshEntry, TokenEntry, REFRESH_FIELDS, TOKEN_FIELDS};
use self::error::RedisFailure;
use self::freshness::{on_read, timing_of, wall_now_ms, OnRead};
use self::keys::Keys;
use self::lease::Renewal;
use self::redis_link::{Connection, RedisLink};
use self::scripts::Scripts;
use self::stats::Counters;
use self::wait::{Waiter, RECHECK};
use crate::error::{ErrorKind, TokenError};
use crate::oauth2::RefreshTokenSource;
use crate::redact;
use crate::secret::Secret;
use crate::source::{BoxTokenSource, TokenSource};
use crate::token::AccessToken;

/// How long a failure of a permanent kind (`invalid_client`,
/// `invalid_grant`) is held for the fleet: the cache's longest backoff.
const PERMANENT_FAILURE_HOLD: Duration = Duration::from_secs(30);

/// The longest failure hold, whatever a `Retry-After` asked.
const MAX_FAILURE_HOLD: Duration = Duration::from_secs(600);

/// How much longer than the lease's time left a waiter sleeps before it
/// looks again, so that it finds the lease gone rather than about to go.
const LEASE_MARGIN: Duration = Duration::from_millis(20);

/// Tokens remembered with the version of the entry they came from, so that a
/// rejection can name the entry to drop.
const REMEMBERED_TOKENS: usize = 4;

/// How long a refreshing tier keeps trying to store a rotated refresh token
/// after Redis failed to take it, renewing its lease meanwhile, so that no
/// other process redeems the spent one.
const ROTATION_WRITE_RETRY_FOR: Duration = Duration::from_secs(60);

/// The token source of a fleet: shares the tokens of the source it wraps
/// through Redis, so that one process fetches and the others read.
///
/// Build one with [`SharedTier::builder`] and put it in a
/// [`TokenCache`](crate::TokenCache) or a
/// [`BearerAuthLayer`](crate::BearerAuthLayer) like any other source; the
/// [module documentation](self) says how it works and how it fails. Cheap to
/// clone: clones share one connection and one set of counters.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_bearer::shared_tier::{EncryptionKey, SharedTier};
/// use tower_bearer::{from_fn, AccessToken, TokenCache};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let source = from_fn(|| async {
///     Ok(AccessToken::new("minted").with_expires_in(Duration::from_secs(3600)))
/// });
/// let tier = SharedTier::builder("redis://127.0.0.1:6379")
///     .encryption_key(EncryptionKey::new("k1", [42; 32])?)
///     .build(source)?;
/// let cache = TokenCache::new(tier.clone());
/// let token = cache.acquire().await?;
/// // The first process fetched; every other one reads the same token.
/// println!("{:?}", tier.stats());
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedTier {
    inner: Arc<Inner>,
}

/// Where the tier's tokens come from.
pub(crate) enum Upstream {
    /// Any source: its tokens are shared.
    Source(BoxTokenSource),
    /// A refresh-token grant whose refresh token lives in Redis.
    Refreshing(Arc<RefreshTokenSource>),
}

pub(crate) struct Inner {
    link: Arc<RedisLink>,
    redis_for_logs: String,
    keys: Keys,
    namespace: String,
    keyring: Keyring,
    scripts: Arc<Scripts>,
    upstream: Upstream,
    pub(crate) config: TierConfig,
    stats: Arc<Counters>,
    /// The latest tokens handed out, with their entries' versions.
    handed_out: Mutex<VecDeque<(AccessToken, u64)>>,
}

/// Why a shared fetch gave no token.
enum Miss {
    /// The source failed (here, or in the process holding the lease).
    Source(TokenError),
    /// Redis could not be used.
    Redis(RedisFailure),
}

/// What the fleet's lease said.
enum LeaseAnswer {
    Granted {
        fence: u64,
        refresh: Result<Option<RefreshEntry>, Unreadable>,
    },
    Held(Duration),
    Changed,
    Failed {
        left: Duration,
        failure: String,
    },
}

/// One read of the shared entries.
struct Read {
    token: Result<Option<TokenEntry>, Unreadable>,
    refresh: Option<RefreshEntry>,
}

impl SharedTier {
    /// A builder for a tier on the Redis server at `redis_url`
    /// (`redis://[:password@]host[:port][/db]`). Nothing connects until the
    /// first fetch.
    pub fn builder(redis_url: impl Into<Secret>) -> SharedTierBuilder {
        SharedTierBuilder::new(redis_url)
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// What the tier has done so far, Redis commands included.
    pub fn stats(&self) -> SharedTierStats {
        self.inner.stats.snapshot()
    }
}

impl TokenSource for SharedTier {
    fn fetch(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send {
        self.inner.fetch(None)
    }

    fn fetch_replacing<'a>(
        &'a self,
        rejected: &'a AccessToken,
    ) -> impl Future<Output = Result<AccessToken, TokenError>> + Send + 'a {
        self.inner.fetch(Some(rejected))
    }
}

impl fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("SharedTier")
            .field("redis", &inner.redis_for_logs)
            .field("namespace", &inner.namespace)
            .field("keys", &inner.keyring)
            .field(
                "upstream",
                &match inner.upstream {
                    Upstream::Source(_) => "TokenSource",
                    Upstream::Refreshing(_) => "RefreshTokenSource",
                },
            )
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What every tier made by one builder shares: the connection to Redis, the
/// encryption keys, the settings and the counters. A
/// [`KeyedSharedTier`] makes one tier per key from it.
#[derive(Clone)]
pub(crate) struct Fleet {
    link: Arc<RedisLink>,
    redis_for_logs: String,
    namespace: String,
    keyring: Keyring,
    scripts: Arc<Scripts>,
    /// `local_fallback` as the user set it: `None` means "by the kind of
    /// tier" (yes for a plain source, no for rotating refresh tokens).
    config: TierConfig,
    stats: Arc<Counters>,
}

impl Fleet {
    pub(crate) fn new(
        link: RedisLink,
        redis_for_logs: String,
        namespace: String,
        keyring: Keyring,
        config: TierConfig,
    ) -> Self {
        Self {
            link: Arc::new(link),
            redis_for_logs,
            namespace,
            keyring,
            scripts: Arc::new(Scripts::new()),
            config,
            stats: Arc::default(),
        }
    }

    /// The tier whose entries live under `namespace`.
    pub(crate) fn tier(&self, namespace: String, upstream: Upstream) -> SharedTier {
        let mut config = self.config.clone();
        let fallback_by_default = matches!(upstream, Upstream::Source(_));
        config.local_fallback = Some(config.local_fallback.unwrap_or(fallback_by_default));
        SharedTier::from_inner(Inner {
            link: Arc::clone(&self.link),
            redis_for_logs: self.redis_for_logs.clone(),
            keys: Keys::new(&namespace),
            namespace,
            keyring: self.keyring.clone(),
            scripts: Arc::clone(&self.scripts),
            upstream,
            config,
            stats: Arc::clone(&self.stats),
            handed_out: Mutex::new(VecDeque::with_capacity(REMEMBERED_TOKENS)),
        })
    }

    /// The tier of the whole namespace (one shared token).
    pub(crate) fn single(&self, upstream: Upstream) -> SharedTier {
        self.tier(self.namespace.clone(), upstream)
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn redis_for_logs(&self) -> &str {
        &self.redis_for_logs
    }

    pub(crate) fn stats(&self) -> SharedTierStats {
        self.stats.snapshot()
    }
}

impl Inner {
    /// A token for the cache: shared through Redis, or from the source when
    /// Redis cannot be used.
    async fn fetch(
        self: &Arc<Self>,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, TokenError> {
        Counters::bump(&self.stats.fetches);
        let outcome = match self.link.check_available() {
            Ok(()) => self.shared_fetch(rejected).await,
            Err(failure) => Err(Miss::Redis(failure)),
        };
        match outcome {
            Ok(token) => Ok(token),
            Err(Miss::Source(err)) => Err(err),
            Err(Miss::Redis(failure)) => self.fall_back(rejected, failure).await,
        }
    }

    async fn shared_fetch(
        self: &Arc<Self>,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, Miss> {
        let rejected_version = rejected.and_then(|token| self.version_of(token));
        let Connection { mut conn, reused } = self
            .link
            .connection(&self.stats)
            .await
            .map_err(|f| self.redis_failed(f))?;
        let mut read = match self.first_read(&mut conn, rejected_version).await {
            // A kept connection may have died with the runtime that opened
            // it: one more try on a new one before Redis counts as failed.
            Err(RedisFailure::Failed(..)) if reused => {
                self.link.forget_connection();
                conn = self
                    .link
                    .connection(&self.stats)
                    .await
                    .map_err(|f| self.redis_failed(f))?
                    .conn;
                self.first_read(&mut conn, rejected_version).await
            }
            other => other,
        }
        .map_err(|f| self.redis_failed(f))?;
        self.link.answered();

        let started = Instant::now();
        let mut waiter = Waiter::default();
        let mut waited = false;
        loop {
            self.learn_refresh_token(read.refresh.as_ref()).await;
            let seen = match &read.token {
                Err(why) => return Err(Miss::Redis(RedisFailure::Unreadable(why.as_str()))),
                Ok(Some(entry)) => {
                    let now_ms = wall_now_ms();
                    if on_read(&entry.timing, now_ms) == OnRead::Serve {
                        let token = entry
                            .open(&self.keyring, &self.keys.token, Instant::now(), now_ms)
                            .map_err(|why| Miss::Redis(RedisFailure::Unreadable(why.as_str())))?;
                        Counters::bump(&self.stats.served_shared);
                        self.remember(&token, entry.version);
                        tracing::debug!(
                            version = entry.version,
                            "shared tier: token read from Redis"
                        );
                        return Ok(token);
                    }
                    entry.version
                }
                Ok(None) => 0,
            };
            match self
                .acquire(&mut conn, seen)
                .await
                .map_err(|f| self.redis_failed(f))?
            {
                LeaseAnswer::Changed => {}
                LeaseAnswer::Failed { left, failure } => {
                    Counters::bump(&self.stats.shared_failures);
                    return Err(Miss::Source(shared_failure(&failure, left)));
                }
                LeaseAnswer::Granted { fence, refresh } => {
                    return self.fetch_as_holder(conn, fence, refresh, rejected).await;
                }
                LeaseAnswer::Held(left) => {
                    if !std::mem::replace(&mut waited, true) {
                        Counters::bump(&self.stats.waits);
                    }
                    let so_far = started.elapsed();
                    if so_far >= self.config.max_wait {
                        return Err(Miss::Redis(RedisFailure::WaitedTooLong));
                    }
                    let bound = (left + LEASE_MARGIN)
                        .min(self.config.max_wait - so_far)
                        .min(RECHECK);
                    waiter
                        .wait(&self.link, &self.stats, &self.keys.channel, bound)
                        .await
                        .map_err(|f| self.redis_failed(f))?;
                }
            }
            read = self
                .read(&mut conn)
                .await
                .map_err(|f| self.redis_failed(f))?;
        }
    }

    /// Drops the rejected token's entry if it still holds it, then reads.
    async fn first_read(
        &self,
        conn: &mut MultiplexedConnection,
        rejected_version: Option<u64>,
    ) -> Result<Read, RedisFailure> {
        if let Some(version) = rejected_version {
            let mut invocation = self.scripts.invalidate.key(&self.keys.token);
            invocation.arg(version);
            let dropped: i64 = self
                .link
                .call(&self.stats, "invalidate", 1, invocation.invoke_async(conn))
                .await?;
            if dropped == 1 {
                Counters::bump(&self.stats.invalidations);
                tracing::info!(version, "shared tier: rejected token dropped from Redis");
            }
        }
        self.read(conn).await
    }

    async fn read(&self, conn: &mut MultiplexedConnection) -> Result<Read, RedisFailure> {
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(&self.keys.token).arg(&TOKEN_FIELDS[..]);
        let (token, refresh): (Fields, Option<Fields>) = match self.upstream {
            Upstream::Source(_) => {
                let fields = self
                    .link
                    .call(&self.stats, "read", 1, hmget.query_async(conn))
                    .await?;
                (fields, None)
            }
            Upstream::Refreshing(_) => {
                let mut pipe = redis::pipe();
                pipe.add_command(hmget)
                    .cmd("HMGET")
                    .arg(&self.keys.refresh)
                    .arg(&REFRESH_FIELDS[..]);
                let (token, refresh) = self
                    .link
                    .call(&self.stats, "read", 2, pipe.query_async(conn))
                    .await?;
                (token, Some(refresh))
            }
        };
        Ok(Read {
            token: TokenEntry::from_fields(&token),
            // An unreadable refresh entry matters only to a lease holder,
            // which reads it again under the lease.
            refresh: refresh.and_then(|fields| RefreshEntry::from_fields(&fields).ok().flatten()),
        })
    }

    async fn acquire(
        &self,
        conn: &mut MultiplexedConnection,
        seen: u64,
    ) -> Result<LeaseAnswer, RedisFailure> {
        let keys = &self.keys;
        let mut invocation = self.scripts.acquire.key(&keys.token);
        invocation
            .key(&keys.lease)
            .key(&keys.fence)
            .key(&keys.refresh)
            .key(&keys.failure)
            .arg(seen)
            .arg(millis(self.config.lease_ttl));
        let reply: Vec<redis::Value> = self
            .link
            .call(&self.stats, "lease", 1, invocation.invoke_async(conn))
            .await?;
        parse_lease_answer(&reply)
            .ok_or_else(|| RedisFailure::Failed("lease", "an answer the script never gives".into()))
    }

    /// This process holds the lease: fetches, writes, releases.
    async fn fetch_as_holder(
        self: &Arc<Self>,
        mut conn: MultiplexedConnection,
        fence: u64,
        refresh: Result<Option<RefreshEntry>, Unreadable>,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, Miss> {
        Counters::bump(&self.stats.leases);
        tracing::debug!(fence, "shared tier: lease taken; fetching");
        let renewal = Renewal::start(self, fence);
        let fetched = self.fetch_upstream(refresh, rejected).await;
        drop(renewal);
        match fetched {
            Ok((token, refresh_token)) => Ok(self.publish(conn, fence, token, refresh_token).await),
            Err(miss) => {
                let hold = match &miss {
                    Miss::Source(err) => self.failure_hold(err),
                    // This process cannot read the refresh token: its own
                    // problem, not the fleet's.
                    Miss::Redis(_) => Duration::ZERO,
                };
                let failure = match &miss {
                    Miss::Source(err) => encode_failure(err),
                    Miss::Redis(_) => String::new(),
                };
                let keys = &self.keys;
                let mut invocation = self.scripts.release_failed.key(&keys.lease);
                invocation
                    .key(&keys.failure)
                    .arg(fence)
                    .arg(failure)
                    .arg(millis(hold))
                    .arg(&keys.channel);
                let released: Result<i64, _> = self
                    .link
                    .call(
                        &self.stats,
                        "release",
                        1,
                        invocation.invoke_async(&mut conn),
                    )
                    .await;
                if let Err(failure) = released {
                    let _ = self.redis_failed(failure);
                }
                Err(miss)
            }
        }
    }

    /// The fetch itself, from the source or the refresh-token grant.
    async fn fetch_upstream(
        &self,
        refresh: Result<Option<RefreshEntry>, Unreadable>,
        rejected: Option<&AccessToken>,
    ) -> Result<(AccessToken, Option<Secret>), Miss> {
        match &self.upstream {
            Upstream::Source(source) => {
                let token = match rejected {
                    Some(rejected) => source.fetch_replacing(rejected).await,
                    None => source.fetch().await,
                };
                token.map(|t| (t, None)).map_err(Miss::Source)
            }
            Upstream::Refreshing(source) => {
                let stored =
                    refresh.map_err(|why| Miss::Redis(RedisFailure::Unreadable(why.as_str())))?;
                let refresh_token = match stored {
                    Some(entry) => entry
                        .open(&self.keyring, &self.keys.refresh)
                        .map_err(|why| Miss::Redis(RedisFailure::Unreadable(why.as_str())))?,
                    None => {
                        // Redis has no refresh token: the fleet starts (or,
                        // after Redis lost its data, restarts) from this
                        // process's newest, and from its code exchange's
                        // access token if that is still worth serving.
                        if rejected.is_none() {
                            if let Some(initial) = source.take_initial_token().await {
                                return Ok((initial, Some(source.refresh_token().await)));
                            }
                        }
                        source.refresh_token().await
                    }
                };
                let response = source.redeem(&refresh_token).await.map_err(Miss::Source)?;
                let next = response.refresh_token().cloned().unwrap_or(refresh_token);
                Ok((response.to_access_token(), Some(next)))
            }
        }
    }

    /// Writes what the lease holder fetched, and returns the token as every
    /// process sees it.
    async fn publish(
        self: &Arc<Self>,
        mut conn: MultiplexedConnection,
        fence: u64,
        token: AccessToken,
        refresh_token: Option<Secret>,
    ) -> AccessToken {
        let (now, now_ms) = (Instant::now(), wall_now_ms());
        let timing = timing_of(&token, now, now_ms, &self.config.timing);
        let entry = TokenEntry::seal(&token, fence, timing, &self.keyring, &self.keys.token);
        let refresh_entry = refresh_token
            .as_ref()
            .map(|r| RefreshEntry::seal(r, fence, &self.keyring, &self.keys.refresh));
        match self.write(&mut conn, &entry, refresh_entry.as_ref()).await {
            Ok(true) => tracing::debug!(fence, "shared tier: token written to Redis"),
            Ok(false) => tracing::info!(
                fence,
                "shared tier: a later lease holder wrote first; this token stays in this process"
            ),
            Err(failure) => {
                let _ = self.redis_failed(failure);
                if refresh_entry.is_some() {
                    self.keep_trying_to_write(entry.clone(), refresh_entry.clone());
                }
            }
        }
        if let (Upstream::Refreshing(source), Some(refresh_token)) =
            (&self.upstream, &refresh_token)
        {
            source.adopt(refresh_token, true).await;
        }
        let served = with_timing(token, &timing, now, now_ms);
        self.remember(&served, fence);
        served
    }

    async fn write(
        &self,
        conn: &mut MultiplexedConnection,
        entry: &TokenEntry,
        refresh: Option<&RefreshEntry>,
    ) -> Result<bool, RedisFailure> {
        let keys = &self.keys;
        let (iat, exp, refresh_at, kid, blob) = entry.stored_fields();
        let mut invocation = self.scripts.write.key(&keys.token);
        invocation
            .key(&keys.lease)
            .key(&keys.refresh)
            .key(&keys.failure)
            .arg(entry.version)
            .arg(iat)
            .arg(exp)
            .arg(refresh_at)
            .arg(kid)
            .arg(blob)
            .arg(exp)
            .arg(refresh.map_or("", |r| r.key_id.as_str()))
            .arg(refresh.map_or(&[][..], |r| r.sealed.as_slice()))
            .arg(&keys.channel);
        let written: i64 = self
            .link
            .call(&self.stats, "write", 1, invocation.invoke_async(conn))
            .await?;
        Ok(written == 1)
    }

    /// Redis did not take a rotated refresh token: the one it holds is spent,
    /// and a process redeeming it would have the grant revoked. Keeps the
    /// lease and retries the (fenced, so idempotent) write in the background
    /// until Redis takes it or a later lease holder has written.
    fn keep_trying_to_write(self: &Arc<Self>, entry: TokenEntry, refresh: Option<RefreshEntry>) {
        let inner = Arc::clone(self);
        let renewal = Renewal::start(self, entry.version);
        tokio::spawn(async move {
            let _keep_the_lease = renewal;
            let deadline = Instant::now() + ROTATION_WRITE_RETRY_FOR;
            let mut delay = Duration::from_millis(100);
            while Instant::now() < deadline {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                let Ok(Connection { mut conn, .. }) = inner.link.connection(&inner.stats).await
                else {
                    continue;
                };
                match inner.write(&mut conn, &entry, refresh.as_ref()).await {
                    Ok(written) => {
                        tracing::info!(
                            written,
                            "shared tier: rotated refresh token stored after a retry"
                        );
                        inner.link.answered();
                        return;
                    }
                    Err(_) => inner.link.forget_connection(),
                }
            }
            tracing::error!(
                "shared tier: Redis never took the rotated refresh token; \
                 the one it holds was spent, and redeeming it will fail"
            );
        });
    }

    /// Extends the lease held under `fence`; `false` if it was lost.
    pub(crate) async fn renew(&self, fence: u64) -> Result<bool, RedisFailure> {
        let Connection { mut conn, .. } = self.link.connection(&self.stats).await?;
        let mut invocation = self.scripts.renew.key(&self.keys.lease);
        invocation.arg(fence).arg(millis(self.config.lease_ttl));
        let renewed: i64 = self
            .link
            .call(&self.stats, "renew", 1, invocation.invoke_async(&mut conn))
            .await?;
        Ok(renewed == 1)
    }

    /// Redis could not be used for this fetch: the source is asked directly
    /// (the cache's single flight keeps it to one fetch per process), except
    /// by a refreshing tier without local fallback.
    async fn fall_back(
        &self,
        rejected: Option<&AccessToken>,
        failure: RedisFailure,
    ) -> Result<AccessToken, TokenError> {
        Counters::bump(&self.stats.fallbacks);
        let local = self.config.local_fallback.unwrap_or(true);
        tracing::warn!(
            error = %failure,
            local_fallback = local,
            "shared tier: not using Redis for this fetch"
        );
        match &self.upstream {
            Upstream::Source(source) => match rejected {
                Some(rejected) => source.fetch_replacing(rejected).await,
                None => source.fetch().await,
            },
            Upstream::Refreshing(source) if local => source.fetch().await,
            Upstream::Refreshing(_) => Err(TokenError::with_source(
                ErrorKind::Transient,
                "the shared tier cannot use Redis, and rotating refresh tokens are only redeemed under its lease",
                failure,
            )),
        }
    }

    /// A failure of Redis itself (not of an entry, not a long wait) drops
    /// the connection and starts the backoff.
    fn redis_failed(&self, failure: RedisFailure) -> Miss {
        if matches!(
            failure,
            RedisFailure::TimedOut(_) | RedisFailure::Failed(..)
        ) {
            self.link.failed(&failure);
        }
        Miss::Redis(failure)
    }

    /// A refreshing tier learns the fleet's refresh token from every read, so
    /// that a Redis that lost its data restarts from the newest one known.
    async fn learn_refresh_token(&self, refresh: Option<&RefreshEntry>) {
        let (Upstream::Refreshing(source), Some(entry)) = (&self.upstream, refresh) else {
            return;
        };
        if let Ok(refresh_token) = entry.open(&self.keyring, &self.keys.refresh) {
            source.adopt(&refresh_token, false).await;
        }
    }

    fn failure_hold(&self, err: &TokenError) -> Duration {
        if self.config.failure_hold.is_zero() {
            return Duration::ZERO;
        }
        let hold = match (err.retry_after(), err.kind()) {
            (Some(asked), _) => asked,
            (None, ErrorKind::Permanent) => PERMANENT_FAILURE_HOLD.max(self.config.failure_hold),
            (None, ErrorKind::Transient) => self.config.failure_hold,
        };
        hold.min(MAX_FAILURE_HOLD)
    }

    fn remember(&self, token: &AccessToken, version: u64) {
        let mut handed_out = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        if handed_out.len() == REMEMBERED_TOKENS {
            handed_out.pop_back();
        }
        handed_out.push_front((token.clone(), version));
    }

    fn version_of(&self, token: &AccessToken) -> Option<u64> {
        let handed_out = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        handed_out
            .iter()
            .find(|(t, _)| t.secret() == token.secret())
            .map(|(_, version)| *version)
    }
}

fn parse_lease_answer(reply: &[redis::Value]) -> Option<LeaseAnswer> {
    let int = |i: usize| {
        reply
            .get(i)
            .and_then(|v| redis::from_redis_value::<i64>(v).ok())
    };
    let bytes = |i: usize| {
        reply
            .get(i)
            .and_then(|v| redis::from_redis_value::<Option<Vec<u8>>>(v).ok())
            .flatten()
    };
    let ms = |i: usize| int(i).map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    match int(0)? {
        1 => Some(LeaseAnswer::Granted {
            fence: u64::try_from(int(1)?).ok()?,
            refresh: RefreshEntry::from_fields(&[bytes(2), bytes(3), bytes(4)]),
        }),
        2 => Some(LeaseAnswer::Held(ms(1)?)),
        3 => Some(LeaseAnswer::Changed),
        4 => Some(LeaseAnswer::Failed {
            left: ms(1)?,
            failure: String::from_utf8_lossy(&bytes(2)?).into_owned(),
        }),
        _ => None,
    }
}

/// A failure as the fleet keeps it: its kind, then its message with its
/// causes (a `Display` says only what failed at its own level; the chain
/// never holds a secret: token errors are built without them).
fn encode_failure(err: &TokenError) -> String {
    let kind = if err.is_permanent() { 'p' } else { 't' };
    format!("{kind}|{}", crate::error::Chain(err))
}

/// The error a process gets when another one's fetch failed moments ago.
/// What Redis holds is not trusted: escaped and capped like server text.
fn shared_failure(stored: &str, left: Duration) -> TokenError {
    let (kind, message) = stored.split_once('|').unwrap_or(("t", stored));
    let message = format!(
        "another process's token fetch failed moments ago: {}",
        redact::server_text(message, &[])
    );
    let err = match kind {
        "p" => TokenError::permanent(message),
        _ => TokenError::transient(message),
    };
    err.with_retry_after(left)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn lease_answers() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let granted = parse_lease_answer(&[
            Value::Int(1),
            Value::Int(7),
            Value::Nil,
            Value::Nil,
            Value::Nil,
        ]);
        assert!(matches!(
            granted,
            Some(LeaseAnswer::Granted {
                fence: 7,
                refresh: Ok(None)
            })
        ));
        let held = parse_lease_answer(&[Value::Int(2), Value::Int(1500)]);
        assert!(matches!(held, Some(LeaseAnswer::Held(d)) if d == Duration::from_millis(1500)));
        assert!(matches!(
            parse_lease_answer(&[Value::Int(3)]),
            Some(LeaseAnswer::Changed)
        ));
        let failed = parse_lease_answer(&[Value::Int(4), Value::Int(-2), bulk("p|invalid_grant")]);
        assert!(matches!(
            failed,
            Some(LeaseAnswer::Failed { left, ref failure }) if left.is_zero() && failure == "p|invalid_grant"
        ));
        assert!(parse_lease_answer(&[]).is_none());
        assert!(parse_lease_answer(&[Value::Int(9)]).is_none());
        assert!(parse_lease_answer(&[Value::Int(1), Value::Int(-1)]).is_none());
    }

    #[test]
    fn failures_travel_with_their_kind_and_are_escaped_on_the_way_back() {
        let permanent = TokenError::permanent("invalid_grant: grant request is invalid");
        let stored = encode_failure(&permanent);
        assert_eq!(stored, "p|invalid_grant: grant request is invalid");
        let back = shared_failure(&stored, Duration::from_secs(3));
        assert!(back.is_permanent());
        assert_eq!(back.retry_after(), Some(Duration::from_secs(3)));
        assert!(back
            .to_string()
            .ends_with("invalid_grant: grant request is invalid"));

        let forged = shared_failure("t|boom\nFAKE LOG LINE", Duration::ZERO);
        assert!(forged.is_transient());
        assert!(!forged.to_string().contains('\n'));
        assert!(shared_failure("garbage", Duration::ZERO).is_transient());
    }
}
