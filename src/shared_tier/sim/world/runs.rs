//! The runs: each stepped until it waits for something, as the driver does;
//! its lease renewed while it holds one; what it adopts checked.

use std::time::Duration;

use super::events::Ev;
use super::parameters::{LEASE_TTL, LIFE};
use super::provider::refresh_index;
use super::state::World;
use super::trace::describe;
use crate::shared_tier::protocol::{retry_pause, Action, Event, Lease};

impl World {
    /// Steps a run until it waits for something.
    pub(super) fn advance(&mut self, id: u64, mut event: Event) {
        loop {
            let Some(sim) = self.runs.get_mut(&id) else {
                return;
            };
            let (r, i) = (sim.replica, sim.ident);
            let local = self.base + self.replicas[r].offset + Duration::from_millis(self.now);
            let action = sim.run.step(event, local);
            self.replicas[r].memory[i].clone_from(sim.run.memory());
            let holding = sim.run.holding().map(Lease::value);
            if holding != sim.renewing {
                sim.renewing.clone_from(&holding);
                if let Some(lease) = holding {
                    self.at(self.now + LEASE_TTL / 3, Ev::Renew(id, lease));
                }
            }
            self.trace(|| format!("r{r} {i}: run {id} -> {}", describe(&action)));
            event = match action {
                Action::Finished => {
                    self.remove_run(id);
                    return;
                }
                Action::Answer(result) => Event::Answered(self.answered(id, result)),
                Action::Adopt {
                    refresh_token,
                    rotated_here,
                } => {
                    self.adopted(r, i, refresh_token.expose(), rotated_here);
                    Event::Done
                }
                action @ (Action::Fetch { .. } | Action::Redeem { .. }) => {
                    self.call_provider(id, action);
                    return;
                }
                Action::Wait { bound } => {
                    let waiting = self.wait_for(id);
                    self.runs.get_mut(&id).expect("a live run").listening = true;
                    self.at(self.now + bound.as_millis() as u64, Ev::Wake(id, waiting));
                    return;
                }
                Action::Pause { attempt } => {
                    let pause = retry_pause(attempt, self.rng.unit()).as_millis() as u64;
                    let waiting = self.wait_for(id);
                    self.at(self.now + pause, Ev::Wake(id, waiting));
                    return;
                }
                action => {
                    self.send(id, action);
                    return;
                }
            };
        }
    }

    /// Invariant 3.
    pub(super) fn one_request_per_token(&mut self, run: u64) {
        let sim = &self.runs[&run];
        let (r, i, replaced, asked) = (sim.replica, sim.ident, sim.replaced, sim.asked_at);
        let last = self.replicas[r].last_request[i].replace(asked);
        if let Some(last) = last.filter(|_| !replaced && !self.settling) {
            if asked.saturating_sub(last) < LIFE / 3 {
                self.violation(format!(
                    "r{r} {i}: two token requests {} ms apart",
                    asked.saturating_sub(last)
                ));
            }
        }
    }

    pub(super) fn wait_for(&mut self, run: u64) -> u64 {
        let waiting = self.id();
        let sim = self.runs.get_mut(&run).expect("a live run");
        sim.waiting = waiting;
        sim.listening = false;
        waiting
    }

    fn adopted(&mut self, r: usize, i: usize, refresh_token: &str, rotated_here: bool) {
        let Some(index) = refresh_index(refresh_token, self.idents[i].tag) else {
            self.violation(format!(
                "r{r} adopted {refresh_token}, not identity {}'s",
                self.idents[i].tag
            ));
            return;
        };
        self.seen(r, index);
        if rotated_here {
            // `on_rotate`: only for a stored rotation, once per refresh token.
            if !self.committed.contains(refresh_token) {
                self.violation(format!(
                    "on_rotate for {refresh_token}, which was never stored"
                ));
            }
            if !self.rotated.insert(refresh_token.to_owned()) {
                self.violation(format!("on_rotate twice for {refresh_token}"));
            }
        }
    }

    pub(super) fn seen(&mut self, r: usize, index: u64) {
        let seen = &mut self.replicas[r].seen_refresh;
        *seen = Some(seen.map_or(index, |s| s.max(index)));
    }

    pub(super) fn renew(&mut self, run: u64, lease: String) {
        let Some(sim) = self.runs.get(&run) else {
            return;
        };
        if sim.renewing.as_deref() != Some(lease.as_str()) {
            return;
        }
        let (r, i) = (sim.replica, sim.ident);
        let stalled = self.replicas[r].stalled_until;
        if stalled > self.now {
            // A stalled process renews nothing.
            self.at(stalled, Ev::Renew(run, lease));
            return;
        }
        if self.now >= self.down_until && !(self.faulty() && self.rng.chance(self.op_fault)) {
            let keys = self.idents[i].keys.clone();
            self.store.renew(&keys, &lease, LEASE_TTL, self.now);
        }
        self.at(self.now + LEASE_TTL / 3, Ev::Renew(run, lease));
    }
}
