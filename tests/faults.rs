//! The fault suite: every way a token source, a token endpoint or an API can
//! misbehave, driven through the full stack (`BearerAuthLayer` over a
//! hyper-util client, loopback servers on 127.0.0.1).
//!
//! Each test checks the same promises:
//! - every caller gets a response or a typed error within [`CALL_BOUND`]
//!   (each is wrapped in a timeout; a hang fails the test), and nothing panics;
//! - the number of fetches stays bounded (no storm), counted, never timed;
//! - a still-valid token keeps being used while fetches fail;
//! - the system recovers once the fault ends;
//! - no request reaches the API without a token or is sent more than twice.
//!
//! Time is tokio's paused clock: backoff, expiry and timeouts pass in virtual
//! time, and nothing here sleeps to synchronise.

mod support;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use hyper::body::Incoming;
use support::api::*;
use support::sources::*;
use support::stack::*;
use support::token_server::*;
use tokio::time::{sleep, sleep_until, Instant};
use tower::ServiceExt;
use tower_bearer::oauth2::{ClientCredentials, ErrorCode, HttpClient, OAuth2Error, TokenEndpoint};
use tower_bearer::{BearerAuthError, ErrorKind, TokenCache, TokenError};

const BURST: usize = 50;

type Switch = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()>>>>;

/// A fault that can be switched on and off, and what is expected of it.
struct Fault {
    on: Switch,
    off: Switch,
    /// The kind of error callers get while it lasts.
    kind: ErrorKind,
    /// Requests that reached the token endpoint, if there is one.
    endpoint_requests: Box<dyn Fn() -> usize>,
}

/// Drives `fault` through every phase of a token's life:
///
/// A. no token yet: callers fail fast with a typed error, one fetch per burst,
///    none during backoff;
/// B. recovery;
/// C. a fresh token, refresh-ahead failing: the token keeps being served;
/// D. the token past its usable life but not expired: still served;
/// E. the token expired: typed errors again, bounded fetches;
/// F. recovery with a new token.
async fn run_fault_scenario(stack: &Stack, fault: &Fault) {
    let cache = &stack.cache;
    let fetches = || cache.stats().fetches;

    // A. No token, fault on.
    (fault.on)().await;
    let before = fetches();
    let outcomes = stack.burst(BURST).await;
    assert_all_token_errors(&outcomes, fault.kind);
    assert_eq!(fetches() - before, 1, "one fetch for {BURST} callers");
    let outcomes = stack.burst(BURST).await;
    assert_all_token_errors(&outcomes, fault.kind);
    assert_eq!(fetches() - before, 1, "no fetch during backoff");

    // B. Recovery after the backoff.
    (fault.off)().await;
    sleep(Duration::from_secs(31)).await;
    let before = fetches();
    let outcomes = stack.burst(BURST).await;
    let t1 = cache.token().await.expect("recovered").secret().to_owned();
    let t1_at = Instant::now();
    assert_all_ok_with(&outcomes, &t1);
    assert_eq!(fetches() - before, 1);

    // C. Refresh ahead fails: the still-valid token keeps being used.
    (fault.on)().await;
    let before = fetches();
    sleep_until(t1_at + Duration::from_secs(3540)).await;
    let outcomes = stack.burst(BURST).await;
    assert_all_ok_with(&outcomes, &t1);
    let c = fetches() - before;
    assert!(
        (1..=12).contains(&c),
        "refresh-ahead fetches while failing: {c}"
    );

    // D. Past its usable life (skew 10 s) but not expired: still served.
    // Over these 51 s, refresh-ahead keeps retrying with growing backoff
    // (each try of a hanging source also takes the 5 s fetch timeout).
    let before = fetches();
    sleep_until(t1_at + Duration::from_secs(3591)).await;
    let outcomes = stack.burst(BURST).await;
    assert_all_ok_with(&outcomes, &t1);
    let d = fetches() - before;
    assert!(d <= 8, "fetches in the last 60 s of the token: {d}");

    // E. Expired: typed errors, no storm.
    sleep_until(t1_at + Duration::from_secs(3601)).await;
    let before = fetches();
    for _ in 0..3 {
        let outcomes = stack.burst(BURST).await;
        assert_all_token_errors(&outcomes, fault.kind);
    }
    let e = fetches() - before;
    assert!(e <= 2, "fetches for 3 bursts after expiry: {e}");

    // F. Recovery.
    (fault.off)().await;
    sleep(Duration::from_secs(31)).await;
    let outcomes = stack.burst(BURST).await;
    let t2 = cache.token().await.expect("recovered").secret().to_owned();
    assert_ne!(t1, t2);
    assert_all_ok_with(&outcomes, &t2);

    stack.api.assert_invariants();
    let requests = (fault.endpoint_requests)();
    assert!(
        requests as u64 <= fetches(),
        "the endpoint saw {requests} requests for {} fetches",
        fetches()
    );
}

