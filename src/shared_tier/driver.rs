//! Carries a [`Run`] out against Redis and the token source: each action of
//! the protocol becomes one script, one wait or one request, and its answer
//! the next event. Nothing here decides anything.
//!
//! A run goes on in the caller's task until it must finish
//! ([`Run::must_finish`]: it started a chain or a redemption, or it has a
//! token to write); from there it goes on in a task of its own, so that a
//! cache giving up on the fetch (its timeout) cannot leave a mark behind
//! with nobody to clear it, nor a fetched token unwritten. That task lives
//! on the caller's runtime: if the runtime goes, the mark stays, and the
//! fleet treats it as a process that died mid-redemption. Runs of one tier
//! take turns (`Inner::turn`), so that a run never reads what a run of its
//! own process is still changing.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use redis::{FromRedisValue, ScriptInvocation, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::entry::{
    millis, open_refresh_token, seal_refresh_token, ChainFields, ChainRecord, SealedToken,
    TokenFields, TokenRecord,
};
use super::error::{FleetError, RedisFailure};
use super::failure::HeldFailure;
use super::lease::Renewal;
use super::protocol::{
    retry_pause, Action, Bootstrapped, ChainPos, Committed, Event, Lease, LeaseAnswer, Redeemed,
    Request, Run, SeenChain, SeenLink, SeenToken, Snapshot, Verdict,
};
use super::redis_link::Connection;
use super::stats::Counters;
use super::tier::{Inner, Upstream};
use super::wait::Waiter;
use crate::cache::backoff;
use crate::error::{ErrorKind, TokenError};
use crate::oauth2::{ErrorCode, ExchangeError, OAuth2Error, TokenResponse};
use crate::secret::Secret;
use crate::source::TokenSource;
use crate::token::AccessToken;

/// What a run keeps while it is carried out.
#[derive(Default)]
struct Context {
    waiter: Waiter,
    renewal: Option<(Lease, Renewal)>,
    waited: bool,
}

impl Inner {
    /// A token for the cache.
    pub(super) async fn fetch(
        self: &Arc<Self>,
        request: Request,
    ) -> Result<AccessToken, TokenError> {
        Counters::bump(&self.stats.fetches);
        let turn = Arc::clone(&self.turn).lock_owned().await;
        let memory = self
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut run = Run::new(self.kind(), request, self.settings.clone(), memory);
        let mut context = Context::default();
        let mut event = Event::Start;
        loop {
            let action = self.step(&mut run, &mut context, event);
            if run.must_finish() {
                let (answer, answered) = oneshot::channel();
                tokio::spawn(Arc::clone(self).finish(run, context, action, answer, turn));
                return answered.await.unwrap_or_else(|_| {
                    Err(TokenError::transient(
                        "the shared tier's redemption ended without an answer (its runtime shut down)",
                    ))
                });
            }
            match action {
                Action::Answer(result) => {
                    // The caller gets it (this returns it): the run is over
                    // (a run that must go on was detached above).
                    self.step(&mut run, &mut context, Event::Answered(true));
                    return result;
                }
                Action::Finished => {
                    return Err(TokenError::transient(
                        "the shared tier's run ended without an answer",
                    ))
                }
                action => event = self.carry_out(action, &mut context).await,
            }
        }
    }

    /// Carries a run that must finish to its end, answering the cache on
    /// the way.
    async fn finish(
        self: Arc<Self>,
        mut run: Run,
        mut context: Context,
        mut action: Action,
        answer: oneshot::Sender<Result<AccessToken, TokenError>>,
        _turn: tokio::sync::OwnedMutexGuard<()>,
    ) {
        let mut answer = Some(answer);
        loop {
            let event = match action {
                Action::Finished => return,
                Action::Answer(result) => {
                    let delivered = answer
                        .take()
                        .is_some_and(|answer| answer.send(result).is_ok());
                    Event::Answered(delivered)
                }
                action => self.carry_out(action, &mut context).await,
            };
            action = self.step(&mut run, &mut context, event);
        }
    }

