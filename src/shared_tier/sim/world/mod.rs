//! The simulated world: replicas with their caches and runs, the store, the
//! token endpoint, the scheduler, the faults, and the checks; see the
//! [module](super) documentation.
//!
//! `state.rs` holds the world and sets it up from the seed (`parameters.rs`:
//! its fixed quantities); `scheduler.rs` carries out its [events]
//! (`events.rs`) one by one, each handed to its part: the replicas' caches
//! (`caches.rs`), their runs (`runs.rs`), the commands they send to the
//! store (`commands.rs`), the token endpoint (`provider.rs`), the faults
//! (`faults.rs`). `convergence.rs` checks how a seed ends; `trace.rs` writes
//! down what happens, and `outcome.rs` sums it up.
//!
//! [events]: self::events::Ev

mod caches;
mod commands;
mod convergence;
mod events;
mod faults;
mod outcome;
mod parameters;
mod provider;
mod runs;
mod scheduler;
mod state;
mod trace;

pub(crate) use self::outcome::Outcome;
pub(crate) use self::scheduler::{run_broken_seed, run_seed};