/// One paused-clock test per named fault, each running the whole scenario
/// (the future after the colon) on its own clock and stack.
macro_rules! scenario_tests {
    ($($name:ident: $scenario:expr;)*) => {
        $(
            #[tokio::test(start_paused = true)]
            async fn $name() {
                $scenario.await;
            }
        )*
    };
}

async fn scripted_stack(script: Script) -> (Scripted, Stack) {
    let scripted = Scripted::new(script);
    let cache = cache_for(scripted.source());
    let api = Api::start(ApiMode::AcceptAny).await;
    (scripted, Stack::new(cache, api))
}

/// Runs the fault scenario with a scripted source that turns to `fault`;
/// returns the source and stack for what a test checks afterwards.
async fn run_source_fault(fault: Script, kind: ErrorKind) -> (Scripted, Stack) {
    let (scripted, stack) = scripted_stack(Script::Ok(Duration::from_secs(3600))).await;
    let fault = scripted_fault(&scripted, fault, kind);
    run_fault_scenario(&stack, &fault).await;
    (scripted, stack)
}

fn scripted_fault(scripted: &Scripted, fault: Script, kind: ErrorKind) -> Fault {
    let (on, off) = (scripted.clone(), scripted.clone());
    Fault {
        on: Box::new(move || {
            on.set(fault.clone());
            Box::pin(async {})
        }),
        off: Box::new(move || {
            off.set(Script::Ok(Duration::from_secs(3600)));
            Box::pin(async {})
        }),
        kind,
        endpoint_requests: Box::new(|| 0),
    }
}

// ---------------------------------------------------------------------------
// Source-side faults (any `TokenSource`)
// ---------------------------------------------------------------------------

scenario_tests! {
    source_transient_error_backs_off_serves_valid_token_and_recovers: run_source_fault(
        Script::Fail(TokenError::transient("token endpoint answered 503")),
        ErrorKind::Transient,
    );
    source_hang_is_cut_by_fetch_timeout: run_source_fault(Script::Hang, ErrorKind::Transient);
    source_panic_fails_waiters_and_cache_recovers:
        run_source_fault(Script::Panic, ErrorKind::Transient);
}

