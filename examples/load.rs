//! Refresh under concurrent load: many tasks send requests through one
//! `BearerAuth` client while short-lived tokens expire and are refreshed.
//!
//! By default it starts its own token endpoint and API on 127.0.0.1: the token
//! endpoint answers a client-credentials request after `--token-latency` with
//! a token valid for `--token-lifetime`; the API accepts a request only if its
//! bearer token has not expired (and rejects `--reject-fraction` of the others
//! with a 401, to exercise invalidation and replay). With `--revoke-fraction`,
//! that fraction of fresh tokens is revoked on their first use, as an API that
//! introspects every token at its authorization server sees it. No request
//! may then fail without being sent, and each 401 that reaches a caller must
//! come from a replay whose fresh token was itself revoked, or from a request
//! sent once while the cache paced its replacements (the API counts those,
//! and they must equal the cache's own `paced` count): `revocation_check`.
//! With `--reject-all`, the API rejects every token (a wrong audience, a
//! disabled client): every caller must get the API's 401, none a token error,
//! and the token requests must stay within the bound the cache's pacing sets
//! (`reject_all_check`, see `token_request_bound`).
//!
//! ```text
//! cargo run --release --example load -- --concurrency 64 --duration 30 \
//!     --token-lifetime 2 --token-latency 20 --json target/load.json
//! ```
//!
//! Against real servers (the token is fetched with the crate's
//! `oauth2::ClientCredentials`; an `https://` token endpoint needs the default
//! `rustls` feature; the API is spoken to over plain `http://`):
//!
//! ```text
//! LOAD_CLIENT_SECRET=... cargo run --release --example load -- \
//!     --token-url https://idp.example/oauth2/token --client-id ID --scope api/access \
//!     --api-url http://127.0.0.1:8080/v1/ping --concurrency 32 --requests 10000
//! ```
//!
//! Either flag alone replaces only that side: with `--token-url` alone, the
//! local API accepts any bearer token (it cannot check another issuer's).
//!
//! A fleet: with `--redis-url` (feature `redis`), the cache sits in front of
//! the shared tier (`tower_bearer::shared_tier`), and the summary adds what
//! the tier did: Redis commands, and the latency it added to each miss.
//! `--serve-only` runs just the local token endpoint and API, for several
//! load processes to share; `examples/fleet_load.rs` runs a whole fleet that
//! way, with and without the tier, and compares.
//!
//! It prints a progress line every second and a summary at the end: requests,
//! successes, errors by kind, token fetches, 401 retries, requests that had to
//! wait for a token (the cache's `waits`, split into start-up and after),
//! latency percentiles and requests per second. With no injected rejections,
//! requests should wait for a token only at start-up (at most one per task);
//! the `waits_check` field says whether that held (`--strict` exits 2 if not).

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{Layer, Service, ServiceExt};
use tower_bearer::cache::CacheStats;
use tower_bearer::oauth2::{ClientCredentials, HttpClient, TokenEndpoint};
use tower_bearer::{BearerAuthError, BearerAuthLayer, TokenCache};

const USAGE: &str = "\
load: refresh under concurrent load

USAGE: cargo run --release --example load -- [OPTIONS]

  --concurrency N        concurrent tasks sending requests            [64]
  --duration SECS        how long to run (unless --requests)          [10]
  --requests N           send N requests in all, then stop
  --token-lifetime SECS  lifetime of the local endpoint's tokens      [2]
  --token-latency MS     the local token endpoint's response time     [20]
  --reject-fraction F    fraction of API requests answered 401        [0]
  --revoke-fraction F    fraction of fresh tokens revoked at first use [0]
  --reject-all           the local API rejects every token with a 401
  --json PATH            also write the summary as JSON to PATH
  --strict               exit 2 if requests waited for a token after start-up,
                         if a 401 reached a caller unexplained (--revoke-fraction),
                         or if --reject-all broke its check
  --token-url URL        use this token endpoint instead of the local one
  --client-id ID         client id for --token-url                    [load-test]
  --client-secret S      client secret for --token-url   [$LOAD_CLIENT_SECRET or load-secret]
  --scope SCOPE          scope to ask for (repeatable)
  --audience AUD         audience to ask for
  --api-url URL          send requests here instead of the local API
  --redis-url URL        share tokens through the shared tier on this Redis
                         (needs --features redis; key from $LOAD_TIER_KEY,
                         base64 of 32 bytes, or a fixed demo key)
  --namespace NS         the shared tier's key namespace                [load]
  --serve-only           only run the local token endpoint and API: print
                         `SERVING <token url> <api url>`, serve until stdin
                         closes, then print `SERVER-STATS <json>`
  -h, --help             this text
