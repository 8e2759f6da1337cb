//! The simulated world: replicas with their caches and runs, the store, the
//! token endpoint, the scheduler, the faults, and the checks; see the
//! [module](super) documentation.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

use super::store::{Acquired, ChainValue, Read, Sealed, Store, TokenValue, Value};
use super::Rng;
use crate::error::TokenError;
use crate::secret::Secret;
use crate::shared_tier::encryption::Unreadable;
use crate::shared_tier::entry::MarkRecord;
use crate::shared_tier::error::{ChainLoss, FleetError, RedisFailure};
use crate::shared_tier::failure::HeldFailure;
use crate::shared_tier::identity::Identity;
use crate::shared_tier::keys::Keys;
use crate::shared_tier::protocol::{
    retry_pause, Action, Bootstrapped, ChainPos, Committed, Event, Kind, Lease, LeaseAnswer,
    Margin, Memory, Redeemed, Request, Run, SeenChain, SeenLink, SeenToken, Settings, Snapshot,
    Verdict,
};
use crate::token::AccessToken;

// Times are virtual milliseconds.
const LIFE: u64 = 6_000;
const LEASE_TTL: u64 = 600;
const DOUBT_AFTER: u64 = 3_000;
const FAILURE_HOLD: u64 = 300;
const REDIS_TIMEOUT: u64 = 100;
/// The cache's fetch timeout.
const FETCH_TIMEOUT: u64 = 2_000;
/// How long a redemption whose answer is lost takes to time out.
const HTTP_TIMEOUT: u64 = 1_000;
const REFRESH_TTL: u64 = 1_000 * LIFE;
const FAULTY_UNTIL: u64 = 6 * LIFE;
const QUIET_UNTIL: u64 = FAULTY_UNTIL + 3 * LIFE;
/// A bound on events per seed, against a livelock.
const MAX_EVENTS: usize = 200_000;

const SEED_REFRESH_TOKEN: u64 = 0;

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

/// Runs `seed`; `trace`: keep a line per event.
pub(crate) fn run_seed(seed: u64, trace: bool) -> Outcome {
    World::new(seed, trace, false).run()
}

/// Runs `seed` against a store whose leases and marks do not exclude.
pub(crate) fn run_broken_seed(seed: u64) -> Outcome {
    World::new(seed, false, true).run()
}

struct Ident {
    tag: &'static str,
    identity: Identity,
    keys: Rc<Keys>,
    kind: Kind,
}

#[derive(Default)]
struct Cache {
    token: Option<AccessToken>,
    /// What its last fetch answered (an error's chain loss, if any).
    last: Option<Result<String, Option<ChainLoss>>>,
    /// When its token is due (virtual).
    due: u64,
    /// The run it waits for.
    fetching: Option<u64>,
    backoff_until: u64,
    failures: u32,
}

struct Replica {
    incarnation: u32,
    alive: bool,
    offset: Duration,
    stalled_until: u64,
    memory: Vec<Memory>,
    caches: Vec<Cache>,
    /// The newest refresh token (endpoint's index) this incarnation saw.
    seen_refresh: Option<u64>,
    /// The initial access token (from the code exchange) was taken.
    initial_taken: bool,
    /// Last successful provider request per identity (virtual time).
    last_request: Vec<Option<u64>>,
}

struct SimRun {
    replica: usize,
    incarnation: u32,
    ident: usize,
    run: Run,
    /// The id of what it waits for (an op, a call, a wait, a pause).
    waiting: u64,
    renewing: Option<String>,
    replaced: bool,
    /// Waiting for the lease holder's message (as `waiting`).
    listening: bool,
    /// When it sent its token request (or redemption).
    asked_at: u64,
    /// Runs of one tier in one process take turns (see the driver): a run
    /// starts once the one before it is over.
    started: bool,
}

/// An op sent to the store, and when.
struct Pending {
    run: u64,
    replica: usize,
    ident: usize,
    action: Action,
    sent_local: Instant,
}

#[derive(Debug)]
enum Fault {
    Stall(usize, u64),
    Crash(usize),
    Restart(usize),
    Down(u64),
    Flush,
    RollBack(usize, u8, usize),
    ByHand(usize, u8),
}

