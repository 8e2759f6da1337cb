//! Commands to the store: sent, run late, lost before or after they run;
//! carried out as the scripts would; their answers made into events as the
//! driver would (entries opened for the reader's identity, times on its
//! clock).

use tokio::time::Instant;

use super::super::store::{Acquired, ChainValue, Read, Sealed, TokenValue};
use super::events::Ev;
use super::parameters::{ms, LEASE_TTL, LIFE, REDIS_TIMEOUT, REFRESH_TTL, SEED_REFRESH_TOKEN};
use super::provider::refresh_index;
use super::state::{Pending, World};
use crate::secret::Secret;
use crate::shared_tier::encryption::Unreadable;
use crate::shared_tier::entry::MarkRecord;
use crate::shared_tier::error::RedisFailure;
use crate::shared_tier::held_failure::HeldFailure;
use crate::shared_tier::protocol::{
    Action, Bootstrapped, ChainPos, Committed, Event, Kind, Lease, LeaseAnswer, SeenChain,
    SeenLink, SeenToken, Snapshot, Verdict,
};
use crate::token::AccessToken;

impl World {
    pub(super) fn send(&mut self, run: u64, action: Action) {
        let sim = &self.runs[&run];
        let (r, i) = (sim.replica, sim.ident);
        let op = self.wait_for(run);
        self.ops.insert(
            op,
            Pending {
                run,
                replica: r,
                ident: i,
                action,
                sent_local: self.local(r),
            },
        );
        self.at(self.now + REDIS_TIMEOUT, Ev::OpTimeout(op));
        let fault = self.faulty() && self.rng.chance(self.op_fault);
        if self.now < self.down_until || fault && self.rng.chance(0.3) {
            // Never reaches Redis.
            return;
        }
        let latency = if fault {
            self.rng.range(REDIS_TIMEOUT, 5 * REDIS_TIMEOUT)
        } else {
            self.rng.range(0, 3)
        };
        self.at(self.now + latency, Ev::OpExec(op));
    }

    pub(super) fn execute(&mut self, op: u64) {
        if self.now < self.down_until {
            return;
        }
        let Some(pending) = self.ops.get(&op) else {
            return;
        };
        let (r, i, action) = (pending.replica, pending.ident, pending.action.clone());
        // Run even if its process is gone: the command was sent.
        let event = self.apply(op, r, i, &action);
        self.wake_waiters();
        if self.faulty() && self.rng.chance(self.op_fault / 2.0) {
            return; // the answer is lost
        }
        let latency = self.rng.range(0, 3);
        self.at(self.now + latency, Ev::OpReply(op, event));
    }

    pub(super) fn op_answered(&mut self, op: u64, event: Option<Event>) {
        let Some(pending) = self.ops.get(&op) else {
            return;
        };
        let run = pending.run;
        if self.runs.get(&run).is_none_or(|sim| sim.waiting != op) {
            return;
        }
        self.ops.remove(&op);
        let event = event.unwrap_or_else(|| Event::Failed(RedisFailure::TimedOut("sim")));
        self.advance(run, event);
    }

    fn wake_waiters(&mut self) {
        let published = std::mem::take(&mut self.store.published);
        for channel in published {
            let waiting: Vec<(u64, u64)> = self
                .runs
                .iter()
                .filter(|(_, sim)| sim.listening && self.idents[sim.ident].keys.channel == channel)
                .map(|(id, sim)| (*id, sim.waiting))
                .collect();
            for (run, waiting) in waiting {
                if !(self.faulty() && self.rng.chance(0.05)) {
                    self.at(self.now + 1, Ev::Wake(run, waiting));
                }
            }
        }
    }