#[tokio::test(start_paused = true)]
async fn source_permanent_error_is_not_hammered() {
    let (scripted, stack) = run_source_fault(
        Script::Fail(TokenError::permanent("invalid_client")),
        ErrorKind::Permanent,
    )
    .await;

    // A permanent failure waits the full maximum backoff (30 s) before the
    // next fetch, however many callers ask.
    scripted.set(Script::Fail(TokenError::permanent("invalid_client")));
    let fresh = cache_for(scripted.source());
    let stack = Stack::new(fresh, stack.api.clone());
    let calls = scripted.calls();
    for _ in 0..10 {
        let outcomes = stack.burst(BURST).await;
        assert_all_token_errors(&outcomes, ErrorKind::Permanent);
        sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(scripted.calls() - calls, 1, "10 s of callers: one fetch");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let (scripted, stack) = scripted_stack(Script::Fail(
        TokenError::transient("429").with_retry_after(Duration::from_secs(120)),
    ))
    .await;
    let outcomes = stack.burst(BURST).await;
    assert_all_token_errors(&outcomes, ErrorKind::Transient);
    assert_eq!(scripted.calls(), 1);

    scripted.set(Script::Ok(Duration::from_secs(3600)));
    // Well past the normal backoff, but the server asked for 120 s.
    sleep(Duration::from_secs(60)).await;
    let outcomes = stack.burst(BURST).await;
    assert_all_token_errors(&outcomes, ErrorKind::Transient);
    sleep(Duration::from_secs(59)).await;
    let outcomes = stack.burst(BURST).await;
    assert_all_token_errors(&outcomes, ErrorKind::Transient);
    assert_eq!(scripted.calls(), 1, "no fetch before Retry-After elapsed");

    sleep(Duration::from_secs(2)).await;
    let outcomes = stack.burst(BURST).await;
    assert!(
        outcomes.iter().all(|o| o.is_ok_with("tok-2")),
        "{outcomes:?}"
    );
    assert_eq!(scripted.calls(), 2);
    stack.api.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn token_expired_on_arrival_is_not_a_storm() {
    let (scripted, stack) = scripted_stack(Script::Expired).await;
    // The API (rightly) rejects the expired tokens.
    stack.api.set(ApiMode::RejectAll);
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.extend(stack.burst(BURST).await);
    }
    // Callers get the API's rejection or a typed error; never a hang.
    for o in &outcomes {
        assert!(
            matches!(
                o,
                Outcome::Response(StatusCode::UNAUTHORIZED, _) | Outcome::Token(_)
            ),
            "{o:?}"
        );
    }
    assert_eq!(scripted.calls(), 1, "expired tokens back off like failures");
    stack.api.assert_invariants();

    // Recovery.
    scripted.set(Script::Ok(Duration::from_secs(3600)));
    stack.api.set(ApiMode::AcceptAny);
    sleep(Duration::from_secs(31)).await;
    let outcomes = stack.burst(BURST).await;
    assert_all_ok_with(&outcomes, "tok-2");
    stack.api.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn expired_token_from_a_refresh_does_not_replace_a_valid_one() {
    let (scripted, stack) = scripted_stack(Script::Ok(Duration::from_secs(3600))).await;
    let outcomes = stack.burst(BURST).await;
    assert_all_ok_with(&outcomes, "tok-1");
    let t1_at = Instant::now();

    // Refresh ahead (from ~3518 s) and the fetches after the token's usable
    // life (3590 s) only get tokens that expired before they arrived.
    scripted.set(Script::Expired);
    for at in [3540, 3591, 3595] {
        sleep_until(t1_at + Duration::from_secs(at)).await;
        let outcomes = stack.burst(BURST).await;
        assert_all_ok_with(&outcomes, "tok-1");
    }
    let calls = scripted.calls();
    assert!((2..=16).contains(&calls), "fetches: {calls}");

    scripted.set(Script::Ok(Duration::from_secs(3600)));
    sleep_until(t1_at + Duration::from_secs(3640)).await;
    let outcomes = stack.burst(BURST).await;
    let t2 = stack.cache.token().await.unwrap().secret().to_owned();
    assert_ne!(t2, "tok-1");
    assert_all_ok_with(&outcomes, &t2);
    stack.api.assert_invariants();
}

/// Huge lifetimes (ten years, too large for the clock) are
/// `layer_promises::huge_and_missing_lifetimes_do_not_overflow`.
#[tokio::test(start_paused = true)]
async fn a_zero_lifetime_behaves_like_a_token_expired_on_arrival() {
    let (scripted, stack) = scripted_stack(Script::Ok(Duration::ZERO)).await;
    for _ in 0..5 {
        let _ = stack.burst(BURST).await;
    }
    assert_eq!(scripted.calls(), 1);
    stack.api.assert_invariants();
}

// ---------------------------------------------------------------------------
// API-side faults
// ---------------------------------------------------------------------------

/// 20 bursts of 50 requests over 10 s against an API that rejects every
/// token; returns the token fetches.
async fn reject_every_token_for_ten_seconds(lifetime: Duration) -> usize {
    let (scripted, stack) = scripted_stack(Script::Ok(lifetime)).await;
    stack.api.set(ApiMode::RejectAll);
    for _ in 0..20 {
        let outcomes = stack.burst(BURST).await;
        for o in &outcomes {
            // The API's own rejection, never a failure invented here.
            assert!(
                matches!(o, Outcome::Response(StatusCode::UNAUTHORIZED, _)),
                "{o:?}"
            );
        }
        sleep(Duration::from_millis(500)).await;
    }
    stack.api.assert_invariants();
    let attempts = stack.api.attempts().len();
    assert!(attempts <= 2 * 20 * BURST, "attempts: {attempts}");

    // Recovery: the API accepts tokens again (after the cool-down in force).
    stack.api.set(ApiMode::AcceptAny);
    sleep(Duration::from_secs(30)).await;
    let outcomes = stack.burst(BURST).await;
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Response(StatusCode::OK, Some(_)))));
    scripted.calls()
}

