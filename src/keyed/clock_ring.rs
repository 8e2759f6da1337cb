//! Which keys a keyed cache drops: the least recently used beyond its
//! capacity (approximated by CLOCK, "second chance"), and those idle longer
//! than a set time.
//!
//! Exact LRU would write to a shared list on every lookup; CLOCK needs one
//! bit per key, set by a lookup (a load, and a store only the first time
//! since the sweep last passed), and all the work happens when a key is
//! added. The ring keeps keys in the order they were added:
//!
//! - **Room for a new key.** The sweep takes the key at the front: if it was
//!   used since the sweep last passed it, or a fetch for it is in flight, it
//!   gets a second chance (its bit is cleared, it goes to the back);
//!   otherwise it is dropped. A key added and never looked up again is thus
//!   the first to go, and a key looked up between two additions never goes.
//!   After two full turns without a victim (every key busy), the front key is
//!   dropped anyway: the capacity is a bound, not a hint.
//! - **Idle keys.** A pass over the whole ring notes, for every key used since
//!   the last pass, that it was used by now; a key whose last noted use is at
//!   least the idle time ago, and that has no fetch in flight, is dropped. A
//!   key is therefore never dropped as idle sooner than the idle time after
//!   its last use.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// What the ring needs to know of a value.
pub(crate) trait Tracked {
    /// `true` if it was used since the last call; clears that.
    fn take_used(&self) -> bool;
    /// `true` while dropping it would waste work in progress (a fetch).
    fn busy(&self) -> bool;
}

struct Slot<K, V> {
    key: K,
    value: V,
    /// When a pass last saw it used (or when it was added).
    used_by: Instant,
}

/// The keys of a keyed cache, in eviction order.
pub(crate) struct ClockRing<K, V> {
    slots: VecDeque<Slot<K, V>>,
}

impl<K: PartialEq, V: Tracked> ClockRing<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            slots: VecDeque::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Adds a key at the back, unused.
    pub(crate) fn push(&mut self, key: K, value: V, now: Instant) {
        self.slots.push_back(Slot {
            key,
            value,
            used_by: now,
        });
    }

    /// Drops keys until at most `max` are left; returns them.
    pub(crate) fn make_room(&mut self, max: usize, now: Instant) -> Vec<(K, V)> {
        let mut dropped = Vec::new();
        while self.slots.len() > max {
            let mut chances = 2 * self.slots.len();
            loop {
                let Some(mut slot) = self.slots.pop_front() else {
                    return dropped;
                };
                let used = slot.value.take_used();
                if used {
                    slot.used_by = now;
                }
                if (used || slot.value.busy()) && chances > 0 {
                    chances -= 1;
                    self.slots.push_back(slot);
                    continue;
                }
                dropped.push((slot.key, slot.value));
                break;
            }
        }
        dropped
    }

    /// Drops the keys idle for at least `idle`; returns them.
    pub(crate) fn drop_idle(&mut self, idle: Duration, now: Instant) -> Vec<(K, V)> {
        let mut kept = VecDeque::with_capacity(self.slots.len());
        let mut dropped = Vec::new();
        for mut slot in self.slots.drain(..) {
            if slot.value.take_used() {
                slot.used_by = now;
            }
            let idle_for = now.saturating_duration_since(slot.used_by);
            if idle_for >= idle && !slot.value.busy() {
                dropped.push((slot.key, slot.value));
            } else {
                kept.push_back(slot);
            }
        }
        self.slots = kept;
        dropped
    }

    /// Drops `key`, if it is there.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let at = self.slots.iter().position(|slot| slot.key == *key)?;
        self.slots.remove(at).map(|slot| slot.value)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[derive(Clone, Default)]
    struct Value {
        used: Rc<Cell<bool>>,
        busy: Rc<Cell<bool>>,
    }

    impl Tracked for Value {
        fn take_used(&self) -> bool {
            self.used.replace(false)
        }
        fn busy(&self) -> bool {
            self.busy.get()
        }
    }

    /// A cache of `capacity` keys driven by a trace of lookups; returns the
    /// lookups that missed (each a token fetch in the real cache).
    fn misses(capacity: usize, trace: &str) -> String {
        let mut ring = ClockRing::new();
        let mut values: std::collections::HashMap<char, Value> = Default::default();
        let now = Instant::now();
        let mut missed = String::new();
        for key in trace.chars() {
            if let Some(value) = values.get(&key) {
                value.used.set(true);
                continue;
            }
            missed.push(key);
            for (gone, _) in ring.make_room(capacity - 1, now) {
                values.remove(&gone);
            }
            let value = Value::default();
            values.insert(key, value.clone());
            ring.push(key, value, now);
        }
        missed
    }

    #[tokio::test(start_paused = true)]
    async fn traces() {
        #[rustfmt::skip]
        let cases = [
            ("a working set within capacity: one miss each", 3, "abcabcabcabc", "abc"),
            ("a cycle one longer than capacity: every lookup misses (as in LRU)", 3, "abcdabcdabcd", "abcdabcdabcd"),
            ("a key used between additions is never dropped", 3, "hahbhchdhehf", "habcdef"),
            ("a key added and never used again goes first", 3, "abacad", "abcd"),
            ("capacity one: the newest key stays", 1, "aabba", "aba"),
        ];
        for (name, capacity, trace, want) in cases {
            assert_eq!(misses(capacity, trace), want, "{name}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn busy_keys_get_second_chances_but_the_bound_holds() {
        let now = Instant::now();
        let mut ring = ClockRing::new();
        let values: Vec<Value> = (0..3).map(|_| Value::default()).collect();
        for (key, value) in values.iter().enumerate() {
            ring.push(key, value.clone(), now);
        }
        values[0].busy.set(true);
        let dropped: Vec<usize> = ring.make_room(2, now).into_iter().map(|(k, _)| k).collect();
        assert_eq!(dropped, [1], "the busy front key is skipped");
        values[2].busy.set(true);
        let dropped: Vec<usize> = ring.make_room(1, now).into_iter().map(|(k, _)| k).collect();
        assert_eq!(dropped.len(), 1, "every key busy: one goes anyway");
        assert_eq!(ring.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_go_no_sooner_than_the_idle_time_after_their_last_use() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let idle = Duration::from_secs(60);
        let mut ring = ClockRing::new();
        let (a, b, c) = (Value::default(), Value::default(), Value::default());
        ring.push('a', a.clone(), at(0));
        ring.push('b', b.clone(), at(0));
        ring.push('c', c.clone(), at(0));
        b.used.set(true); // used at 30 s
        assert!(ring.drop_idle(idle, at(30)).is_empty());
        c.busy.set(true);
        let dropped: Vec<char> = ring
            .drop_idle(idle, at(60))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(dropped, ['a'], "b was used at 30 s, c is fetching");
        assert!(ring.drop_idle(idle, at(89)).is_empty());
        c.busy.set(false);
        let dropped: Vec<char> = ring
            .drop_idle(idle, at(90))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(dropped, ['b', 'c']);
        assert_eq!(ring.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn remove_takes_one_key() {
        let now = Instant::now();
        let mut ring = ClockRing::new();
        ring.push(1, Value::default(), now);
        ring.push(2, Value::default(), now);
        assert!(ring.remove(&1).is_some());
        assert!(ring.remove(&1).is_none());
        assert_eq!(ring.len(), 1);
    }
}