";

#[derive(Debug, Clone)]
struct Args {
    concurrency: usize,
    duration: Duration,
    requests: Option<u64>,
    token_lifetime: u64,
    token_latency: Duration,
    reject_fraction: f64,
    revoke_fraction: f64,
    reject_all: bool,
    json: Option<String>,
    strict: bool,
    token_url: Option<String>,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    audience: Option<String>,
    api_url: Option<String>,
    redis_url: Option<String>,
    namespace: String,
    serve_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        concurrency: 64,
        duration: Duration::from_secs(10),
        requests: None,
        token_lifetime: 2,
        token_latency: Duration::from_millis(20),
        reject_fraction: 0.0,
        revoke_fraction: 0.0,
        reject_all: false,
        json: None,
        strict: false,
        token_url: None,
        client_id: "load-test".into(),
        // From the environment by default, so that it stays out of `ps`.
        client_secret: std::env::var("LOAD_CLIENT_SECRET").unwrap_or_else(|_| "load-secret".into()),
        scopes: Vec::new(),
        audience: None,
        api_url: None,
        redis_url: None,
        namespace: "load".into(),
        serve_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (flag, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        }
        match flag.as_str() {
            "--concurrency" => args.concurrency = num(&flag, value()?)?,
            "--duration" => args.duration = Duration::from_secs_f64(num(&flag, value()?)?),
            "--requests" => args.requests = Some(num(&flag, value()?)?),
            "--token-lifetime" => args.token_lifetime = num(&flag, value()?)?,
            "--token-latency" => args.token_latency = Duration::from_millis(num(&flag, value()?)?),
            "--reject-fraction" => args.reject_fraction = num(&flag, value()?)?,
            "--revoke-fraction" => args.revoke_fraction = num(&flag, value()?)?,
            "--reject-all" => args.reject_all = true,
            "--json" => args.json = Some(value()?),
            "--strict" => args.strict = true,
            "--token-url" => args.token_url = Some(value()?),
            "--client-id" => args.client_id = value()?,
            "--client-secret" => args.client_secret = value()?,
            "--scope" => args.scopes.push(value()?),
            "--audience" => args.audience = Some(value()?),
            "--api-url" => args.api_url = Some(value()?),
            "--redis-url" => args.redis_url = Some(value()?),
            "--namespace" => args.namespace = value()?,
            "--serve-only" => args.serve_only = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&args.reject_fraction) {
        return Err("--reject-fraction must be between 0 and 1".into());
    }
    if !(0.0..=1.0).contains(&args.revoke_fraction) {
        return Err("--revoke-fraction must be between 0 and 1".into());
    }
    if args.reject_all && args.api_url.is_some() {
        return Err("--reject-all is a setting of the local API: not with --api-url".into());
    }
    if args.reject_all && (args.reject_fraction > 0.0 || args.revoke_fraction > 0.0) {
        return Err("--reject-all rejects every token: not with --reject/--revoke-fraction".into());
    }
    Ok(args)
}

// ---- the local token endpoint and API ---------------------------------------

/// What the local servers saw.
#[derive(Default)]
struct ServerStats {
    tokens_issued: AtomicU64,
    api_requests: AtomicU64,
    /// Requests that came with a token that had already expired (or that this
    /// endpoint did not issue): the client should never send one.
    expired_tokens: AtomicU64,
    /// Requests without a bearer token: never expected.
    missing_tokens: AtomicU64,
    injected_401: AtomicU64,
    /// Requests rejected because their token was revoked.
    revoked_401: AtomicU64,
    /// Of those, the second attempts of a request (its retry with a fresh
    /// token that was itself revoked).
    revoked_401_on_retry: AtomicU64,
    /// Requests rejected because the API rejects every token (`--reject-all`).
    rejected_all_401: AtomicU64,
}

