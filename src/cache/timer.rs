//! Timers that report a runtime without them instead of panicking.
//!
//! Every wait of the cache is bounded by a tokio timer. tokio panics when a
//! timer is made on a runtime built without `enable_time`; the cache turns
//! that into [`CacheError::NoTimer`], a typed error, before it starts
//! anything that would need one.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use tokio::time::{Instant, Sleep, Timeout};

use crate::error::CacheError;

/// `tokio::time::sleep_until`, or [`CacheError::NoTimer`].
pub(crate) fn sleep_until(deadline: Instant) -> Result<Sleep, CacheError> {
    catch_unwind(|| tokio::time::sleep_until(deadline)).map_err(|_| CacheError::NoTimer)
}

/// `tokio::time::timeout`, or [`CacheError::NoTimer`].
pub(crate) fn timeout<F: Future>(limit: Duration, future: F) -> Result<Timeout<F>, CacheError> {
    let mut future = Some(future);
    catch_unwind(AssertUnwindSafe(|| {
        tokio::time::timeout(limit, future.take().expect("called once"))
    }))
    .map_err(|_| CacheError::NoTimer)
}

/// `tokio::time::timeout_at`, or [`CacheError::NoTimer`].
pub(crate) fn timeout_at<F: Future>(
    deadline: Instant,
    future: F,
) -> Result<Timeout<F>, CacheError> {
    let mut future = Some(future);
    catch_unwind(AssertUnwindSafe(|| {
        tokio::time::timeout_at(deadline, future.take().expect("called once"))
    }))
    .map_err(|_| CacheError::NoTimer)
}

/// `true` if the current runtime has timers.
pub(crate) fn available() -> bool {
    sleep_until(Instant::now()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_without_timers_is_an_error_not_a_panic() {
        let without = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        without.block_on(async {
            assert!(!available());
            assert_eq!(sleep_until(Instant::now()).err(), Some(CacheError::NoTimer));
            assert!(timeout(Duration::from_secs(1), async {}).is_err());
        });
        let with = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        with.block_on(async {
            assert!(available());
            assert_eq!(timeout(Duration::MAX, async { 7 }).unwrap().await, Ok(7));
        });
    }
}
