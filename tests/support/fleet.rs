//! A fleet on one machine, for the shared-tier suites: a real `redis-server`
//! (started on 127.0.0.1, on a free port, in a temporary directory, stopped
//! by pid), a loopback token endpoint and API that every replica shares, and
//! replicas that each run their own tokio runtime with their own cache, tier
//! and hyper client.
//!
//! Real time throughout: Redis and the network do not follow tokio's paused
//! clock (a paused runtime waiting on real I/O jumps its timers, which would
//! fire every Redis timeout at once). Tests order events by what they can
//! observe (a request the endpoint received, a counter, a key in Redis, a
//! subscriber on a channel: see [`eventually`]), never by sleeping; every
//! count asserted exactly does not depend on timing; timeouts are generous
//! hang guards (Redis commands get 10 s unless a test stalls Redis on
//! purpose), never assertions.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::loopback;
use super::redis::RedisServer;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt};
use tower_bearer::oauth2::{ClientCredentials, HttpClient, TokenEndpoint};
use tower_bearer::shared_tier::{EncryptionKey, SharedTier, SharedTierBuilder};
use tower_bearer::{BearerAuth, BearerAuthError, BearerAuthLayer, TokenCache, TokenCacheBuilder};

/// The header the API reads a replica's name from.
pub const REPLICA: &str = "x-replica";

pub fn key(id: &str, byte: u8) -> EncryptionKey {
    EncryptionKey::new(id, [byte; 32]).unwrap()
}

// ---------------------------------------------------------------------------
// The token endpoint and the API every replica shares

/// What the token endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mint {
    /// Issues `tok-N`, valid for the lifetime.
    #[default]
    Ok,
    /// Answers this status with `temporarily_unavailable`.
    Fail(u16),
    /// Reads the request and never answers.
    Hang,
}

struct Issued {
    at: Instant,
    lifetime: Duration,
}

#[derive(Default)]
struct EndpointState {
    requests: AtomicUsize,
    issued: Mutex<Vec<(String, Issued)>>,
    revoked: Mutex<HashSet<String>>,
    /// (replica, token) of every API request, in order.
    seen: Mutex<Vec<(String, String)>>,
    api_requests: AtomicU64,
    rejected: AtomicU64,
    expired: AtomicU64,
    lifetime: Mutex<Duration>,
    latency: Mutex<Duration>,
    mode: Mutex<Mint>,
    /// Requests to hang before answering again (for a holder that dies).
    hang_next: AtomicUsize,
    /// `true`: token requests wait (before they are answered) until it is
    /// `false` again.
    held: Mutex<Option<tokio::sync::watch::Sender<bool>>>,
}

/// A client-credentials token endpoint and an API on 127.0.0.1, in a runtime
/// of their own that outlives every replica.
pub struct Servers {
    runtime: Runtime,
    state: Arc<EndpointState>,
    token_addr: SocketAddr,
    api_addr: SocketAddr,
}