/// An event at a time; events at one time happen in the order scheduled.
struct Scheduled {
    at: u64,
    id: u64,
    ev: Ev,
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

enum Ev {
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

/// A redemption as the endpoint saw it.
struct Presentation {
    /// Refused unused (a 503), rather than processed or its answer lost.
    refused_unused: bool,
}

struct Provider {
    issued: Vec<u64>,
    /// The refresh token it accepts next, if the grant is alive.
    current_refresh: Option<u64>,
    next_refresh: u64,
    presentations: BTreeMap<u64, Vec<Presentation>>,
    in_doubt: bool,
    revoked: bool,
}

struct World {
    rng: Rng,
    now: u64,
    base: Instant,
    queue: BinaryHeap<Reverse<Scheduled>>,
    next_id: u64,
    store: Store,
    down_until: u64,
    chain_record_lost: bool,
    provider: Provider,
    idents: Vec<Ident>,
    replicas: Vec<Replica>,
    runs: BTreeMap<u64, SimRun>,
    ops: BTreeMap<u64, Pending>,
    /// Per seed: how often things go wrong.
    op_fault: f64,
    provider_fault: f64,
    /// Refresh tokens a commit stored, and those `on_rotate` was told.
    committed: BTreeSet<String>,
    rotated: BTreeSet<String>,
    outcome: Outcome,
    tracing: bool,
    settling: bool,
}

impl World {
    fn new(seed: u64, tracing: bool, broken: bool) -> Self {
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

    fn plan_faults(&mut self) {
        let n = self.replicas.len();
        for _ in 0..self.rng.range(0, 4) {
            let (r, at, long) = (
                self.rng.range(0, n as u64 - 1) as usize,
                self.rng.range(0, FAULTY_UNTIL),
                self.rng.chance(0.2),
            );
            let stall = if long {
                self.rng.range(DOUBT_AFTER, 2 * DOUBT_AFTER)
            } else {
                self.rng.range(50, 3 * LEASE_TTL)
            };
            self.at(at, Ev::Fault(Fault::Stall(r, stall)));
        }
        for _ in 0..self.rng.range(0, 2) {
            let (r, at) = (
                self.rng.range(0, n as u64 - 1) as usize,
                self.rng.range(0, FAULTY_UNTIL),
            );
            self.at(at, Ev::Fault(Fault::Crash(r)));
        }
        for _ in 0..self.rng.range(0, 2) {
            let at = self.rng.range(0, FAULTY_UNTIL);
            let long = self.rng.range(50, 2_000);
            self.at(at, Ev::Fault(Fault::Down(long)));
        }
        if self.rng.chance(0.2) {
            let at = self.rng.range(0, FAULTY_UNTIL);
            self.at(at, Ev::Fault(Fault::Flush));
        }
        for _ in 0..self.rng.range(0, 3) {
            let at = self.rng.range(0, FAULTY_UNTIL);
            let (i, key, back) = (
                self.rng.range(0, 2) as usize,
                self.rng.range(0, 3) as u8,
                self.rng.range(0, 3) as usize,
            );
            self.at(at, Ev::Fault(Fault::RollBack(i, key, back)));
        }
        for _ in 0..self.rng.range(0, 2) {
            let at = self.rng.range(0, FAULTY_UNTIL);
            let (i, what) = (self.rng.range(0, 2) as usize, self.rng.range(0, 3) as u8);
            self.at(at, Ev::Fault(Fault::ByHand(i, what)));
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn at(&mut self, at: u64, ev: Ev) {
        let id = self.id();
        self.queue.push(Reverse(Scheduled {
            at: at.max(self.now),
            id,
            ev,
        }));
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            let line = line();
            self.outcome.trace.push(format!("{:>6} {line}", self.now));
        }
    }

    fn violation(&mut self, what: String) {
        self.trace(|| format!("VIOLATION {what}"));
        self.outcome
            .violations
            .push(format!("t={} {what}", self.now));
    }

    fn local(&self, r: usize) -> Instant {
        self.base + self.replicas[r].offset + Duration::from_millis(self.now)
    }

    fn faulty(&self) -> bool {
        self.now < FAULTY_UNTIL
    }

    fn run(mut self) -> Outcome {
        self.pump(QUIET_UNTIL, |_| false);
        // Faults stopped three lifetimes ago; caches stop asking. Let what
        // runs finish, then have every replica ask once more.
        self.settling = true;
        self.pump(u64::MAX, |world| world.runs.is_empty());
        self.converge();
        self.check_expiries();
        if self.chain_record_lost {
            self.outcome.chain_records_lost += 1;
        }
        self.outcome
    }

    /// Carries out events until `until`, or until `done`.
    fn pump(&mut self, until: u64, done: impl Fn(&World) -> bool) {
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > until || done(self) || self.outcome.events as usize > MAX_EVENTS {
                break;
            }
            let Some(Reverse(Scheduled { at, id, ev })) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.outcome.events += 1;
            if let Some(stalled) = self.deferred(&ev) {
                // The same place in the order, later.
                self.queue.push(Reverse(Scheduled {
                    at: stalled,
                    id,
                    ev,
                }));
                continue;
            }
            self.handle(ev);
        }
        if self.outcome.events as usize > MAX_EVENTS {
            self.violation("livelock: too many events".into());
        }
    }

    /// Until when an event waits for its stalled replica.
    fn deferred(&self, ev: &Ev) -> Option<u64> {
        let replica = match ev {
            Ev::Due(r, ..) | Ev::Reject(r, ..) | Ev::CacheTimeout(r, ..) => Some(*r),
            Ev::OpReply(op, _) | Ev::OpTimeout(op) => self
                .ops
                .get(op)
                .and_then(|p| self.runs.get(&p.run))
                .map(|run| run.replica),
            Ev::Reply(run, ..) | Ev::Wake(run, _) => self.runs.get(run).map(|run| run.replica),
            _ => None,
        }?;
        let until = self.replicas[replica].stalled_until;
        (until > self.now).then_some(until)
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Due(r, i, inc) => self.due(r, i, inc),
            Ev::Reject(r, i, inc, secret) => self.reject(r, i, inc, secret),
            Ev::OpExec(op) => self.execute(op),
            Ev::OpReply(op, event) => self.op_answered(op, Some(event)),
            Ev::OpTimeout(op) => self.op_answered(op, None),
            Ev::Reply(run, waiting, event) => {
                if !self.runs.contains_key(&run) && matches!(event, Event::Redeemed(_)) {
                    // Its process died mid-redemption: nobody knows what the
                    // endpoint said.
                    self.provider.in_doubt = true;
                }
                if self.runs.get(&run).is_some_and(|r| r.waiting == waiting) {
                    if matches!(
                        event,
                        Event::Fetched(Ok(_)) | Event::Redeemed(Redeemed::Rotated { .. })
                    ) {
                        self.one_request_per_token(run);
                    }
                    self.advance(run, event);
                }
            }
            Ev::Wake(run, waiting) => {
                if self.runs.get(&run).is_some_and(|r| r.waiting == waiting) {
                    self.advance(run, Event::Done);
                }
            }
            Ev::Renew(run, lease) => self.renew(run, lease),
            Ev::CacheTimeout(r, i, inc, run) => self.cache_timeout(r, i, inc, run),
            Ev::Fault(fault) => self.fault(fault),
        }
    }

    // -- caches --------------------------------------------------------------

    fn due(&mut self, r: usize, i: usize, inc: u32) {
        if self.settling || !self.replicas[r].alive || self.replicas[r].incarnation != inc {
            return;
        }
        let cache = &self.replicas[r].caches[i];
        if cache.fetching.is_some() {
            return;
        }
        let wake = cache.due.max(cache.backoff_until);
        if cache.token.is_some() && self.now < wake || self.now < cache.backoff_until {
            self.at(wake, Ev::Due(r, i, inc));
            return;
        }
        self.start(r, i, Request::Fetch, false);
    }

