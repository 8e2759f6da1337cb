//! A shared tier on Redis behind the in-process cache, so that a fleet of
//! processes fetches one token per token lifetime instead of one per process
//! (feature `redis`).
//!
//! # When to use it
//!
//! When many replicas call one API with one client identity, and the
//! identity provider bills or throttles token requests (Auth0 counts every
//! machine-to-machine token against a monthly quota, Cognito charges per
//! thousand), or when refresh tokens rotate: two replicas redeeming the same
//! refresh token make a server with reuse detection (oidc-provider, Okta,
//! Auth0, Keycloak) revoke the whole grant.
//!
//! # How it works
//!
//! A [`SharedTier`] wraps your [`TokenSource`](crate::TokenSource) and is
//! itself the source of an ordinary [`TokenCache`](crate::TokenCache) (or
//! [`BearerAuthLayer`](crate::BearerAuthLayer)). The cache stays the hot
//! path: requests never touch Redis. The tier is asked only when the cache
//! needs a token (none yet, one due for refresh, one a server rejected), at
//! most once at a time per process (the cache's single flight). Then it
//!
//! 1. reads the shared entry (one script): a token with life left that is
//!    newer than the one this process's cache holds (after a rejection:
//!    newer than the rejected one) is handed to the cache, and no token
//!    request is made. So a cache asking because its token is due never gets
//!    that token back, and the tier needs none of the cache's timing;
//! 2. otherwise takes the fleet's lease (a key with a time to live, renewed
//!    while its holder works), fetches from your source, writes the token
//!    under the lease's fence (even if the cache stopped waiting meanwhile)
//!    and wakes the waiting processes (pub/sub);
//! 3. or, while another process holds the lease, waits for it, however long
//!    it takes: the cache's fetch timeout bounds the wait, and a slow token
//!    endpoint is asked once for the whole fleet.
//!
//! With rotating refresh tokens ([`SharedTierBuilder::build_refreshing`]),
//! the refresh token lives in Redis too, sealed, with its place in the
//! chain. The lease holder marks it in Redis before presenting it, and only
//! that holder may store the next one; so **a refresh token is presented to
//! the token endpoint at most once, fleet-wide**. The protocol is a pure
//! state machine (`protocol/`), run the same way by the Redis driver and by
//! a deterministic simulation that checks it over 10,000 seeds of faults in
//! the test suite.
//!
//! Tokens and refresh tokens are sealed with AES-256-GCM under a key you
//! supply ([`EncryptionKey`], which also describes key rotation), bound to
//! their identity: no (namespace, tenant) pair shares a Redis key with
//! another or opens another's entry. Every key written expires. Times in
//! Redis are the Redis server's own (`TIME`); a process sends only how long
//! its token has left, so host clocks never matter. `rediss://` URLs use TLS
//! (rustls, `ring`). The Redis URL's password never appears in `Debug`
//! output, errors or logs.
//!
//! # What holds under each fault
//!
//! Every Redis command is bounded by [`redis_timeout`](SharedTierBuilder::redis_timeout)
//! (500 ms); after a failure Redis is left alone for a
//! [backoff](SharedTierBuilder::redis_backoff) (1 s doubling to 30 s). The
//! caches keep serving the tokens they hold throughout.
//!
//! | Fault | What the fleet does |
//! | --- | --- |
//! | Redis down, stalled, backing off | A plain tier's fetch goes to your source, once per process; a refreshing tier's fails ([`FleetError::RedisUnavailable`], transient): no refresh token is redeemed without Redis |
//! | Redis flushed, restarted empty, failed over without the data, key evicted | Plain: one process fetches again for the fleet. Refreshing: every process that had seen the chain fails with [`ChainLost(Forgotten)`](ChainLoss::Forgotten) and records the loss in Redis, so that no process starts over from its own (spent) refresh token |
//! | Redis goes back to an older write (failover to a replica that missed it, AOF losing its last second) | Plain: a process never takes an older token than the one it has. Refreshing: a process that had seen the newer place in the chain fails with [`ChainLost(RolledBack)`](ChainLoss::RolledBack) and records it |
//! | A lease holder dies | Its lease expires after [`lease_ttl`](SharedTierBuilder::lease_ttl) (5 s) and another process takes over |
//! | A lease holder stalls past its lease (GC pause, SIGSTOP) | Plain: another process fetches; the late write is fenced and cannot replace a newer one. Refreshing: its mark stands; nobody else presents that refresh token (the others get [`RedemptionPending`](FleetError::RedemptionPending)); when it resumes it stores what it got, and the fleet carries on |
//! | A redemption gets no answer (timeout, connection lost after sending, a 500) | The refresh token may have been spent: the chain is [`InDoubt`](ChainLoss::InDoubt), nothing is presented again |
//! | The token endpoint fails | The failure is held for the fleet ([`FleetError::HeldFailure`], with its kind, its overload mark only if it had one, its text) under that identity only, for a `Retry-After`, else [`failure_hold`](SharedTierBuilder::failure_hold) (1 s), 30 s if permanent: no other tenant sees it or pauses for it |
//! | The token endpoint is slow | The others wait while the holder renews its lease: one request, not one per process |
//! | Redis holds something this crate did not write (no TTL, a version that is not a number, an entry that does not open) | Validated on every read; expired, ignored or overwritten under the fence: never a reason to stop sharing (a refresh entry that does not open loses the chain: nobody can tell which refresh token is current) |
//! | Hosts' clocks disagree | Nothing changes: no process's clock reaches Redis |
//!
//! # What needs a persistent Redis
//!
//! A plain tier needs nothing of Redis but its answers: lose the data and
//! the fleet fetches once more. A refreshing tier keeps the only record of
//! which refresh token is current, and of which one is being redeemed: when
//! Redis loses it, the fleet stops refreshing ([`FleetError::ChainLost`])
//! rather than guess, until the application authorizes again and calls
//! [`SharedTier::reseed`]. A process can only tell that the chain was lost
//! or rolled back if it had seen the lost part: a process that starts after
//! the loss, with a refresh token from its configuration, cannot (that
//! token may have been spent long ago), nor can one whose last read predates
//! a lost rotation (nor a keyed cache's tier made again after its key was
//! evicted: it starts with an empty memory). The simulation measures this:
//! no refresh token is presented twice while Redis keeps the chain, and
//! after it loses it, only by processes that had not seen the lost part.
//! So for rotating refresh tokens, run Redis so that it does not lose
//! acknowledged writes (AOF with `appendfsync always`, or failover only to
//! replicas that acknowledged them), and give a process a refresh token from
//! configuration only to start a fleet.
//!
//! # Example
//!
//! ```no_run
//! use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
//! use tower_bearer::shared_tier::{EncryptionKey, SharedTier};
//! use tower_bearer::BearerAuthLayer;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = TokenEndpoint::builder("https://login.example.com/oauth/token")
//!     .client_id("billing")
//!     .client_secret(std::env::var("CLIENT_SECRET")?)
//!     .build()?;
//! let key = EncryptionKey::from_base64("2026-11", &std::env::var("TOKEN_KEY")?)?;
//! let tier = SharedTier::builder(std::env::var("REDIS_URL")?)
//!     .namespace("billing-api:prod")
//!     .encryption_key(key)
//!     .build(ClientCredentials::new(endpoint).scope("invoices"))?;
//! let layer = BearerAuthLayer::new(tier);
//! # let _ = layer; Ok(()) }
//! ```