impl Servers {
    pub fn start(lifetime: Duration, latency: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(EndpointState {
            lifetime: Mutex::new(lifetime),
            latency: Mutex::new(latency),
            ..EndpointState::default()
        });
        let token_addr = {
            let state = state.clone();
            runtime.block_on(loopback::serve(move |_req: Request<Incoming>| {
                let state = state.clone();
                async move {
                    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
                    let hang = state
                        .hang_next
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| h.checked_sub(1))
                        .is_ok();
                    let mode = *state.mode.lock().unwrap();
                    if hang || mode == Mint::Hang {
                        std::future::pending::<()>().await;
                    }
                    let held = state.held.lock().unwrap().as_ref().map(|h| h.subscribe());
                    if let Some(mut held) = held {
                        let _ = held.wait_for(|held| !held).await;
                    }
                    let delay = *state.latency.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    if let Mint::Fail(status) = mode {
                        return json(status, r#"{"error":"temporarily_unavailable"}"#.into());
                    }
                    let lifetime = *state.lifetime.lock().unwrap();
                    let token = format!("tok-{n}");
                    state.issued.lock().unwrap().push((
                        token.clone(),
                        Issued {
                            at: Instant::now(),
                            lifetime,
                        },
                    ));
                    json(
                        200,
                        format!(
                            r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                            lifetime.as_secs()
                        ),
                    )
                }
            }))
        };
        let api_addr = {
            let state = state.clone();
            runtime.block_on(loopback::serve(move |req: Request<Incoming>| {
                let state = state.clone();
                async move {
                    state.api_requests.fetch_add(1, Ordering::SeqCst);
                    let replica = req
                        .headers()
                        .get(REPLICA)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("?")
                        .to_owned();
                    let token = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or("")
                        .to_owned();
                    state.seen.lock().unwrap().push((replica, token.clone()));
                    let valid = state
                        .issued
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|(t, _)| *t == token)
                        .map(|(_, issued)| issued.at.elapsed() < issued.lifetime);
                    let status = match valid {
                        _ if state.revoked.lock().unwrap().contains(&token) => {
                            state.rejected.fetch_add(1, Ordering::SeqCst);
                            StatusCode::UNAUTHORIZED
                        }
                        Some(true) => StatusCode::OK,
                        Some(false) => {
                            state.expired.fetch_add(1, Ordering::SeqCst);
                            StatusCode::UNAUTHORIZED
                        }
                        None => StatusCode::UNAUTHORIZED,
                    };
                    Response::builder()
                        .status(status)
                        .body(Full::<Bytes>::default())
                        .unwrap()
                }
            }))
        };
        Self {
            runtime,
            state,
            token_addr,
            api_addr,
        }
    }

    /// Orders for a member process `name` that uses these servers and
    /// `redis`, sends `burst` requests and leases for `lease_ttl`.
    pub fn member_orders(
        &self,
        redis: &RedisServer,
        name: &str,
        burst: usize,
        lease_ttl: Duration,
    ) -> MemberOrders {
        MemberOrders {
            name: name.into(),
            redis_url: redis.url(),
            token_url: self.token_url(),
            api_url: self.api_url(),
            burst,
            lease_ttl,
        }
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/oauth2/token", self.token_addr)
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/v1/things", self.api_addr)
    }

    /// Token requests so far.
    pub fn token_requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Tokens issued so far, in order.
    pub fn issued(&self) -> Vec<String> {
        self.state
            .issued
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    pub fn set_mode(&self, mode: Mint) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Hangs the next `n` token requests for ever.
    pub fn hang_next(&self, n: usize) {
        self.state.hang_next.store(n, Ordering::SeqCst);
    }

    /// Token requests from now on wait, unanswered, until [`release`](Self::release).
    pub fn hold(&self) {
        let mut held = self.state.held.lock().unwrap();
        match held.as_ref() {
            Some(held) => {
                held.send_replace(true);
            }
            None => *held = Some(tokio::sync::watch::channel(true).0),
        }
    }

    pub fn release(&self) {
        if let Some(held) = self.state.held.lock().unwrap().as_ref() {
            held.send_replace(false);
        }
    }

    pub fn set_latency(&self, latency: Duration) {
        *self.state.latency.lock().unwrap() = latency;
    }

    /// The API rejects `token` from now on.
    pub fn revoke(&self, token: &str) {
        self.state.revoked.lock().unwrap().insert(token.to_owned());
    }

    /// Which replicas sent each token to the API.
    pub fn senders(&self) -> HashMap<String, HashSet<String>> {
        let mut senders: HashMap<String, HashSet<String>> = HashMap::new();
        for (replica, token) in self.state.seen.lock().unwrap().iter() {
            senders
                .entry(token.clone())
                .or_default()
                .insert(replica.clone());
        }
        senders
    }

    pub fn api_requests(&self) -> u64 {
        self.state.api_requests.load(Ordering::SeqCst)
    }

    /// API requests that carried an expired token (never expected).
    pub fn expired_tokens_seen(&self) -> u64 {
        self.state.expired.load(Ordering::SeqCst)
    }

    /// Waits until the endpoint has seen `n` requests.
    pub fn wait_token_requests(&self, n: usize) {
        eventually(&format!("{n} token requests"), || {
            self.token_requests() >= n
        });
    }
}