struct Server {
    /// `false` when the tokens come from another endpoint: the API then only
    /// checks that a bearer token is present.
    validates_tokens: bool,
    epoch: Instant,
    lifetime: u64,
    latency: Duration,
    reject_fraction: f64,
    revoke_fraction: f64,
    reject_all: bool,
    stats: ServerStats,
    draw: AtomicU64,
    /// Ids of requests rejected once: their next arrival is their retry.
    /// Those still here at the end were sent once, and their 401 reached
    /// the caller.
    rejected_once: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl Server {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        Ok(match req.uri().path() {
            "/oauth2/token" => self.token(req).await,
            _ => self.api(&req),
        })
    }

    async fn token(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let body = req.into_body().collect().await.map(|b| b.to_bytes());
        let ok = body.is_ok_and(|b| {
            std::str::from_utf8(&b).is_ok_and(|s| s.contains("grant_type=client_credentials"))
        });
        if !ok {
            return json(
                StatusCode::BAD_REQUEST,
                r#"{"error":"unsupported_grant_type"}"#.into(),
            );
        }
        tokio::time::sleep(self.latency).await;
        let serial = self.stats.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
        // Self-contained: the API checks expiry without shared state.
        let expires_ms = self.now_ms() + self.lifetime * 1000;
        json(
            StatusCode::OK,
            format!(
                r#"{{"access_token":"lt.{serial}.{expires_ms}","token_type":"Bearer","expires_in":{}}}"#,
                self.lifetime
            ),
        )
    }