    /// Applies an action to the store, as its script would; the event its
    /// run gets.
    fn apply(&mut self, op: u64, r: usize, i: usize, action: &Action) -> Event {
        let keys = self.idents[i].keys.clone();
        let identity = self.idents[i].identity.as_str().to_owned();
        let now = self.now;
        match action {
            Action::Read => {
                let refreshing = self.idents[i].kind == Kind::Refreshing;
                let read = self.store.read(&keys, refreshing, now);
                let sent = self.ops[&op].sent_local;
                Event::Read(Box::new(self.open(r, i, read, sent)))
            }
            Action::Invalidate { writer } => {
                self.store.invalidate(&keys, writer, now);
                Event::Done
            }
            Action::Acquire { seen } => {
                let nonce = format!("{:x}", self.rng.next());
                let seen =
                    String::from_utf8_lossy(seen.as_deref().unwrap_or_default()).into_owned();
                Event::Lease(
                    match self.store.acquire(&keys, &seen, LEASE_TTL, &nonce, now) {
                        Acquired::Granted(fence) => LeaseAnswer::Granted(Lease { fence, nonce }),
                        Acquired::Held(left) => LeaseAnswer::Held(ms(left)),
                        Acquired::Changed => LeaseAnswer::Changed,
                        Acquired::Failed(failure, left) => {
                            LeaseAnswer::Failed(HeldFailure::decode(failure.as_bytes()), ms(left))
                        }
                    },
                )
            }
            Action::Write { lease, token } => {
                match self.seal(r, token, lease, &identity) {
                    Some(sealed) => {
                        self.store.write(&keys, &sealed, now);
                    }
                    None => self.store.release(&keys, &lease.value(), None, now),
                }
                Event::Done
            }
            Action::Release { lease, failure } => {
                let failure = failure
                    .as_ref()
                    .map(|(f, hold)| (f.encode(), hold.as_millis() as u64));
                self.store.release(&keys, &lease.value(), failure, now);
                Event::Done
            }
            Action::Bootstrap { lease } => {
                let epoch = format!("{:x}", self.rng.next());
                let seed = format!("{}rt-{SEED_REFRESH_TOKEN}", self.idents[i].tag);
                let initial = self.take_initial(r, i);
                let sealed = initial
                    .as_ref()
                    .and_then(|t| self.seal(r, t, lease, &identity));
                match self.store.bootstrap(
                    &keys,
                    &lease.value(),
                    &epoch,
                    &seed,
                    &identity,
                    sealed.as_ref(),
                    REFRESH_TTL,
                    now,
                ) {
                    1 => Event::Bootstrapped(Bootstrapped::Started {
                        epoch,
                        refresh_token: Secret::new(seed),
                        initial: initial.filter(|_| sealed.is_some()),
                    }),
                    _ => Event::Bootstrapped(Bootstrapped::Exists),
                }
            }
            Action::Mark { lease, pos } => {
                Event::Marked(
                    self.store
                        .mark(&keys, &lease.value(), &pos.epoch, pos.seq, now),
                )
            }
            Action::Commit {
                lease,
                pos,
                refresh_token,
                token,
            } => {
                let sealed = self.seal(r, token, lease, &identity);
                let stored = self.store.commit(
                    &keys,
                    &lease.value(),
                    &pos.epoch,
                    pos.seq,
                    refresh_token.expose(),
                    &identity,
                    sealed.as_ref(),
                    REFRESH_TTL,
                    now,
                );
                Event::Committed(match stored {
                    1 => {
                        self.committed.insert(refresh_token.expose().to_owned());
                        Committed::Stored
                    }
                    2 => Committed::Unmarked,
                    _ => Committed::Moved,
                })
            }
            Action::Abort {
                lease,
                pos,
                verdict,
                failure,
            } => {
                let (code, loss) = match verdict {
                    Verdict::NotConsumed => ('n', None),
                    Verdict::InDoubt => ('d', None),
                    Verdict::Lost(loss) => ('l', Some(*loss)),
                };
                let failure = failure
                    .as_ref()
                    .map(|(f, hold)| (f.encode(), hold.as_millis() as u64));
                self.store.abort(
                    &keys,
                    &lease.value(),
                    &pos.epoch,
                    pos.seq,
                    code,
                    loss,
                    failure,
                    REFRESH_TTL,
                    now,
                );
                Event::Done
            }
            Action::DeclareLost { known, loss } => {
                self.store
                    .declare_lost(&keys, &known.epoch, known.seq, *loss, REFRESH_TTL, now);
                Event::Done
            }
            other => unreachable!("not a store action: {other:?}"),
        }
    }

