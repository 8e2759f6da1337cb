//! The keyed cache: one token per key (a workspace, an audience, a user, a
//! scope set), all keys in one bounded structure that shares one view of the
//! token endpoint.
//!
//! Each key is a [`TokenCache`](crate::TokenCache) of its own, so every
//! single-token guarantee holds per key (one fetch however many callers,
//! invalidation by generation, refresh ahead only when used, backoff, a
//! still-valid token served while a refresh fails, paced replacements).
//! What keys share lives once: the settings, the
//! [`EndpointGate`](crate::cache::EndpointGate), the generation counter, the
//! totals. An idle key is a map entry and a few hundred bytes; no key has a
//! task.
//!
//! A key's token source is made by a factory the first time the key is used
//! (one that may fail, with a typed error and a backoff per key), or put in
//! with `insert` (a signed-in user's, from the login callback).
//!
//! - [`KeyedTokenCache`] (keyed_cache.rs): the handle and its API;
//!   [`KeyedTokenCacheBuilder`] (builder.rs) its settings; keys.rs the
//!   engine: the map read without a lock, the ring under one, and how a
//!   key's source is made or put in.
//! - [`CacheSelector`] and [`KeyedBy`] (select.rs): which cache a request's
//!   token comes from, for
//!   [`BearerAuthLayer::keyed`](crate::BearerAuthLayer::keyed).
//! - [`SourceError`] (source_error.rs): why a key has no source.
//! - clock_ring.rs: which keys are dropped (CLOCK); failed_keys.rs: which
//!   keys' factory is not asked again yet; [`KeyedStats`] (stats.rs).

mod builder;
mod clock_ring;
mod failed_keys;
mod keyed_cache;
mod keys;
mod select;
mod source_error;
mod stats;

pub use self::builder::KeyedTokenCacheBuilder;
pub use self::keyed_cache::KeyedTokenCache;
pub use self::select::{CacheSelector, KeyedBy};
pub use self::source_error::SourceError;
pub use self::stats::KeyedStats;