    fn api(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        self.stats.api_requests.fetch_add(1, Ordering::Relaxed);
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else {
            self.stats.missing_tokens.fetch_add(1, Ordering::Relaxed);
            return unauthorized();
        };
        let expires_ms = token
            .strip_prefix("lt.")
            .and_then(|t| t.split('.').nth(1))
            .and_then(|ms| ms.parse::<u64>().ok());
        let expired = match expires_ms {
            Some(expires_ms) => expires_ms <= self.now_ms(),
            // Not one of ours: only acceptable if tokens come from elsewhere.
            None => self.validates_tokens,
        };
        if expired {
            self.stats.expired_tokens.fetch_add(1, Ordering::Relaxed);
            return unauthorized();
        }
        if self.reject_all {
            self.stats.rejected_all_401.fetch_add(1, Ordering::Relaxed);
            return unauthorized();
        }
        if self.revoke_fraction > 0.0 {
            // Only rejections matter here: a request id is remembered from its
            // first rejection until it comes back (its retry).
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let is_retry = id.is_some_and(|id| self.rejected_once.lock().unwrap().remove(&id));
            let serial = token
                .strip_prefix("lt.")
                .and_then(|t| t.split('.').next())
                .and_then(|n| n.parse::<u64>().ok());
            if serial.is_some_and(|serial| spread(serial ^ REVOKE_SALT) < self.revoke_fraction) {
                self.stats.revoked_401.fetch_add(1, Ordering::Relaxed);
                if is_retry {
                    self.stats
                        .revoked_401_on_retry
                        .fetch_add(1, Ordering::Relaxed);
                } else if let Some(id) = id {
                    self.rejected_once.lock().unwrap().insert(id);
                }
                return unauthorized();
            }
        }
        if self.reject_fraction > 0.0 && self.draw() < self.reject_fraction {
            self.stats.injected_401.fetch_add(1, Ordering::Relaxed);
            return unauthorized();
        }
        json(StatusCode::OK, r#"{"ok":true}"#.into())
    }

    /// A deterministic, well spread sequence in [0, 1).
    fn draw(&self) -> f64 {
        spread(self.draw.fetch_add(1, Ordering::Relaxed))
    }
}

/// Which tokens are revoked does not follow the rejected requests' sequence.
const REVOKE_SALT: u64 = 0x5EED;

/// `n` mapped to a well spread number in [0, 1) (splitmix64).
fn spread(n: u64) -> f64 {
    let x = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The header that tells the local API which request (not which attempt) it
/// sees: a replay carries the same value.
const REQUEST_ID: &str = "x-request-id";

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut res = json(
        StatusCode::UNAUTHORIZED,
        r#"{"error":"invalid_token"}"#.into(),
    );
    res.headers_mut().insert(
        WWW_AUTHENTICATE,
        http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
    );
    res
}

async fn start_server(server: Arc<Server>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| Arc::clone(&server).handle(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

// ---- the load --------------------------------------------------------------

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    ok: AtomicU64,
    errors: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    /// Tasks that have finished their first request.
    started: AtomicUsize,
}

impl Counters {
    fn error(&self, kind: &'static str) {
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }
}

fn api_client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match cli::flags_or_usage(parse_args(), USAGE) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match run(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let local =
        (args.serve_only || args.token_url.is_none() || args.api_url.is_none()).then(|| {
            Arc::new(Server {
                validates_tokens: args.token_url.is_none(),
                epoch: Instant::now(),
                lifetime: args.token_lifetime,
                latency: args.token_latency,
                reject_fraction: args.reject_fraction,
                revoke_fraction: args.revoke_fraction,
                reject_all: args.reject_all,
                stats: ServerStats::default(),
                draw: AtomicU64::new(0),
                rejected_once: Default::default(),
            })
        });
    let local_addr = match &local {
        Some(server) => Some(start_server(Arc::clone(server)).await?),
        None => None,
    };
    if args.serve_only {
        return serve_only(local.expect("serving"), local_addr.expect("serving")).await;
    }
    let token_url = args
        .token_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/oauth2/token", local_addr.unwrap()));
    let api_url: http::Uri = args
        .api_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/v1/ping", local_addr.unwrap()))
        .parse()?;

    // The token source: the crate's client-credentials grant.
    let mut endpoint = TokenEndpoint::builder(&token_url)
        .client_id(&args.client_id)
        .client_secret(args.client_secret.as_str());
    if token_url.starts_with("http://") {
        endpoint = endpoint.http_client(HttpClient::new(api_client()));
    }
    let mut source = ClientCredentials::new(endpoint.build()?);
    for scope in &args.scopes {
        source = source.scope(scope);
    }
    if let Some(audience) = &args.audience {
        source = source.audience(audience);
    }
    let (cache, tier) = cache_for(&args, source)?;
    if api_url.scheme_str() != Some("http") {
        return Err(format!(
            "--api-url {api_url}: this tool sends API requests over plain http:// only \
             (the token endpoint may be https://)"
        )
        .into());
    }
    let client = BearerAuthLayer::from_cache(cache.clone()).layer(api_client());

    eprintln!(
        "load: {} tasks, {}, token endpoint {token_url}, API {api_url}{}",
        args.concurrency,
        match args.requests {
            Some(n) => format!("{n} requests"),
            None => format!("{:.0} s", args.duration.as_secs_f64()),
        },
        match &local {
            Some(_) if args.token_url.is_some() => " (local API)".to_owned(),
            Some(_) if args.reject_all => format!(
                " (local: tokens live {} s, issued after {} ms, every token rejected)",
                args.token_lifetime,
                args.token_latency.as_millis(),
            ),
            Some(_) => format!(
                " (local: tokens live {} s, issued after {} ms, {}% rejected, {}% revoked)",
                args.token_lifetime,
                args.token_latency.as_millis(),
                args.reject_fraction * 100.0,
                args.revoke_fraction * 100.0
            ),
            None => String::new(),
        }
    );

    let counters = Arc::new(Counters::default());
    let startup_stats: Arc<OnceLock<CacheStats>> = Arc::new(OnceLock::new());
    let start = Instant::now();
    let deadline = start + args.duration;
    let budget = args.requests;
    let concurrency = args.concurrency;

    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let counters = Arc::clone(&counters);
            let startup_stats = Arc::clone(&startup_stats);
            let cache = cache.clone();
            let api_url = api_url.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 14);
                let mut first = true;
                loop {
                    let n = counters.sent.fetch_add(1, Ordering::Relaxed);
                    let done = match budget {
                        Some(budget) => n >= budget,
                        None => Instant::now() >= deadline,
                    };
                    if done {
                        counters.sent.fetch_sub(1, Ordering::Relaxed);
                        break;
                    }
                    let t0 = Instant::now();
                    let outcome = send(client.clone(), &api_url, n).await;
                    latencies.push(t0.elapsed().as_micros() as u64);
                    match outcome {
                        Ok(()) => {
                            counters.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(kind) => counters.error(kind),
                    }
                    if first {
                        first = false;
                        if counters.started.fetch_add(1, Ordering::AcqRel) + 1 == concurrency {
                            let _ = startup_stats.set(cache.stats());
                        }
                    }
                }
                latencies
            })
        })
        .collect();

    let progress = {
        let counters = Arc::clone(&counters);
        let cache = cache.clone();
        let tty = std::io::stderr().is_terminal();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let sent = counters.sent.load(Ordering::Relaxed);
                let errors: u64 = counters.errors.lock().unwrap().values().sum();
                let s = cache.stats();
                let line = format!(
                    "[{:>5.1}s] {sent:>9} requests {:>7} req/s  errors {errors}  fetches {}  retries {}  waits {}",
                    start.elapsed().as_secs_f64(),
                    sent - last,
                    s.fetches,
                    s.retries,
                    s.waits,
                );
                // One line updated in place on a terminal; a line a second in a log.
                if tty {
                    eprint!("\r{line}");
                } else {
                    eprintln!("{line}");
                }
                last = sent;
            }
        })
    };

    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let elapsed = start.elapsed();
    progress.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }

    let stats = cache.stats();
    let at_startup = startup_stats.get().copied().unwrap_or(stats);
    let waits_after = stats.waits - at_startup.waits;
    let waits_ok = at_startup.waits <= concurrency as u64 && waits_after == 0;
    let successes = counters.ok.load(Ordering::Relaxed);
    let waits_check = if successes == 0 {
        "n/a (no request succeeded)"
    } else if args.reject_fraction > 0.0 || args.revoke_fraction > 0.0 || args.reject_all {
        "n/a (rejections injected: a rejected token makes callers wait)"
    } else if waits_ok {
        "pass"
    } else {
        "FAIL"
    };

    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    let requests = latencies.len() as u64;
    let errors = counters.errors.lock().unwrap().clone();
    let rps = requests as f64 / elapsed.as_secs_f64();

    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut summary = serde_json::json!({
        "args": argv.join(" "),
        "concurrency": concurrency,
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "requests": requests,
        "successes": successes,
        "errors": errors,
        "token_fetches": stats.fetches,
        "fetch_failures": stats.fetch_failures,
        "refreshes_ahead": stats.refreshes_ahead,
        "invalidations": stats.invalidations,
        "retries_401": stats.retries,
        "waits": stats.waits,
        "waits_at_startup": at_startup.waits,
        "waits_after_startup": waits_after,
        "waits_check": waits_check,
        "paced_rejections": stats.paced,
        "latency_us": {
            "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99),
            "max": latencies.last().copied().unwrap_or(0),
        },
        "requests_per_s": round3(rps),
        "token_url": token_url,
        "api_url": api_url.to_string(),
    });
    if let Some(tier) = &tier {
        summary["shared_tier"] = tier.summary(requests);
    }
    if let Some(server) = &local {
        let s = &server.stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        summary["local_server"] = serde_json::json!({
            "token_lifetime_s": args.token_lifetime,
            "token_latency_ms": args.token_latency.as_millis() as u64,
            "reject_fraction": args.reject_fraction,
            "tokens_issued": load(&s.tokens_issued),
            "api_requests": load(&s.api_requests),
            "expired_tokens_received": load(&s.expired_tokens),
            "missing_tokens": load(&s.missing_tokens),
            "injected_401": load(&s.injected_401),
            "revoke_fraction": args.revoke_fraction,
            "revoked_401": load(&s.revoked_401),
            "revoked_401_on_retry": load(&s.revoked_401_on_retry),
            "revoked_401_sent_once": server.rejected_once.lock().unwrap().len(),
            "reject_all": args.reject_all,
            "rejected_all_401": load(&s.rejected_all_401),
        });
        let at_callers = errors.get("http_401").copied().unwrap_or(0);
        // Failures without a round trip: no token could be had.
        let unsent = errors.get("token").copied().unwrap_or(0);
        if args.revoke_fraction > 0.0 && args.reject_fraction == 0.0 {
            // Every 401 a caller saw is a replay's whose fresh token was
            // revoked too, or a request's sent once while the cache paced
            // the replacements: the API counts those (rejected once, never
            // back), and so does the cache, each on its own.
            let on_retry = load(&s.revoked_401_on_retry);
            let sent_once = server.rejected_once.lock().unwrap().len() as u64;
            let pass = unsent == 0
                && load(&s.expired_tokens) == 0
                && at_callers == on_retry + sent_once
                && sent_once == stats.paced;
            summary["revocation_check"] = serde_json::json!(if pass { "pass" } else { "FAIL" });
            summary["http_401_at_callers"] = serde_json::json!(at_callers);
        }
        if args.reject_all {
            // Every caller got the API's 401; the token requests stayed
            // within what the pacing allows.
            let bound = token_request_bound(elapsed, Duration::from_secs(args.token_lifetime));
            let issued = load(&s.tokens_issued);
            let pass = unsent == 0
                && successes == 0
                && at_callers == requests
                && load(&s.expired_tokens) == 0
                && issued <= bound;
            summary["reject_all_check"] = serde_json::json!(if pass { "pass" } else { "FAIL" });
            summary["http_401_at_callers"] = serde_json::json!(at_callers);
            summary["token_request_bound"] = serde_json::json!(bound);
            summary["token_request_bound_a_minute"] = serde_json::json!(token_request_bound(
                Duration::from_secs(60),
                Duration::from_secs(args.token_lifetime)
            ));
        }
    }

    print_summary(&summary);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")?;
        eprintln!("summary written to {path}");
    }
    let check_failed = ["revocation_check", "reject_all_check"]
        .iter()
        .any(|check| summary.get(check).is_some_and(|c| c == "FAIL"));
    Ok(if args.strict && (waits_check == "FAIL" || check_failed) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// One request; the response body is read to the end so that the connection
/// goes back to the pool.
async fn send<S>(mut client: S, url: &http::Uri, id: u64) -> Result<(), &'static str>
where
    S: Service<
        Request<Full<Bytes>>,
        Response = Response<Incoming>,
        Error = BearerAuthError<hyper_util::client::legacy::Error>,
    >,
{
    let req = Request::get(url.clone())
        .header(USER_AGENT, "tower-bearer-load/0.1")
        .header(ACCEPT, "application/json")
        .header(REQUEST_ID, id)
        .body(Full::default())
        .expect("a valid request");
    let res = match client.ready().await {
        Ok(ready) => ready.call(req).await,
        Err(err) => Err(err),
    };
    let res = match res {
        Ok(res) => res,
        Err(BearerAuthError::Token(_)) => return Err("token"),
        Err(BearerAuthError::Service(_)) => return Err("transport"),
    };
    let status = res.status();
    if res.into_body().collect().await.is_err() {
        return Err("body");
    }
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::UNAUTHORIZED => Err("http_401"),
        s if s.is_server_error() => Err("http_5xx"),
        _ => Err("http_other"),
    }
}