/// A JSON response that no cache may keep, as token endpoints answer.
pub fn json(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Full::from(body))
        .unwrap()
}

// ---------------------------------------------------------------------------
// Replicas

pub type HyperClient = Client<HttpConnector, Full<Bytes>>;

/// One process of the fleet, as far as the tier can tell: its own tokio
/// runtime (a worker thread of its own), cache, tier, Redis connection and
/// HTTP client.
pub struct Replica {
    pub name: String,
    pub runtime: Runtime,
    pub cache: TokenCache,
    pub tier: SharedTier,
    pub client: BearerAuth<HyperClient>,
    api_url: String,
}

impl Replica {
    /// A replica whose tier wraps client credentials at `servers`' endpoint;
    /// `tier` and `cache` adjust the builders.
    pub fn new(
        name: impl Into<String>,
        servers: &Servers,
        redis_url: &str,
        tier: impl FnOnce(SharedTierBuilder) -> SharedTierBuilder,
        cache: impl FnOnce(TokenCacheBuilder) -> TokenCacheBuilder,
    ) -> Self {
        Self::with_urls(
            name,
            &servers.token_url(),
            &servers.api_url(),
            redis_url,
            tier,
            cache,
        )
    }

    /// As [`new`](Self::new), for a process that only knows the addresses.
    pub fn with_urls(
        name: impl Into<String>,
        token_url: &str,
        api_url: &str,
        redis_url: &str,
        tier: impl FnOnce(SharedTierBuilder) -> SharedTierBuilder,
        cache: impl FnOnce(TokenCacheBuilder) -> TokenCacheBuilder,
    ) -> Self {
        let endpoint = TokenEndpoint::builder(token_url)
            .client_id("fleet")
            .client_secret("fleet-secret")
            .http_client(HttpClient::new(
                Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>(),
            ))
            .build()
            .unwrap();
        let tier = tier(
            SharedTier::builder(redis_url)
                .namespace("fleet-tests")
                .encryption_key(key("k1", 1))
                // A hang guard: a loaded machine must not make a healthy
                // Redis look stalled.
                .redis_timeout(Duration::from_secs(10)),
        )
        .build(ClientCredentials::new(endpoint))
        .unwrap();
        Self::around(name, tier, api_url.to_owned(), cache)
    }

    /// A replica around a tier built elsewhere.
    pub fn around(
        name: impl Into<String>,
        tier: SharedTier,
        api_url: String,
        cache: impl FnOnce(TokenCacheBuilder) -> TokenCacheBuilder,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // The fleet suites revoke tokens as fast as they can: their counts
        // must not depend on how fast the machine is, so replacements are
        // never paced here (the in-process pacing has its own tests).
        let cache =
            cache(TokenCache::builder(tier.clone()).rejections_before_pacing(u32::MAX)).build();
        let client = {
            let _entered = runtime.enter();
            BearerAuthLayer::from_cache(cache.clone())
                .layer(Client::builder(TokioExecutor::new()).build_http())
        };
        Self {
            name: name.into(),
            runtime,
            cache,
            tier,
            client,
            api_url,
        }
    }

