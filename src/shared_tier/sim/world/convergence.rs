//! The end of a seed: once faults have stopped, the fleet must converge
//! (invariant 4), and every key written must expire (invariant 6).

use super::super::store::ChainValue;
use super::parameters::{DOUBT_AFTER, LIFE};
use super::provider::refresh_index;
use super::state::World;
use crate::shared_tier::protocol::{Kind, Request};

impl World {
    /// Invariant 4: Redis holds the newest token, and every replica that
    /// does not hold it already gets it when it asks; or the chain is lost,
    /// for a reason, and every replica says so once its token has expired.
    pub(super) fn converge(&mut self) {
        self.runs.clear();
        for replica in &mut self.replicas {
            replica.stalled_until = 0;
        }
        for i in 0..3 {
            let keys = self.idents[i].keys.clone();
            let read = self.store.read(&keys, true, self.now);
            let stored = read.token.map(|(t, _)| t.secret);
            let healthy = match (self.idents[i].kind, &read.chain) {
                (Kind::Plain, _) => true,
                (
                    Kind::Refreshing,
                    Some(ChainValue::Present {
                        refresh_token,
                        mark: None,
                        doubt: false,
                        ..
                    }),
                ) => {
                    !self.provider.revoked
                        && refresh_index(refresh_token, self.idents[i].tag)
                            == self.provider.current_refresh
                }
                _ => false,
            };
            if healthy {
                if self.idents[i].kind == Kind::Refreshing {
                    self.outcome.healthy_chains += 1;
                }
                self.converge_on(i, stored);
            } else {
                self.outcome.chain_losses += 1;
                if !(self.provider.revoked || self.provider.in_doubt || self.chain_record_lost) {
                    self.violation(format!(
                        "the chain is lost though the endpoint accepts {:?} and nothing was lost",
                        self.provider.current_refresh
                    ));
                }
                self.all_say_lost(i);
            }
        }
    }

    fn converge_on(&mut self, i: usize, stored: Option<String>) {
        let newest = format!("{}-{}", self.idents[i].tag, self.provider.issued[i]);
        if stored.as_ref() != Some(&newest) {
            self.violation(format!(
                "identity {}: Redis holds {stored:?}, the newest is {newest}",
                self.idents[i].tag
            ));
            return;
        }
        let issued = self.provider.issued[i];
        for r in 0..self.replicas.len() {
            let held = self.replicas[r].caches[i]
                .token
                .as_ref()
                .map(|t| t.secret().to_owned());
            if !self.replicas[r].alive || held.as_ref() == Some(&newest) {
                continue;
            }
            self.last_fetch(r, i);
            let last = self.replicas[r].caches[i].last.clone();
            if last != Some(Ok(newest.clone())) || self.provider.issued[i] != issued {
                self.violation(format!(
                    "identity {}: r{r} held {held:?} and then got {last:?}; Redis holds the newest, {newest}",
                    self.idents[i].tag
                ));
            }
        }
    }

    fn all_say_lost(&mut self, i: usize) {
        // Every token handed out expires, and redemptions in doubt are past
        // doubting.
        self.now += LIFE + DOUBT_AFTER;
        for r in 0..self.replicas.len() {
            if !self.replicas[r].alive {
                continue;
            }
            self.last_fetch(r, i);
            let last = self.replicas[r].caches[i].last.clone();
            if !matches!(last, Some(Err(Some(_)))) {
                self.violation(format!(
                    "identity {}: the chain is lost, but r{r}'s last fetch got {last:?}",
                    self.idents[i].tag
                ));
            }
        }
    }

    fn last_fetch(&mut self, r: usize, i: usize) {
        self.replicas[r].caches[i].fetching = None;
        let run = self.start(r, i, Request::Fetch, false);
        self.pump(u64::MAX, |world| !world.runs.contains_key(&run));
        if self.runs.contains_key(&run) {
            self.violation(format!("r{r} {i}: the last run never ended"));
        }
    }

    /// Invariant 6.
    pub(super) fn check_expiries(&mut self) {
        for key in self.store.written_forever() {
            self.violation(format!("{key} never expires"));
        }
    }
}