    fn reject(&mut self, r: usize, i: usize, inc: u32, secret: String) {
        let replica = &self.replicas[r];
        if self.settling || !replica.alive || replica.incarnation != inc {
            return;
        }
        let cache = &replica.caches[i];
        let Some(token) = cache.token.clone().filter(|t| t.secret() == secret) else {
            return;
        };
        if cache.fetching.is_none() {
            self.trace(|| format!("r{r} {i}: the API rejects {secret}"));
            self.start(r, i, Request::Replace(token), true);
        }
    }

    fn start(&mut self, r: usize, i: usize, request: Request, replaced: bool) -> u64 {
        let settings = Settings {
            lease_ttl: ms(LEASE_TTL),
            failure_hold: ms(FAILURE_HOLD),
            local_fallback: self.idents[i].kind == Kind::Plain,
            doubt_after: ms(DOUBT_AFTER),
            margin: Margin::of_default_cache(),
        };
        let memory = self.replicas[r].memory[i].clone();
        let id = self.id();
        let inc = self.replicas[r].incarnation;
        self.runs.insert(
            id,
            SimRun {
                replica: r,
                incarnation: inc,
                ident: i,
                run: Run::new(self.idents[i].kind, request, settings, memory),
                waiting: 0,
                renewing: None,
                replaced,
                listening: false,
                asked_at: 0,
                started: false,
            },
        );
        self.replicas[r].caches[i].fetching = Some(id);
        self.at(self.now + FETCH_TIMEOUT, Ev::CacheTimeout(r, i, inc, id));
        self.take_turn(r, i);
        id
    }

    /// Starts the oldest run of the tier `i` of replica `r` if none runs.
    fn take_turn(&mut self, r: usize, i: usize) {
        let mine = |sim: &SimRun| sim.replica == r && sim.ident == i;
        if self.runs.values().any(|sim| mine(sim) && sim.started) {
            return;
        }
        let Some(id) = self
            .runs
            .iter()
            .find(|(_, sim)| mine(sim))
            .map(|(id, _)| *id)
        else {
            return;
        };
        self.runs.get_mut(&id).expect("found").started = true;
        self.trace(|| format!("r{r} {i}: run {id} starts"));
        self.advance(id, Event::Start);
    }

    /// A run is over (finished, dropped by its cache): the next one of its
    /// tier may start.
    fn remove_run(&mut self, id: u64) {
        if let Some(sim) = self.runs.remove(&id) {
            self.take_turn(sim.replica, sim.ident);
        }
    }

    /// Gives a run's answer to its cache; whether the cache still waited.
    fn answered(&mut self, run: u64, result: Result<AccessToken, TokenError>) -> bool {
        let (r, i, inc) = {
            let run = &self.runs[&run];
            (run.replica, run.ident, run.incarnation)
        };
        if let Ok(token) = &result {
            if !token
                .secret()
                .starts_with(&format!("{}-", self.idents[i].tag))
            {
                self.violation(format!(
                    "r{r} was handed {} for identity {}",
                    token.secret(),
                    self.idents[i].tag
                ));
            }
        }
        self.trace(|| format!("r{r} {i}: run {run} answers {}", short(&result)));
        if self.replicas[r].incarnation != inc || self.replicas[r].caches[i].fetching != Some(run) {
            return false;
        }
        let local = self.local(r);
        let cache = &mut self.replicas[r].caches[i];
        cache.fetching = None;
        cache.last = Some(match &result {
            Ok(token) => Ok(token.secret().to_owned()),
            Err(err) => Err(
                match err.cause().and_then(|c| c.downcast_ref::<FleetError>()) {
                    Some(FleetError::ChainLost(loss)) => Some(*loss),
                    _ => None,
                },
            ),
        });
        match result {
            Ok(token) => {
                let left = token.expires_at().map_or(LIFE, |at| {
                    at.saturating_duration_since(local).as_millis() as u64
                });
                let life = token.expires_at().map_or(LIFE, |at| {
                    at.saturating_duration_since(token.received_at())
                        .as_millis() as u64
                });
                let skew = (life / 10).min(10_000);
                let usable = left.saturating_sub(skew);
                let fraction = 0.5 + 0.25 * self.rng.unit();
                let cache = &mut self.replicas[r].caches[i];
                if usable < 500 {
                    // Too short to install: a failed fetch, as the cache counts it.
                    cache.failures += 1;
                    cache.backoff_until = self.now + 250;
                } else {
                    cache.failures = 0;
                }
                cache.due = self.now + (usable as f64 * fraction) as u64;
                cache.token = Some(token.clone());
                let due = cache.due.max(cache.backoff_until);
                if self.faulty() && self.rng.chance(0.05) {
                    let at = self.rng.range(self.now, due);
                    self.at(at, Ev::Reject(r, i, inc, token.secret().to_owned()));
                }
                self.at(due, Ev::Due(r, i, inc));
            }
            Err(err) => {
                cache.failures += 1;
                let backoff = 100u64 << cache.failures.min(4);
                let asked = err.retry_after().map_or(0, |d| d.as_millis() as u64);
                cache.backoff_until = self.now + backoff.max(asked.min(2_000));
                let at = cache.backoff_until;
                self.at(at, Ev::Due(r, i, inc));
            }
        }
        true
    }

    fn cache_timeout(&mut self, r: usize, i: usize, inc: u32, run: u64) {
        let replica = &mut self.replicas[r];
        if replica.incarnation != inc || replica.caches[i].fetching != Some(run) {
            return;
        }
        replica.caches[i].fetching = None;
        replica.caches[i].failures += 1;
        replica.caches[i].backoff_until = self.now + 200;
        let at = self.now + 200;
        self.at(at, Ev::Due(r, i, inc));
        // The cache drops the fetch; a run that must finish goes on alone.
        if !self.runs.get(&run).is_some_and(|sim| sim.run.must_finish()) {
            self.remove_run(run);
        }
        self.trace(|| format!("r{r} {i}: the cache gives up on run {run}"));
    }