    /// Stops everything that runs on the replica's runtime (its lease
    /// renewals, its requests, a redemption going on alone), as SIGSTOP
    /// would, until the guard is dropped: the runtime's only worker thread
    /// blocks.
    pub fn stall(&self) -> Stalled {
        let (release, stalled) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            started.send(()).unwrap();
            let _ = stalled.recv();
        });
        has_started
            .recv_timeout(HANG_GUARD)
            .expect("the replica's runtime never stalled");
        Stalled { _release: release }
    }

    /// Sends one request to the API through the replica's `BearerAuth`.
    pub fn call(
        &self,
    ) -> impl Future<Output = Result<StatusCode, BearerAuthError<hyper_util::client::legacy::Error>>>
           + Send
           + 'static {
        let request = Request::get(&self.api_url)
            .header(REPLICA, &self.name)
            .body(Full::default())
            .unwrap();
        let client = self.client.clone();
        async move { client.oneshot(request).await.map(|r| r.status()) }
    }

    /// `workers` tasks sending requests one after another for `run_for`; the
    /// status of each (or the token error).
    pub async fn load(&self, workers: usize, run_for: Duration) -> Vec<Result<StatusCode, String>> {
        let deadline = tokio::time::Instant::now() + run_for;
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let calls = std::iter::repeat_with({
                    let (client, url, name) =
                        (self.client.clone(), self.api_url.clone(), self.name.clone());
                    move || {
                        let request = Request::get(&url)
                            .header(REPLICA, &name)
                            .body(Full::default())
                            .unwrap();
                        client.clone().oneshot(request)
                    }
                });
                tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    for call in calls {
                        if tokio::time::Instant::now() >= deadline {
                            break;
                        }
                        let status = tokio::time::timeout(Duration::from_secs(30), call)
                            .await
                            .expect("a request hung for 30 s");
                        statuses.push(status.map(|r| r.status()).map_err(|e| chain(&e)));
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    statuses
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    }

    /// `n` concurrent requests; the status of each (or the token error).
    pub async fn burst(&self, n: usize) -> Vec<Result<StatusCode, String>> {
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let call = self.call();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(30), call).await {
                        Ok(Ok(status)) => Ok(status),
                        Ok(Err(err)) => Err(chain(&err)),
                        Err(_) => panic!("a request hung for 30 s"),
                    }
                })
            })
            .collect();
        let mut results = Vec::with_capacity(n);
        for call in calls {
            results.push(call.await.unwrap());
        }
        results
    }
}

/// A replica's runtime, stalled: see [`Replica::stall`].
pub struct Stalled {
    _release: std::sync::mpsc::Sender<()>,
}

/// How long any wait for an event may take before the test fails as hung.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// Waits until `done` holds (checking every few milliseconds); fails if it
/// never does within [`HANG_GUARD`]. Orders a test by an event it can
/// observe, never by a sleep.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Declares, at the root of a fleet suite, the `fleet_member` entry point
/// that [`MemberOrders::spawn`] runs (the test binary run again with orders in
/// its environment). Run alone, without orders, it fails.
// Unused in suites that start no member process.
#[allow(unused_macros)]
macro_rules! fleet_member_entry_point {
    () => {
        #[test]
        #[ignore = "a fleet member process, started by the tests that need one"]
        fn fleet_member() {
            let orders = $crate::support::fleet::MemberOrders::from_env()
                .expect("fleet_member runs only as a member process");
            $crate::support::fleet::serve_as_member(orders);
        }
    };
}
#[allow(unused_imports)]
pub(crate) use fleet_member_entry_point;

/// `n` replicas, `r0`, `r1`, …, of the servers' fleet on the Redis at `url`,
/// each tier set up by `tier`.
pub fn fleet(
    n: usize,
    servers: &Servers,
    url: &str,
    tier: impl Fn(SharedTierBuilder) -> SharedTierBuilder,
) -> Vec<Replica> {
    (0..n)
        .map(|i| Replica::new(format!("r{i}"), servers, url, &tier, |c| c))
        .collect()
}

/// Asserts that every request of every replica (as [`together`] returns
/// them) was answered 200.
pub fn all_ok(results: &[Vec<Result<StatusCode, String>>]) {
    for (i, results) in results.iter().enumerate() {
        for result in results {
            assert_eq!(
                result.as_ref().ok(),
                Some(&StatusCode::OK),
                "replica {i}: {result:?}"
            );
        }
    }
}

