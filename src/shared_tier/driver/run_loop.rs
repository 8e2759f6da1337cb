//! How a run is carried out: in the caller's task until it must finish,
//! then in a task of its own; each action handed to the part that carries
//! it out, each answer given back to the run as its next event.

use std::sync::{Arc, PoisonError};

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::lease_renewal::Renewal;
use super::waiter::Waiter;
use crate::cache::backoff;
use crate::error::TokenError;
use crate::shared_tier::error::FleetError;
use crate::shared_tier::protocol::{retry_pause, Action, Event, Lease, LeaseAnswer, Request, Run};
use crate::shared_tier::stats::Counters;
use crate::shared_tier::tier::{Inner, Upstream};
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
    pub(in crate::shared_tier) async fn fetch(
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
}

fn is_held_failure(err: &TokenError) -> bool {
    matches!(
        err.cause().and_then(|c| c.downcast_ref::<FleetError>()),
        Some(FleetError::HeldFailure(_))
    )
}
