//! The fleet protocol as a pure state machine: one [`Run`] per token a
//! process asks its tier for. Events come in (what Redis answered, what the
//! token source answered, that a wait ended); actions go out (read, take the
//! lease, fetch, write, mark a redemption, commit it, answer the cache). The
//! Redis and HTTP parts ([`driver`](super::driver)) only carry actions out,
//! and the simulation (`sim`, in tests) carries them out against a simulated
//! store and provider, so both run this very code.
//!
//! # What a run does
//!
//! 1. It reads the identity's entries. A token the cache can use is handed to
//!    it: one with life left (see [`Margin`]) that is newer than the token
//!    the cache asks to replace or, when the cache asks because its token is
//!    due, newer than the one this process handed it last. So a cache never
//!    gets its own token back, without the tier knowing the cache's refresh
//!    timing, and a Redis that went back to an older token never makes a
//!    process go backwards. (A token this process fetched for a cache that
//!    had stopped waiting is handed over first, without asking Redis.)
//! 2. Otherwise it takes the lease (or waits while another process holds
//!    it and renews it, however long: the cache's fetch timeout bounds the
//!    wait), fetches, writes under the lease's fence, and answers; once it
//!    has a token to write it goes on even if the cache stops waiting.
//!    Runs of one process's tier take turns: each starts from what the one
//!    before it learnt ([`Memory`]).
//! 3. With rotating refresh tokens, the lease holder first *marks* the
//!    refresh entry (the redemption is under way, by this lease), then
//!    presents the refresh token, then *commits* the rotated one with the
//!    access token, clearing the mark. The mark, not the lease, is what keeps
//!    every other process from presenting the same refresh token: a holder
//!    that stalls past its lease (a GC pause, SIGSTOP) still owns its
//!    redemption, and stores its result when it comes back. While the mark
//!    stands, the others wait if its holder is alive and fail with
//!    [`FleetError::RedemptionPending`](super::FleetError::RedemptionPending)
//!    if not; a redemption without an answer makes the chain
//!    [`ChainLoss::InDoubt`](super::ChainLoss::InDoubt). A run that started
//!    a redemption always finishes it ([`Run::must_finish`]); a commit Redis
//!    did not take is retried until it is, while the process lives, and
//!    `on_rotate` is told only once it is stored.
//! 4. A process remembers the newest place in the chain it has seen. If
//!    Redis no longer has the chain, or has an older place in it, the
//!    refresh token it holds was spent: the process records the loss in Redis
//!    and fails with [`FleetError::ChainLost`](super::FleetError::ChainLost),
//!    and no process redeems anything until the application reseeds.
//!
//! # Where each part is
//!
//! What a run is given: its [`Kind`] of tier (`kind.rs`), the [`Request`]
//! (`request.rs`), its [`Settings`] (`settings.rs`, with the [`Margin`] in
//! `margin.rs`; the waits that are not settings in `timing.rs`) and the
//! process's [`Memory`] (`memory.rs`, places in the chain as [`ChainPos`],
//! `chain_pos.rs`). What goes out and comes in: [`Action`] (`action.rs`),
//! [`Event`] with the answers it carries (`event.rs`), a read as a
//! [`Snapshot`] (`snapshot.rs`), a held [`Lease`] (`lease.rs`). The run
//! itself, its steps and its transition function, is `run.rs`; each part of
//! it, with its tests, has a file of its own: reading (1, `reading.rs`), the
//! lease (2, `leasing.rs`), a redemption (3, `redemption.rs`), the chain
//! held against what the process saw (4, `chain_check.rs`). `errors.rs` makes
//! the errors a run answers with.

mod action;
mod chain_check;
mod chain_pos;
mod errors;
mod event;
mod kind;
mod lease;
mod leasing;
mod margin;
mod memory;
mod reading;
mod redemption;
mod request;
mod run;
mod settings;
mod snapshot;
#[cfg(test)]
mod test_support;
mod timing;

pub(crate) use self::action::Action;
pub(crate) use self::chain_pos::ChainPos;
pub(crate) use self::event::{Bootstrapped, Committed, Event, LeaseAnswer, Redeemed, Verdict};
pub(crate) use self::kind::Kind;
pub(crate) use self::lease::Lease;
pub(crate) use self::margin::Margin;
pub(crate) use self::memory::Memory;
pub(crate) use self::request::Request;
pub(crate) use self::run::Run;
pub(crate) use self::settings::Settings;
pub(crate) use self::snapshot::{SeenChain, SeenLink, SeenToken, Snapshot};
pub(crate) use self::timing::retry_pause;
