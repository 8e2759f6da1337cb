//! What one seed did and broke, and the sum over seeds the suite prints.

use std::fmt;

/// What one seed did and broke.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) violations: Vec<String>,
    pub(crate) trace: Vec<String>,
    pub(crate) redemptions: u64,
    pub(crate) fetches: u64,
    pub(crate) stalls: u64,
    pub(crate) crashes: u64,
    pub(crate) flushes: u64,
    pub(crate) rollbacks: u64,
    pub(crate) chain_losses: u64,
    pub(crate) healthy_chains: u64,
    pub(crate) chain_records_lost: u64,
    /// Refresh tokens presented again by a replica that could not know
    /// (Redis had lost the chain record, and the replica the lost part).
    pub(crate) unknowable_reuses: u64,
    pub(crate) events: u64,
}

impl Outcome {
    pub(crate) fn add(&mut self, other: &Outcome) {
        self.redemptions += other.redemptions;
        self.fetches += other.fetches;
        self.stalls += other.stalls;
        self.crashes += other.crashes;
        self.flushes += other.flushes;
        self.rollbacks += other.rollbacks;
        self.chain_losses += other.chain_losses;
        self.healthy_chains += other.healthy_chains;
        self.chain_records_lost += other.chain_records_lost;
        self.unknowable_reuses += other.unknowable_reuses;
        self.events += other.events;
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events: {} token requests, {} redemptions; faults: {} stalls, {} crashes, \
             {} flushes, {} rollbacks; chains: {} healthy at the end, {} lost \
             ({} seeds where Redis lost the chain record; {} refresh tokens presented again \
             by a replica that had not seen the lost part)",
            self.events,
            self.fetches,
            self.redemptions,
            self.stalls,
            self.crashes,
            self.flushes,
            self.rollbacks,
            self.healthy_chains,
            self.chain_losses,
            self.chain_records_lost,
            self.unknowable_reuses
        )
    }
}
