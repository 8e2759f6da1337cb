//! What every key of one cache shares.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use super::config::CacheConfig;
use super::stats::StatsCounters;
use super::EndpointGate;

/// What every entry of one cache shares.
pub(crate) struct Common {
    pub(crate) config: CacheConfig,
    pub(crate) gate: Option<EndpointGate>,
    /// Generations are unique across the keys of a keyed cache, so that a
    /// rejection can never name another key's token, nor that of a key that
    /// was evicted and fetched again.
    pub(super) generations: AtomicU64,
    /// A keyed cache's counters over all its keys, evicted ones included
    /// (boxed: a single cache does without them at the cost of a pointer).
    pub(crate) totals: Option<Box<StatsCounters>>,
}

impl Common {
    /// The one `Common` of every single-key cache built with the default
    /// settings and no gate. Nothing in it belongs to one cache: the
    /// generation counter only has to give each token a number no other
    /// token of the same cache has.
    pub(crate) fn shared_default() -> Arc<Self> {
        static DEFAULT: OnceLock<Arc<Common>> = OnceLock::new();
        Arc::clone(
            DEFAULT.get_or_init(|| Arc::new(Common::new(CacheConfig::default(), None, false))),
        )
    }

    pub(crate) fn new(config: CacheConfig, gate: Option<EndpointGate>, keyed: bool) -> Self {
        Self {
            config,
            gate,
            generations: AtomicU64::new(0),
            totals: keyed.then(Box::default),
        }
    }
}
