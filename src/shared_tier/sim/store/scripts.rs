//! The scripts' effects, line for line after the Lua in
//! [`scripts`](crate::shared_tier::scripts): one method a script, on one
//! identity's keys.

use super::keyspace::Store;
use super::values::{ChainValue, TokenValue, Value};
use crate::shared_tier::entry::Origin;
use crate::shared_tier::error::ChainLoss;
use crate::shared_tier::keys::Keys;

/// What an identity's keys held when read.
#[derive(Debug, Clone)]
pub(in crate::shared_tier::sim) struct Read {
    pub(in crate::shared_tier::sim) token: Option<(TokenValue, i64)>,
    pub(in crate::shared_tier::sim) chain: Option<ChainValue>,
    pub(in crate::shared_tier::sim) failure: Option<(String, i64)>,
    pub(in crate::shared_tier::sim) lease: Option<String>,
}

impl Store {
    pub(in crate::shared_tier::sim) fn read(
        &mut self,
        keys: &Keys,
        refreshing: bool,
        now: u64,
    ) -> Read {
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
    pub(in crate::shared_tier::sim) fn acquire(
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
    pub(in crate::shared_tier::sim) fn write(
        &mut self,
        keys: &Keys,
        token: &Sealed,
        now: u64,
    ) -> bool {
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
    pub(in crate::shared_tier::sim) fn release(
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
    pub(in crate::shared_tier::sim) fn renew(
        &mut self,
        keys: &Keys,
        lease: &str,
        ttl: u64,
        now: u64,
    ) -> bool {
        if self.text(&keys.lease, now).as_deref() == Some(lease) {
            let value = self.keys[&keys.lease].value.clone();
            self.set(&keys.lease, value, Some(now + ttl));
            return true;
        }
        false
    }

    /// INVALIDATE.
    pub(in crate::shared_tier::sim) fn invalidate(
        &mut self,
        keys: &Keys,
        writer: &[u8],
        now: u64,
    ) -> bool {
        let holds =
            matches!(self.get(&keys.token, now), Some(Value::Token(t)) if t.w.as_bytes() == writer);
        if holds {
            self.del(&keys.token);
        }
        holds
    }

    /// BOOTSTRAP: 1 started, 2 exists, 0 lease lost.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::shared_tier::sim) fn bootstrap(
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
    pub(in crate::shared_tier::sim) fn mark(
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
    pub(in crate::shared_tier::sim) fn commit(
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
    pub(in crate::shared_tier::sim) fn abort(
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
        // Then as RELEASE.
        self.release(keys, lease, failure, now);
    }

    /// DECLARE_LOST: whether recorded.
    pub(in crate::shared_tier::sim) fn declare_lost(
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
pub(in crate::shared_tier::sim) enum Acquired {
    Granted(u64),
    Held(u64),
    Changed,
    Failed(String, u64),
}

/// A token as the driver would seal it.
#[derive(Debug, Clone)]
pub(in crate::shared_tier::sim) struct Sealed {
    pub(in crate::shared_tier::sim) fence: u64,
    pub(in crate::shared_tier::sim) writer: String,
    pub(in crate::shared_tier::sim) life: u64,
    pub(in crate::shared_tier::sim) ttl: u64,
    pub(in crate::shared_tier::sim) secret: String,
    pub(in crate::shared_tier::sim) sealed_for: String,
}
