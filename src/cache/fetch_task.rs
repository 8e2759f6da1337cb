//! The one place where an entry gets a token: a fetch, detached from every
//! caller, through the endpoint's gate.

use std::sync::Arc;

use tokio::time::Instant;

use super::decide::FetchReason;
use super::entry::{Entry, Outcome};
use super::flight::{Stage, Ticket};
use super::metrics;
use super::stats::FetchOutcome;
use crate::token::AccessToken;

/// Runs one fetch to completion, detached from every caller: the one place
/// where an entry gets a token, so that a shared tier can wrap it.
///
/// With a gate, the fetch first waits for its turn here, inside its own task:
/// the callers that need it have joined it already, so the key stays
/// single-flight however long the queue. A fetch whose turn comes while the
/// endpoint is paused fails without asking it.
pub(super) async fn fetch_task(
    ticket: Ticket<Outcome, Entry>,
    reason: FetchReason,
    replacing: Option<AccessToken>,
) {
    let entry = Arc::clone(ticket.owner());
    let gate = entry.common.gate.as_ref();
    let turn = match gate {
        Some(gate) => Some(gate.admit(|| ticket.reached(Stage::Queued)).await),
        None => None,
    };
    let paused = gate.and_then(|gate| Some((gate, gate.paused(Instant::now())?)));
    let result = match paused {
        Some((gate, (until, error))) => {
            gate.held_back();
            Err(error.with_retry_after(until.saturating_duration_since(Instant::now())))
        }
        None => {
            ticket.reached(Stage::Running);
            tracing::debug!("fetching token");
            let started = Instant::now();
            let result = entry.fetch_from_source(replacing.as_ref()).await;
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
