//! Carries a [`Run`](super::protocol::Run) out against Redis and the token
//! source: each action of the protocol becomes one script, one wait or one
//! request, and its answer the next event. Nothing here decides anything.
//!
//! A run goes on in the caller's task until it must finish
//! ([`Run::must_finish`](super::protocol::Run::must_finish): it started a
//! chain or a redemption, or it has a token to write); from there it goes on
//! in a task of its own, so that a cache giving up on the fetch (its timeout)
//! cannot leave a mark behind with nobody to clear it, nor a fetched token
//! unwritten. That task lives on the caller's runtime: if the runtime goes,
//! the mark stays, and the fleet treats it as a process that died
//! mid-redemption. Runs of one tier take turns (`Inner::turn`), so that a run
//! never reads what a run of its own process is still changing.
//!
//! # Where each part is
//!
//! `run_loop.rs` steps the run and hands each action on: a read to
//! `read.rs`; the token entry's and the lease's scripts to
//! `token_scripts.rs`, the chain's to `chain_scripts.rs`, each sent by
//! `script_call.rs`; a fetch or a redemption to `upstream.rs`, whose answer
//! to a redemption `redemption_verdict.rs` reads; a wait to `waiter.rs`.
//! While a run holds the lease, `lease_renewal.rs` renews it. `nonce.rs`
//! makes the random ids written (lease nonces, chain epochs).

mod chain_scripts;
mod lease_renewal;
mod nonce;
mod read;
mod redemption_verdict;
mod run_loop;
mod script_call;
mod token_scripts;
mod upstream;
mod waiter;
