//! The cache's events pushed through the `metrics` facade (feature
//! `metrics`), labelled with the cache's name; without the feature every
//! function here is empty and compiles away.
//!
//! | metric | kind | labels | what |
//! | --- | --- | --- | --- |
//! | `tower_bearer_fetches_total` | counter | `cache`, `reason`, `outcome` | finished calls to the token source |
//! | `tower_bearer_fetch_duration_seconds` | histogram | `cache`, `reason`, `outcome` | how long each took |
//! | `tower_bearer_waits_total` | counter | `cache` | callers that waited for a fetch |
//! | `tower_bearer_invalidations_total` | counter | `cache` | tokens dropped after a rejection |
//! | `tower_bearer_retries_total` | counter | `cache` | requests sent again with a fresh token |
//! | `tower_bearer_paced_rejections_total` | counter | `cache` | rejections returned without a replay because the replacement was paced |
//! | `tower_bearer_token_expires_in_seconds` | gauge | `cache` | the current token's life when it was installed, 0 once rejected |
//! | `tower_bearer_token_expiry_timestamp_seconds` | gauge | `cache` | when the current token expires (Unix time) |
//!
//! `reason`: `empty`, `expired`, `refresh_ahead`, `rejected`, or `unknown`
//! for a fetch abandoned before it reported. `outcome`: `ok`,
//! `transient_error`, `permanent_error`, `timeout` (the cache's fetch
//! timeout cut it), `panicked`, `abandoned`. Every call happens off the hot
//! path, where the cache already counts the event for
//! [`TokenCache::stats`](super::TokenCache::stats).

#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

use std::sync::Arc;
use std::time::Duration;

use super::decide::FetchReason;
use super::stats::{Event, FetchOutcome};

/// One counted event of the cache named `cache`.
pub(super) fn event(cache: &Arc<str>, event: Event) {
    #[cfg(feature = "metrics")]
    {
        let name = match event {
            // Fetches are reported when they finish, with their outcome.
            Event::Fetch | Event::RefreshAhead | Event::FetchFailure => return,
            Event::Invalidation => "tower_bearer_invalidations_total",
            Event::Wait => "tower_bearer_waits_total",
            Event::Retry => "tower_bearer_retries_total",
            Event::Paced => "tower_bearer_paced_rejections_total",
        };
        metrics::counter!(name, "cache" => Arc::clone(cache)).increment(1);
        if event == Event::Invalidation {
            // No usable token until the next one is installed.
            metrics::gauge!("tower_bearer_token_expires_in_seconds", "cache" => Arc::clone(cache))
                .set(0.0);
        }
    }
}

/// A call to the token source ended after `took`.
pub(super) fn fetch_finished(
    cache: &Arc<str>,
    reason: FetchReason,
    outcome: FetchOutcome,
    took: Duration,
) {
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("cache", metrics::SharedString::from(Arc::clone(cache))),
            ("reason", reason.as_str().into()),
            ("outcome", outcome.as_str().into()),
        ];
        metrics::counter!("tower_bearer_fetches_total", &labels).increment(1);
        metrics::histogram!("tower_bearer_fetch_duration_seconds", &labels)
            .record(took.as_secs_f64());
    }
}

/// A fetch ended without a result (its task was dropped or stalled).
pub(super) fn fetch_abandoned(cache: &Arc<str>) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_bearer_fetches_total",
        "cache" => Arc::clone(cache),
        "reason" => "unknown",
        "outcome" => FetchOutcome::Abandoned.as_str()
    )
    .increment(1);
}

/// A token with `expires_in` of life left was installed (`None`: it never
/// expires).
pub(super) fn token_installed(cache: &Arc<str>, expires_in: Option<Duration>) {
    #[cfg(feature = "metrics")]
    if let Some(left) = expires_in {
        metrics::gauge!("tower_bearer_token_expires_in_seconds", "cache" => Arc::clone(cache))
            .set(left.as_secs_f64());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        metrics::gauge!("tower_bearer_token_expiry_timestamp_seconds", "cache" => Arc::clone(cache))
            .set((now + left).as_secs_f64());
    }
}
