//! A simulated Redis: keys with expiries, the scripts' effects written again
//! in Rust, line for line after the Lua in [`scripts`](super::super::scripts)
//! (the real-Redis suites check the Lua itself), and the faults Redis has:
//! it forgets everything (a flush, a restart without data), goes back to an
//! older write of a key (a failover to a replica that missed it), and holds
//! what nobody should have written (no time to live, garbage).
//!
//! Sealing is modelled by the identity each value was sealed for: a value
//! opens only for a reader of the same identity, as AES-GCM with the
//! identity as associated data does.
//!
//! `keyspace.rs` is Redis itself: keys with expiries, their past writes,
//! and the faults; `values.rs` what its keys hold; `scripts.rs` the
//! scripts' effects.

mod keyspace;
mod scripts;
mod values;

pub(super) use self::keyspace::Store;
pub(super) use self::scripts::{Acquired, Read, Sealed};
pub(super) use self::values::{ChainValue, TokenValue, Value};