    /// One step of `run`; keeps the process's memory and the lease renewals
    /// up to date with it.
    fn step(self: &Arc<Self>, run: &mut Run, context: &mut Context, event: Event) -> Action {
        let answered_read = matches!(
            event,
            Event::Read(_) | Event::Lease(LeaseAnswer::Failed(..))
        );
        let action = run.step(event, Instant::now());
        // Runs take turns: what this one knows is all the process knows.
        run.memory()
            .clone_into(&mut self.memory.lock().unwrap_or_else(PoisonError::into_inner));
        let holding = run.holding();
        if context.renewal.as_ref().map(|(lease, _)| lease) != holding {
            context.renewal = holding.map(|lease| (lease.clone(), Renewal::start(self, lease)));
        }
        if answered_read {
            match &action {
                Action::Answer(Ok(_)) => Counters::bump(&self.stats.served_shared),
                Action::Answer(Err(err)) if is_held_failure(err) => {
                    Counters::bump(&self.stats.shared_failures)
                }
                _ => {}
            }
        }
        action
    }

    async fn carry_out(self: &Arc<Self>, action: Action, context: &mut Context) -> Event {
        let result = match action {
            Action::Read => self.read().await.map(|read| Event::Read(Box::new(read))),
            Action::Invalidate { writer } => self.invalidate(&writer).await,
            Action::Acquire { seen } => self.acquire(seen.as_deref()).await.map(Event::Lease),
            Action::Wait { bound } => {
                if !std::mem::replace(&mut context.waited, true) {
                    Counters::bump(&self.stats.waits);
                }
                let waited = context
                    .waiter
                    .wait(&self.link, &self.stats, &self.keys.channel, bound)
                    .await;
                waited.map(|()| Event::Done).map_err(|f| self.failed(f))
            }
            Action::Fetch {
                replacing,
                fallback,
            } => return Event::Fetched(self.fetch_upstream(replacing.as_ref(), fallback).await),
            Action::Write { lease, token } => self.write(&lease, &token).await,
            Action::Release { lease, failure } => self.release(&lease, failure.as_ref()).await,
            Action::Bootstrap { lease } => self.bootstrap(&lease).await,
            Action::Mark { lease, pos } => self.mark(&lease, &pos).await,
            Action::Redeem { refresh_token } => return self.redeem(&refresh_token).await,
            Action::Commit {
                lease,
                pos,
                refresh_token,
                token,
            } => self.commit(&lease, &pos, &refresh_token, &token).await,
            Action::Abort {
                lease,
                pos,
                verdict,
                failure,
            } => self.abort(&lease, &pos, verdict, failure.as_ref()).await,
            Action::DeclareLost { known, loss } => {
                tracing::error!(
                    namespace = %self.namespace,
                    loss = loss.code(),
                    "shared tier: the refresh-token chain may be lost; no refresh token that may \
                     have been spent is redeemed until the application reseeds"
                );
                self.declare_lost(&known, loss).await
            }
            Action::Adopt {
                refresh_token,
                rotated_here,
            } => {
                if let Upstream::Refreshing(source) = &self.upstream {
                    source.adopt(&refresh_token, rotated_here).await;
                }
                Ok(Event::Done)
            }
            Action::Pause { attempt } => {
                tokio::time::sleep(retry_pause(attempt, backoff::jitter())).await;
                Ok(Event::Done)
            }
            Action::Answer(_) | Action::Finished => unreachable!("not carried out"),
        };
        result.unwrap_or_else(Event::Failed)
    }

