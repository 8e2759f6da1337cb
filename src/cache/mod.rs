//! The token cache: lock-free reads, single-flight fetches, refresh ahead of
//! expiry on use, backoff after failures, invalidation by generation, and
//! paced replacements when servers keep rejecting tokens.
//!
//! [`TokenCache`] and what it hands out and reports: [`CurrentToken`] with
//! its [`Generation`], [`CacheStats`], and the [`EndpointGate`] that caches
//! sharing one token endpoint go through.
//!
//! A token is read without a lock or an allocation, and its expiry is checked
//! against a clock that needs no runtime, so one cache can serve clients on
//! many runtimes and a token nobody uses is never refreshed.

// How it works (for maintainers).
//
// The current token lives in an `ArcSwapOption` with its prepared
// `Authorization` value and one atomic deadline (`cached_token`). Handing
// it out is a pointer load, a coarse clock read (about 9 ns), one relaxed
// atomic load and a `HeaderValue` clone: no lock, no allocation, no task.
// Time is read on use, so a token's life ends on time whichever runtime reads
// it, even after the runtime that fetched it is gone, and a token nobody uses
// costs nothing and is never refreshed.
//
// Everything else takes the slow path: a mutex, never held across an
// `.await`, under which `decide::decide` (a pure function) says
// what a caller gets and whether a fetch starts. At most one fetch runs at a
// time (`flight`), in a task of its own on the caller's runtime, so
// dropping the caller that started it cancels nothing; every waiter gets its
// result. A fetch that never completes (its runtime shut down, its task
// never ran) frees its slot, and waiters start another.
//
// One cache is one `Entry`; what does not depend on the token (the
// settings, the `EndpointGate`, the generation counter, a keyed cache's
// totals) lives in a `Common` that every key of a
// `KeyedTokenCache` shares, so that an idle key
// costs a few hundred bytes and no task. Every fetch goes through one
// function, `fetch_task`: its turn at the gate, the source, the result;
// `landing` installs the result or records the failure and its backoff.

pub(crate) mod backoff;
mod cached_token;
mod clock;
mod common;
pub(crate) mod config;
mod current_token;
mod decide;
mod entry;
mod fetch_task;
mod flight;
mod gate;
mod gate_builder;
mod landing;
mod metrics;
mod overload;
pub(crate) mod schedule;
mod stats;
mod timer;
mod token_cache;
mod turns;

pub(crate) use self::common::Common;
pub use self::config::TokenCacheBuilder;
pub use self::current_token::{CurrentToken, Generation};
pub use self::gate::{EndpointGate, GateStats};
pub use self::gate_builder::EndpointGateBuilder;
pub use self::stats::CacheStats;
pub use self::token_cache::TokenCache;