/// With hour-long tokens this is `layer_promises::an_api_that_rejects_every_token_gets_its_401s_through_and_few_token_requests`.
#[tokio::test(start_paused = true)]
async fn api_rejecting_every_short_lived_token_paces_the_replacements() {
    // The first token, three replacements at once, then one after each pace
    // (0.25, 0.5, 1, 2, 4 s ...); and since the rejected token is what
    // requests carry while a replacement waits, one fetch each time it
    // expires (2 s tokens): never a replacement run started over by a
    // refresh. 12 in 10 s, and one more to recover.
    assert_eq!(
        reject_every_token_for_ten_seconds(Duration::from_secs(2)).await,
        13
    );
}

#[tokio::test(start_paused = true)]
async fn api_401_for_an_already_replaced_token_causes_no_extra_refresh() {
    let (scripted, stack) = scripted_stack(Script::Ok(Duration::from_secs(3600))).await;
    assert_eq!(stack.cache.token().await.unwrap().secret(), "tok-1");

    // 20 requests go out with tok-1 and are held by the API.
    stack.api.set(ApiMode::HoldThenReject("tok-1".into(), 20));
    let held: Vec<_> = (0..20)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move { stack.call().await })
        })
        .collect();
    stack.api.wait_held(20).await;

    // Another request is rejected at once: the cache replaces tok-1.
    let outcome = stack.call().await;
    assert!(outcome.is_ok_with("tok-2"), "{outcome:?}");
    assert_eq!(scripted.calls(), 2);

    // Now the held requests get their 401s, for a token already replaced:
    // they are retried with tok-2, and nothing is fetched.
    stack.api.release();
    for h in held {
        let outcome = h.await.unwrap();
        assert!(outcome.is_ok_with("tok-2"), "{outcome:?}");
    }
    assert_eq!(scripted.calls(), 2, "no refresh for a stale rejection");
    assert_eq!(stack.cache.stats().invalidations, 1);
    stack.api.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn concurrent_rejections_of_one_token_cause_one_refresh() {
    let (scripted, stack) = scripted_stack(Script::Ok(Duration::from_secs(3600))).await;
    assert_eq!(stack.cache.token().await.unwrap().secret(), "tok-1");
    stack
        .api
        .set(ApiMode::Reject(HashSet::from(["tok-1".to_owned()])));
    let outcomes = stack.burst(200).await;
    assert_all_ok_with(&outcomes, "tok-2");
    assert_eq!(scripted.calls(), 2);
    stack.api.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn api_rejecting_a_stale_token_while_the_source_fails_does_not_reuse_it() {
    let (scripted, stack) = scripted_stack(Script::Ok(Duration::from_secs(3600))).await;
    assert_eq!(stack.cache.token().await.unwrap().secret(), "tok-1");
    let t1_at = Instant::now();
    scripted.set(Script::Fail(TokenError::transient("503")));
    // Past the usable life (stale), still before expiry, refresh failing.
    sleep_until(t1_at + Duration::from_secs(3592)).await;
    stack.api.set(ApiMode::RejectAll);
    for _ in 0..3 {
        let outcomes = stack.burst(BURST).await;
        for o in &outcomes {
            // No replacement can be had, and tok-1 has not expired: it is what
            // requests carry, and the callers get the API's own answer.
            assert_eq!(
                *o,
                Outcome::Response(StatusCode::UNAUTHORIZED, Some("tok-1".into()))
            );
        }
    }
    // Each request was sent once: never replayed with the token just rejected.
    assert_eq!(stack.api.attempts().len(), 3 * BURST);
    assert_eq!(stack.api.max_attempts(), 1);
    stack.api.assert_invariants();

    scripted.set(Script::Ok(Duration::from_secs(3600)));
    stack.api.set(ApiMode::AcceptAny);
    sleep(Duration::from_secs(31)).await;
    let outcomes = stack.burst(BURST).await;
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Response(StatusCode::OK, Some(_)))));
}