// Where the code is, in the order a fetch meets it:
//
// - tier.rs: SharedTier, one identity's tier, the token source a cache asks.
//   builder.rs: its builder (and SharedTier::builder); tier_config.rs: what
//   every tier of one builder follows; fleet.rs: what those tiers share and
//   how it makes each; keyed_shared_tier.rs: a tier per key.
// - protocol/: what a tier does when asked, as a pure state machine (one Run
//   per token asked), with its own guide; driver/ carries a run out against
//   Redis and the token source.
// - What Redis holds: keys.rs (the key names), identity.rs (whose they
//   are), entry/ (the entries, sealed with encryption.rs and read back),
//   held_failure.rs (a failed fetch held for the fleet), scripts.rs (the Lua
//   that changes them), redis_link.rs (the connection).
// - What the tier reports: error/, stats.rs.
// - sim/ (tests only): the protocol run by a seeded simulation with faults.

mod builder;
mod driver;
mod encryption;
mod entry;
mod error;
mod fleet;
mod held_failure;
mod identity;
mod keyed_shared_tier;
mod keys;
mod protocol;
mod redis_link;
mod scripts;
#[cfg(test)]
mod sim;
mod stats;
mod tier;
mod tier_config;

pub use self::builder::SharedTierBuilder;
pub use self::encryption::EncryptionKey;
pub use self::error::{ChainLoss, FleetError, SharedTierBuildError};
pub use self::keyed_shared_tier::KeyedSharedTier;
pub use self::stats::SharedTierStats;
pub use self::tier::SharedTier;