    // -- runs ----------------------------------------------------------------

    /// Steps a run until it waits for something.
    fn advance(&mut self, id: u64, mut event: Event) {
        loop {
            let Some(sim) = self.runs.get_mut(&id) else {
                return;
            };
            let (r, i) = (sim.replica, sim.ident);
            let local = self.base + self.replicas[r].offset + Duration::from_millis(self.now);
            let action = sim.run.step(event, local);
            self.replicas[r].memory[i].clone_from(sim.run.memory());
            let holding = sim.run.holding().map(Lease::value);
            if holding != sim.renewing {
                sim.renewing.clone_from(&holding);
                if let Some(lease) = holding {
                    self.at(self.now + LEASE_TTL / 3, Ev::Renew(id, lease));
                }
            }
            self.trace(|| format!("r{r} {i}: run {id} -> {}", describe(&action)));
            event = match action {
                Action::Finished => {
                    self.remove_run(id);
                    return;
                }
                Action::Answer(result) => Event::Answered(self.answered(id, result)),
                Action::Adopt {
                    refresh_token,
                    rotated_here,
                } => {
                    self.adopted(r, i, refresh_token.expose(), rotated_here);
                    Event::Done
                }
                action @ (Action::Fetch { .. } | Action::Redeem { .. }) => {
                    self.call_provider(id, action);
                    return;
                }
                Action::Wait { bound } => {
                    let waiting = self.wait_for(id);
                    self.runs.get_mut(&id).expect("a live run").listening = true;
                    self.at(self.now + bound.as_millis() as u64, Ev::Wake(id, waiting));
                    return;
                }
                Action::Pause { attempt } => {
                    let pause = retry_pause(attempt, self.rng.unit()).as_millis() as u64;
                    let waiting = self.wait_for(id);
                    self.at(self.now + pause, Ev::Wake(id, waiting));
                    return;
                }
                action => {
                    self.send(id, action);
                    return;
                }
            };
        }
    }

    /// Invariant 3.
    fn one_request_per_token(&mut self, run: u64) {
        let sim = &self.runs[&run];
        let (r, i, replaced, asked) = (sim.replica, sim.ident, sim.replaced, sim.asked_at);
        let last = self.replicas[r].last_request[i].replace(asked);
        if let Some(last) = last.filter(|_| !replaced && !self.settling) {
            if asked.saturating_sub(last) < LIFE / 3 {
                self.violation(format!(
                    "r{r} {i}: two token requests {} ms apart",
                    asked.saturating_sub(last)
                ));
            }
        }
    }

    fn wait_for(&mut self, run: u64) -> u64 {
        let waiting = self.id();
        let sim = self.runs.get_mut(&run).expect("a live run");
        sim.waiting = waiting;
        sim.listening = false;
        waiting
    }

    fn adopted(&mut self, r: usize, i: usize, refresh_token: &str, rotated_here: bool) {
        let Some(index) = refresh_index(refresh_token, self.idents[i].tag) else {
            self.violation(format!(
                "r{r} adopted {refresh_token}, not identity {}'s",
                self.idents[i].tag
            ));
            return;
        };
        self.seen(r, index);
        if rotated_here {
            // `on_rotate`: only for a stored rotation, once per refresh token.
            if !self.committed.contains(refresh_token) {
                self.violation(format!(
                    "on_rotate for {refresh_token}, which was never stored"
                ));
            }
            if !self.rotated.insert(refresh_token.to_owned()) {
                self.violation(format!("on_rotate twice for {refresh_token}"));
            }
        }
    }

    fn store_chain(&mut self, i: usize) -> Option<ChainValue> {
        let keys = self.idents[i].keys.clone();
        self.store.read(&keys, true, self.now).chain
    }

    fn seen(&mut self, r: usize, index: u64) {
        let seen = &mut self.replicas[r].seen_refresh;
        *seen = Some(seen.map_or(index, |s| s.max(index)));
    }

    fn renew(&mut self, run: u64, lease: String) {
        let Some(sim) = self.runs.get(&run) else {
            return;
        };
        if sim.renewing.as_deref() != Some(lease.as_str()) {
            return;
        }
        let (r, i) = (sim.replica, sim.ident);
        let stalled = self.replicas[r].stalled_until;
        if stalled > self.now {
            // A stalled process renews nothing.
            self.at(stalled, Ev::Renew(run, lease));
            return;
        }
        if self.now >= self.down_until && !(self.faulty() && self.rng.chance(self.op_fault)) {
            let keys = self.idents[i].keys.clone();
            self.store.renew(&keys, &lease, LEASE_TTL, self.now);
        }
        self.at(self.now + LEASE_TTL / 3, Ev::Renew(run, lease));
    }

    // -- the store -------------------------------------------------------------

    fn send(&mut self, run: u64, action: Action) {
        let sim = &self.runs[&run];
        let (r, i) = (sim.replica, sim.ident);
        let op = self.wait_for(run);
        self.ops.insert(
            op,
            Pending {
                run,
                replica: r,
                ident: i,
                action,
                sent_local: self.local(r),
            },
        );
        self.at(self.now + REDIS_TIMEOUT, Ev::OpTimeout(op));
        let fault = self.faulty() && self.rng.chance(self.op_fault);
        if self.now < self.down_until || fault && self.rng.chance(0.3) {
            // Never reaches Redis.
            return;
        }
        let latency = if fault {
            self.rng.range(REDIS_TIMEOUT, 5 * REDIS_TIMEOUT)
        } else {
            self.rng.range(0, 3)
        };
        self.at(self.now + latency, Ev::OpExec(op));
    }

