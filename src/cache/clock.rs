//! The clock a cached token's deadlines are read against, cheap enough to read
//! on every request.
//!
//! A token's usable life must end on time whichever runtime reads it, including
//! after the runtime that fetched it was dropped, so the cache cannot rely on
//! timer tasks: it compares deadlines with a clock on use. `Instant::now()`
//! costs about 40 ns on the machines this crate is measured on, more than
//! everything else the layer adds to a request; the kernel's coarse monotonic
//! clock (`CLOCK_MONOTONIC_COARSE` on Linux, read through the `coarsetime`
//! crate without its shared cache) costs about 9 ns and ticks every 1 to 4 ms
//! (up to 16 ms on Windows). Deadlines read against it are brought forward by
//! [`COARSE_SLACK_TICKS`], so a coarse reading can only make a token stale early,
//! never late.
//!
//! Tests pause tokio's clock and move it by hand. A token installed while
//! tokio's clock is paused is read against tokio's clock instead, so expiry
//! and refresh-ahead follow `tokio::time::advance` exactly.

use std::time::Duration;

use tokio::time::Instant;

/// How far ahead of its deadlines a token read against the coarse clock is
/// treated, so that the clock's resolution never lets a deadline slip: 20 ms,
/// in coarsetime ticks (2^32 per second).
const COARSE_SLACK_TICKS: u64 = (1 << 32) * 20 / 1000;

/// The time base of one cached token: when it was installed, on which clock.
#[derive(Debug, Clone, Copy)]
pub(super) enum TokenClock {
    /// The coarse monotonic clock, in `coarsetime` ticks.
    Coarse {
        /// The reading at installation.
        start: u64,
    },
    /// tokio's clock, which tests pause; counted in nanoseconds.
    Tokio { start: Instant },
}

impl TokenClock {
    /// Starts a token's clock now: the coarse clock, or tokio's if it is paused.
    pub(super) fn start() -> Self {
        if tokio_clock_is_paused() {
            Self::Tokio {
                start: Instant::now(),
            }
        } else {
            Self::Coarse {
                start: coarse_now(),
            }
        }
    }

    /// Time elapsed since the start, in this clock's ticks, rounded late by
    /// the coarse clock's slack. No lock, no allocation, no system call.
    #[inline]
    pub(super) fn elapsed(&self) -> u64 {
        match *self {
            // Each reading may lag the true time by up to the resolution, the
            // start's included: adding the slack makes the result late, not early.
            Self::Coarse { start } => coarse_now()
                .saturating_sub(start)
                .saturating_add(COARSE_SLACK_TICKS),
            Self::Tokio { start } => nanos(Instant::now().saturating_duration_since(start)),
        }
    }

    /// `duration` in this clock's ticks, saturating at `u64::MAX` ("never").
    pub(super) fn ticks(&self, duration: Duration) -> u64 {
        match self {
            Self::Coarse { .. } => coarse_ticks(duration),
            Self::Tokio { .. } => nanos(duration),
        }
    }
}

#[inline]
fn coarse_now() -> u64 {
    // `now()` would also store the reading in a process-wide cache: a write to
    // one shared cache line on every request, from every core.
    coarsetime::Instant::now_without_cache_update().as_ticks()
}

fn coarse_ticks(duration: Duration) -> u64 {
    // coarsetime counts 2^32 ticks per second; beyond 2^32 s (136 years) is never.
    if duration.as_secs() >= 1 << 32 {
        return u64::MAX;
    }
    coarsetime::Duration::from(duration).as_ticks()
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `true` if tokio's clock is paused here (`start_paused`, `tokio::time::pause`).
///
/// A paused clock does not move while this function runs (it only moves when
/// a test advances it, or when the runtime is idle), while a running one moves
/// between two readings. Costs about 80 ns on a running clock; only called when
/// a token is installed.
fn tokio_clock_is_paused() -> bool {
    let first = Instant::now();
    let started = std::time::Instant::now();
    loop {
        if Instant::now() != first {
            return false;
        }
        if started.elapsed() >= Duration::from_micros(20) {
            return true;
        }
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_paused_runtime_uses_tokios_clock() {
        let clock = TokenClock::start();
        assert!(matches!(clock, TokenClock::Tokio { .. }));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.elapsed(), 3_000_000_000);
    }

    #[tokio::test]
    async fn a_running_runtime_uses_the_coarse_clock_and_reads_late() {
        let clock = TokenClock::start();
        assert!(matches!(clock, TokenClock::Coarse { .. }));
        // The slack makes every reading at least that much late, never early.
        assert!(clock.elapsed() >= clock.ticks(Duration::from_millis(20)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(clock.elapsed() >= clock.ticks(Duration::from_millis(30)));
    }

    #[test]
    fn huge_durations_saturate() {
        let coarse = TokenClock::Coarse { start: 0 };
        assert_eq!(coarse.ticks(Duration::MAX), u64::MAX);
        assert_eq!(coarse.ticks(Duration::from_secs(1)), 1 << 32);
        assert!(
            coarse
                .ticks(Duration::from_millis(20))
                .abs_diff(COARSE_SLACK_TICKS)
                <= 1
        );
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }
}
