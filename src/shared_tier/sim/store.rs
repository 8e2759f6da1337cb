//! A simulated Redis: keys with expiries, the scripts' effects written again
//! in Rust, line for line after the Lua in [`scripts`](super::super::scripts)
//! (the real-Redis suites check the Lua itself), and the faults Redis has:
//! it forgets everything (a flush, a restart without data), goes back to an
//! older write of a key (a failover to a replica that missed it), and holds
//! what nobody should have written (no time to live, garbage).
//!
//! Sealing is modelled by the identity each value was sealed for: a value
//! opens only for a reader of the same identity, as AES-GCM with the
//! identity as associated data does.

use std::collections::BTreeMap;

use super::super::entry::Origin;
use super::super::error::ChainLoss;
use super::super::keys::Keys;

/// An access token entry.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TokenValue {
    pub(super) v: String,
    pub(super) w: String,
    pub(super) life: u64,
    /// Expiry on the server's clock.
    pub(super) exp: u64,
    pub(super) secret: String,
    /// Who it was sealed for (`None`: garbage that opens for nobody).
    pub(super) sealed_for: Option<String>,
}

/// A refresh entry.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ChainValue {
    Present {
        epoch: String,
        seq: u64,
        origin: Origin,
        refresh_token: String,
        sealed_for: String,
        mark: Option<(String, u64)>,
        doubt: bool,
        /// The lease that committed it.
        by: Option<String>,
    },
    Lost(ChainLoss),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Token(TokenValue),
    Chain(ChainValue),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Slot {
    value: Value,
    /// `None`: no time to live.
    expires: Option<u64>,
    /// Written by hand, not by a script.
    by_hand: bool,
}

/// What an identity's keys held when read.
#[derive(Debug, Clone)]
pub(super) struct Read {
    pub(super) token: Option<(TokenValue, i64)>,
    pub(super) chain: Option<ChainValue>,
    pub(super) failure: Option<(String, i64)>,
    pub(super) lease: Option<String>,
}

/// The keys and their past writes.
#[derive(Debug, Default)]
pub(super) struct Store {
    keys: BTreeMap<String, Slot>,
    /// Earlier values of each key (`None`: absent), oldest first.
    history: BTreeMap<String, Vec<Option<Slot>>>,
    /// Channels published on since the world last looked.
    pub(super) published: Vec<String>,
    /// A broken store whose leases do not exclude and whose marks do not
    /// either: the simulation must notice (see the tests of `sim`).
    broken: bool,
}

/// How many earlier writes of a key are kept to go back to.
const HISTORY: usize = 6;

impl Store {
    fn get(&mut self, key: &str, now: u64) -> Option<&Value> {
        let expired = self
            .keys
            .get(key)
            .is_some_and(|slot| slot.expires.is_some_and(|at| at <= now));
        if expired {
            self.keys.remove(key);
        }
        self.keys.get(key).map(|slot| &slot.value)
    }

    fn pttl(&mut self, key: &str, now: u64) -> i64 {
        if self.get(key, now).is_none() {
            return -2;
        }
        match self.keys[key].expires {
            None => -1,
            Some(at) => (at - now) as i64,
        }
    }

    /// An empty store; `broken`: see [`run_broken_seed`](super::world::run_broken_seed).
    pub(super) fn new(broken: bool) -> Self {
        Self {
            broken,
            ..Self::default()
        }
    }

    fn set(&mut self, key: &str, value: Value, expires: Option<u64>) {
        self.put(key, value, expires, false);
    }

    fn put(&mut self, key: &str, value: Value, expires: Option<u64>, by_hand: bool) {
        let slot = Slot {
            value,
            expires,
            by_hand,
        };
        let before = self.keys.insert(key.to_owned(), slot);
        self.remember(key, before);
    }

    fn del(&mut self, key: &str) {
        if let Some(before) = self.keys.remove(key) {
            self.remember(key, Some(before));
        }
    }

    fn remember(&mut self, key: &str, before: Option<Slot>) {
        let history = self.history.entry(key.to_owned()).or_default();
        history.push(before);
        if history.len() > HISTORY {
            history.remove(0);
        }
    }

    fn publish(&mut self, channel: &str) {
        self.published.push(channel.to_owned());
    }

    fn chain(&mut self, key: &str, now: u64) -> Option<ChainValue> {
        match self.get(key, now) {
            Some(Value::Chain(chain)) => Some(chain.clone()),
            _ => None,
        }
    }

    fn text(&mut self, key: &str, now: u64) -> Option<String> {
        match self.get(key, now) {
            Some(Value::Text(text)) => Some(text.clone()),
            // A key of another type holds a value Lua would see as a string
            // it cannot compare equal to anything the crate writes.
            Some(_) => Some(String::new()),
            None => None,
        }
    }