/// The most token requests an API that rejects every token may cause in
/// `elapsed`, with the cache's default pacing (`TokenCache::new`) and tokens
/// that live `lifetime`: the first token; three replacements at once; then
/// one after each pace, 250 ms doubling to 30 s (about two a minute once the
/// pace is at its longest); and one each time the token at hand, rejected,
/// reaches the end of its usable life (at least 90 % of its lifetime, the
/// default expiry skew), since an expired token is never sent.
fn token_request_bound(elapsed: Duration, lifetime: Duration) -> u64 {
    let (mut paced, mut at, mut pace) = (0, Duration::ZERO, Duration::from_millis(250));
    loop {
        at += pace;
        if at > elapsed {
            break;
        }
        paced += 1;
        pace = (pace * 2).min(Duration::from_secs(30));
    }
    let usable = lifetime.mul_f64(0.9).max(Duration::from_millis(1));
    let expiries = (elapsed.as_secs_f64() / usable.as_secs_f64()).ceil() as u64;
    1 + 3 + paced + expiries
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_summary(s: &serde_json::Value) {
    let l = &s["latency_us"];
    println!("---- summary ----");
    println!("requests            {}", s["requests"]);
    println!("successes           {}", s["successes"]);
    println!("errors              {}", s["errors"]);
    println!(
        "token fetches       {} (ahead of expiry: {}, failed: {})",
        s["token_fetches"], s["refreshes_ahead"], s["fetch_failures"]
    );
    println!(
        "401 retries         {} (tokens invalidated: {})",
        s["retries_401"], s["invalidations"]
    );
    println!(
        "waited for a token  {} (at start-up: {}, after: {}) check: {}",
        s["waits"], s["waits_at_startup"], s["waits_after_startup"], s["waits_check"]
    );
    println!(
        "latency             p50 {} us  p90 {} us  p99 {} us  max {} us",
        l["p50"], l["p90"], l["p99"], l["max"]
    );
    println!(
        "throughput          {} requests/s over {} s",
        s["requests_per_s"], s["elapsed_s"]
    );
    if let Some(check) = s.get("revocation_check") {
        let server = &s["local_server"];
        println!(
            "revoked tokens      {} 401s reached callers: {} after a replay whose fresh token was \
             revoked too, {} sent once while replacements were paced (the cache counted {}): {check}",
            s["http_401_at_callers"],
            server["revoked_401_on_retry"],
            server["revoked_401_sent_once"],
            s["paced_rejections"]
        );
    }
    if let Some(check) = s.get("reject_all_check") {
        println!(
            "every token refused {} 401s reached callers; {} token requests, at most {} in this \
             run ({} in a minute): {check}",
            s["http_401_at_callers"],
            s["local_server"]["tokens_issued"],
            s["token_request_bound"],
            s["token_request_bound_a_minute"]
        );
    }
    if let Some(tier) = s.get("shared_tier") {
        println!("shared tier         {tier}");
    }
    if let Some(server) = s.get("local_server") {
        println!("local server        {server}");
    }
}

/// `--serve-only`: the local token endpoint and API for other processes.
async fn serve_only(
    server: Arc<Server>,
    addr: SocketAddr,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    println!("SERVING http://{addr}/oauth2/token http://{addr}/v1/ping");
    // Until the runner closes stdin (or goes away).
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await??;
    let s = &server.stats;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let stats = serde_json::json!({
        "tokens_issued": load(&s.tokens_issued),
        "api_requests": load(&s.api_requests),
        "expired_tokens_received": load(&s.expired_tokens),
        "missing_tokens": load(&s.missing_tokens),
    });
    println!("SERVER-STATS {stats}");
    Ok(ExitCode::SUCCESS)
}

/// The cache, in front of the shared tier with `--redis-url`.
fn cache_for(
    args: &Args,
    source: ClientCredentials,
) -> Result<(TokenCache, Option<fleet::Tier>), Box<dyn std::error::Error>> {
    match &args.redis_url {
        None => Ok((TokenCache::new(source), None)),
        Some(url) => {
            let tier = fleet::Tier::new(url, &args.namespace, source)?;
            Ok((TokenCache::new(tier.source()), Some(tier)))
        }
    }
}

#[cfg(not(feature = "redis"))]
mod fleet {
    use tower_bearer::oauth2::ClientCredentials;
    use tower_bearer::StaticToken;

    pub enum Tier {}

    impl Tier {
        pub fn new(
            _url: &str,
            _namespace: &str,
            _source: ClientCredentials,
        ) -> Result<Self, Box<dyn std::error::Error>> {
            Err("--redis-url needs the shared tier: build with --features redis".into())
        }

        pub fn source(&self) -> StaticToken {
            match *self {}
        }

        pub fn summary(&self, _requests: u64) -> serde_json::Value {
            match *self {}
        }
    }
}

/// The shared tier, timed: how long each miss took, and how much of it was
/// the token endpoint (only the lease holder's misses ask it).
#[cfg(feature = "redis")]
mod fleet {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use tower_bearer::oauth2::ClientCredentials;
    use tower_bearer::shared_tier::{EncryptionKey, SharedTier};
    use tower_bearer::{AccessToken, TokenError, TokenSource};

    /// A demo key, for loopback runs only.
    const DEMO_KEY: [u8; 32] = *b"tower-bearer load demo key 32 b!";

    pub struct Tier {
        tier: SharedTier,
        upstream_us: Arc<AtomicU64>,
        misses: Arc<Mutex<Vec<Miss>>>,
    }

    /// One miss of the cache, as the tier served it.
    #[derive(Clone, Copy)]
    struct Miss {
        /// The whole fetch, in microseconds.
        whole_us: u64,
        /// Of which the token endpoint (the lease holder's request).
        upstream_us: u64,
        /// It waited for another process's fetch.
        waited: bool,
    }

    impl Tier {
        pub fn new(
            url: &str,
            namespace: &str,
            source: ClientCredentials,
        ) -> Result<Self, Box<dyn std::error::Error>> {
            let key = match std::env::var("LOAD_TIER_KEY") {
                Ok(encoded) => EncryptionKey::from_base64("load", &encoded)?,
                Err(_) => EncryptionKey::new("demo", DEMO_KEY)?,
            };
            let upstream_us = Arc::new(AtomicU64::new(0));
            let tier = SharedTier::builder(url)
                .namespace(namespace)
                .encryption_key(key)
                .build(Upstream {
                    inner: source,
                    spent_us: upstream_us.clone(),
                })?;
            Ok(Self {
                tier,
                upstream_us,
                misses: Arc::default(),
            })
        }

        pub fn source(&self) -> Timed {
            Timed {
                tier: self.tier.clone(),
                upstream_us: self.upstream_us.clone(),
                misses: self.misses.clone(),
            }
        }

        pub fn summary(&self, requests: u64) -> serde_json::Value {
            let stats = self.tier.stats();
            let misses = self.misses.lock().unwrap().clone();
            let pick = |f: &dyn Fn(&Miss) -> Option<u64>| {
                misses.iter().filter_map(f).collect::<Vec<u64>>()
            };
            let read = pick(&|m| (m.upstream_us == 0 && !m.waited).then_some(m.whole_us));
            let waited = pick(&|m| (m.upstream_us == 0 && m.waited).then_some(m.whole_us));
            let holder =
                pick(&|m| (m.upstream_us > 0).then(|| m.whole_us.saturating_sub(m.upstream_us)));
            serde_json::json!({
                "fetches": stats.fetches,
                "served_shared": stats.served_shared,
                "leases": stats.leases,
                "waits": stats.waits,
                "fallbacks": stats.fallbacks,
                "redis_errors": stats.redis_errors,
                "redis_commands": stats.redis_commands,
                "redis_commands_per_request": if requests == 0 { 0.0 } else {
                    stats.redis_commands as f64 / requests as f64
                },
                "miss_us": {
                    "read_from_redis": percentiles(read),
                    "waited_for_another_process": percentiles(waited),
                    "lease_holder_overhead": percentiles(holder),
                },
            })
        }
    }

    fn percentiles(mut v: Vec<u64>) -> serde_json::Value {
        v.sort_unstable();
        let at = |p: f64| {
            v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
                .copied()
        };
        serde_json::json!({ "n": v.len(), "p50": at(0.5), "max": v.last() })
    }

    /// The client-credentials source, timed.
    pub struct Upstream {
        inner: ClientCredentials,
        spent_us: Arc<AtomicU64>,
    }

    impl TokenSource for Upstream {
        async fn fetch(&self) -> Result<AccessToken, TokenError> {
            let t0 = Instant::now();
            let token = self.inner.fetch().await;
            self.spent_us
                .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            token
        }
    }

    /// The tier, timed: every miss of the cache.
    pub struct Timed {
        tier: SharedTier,
        upstream_us: Arc<AtomicU64>,
        misses: Arc<Mutex<Vec<Miss>>>,
    }

    impl Timed {
        async fn timed(
            &self,
            fetch: impl std::future::Future<Output = Result<AccessToken, TokenError>>,
        ) -> Result<AccessToken, TokenError> {
            // The cache fetches once at a time: these deltas are this fetch's.
            let before = self.upstream_us.load(Ordering::Relaxed);
            let waits = self.tier.stats().waits;
            let t0 = Instant::now();
            let token = fetch.await;
            let miss = Miss {
                whole_us: t0.elapsed().as_micros() as u64,
                upstream_us: self.upstream_us.load(Ordering::Relaxed) - before,
                waited: self.tier.stats().waits > waits,
            };
            self.misses.lock().unwrap().push(miss);
            token
        }
    }

    impl TokenSource for Timed {
        async fn fetch(&self) -> Result<AccessToken, TokenError> {
            self.timed(self.tier.fetch()).await
        }

        async fn fetch_replacing(&self, rejected: &AccessToken) -> Result<AccessToken, TokenError> {
            self.timed(self.tier.fetch_replacing(rejected)).await
        }
    }
}
