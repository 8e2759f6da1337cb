//! The scripts of the access token entry and of the lease: drop a rejected
//! token, take the lease, write a token under it, release it (holding a
//! failure for the fleet), renew it.

use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use super::nonce::nonce;
use super::script_call::{bytes, int, token_args};
use crate::shared_tier::entry::{millis, SealedToken};
use crate::shared_tier::error::RedisFailure;
use crate::shared_tier::held_failure::HeldFailure;
use crate::shared_tier::protocol::{Event, Lease, LeaseAnswer};
use crate::shared_tier::stats::Counters;
use crate::shared_tier::tier::Inner;
use crate::token::AccessToken;

impl Inner {
    pub(super) async fn invalidate(&self, writer: &[u8]) -> Result<Event, RedisFailure> {
        let mut invocation = self.scripts.invalidate.key(&self.keys.token);
        invocation.arg(writer);
        let dropped: i64 = self.invoke("invalidate", &invocation, false).await?;
        if dropped == 1 {
            Counters::bump(&self.stats.invalidations);
            tracing::info!(namespace = %self.namespace, "shared tier: rejected token dropped from Redis");
        }
        Ok(Event::Done)
    }

    pub(super) async fn acquire(&self, seen: Option<&[u8]>) -> Result<LeaseAnswer, RedisFailure> {
        let nonce = nonce();
        let keys = &self.keys;
        let mut invocation = self.scripts.acquire.key(&keys.token);
        invocation
            .key(&keys.lease)
            .key(&keys.failure)
            .arg(seen.unwrap_or_default())
            .arg(millis(self.settings.lease_ttl))
            .arg(&nonce);
        let reply: Vec<Value> = self.invoke("lease", &invocation, false).await?;
        let ms = |i: usize| {
            reply
                .get(i)
                .and_then(int)
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
        };
        let answer = match reply.first().and_then(int) {
            Some(1) => reply
                .get(1)
                .and_then(int)
                .and_then(|fence| u64::try_from(fence).ok())
                .map(|fence| LeaseAnswer::Granted(Lease { fence, nonce })),
            Some(2) => ms(1).map(LeaseAnswer::Held),
            Some(3) => Some(LeaseAnswer::Changed),
            Some(4) => ms(1)
                .zip(reply.get(2).and_then(bytes))
                .map(|(left, failure)| LeaseAnswer::Failed(HeldFailure::decode(&failure), left)),
            _ => None,
        };
        let answer = answer.ok_or_else(|| {
            RedisFailure::Failed("lease", "an answer the script never gives".into())
        })?;
        if let LeaseAnswer::Granted(lease) = &answer {
            Counters::bump(&self.stats.leases);
            tracing::debug!(fence = lease.fence, "shared tier: lease taken");
        }
        Ok(answer)
    }

    pub(super) fn seal(&self, token: &AccessToken, lease: &Lease) -> Option<SealedToken> {
        SealedToken::seal(
            token,
            &self.identity,
            lease.fence,
            &lease.nonce,
            self.config.unknown_lifetime,
            &self.keyring,
            Instant::now(),
        )
    }

    pub(super) async fn write(
        &self,
        lease: &Lease,
        token: &AccessToken,
    ) -> Result<Event, RedisFailure> {
        let Some(sealed) = self.seal(token, lease) else {
            // Nothing left to share: just let the lease go.
            return self.release(lease, None).await;
        };
        let keys = &self.keys;
        let mut invocation = self.scripts.write.key(&keys.token);
        invocation.key(&keys.lease).key(&keys.failure);
        token_args(&mut invocation, Some(&sealed));
        invocation.arg(&keys.channel);
        let written: i64 = self.invoke("write", &invocation, false).await?;
        if written == 1 {
            tracing::debug!(fence = lease.fence, "shared tier: token written to Redis");
        } else {
            tracing::info!(
                fence = lease.fence,
                "shared tier: a later lease holder wrote first; this token stays in this process"
            );
        }
        Ok(Event::Done)
    }

    pub(super) async fn release(
        &self,
        lease: &Lease,
        failure: Option<&(HeldFailure, Duration)>,
    ) -> Result<Event, RedisFailure> {
        let keys = &self.keys;
        let mut invocation = self.scripts.release.key(&keys.lease);
        invocation
            .key(&keys.failure)
            .arg(lease.value())
            .arg(failure.map(|(f, _)| f.encode()).unwrap_or_default())
            .arg(failure.map_or(0, |(_, hold)| millis(*hold)))
            .arg(&keys.channel);
        let _: i64 = self.invoke("release", &invocation, false).await?;
        Ok(Event::Done)
    }

    /// Extends `lease`; `false` if it was lost.
    pub(super) async fn renew(&self, lease: &Lease) -> Result<bool, RedisFailure> {
        let mut invocation = self.scripts.renew.key(&self.keys.lease);
        invocation
            .arg(lease.value())
            .arg(millis(self.settings.lease_ttl));
        let renewed: i64 = self.invoke("renew", &invocation, false).await?;
        if renewed == 1 {
            Counters::bump(&self.stats.renewals);
        }
        Ok(renewed == 1)
    }
}