// ---------------------------------------------------------------------------
// Cancellation, aborts, leaks
// ---------------------------------------------------------------------------

type Caller = tokio::task::JoinHandle<
    Result<http::Response<Incoming>, BearerAuthError<hyper_util::client::legacy::Error>>,
>;

/// Starts `n` callers, each request carrying a clone of `marker` (so that
/// what is left of them shows in its count), and returns once all `n` wait
/// on the cache.
async fn waiting_callers(stack: &Stack, marker: &Arc<()>, n: usize) -> Vec<Caller> {
    let waits_before = stack.cache.stats().waits;
    let callers: Vec<Caller> = (0..n)
        .map(|_| {
            let mut request = stack.request();
            request.extensions_mut().insert(Arc::clone(marker));
            let client = stack.client.clone();
            tokio::spawn(async move { client.oneshot(request).await })
        })
        .collect();
    while stack.cache.stats().waits < waits_before + n as u64 {
        tokio::task::yield_now().await;
    }
    callers
}

/// Cancels every caller, and checks that each ended cancelled.
async fn cancel(callers: Vec<Caller>) {
    for caller in &callers {
        caller.abort();
    }
    for caller in callers {
        assert!(caller.await.unwrap_err().is_cancelled());
    }
}

#[tokio::test(start_paused = true)]
async fn thousands_of_cancelled_waiters_leak_nothing() {
    let (scripted, stack) = scripted_stack(Script::Gate(Duration::from_secs(3600))).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let marker = Arc::new(());

    const N: usize = 3000;
    let callers = waiting_callers(&stack, &marker, N).await;
    assert_eq!(Arc::strong_count(&marker), N + 1);
    assert_eq!(scripted.calls(), 1);

    cancel(callers).await;
    // Every request (and its copy kept for a retry) is gone; only the fetch
    // task is left, and it still runs for later callers.
    assert_eq!(Arc::strong_count(&marker), 1);
    assert_eq!(metrics.num_alive_tasks(), baseline + 1);

    scripted.open();
    let token = tokio::time::timeout(CALL_BOUND, stack.cache.token())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.secret(), "tok-1");
    tokio::task::yield_now().await;
    // The fetch task ended; a cached token costs no task.
    assert_eq!(metrics.num_alive_tasks(), baseline);
    assert_eq!(scripted.calls(), 1);
    let outcomes = stack.burst(BURST).await;
    assert_all_ok_with(&outcomes, "tok-1");
}

