//! What can happen in the world, and when: the events the scheduler carries
//! out, faults among them.

use crate::shared_tier::protocol::Event;

#[derive(Debug)]
pub(super) enum Fault {
    Stall(usize, u64),
    Crash(usize),
    Restart(usize),
    Down(u64),
    Flush,
    RollBack(usize, u8, usize),
    ByHand(usize, u8),
}

/// An event at a time; events at one time happen in the order scheduled.
pub(super) struct Scheduled {
    pub(super) at: u64,
    pub(super) id: u64,
    pub(super) ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.id) == (other.at, other.id)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.id).cmp(&(other.at, other.id))
    }
}

pub(super) enum Ev {
    Due(usize, usize, u32),
    Reject(usize, usize, u32, String),
    OpExec(u64),
    OpReply(u64, Event),
    OpTimeout(u64),
    Reply(u64, u64, Event),
    Wake(u64, u64),
    Renew(u64, String),
    CacheTimeout(usize, usize, u32, u64),
    Fault(Fault),
}