    // -- faults ------------------------------------------------------------

    /// Forgets every key (FLUSHALL, a restart without persistence).
    pub(super) fn flush(&mut self) {
        let keys: Vec<String> = self.keys.keys().cloned().collect();
        for key in keys {
            self.del(&key);
        }
    }

    /// Takes `key` back to its `back`-th earlier write (counting from the
    /// latest); whether it went back to anything.
    pub(super) fn roll_back(&mut self, key: &str, back: usize) -> bool {
        let Some(history) = self.history.get_mut(key) else {
            return false;
        };
        if history.is_empty() {
            return false;
        }
        let index = history.len() - 1 - back.min(history.len() - 1);
        let older = history[index].clone();
        history.truncate(index);
        match older {
            Some(slot) => {
                self.keys.insert(key.to_owned(), slot);
            }
            None => {
                self.keys.remove(key);
            }
        }
        true
    }

    /// Writes what a person or another program might: values without a time
    /// to live, entries that do not open.
    pub(super) fn write_by_hand(&mut self, key: &str, value: Value, expires: Option<u64>) {
        self.put(key, value, expires, true);
    }

    /// Keys a script wrote that never expire.
    pub(super) fn written_forever(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|(_, slot)| slot.expires.is_none() && !slot.by_hand)
            .map(|(key, _)| key.clone())
            .collect()
    }

    // -- the scripts -------------------------------------------------------

    pub(super) fn read(&mut self, keys: &Keys, refreshing: bool, now: u64) -> Read {
        let token_pttl = self.pttl(&keys.token, now);
        let token = match self.get(&keys.token, now) {
            Some(Value::Token(token)) => Some((token.clone(), token_pttl)),
            _ => None,
        };
        let chain = if refreshing {
            self.chain(&keys.refresh, now)
        } else {
            None
        };
        let failure = self.text(&keys.failure, now);
        let failure_pttl = self.pttl(&keys.failure, now);
        Read {
            token,
            chain,
            failure: failure.map(|f| (f, failure_pttl)),
            lease: self.text(&keys.lease, now),
        }
    }

    /// ACQUIRE: `Ok(fence)`, or the answer's code and its values.
    pub(super) fn acquire(
        &mut self,
        keys: &Keys,
        seen: &str,
        ttl: u64,
        nonce: &str,
        now: u64,
    ) -> Acquired {
        let w = match self.get(&keys.token, now) {
            Some(Value::Token(token)) => token.w.clone(),
            _ => String::new(),
        };
        if w != seen && self.pttl(&keys.token, now) > 0 {
            return Acquired::Changed;
        }
        if let Some(failure) = self.text(&keys.failure, now) {
            let left = self.pttl(&keys.failure, now);
            if left > 0 {
                return Acquired::Failed(failure, left as u64);
            }
            self.del(&keys.failure);
        }
        let mut held = self.pttl(&keys.lease, now);
        if held == -1 {
            let value = self.keys[&keys.lease].value.clone();
            self.set(&keys.lease, value, Some(now + ttl));
            held = ttl as i64;
        }
        if held > 0 && !self.broken {
            return Acquired::Held(held as u64);
        }
        let fence = self.version(&keys.token, now).unwrap_or(0) + 1;
        self.set(
            &keys.lease,
            Value::Text(format!("{fence}:{nonce}")),
            Some(now + ttl),
        );
        Acquired::Granted(fence)
    }

    /// The token entry's version, if it is one the crate could have written.
    fn version(&mut self, key: &str, now: u64) -> Option<u64> {
        match self.get(key, now) {
            Some(Value::Token(token))
                if token.v.len() <= 12 && token.v.bytes().all(|b| b.is_ascii_digit()) =>
            {
                token.v.parse().ok()
            }
            _ => None,
        }
    }

    fn write_token(&mut self, key: &str, token: &Sealed, now: u64) {
        self.del(key);
        self.set(
            key,
            Value::Token(TokenValue {
                v: token.fence.to_string(),
                w: token.writer.clone(),
                life: token.life,
                exp: now + token.ttl,
                secret: token.secret.clone(),
                sealed_for: Some(token.sealed_for.clone()),
            }),
            Some(now + token.ttl),
        );
    }

    /// WRITE: whether written.
    pub(super) fn write(&mut self, keys: &Keys, token: &Sealed, now: u64) -> bool {
        let mine = format!("{}:{}", token.fence, token.writer);
        let lease = self.text(&keys.lease, now);
        let ok = match &lease {
            Some(lease) => *lease == mine,
            None => self
                .version(&keys.token, now)
                .is_none_or(|v| token.fence > v),
        };
        if ok {
            self.write_token(&keys.token, token, now);
            self.del(&keys.failure);
        }
        if lease.as_deref() == Some(mine.as_str()) {
            self.del(&keys.lease);
        }
        self.publish(&keys.channel);
        ok
    }

    /// RELEASE.
    pub(super) fn release(
        &mut self,
        keys: &Keys,
        lease: &str,
        failure: Option<(String, u64)>,
        now: u64,
    ) {
        if self.text(&keys.lease, now).as_deref() == Some(lease) {
            self.del(&keys.lease);
            if let Some((failure, hold)) = failure.filter(|(_, hold)| *hold > 0) {
                self.set(&keys.failure, Value::Text(failure), Some(now + hold));
            }
        }
        self.publish(&keys.channel);
    }

    /// RENEW: whether renewed.
    pub(super) fn renew(&mut self, keys: &Keys, lease: &str, ttl: u64, now: u64) -> bool {
        if self.text(&keys.lease, now).as_deref() == Some(lease) {
            let value = self.keys[&keys.lease].value.clone();
            self.set(&keys.lease, value, Some(now + ttl));
            return true;
        }
        false
    }

    /// INVALIDATE.
    pub(super) fn invalidate(&mut self, keys: &Keys, writer: &[u8], now: u64) -> bool {
        let holds =
            matches!(self.get(&keys.token, now), Some(Value::Token(t)) if t.w.as_bytes() == writer);
        if holds {
            self.del(&keys.token);
        }
        holds
    }

    /// BOOTSTRAP: 1 started, 2 exists, 0 lease lost.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn bootstrap(
        &mut self,
        keys: &Keys,
        lease: &str,
        epoch: &str,
        refresh_token: &str,
        sealed_for: &str,
        token: Option<&Sealed>,
        refresh_ttl: u64,
        now: u64,
    ) -> u8 {
        if self.text(&keys.lease, now).as_deref() != Some(lease) {
            return 0;
        }
        if self.get(&keys.refresh, now).is_some() {
            self.del(&keys.lease);
            self.publish(&keys.channel);
            return 2;
        }
        self.set(
            &keys.refresh,
            Value::Chain(ChainValue::Present {
                epoch: epoch.to_owned(),
                seq: 1,
                origin: Origin::Bootstrap,
                refresh_token: refresh_token.to_owned(),
                sealed_for: sealed_for.to_owned(),
                mark: None,
                doubt: false,
                by: None,
            }),
            Some(now + refresh_ttl),
        );
        if let Some(token) = token {
            self.write_token(&keys.token, token, now);
            self.del(&keys.failure);
            self.del(&keys.lease);
            self.publish(&keys.channel);
        }
        1
    }

    /// MARK: whether marked.
    pub(super) fn mark(
        &mut self,
        keys: &Keys,
        lease: &str,
        epoch: &str,
        seq: u64,
        now: u64,
    ) -> bool {
        let holds = self.text(&keys.lease, now).as_deref() == Some(lease);
        let broken = self.broken;
        if let Some(ChainValue::Present {
            epoch: e,
            seq: s,
            origin,
            refresh_token,
            sealed_for,
            mark,
            doubt,
            by,
        }) = self.chain(&keys.refresh, now)
        {
            if holds && e == epoch && s == seq && (mark.is_none() || broken) {
                let expires = self.keys[&keys.refresh].expires;
                self.set(
                    &keys.refresh,
                    Value::Chain(ChainValue::Present {
                        epoch: e,
                        seq: s,
                        origin,
                        refresh_token,
                        sealed_for,
                        mark: Some((lease.to_owned(), now)),
                        doubt,
                        by,
                    }),
                    expires,
                );
                return true;
            }
        }
        if holds {
            self.del(&keys.lease);
        }
        false
    }

    /// COMMIT: 1 stored, 0 moved on, 2 the same chain without the mark.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit(
        &mut self,
        keys: &Keys,
        lease: &str,
        epoch: &str,
        seq: u64,
        refresh_token: &str,
        sealed_for: &str,
        token: Option<&Sealed>,
        refresh_ttl: u64,
        now: u64,
    ) -> u8 {
        if let Some(ChainValue::Present {
            epoch: e,
            seq: s,
            by: Some(by),
            ..
        }) = self.chain(&keys.refresh, now)
        {
            if e == epoch && s == seq + 1 && by == lease {
                return 1;
            }
        }
        let same_chain = matches!(
            self.chain(&keys.refresh, now),
            Some(ChainValue::Present { epoch: ref e, .. }) if e == epoch
        );
        let ok = match self.chain(&keys.refresh, now) {
            Some(ChainValue::Present {
                epoch: e,
                seq: s,
                mark: Some((by, _)),
                ..
            }) => e == epoch && s == seq && by == lease,
            _ => false,
        };
        if ok {
            let origin = match self.chain(&keys.refresh, now) {
                Some(ChainValue::Present { origin, .. }) => origin,
                _ => Origin::Bootstrap,
            };
            self.del(&keys.refresh);
            self.set(
                &keys.refresh,
                Value::Chain(ChainValue::Present {
                    epoch: epoch.to_owned(),
                    seq: seq + 1,
                    origin,
                    refresh_token: refresh_token.to_owned(),
                    sealed_for: sealed_for.to_owned(),
                    mark: None,
                    doubt: false,
                    by: Some(lease.to_owned()),
                }),
                Some(now + refresh_ttl),
            );
            if let Some(token) = token {
                self.write_token(&keys.token, token, now);
            }
            self.del(&keys.failure);
        }
        if self.text(&keys.lease, now).as_deref() == Some(lease) {
            self.del(&keys.lease);
        }
        self.publish(&keys.channel);
        match (ok, same_chain) {
            (true, _) => 1,
            (false, true) => 2,
            (false, false) => 0,
        }
    }

    /// ABORT. `verdict`: `n`, `d`, or `l` with `loss`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn abort(
        &mut self,
        keys: &Keys,
        lease: &str,
        epoch: &str,
        seq: u64,
        verdict: char,
        loss: Option<ChainLoss>,
        failure: Option<(String, u64)>,
        refresh_ttl: u64,
        now: u64,
    ) {
        if let Some(ChainValue::Present {
            epoch: e,
            seq: s,
            origin,
            refresh_token,
            sealed_for,
            mark,
            doubt,
            by: committed_by,
        }) = self.chain(&keys.refresh, now)
        {
            let marked_by_caller = mark.as_ref().is_some_and(|(by, _)| by == lease);
            if e == epoch && s == seq && (marked_by_caller || verdict != 'n') {
                let expires = self.keys[&keys.refresh].expires;
                let marked = mark.map_or(now, |(_, at)| at);
                match verdict {
                    'n' | 'd' => self.set(
                        &keys.refresh,
                        Value::Chain(ChainValue::Present {
                            epoch: e,
                            seq: s,
                            origin,
                            refresh_token,
                            sealed_for,
                            mark: (verdict == 'd').then(|| (lease.to_owned(), marked)),
                            doubt: doubt || verdict == 'd',
                            by: committed_by,
                        }),
                        expires,
                    ),
                    _ => {
                        self.del(&keys.refresh);
                        self.set(
                            &keys.refresh,
                            Value::Chain(ChainValue::Lost(loss.unwrap_or(ChainLoss::Unreadable))),
                            Some(now + refresh_ttl),
                        );
                    }
                }
            }
        }
        if self.text(&keys.lease, now).as_deref() == Some(lease) {
            self.del(&keys.lease);
            if let Some((failure, hold)) = failure.filter(|(_, hold)| *hold > 0) {
                self.set(&keys.failure, Value::Text(failure), Some(now + hold));
            }
        }
        self.publish(&keys.channel);
    }

    /// DECLARE_LOST: whether recorded.
    pub(super) fn declare_lost(
        &mut self,
        keys: &Keys,
        epoch: &str,
        seq: u64,
        loss: ChainLoss,
        refresh_ttl: u64,
        now: u64,
    ) -> bool {
        let force = loss == ChainLoss::Unreadable;
        match self.chain(&keys.refresh, now) {
            Some(ChainValue::Lost(_)) => return false,
            Some(ChainValue::Present {
                epoch: e,
                seq: s,
                origin,
                ..
            }) if !force => {
                if e == epoch && s >= seq {
                    return false;
                }
                if e != epoch && origin == Origin::Reseed {
                    return false;
                }
            }
            _ => {}
        }
        self.del(&keys.refresh);
        self.set(
            &keys.refresh,
            Value::Chain(ChainValue::Lost(loss)),
            Some(now + refresh_ttl),
        );
        true
    }
}

/// What ACQUIRE answered.
#[derive(Debug, Clone)]
pub(super) enum Acquired {
    Granted(u64),
    Held(u64),
    Changed,
    Failed(String, u64),
}

/// A token as the driver would seal it.
#[derive(Debug, Clone)]
pub(super) struct Sealed {
    pub(super) fence: u64,
    pub(super) writer: String,
    pub(super) life: u64,
    pub(super) ttl: u64,
    pub(super) secret: String,
    pub(super) sealed_for: String,
}