#[tokio::test(start_paused = true)]
async fn callers_cancelled_while_waiting_for_a_replacement_leak_nothing() {
    let (scripted, stack) = scripted_stack(Script::Ok(Duration::from_secs(3600))).await;
    assert_eq!(stack.cache.token().await.unwrap().secret(), "tok-1");
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();

    // tok-1 is rejected; the replacement fetch blocks.
    scripted.set(Script::Gate(Duration::from_secs(3600)));
    stack
        .api
        .set(ApiMode::Reject(HashSet::from(["tok-1".to_owned()])));
    let marker = Arc::new(());
    cancel(waiting_callers(&stack, &marker, 500).await).await;
    assert_eq!(Arc::strong_count(&marker), 1);

    scripted.open();
    let token = stack.cache.token().await.unwrap();
    assert_eq!(token.secret(), "tok-2");
    assert_eq!(scripted.calls(), 2);
    // The connections to the API stay pooled (a task each); nothing else is
    // left beyond the new token's timer.
    let outcomes = stack.burst(BURST).await;
    assert_all_ok_with(&outcomes, "tok-2");
    assert!(metrics.num_alive_tasks() >= baseline);
    stack.api.assert_invariants();
}

/// A fetch task can be dropped from outside the cache: the runtime that spawned
/// it shuts down while callers on another runtime wait for it (a cache kept in
/// a `static` and used from several runtimes does exactly this). The waiters
/// start a fetch of their own on their runtime, at once: the fetch never
/// failed, so there is nothing to back off from.
#[test]
fn fetch_task_dropped_by_runtime_shutdown_is_taken_over_by_its_waiters() {
    let scripted = Scripted::new(Script::Hang);
    let cache = TokenCache::new(scripted.source());

    let doomed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let survivor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Start the fetch on the doomed runtime.
    doomed.block_on(async {
        let c = cache.clone();
        tokio::spawn(async move { c.token().await });
        scripted.wait_calls(1).await;
    });

    // Waiters on the surviving runtime join that fetch.
    let waiters: Vec<_> = survivor.block_on(async {
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.token().await })
            })
            .collect();
        while cache.stats().waits < 101 {
            tokio::task::yield_now().await;
        }
        waiters
    });

    scripted.set(Script::Ok(Duration::from_secs(3600)));
    drop(doomed); // drops the fetch task

    survivor.block_on(async {
        for w in waiters {
            let token = tokio::time::timeout(Duration::from_secs(10), w)
                .await
                .expect("a waiter hung on a dropped fetch")
                .unwrap()
                .expect("the waiters fetch again themselves");
            assert_eq!(token.secret(), "tok-2");
        }
        assert_eq!(scripted.calls(), 2, "one fetch taken over for 100 waiters");
        let stats = cache.stats();
        assert_eq!((stats.fetches, stats.fetch_failures), (2, 1), "{stats:?}");
    });
}

// ---------------------------------------------------------------------------
// Token endpoint faults (oauth2 client credentials over a loopback endpoint)
// ---------------------------------------------------------------------------

/// The client secret the endpoint tests use; the security suite checks it
/// never shows.
const CLIENT_SECRET: &str = "fault-client-secret-9f2c";

/// The healthy endpoint mode: `tok-N`, an hour each.
fn healthy() -> Endpoint {
    Endpoint::ok()
}

/// A full stack whose tokens come from `ClientCredentials` against a loopback
/// token endpoint (3 s endpoint timeout, 5 s cache fetch timeout).
async fn endpoint_stack(mode: Endpoint) -> (TokenServer, Stack) {
    let server = TokenServer::start(mode).await;
    let endpoint = TokenEndpoint::builder(server.url())
        .client_id("fault-client")
        .client_secret(CLIENT_SECRET)
        .http_client(HttpClient::new(hyper_client()))
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let cache = cache_for(ClientCredentials::new(endpoint));
    let api = Api::start(ApiMode::AcceptAny).await;
    (server, Stack::new(cache, api))
}

fn endpoint_fault(server: &TokenServer, fault: Endpoint, kind: ErrorKind) -> Fault {
    let (on, off, count) = (server.clone(), server.clone(), server.clone());
    Fault {
        on: Box::new(move || {
            on.set(fault.clone());
            Box::pin(async {})
        }),
        off: Box::new(move || {
            off.set(healthy());
            Box::pin(async {})
        }),
        kind,
        endpoint_requests: Box::new(move || count.requests()),
    }
}