    async fn read(&self) -> Result<Snapshot, RedisFailure> {
        let refreshing = matches!(self.upstream, Upstream::Refreshing(_));
        let keys = &self.keys;
        let mut invocation = self.scripts.read.key(&keys.token);
        invocation
            .key(&keys.refresh)
            .key(&keys.failure)
            .key(&keys.lease)
            .arg(if refreshing { "1" } else { "0" });
        let read_at = Instant::now();
        let reply: Vec<Value> = self.invoke("read", &invocation, true).await?;
        let shape = || RedisFailure::Failed("read", "an answer the script never gives".into());
        if reply.len() != 20 {
            return Err(shape());
        }
        let server_now = int(&reply[0])
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(shape)?;
        let token_fields: TokenFields = std::array::from_fn(|i| bytes(&reply[2 + i]));
        let token =
            match TokenRecord::parse(&token_fields, server_now, int(&reply[1]).unwrap_or(-2)) {
                Ok(None) => None,
                Ok(Some(record)) => Some(SeenToken {
                    writer: record.writer.clone().into_bytes(),
                    token: record.open(&self.keyring, &self.identity, self.dpop.as_ref(), read_at),
                }),
                Err(why) => Some(SeenToken {
                    writer: token_fields[1].clone().unwrap_or_default(),
                    token: Err(why),
                }),
            };
        if let Some(SeenToken {
            token: Err(why), ..
        }) = &token
        {
            tracing::warn!(
                namespace = %self.namespace,
                "shared tier: the token entry in Redis is {}; it is not used",
                why.as_str()
            );
        }
        let chain = if refreshing {
            let fields: ChainFields = std::array::from_fn(|i| bytes(&reply[8 + i]));
            self.open_chain(ChainRecord::parse(&fields, server_now))
        } else {
            SeenChain::NotRead
        };
        let failure = match (bytes(&reply[17]), int(&reply[18])) {
            (Some(stored), Some(left)) if left > 0 => Some((
                HeldFailure::decode(&stored),
                Duration::from_millis(left.unsigned_abs()),
            )),
            // Without a time to live it is ignored (and dropped by the next
            // lease attempt): it would stop the fleet for good.
            _ => None,
        };
        let lease = bytes(&reply[19]).map(|l| String::from_utf8_lossy(&l).into_owned());
        Ok(Snapshot {
            token,
            chain,
            failure,
            lease,
        })
    }

    fn open_chain(&self, record: ChainRecord) -> SeenChain {
        match record {
            ChainRecord::Absent => SeenChain::Absent,
            ChainRecord::Lost(loss) => SeenChain::Lost(loss),
            ChainRecord::Present {
                epoch,
                seq,
                origin,
                key_id,
                sealed,
                mark,
            } => SeenChain::Present(SeenLink {
                refresh_token: open_refresh_token(
                    &self.keyring,
                    &key_id,
                    &sealed,
                    &self.identity,
                    &epoch,
                    seq,
                ),
                pos: ChainPos { epoch, seq },
                origin,
                mark,
            }),
        }
    }

    async fn invalidate(&self, writer: &[u8]) -> Result<Event, RedisFailure> {
        let mut invocation = self.scripts.invalidate.key(&self.keys.token);
        invocation.arg(writer);
        let dropped: i64 = self.invoke("invalidate", &invocation, false).await?;
        if dropped == 1 {
            Counters::bump(&self.stats.invalidations);
            tracing::info!(namespace = %self.namespace, "shared tier: rejected token dropped from Redis");
        }
        Ok(Event::Done)
    }

