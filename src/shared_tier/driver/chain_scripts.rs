//! The scripts of the refresh-token chain: start it from this process's
//! refresh token, mark a redemption, commit the rotated refresh token with
//! the access token or abort, record the chain lost, reseed it.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::nonce::nonce;
use super::script_call::token_args;
use crate::error::{ErrorKind, TokenError};
use crate::secret::Secret;
use crate::shared_tier::entry::{millis, seal_refresh_token};
use crate::shared_tier::error::{ChainLoss, RedisFailure};
use crate::shared_tier::held_failure::HeldFailure;
use crate::shared_tier::protocol::{Bootstrapped, ChainPos, Committed, Event, Lease, Verdict};
use crate::shared_tier::tier::{Inner, Upstream};
use crate::token::AccessToken;

impl Inner {
    pub(super) async fn bootstrap(&self, lease: &Lease) -> Result<Event, RedisFailure> {
        let Upstream::Refreshing(source) = &self.upstream else {
            unreachable!("only a refreshing tier has a chain");
        };
        let refresh_token = source.refresh_token().await;
        let initial = source.take_initial_token().await;
        let epoch = nonce();
        let sealed_refresh =
            seal_refresh_token(&refresh_token, &self.identity, &epoch, 1, &self.keyring);
        let sealed = initial.as_ref().and_then(|token| self.seal(token, lease));
        let keys = &self.keys;
        let mut invocation = self.scripts.bootstrap.key(&keys.refresh);
        invocation
            .key(&keys.lease)
            .key(&keys.token)
            .key(&keys.failure)
            .arg(lease.value())
            .arg(&epoch)
            .arg(self.keyring.sealing_id())
            .arg(sealed_refresh)
            .arg(millis(self.config.refresh_ttl));
        token_args(&mut invocation, sealed.as_ref());
        invocation.arg(&keys.channel);
        let started: i64 = self.invoke("bootstrap", &invocation, false).await?;
        Ok(Event::Bootstrapped(if started == 1 {
            tracing::info!(namespace = %self.namespace, "shared tier: refresh-token chain started from this process's refresh token");
            Bootstrapped::Started {
                epoch,
                refresh_token,
                initial: initial.filter(|_| sealed.is_some()),
            }
        } else {
            Bootstrapped::Exists
        }))
    }

    pub(super) async fn mark(&self, lease: &Lease, pos: &ChainPos) -> Result<Event, RedisFailure> {
        let mut invocation = self.scripts.mark.key(&self.keys.refresh);
        invocation
            .key(&self.keys.lease)
            .arg(lease.value())
            .arg(&pos.epoch)
            .arg(pos.seq);
        let marked: i64 = self.invoke("mark", &invocation, false).await?;
        Ok(Event::Marked(marked == 1))
    }

    pub(super) async fn commit(
        &self,
        lease: &Lease,
        pos: &ChainPos,
        refresh_token: &Secret,
        token: &AccessToken,
    ) -> Result<Event, RedisFailure> {
        let next = pos.seq + 1;
        let sealed_refresh = seal_refresh_token(
            refresh_token,
            &self.identity,
            &pos.epoch,
            next,
            &self.keyring,
        );
        let sealed = self.seal(token, lease);
        let keys = &self.keys;
        let mut invocation = self.scripts.commit.key(&keys.refresh);
        invocation
            .key(&keys.token)
            .key(&keys.lease)
            .key(&keys.failure)
            .arg(lease.value())
            .arg(&pos.epoch)
            .arg(pos.seq)
            .arg(next)
            .arg(self.keyring.sealing_id())
            .arg(sealed_refresh)
            .arg(millis(self.config.refresh_ttl));
        token_args(&mut invocation, sealed.as_ref());
        invocation.arg(&keys.channel);
        let answer = match self.invoke::<i64>("commit", &invocation, false).await? {
            1 => {
                tracing::debug!(seq = next, "shared tier: rotated refresh token stored");
                Committed::Stored
            }
            2 => Committed::Unmarked,
            _ => {
                tracing::warn!(
                    namespace = %self.namespace,
                    "shared tier: the chain was reseeded or declared lost during this \
                     redemption; its refresh token is not stored"
                );
                Committed::Moved
            }
        };
        Ok(Event::Committed(answer))
    }

    pub(super) async fn abort(
        &self,
        lease: &Lease,
        pos: &ChainPos,
        verdict: Verdict,
        failure: Option<&(HeldFailure, Duration)>,
    ) -> Result<Event, RedisFailure> {
        let (code, loss) = match verdict {
            Verdict::NotConsumed => ("n", ""),
            Verdict::InDoubt => ("d", ""),
            Verdict::Lost(loss) => ("l", loss.code()),
        };
        let keys = &self.keys;
        let mut invocation = self.scripts.abort.key(&keys.refresh);
        invocation
            .key(&keys.lease)
            .key(&keys.failure)
            .arg(lease.value())
            .arg(&pos.epoch)
            .arg(pos.seq)
            .arg(code)
            .arg(loss)
            .arg(failure.map(|(f, _)| f.encode()).unwrap_or_default())
            .arg(failure.map_or(0, |(_, hold)| millis(*hold)))
            .arg(&keys.channel)
            .arg(millis(self.config.refresh_ttl));
        let _: i64 = self.invoke("abort", &invocation, false).await?;
        Ok(Event::Done)
    }

    pub(super) async fn declare_lost(
        &self,
        known: &ChainPos,
        loss: ChainLoss,
    ) -> Result<Event, RedisFailure> {
        let mut invocation = self.scripts.declare_lost.key(&self.keys.refresh);
        invocation
            .arg(&known.epoch)
            .arg(known.seq)
            .arg(loss.code())
            .arg(millis(self.config.refresh_ttl))
            .arg(if loss == ChainLoss::Unreadable {
                "1"
            } else {
                "0"
            });
        let _: i64 = self.invoke("declare lost", &invocation, false).await?;
        Ok(Event::Done)
    }

    pub(in crate::shared_tier) async fn reseed(
        &self,
        refresh_token: Secret,
    ) -> Result<(), TokenError> {
        let Upstream::Refreshing(source) = &self.upstream else {
            return Err(TokenError::permanent(
                "reseed is for a tier of rotating refresh tokens (build_refreshing)",
            ));
        };
        let epoch = nonce();
        let sealed = seal_refresh_token(&refresh_token, &self.identity, &epoch, 1, &self.keyring);
        let keys = &self.keys;
        let mut invocation = self.scripts.reseed.key(&keys.refresh);
        invocation
            .key(&keys.token)
            .key(&keys.lease)
            .key(&keys.failure)
            .arg(&epoch)
            .arg(self.keyring.sealing_id())
            .arg(sealed)
            .arg(millis(self.config.refresh_ttl))
            .arg(&keys.channel);
        // After the run under way, if any, and before the next one.
        let _turn = Arc::clone(&self.turn).lock_owned().await;
        let _: i64 = self
            .invoke("reseed", &invocation, false)
            .await
            .map_err(|f| TokenError::with_source(ErrorKind::Transient, "reseeding failed", f))?;
        {
            let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
            memory.chain = Some(ChainPos { epoch, seq: 1 });
            memory.restarts += 1;
        }
        source.adopt(&refresh_token, false).await;
        tracing::info!(namespace = %self.namespace, "shared tier: refresh-token chain reseeded");
        Ok(())
    }
}