    /// What the driver makes of a read: entries opened for the reader's
    /// identity, times on the reader's clock.
    fn open(&mut self, r: usize, i: usize, read: Read, sent: Instant) -> Snapshot {
        let identity = self.idents[i].identity.as_str();
        let token = read.token.map(|(token, pttl)| SeenToken {
            writer: token.w.clone().into_bytes(),
            token: open_token(&token, pttl, identity, sent, self.now),
        });
        let chain = match read.chain {
            None if self.idents[i].kind == Kind::Plain => SeenChain::NotRead,
            None => SeenChain::Absent,
            Some(ChainValue::Lost(loss)) => SeenChain::Lost(loss),
            Some(ChainValue::Present {
                epoch,
                seq,
                origin,
                refresh_token,
                sealed_for,
                mark,
                doubt,
                ..
            }) => {
                let opened = if sealed_for == identity {
                    match refresh_index(&refresh_token, self.idents[i].tag) {
                        Some(index) => {
                            self.seen(r, index);
                            Ok(Secret::new(refresh_token))
                        }
                        None => {
                            self.violation(format!(
                                "identity {} read {refresh_token}",
                                self.idents[i].tag
                            ));
                            Err(Unreadable::Tampered)
                        }
                    }
                } else {
                    Err(Unreadable::Tampered)
                };
                SeenChain::Present(SeenLink {
                    pos: ChainPos { epoch, seq },
                    origin,
                    refresh_token: opened,
                    mark: mark.map(|(by, at)| MarkRecord {
                        by,
                        age_ms: self.now.saturating_sub(at),
                        doubt,
                    }),
                })
            }
        };
        let failure = read
            .failure
            .filter(|(_, pttl)| *pttl > 0)
            .map(|(f, pttl)| (HeldFailure::decode(f.as_bytes()), ms(pttl as u64)));
        Snapshot {
            token,
            chain,
            failure,
            lease: read.lease,
        }
    }

    fn seal(&self, r: usize, token: &AccessToken, lease: &Lease, identity: &str) -> Option<Sealed> {
        let local = self.local(r);
        let at = token.expires_at()?;
        let left = at.saturating_duration_since(local).as_millis() as u64;
        let life = at
            .saturating_duration_since(token.received_at().min(local))
            .as_millis() as u64;
        let ttl = left.min(life);
        (ttl > 0).then(|| Sealed {
            fence: lease.fence,
            writer: lease.nonce.clone(),
            life,
            ttl,
            secret: token.secret().to_owned(),
            sealed_for: identity.to_owned(),
        })
    }

    fn take_initial(&mut self, r: usize, i: usize) -> Option<AccessToken> {
        let replica = &mut self.replicas[r];
        if replica.incarnation > 0 || std::mem::replace(&mut replica.initial_taken, true) {
            return None;
        }
        let issued = self.base + replica.offset;
        let token = AccessToken::new(format!("{}-0", self.idents[i].tag))
            .with_expires_at(issued + ms(LIFE))
            .with_received_at(issued);
        let local = self.local(r);
        // As `RefreshTokenSource` does: only with a tenth of its life left.
        (token.expires_at()? > local + ms(LIFE / 10).max(ms(1_000))).then_some(token)
    }
}

fn open_token(
    token: &TokenValue,
    pttl: i64,
    identity: &str,
    sent: Instant,
    now: u64,
) -> Result<AccessToken, Unreadable> {
    let sealed_for = token.sealed_for.as_deref().ok_or(Unreadable::Malformed)?;
    let valid = token.v.len() <= 15 && token.v.bytes().all(|b| b.is_ascii_digit());
    if !valid || pttl <= 0 || pttl as u64 > token.life {
        return Err(Unreadable::Malformed);
    }
    if sealed_for != identity {
        return Err(Unreadable::Tampered);
    }
    let left = token.exp.saturating_sub(now).min(pttl as u64);
    let expires = sent + ms(left);
    let issued = expires
        .checked_sub(ms(token.life))
        .unwrap_or(sent)
        .min(sent);
    Ok(AccessToken::new(token.secret.clone())
        .with_expires_at(expires)
        .with_received_at(issued))
}
