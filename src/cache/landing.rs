//! What becomes of a finished fetch: its token checked, given its header
//! value and schedule, and installed; or its failure recorded with the
//! backoff before the next fetch. A refresh never makes things worse: a
//! token that is still valid stays in use when its replacement fails.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use http::HeaderValue;
use tokio::time::Instant;

use super::backoff;
use super::cached_token::CachedToken;
use super::current_token::Generation;
use super::decide::{later, FetchReason};
use super::entry::{Entry, Failing, Outcome, SlowState, USED};
use super::metrics;
use super::schedule::Schedule;
use super::stats::Event;
use crate::error::{CacheError, Chain, TokenError};
use crate::token::{AccessToken, Expiry};

impl Entry {
    /// Installs a fetched token or records a failure; frees the slot.
    pub(super) fn complete(
        &self,
        id: u64,
        reason: FetchReason,
        result: Result<AccessToken, TokenError>,
    ) -> Outcome {
        let now = Instant::now();
        let prepared = result.and_then(|token| self.prepare(token, reason, id, now));
        let mut slow = self.lock_slow();
        slow.flights.end(id);
        let still_valid = self.current.load_full().filter(|c| c.still_valid());
        match prepared {
            Ok(token) if id < slow.installed_fetch => {
                // A fetch given up as stalled finished after a newer one.
                Ok(still_valid.unwrap_or(token))
            }
            Ok(token) if token.too_short => {
                self.count(Event::FetchFailure);
                let delay =
                    self.record_failure(&mut slow, CacheError::TokenTooShortLived.into(), now);
                // A refresh must never make things worse: keep a token that is
                // still valid. Without one, hand this one to the waiters if it
                // has not expired: it is the freshest there is.
                if let Some(current) = still_valid {
                    current.serve_until_retry(delay);
                    return Ok(current);
                }
                if !token.still_valid() {
                    return Err(CacheError::TokenTooShortLived.into());
                }
                self.install(&mut slow, &token);
                Ok(token)
            }
            Ok(token) => {
                slow.failing = None;
                self.install(&mut slow, &token);
                Ok(token)
            }
            Err(err) => {
                self.count(Event::FetchFailure);
                let delay = self.record_failure(&mut slow, err.clone(), now);
                if let Some(current) = still_valid {
                    current.serve_until_retry(delay);
                }
                Err(err)
            }
        }
    }

    pub(super) fn install(&self, slow: &mut SlowState, token: &Arc<CachedToken>) {
        // A token replaced for age, not for a rejection, lived out its life:
        // the run of replacements is over.
        let replaced_rejected = self
            .current
            .load()
            .as_deref()
            .is_some_and(CachedToken::is_rejected);
        if token.reason != FetchReason::Rejected && !replaced_rejected {
            slow.replacements = 0;
        }
        slow.installed_at = Some(Instant::now());
        slow.installed_fetch = token.fetch;
        // Keeps the use bit, which a lookup may set meanwhile.
        let _ = self
            .unconfirmed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                Some(word & USED | token.generation.0)
            });
        self.current.store(Some(Arc::clone(token)));
        let expires_in = match token.expiry() {
            Expiry::At(at) => Some(at.saturating_duration_since(Instant::now())),
            Expiry::Unknown => self.common.config.default_lifetime,
            Expiry::Never => None,
        };
        metrics::token_installed(&self.common.config.name, expires_in);
        tracing::debug!(
            generation = %token.generation,
            reason = token.reason.as_str(),
            too_short = token.too_short,
            "token installed"
        );
    }

    /// Records a failed fetch; returns the backoff before the next one.
    pub(super) fn record_failure(
        &self,
        slow: &mut SlowState,
        err: TokenError,
        now: Instant,
    ) -> Duration {
        let failures = slow
            .failing
            .as_ref()
            .map_or(0, |f| f.failures)
            .saturating_add(1);
        let delay =
            backoff::delay_after_failure(failures, &err, &self.common.config, backoff::jitter());
        tracing::warn!(
            error = %Chain(&err),
            kind = ?err.kind(),
            failures,
            backoff_ms = delay.as_millis() as u64,
            "token fetch failed; backing off"
        );
        slow.failing = Some(Box::new(Failing {
            failures,
            backoff_until: later(now, delay),
            last_error: err,
        }));
        delay
    }

    /// Checks a fetched token and builds its header value and schedule.
    pub(super) fn prepare(
        &self,
        token: AccessToken,
        reason: FetchReason,
        fetch: u64,
        now: Instant,
    ) -> Outcome {
        let secret = token.secret();
        let config = &self.common.config;
        let max = config.max_token_bytes;
        if secret.len() > max {
            return Err(CacheError::TokenTooLarge {
                len: secret.len(),
                max,
            }
            .into());
        }
        // A DPoP-bound token goes as `DPoP <token>` (RFC 9449 §7.1).
        let scheme = match token.dpop() {
            Some(_) => "DPoP",
            None => config.auth_scheme.as_str(),
        };
        let mut buf = BytesMut::with_capacity(scheme.len() + 1 + secret.len());
        buf.put_slice(scheme.as_bytes());
        buf.put_u8(b' ');
        buf.put_slice(secret.as_bytes());
        let mut header = HeaderValue::from_maybe_shared(buf.freeze())
            .map_err(|_| TokenError::from(CacheError::TokenNotHeaderSafe))?;
        header.set_sensitive(true);
        let schedule = Schedule::for_token(&token, now, config, backoff::jitter());
        let generation = Generation(self.common.generations.fetch_add(1, Ordering::Relaxed) + 1);
        Ok(Arc::new(CachedToken::new(
            header,
            generation,
            token,
            reason,
            fetch,
            &schedule,
            schedule.too_short(config),
        )))
    }
}
