//! What the tier keeps in Redis, sealed and read back: the access token entry
//! and the refresh token entry, each a hash of a few fields.
//!
//! `{id}:token` — `v` (the fence of the lease it was written under), `w` (its
//! writer's nonce: which write this is), `life` (the token's lifetime in
//! milliseconds), `exp` (when it expires, in milliseconds of the Redis
//! server's own clock: `TIME` plus the time left, set by the script that
//! writes it), `kid` (the sealing key's id) and `blob` (the sealed access token
//! and scope). The hash expires with the token.
//!
//! `{id}:refresh` — `epoch` (which chain: a random id given when the chain
//! was started), `seq` (its place in the chain, one up per rotation),
//! `origin` (`b`: started from a process's own refresh token; `r`: reseeded
//! by the application), `kid`, `blob` (the sealed refresh token), `by` (the
//! lease that committed it), and while a
//! process redeems it `mark` (that process's lease), `marked` (since when, on
//! the server's clock) and `doubt` (the redemption's outcome is unknown); or
//! `lost` alone, with why (see [`ChainLoss`](super::ChainLoss)).
//!
//! No time in an entry comes from a process's clock: a process sends the time
//! its token has left, and readers get the time left from the server, so the
//! fleet agrees on expiry whatever the hosts' clocks say.
//!
//! Everything read is untrusted: numbers are bounded, ids checked, times
//! capped by the key's own time to live, and a sealed value opens only for the
//! identity, version and writer it was sealed for.
//!
//! `token_entry.rs` seals, parses and opens the access token entry,
//! `refresh_entry.rs` the refresh token entry; `fields.rs` reads the fields
//! of either as the untrusted values they are.

mod fields;
mod refresh_entry;
mod token_entry;

pub(crate) use self::fields::millis;
pub(crate) use self::refresh_entry::{
    open_refresh_token, seal_refresh_token, ChainFields, ChainRecord, MarkRecord, Origin,
};
pub(crate) use self::token_entry::{SealedToken, TokenFields, TokenRecord};
