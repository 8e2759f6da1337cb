//! Step 1 of a run: what it makes of a read. A token the cache can use is
//! handed over; a rejected one still in Redis is dropped first; a failure
//! held for the fleet, or a redemption under way by a process gone quiet, is
//! answered; otherwise the run asks for the lease.

use std::time::Duration;

use tokio::time::Instant;

use super::action::Action;
use super::chain_check::ChainCheck;
use super::errors::{chain_lost, fleet_error};
use super::kind::Kind;
use super::request::Request;
use super::run::{Run, Step};
use super::snapshot::{SeenChain, Snapshot};
use crate::error::{ErrorKind, TokenError};
use crate::shared_tier::encryption::Unreadable;
use crate::shared_tier::entry::MarkRecord;
use crate::shared_tier::error::{ChainLoss, FleetError};
use crate::token::AccessToken;

impl Run {
    pub(super) fn on_read(&mut self, read: Snapshot, now: Instant) -> Action {
        let mut adopt = None;
        if self.kind == Kind::Refreshing {
            match self.check_chain(&read.chain) {
                ChainCheck::Fine(learnt) => adopt = learnt,
                ChainCheck::Fail(err) => return self.finish(Err(err)),
                ChainCheck::Declare(known, loss) => {
                    return self.go(Action::DeclareLost { known, loss }, Step::Declaring(loss))
                }
            }
        }
        let decision = self.decide(read, now);
        let Some(refresh_token) = adopt else {
            return decision;
        };
        // Tell the source the fleet's refresh token first, then carry on.
        let step = std::mem::replace(&mut self.step, Step::Queued);
        self.queue.push_front((decision, step));
        self.go(
            Action::Adopt {
                refresh_token,
                rotated_here: false,
            },
            Step::Queued,
        )
    }

    /// What to do with a read whose chain (if any) is fine.
    fn decide(&mut self, read: Snapshot, now: Instant) -> Action {
        if let Some(seen) = &read.token {
            match &seen.token {
                Ok(token) => {
                    if let Request::Replace(rejected) = &self.request {
                        if token.secret() == rejected.secret() && !self.invalidated {
                            self.invalidated = true;
                            return self.go(
                                Action::Invalidate {
                                    writer: seen.writer.clone(),
                                },
                                Step::Invalidating,
                            );
                        }
                    }
                    if self.acceptable(token, now) {
                        return self.finish(Ok(token.clone()));
                    }
                }
                Err(Unreadable::UnknownKey) => {
                    // A key rotation under way: not this process's entry to
                    // overwrite.
                    return match self.kind {
                        Kind::Plain if self.settings.local_fallback => self.go(
                            Action::Fetch {
                                replacing: self.replacing(),
                                fallback: true,
                            },
                            Step::Fetching { lease: None },
                        ),
                        _ => self.finish(Err(fleet_error(
                            ErrorKind::Transient,
                            FleetError::UnknownKey,
                            None,
                        ))),
                    };
                }
                // Not an entry that opens: replaced under the lease.
                Err(Unreadable::Tampered | Unreadable::Malformed) => {}
            }
        }
        if let Some((failure, left)) = &read.failure {
            return self.finish(Err(failure.to_error(*left)));
        }
        if let SeenChain::Present(link) = &read.chain {
            if let Some(mark) = &link.mark {
                if let Some(err) = self.pending(mark, read.lease.as_deref()) {
                    return self.finish(Err(err));
                }
            }
            if let Err(Unreadable::UnknownKey) = link.refresh_token {
                return self.finish(Err(fleet_error(
                    ErrorKind::Transient,
                    FleetError::UnknownKey,
                    None,
                )));
            }
        }
        let seen = read.token.as_ref().map(|t| t.writer.clone());
        self.go(Action::Acquire { seen }, Step::Acquiring(Box::new(read)))
    }

    /// Whether `token`, read from Redis, is one to hand the cache.
    pub(super) fn acceptable(&self, token: &AccessToken, now: Instant) -> bool {
        if !self.settings.margin.usable(token, now) {
            return false;
        }
        match (&self.request, &self.memory.handed) {
            // Not the rejected token, nor one older than it (it would
            // likely be rejected too, and be due soon anyway).
            (Request::Replace(rejected), _) => {
                token.secret() != rejected.secret() && later(token, rejected)
            }
            (Request::Fetch, None) => true,
            // The cache asks again: its token is due, or gone. Only a newer
            // one will do.
            (Request::Fetch, Some(handed)) => {
                token.secret() != handed.secret() && later(token, handed)
            }
        }
    }

    /// The error for a redemption under way by another lease, if this run
    /// must not wait for it: its holder stopped renewing.
    fn pending(&self, mark: &MarkRecord, lease: Option<&str>) -> Option<TokenError> {
        if mark.doubt {
            return Some(chain_lost(ChainLoss::InDoubt, None));
        }
        if lease == Some(mark.by.as_str()) {
            // Its holder is alive: wait for it under the lease.
            return None;
        }
        let age = Duration::from_millis(mark.age_ms);
        if age >= self.settings.doubt_after {
            return Some(chain_lost(ChainLoss::InDoubt, None));
        }
        let retry = (self.settings.doubt_after - age).min(self.settings.lease_ttl);
        Some(fleet_error(
            ErrorKind::Transient,
            FleetError::RedemptionPending,
            Some(retry),
        ))
    }
}

/// Whether `a` expires after `b` (a token that never expires is the latest).
fn later(a: &AccessToken, b: &AccessToken) -> bool {
    match (a.expires_at(), b.expires_at()) {
        (Some(a), Some(b)) => a > b,
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::super::test_support::{read, settings, token, S};
    use super::super::{Action, Event, Kind, Memory, Request, Run, SeenChain};

    /// Which entry a plain run hands out, and when it refreshes instead:
    /// decided by what the process holds, never by a refresh schedule.
    #[test]
    fn which_entry_is_handed_out() {
        let now = Instant::now();
        let hour = S(3600);
        let fresh = token("new", now, S(10), hour);
        let older = token("old", now, S(1000), hour);
        let nearly_gone = token("gone", now, S(3595), hour);
        // (what the process holds, what is asked, the entry, handed out?)
        let table = [
            (None, Request::Fetch, fresh.clone(), true),
            (None, Request::Fetch, nearly_gone.clone(), false),
            (Some(older.clone()), Request::Fetch, fresh.clone(), true),
            // Its own token back, or an older one (Redis went back): refresh.
            (Some(fresh.clone()), Request::Fetch, fresh.clone(), false),
            (Some(fresh.clone()), Request::Fetch, older.clone(), false),
            (None, Request::Replace(older.clone()), fresh.clone(), true),
            (None, Request::Replace(fresh.clone()), older.clone(), false),
        ];
        for (i, (handed, request, entry, served)) in table.into_iter().enumerate() {
            let memory = Memory {
                handed,
                ..Memory::default()
            };
            let mut run = Run::new(Kind::Plain, request, settings(), memory);
            assert!(matches!(run.step(Event::Start, now), Action::Read));
            let action = run.step(read(Some(entry), SeenChain::NotRead), now);
            match served {
                true => assert!(
                    matches!(action, Action::Answer(Ok(_))),
                    "row {i}: {action:?}"
                ),
                false => assert!(
                    matches!(action, Action::Acquire { .. } | Action::Invalidate { .. }),
                    "row {i}: {action:?}"
                ),
            }
        }
    }
}