    fn execute(&mut self, op: u64) {
        if self.now < self.down_until {
            return;
        }
        let Some(pending) = self.ops.get(&op) else {
            return;
        };
        let (r, i, action) = (pending.replica, pending.ident, pending.action.clone());
        // Run even if its process is gone: the command was sent.
        let event = self.apply(op, r, i, &action);
        self.wake_waiters();
        if self.faulty() && self.rng.chance(self.op_fault / 2.0) {
            return; // the answer is lost
        }
        let latency = self.rng.range(0, 3);
        self.at(self.now + latency, Ev::OpReply(op, event));
    }

    fn op_answered(&mut self, op: u64, event: Option<Event>) {
        let Some(pending) = self.ops.get(&op) else {
            return;
        };
        let run = pending.run;
        if self.runs.get(&run).is_none_or(|sim| sim.waiting != op) {
            return;
        }
        self.ops.remove(&op);
        let event = event.unwrap_or_else(|| Event::Failed(RedisFailure::TimedOut("sim")));
        self.advance(run, event);
    }

    fn wake_waiters(&mut self) {
        let published = std::mem::take(&mut self.store.published);
        for channel in published {
            let waiting: Vec<(u64, u64)> = self
                .runs
                .iter()
                .filter(|(_, sim)| sim.listening && self.idents[sim.ident].keys.channel == channel)
                .map(|(id, sim)| (*id, sim.waiting))
                .collect();
            for (run, waiting) in waiting {
                if !(self.faulty() && self.rng.chance(0.05)) {
                    self.at(self.now + 1, Ev::Wake(run, waiting));
                }
            }
        }
    }

    /// Applies an action to the store, as its script would; the event its
    /// run gets.
    fn apply(&mut self, op: u64, r: usize, i: usize, action: &Action) -> Event {
        let keys = self.idents[i].keys.clone();
        let identity = self.idents[i].identity.as_str().to_owned();
        let now = self.now;
        match action {
            Action::Read => {
                let refreshing = self.idents[i].kind == Kind::Refreshing;
                let read = self.store.read(&keys, refreshing, now);
                let sent = self.ops[&op].sent_local;
                Event::Read(Box::new(self.open(r, i, read, sent)))
            }
            Action::Invalidate { writer } => {
                self.store.invalidate(&keys, writer, now);
                Event::Done
            }
            Action::Acquire { seen } => {
                let nonce = format!("{:x}", self.rng.next());
                let seen =
                    String::from_utf8_lossy(seen.as_deref().unwrap_or_default()).into_owned();
                Event::Lease(
                    match self.store.acquire(&keys, &seen, LEASE_TTL, &nonce, now) {
                        Acquired::Granted(fence) => LeaseAnswer::Granted(Lease { fence, nonce }),
                        Acquired::Held(left) => LeaseAnswer::Held(ms(left)),
                        Acquired::Changed => LeaseAnswer::Changed,
                        Acquired::Failed(failure, left) => {
                            LeaseAnswer::Failed(HeldFailure::decode(failure.as_bytes()), ms(left))
                        }
                    },
                )
            }
            Action::Write { lease, token } => {
                match self.seal(r, token, lease, &identity) {
                    Some(sealed) => {
                        self.store.write(&keys, &sealed, now);
                    }
                    None => self.store.release(&keys, &lease.value(), None, now),
                }
                Event::Done
            }
            Action::Release { lease, failure } => {
                let failure = failure
                    .as_ref()
                    .map(|(f, hold)| (f.encode(), hold.as_millis() as u64));
                self.store.release(&keys, &lease.value(), failure, now);
                Event::Done
            }
            Action::Bootstrap { lease } => {
                let epoch = format!("{:x}", self.rng.next());
                let seed = format!("{}rt-{SEED_REFRESH_TOKEN}", self.idents[i].tag);
                let initial = self.take_initial(r, i);
                let sealed = initial
                    .as_ref()
                    .and_then(|t| self.seal(r, t, lease, &identity));
                match self.store.bootstrap(
                    &keys,
                    &lease.value(),
                    &epoch,
                    &seed,
                    &identity,
                    sealed.as_ref(),
                    REFRESH_TTL,
                    now,
                ) {
                    1 => Event::Bootstrapped(Bootstrapped::Started {
                        epoch,
                        refresh_token: Secret::new(seed),
                        initial: initial.filter(|_| sealed.is_some()),
                    }),
                    _ => Event::Bootstrapped(Bootstrapped::Exists),
                }
            }
            Action::Mark { lease, pos } => {
                Event::Marked(
                    self.store
                        .mark(&keys, &lease.value(), &pos.epoch, pos.seq, now),
                )
            }
            Action::Commit {
                lease,
                pos,
                refresh_token,
                token,
            } => {
                let sealed = self.seal(r, token, lease, &identity);
                let stored = self.store.commit(
                    &keys,
                    &lease.value(),
                    &pos.epoch,
                    pos.seq,
                    refresh_token.expose(),
                    &identity,
                    sealed.as_ref(),
                    REFRESH_TTL,
                    now,
                );
                Event::Committed(match stored {
                    1 => {
                        self.committed.insert(refresh_token.expose().to_owned());
                        Committed::Stored
                    }
                    2 => Committed::Unmarked,
                    _ => Committed::Moved,
                })
            }
            Action::Abort {
                lease,
                pos,
                verdict,
                failure,
            } => {
                let (code, loss) = match verdict {
                    Verdict::NotConsumed => ('n', None),
                    Verdict::InDoubt => ('d', None),
                    Verdict::Lost(loss) => ('l', Some(*loss)),
                };
                let failure = failure
                    .as_ref()
                    .map(|(f, hold)| (f.encode(), hold.as_millis() as u64));
                self.store.abort(
                    &keys,
                    &lease.value(),
                    &pos.epoch,
                    pos.seq,
                    code,
                    loss,
                    failure,
                    REFRESH_TTL,
                    now,
                );
                Event::Done
            }
            Action::DeclareLost { known, loss } => {
                self.store
                    .declare_lost(&keys, &known.epoch, known.seq, *loss, REFRESH_TTL, now);
                Event::Done
            }
            other => unreachable!("not a store action: {other:?}"),
        }
    }

