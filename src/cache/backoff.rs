//! How long to wait before the next fetch: after failed fetches, and between
//! the replacements of tokens that servers keep rejecting. [`equal_jitter`] is
//! the crate's one exponential backoff: the shared tier backs off from Redis
//! with it too.

use std::time::Duration;

use super::config::CacheConfig;
use crate::error::{ErrorKind, TokenError};

/// The delay before the next fetch after the `failures`-th consecutive failure
/// (counting from 1) that ended with `error`.
///
/// Exponential from `initial_backoff`, capped at `max_backoff`, with "equal
/// jitter" (half fixed, half random) so that callers spread out but never retry
/// immediately. A permanent error waits the full `max_backoff`: repeating it
/// cannot help. A server's `Retry-After` is honoured up to `max_retry_after`.
pub(crate) fn delay_after_failure(
    failures: u32,
    error: &TokenError,
    config: &CacheConfig,
    random: f64,
) -> Duration {
    let jittered = match error.kind() {
        // Repeating a permanent failure cannot help: wait the longest, no jitter.
        ErrorKind::Permanent => config.max_backoff,
        ErrorKind::Transient => {
            equal_jitter(failures, config.initial_backoff, config.max_backoff, random)
        }
    };
    match error.retry_after() {
        Some(asked) => jittered.max(asked.min(config.max_retry_after)),
        None => jittered,
    }
}

/// The delay after the `n`-th failure in a row (counting from 1): `initial`
/// doubling with each failure up to `max`, with "equal jitter" (half fixed,
/// half random; `random` in `[0, 1)`), so that retries spread out but never
/// come at once.
pub(crate) fn equal_jitter(n: u32, initial: Duration, max: Duration, random: f64) -> Duration {
    let half = doubling(n, initial, max) / 2;
    half + half.mul_f64(random.clamp(0.0, 1.0))
}

/// `initial * 2^(n-1)`, capped at `max`; no jitter.
pub(crate) fn doubling(n: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = n.saturating_sub(1).min(30);
    initial
        .checked_mul(1u32 << doublings)
        .unwrap_or(max)
        .min(max)
}

/// `initial_backoff * 2^(n-1)`, capped at `max_backoff`; no jitter.
pub(crate) fn exponential(n: u32, config: &CacheConfig) -> Duration {
    doubling(n, config.initial_backoff, config.max_backoff)
}

/// The pace before the replacement that follows `replacements` in a run (see
/// `decide`'s module docs): the initial backoff for the first paced one,
/// doubling up to the maximum backoff.
pub(crate) fn replacement_pace(replacements: u32, config: &CacheConfig) -> Duration {
    exponential(
        replacements
            .saturating_sub(config.rejections_before_pacing)
            .saturating_add(1),
        config,
    )
}

/// A random number in `[0, 1)`, good enough for jitter (not for secrets).
pub(crate) fn jitter() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    // Each RandomState has fresh keys, so hashing nothing yields a new random value.
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_double_up_to_the_cap() {
        let config = CacheConfig::default();
        let err = TokenError::transient("503");
        let delays: Vec<_> = (1..=10)
            .map(|n| delay_after_failure(n, &err, &config, 1.0))
            .collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(500));
        assert_eq!(delays[9], Duration::from_secs(30));
        // Jitter never goes below half.
        assert_eq!(
            delay_after_failure(1, &err, &config, 0.0),
            Duration::from_millis(125)
        );
        // Huge failure counts do not overflow.
        assert_eq!(exponential(u32::MAX, &config), Duration::from_secs(30));
    }

    #[test]
    fn equal_jitter_doubles_up_to_the_cap() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(30));
        let table = [
            (1, 1.0, Duration::from_secs(1)),
            (1, 0.0, Duration::from_millis(500)),
            (2, 1.0, Duration::from_secs(2)),
            (5, 1.0, Duration::from_secs(16)),
            (6, 1.0, Duration::from_secs(30)),
            (u32::MAX, 0.0, Duration::from_secs(15)),
        ];
        for (failures, random, want) in table {
            assert_eq!(
                equal_jitter(failures, initial, max, random),
                want,
                "{failures} {random}"
            );
        }
    }

    #[test]
    fn permanent_failures_wait_the_maximum_and_retry_after_is_honoured() {
        let config = CacheConfig::default();
        let err = TokenError::permanent("invalid_client");
        assert_eq!(
            delay_after_failure(1, &err, &config, 1.0),
            Duration::from_secs(30)
        );

        let limited = TokenError::transient("429").with_retry_after(Duration::from_secs(90));
        assert_eq!(
            delay_after_failure(1, &limited, &config, 0.0),
            Duration::from_secs(90)
        );
        let absurd = TokenError::transient("429").with_retry_after(Duration::from_secs(86_400));
        assert_eq!(
            delay_after_failure(1, &absurd, &config, 0.0),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn replacements_are_paced_after_the_tolerated_ones_then_the_pace_doubles() {
        let config = CacheConfig::default();
        let table = [
            (0, Duration::from_millis(250)),
            (3, Duration::from_millis(250)),
            (4, Duration::from_millis(500)),
            (5, Duration::from_secs(1)),
            (20, Duration::from_secs(30)),
            (u32::MAX, Duration::from_secs(30)),
        ];
        for (replacements, want) in table {
            assert_eq!(
                replacement_pace(replacements, &config),
                want,
                "{replacements}"
            );
        }
    }

    #[test]
    fn jitter_is_in_unit_interval_and_varies() {
        let values: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.windows(2).any(|w| w[0] != w[1]));
    }
}
