//! The wall clock signed assertions take `iat`, `nbf` and `exp` from.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

type Now = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Where a signed assertion's times (`iat`, `nbf`, `exp`) come from: the
/// system's clock unless set otherwise.
///
/// Assertions carry calendar time, which the server compares with its own
/// clock, so they cannot use the monotonic clock the cache counts lifetimes
/// with. Inject a clock to make those claims exact in tests (below, one that
/// follows tokio's paused clock) or to correct a clock known to be off.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use tower_bearer::oauth2::WallClock;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let start = tokio::time::Instant::now();
/// let clock = WallClock::from_fn(move || {
///     UNIX_EPOCH + Duration::from_secs(1_800_000_000) + start.elapsed()
/// });
/// tokio::time::advance(Duration::from_secs(90)).await;
/// assert_eq!(clock.unix_seconds(), 1_800_000_090);
/// assert!(WallClock::system().now() > UNIX_EPOCH);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct WallClock {
    /// `None`: the system's clock.
    now: Option<Now>,
}

impl WallClock {
    /// The system's clock (`SystemTime::now()`).
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self {
            now: Some(Arc::new(now)),
        }
    }

    /// The time now.
    pub fn now(&self) -> SystemTime {
        match &self.now {
            Some(now) => now(),
            None => SystemTime::now(),
        }
    }

    /// Whole seconds since the Unix epoch (JWT's `NumericDate`), 0 for a
    /// clock set before 1970.
    pub fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    }
}

impl fmt::Debug for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.now {
            Some(_) => "WallClock(custom)",
            None => "WallClock(system)",
        })
    }
}
