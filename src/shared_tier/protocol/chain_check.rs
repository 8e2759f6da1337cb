//! Step 4 of a run, for a refreshing tier: the chain as read, held against
//! the furthest place in it this process has seen. A chain that is gone, or
//! back at an older place, means the refresh token this process would
//! present may be spent: the loss is recorded, and nothing is redeemed.

use super::chain_pos::ChainPos;
use super::errors::chain_lost;
use super::run::Run;
use super::snapshot::SeenChain;
use crate::error::TokenError;
use crate::secret::Secret;
use crate::shared_tier::encryption::Unreadable;
use crate::shared_tier::entry::Origin;
use crate::shared_tier::error::ChainLoss;

/// What the chain as read says.
pub(super) enum ChainCheck {
    /// Carry on; tell the source this refresh token if given (it is the
    /// fleet's current one, newly seen).
    Fine(Option<Secret>),
    Fail(TokenError),
    Declare(ChainPos, ChainLoss),
}

impl Run {
    /// Checks the chain as read against what this process has seen, and
    /// learns from it.
    pub(super) fn check_chain(&mut self, chain: &SeenChain) -> ChainCheck {
        let known = self.memory.chain.clone();
        match chain {
            SeenChain::NotRead => ChainCheck::Fine(None),
            SeenChain::Lost(loss) => ChainCheck::Fail(chain_lost(*loss, None)),
            SeenChain::Absent => match known {
                Some(known) => ChainCheck::Declare(known, ChainLoss::Forgotten),
                None => ChainCheck::Fine(None),
            },
            SeenChain::Present(link) => {
                let refresh_token = match &link.refresh_token {
                    Ok(refresh_token) => refresh_token,
                    Err(Unreadable::UnknownKey) => return ChainCheck::Fine(None),
                    Err(Unreadable::Tampered | Unreadable::Malformed) => {
                        return match known {
                            Some(known) => ChainCheck::Declare(known, ChainLoss::Unreadable),
                            None => ChainCheck::Fail(chain_lost(ChainLoss::Unreadable, None)),
                        }
                    }
                };
                if let Some(known) = known {
                    if known.epoch == link.pos.epoch {
                        if link.pos.seq < known.seq {
                            return ChainCheck::Declare(known, ChainLoss::RolledBack);
                        }
                        if link.pos.seq == known.seq {
                            return ChainCheck::Fine(None);
                        }
                    } else if link.origin == Origin::Bootstrap {
                        // The chain this process knew is gone, and another
                        // process started one from its own refresh token,
                        // which may well have been spent long ago.
                        return ChainCheck::Declare(known, ChainLoss::Forgotten);
                    } else {
                        // Reseeded by the application: a new chain.
                        self.memory.restarts += 1;
                    }
                }
                self.memory.chain = Some(link.pos.clone());
                ChainCheck::Fine(Some(refresh_token.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::super::test_support::{answered_with, lease, link, loss_of, read, settings};
    use super::super::{
        Action, ChainPos, Event, Kind, LeaseAnswer, Memory, Request, Run, SeenChain,
    };
    use crate::shared_tier::entry::MarkRecord;
    use crate::shared_tier::error::{ChainLoss, FleetError};

    /// What a refreshing run does with the chain it reads, given what the
    /// process has seen.
    #[test]
    fn what_the_chain_says() {
        let now = Instant::now();
        let seen = |seq| ChainPos {
            epoch: "e1".into(),
            seq,
        };
        let mark = |by: &str, age_ms, doubt| {
            Some(MarkRecord {
                by: by.into(),
                age_ms,
                doubt,
            })
        };
        // (known place, the chain read) -> the loss declared, or the error.
        let declared = [
            (Some(seen(3)), SeenChain::Absent, ChainLoss::Forgotten),
            (Some(seen(3)), link("e1", 2, None), ChainLoss::RolledBack),
        ];
        for (known, chain, want) in declared {
            let memory = Memory {
                chain: known,
                ..Memory::default()
            };
            let mut run = Run::new(Kind::Refreshing, Request::Fetch, settings(), memory);
            run.step(Event::Start, now);
            let action = run.step(read(None, chain), now);
            assert!(
                matches!(action, Action::DeclareLost { loss, .. } if loss == want),
                "{action:?}"
            );
            let err = run.step(Event::Done, now);
            assert_eq!(
                loss_of(answered_with(&err).unwrap_err()),
                Some(&FleetError::ChainLost(want))
            );
        }
        let errors = [
            (
                SeenChain::Lost(ChainLoss::Refused),
                FleetError::ChainLost(ChainLoss::Refused),
            ),
            // Marked by a lease that is not renewed: pending, then in doubt.
            (
                link("e1", 3, mark("9:x", 1_000, false)),
                FleetError::RedemptionPending,
            ),
            (
                link("e1", 3, mark("9:x", 121_000, false)),
                FleetError::ChainLost(ChainLoss::InDoubt),
            ),
            (
                link("e1", 3, mark("9:x", 1, true)),
                FleetError::ChainLost(ChainLoss::InDoubt),
            ),
        ];
        for (chain, want) in errors {
            let memory = Memory {
                chain: Some(seen(3)),
                ..Memory::default()
            };
            let mut run = Run::new(Kind::Refreshing, Request::Fetch, settings(), memory);
            run.step(Event::Start, now);
            let action = run.step(read(None, chain), now);
            assert_eq!(loss_of(answered_with(&action).unwrap_err()), Some(&want));
        }
        // Nothing known, nothing in Redis: start the chain under the lease.
        let mut run = Run::new(
            Kind::Refreshing,
            Request::Fetch,
            settings(),
            Memory::default(),
        );
        run.step(Event::Start, now);
        run.step(read(None, SeenChain::Absent), now);
        let action = run.step(Event::Lease(LeaseAnswer::Granted(lease())), now);
        assert!(matches!(action, Action::Bootstrap { .. }));
        assert!(run.must_finish());
    }
}
