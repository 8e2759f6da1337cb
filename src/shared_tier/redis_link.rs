//! The tier's connection to Redis: every command bounded by the Redis
//! timeout and counted, the connection dropped after any failure, and a
//! backoff after failures (the cache's own [`equal_jitter`](backoff::equal_jitter))
//! so that a dead or stalled Redis is not asked again and again while every
//! fetch falls back to the token source.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, Client, RedisResult};
use tokio::time::Instant;

use super::error::RedisFailure;
use super::stats::Counters;
use crate::cache::backoff;
use crate::redact;
use crate::secret::Secret;

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    backoff_until: Option<Instant>,
}

/// One Redis server, as the tier uses it.
pub(crate) struct RedisLink {
    client: Client,
    /// The URL's password, cut out of every error text.
    password: Option<Secret>,
    timeout: Duration,
    backoff: (Duration, Duration),
    connection: Mutex<Option<MultiplexedConnection>>,
    health: Mutex<Health>,
}

/// A connection, and whether it was opened for this call (a connection kept
/// from before may have died with the runtime that opened it).
pub(crate) struct Connection {
    pub(crate) conn: MultiplexedConnection,
    pub(crate) reused: bool,
}

impl RedisLink {
    pub(crate) fn new(
        client: Client,
        password: Option<Secret>,
        timeout: Duration,
        backoff: (Duration, Duration),
    ) -> Self {
        Self {
            client,
            password,
            timeout,
            backoff,
            connection: Mutex::new(None),
            health: Mutex::new(Health::default()),
        }
    }

    /// `Err(BackingOff)` while Redis is not to be asked.
    pub(crate) fn check_available(&self) -> Result<(), RedisFailure> {
        let health = lock(&self.health);
        match health.backoff_until {
            Some(until) if Instant::now() < until => Err(RedisFailure::BackingOff),
            _ => Ok(()),
        }
    }

    /// The kept connection, or a new one.
    pub(crate) async fn connection(&self, stats: &Counters) -> Result<Connection, RedisFailure> {
        if let Some(conn) = lock(&self.connection).clone() {
            return Ok(Connection { conn, reused: true });
        }
        Counters::bump(&stats.connections);
        // Responses are bounded by `bounded` below, one clock for every call.
        let config = AsyncConnectionConfig::new().set_connection_timeout(self.timeout);
        let conn = self
            .bounded(
                stats,
                "connect",
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await?;
        *lock(&self.connection) = Some(conn.clone());
        Ok(Connection {
            conn,
            reused: false,
        })
    }

    /// A new pub/sub connection (one per wait: waits happen at most once per
    /// token lifetime per process).
    pub(crate) async fn pubsub(&self, stats: &Counters) -> Result<PubSub, RedisFailure> {
        Counters::bump(&stats.connections);
        self.bounded(stats, "connect (pub/sub)", self.client.get_async_pubsub())
            .await
    }

    /// Runs one command (or script, or pipeline of `commands`), bounded by
    /// the Redis timeout, and counts it.
    pub(crate) async fn call<T>(
        &self,
        stats: &Counters,
        op: &'static str,
        commands: u64,
        command: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, RedisFailure> {
        Counters::add(&stats.redis_commands, commands);
        self.bounded(stats, op, command).await
    }

    async fn bounded<T>(
        &self,
        stats: &Counters,
        op: &'static str,
        future: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, RedisFailure> {
        let result = match tokio::time::timeout(self.timeout, future).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) if err.is_timeout() => RedisFailure::TimedOut(op),
            Ok(Err(err)) => RedisFailure::Failed(op, self.redacted(&err)),
            Err(_) => RedisFailure::TimedOut(op),
        };
        Counters::bump(&stats.redis_errors);
        Err(result)
    }

    /// Redis failed: the connection is dropped (a timed-out command may still
    /// be queued on it) and Redis is not asked again until the backoff ends.
    pub(crate) fn failed(&self, failure: &RedisFailure) {
        *lock(&self.connection) = None;
        let mut health = lock(&self.health);
        health.failures = health.failures.saturating_add(1);
        let delay = if self.backoff.0.is_zero() {
            Duration::ZERO
        } else {
            backoff::equal_jitter(
                health.failures,
                self.backoff.0,
                self.backoff.1,
                backoff::jitter(),
            )
        };
        health.backoff_until = (!delay.is_zero()).then(|| Instant::now() + delay);
        tracing::warn!(
            error = %failure,
            failures = health.failures,
            backoff_ms = delay.as_millis() as u64,
            "shared tier: Redis failed; not asking it again until the backoff ends"
        );
    }

    /// Redis answered: any backoff is over.
    pub(crate) fn answered(&self) {
        let mut health = lock(&self.health);
        if health.failures > 0 {
            tracing::info!(
                after_failures = health.failures,
                "shared tier: Redis answers again"
            );
        }
        *health = Health::default();
    }

    /// Drops the kept connection without counting a failure (it belonged to
    /// a runtime that is gone).
    pub(crate) fn forget_connection(&self) {
        *lock(&self.connection) = None;
    }

    fn redacted(&self, err: &redis::RedisError) -> String {
        let sent: Vec<&str> = self.password.iter().map(Secret::expose).collect();
        redact::server_text(&err.to_string(), &sent)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