    /// What the driver makes of a read: entries opened for the reader's
    /// identity, times on the reader's clock.
    fn open(&mut self, r: usize, i: usize, read: Read, sent: Instant) -> Snapshot {
        let identity = self.idents[i].identity.as_str();
        let token = read.token.map(|(token, pttl)| SeenToken {
            writer: token.w.clone().into_bytes(),
            token: open_token(&token, pttl, identity, sent, self.now),
        });
        let chain = match read.chain {
            None if self.idents[i].kind == Kind::Plain => SeenChain::NotRead,
            None => SeenChain::Absent,
            Some(ChainValue::Lost(loss)) => SeenChain::Lost(loss),
            Some(ChainValue::Present {
                epoch,
                seq,
                origin,
                refresh_token,
                sealed_for,
                mark,
                doubt,
                ..
            }) => {
                let opened = if sealed_for == identity {
                    match refresh_index(&refresh_token, self.idents[i].tag) {
                        Some(index) => {
                            self.seen(r, index);
                            Ok(Secret::new(refresh_token))
                        }
                        None => {
                            self.violation(format!(
                                "identity {} read {refresh_token}",
                                self.idents[i].tag
                            ));
                            Err(Unreadable::Tampered)
                        }
                    }
                } else {
                    Err(Unreadable::Tampered)
                };
                SeenChain::Present(SeenLink {
                    pos: ChainPos { epoch, seq },
                    origin,
                    refresh_token: opened,
                    mark: mark.map(|(by, at)| MarkRecord {
                        by,
                        age_ms: self.now.saturating_sub(at),
                        doubt,
                    }),
                })
            }
        };
        let failure = read
            .failure
            .filter(|(_, pttl)| *pttl > 0)
            .map(|(f, pttl)| (HeldFailure::decode(f.as_bytes()), ms(pttl as u64)));
        Snapshot {
            token,
            chain,
            failure,
            lease: read.lease,
        }
    }

    fn seal(&self, r: usize, token: &AccessToken, lease: &Lease, identity: &str) -> Option<Sealed> {
        let local = self.local(r);
        let at = token.expires_at()?;
        let left = at.saturating_duration_since(local).as_millis() as u64;
        let life = at
            .saturating_duration_since(token.received_at().min(local))
            .as_millis() as u64;
        let ttl = left.min(life);
        (ttl > 0).then(|| Sealed {
            fence: lease.fence,
            writer: lease.nonce.clone(),
            life,
            ttl,
            secret: token.secret().to_owned(),
            sealed_for: identity.to_owned(),
        })
    }

    fn take_initial(&mut self, r: usize, i: usize) -> Option<AccessToken> {
        let replica = &mut self.replicas[r];
        if replica.incarnation > 0 || std::mem::replace(&mut replica.initial_taken, true) {
            return None;
        }
        let issued = self.base + replica.offset;
        let token = AccessToken::new(format!("{}-0", self.idents[i].tag))
            .with_expires_at(issued + ms(LIFE))
            .with_received_at(issued);
        let local = self.local(r);
        // As `RefreshTokenSource` does: only with a tenth of its life left.
        (token.expires_at()? > local + ms(LIFE / 10).max(ms(1_000))).then_some(token)
    }

    // -- the token endpoint ------------------------------------------------------

    fn call_provider(&mut self, run: u64, action: Action) {
        let (r, i) = {
            let sim = &self.runs[&run];
            (sim.replica, sim.ident)
        };
        let waiting = self.wait_for(run);
        self.runs.get_mut(&run).expect("a live run").asked_at = self.now;
        let fault = self.faulty() && self.rng.chance(self.provider_fault);
        let slow = self.faulty() && self.rng.chance(0.03);
        let latency = if slow {
            self.rng.range(500, 2_500)
        } else {
            self.rng.range(1, 40)
        };
        match action {
            Action::Fetch { .. } => {
                let answer = if fault {
                    Err(TokenError::transient("temporarily_unavailable")
                        .with_retry_after(ms(200))
                        .endpoint_overloaded())
                } else {
                    self.provider.issued[i] += 1;
                    self.outcome.fetches += 1;
                    Ok(self.provider.issued[i])
                };
                let event = match answer {
                    Ok(n) => {
                        // Issued now; received, with its lifetime, on arrival.
                        let secret = format!("{}-{n}", self.idents[i].tag);
                        let arrives = self.local(r) + ms(latency);
                        Event::Fetched(Ok(AccessToken::new(secret)
                            .with_expires_at(arrives + ms(LIFE))
                            .with_received_at(arrives)))
                    }
                    Err(err) => Event::Fetched(Err(err)),
                };
                self.trace(|| {
                    format!("r{r} {i}: endpoint answers a token request in {latency} ms")
                });
                self.at(self.now + latency, Ev::Reply(run, waiting, event));
            }
            Action::Redeem { refresh_token } => {
                self.outcome.redemptions += 1;
                let presented = refresh_token.expose().to_owned();
                let index = refresh_index(&presented, self.idents[i].tag).unwrap_or(u64::MAX);
                self.check_presentation(r, index, &presented);
                let roll = self.rng.unit();
                let (event, refused_unused, lost) = if fault && roll < 0.4 {
                    let err =
                        TokenError::transient("temporarily_unavailable").endpoint_overloaded();
                    (
                        Event::Redeemed(Redeemed::Failed(Verdict::NotConsumed, err)),
                        true,
                        false,
                    )
                } else {
                    let processed = !(fault && roll < 0.55);
                    let answer = if processed {
                        self.process(i, index)
                    } else {
                        None
                    };
                    if fault && roll < 0.7 {
                        // The answer (or the request) is lost: the client times out.
                        self.provider.in_doubt = true;
                        let err = TokenError::transient("token endpoint timed out");
                        (
                            Event::Redeemed(Redeemed::Failed(Verdict::InDoubt, err)),
                            false,
                            true,
                        )
                    } else {
                        let event = match answer {
                            Some(next) => {
                                let arrives = self.local(r) + ms(latency);
                                let token =
                                    AccessToken::new(format!("{}-{}", self.idents[i].tag, next))
                                        .with_expires_at(arrives + ms(LIFE))
                                        .with_received_at(arrives);
                                Redeemed::Rotated {
                                    token,
                                    refresh_token: Secret::new(format!(
                                        "{}rt-{next}",
                                        self.idents[i].tag
                                    )),
                                }
                            }
                            None => Redeemed::Failed(
                                Verdict::Lost(ChainLoss::Refused),
                                TokenError::permanent("invalid_grant: grant request is invalid"),
                            ),
                        };
                        (Event::Redeemed(event), false, false)
                    }
                };
                self.provider
                    .presentations
                    .entry(index)
                    .or_default()
                    .push(Presentation { refused_unused });
                let delay = if lost { HTTP_TIMEOUT } else { latency };
                self.trace(|| {
                    format!(
                        "r{r} {i}: endpoint answers the redemption of {presented} in {delay} ms"
                    )
                });
                self.at(self.now + delay, Ev::Reply(run, waiting, event));
            }
            other => unreachable!("not a provider action: {other:?}"),
        }
    }

