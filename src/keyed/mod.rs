//! The keyed cache: one token per key (a workspace, an audience, a user, a
//! scope set), all keys in one bounded structure that shares one view of the
//! token endpoint.
//!
//! Each key is a [`TokenCache`](crate::TokenCache) of its own, so every single-token guarantee
//! holds per key (one fetch however many callers, invalidation by generation,
//! refresh ahead only when used, backoff, a still-valid token served while a
//! refresh fails, the rejection cool-down). What keys share lives once: the
//! settings, the [`EndpointGate`](crate::cache::EndpointGate), the generation counter, the totals. An
//! idle key is a map entry and a few hundred bytes; no key has a task.

mod builder;
mod clock_ring;
mod keyed_cache;
mod select;
mod stats;

pub use self::builder::KeyedTokenCacheBuilder;
pub use self::keyed_cache::KeyedTokenCache;
pub use self::select::{CacheSelector, KeyedBy};
pub use self::stats::KeyedStats;
