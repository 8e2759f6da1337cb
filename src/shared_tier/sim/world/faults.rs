//! The faults a seed plans, and what each does to the world.

use super::super::store::{ChainValue, TokenValue, Value};
use super::events::{Ev, Fault};
use super::parameters::{ms, DOUBT_AFTER, FAULTY_UNTIL, LEASE_TTL, LIFE};
use super::state::{Cache, World};
use crate::shared_tier::protocol::Memory;

impl World {
    pub(super) fn plan_faults(&mut self) {
        let n = self.replicas.len();
        for _ in 0..self.rng.range(0, 4) {
            let (r, at, long) = (
                self.rng.range(0, n as u64 - 1) as usize,
                self.rng.range(0, FAULTY_UNTIL),
                self.rng.chance(0.2),
            );
            let stall = if long {
                self.rng.range(DOUBT_AFTER, 2 * DOUBT_AFTER)
            } else {
                self.rng.range(50, 3 * LEASE_TTL)
            };
            self.at(at, Ev::Fault(Fault::Stall(r, stall)));
        }
        for _ in 0..self.rng.range(0, 2) {
            let (r, at) = (
                self.rng.range(0, n as u64 - 1) as usize,
                self.rng.range(0, FAULTY_UNTIL),
            );
            self.at(at, Ev::Fault(Fault::Crash(r)));
        }
        for _ in 0..self.rng.range(0, 2) {
            let at = self.rng.range(0, FAULTY_UNTIL);
            let long = self.rng.range(50, 2_000);
            self.at(at, Ev::Fault(Fault::Down(long)));
        }
        if self.rng.chance(0.2) {
            let at = self.rng.range(0, FAULTY_UNTIL);
            self.at(at, Ev::Fault(Fault::Flush));
        }
        for _ in 0..self.rng.range(0, 3) {
            let at = self.rng.range(0, FAULTY_UNTIL);
            let (i, key, back) = (
                self.rng.range(0, 2) as usize,
                self.rng.range(0, 3) as u8,
                self.rng.range(0, 3) as usize,
            );
            self.at(at, Ev::Fault(Fault::RollBack(i, key, back)));
        }
        for _ in 0..self.rng.range(0, 2) {
            let at = self.rng.range(0, FAULTY_UNTIL);
            let (i, what) = (self.rng.range(0, 2) as usize, self.rng.range(0, 3) as u8);
            self.at(at, Ev::Fault(Fault::ByHand(i, what)));
        }
    }

    pub(super) fn fault(&mut self, fault: Fault) {
        self.trace(|| format!("FAULT {fault:?}"));
        match fault {
            Fault::Stall(r, long) => {
                self.outcome.stalls += 1;
                let replica = &mut self.replicas[r];
                replica.stalled_until = replica.stalled_until.max(self.now + long);
            }
            Fault::Crash(r) => {
                self.outcome.crashes += 1;
                if !self.replicas[r].alive {
                    return;
                }
                self.replicas[r].alive = false;
                if self
                    .runs
                    .values()
                    .any(|sim| sim.replica == r && sim.run.must_finish())
                {
                    // It died with a mark in Redis: whether it presented the
                    // refresh token, nobody can tell.
                    self.provider.in_doubt = true;
                }
                self.runs.retain(|_, sim| sim.replica != r);
                let back = self.rng.range(50, 3_000);
                self.at(self.now + back, Ev::Fault(Fault::Restart(r)));
            }
            Fault::Restart(r) => {
                let offset = ms(self.rng.range(0, 3_600_000));
                let replica = &mut self.replicas[r];
                replica.incarnation += 1;
                replica.alive = true;
                replica.offset = offset;
                replica.stalled_until = 0;
                replica.memory = vec![Memory::default(); 3];
                replica.caches = (0..3).map(|_| Cache::default()).collect();
                replica.seen_refresh = None;
                replica.last_request = vec![None; 3];
                let inc = replica.incarnation;
                for i in 0..3 {
                    self.at(self.now, Ev::Due(r, i, inc));
                }
            }
            Fault::Down(long) => self.down_until = self.down_until.max(self.now + long),
            Fault::Flush => {
                self.outcome.flushes += 1;
                if self.store_chain(2).is_some() {
                    self.chain_record_lost = true;
                }
                self.store.flush();
            }
            Fault::RollBack(i, key, back) => {
                self.outcome.rollbacks += 1;
                let keys = &self.idents[i].keys;
                let key =
                    [&keys.token, &keys.refresh, &keys.lease, &keys.failure][key as usize].clone();
                if self.store.roll_back(&key, back) && key == self.idents[2].keys.refresh {
                    self.chain_record_lost = true;
                }
            }
            Fault::ByHand(i, what) => {
                let keys = self.idents[i].keys.clone();
                match what {
                    0 => self.store.write_by_hand(
                        &keys.failure,
                        Value::Text("1|t|0|written by hand".into()),
                        None,
                    ),
                    1 => {
                        self.store
                            .write_by_hand(&keys.lease, Value::Text("7:by-hand".into()), None)
                    }
                    _ => self.store.write_by_hand(
                        &keys.token,
                        Value::Token(TokenValue {
                            v: "1e309".into(),
                            w: "zz".into(),
                            life: LIFE,
                            exp: self.now + LIFE,
                            secret: "garbage".into(),
                            sealed_for: None,
                        }),
                        self.rng.chance(0.5).then_some(self.now + LIFE),
                    ),
                }
            }
        }
    }

    fn store_chain(&mut self, i: usize) -> Option<ChainValue> {
        let keys = self.idents[i].keys.clone();
        self.store.read(&keys, true, self.now).chain
    }
}