    /// Redeems refresh token `index`: the next one, or `None` (refused;
    /// a spent one revokes the grant).
    fn process(&mut self, i: usize, index: u64) -> Option<u64> {
        let provider = &mut self.provider;
        if provider.revoked || provider.current_refresh != Some(index) {
            if !provider.revoked && provider.presentations.contains_key(&index) {
                // Reuse: the whole grant goes.
                provider.revoked = true;
                provider.current_refresh = None;
            }
            return None;
        }
        let next = provider.next_refresh;
        provider.next_refresh += 1;
        provider.current_refresh = Some(next);
        provider.issued[i] = provider.issued[i].max(next);
        Some(next)
    }

    /// Invariant 1.
    fn check_presentation(&mut self, r: usize, index: u64, presented: &str) {
        let earlier = self.provider.presentations.get(&index);
        let again = earlier.is_some_and(|ps| ps.iter().any(|p| !p.refused_unused));
        if !self.chain_record_lost {
            if again {
                self.violation(format!(
                    "r{r}: {presented} presented again after it was redeemed or in doubt"
                ));
            }
        } else if self.replicas[r]
            .seen_refresh
            .is_some_and(|seen| seen > index)
        {
            self.violation(format!(
                "r{r}: {presented} presented again, though this replica had seen a newer refresh token"
            ));
        } else if again {
            // The residual the module documentation states: Redis lost the
            // chain, and this replica had not seen the lost part.
            self.outcome.unknowable_reuses += 1;
        }
    }

    // -- faults --------------------------------------------------------------------

    fn fault(&mut self, fault: Fault) {
        self.trace(|| format!("FAULT {fault:?}"));
        match fault {
            Fault::Stall(r, long) => {
                self.outcome.stalls += 1;
                let replica = &mut self.replicas[r];
                replica.stalled_until = replica.stalled_until.max(self.now + long);
            }
            Fault::Crash(r) => {
                self.outcome.crashes += 1;
                if !self.replicas[r].alive {
                    return;
                }
                self.replicas[r].alive = false;
                if self
                    .runs
                    .values()
                    .any(|sim| sim.replica == r && sim.run.must_finish())
                {
                    // It died with a mark in Redis: whether it presented the
                    // refresh token, nobody can tell.
                    self.provider.in_doubt = true;
                }
                self.runs.retain(|_, sim| sim.replica != r);
                let back = self.rng.range(50, 3_000);
                self.at(self.now + back, Ev::Fault(Fault::Restart(r)));
            }
            Fault::Restart(r) => {
                let offset = ms(self.rng.range(0, 3_600_000));
                let replica = &mut self.replicas[r];
                replica.incarnation += 1;
                replica.alive = true;
                replica.offset = offset;
                replica.stalled_until = 0;
                replica.memory = vec![Memory::default(); 3];
                replica.caches = (0..3).map(|_| Cache::default()).collect();
                replica.seen_refresh = None;
                replica.last_request = vec![None; 3];
                let inc = replica.incarnation;
                for i in 0..3 {
                    self.at(self.now, Ev::Due(r, i, inc));
                }
            }
            Fault::Down(long) => self.down_until = self.down_until.max(self.now + long),
            Fault::Flush => {
                self.outcome.flushes += 1;
                if self.store_chain(2).is_some() {
                    self.chain_record_lost = true;
                }
                self.store.flush();
            }
            Fault::RollBack(i, key, back) => {
                self.outcome.rollbacks += 1;
                let keys = &self.idents[i].keys;
                let key =
                    [&keys.token, &keys.refresh, &keys.lease, &keys.failure][key as usize].clone();
                if self.store.roll_back(&key, back) && key == self.idents[2].keys.refresh {
                    self.chain_record_lost = true;
                }
            }
            Fault::ByHand(i, what) => {
                let keys = self.idents[i].keys.clone();
                match what {
                    0 => self.store.write_by_hand(
                        &keys.failure,
                        Value::Text("1|t|0|written by hand".into()),
                        None,
                    ),
                    1 => {
                        self.store
                            .write_by_hand(&keys.lease, Value::Text("7:by-hand".into()), None)
                    }
                    _ => self.store.write_by_hand(
                        &keys.token,
                        Value::Token(TokenValue {
                            v: "1e309".into(),
                            w: "zz".into(),
                            life: LIFE,
                            exp: self.now + LIFE,
                            secret: "garbage".into(),
                            sealed_for: None,
                        }),
                        self.rng.chance(0.5).then_some(self.now + LIFE),
                    ),
                }
            }
        }
    }

