//! The keys of a keyed cache: a map from key to [`TokenCache`] read without
//! a lock, a CLOCK ring, under a lock, that decides which keys stay, and
//! where each key's source comes from.

use super::clock_ring::{ClockRing, Tracked};
use super::failed_keys::FailedKeys;
use super::source_error::SourceError;
use super::stats::KeyCounters;
use crate::cache::{Common, EndpointGate, TokenCache};
use crate::error::TokenError;
use crate::source::BoxTokenSource;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Makes the token source of a key, or says why it cannot.
pub(super) type Factory<K> = dyn Fn(&K) -> Result<BoxTokenSource, TokenError> + Send + Sync;
/// Names a key in tracing.
pub(super) type Labeler<K> = dyn Fn(&K) -> String + Send + Sync;

/// How the map hashes keys: foldhash (its "quality" variant), seeded at
/// random for each cache. A lookup hashes the key on every request, and
/// SipHash, the standard library's default, was 191 of the lookup's 343
/// instructions for a 12-byte key (BENCHMARKS.md). foldhash resists HashDoS
/// only as far as its per-cache random seed stays secret (it is not a keyed
/// cryptographic hash like SipHash): keys that come from requests can be
/// chosen by whoever sends them, but every new key also costs a call of the
/// factory and a token fetch, and the cache holds at most `max_keys`, so
/// check untrusted keys before they reach it (see the type's docs) whatever
/// the hash.
pub(super) type KeyHasher = foldhash::quality::RandomState;

pub(super) struct Keys<K> {
    /// Read without a lock; written only under `ring`'s lock, so that the map
    /// and the ring always hold the same keys.
    pub(super) map: papaya::HashMap<K, TokenCache, KeyHasher>,
    pub(super) ring: Mutex<Ring<K>>,
    /// `None`: keys come only from `insert`.
    pub(super) factory: Option<Box<Factory<K>>>,
    /// Keys whose factory failed, not asked again before their backoff ends.
    /// Never locked while `ring` is held.
    pub(super) failed: Mutex<FailedKeys<K>>,
    pub(super) labeler: Option<Box<Labeler<K>>>,
    pub(super) common: Arc<Common>,
    /// The gate, also in `common`: kept here so that `gate()` needs no unwrap.
    pub(super) gate: EndpointGate,
    pub(super) max_keys: usize,
    pub(super) idle_after: Option<Duration>,
    pub(super) counters: KeyCounters,
}

pub(super) struct Ring<K> {
    pub(super) clock: ClockRing<K, TokenCache>,
    /// When the next pass over idle keys is due.
    pub(super) next_idle_pass: Option<Instant>,
}

impl Tracked for TokenCache {
    fn take_used(&self) -> bool {
        TokenCache::take_used(self)
    }

    fn busy(&self) -> bool {
        self.is_fetching()
    }
}

/// How a key's source came to the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Added {
    /// The factory made it: a source already held for the key wins.
    Made,
    /// `insert`: it replaces a source held for the key.
    Inserted,
}

impl<K> Keys<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    pub(super) fn lock_ring(&self) -> MutexGuard<'_, Ring<K>> {
        // Nothing of the user's runs under this lock, and the ring is never
        // left half-changed; a panic elsewhere must not stop every key.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn lock_failed(&self) -> MutexGuard<'_, FailedKeys<K>> {
        self.failed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `key`'s source with the factory and adds the key, unless the
    /// factory failed for it too recently.
    #[cold]
    pub(super) fn make(&self, key: &K) -> Result<TokenCache, TokenError> {
        let Some(factory) = &self.factory else {
            return Err(SourceError::not_inserted());
        };
        if let Some((error, left)) = self.lock_failed().refusal(key, Instant::now()) {
            return Err(SourceError::factory_failed(error, left));
        }
        // Under no lock: a slow factory holds up the callers of this key only.
        match factory(key) {
            Ok(source) => Ok(self.install(key.clone(), source, Added::Made)),
            Err(error) => {
                let mut failed = self.lock_failed();
                // Added meanwhile (inserted, or made by another caller): it
                // serves. `install` adds to the map before it takes `failed`
                // to forget the key, so under `failed` either the key is seen
                // here or the record below is forgotten after.
                if let Some(cache) = self.map.pin().get(key) {
                    cache.mark_used();
                    return Ok(cache.clone());
                }
                KeyCounters::add(&self.counters.factory_errors, 1);
                let retry_in = failed.record(key.clone(), error.clone(), Instant::now());
                Err(SourceError::factory_failed(error, retry_in))
            }
        }
    }

    /// Adds `key` with `source`, making room first; a made source gives way
    /// to one already held, an inserted one replaces it.
    pub(super) fn install(&self, key: K, source: BoxTokenSource, how: Added) -> TokenCache {
        // The labeler is the user's code: run outside the lock.
        let label = self.labeler.as_ref().map(|labeler| labeler(&key));
        let mut ring = self.lock_ring();
        let map = self.map.pin();
        let replaced = match (map.get(&key), how) {
            (Some(cache), Added::Made) => {
                cache.mark_used();
                return cache.clone();
            }
            (Some(_), Added::Inserted) => ring.clock.remove(&key),
            (None, _) => None,
        };
        let now = Instant::now();
        self.drop_idle_if_due(&mut ring, now);
        // Room first, so that the new key is never its own victim.
        let evicted = ring.clock.make_room(self.max_keys - 1, now);
        KeyCounters::add(&self.counters.evicted, evicted.len());
        for (gone, _) in &evicted {
            map.remove(gone);
        }
        let label = label.unwrap_or_else(|| format!("#{}", self.counters.added() + 1));
        let cache = TokenCache::from_parts(
            source,
            Arc::clone(&self.common),
            Some(label.into_boxed_str()),
        );
        map.insert(key.clone(), cache.clone());
        ring.clock.push(key.clone(), cache.clone(), now);
        let counter = match how {
            Added::Made => &self.counters.created,
            Added::Inserted => &self.counters.inserted,
        };
        KeyCounters::add(counter, 1);
        drop(ring);
        drop(map);
        self.lock_failed().forget(&key);
        // Dropped outside the locks: the last reference to an evicted or
        // replaced key's cache frees its token here.
        drop(evicted);
        drop(replaced);
        cache
    }

    pub(super) fn drop_idle_if_due(&self, ring: &mut Ring<K>, now: Instant) {
        let Some(idle) = self.idle_after else {
            return;
        };
        match ring.next_idle_pass {
            Some(due) if now >= due => {
                self.drop_idle(ring, now);
            }
            Some(_) => {}
            None => ring.next_idle_pass = Some(now + idle_pass_interval(idle)),
        }
    }

    /// One pass over idle keys; schedules the next.
    pub(super) fn drop_idle(&self, ring: &mut Ring<K>, now: Instant) -> usize {
        let Some(idle) = self.idle_after else {
            return 0;
        };
        let dropped = ring.clock.drop_idle(idle, now);
        let map = self.map.pin();
        for (gone, _) in &dropped {
            map.remove(gone);
        }
        KeyCounters::add(&self.counters.expired, dropped.len());
        ring.next_idle_pass = Some(now + idle_pass_interval(idle));
        dropped.len()
    }
}

/// How often idle keys are looked for (when keys are added): an eighth of
/// the idle time, so that a key goes at most a quarter of it late.
fn idle_pass_interval(idle: Duration) -> Duration {
    (idle / 8).max(Duration::from_millis(1))
}
