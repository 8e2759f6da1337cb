//! The replicas' caches: when each asks its tier (no token, a token due, a
//! token the API rejected), what it makes of the answer, and when it gives
//! up on a fetch; one run per ask, the runs of a tier taking turns.

use super::events::Ev;
use super::parameters::{ms, DOUBT_AFTER, FAILURE_HOLD, FETCH_TIMEOUT, LEASE_TTL, LIFE};
use super::state::{SimRun, World};
use super::trace::short;
use crate::error::TokenError;
use crate::shared_tier::error::FleetError;
use crate::shared_tier::protocol::{Event, Kind, Margin, Request, Run, Settings};
use crate::token::AccessToken;

impl World {
    pub(super) fn due(&mut self, r: usize, i: usize, inc: u32) {
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

    pub(super) fn reject(&mut self, r: usize, i: usize, inc: u32, secret: String) {
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

    pub(super) fn start(&mut self, r: usize, i: usize, request: Request, replaced: bool) -> u64 {
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
    pub(super) fn remove_run(&mut self, id: u64) {
        if let Some(sim) = self.runs.remove(&id) {
            self.take_turn(sim.replica, sim.ident);
        }
    }

    /// Gives a run's answer to its cache; whether the cache still waited.
    pub(super) fn answered(&mut self, run: u64, result: Result<AccessToken, TokenError>) -> bool {
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

    pub(super) fn cache_timeout(&mut self, r: usize, i: usize, inc: u32, run: u64) {
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
}