    // -- the end -------------------------------------------------------------------

    /// Invariant 4: Redis holds the newest token, and every replica that
    /// does not hold it already gets it when it asks; or the chain is lost,
    /// for a reason, and every replica says so once its token has expired.
    fn converge(&mut self) {
        self.runs.clear();
        for replica in &mut self.replicas {
            replica.stalled_until = 0;
        }
        for i in 0..3 {
            let keys = self.idents[i].keys.clone();
            let read = self.store.read(&keys, true, self.now);
            let stored = read.token.map(|(t, _)| t.secret);
            let healthy = match (self.idents[i].kind, &read.chain) {
                (Kind::Plain, _) => true,
                (
                    Kind::Refreshing,
                    Some(ChainValue::Present {
                        refresh_token,
                        mark: None,
                        doubt: false,
                        ..
                    }),
                ) => {
                    !self.provider.revoked
                        && refresh_index(refresh_token, self.idents[i].tag)
                            == self.provider.current_refresh
                }
                _ => false,
            };
            if healthy {
                if self.idents[i].kind == Kind::Refreshing {
                    self.outcome.healthy_chains += 1;
                }
                self.converge_on(i, stored);
            } else {
                self.outcome.chain_losses += 1;
                if !(self.provider.revoked || self.provider.in_doubt || self.chain_record_lost) {
                    self.violation(format!(
                        "the chain is lost though the endpoint accepts {:?} and nothing was lost",
                        self.provider.current_refresh
                    ));
                }
                self.all_say_lost(i);
            }
        }
    }

    fn converge_on(&mut self, i: usize, stored: Option<String>) {
        let newest = format!("{}-{}", self.idents[i].tag, self.provider.issued[i]);
        if stored.as_ref() != Some(&newest) {
            self.violation(format!(
                "identity {}: Redis holds {stored:?}, the newest is {newest}",
                self.idents[i].tag
            ));
            return;
        }
        let issued = self.provider.issued[i];
        for r in 0..self.replicas.len() {
            let held = self.replicas[r].caches[i]
                .token
                .as_ref()
                .map(|t| t.secret().to_owned());
            if !self.replicas[r].alive || held.as_ref() == Some(&newest) {
                continue;
            }
            self.last_fetch(r, i);
            let last = self.replicas[r].caches[i].last.clone();
            if last != Some(Ok(newest.clone())) || self.provider.issued[i] != issued {
                self.violation(format!(
                    "identity {}: r{r} held {held:?} and then got {last:?}; Redis holds the newest, {newest}",
                    self.idents[i].tag
                ));
            }
        }
    }

    fn all_say_lost(&mut self, i: usize) {
        // Every token handed out expires, and redemptions in doubt are past
        // doubting.
        self.now += LIFE + DOUBT_AFTER;
        for r in 0..self.replicas.len() {
            if !self.replicas[r].alive {
                continue;
            }
            self.last_fetch(r, i);
            let last = self.replicas[r].caches[i].last.clone();
            if !matches!(last, Some(Err(Some(_)))) {
                self.violation(format!(
                    "identity {}: the chain is lost, but r{r}'s last fetch got {last:?}",
                    self.idents[i].tag
                ));
            }
        }
    }

    fn last_fetch(&mut self, r: usize, i: usize) {
        self.replicas[r].caches[i].fetching = None;
        let run = self.start(r, i, Request::Fetch, false);
        self.pump(u64::MAX, |world| !world.runs.contains_key(&run));
        if self.runs.contains_key(&run) {
            self.violation(format!("r{r} {i}: the last run never ended"));
        }
    }

    /// Invariant 6.
    fn check_expiries(&mut self) {
        for key in self.store.written_forever() {
            self.violation(format!("{key} never expires"));
        }
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

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn refresh_index(refresh_token: &str, tag: &str) -> Option<u64> {
    refresh_token
        .strip_prefix(tag)?
        .strip_prefix("rt-")?
        .parse()
        .ok()
}

fn open_token(
    token: &TokenValue,
    pttl: i64,
    identity: &str,
    sent: Instant,
    now: u64,
) -> Result<AccessToken, Unreadable> {
    let sealed_for = token.sealed_for.as_deref().ok_or(Unreadable::Malformed)?;
    let valid = token.v.len() <= 15 && token.v.bytes().all(|b| b.is_ascii_digit());
    if !valid || pttl <= 0 || pttl as u64 > token.life {
        return Err(Unreadable::Malformed);
    }
    if sealed_for != identity {
        return Err(Unreadable::Tampered);
    }
    let left = token.exp.saturating_sub(now).min(pttl as u64);
    let expires = sent + ms(left);
    let issued = expires
        .checked_sub(ms(token.life))
        .unwrap_or(sent)
        .min(sent);
    Ok(AccessToken::new(token.secret.clone())
        .with_expires_at(expires)
        .with_received_at(issued))
}

fn short(result: &Result<AccessToken, TokenError>) -> String {
    match result {
        Ok(token) => token.secret().to_owned(),
        Err(err) => format!("error: {err}"),
    }
}

fn describe(action: &Action) -> String {
    match action {
        Action::Answer(result) => format!("Answer({})", short(result)),
        Action::Fetch { fallback, .. } => format!("Fetch(fallback: {fallback})"),
        Action::Write { lease, token } => format!("Write({}, {})", lease.value(), token.secret()),
        Action::Redeem { refresh_token } => format!("Redeem({})", refresh_token.expose()),
        Action::Commit {
            lease,
            pos,
            refresh_token,
            token,
        } => format!(
            "Commit({}, {}#{}, {}, {})",
            lease.value(),
            pos.epoch,
            pos.seq,
            refresh_token.expose(),
            token.secret()
        ),
        Action::Adopt {
            refresh_token,
            rotated_here,
        } => {
            format!("Adopt({}, {rotated_here})", refresh_token.expose())
        }
        other => {
            let text = format!("{other:?}");
            text.chars().take(160).collect()
        }
    }
}
