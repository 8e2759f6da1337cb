//! The one place where an entry gets a token: a fetch, detached from every
//! caller, through the endpoint's gate, bounded by the fetch timeout.

use std::sync::Arc;

use tokio::time::Instant;

use super::decide::FetchReason;
use super::entry::{Entry, Outcome, Replacing};
use super::flight::{CatchPanic, Stage, Ticket};
use super::metrics;
use super::stats::FetchOutcome;
use super::timer;
use crate::error::{CacheError, TokenError};
use crate::source::TokenSource;
use crate::token::AccessToken;

// An `impl Entry` here, so that the entry, which spawns the fetch, need not
// import this file.
impl Entry {
    /// Runs one fetch to completion, detached from every caller: the one place
    /// where an entry gets a token, so that a shared tier can wrap it.
    ///
    /// With a gate, the fetch first waits for its turn here, inside its own task:
    /// the callers that need it have joined it already, so the key stays
    /// single-flight however long the queue. The wait is bounded by the fetch
    /// timeout. A fetch whose turn comes while the endpoint is paused fails
    /// without asking it.
    pub(super) async fn fetch_task(
        ticket: Ticket<Outcome, Entry>,
        reason: FetchReason,
        replacing: Option<Replacing>,
    ) {
        let entry = Arc::clone(ticket.owner());
        let gate = entry.common.gate.as_ref();
        let fetch_timeout = entry.common.config.fetch_timeout;
        let turn = match gate {
            Some(gate) => Some(
                gate.admit(fetch_timeout, || ticket.reached(Stage::Queued))
                    .await,
            ),
            None => None,
        };
        let paused = gate.and_then(|gate| Some((gate, gate.paused(Instant::now())?)));
        let result = match (turn.as_ref(), paused) {
            (Some(Err(busy)), _) => Err(TokenError::from(busy.clone())),
            (_, Some((gate, until))) => {
                gate.held_back();
                Err(TokenError::from(CacheError::EndpointPaused)
                    .with_retry_after(until.saturating_duration_since(Instant::now())))
            }
            _ => {
                ticket.reached(Stage::Running);
                tracing::debug!("fetching token");
                let started = Instant::now();
                let result = fetch_from_source(&entry, replacing.as_ref()).await;
                metrics::fetch_finished(
                    &entry.common.config.name,
                    reason,
                    FetchOutcome::of(&result),
                    started.elapsed(),
                );
                if let Some(gate) = gate {
                    gate.observe(result.as_ref().map(|_| ()), Instant::now());
                }
                result
            }
        };
        drop(turn);
        let outcome = entry.complete(ticket.id, reason, result);
        ticket.deliver(outcome);
    }
}

/// Calls the source once, bounded by the fetch timeout, a panic caught.
async fn fetch_from_source(
    entry: &Entry,
    replacing: Option<&Replacing>,
) -> Result<AccessToken, TokenError> {
    let fetch = async {
        match replacing {
            Some(Replacing {
                token,
                ask: Some(ask),
            }) => entry.source.fetch_asking(token, ask).await,
            Some(Replacing { token, ask: None }) => entry.source.fetch_replacing(token).await,
            None => entry.source.fetch().await,
        }
    };
    let bounded = timer::timeout(entry.common.config.fetch_timeout, CatchPanic::new(fetch))?;
    match bounded.await {
        Ok(Ok(result)) => result,
        Ok(Err(())) => Err(CacheError::SourcePanicked.into()),
        Err(_) => Err(CacheError::FetchTimedOut.into()),
    }
}
