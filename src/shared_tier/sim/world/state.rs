//! Everything the world holds: the identities, the replicas with their
//! caches and memories, the runs under way, the commands sent to the store,
//! the token endpoint's books; how a seed sets it up.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

use super::super::rng::Rng;
use super::super::store::Store;
use super::events::{Ev, Scheduled};
use super::outcome::Outcome;
use super::parameters::{FAULTY_UNTIL, SEED_REFRESH_TOKEN};
use crate::shared_tier::error::ChainLoss;
use crate::shared_tier::identity::Identity;
use crate::shared_tier::keys::Keys;
use crate::shared_tier::protocol::{Action, Kind, Memory, Run};
use crate::token::AccessToken;

pub(super) struct Ident {
    pub(super) tag: &'static str,
    pub(super) identity: Identity,
    pub(super) keys: Rc<Keys>,
    pub(super) kind: Kind,
}

#[derive(Default)]
pub(super) struct Cache {
    pub(super) token: Option<AccessToken>,
    /// What its last fetch answered (an error's chain loss, if any).
    pub(super) last: Option<Result<String, Option<ChainLoss>>>,
    /// When its token is due (virtual).
    pub(super) due: u64,
    /// The run it waits for.
    pub(super) fetching: Option<u64>,
    pub(super) backoff_until: u64,
    pub(super) failures: u32,
}

pub(super) struct Replica {
    pub(super) incarnation: u32,
    pub(super) alive: bool,
    pub(super) offset: Duration,
    pub(super) stalled_until: u64,
    pub(super) memory: Vec<Memory>,
    pub(super) caches: Vec<Cache>,
    /// The newest refresh token (endpoint's index) this incarnation saw.
    pub(super) seen_refresh: Option<u64>,
    /// The initial access token (from the code exchange) was taken.
    pub(super) initial_taken: bool,
    /// Last successful provider request per identity (virtual time).
    pub(super) last_request: Vec<Option<u64>>,
}

pub(super) struct SimRun {
    pub(super) replica: usize,
    pub(super) incarnation: u32,
    pub(super) ident: usize,
    pub(super) run: Run,
    /// The id of what it waits for (an op, a call, a wait, a pause).
    pub(super) waiting: u64,
    pub(super) renewing: Option<String>,
    pub(super) replaced: bool,
    /// Waiting for the lease holder's message (as `waiting`).
    pub(super) listening: bool,
    /// When it sent its token request (or redemption).
    pub(super) asked_at: u64,
    /// Runs of one tier in one process take turns (see the driver): a run
    /// starts once the one before it is over.
    pub(super) started: bool,
}

/// An op sent to the store, and when.
pub(super) struct Pending {
    pub(super) run: u64,
    pub(super) replica: usize,
    pub(super) ident: usize,
    pub(super) action: Action,
    pub(super) sent_local: Instant,
}

/// A redemption as the endpoint saw it.
pub(super) struct Presentation {
    /// Refused unused (a 503), rather than processed or its answer lost.
    pub(super) refused_unused: bool,
}

pub(super) struct Provider {
    pub(super) issued: Vec<u64>,
    /// The refresh token it accepts next, if the grant is alive.
    pub(super) current_refresh: Option<u64>,
    pub(super) next_refresh: u64,
    pub(super) presentations: BTreeMap<u64, Vec<Presentation>>,
    pub(super) in_doubt: bool,
    pub(super) revoked: bool,
}

pub(super) struct World {
    pub(super) rng: Rng,
    pub(super) now: u64,
    pub(super) base: Instant,
    pub(super) queue: BinaryHeap<Reverse<Scheduled>>,
    pub(super) next_id: u64,
    pub(super) store: Store,
    pub(super) down_until: u64,
    pub(super) chain_record_lost: bool,
    pub(super) provider: Provider,
    pub(super) idents: Vec<Ident>,
    pub(super) replicas: Vec<Replica>,
    pub(super) runs: BTreeMap<u64, SimRun>,
    pub(super) ops: BTreeMap<u64, Pending>,
    /// Per seed: how often things go wrong.
    pub(super) op_fault: f64,
    pub(super) provider_fault: f64,
    /// Refresh tokens a commit stored, and those `on_rotate` was told.
    pub(super) committed: BTreeSet<String>,
    pub(super) rotated: BTreeSet<String>,
    pub(super) outcome: Outcome,
    pub(super) tracing: bool,
    pub(super) settling: bool,
}

impl World {
    pub(super) fn new(seed: u64, tracing: bool, broken: bool) -> Self {
        let mut rng = Rng::new(seed);
        let idents = vec![
            ident("A", Identity::single("svc:admin"), Kind::Plain),
            ident("B", Identity::tenant("svc", "admin"), Kind::Plain),
            ident("C", Identity::tenant("svc:x", "y"), Kind::Refreshing),
        ];
        let replicas = (0..rng.range(2, 5))
            .map(|_| Replica {
                incarnation: 0,
                alive: true,
                offset: Duration::from_millis(rng.range(0, 3_600_000)),
                stalled_until: 0,
                memory: vec![Memory::default(); 3],
                caches: (0..3).map(|_| Cache::default()).collect(),
                seen_refresh: None,
                initial_taken: false,
                last_request: vec![None; 3],
            })
            .collect();
        let calm = rng.chance(0.2);
        let mut world = Self {
            op_fault: if calm { 0.0 } else { rng.unit() * 0.06 },
            provider_fault: if calm { 0.0 } else { rng.unit() * 0.15 },
            rng,
            now: 0,
            base: Instant::now(),
            queue: BinaryHeap::new(),
            next_id: 0,
            store: Store::new(broken),
            down_until: 0,
            chain_record_lost: false,
            provider: Provider {
                issued: vec![0; 3],
                current_refresh: Some(SEED_REFRESH_TOKEN),
                next_refresh: SEED_REFRESH_TOKEN + 1,
                presentations: BTreeMap::new(),
                in_doubt: false,
                revoked: false,
            },
            idents,
            replicas,
            runs: BTreeMap::new(),
            ops: BTreeMap::new(),
            committed: BTreeSet::new(),
            rotated: BTreeSet::new(),
            outcome: Outcome::default(),
            tracing,
            settling: false,
        };
        if !calm {
            world.plan_faults();
        }
        for r in 0..world.replicas.len() {
            for i in 0..3 {
                let at = world.rng.range(0, 50);
                world.at(at, Ev::Due(r, i, 0));
            }
        }
        world
    }

    pub(super) fn local(&self, r: usize) -> Instant {
        self.base + self.replicas[r].offset + Duration::from_millis(self.now)
    }

    pub(super) fn faulty(&self) -> bool {
        self.now < FAULTY_UNTIL
    }
}

fn ident(tag: &'static str, identity: Identity, kind: Kind) -> Ident {
    Ident {
        tag,
        keys: Rc::new(Keys::new(&identity)),
        identity,
        kind,
    }
}
