//! The keys whose factory failed, remembered for a while so that the factory
//! is not asked again on every request for them.
//!
//! A failure is remembered per key, with a backoff that doubles with each
//! failure in a row (a permanent error waits the longest at once). Until it
//! ends, every use of the key gets the remembered error without asking the
//! factory; after it, the next use asks again. A success forgets the key.
//!
//! The keys come from requests, so a caller can send as many bogus ones as
//! it likes: the records are capped. When the cap is reached, the record
//! whose backoff ends first makes room (an ended one before any other), so a
//! flood of new bogus keys costs a bounded amount of memory and shortens, at
//! worst, the backoff of the keys closest to being asked again anyway.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{ErrorKind, TokenError};

/// How long the factory is not asked for a key after its `failures`-th
/// failure in a row (counting from 1) ended with `error`.
///
/// Doubles from `initial`, capped at `max`; a permanent error waits `max` at
/// once, since repeating it cannot help. A `Retry-After` on the error is
/// honoured up to `max`. No jitter: the factory runs in this process, asked
/// by the requests for one key as they come, so there is no crowd of
/// clients to spread out, and the delays stay exact.
pub(crate) fn retry_delay(
    failures: u32,
    error: &TokenError,
    initial: Duration,
    max: Duration,
) -> Duration {
    let backoff = match error.kind() {
        ErrorKind::Permanent => max,
        ErrorKind::Transient => {
            let doublings = failures.saturating_sub(1).min(30);
            initial.checked_mul(1 << doublings).unwrap_or(max).min(max)
        }
    };
    match error.retry_after() {
        Some(asked) => backoff.max(asked.min(max)),
        None => backoff,
    }
}

/// One key's remembered failure.
struct Failure {
    error: TokenError,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// When the factory may be asked again.
    retry_at: Instant,
}

/// The failed keys of one keyed cache, at most `capacity` of them.
pub(crate) struct FailedKeys<K> {
    records: HashMap<K, Failure>,
    capacity: usize,
    initial: Duration,
    max: Duration,
}

impl<K: Hash + Eq + Clone> FailedKeys<K> {
    pub(crate) fn new(capacity: usize, initial: Duration, max: Duration) -> Self {
        Self {
            records: HashMap::new(),
            capacity: capacity.max(1),
            initial,
            max,
        }
    }

    /// Keys remembered now.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The error to answer for `key` without asking the factory, and how
    /// long until it may be asked; `None` if it may be asked now.
    pub(crate) fn refusal(&self, key: &K, now: Instant) -> Option<(TokenError, Duration)> {
        let failure = self.records.get(key)?;
        let left = failure.retry_at.checked_duration_since(now)?;
        (!left.is_zero()).then(|| (failure.error.clone(), left))
    }

    /// The factory failed for `key` with `error`: remembers it, making room
    /// if needed; returns how long until the factory may be asked again.
    pub(crate) fn record(&mut self, key: K, error: TokenError, now: Instant) -> Duration {
        let failures = self.records.get(&key).map_or(0, |f| f.failures) + 1;
        if !self.records.contains_key(&key) && self.records.len() >= self.capacity {
            self.drop_soonest_due();
        }
        let delay = retry_delay(failures, &error, self.initial, self.max);
        self.records.insert(
            key,
            Failure {
                error,
                failures,
                retry_at: now + delay,
            },
        );
        delay
    }

    /// The factory made `key`'s source, or one was inserted: its failures
    /// are over.
    pub(crate) fn forget(&mut self, key: &K) {
        self.records.remove(key);
    }

    /// Drops the record whose backoff ends first.
    fn drop_soonest_due(&mut self) {
        let soonest = self
            .records
            .iter()
            .min_by_key(|(_, failure)| failure.retry_at)
            .map(|(key, _)| key.clone());
        if let Some(key) = soonest {
            self.records.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn retry_delays() {
        let transient = TokenError::transient("config service down");
        let permanent = TokenError::permanent("no such tenant");
        let asked = |secs| TokenError::transient("busy").with_retry_after(secs * S);
        #[rustfmt::skip]
        let cases = [
            ("a first transient failure waits the initial delay", 1, &transient, S),
            ("the second twice that", 2, &transient, 2 * S),
            ("doubling up to the cap", 6, &transient, 32 * S),
            ("and no further", 7, &transient, 60 * S),
            ("far past the cap, no overflow", u32::MAX, &transient, 60 * S),
            ("a permanent error waits the cap at once", 1, &permanent, 60 * S),
            ("a Retry-After longer than the backoff is honoured", 1, &asked(5), 5 * S),
            ("one shorter changes nothing", 3, &asked(1), 4 * S),
            ("one past the cap waits the cap", 1, &asked(3600), 60 * S),
        ];
        for (name, failures, error, want) in cases {
            assert_eq!(retry_delay(failures, error, S, 60 * S), want, "{name}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_answered_until_its_backoff_ends_and_doubles_in_a_row() {
        let start = Instant::now();
        let mut failed = FailedKeys::new(10, S, 60 * S);
        let error = TokenError::transient("down");
        assert!(failed.refusal(&"a", start).is_none(), "never failed");
        assert_eq!(failed.record("a", error.clone(), start), S);
        let (answer, left) = failed.refusal(&"a", start).unwrap();
        assert_eq!((answer.to_string(), left), ("down".to_owned(), S));
        assert_eq!(failed.refusal(&"a", start + S / 4).unwrap().1, S * 3 / 4);
        assert!(failed.refusal(&"a", start + S).is_none(), "asked again");
        assert!(failed.refusal(&"b", start).is_none(), "per key");
        assert_eq!(failed.record("a", error.clone(), start + S), 2 * S);
        failed.forget(&"a");
        assert!(failed.refusal(&"a", start + S).is_none());
        assert_eq!(
            failed.record("a", error, start + S),
            S,
            "a success starts afresh"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_records_are_capped_and_the_soonest_due_makes_room() {
        let start = Instant::now();
        let mut failed = FailedKeys::new(3, S, 60 * S);
        let transient = TokenError::transient("down");
        failed.record(1, TokenError::permanent("gone"), start); // due at 60 s
        failed.record(2, transient.clone(), start); // due at 1 s
        failed.record(2, transient.clone(), start); // again: due at 2 s
        failed.record(3, transient.clone(), start); // due at 1 s
        assert_eq!(failed.len(), 3);
        for bogus in 100..200 {
            failed.record(bogus, transient.clone(), start + S / 2);
            assert_eq!(failed.len(), 3, "however many bogus keys");
        }
        // 3 (due at 1 s) went first, then each bogus key (due at 1.5 s) made
        // room for the next; 1 and 2, due later, stayed.
        assert!(failed.refusal(&1, start + S).is_some());
        assert!(failed.refusal(&2, start + S).is_some());
        assert!(failed.refusal(&3, start).is_none());
        assert!(failed.refusal(&198, start + S).is_none());
        assert!(failed.refusal(&199, start + S).is_some());
    }
}
