//! The exchange's conformance table (issue 22): every scenario, run through
//! every front end against real loopback servers, gives the caller the same
//! outcome (the status it got, or the typed token error), the API the same
//! sends (the `Authorization` of each, in order) and the token source the
//! same number of fetches.
//!
//! The front ends (`support/front_ends.rs`): hyper-util's `Client` and a tonic
//! `Channel` under `BearerAuthLayer`, `reqwest-middleware` with
//! `BearerAuthMiddleware`, and `ReqwestService` under the layer (the reqwest
//! ones with their features). A row is one line of [`table`]; where a front
//! end genuinely differs, the row says so with [`Row::except`] and why, and
//! where it cannot run a scenario at all, [`Row::skip`] with the reason.
//!
//! Counts, never durations: the source hands out `tok-1`, `tok-2`, … one per
//! fetch, fetches are the cache's own count (taken when a fetch starts, so a
//! replacement started for the next request counts before the caller has its
//! answer), and replacements that must not depend on timing are paced for an
//! hour. A caller that takes a minute fails the row as a hang: a driver that
//! waited for a replacement it cannot use would (the source hangs in those
//! rows, and fetches time out after an hour).

mod support;

#[path = "support/front_ends.rs"]
mod front_ends;

use std::collections::HashSet;
use std::fmt::Write as _;

use front_ends::{Call, Front, Outcome, Payload, Replay, Setup, Tokens, CALL_BOUND, TENANT_A};
use support::api::{Api, ApiMode};
use support::sources::{Script, Scripted};
use tower_bearer::cache::CacheStats;
use tower_bearer::{Origin, TokenError};

use Answers::*;
use Front::*;

/// The first token and its replacement, as the API sees them.
const T1: &str = "Bearer tok-1";
const T2: &str = "Bearer tok-2";
/// Under the layer, `CloneBody` takes only bodies that are `Clone`: a stream
/// there does not compile (`BufferBody` or `no_replay()` take it).
const NOT_CLONE: &str = "CloneBody with a body that is not Clone does not compile under the layer";
/// tonic's body is a stream, never `Clone`: its default here is `BufferBody`.
const NO_CLONE_BODY: &str = "tonic's body is never Clone: no CloneBody";

/// An `Authorization` of the caller's own.
const OWN: &str = "Bearer caller-own";

/// hyper-util's `Client` and tonic's `Channel` do not follow redirects: the
/// 302 itself is the answer, accepted as it says nothing against the token.
const NO_REDIRECTS: &str = "hyper-util and tonic do not follow redirects: the 302 is the answer";

/// How the API answers (a 401 always carries `WWW-Authenticate: Bearer
/// error="invalid_token"`, a request without a token always gets one).
#[derive(Clone, Copy, Debug)]
enum Answers {
    /// 200 for any token.
    Accept,
    /// 401 for these tokens, 200 for others.
    Reject(&'static [&'static str]),
    /// 401 for every token.
    RejectAll,
    /// 403 `insufficient_scope`.
    Forbidden,
    /// 503.
    Unavailable,
    /// gRPC `UNAUTHENTICATED` for these tokens (HTTP 200, `grpc-status: 16`).
    Grpc16(&'static [&'static str]),
    /// 302 to another loopback origin, which answers 401 to everything.
    RedirectElsewhere,
}

impl Answers {
    fn mode(self, elsewhere: &Api) -> ApiMode {
        let set = |tokens: &[&str]| tokens.iter().map(|t| t.to_string()).collect::<HashSet<_>>();
        match self {
            Accept => ApiMode::AcceptAny,
            Reject(tokens) => ApiMode::Reject(set(tokens)),
            RejectAll => ApiMode::RejectAll,
            Forbidden => ApiMode::Forbidden,
            Unavailable => ApiMode::Unavailable,
            Grpc16(tokens) => ApiMode::GrpcUnauthenticated(set(tokens)),
            RedirectElsewhere => ApiMode::RedirectTo(elsewhere.url("/landing")),
        }
    }
}

/// What the source does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Hands out `tok-N`, valid for an hour.
    Minting,
    /// Fails (transient).
    Failing,
    /// Never answers.
    Hanging,
}