async fn endpoint_scenario(fault: Endpoint, kind: ErrorKind) {
    let (server, stack) = endpoint_stack(healthy()).await;
    run_fault_scenario(&stack, &endpoint_fault(&server, fault, kind)).await;
}

#[tokio::test(start_paused = true)]
async fn endpoint_connection_refused() {
    let (server, stack) = endpoint_stack(healthy()).await;
    let (on, off) = (server.clone(), server.clone());
    let fault = Fault {
        on: Box::new(move || {
            let s = on.clone();
            Box::pin(async move { s.listen(false).await })
        }),
        off: Box::new(move || {
            let s = off.clone();
            Box::pin(async move { s.listen(true).await })
        }),
        kind: ErrorKind::Transient,
        endpoint_requests: Box::new(|| 0),
    };
    run_fault_scenario(&stack, &fault).await;
}

scenario_tests! {
    endpoint_accepts_but_never_answers: endpoint_scenario(Endpoint::Hang, ErrorKind::Transient);
    endpoint_answers_one_byte_per_second:
        endpoint_scenario(Endpoint::Trickle, ErrorKind::Transient);
    endpoint_closes_the_connection: endpoint_scenario(Endpoint::Close, ErrorKind::Transient);
    endpoint_429_without_retry_after_backs_off:
        endpoint_scenario(Endpoint::status(429), ErrorKind::Transient);
}