/// Runs `f` on every replica at once, each on its own runtime; returns what
/// each returned, in order.
pub fn together<'a, T, F, Fut>(replicas: &'a [Replica], f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&'a Replica) -> Fut + Sync,
    Fut: Future<Output = T>,
{
    let start = std::sync::Barrier::new(replicas.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = replicas
            .iter()
            .map(|replica| {
                let (f, start) = (&f, &start);
                scope.spawn(move || {
                    start.wait();
                    replica.runtime.block_on(f(replica))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Sums a counter over every replica's tier.
pub fn total(
    replicas: &[Replica],
    counter: impl Fn(&tower_bearer::shared_tier::SharedTierStats) -> u64,
) -> u64 {
    replicas.iter().map(|r| counter(&r.tier.stats())).sum()
}

/// A flag for tests that start something in the background.
pub fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

// ---------------------------------------------------------------------------
// Replicas as separate OS processes

/// The environment variable that makes the test binary a fleet member.
pub const MEMBER_ENV: &str = "TOWER_BEARER_FLEET_MEMBER";

/// What a fleet member process is told: where everything is, and what to do.
pub struct MemberOrders {
    pub name: String,
    pub redis_url: String,
    pub token_url: String,
    pub api_url: String,
    pub burst: usize,
    pub lease_ttl: Duration,
}

impl MemberOrders {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.name,
            self.redis_url,
            self.token_url,
            self.api_url,
            self.burst,
            self.lease_ttl.as_millis()
        )
    }

    /// The orders of this process, if it is a fleet member.
    pub fn from_env() -> Option<Self> {
        let orders = std::env::var(MEMBER_ENV).ok()?;
        let parts: Vec<&str> = orders.split('|').collect();
        let [name, redis_url, token_url, api_url, burst, lease_ms] = parts[..] else {
            panic!("bad {MEMBER_ENV}: {orders}");
        };
        Some(Self {
            name: name.into(),
            redis_url: redis_url.into(),
            token_url: token_url.into(),
            api_url: api_url.into(),
            burst: burst.parse().unwrap(),
            lease_ttl: Duration::from_millis(lease_ms.parse().unwrap()),
        })
    }

    /// Starts the test binary again as a fleet member running `test` (an
    /// ignored test that calls [`serve_as_member`]).
    pub fn spawn(&self, test: &str) -> Member {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                test,
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MEMBER_ENV, self.encode())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Member { child }
    }
}

/// A member process, killed (by pid) when dropped, even after a panic.
pub struct Member {
    pub child: Child,
}

impl Member {
    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its report: its counters by name.
    pub fn report(&mut self) -> HashMap<String, u64> {
        let stdout = self.child.stdout.take().unwrap();
        let line = std::io::BufRead::lines(std::io::BufReader::new(stdout))
            .map_while(Result::ok)
            // libtest may print `test fleet_member ... ` on the same line.
            .find_map(|line| line.find(REPORT).map(|at| line[at..].to_owned()))
            .expect("the member process printed no report");
        let _ = self.child.wait();
        line.split_whitespace()
            .filter_map(|field| field.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
            .collect()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The report line a member prints when done.
pub const REPORT: &str = "FLEET-MEMBER";

/// In a member process: sends the burst, prints one report line
/// (`FLEET-MEMBER name ok=.. errors=.. fetches=.. leases=.. served=.. waits=..`).
pub fn serve_as_member(orders: MemberOrders) {
    let replica = Replica::with_urls(
        orders.name.clone(),
        &orders.token_url,
        &orders.api_url,
        &orders.redis_url,
        |t| t.lease_ttl(orders.lease_ttl),
        |c| c,
    );
    let results = replica.runtime.block_on(replica.burst(orders.burst));
    let ok = results
        .iter()
        .filter(|r| r.as_ref().ok() == Some(&StatusCode::OK))
        .count();
    let tier = replica.tier.stats();
    println!(
        "{REPORT} {} ok={ok} errors={} fetches={} leases={} served={} waits={}",
        orders.name,
        results.len() - ok,
        replica.cache.stats().fetches,
        tier.leases,
        tier.served_shared,
        tier.waits,
    );
}

/// An error and its causes, `: `-separated (as `anyhow`'s `{:#}`): each
/// error's `Display` says only what failed at its own level.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut shown = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        shown.push_str(": ");
        shown.push_str(&cause.to_string());
        next = cause.source();
    }
    shown
}
