//! Redis itself, as far as the scripts need it: keys with values and
//! expiries, each key's earlier writes, the channels published on; and what
//! goes wrong with it.

use std::collections::BTreeMap;

use super::values::{ChainValue, Value};

/// A key: its value, and when it expires.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Slot {
    pub(super) value: Value,
    /// `None`: no time to live.
    pub(super) expires: Option<u64>,
    /// Written by hand, not by a script.
    by_hand: bool,
}

/// The keys and their past writes.
#[derive(Debug, Default)]
pub(in crate::shared_tier::sim) struct Store {
    pub(super) keys: BTreeMap<String, Slot>,
    /// Earlier values of each key (`None`: absent), oldest first.
    history: BTreeMap<String, Vec<Option<Slot>>>,
    /// Channels published on since the world last looked.
    pub(in crate::shared_tier::sim) published: Vec<String>,
    /// A broken store whose leases do not exclude and whose marks do not
    /// either: the simulation must notice (see the tests of `sim`).
    pub(super) broken: bool,
}

/// How many earlier writes of a key are kept to go back to.
const HISTORY: usize = 6;

impl Store {
    pub(super) fn get(&mut self, key: &str, now: u64) -> Option<&Value> {
        let expired = self
            .keys
            .get(key)
            .is_some_and(|slot| slot.expires.is_some_and(|at| at <= now));
        if expired {
            self.keys.remove(key);
        }
        self.keys.get(key).map(|slot| &slot.value)
    }

    pub(super) fn pttl(&mut self, key: &str, now: u64) -> i64 {
        if self.get(key, now).is_none() {
            return -2;
        }
        match self.keys[key].expires {
            None => -1,
            Some(at) => (at - now) as i64,
        }
    }

    /// An empty store; `broken`: see
    /// [`run_broken_seed`](crate::shared_tier::sim::world::run_broken_seed).
    pub(in crate::shared_tier::sim) fn new(broken: bool) -> Self {
        Self {
            broken,
            ..Self::default()
        }
    }

    pub(super) fn set(&mut self, key: &str, value: Value, expires: Option<u64>) {
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

    pub(super) fn del(&mut self, key: &str) {
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

    pub(super) fn publish(&mut self, channel: &str) {
        self.published.push(channel.to_owned());
    }

    pub(super) fn chain(&mut self, key: &str, now: u64) -> Option<ChainValue> {
        match self.get(key, now) {
            Some(Value::Chain(chain)) => Some(chain.clone()),
            _ => None,
        }
    }

    pub(super) fn text(&mut self, key: &str, now: u64) -> Option<String> {
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
    pub(in crate::shared_tier::sim) fn flush(&mut self) {
        let keys: Vec<String> = self.keys.keys().cloned().collect();
        for key in keys {
            self.del(&key);
        }
    }

    /// Takes `key` back to its `back`-th earlier write (counting from the
    /// latest); whether it went back to anything.
    pub(in crate::shared_tier::sim) fn roll_back(&mut self, key: &str, back: usize) -> bool {
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
    pub(in crate::shared_tier::sim) fn write_by_hand(
        &mut self,
        key: &str,
        value: Value,
        expires: Option<u64>,
    ) {
        self.put(key, value, expires, true);
    }

    /// Keys a script wrote that never expire.
    pub(in crate::shared_tier::sim) fn written_forever(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|(_, slot)| slot.expires.is_none() && !slot.by_hand)
            .map(|(key, _)| key.clone())
            .collect()
    }
}