    async fn acquire(&self, seen: Option<&[u8]>) -> Result<LeaseAnswer, RedisFailure> {
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

    async fn fetch_upstream(
        &self,
        replacing: Option<&AccessToken>,
        fallback: bool,
    ) -> Result<AccessToken, TokenError> {
        let Upstream::Source(source) = &self.upstream else {
            unreachable!("a refreshing tier redeems, it never fetches");
        };
        if fallback {
            Counters::bump(&self.stats.fallbacks);
            tracing::warn!(
                namespace = %self.namespace,
                "shared tier: Redis cannot be used; fetching for this process only"
            );
        }
        match replacing {
            Some(rejected) => source.fetch_replacing(rejected).await,
            None => source.fetch().await,
        }
    }

    fn seal(&self, token: &AccessToken, lease: &Lease) -> Option<SealedToken> {
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

    async fn write(&self, lease: &Lease, token: &AccessToken) -> Result<Event, RedisFailure> {
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

    async fn release(
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

    async fn bootstrap(&self, lease: &Lease) -> Result<Event, RedisFailure> {
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

    async fn mark(&self, lease: &Lease, pos: &ChainPos) -> Result<Event, RedisFailure> {
        let mut invocation = self.scripts.mark.key(&self.keys.refresh);
        invocation
            .key(&self.keys.lease)
            .arg(lease.value())
            .arg(&pos.epoch)
            .arg(pos.seq);
        let marked: i64 = self.invoke("mark", &invocation, false).await?;
        Ok(Event::Marked(marked == 1))
    }

    async fn redeem(&self, refresh_token: &Secret) -> Event {
        let Upstream::Refreshing(source) = &self.upstream else {
            unreachable!("only a refreshing tier redeems");
        };
        Counters::bump(&self.stats.redemptions);
        Event::Redeemed(redeemed(refresh_token, source.redeem(refresh_token).await))
    }

    async fn commit(
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

    async fn abort(
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

    async fn declare_lost(
        &self,
        known: &ChainPos,
        loss: super::error::ChainLoss,
    ) -> Result<Event, RedisFailure> {
        let mut invocation = self.scripts.declare_lost.key(&self.keys.refresh);
        invocation
            .arg(&known.epoch)
            .arg(known.seq)
            .arg(loss.code())
            .arg(millis(self.config.refresh_ttl))
            .arg(if loss == super::error::ChainLoss::Unreadable {
                "1"
            } else {
                "0"
            });
        let _: i64 = self.invoke("declare lost", &invocation, false).await?;
        Ok(Event::Done)
    }

    pub(super) async fn reseed(&self, refresh_token: Secret) -> Result<(), TokenError> {
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

    /// Runs a script on the kept connection (or a new one), unless Redis is
    /// being backed off from. `retry`: the script only reads, so a kept
    /// connection that died with the runtime that opened it may be replaced
    /// and the script sent again.
    async fn invoke<T: FromRedisValue>(
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
    fn failed(&self, failure: RedisFailure) -> RedisFailure {
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
fn token_args(invocation: &mut ScriptInvocation<'_>, sealed: Option<&SealedToken>) {
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

/// What the token endpoint's answer to a redemption says of the refresh
/// token presented: refused before use (an error response other than
/// `invalid_grant`, a connection refused, a certificate refused), spent
/// or revoked (`invalid_grant`), or unknown (no answer, a timeout, a
/// connection lost after the request went out, a response that could not
/// be read, a server error that may have come after the rotation).
pub(super) fn redeemed(presented: &Secret, answer: Result<TokenResponse, TokenError>) -> Redeemed {
    let err = match answer {
        Ok(response) => {
            return Redeemed::Rotated {
                token: response.to_access_token(),
                refresh_token: response
                    .refresh_token()
                    .cloned()
                    .unwrap_or_else(|| presented.clone()),
            }
        }
        Err(err) => err,
    };
    let cause = err.cause();
    let verdict = if let Some(oauth) = cause.and_then(|c| c.downcast_ref::<OAuth2Error>()) {
        match (oauth.code(), oauth.status()) {
            (ErrorCode::InvalidGrant, _) => Verdict::Lost(super::error::ChainLoss::Refused),
            // A 500 may come after the server rotated and failed to answer.
            (_, Some(status)) if status.is_server_error() && status.as_u16() != 503 => {
                Verdict::InDoubt
            }
            _ => Verdict::NotConsumed,
        }
    } else if let Some(exchange) = cause.and_then(|c| c.downcast_ref::<ExchangeError>()) {
        match exchange {
            ExchangeError::Transport(inner) if refused_connection(inner.cause()) => {
                Verdict::NotConsumed
            }
            ExchangeError::Certificate(_) => Verdict::NotConsumed,
            ExchangeError::UnexpectedResponse { status, .. }
            | ExchangeError::ResponseTooLarge { status, .. }
                if status.is_client_error() || status.as_u16() == 503 =>
            {
                Verdict::NotConsumed
            }
            _ => Verdict::InDoubt,
        }
    } else {
        Verdict::InDoubt
    };
    Redeemed::Failed(verdict, err)
}

/// Whether the request never left: the connection was refused.
fn refused_connection(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        next = err.source();
    }
    false
}

fn is_held_failure(err: &TokenError) -> bool {
    matches!(
        err.cause().and_then(|c| c.downcast_ref::<FleetError>()),
        Some(FleetError::HeldFailure(_))
    )
}

/// 64 random bits, in hex: a lease's nonce, a chain's epoch.
fn nonce() -> String {
    let mut bytes = [0u8; 8];
    // Without the OS's randomness nothing here can be made safe; it never
    // fails on the platforms tokio supports.
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}