impl Source {
    fn script(self) -> Script {
        match self {
            Source::Minting => Script::Ok(std::time::Duration::from_secs(3600)),
            Source::Failing => Script::Fail(TokenError::transient("token endpoint answered 503")),
            Source::Hanging => Script::Hang,
        }
    }
}

/// What happens before the measured call.
#[derive(Clone, Copy, Debug)]
enum Before {
    /// The cache fetches its first token (a keyed cache: tenant `a`'s).
    Warm,
    /// The same call, through the same front end; its outcome is not checked.
    Call,
}

/// What a front end must give for a row.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expect {
    outcome: Outcome,
    /// The `Authorization` of each request the API saw, in order (`""`: none).
    sent: Vec<String>,
    fetches: u64,
}

/// A front end that differs from the row.
#[derive(Clone, Debug)]
enum Except {
    /// Expects this instead, for this reason.
    Expect(Expect, &'static str),
    /// Cannot run the scenario at all, for this reason.
    Skip(&'static str),
}

/// One scenario.
#[derive(Clone, Debug)]
struct Row {
    name: &'static str,
    setup: Setup,
    /// `only_for_origins` another origin than the API's.
    out_of_scope: bool,
    source: Source,
    before: Vec<Before>,
    /// What the source does from the measured call on.
    then: Source,
    answers: Answers,
    payload: Payload,
    authorization: Option<&'static str>,
    tenant: Option<&'static str>,
    expect: Option<Expect>,
    except: Vec<(Front, Except)>,
}

fn row(name: &'static str) -> Row {
    Row {
        name,
        setup: Setup::default(),
        out_of_scope: false,
        source: Source::Minting,
        before: Vec::new(),
        then: Source::Minting,
        answers: Accept,
        payload: Payload::Small,
        authorization: None,
        tenant: None,
        expect: None,
        except: Vec::new(),
    }
}

fn answer(status: u16) -> Outcome {
    Outcome::Answer(status)
}

fn no_token(why: &'static str) -> Outcome {
    Outcome::NoToken(why)
}

fn expect(outcome: Outcome, sent: &[&str], fetches: u64) -> Expect {
    Expect {
        outcome,
        sent: sent.iter().map(|s| s.to_string()).collect(),
        fetches,
    }
}

impl Row {
    fn warm(mut self) -> Self {
        self.before.push(Before::Warm);
        self
    }
    fn call_before(mut self) -> Self {
        self.before.push(Before::Call);
        self
    }
    fn source(mut self, source: Source) -> Self {
        self.source = source;
        self.then = source;
        self
    }
    fn then(mut self, source: Source) -> Self {
        self.then = source;
        self
    }
    fn answers(mut self, answers: Answers) -> Self {
        self.answers = answers;
        self
    }
    fn replay(mut self, replay: Replay) -> Self {
        self.setup.replay = replay;
        self
    }
    fn payload(mut self, payload: Payload) -> Self {
        self.payload = payload;
        self
    }
    fn paced(mut self) -> Self {
        self.setup.paced = true;
        self
    }
    fn keyed(mut self) -> Self {
        self.setup.keyed = true;
        self
    }
    fn keep_callers(mut self) -> Self {
        self.setup.keep_callers = true;
        self
    }
    fn out_of_scope(mut self) -> Self {
        self.out_of_scope = true;
        self
    }
    fn authorization(mut self, authorization: &'static str) -> Self {
        self.authorization = Some(authorization);
        self
    }
    fn tenant(mut self, tenant: &'static str) -> Self {
        self.tenant = Some(tenant);
        self
    }
    fn expect(mut self, outcome: Outcome, sent: &[&str], fetches: u64) -> Self {
        self.expect = Some(expect(outcome, sent, fetches));
        self
    }
    /// `front` gives this instead, because `why`.
    fn except(
        mut self,
        front: Front,
        outcome: Outcome,
        sent: &[&str],
        fetches: u64,
        why: &'static str,
    ) -> Self {
        let expected = expect(outcome, sent, fetches);
        self.except.push((front, Except::Expect(expected, why)));
        self
    }
    /// `front` cannot run this scenario, because `why`.
    fn skip(mut self, front: Front, why: &'static str) -> Self {
        self.except.push((front, Except::Skip(why)));
        self
    }
}

/// Every scenario of issue 22, one line each. The default row: a POST with a
/// five-byte body, the source minting hour-long tokens, the API accepting
/// any token, a cold cache.
#[rustfmt::skip]
fn table() -> Vec<Row> {
    use Payload::*;
    use Replay::*;
    use Source::*;
    vec![
        row("accepted").warm().expect(answer(200), &[T1], 0),
        row("accepted, cold: one fetch").expect(answer(200), &[T1], 1),
        row("rejected once: replaced, replayed").warm().answers(Reject(&["tok-1"])).expect(answer(200), &[T1, T2], 1),
        row("rejected twice: the replay's 401, its replacement fetched for the next").warm().answers(RejectAll).expect(answer(401), &[T1, T2], 2),
        row("rejected while replacements are paced: sent once, the 401, no fetch").paced().warm().call_before().answers(RejectAll).expect(answer(401), &[T2], 0),
        row("source failing, no token: a typed error, not sent").source(Failing).expect(no_token("transient"), &[], 1),
        row("rejected, its replacement fails: the 401").warm().then(Failing).answers(Reject(&["tok-1"])).expect(answer(401), &[T1], 1),
        row("403 insufficient_scope: returned, no fetch").warm().answers(Forbidden).expect(answer(403), &[T1], 0),
        row("503: nothing about the token, returned").warm().answers(Unavailable).expect(answer(503), &[T1], 0),
        row("gRPC UNAUTHENTICATED (200, grpc-status 16): replaced, replayed").warm().answers(Grpc16(&["tok-1"])).expect(answer(200), &[T1, T2], 1),
        row("gRPC UNAUTHENTICATED twice: the replay's answer").warm().answers(Grpc16(&["tok-1", "tok-2"])).expect(answer(200), &[T1, T2], 2),
        row("not replayable (no_replay): the 401 at once, its replacement for the next").replay(Never).warm().then(Hanging).answers(Reject(&["tok-1"])).expect(answer(401), &[T1], 1),
        row("a stream under CloneBody: not replayable, the 401 at once, its replacement for the next").replay(CloneStream).warm().then(Hanging).answers(Reject(&["tok-1"])).expect(answer(401), &[T1], 1)
            .skip(Hyper, NOT_CLONE).skip(ReqwestService, NOT_CLONE).skip(Tonic, NO_CLONE_BODY),
        row("a stream under the cap (BufferBody): replayed").replay(Buffer).payload(Small).warm().answers(Reject(&["tok-1"])).expect(answer(200), &[T1, T2], 1),
        row("a stream past the cap (BufferBody): the 401 at once, its replacement for the next").replay(Buffer).payload(Large).warm().then(Hanging).answers(Reject(&["tok-1"])).expect(answer(401), &[T1], 1),
        row("the caller's own Authorization: replaced by default").warm().authorization(OWN).expect(answer(200), &[T1], 0),
        row("the caller's own Authorization, kept: sent as is, no fetch").keep_callers().authorization(OWN).expect(answer(200), &[OWN], 0),
        row("the caller's own Authorization, kept and rejected: returned as is").keep_callers().authorization(OWN).answers(Reject(&["caller-own"])).expect(answer(401), &[OWN], 0),
        row("a URL out of scope: passed through, no token, no fetch").out_of_scope().expect(answer(401), &[""], 0),
        row("a 401 after a redirect to another origin: returned as is, no fetch").warm().answers(RedirectElsewhere).expect(answer(401), &[T1], 0)
            .except(Hyper, answer(302), &[T1], 0, NO_REDIRECTS).except(Tonic, answer(302), &[T1], 0, NO_REDIRECTS),
        row("keyed: accepted, one fetch for the key").keyed().tenant(TENANT_A).expect(answer(200), &[T1], 1),
        row("keyed: rejected once, replaced and replayed for the key").keyed().warm().tenant(TENANT_A).answers(Reject(&["tok-1"])).expect(answer(200), &[T1, T2], 1),
        row("keyed: a key that cannot be read: a typed error, not sent").keyed().expect(no_token("key missing"), &[], 0),
    ]
}

/// What one front end did in one row.
#[derive(Debug)]
struct Observed {
    got: Expect,
    /// What the cache counted during the measured call: fetches,
    /// invalidations, retries, paced rejections. (Not its waits: whether a
    /// caller found the fetch it started already done is a race.)
    counts: (u64, u64, u64, u64),
    /// `Authorization` values the other origin saw (a redirect's target).
    elsewhere: Vec<String>,
}

fn counts(after: CacheStats, before: CacheStats) -> (u64, u64, u64, u64) {
    (
        after.fetches - before.fetches,
        after.invalidations - before.invalidations,
        after.retries - before.retries,
        after.paced - before.paced,
    )
}

async fn bounded(call: impl std::future::Future<Output = Outcome>) -> Outcome {
    tokio::time::timeout(CALL_BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("a caller hung for {CALL_BOUND:?}"))
}

/// Runs `row` through `front`, on servers and a cache of its own.
async fn run(row: &Row, front: Front) -> Observed {
    let elsewhere = Api::start(ApiMode::RejectAll).await;
    let api = Api::start(row.answers.mode(&elsewhere)).await;
    let scripted = Scripted::new(row.source.script());
    let mut setup = row.setup.clone();
    if row.out_of_scope {
        setup.scope = Some(Origin::parse(&elsewhere.url("")).unwrap());
    }
    let tokens = Tokens::new(&setup, &scripted);
    let mut caller = front_ends::build(front, &setup, &tokens, api.addr).await;
    let call = Call {
        url: api.url("/v1/things"),
        payload: row.payload,
        authorization: row.authorization,
        tenant: row.tenant,
    };
    for step in &row.before {
        match step {
            Before::Warm => tokens.warm().await,
            Before::Call => drop(bounded(caller(call.clone())).await),
        }
    }
    scripted.set(row.then.script());
    let sent_before = api.seen().len();
    let stats_before = tokens.stats();
    let outcome = bounded(caller(call)).await;
    let stats = tokens.stats();
    Observed {
        got: Expect {
            outcome,
            sent: api.seen().split_off(sent_before),
            fetches: stats.fetches - stats_before.fetches,
        },
        counts: counts(stats, stats_before),
        elsewhere: elsewhere.seen(),
    }
}

/// The table, through every front end: each gives what its row expects, the
/// cache counts the same for every front end, and no token ever reaches
/// another origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_end_gives_the_same_outcome_sends_and_fetches() {
    let fronts = Front::all();
    let mut report = String::new();
    let mut failures = 0;
    for row in table() {
        let _ = writeln!(report, "{}", row.name);
        let mut first_counts: Option<(Front, (u64, u64, u64, u64))> = None;
        for &front in &fronts {
            let exception = row.except.iter().find(|(f, _)| *f == front).map(|(_, e)| e);
            let (want, why) = match exception {
                Some(Except::Skip(why)) => {
                    let _ = writeln!(report, "  {front:?}: skipped: {why}");
                    continue;
                }
                Some(Except::Expect(want, why)) => (want.clone(), Some(*why)),
                None => (row.expect.clone().expect("every row expects"), None),
            };
            let observed = run(&row, front).await;
            let mut problems = Vec::new();
            if observed.got != want {
                problems.push(format!("expected {want:?}"));
            }
            if let Some(leak) = observed.elsewhere.iter().find(|a| !a.is_empty()) {
                problems.push(format!("another origin saw {leak:?}"));
            }
            match first_counts {
                None => first_counts = Some((front, observed.counts)),
                Some((other, counts)) if counts != observed.counts => problems.push(format!(
                    "the cache counted {:?} (fetches, invalidations, retries, paced), \
                     {other:?} {counts:?}",
                    observed.counts
                )),
                Some(_) => {}
            }
            let _ = writeln!(
                report,
                "  {front:?}: {:?} sent {:?} fetches {} counts {:?}{}{}",
                observed.got.outcome,
                observed.got.sent,
                observed.got.fetches,
                observed.counts,
                why.map(|why| format!(" (differs: {why})"))
                    .unwrap_or_default(),
                if problems.is_empty() {
                    String::new()
                } else {
                    format!("  <-- MISMATCH: {}", problems.join("; "))
                }
            );
            failures += usize::from(!problems.is_empty());
        }
    }
    eprintln!("{report}");
    assert_eq!(failures, 0, "{failures} mismatches:\n{report}");
}
