//! One script on the link to Redis: sent on the kept connection (or a new
//! one) unless Redis is being backed off from, its failure starting the
//! backoff; the arguments scripts share, and the values their answers hold.

use redis::{FromRedisValue, ScriptInvocation, Value};

use crate::shared_tier::entry::SealedToken;
use crate::shared_tier::error::RedisFailure;
use crate::shared_tier::redis_link::Connection;
use crate::shared_tier::tier::Inner;

impl Inner {
    /// Runs a script on the kept connection (or a new one), unless Redis is
    /// being backed off from. `retry`: the script only reads, so a kept
    /// connection that died with the runtime that opened it may be replaced
    /// and the script sent again.
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &ScriptInvocation<'_>,
        retry: bool,
    ) -> Result<T, RedisFailure> {
        self.link.check_available()?;
        let Connection { mut conn, reused } = self
            .link
            .connection(&self.stats)
            .await
            .map_err(|f| self.failed(f))?;
        let result = self
            .link
            .call(&self.stats, op, 1, invocation.invoke_async(&mut conn))
            .await;
        let result = match result {
            Err(RedisFailure::Failed(..)) if reused && retry => {
                self.link.forget_connection();
                let Connection { mut conn, .. } = self
                    .link
                    .connection(&self.stats)
                    .await
                    .map_err(|f| self.failed(f))?;
                self.link
                    .call(&self.stats, op, 1, invocation.invoke_async(&mut conn))
                    .await
            }
            other => other,
        };
        match result {
            Ok(value) => {
                self.link.answered();
                Ok(value)
            }
            Err(failure) => Err(self.failed(failure)),
        }
    }

    /// A failure of Redis itself drops the connection and starts the backoff.
    pub(super) fn failed(&self, failure: RedisFailure) -> RedisFailure {
        if matches!(
            failure,
            RedisFailure::TimedOut(_) | RedisFailure::Failed(..)
        ) {
            self.link.failed(&failure);
        }
        failure
    }
}

/// The token fields of the write, bootstrap and commit scripts: fence,
/// nonce, life, ttl, kid, blob (all empty: no token).
pub(super) fn token_args(invocation: &mut ScriptInvocation<'_>, sealed: Option<&SealedToken>) {
    match sealed {
        Some(sealed) => invocation
            .arg(sealed.fence)
            .arg(&sealed.writer)
            .arg(sealed.life_ms)
            .arg(sealed.ttl_ms)
            .arg(&sealed.key_id)
            .arg(&sealed.sealed),
        None => invocation.arg("").arg("").arg("").arg("").arg("").arg(""),
    };
}

pub(super) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

pub(super) fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}