#[tokio::test(start_paused = true)]
async fn endpoint_500_502_503_are_transient() {
    for status in [500, 502, 503] {
        endpoint_scenario(Endpoint::status(status), ErrorKind::Transient).await;
        endpoint_scenario(
            Endpoint::json(status, r#"{"error":"temporarily_unavailable"}"#),
            ErrorKind::Transient,
        )
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn endpoint_429_retry_after_is_honoured() {
    let (server, stack) = endpoint_stack(Endpoint::Respond {
        status: 429,
        headers: vec![("retry-after".into(), "120".into())],
        body: Bytes::from_static(br#"{"error":"slow_down"}"#),
    })
    .await;
    let outcomes = stack.burst(BURST).await;
    assert_all_token_errors(&outcomes, ErrorKind::Transient);
    assert_eq!(server.requests(), 1);

    server.set(healthy());
    for wait in [30, 30, 30, 29] {
        sleep(Duration::from_secs(wait)).await;
        let outcomes = stack.burst(BURST).await;
        assert_all_token_errors(&outcomes, ErrorKind::Transient);
    }
    assert_eq!(
        server.requests(),
        1,
        "no request before Retry-After elapsed"
    );

    sleep(Duration::from_secs(2)).await;
    let outcomes = stack.burst(BURST).await;
    assert_all_ok_with(&outcomes, "tok-1");
    assert_eq!(server.requests(), 2);
    stack.api.assert_invariants();
}

#[tokio::test(start_paused = true)]
async fn endpoint_400_invalid_client_is_permanent_and_not_hammered() {
    let invalid_client = Endpoint::json(400, r#"{"error":"invalid_client"}"#);
    endpoint_scenario(invalid_client.clone(), ErrorKind::Permanent).await;

    // Ten minutes of callers, ten bursts a minute: after a permanent error the
    // next request waits the maximum backoff (30 s, jittered down to no less
    // than 15 s), so at most one request per 15 s.
    let (server, stack) = endpoint_stack(invalid_client).await;
    for _ in 0..100 {
        let outcomes = stack.burst(10).await;
        assert_all_token_errors(&outcomes, ErrorKind::Permanent);
        sleep(Duration::from_secs(6)).await;
    }
    let requests = server.requests();
    assert!(
        (10..=41).contains(&requests),
        "requests in 600 s: {requests}"
    );
    let err = stack.cache.token().await.unwrap_err();
    let cause = err.cause().unwrap().downcast_ref::<OAuth2Error>().unwrap();
    assert_eq!(cause.code(), &ErrorCode::InvalidClient);
}

#[tokio::test(start_paused = true)]
async fn endpoint_malformed_json() {
    endpoint_scenario(
        Endpoint::json(200, r#"{"access_token":"tok-x","#),
        ErrorKind::Permanent,
    )
    .await;
    endpoint_scenario(
        Endpoint::json(200, "<html>oops</html>"),
        ErrorKind::Permanent,
    )
    .await;
    endpoint_scenario(Endpoint::json(200, ""), ErrorKind::Permanent).await;
    endpoint_scenario(Endpoint::json(200, "[1,2,3]"), ErrorKind::Permanent).await;
}

#[tokio::test(start_paused = true)]
async fn endpoint_json_missing_access_token() {
    endpoint_scenario(
        Endpoint::json(200, r#"{"token_type":"Bearer","expires_in":3600}"#),
        ErrorKind::Permanent,
    )
    .await;
    endpoint_scenario(
        Endpoint::json(200, r#"{"access_token":"","token_type":"Bearer"}"#),
        ErrorKind::Permanent,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn endpoint_json_wrong_types() {
    for body in [
        r#"{"access_token":12345,"token_type":"Bearer"}"#,
        r#"{"access_token":null,"token_type":"Bearer"}"#,
        r#"{"access_token":["a"],"token_type":"Bearer"}"#,
        r#"{"access_token":"tok-x","token_type":"mac"}"#,
        // A token that cannot go into an HTTP header.
        r#"{"access_token":"tok\nx","token_type":"Bearer"}"#,
    ] {
        endpoint_scenario(Endpoint::json(200, body), ErrorKind::Permanent).await;
    }
}

#[tokio::test(start_paused = true)]
async fn endpoint_50_mb_body_is_cut_off() {
    for declared in [true, false] {
        let huge = Endpoint::Huge {
            size: 50 * 1024 * 1024,
            declared,
        };
        endpoint_scenario(huge, ErrorKind::Permanent).await;
    }
}

#[tokio::test(start_paused = true)]
async fn endpoint_200_carrying_an_error() {
    endpoint_scenario(
        Endpoint::json(
            200,
            r#"{"error":"invalid_grant","error_description":"nope"}"#,
        ),
        ErrorKind::Permanent,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn endpoint_expires_in_variants() {
    // (expires_in JSON, whether the token is refreshed within two hours)
    for (expires_in, refreshed) in [
        ("0", true),   // unknown: the default lifetime (1 h) applies
        ("-30", true), // unknown, likewise
        ("\"3600\"", true),
        ("\"soon\"", true),
        ("null", true),
        ("18446744073709551615", false), // too large: never expires
        ("1e300", false),
    ] {
        let (server, stack) = endpoint_stack(Endpoint::Mint {
            expires_in: Some(expires_in.to_owned()),
        })
        .await;
        let outcomes = stack.burst(BURST).await;
        assert_all_ok_with(&outcomes, "tok-1");
        assert_eq!(server.requests(), 1, "expires_in {expires_in}");
        sleep(Duration::from_secs(7200)).await;
        let outcomes = stack.burst(BURST).await;
        let expected = if refreshed { 3 } else { 1 };
        assert!(
            server.requests() <= expected,
            "expires_in {expires_in}: {} requests",
            server.requests()
        );
        assert_eq!(server.requests() > 1, refreshed, "expires_in {expires_in}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Outcome::Response(StatusCode::OK, Some(_)))),
            "expires_in {expires_in}: {outcomes:?}"
        );
        stack.api.assert_invariants();
    }
}

#[tokio::test(start_paused = true)]
async fn endpoint_one_second_tokens_are_refreshed_at_a_bounded_rate() {
    let (server, stack) = endpoint_stack(Endpoint::Mint {
        expires_in: Some("1".into()),
    })
    .await;
    for _ in 0..20 {
        let outcomes = stack.burst(10).await;
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Response(StatusCode::OK, Some(_)))));
        sleep(Duration::from_millis(500)).await;
    }
    // 10 s of 1-second tokens: refreshed ahead, about once per 0.7 s.
    let requests = server.requests();
    assert!((10..=20).contains(&requests), "requests: {requests}");
}
