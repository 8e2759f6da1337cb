//! `EndpointGateBuilder`: the limit and the pauses of an [`EndpointGate`],
//! with their defaults.

use std::time::Duration;

use super::gate::EndpointGate;

// Defaults, stated again in the setter docs of `EndpointGateBuilder`.
const DEFAULT_MAX_IN_FLIGHT: usize = 16;
const DEFAULT_INITIAL_PAUSE: Duration = Duration::from_millis(250);
const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

impl EndpointGate {
    /// A builder to set the limit and the pauses.
    pub fn builder() -> EndpointGateBuilder {
        EndpointGateBuilder::default()
    }
}

/// Builds an [`EndpointGate`].
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::cache::EndpointGate;
///
/// let gate = EndpointGate::builder()
///     .max_in_flight(32)
///     .pause(Duration::from_millis(500), Duration::from_secs(60))
///     .max_retry_after(Duration::from_secs(120))
///     .build();
/// assert_eq!(gate.max_in_flight(), 32);
/// ```
#[derive(Debug, Clone)]
pub struct EndpointGateBuilder {
    max_in_flight: usize,
    initial_pause: Duration,
    max_pause: Duration,
    max_retry_after: Duration,
}

impl EndpointGateBuilder {
    /// How many token requests may be in flight at once. At least 1, so
    /// that a zero cannot stop every fetch for good. Defaults to 16.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// The first and the longest pause after overload answers without a
    /// `Retry-After` (`429`, `503`, `temporarily_unavailable`, `slow_down`);
    /// it doubles with each one in a row. Defaults to 250 milliseconds,
    /// doubling up to 30 seconds. `initial` is at least one millisecond.
    pub fn pause(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_pause = initial.max(Duration::from_millis(1));
        self.max_pause = max.max(self.initial_pause);
        self
    }

    /// The longest `Retry-After` honoured; longer requests are cut to this.
    /// Defaults to 10 minutes.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Builds the gate.
    pub fn build(self) -> EndpointGate {
        EndpointGate::with_settings(
            self.max_in_flight,
            self.initial_pause,
            self.max_pause,
            self.max_retry_after,
        )
    }
}

impl Default for EndpointGateBuilder {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            initial_pause: DEFAULT_INITIAL_PAUSE,
            max_pause: DEFAULT_MAX_PAUSE,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}
