//! The layer adds no heap allocation per request on the hot path (issue 4).
//!
//! A counting `#[global_allocator]` counts the allocations made *by the current
//! thread*, so tests running in parallel do not disturb each other. Each
//! comparison sends the same requests, built the same way, through the bare
//! service and through the layered one, on one thread, with no runtime being
//! driven while counting, after a warm-up: the counts are deterministic and the
//! assertions compare counts, never durations.
//!
//! Baseline (see DESIGN.md, "Allocation baseline"): a request whose `HeaderMap`
//! is still empty pays for its first insert (two allocations) in any layer that
//! adds a header, tower-http's `AddAuthorization` included. So requests that
//! already carry headers are compared with the bare service, and header-less
//! requests with `AddAuthorization`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::replay::{BufferBody, CloneBody, TeeBody, WithoutExtensions};
use tower_bearer::{from_fn, AccessToken, BearerAuthLayer, TokenCache};
use tower_http::auth::AddAuthorizationLayer;

// ---- the counting allocator --------------------------------------------------

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + size as u64));
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Allocs {
    count: u64,
    bytes: u64,
}

fn counted(f: impl FnOnce()) -> Allocs {
    let (c0, b0) = (ALLOCS.with(Cell::get), BYTES.with(Cell::get));
    f();
    Allocs {
        count: ALLOCS.with(Cell::get) - c0,
        bytes: BYTES.with(Cell::get) - b0,
    }
}

// ---- a trivial inner service ------------------------------------------------

/// Answers at once; counts the requests that arrived with credentials, and
/// rejects the token named in `reject` (for the replay tests).
#[derive(Clone, Default)]
struct Api {
    authorized: Arc<AtomicUsize>,
    reject: Option<&'static str>,
}

impl<B> Service<Request<B>> for Api {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let auth = req.headers().get(AUTHORIZATION);
        if auth.is_some() {
            self.authorized.fetch_add(1, Ordering::Relaxed);
        }
        let mut res = Response::new(());
        if let (Some(bad), Some(auth)) = (self.reject, auth) {
            if auth.as_bytes().ends_with(bad.as_bytes()) {
                *res.status_mut() = StatusCode::UNAUTHORIZED;
            }
        }
        ready(Ok(res))
    }
}

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

/// Sends one request and expects the answer without waiting: the hot path.
fn send<S, B>(svc: &mut S, cx: &mut Context<'_>, req: Request<B>)
where
    S: Service<Request<B>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    assert!(svc.poll_ready(cx).is_ready());
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(cx) {
        Poll::Ready(Ok(res)) => assert_eq!(res.status(), StatusCode::OK),
        Poll::Ready(Err(e)) => panic!("request failed: {e:?}"),
        Poll::Pending => panic!("the hot path must not wait"),
    }
}

const WARM_UP: usize = 64;
const N: usize = 1_000;

/// Allocations made by `N` requests from `make`, built and sent through `svc`,
/// after a warm-up.
fn allocs_for<S, B>(svc: &mut S, make: &dyn Fn() -> Request<B>) -> Allocs
where
    S: Service<Request<B>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let waker = Waker::from(Arc::new(NoopWaker));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..WARM_UP {
        send(svc, &mut cx, make());
    }
    counted(|| {
        for _ in 0..N {
            send(svc, &mut cx, make());
        }
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bearer_layer() -> BearerAuthLayer {
    let cache = TokenCache::new(from_fn(|| async {
        Ok(AccessToken::new("hot-path-token").with_expires_in(Duration::from_secs(3600)))
    }));
    BearerAuthLayer::from_cache(cache)
}

/// Fetches the token once, through the runtime, so the cache is warm.
fn warm<S, B>(rt: &tokio::runtime::Runtime, svc: &mut S, req: Request<B>)
where
    S: Service<Request<B>, Response = Response<()>> + Clone,
    S::Error: std::fmt::Debug,
{
    let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

// ---- requests as applications build them ----------------------------------------

/// A GET as an application builds it: an absolute URI and a couple of headers
/// given as strings (their values are not `'static`).
fn get_with_headers() -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::GET)
        .uri("http://127.0.0.1:8080/v1/things?page=2")
        .header(USER_AGENT, "tower-bearer-alloc-test/1.0")
        .header(ACCEPT, "application/json")
        .header("x-request-id", "7f3c2a9e-alloc")
        .body(Full::default())
        .unwrap()
}

/// A POST with a static body, static header values and a repeated header.
fn post_with_headers() -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::from_static(br#"{"name":"x"}"#)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = http::Uri::from_static("http://127.0.0.1:8080/v1/things");
    let h = req.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.append(ACCEPT, HeaderValue::from_static("application/json"));
    h.append(ACCEPT, HeaderValue::from_static("text/plain"));
    req
}

/// A request whose URI was put together from parts (`Uri::builder`), with a
/// header: its URI's bytes are not shared yet.
fn built_uri() -> Request<Full<Bytes>> {
    let uri = http::Uri::builder()
        .scheme("http")
        .authority("127.0.0.1:8080")
        .path_and_query("/v1/things?page=2")
        .build()
        .unwrap();
    Request::builder()
        .uri(uri)
        .header(ACCEPT, "application/json")
        .body(Full::default())
        .unwrap()
}

/// A request with no header at all (its first insert allocates the map).
fn bare_get() -> Request<Full<Bytes>> {
    Request::get("http://127.0.0.1:8080/v1/things")
        .body(Full::default())
        .unwrap()
}

// ---- the tests ------------------------------------------------------------------

fn compare(name: &str, make: &dyn Fn() -> Request<Full<Bytes>>) -> [Allocs; 4] {
    let rt = runtime();
    let _guard = rt.enter();

    let api = Api::default();
    let mut bare = api.clone();
    let mut add_auth = AddAuthorizationLayer::bearer("hot-path-token").layer(api.clone());
    let mut replay = bearer_layer().layer(api.clone());
    let mut no_replay = bearer_layer().no_replay().layer(api.clone());
    warm(&rt, &mut replay, make());
    warm(&rt, &mut no_replay, make());

    let before = api.authorized.load(Ordering::Relaxed);
    let counts = [
        allocs_for(&mut bare, make),
        allocs_for(&mut add_auth, make),
        allocs_for(&mut replay, make),
        allocs_for(&mut no_replay, make),
    ];
    // Every request through the three authenticating services had credentials.
    assert_eq!(
        api.authorized.load(Ordering::Relaxed) - before,
        3 * (WARM_UP + N)
    );
    eprintln!(
        "[{name}] per {N} requests: bare {:?}, AddAuthorization {:?}, BearerAuth {:?}, BearerAuth::no_replay {:?}",
        counts[0], counts[1], counts[2], counts[3]
    );
    counts
}

#[test]
fn hot_path_adds_no_allocation_to_a_request_with_headers() {
    let [bare, add_auth, replay, no_replay] = compare("get_with_headers", &get_with_headers);
    assert_eq!(add_auth, bare, "AddAuthorization (the floor)");
    assert_eq!(no_replay, bare, "BearerAuth::no_replay");
    assert_eq!(replay, bare, "BearerAuth with CloneBody replay");
}

#[test]
fn hot_path_adds_no_allocation_to_a_post_with_static_headers() {
    let [bare, add_auth, replay, no_replay] = compare("post_with_headers", &post_with_headers);
    assert_eq!(add_auth, bare, "AddAuthorization (the floor)");
    assert_eq!(no_replay, bare, "BearerAuth::no_replay");
    assert_eq!(replay, bare, "BearerAuth with CloneBody replay");
}

#[test]
fn hot_path_adds_no_allocation_to_a_request_with_a_built_uri() {
    let [bare, add_auth, replay, no_replay] = compare("built_uri", &built_uri);
    assert_eq!(add_auth, bare, "AddAuthorization (the floor)");
    assert_eq!(no_replay, bare, "BearerAuth::no_replay");
    assert_eq!(replay, bare, "BearerAuth with CloneBody replay");
}

#[test]
fn header_less_request_allocates_exactly_as_with_add_authorization() {
    let [bare, add_auth, replay, no_replay] = compare("bare_get", &bare_get);
    // The map's first insert: the same for every layer that adds a header.
    assert!(add_auth.count > bare.count);
    assert_eq!(no_replay, add_auth, "BearerAuth::no_replay");
    assert_eq!(replay, add_auth, "BearerAuth with CloneBody replay");
}

// ---- requests with extensions -------------------------------------------------

/// A tenant as the keyed cache's own example carries it: an extension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Tenant(Arc<str>);

// Extensions of other kinds, as middleware adds them: carried, never read.
#[allow(dead_code)]
#[derive(Clone)]
struct TraceId(u128);
#[allow(dead_code)]
#[derive(Clone)]
struct Deadline(std::time::Instant);
#[allow(dead_code)]
#[derive(Clone)]
struct Route(&'static str);
#[allow(dead_code)]
#[derive(Clone)]
struct Attempt(u8);

/// The standard request with `extensions` extensions (1 or 5), the first of
/// them the tenant.
fn with_extensions(extensions: usize) -> Request<Full<Bytes>> {
    let mut req = get_with_headers();
    let ext = req.extensions_mut();
    ext.insert(Tenant(Arc::from("wks_00000042")));
    if extensions == 5 {
        ext.insert(TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736));
        ext.insert(Deadline(std::time::Instant::now()));
        ext.insert(Route("/v1/things"));
        ext.insert(Attempt(1));
    }
    assert_eq!(req.extensions().len(), extensions);
    req
}

/// What cloning the extensions of `N` requests from `make` allocates: the
/// documented cost of keeping them for a replay.
fn extensions_clone(make: &dyn Fn() -> Request<Full<Bytes>>) -> Allocs {
    let requests: Vec<_> = (0..N).map(|_| make()).collect();
    counted(|| {
        for req in &requests {
            drop(std::hint::black_box(req.extensions().clone()));
        }
    })
}

fn plus(a: Allocs, b: Allocs) -> Allocs {
    Allocs {
        count: a.count + b.count,
        bytes: a.bytes + b.bytes,
    }
}

/// With extensions, the default policy adds exactly their clone (the only way
/// to keep them for the replay) and nothing else; `WithoutExtensions` adds
/// nothing, through the single-key layer and through a keyed layer whose key
/// is read from an extension.
#[test]
fn extensions_cost_their_clone_by_default_and_nothing_without_them() {
    let rt = runtime();
    let _guard = rt.enter();
    let api = Api::default();
    let keyed = KeyedTokenCache::new(|tenant: &Tenant| {
        let token = format!("token-of-{}", tenant.0);
        from_fn(move || {
            let token = token.clone();
            async move { Ok(AccessToken::new(token).with_expires_in(Duration::from_secs(3600))) }
        })
    });
    let tenant = |req: &Request<Full<Bytes>>| req.extensions().get::<Tenant>().cloned();

    for extensions in [1, 5] {
        let make = || with_extensions(extensions);
        let mut bare = api.clone();
        let mut cloned = bearer_layer().layer(api.clone());
        let mut without = bearer_layer()
            .replay(WithoutExtensions(CloneBody))
            .layer(api.clone());
        let mut keyed_cloned = BearerAuthLayer::keyed(keyed.clone(), tenant).layer(api.clone());
        let mut keyed_without = BearerAuthLayer::keyed(keyed.clone(), tenant)
            .replay(WithoutExtensions(CloneBody))
            .layer(api.clone());
        warm(&rt, &mut cloned, make());
        warm(&rt, &mut without, make());
        warm(&rt, &mut keyed_cloned, make());
        warm(&rt, &mut keyed_without, make());

        let before = api.authorized.load(Ordering::Relaxed);
        let bare_allocs = allocs_for(&mut bare, &make);
        let counts = [
            allocs_for(&mut cloned, &make),
            allocs_for(&mut without, &make),
            allocs_for(&mut keyed_cloned, &make),
            allocs_for(&mut keyed_without, &make),
        ];
        assert_eq!(
            api.authorized.load(Ordering::Relaxed) - before,
            4 * (WARM_UP + N),
            "every request went out with a token"
        );
        let clone = extensions_clone(&make);
        eprintln!(
            "[{extensions}_extensions] per {N} requests: bare {bare_allocs:?}, BearerAuth {:?}, \
             WithoutExtensions {:?}, keyed {:?}, keyed WithoutExtensions {:?}; cloning the \
             extensions alone {clone:?}",
            counts[0], counts[1], counts[2], counts[3]
        );
        assert!(clone.count >= extensions as u64 * N as u64);
        assert_eq!(
            counts[0],
            plus(bare_allocs, clone),
            "CloneBody: the clone, nothing more"
        );
        assert_eq!(counts[1], bare_allocs, "WithoutExtensions(CloneBody)");
        assert_eq!(counts[2], plus(bare_allocs, clone), "keyed, CloneBody");
        assert_eq!(
            counts[3], bare_allocs,
            "keyed, WithoutExtensions(CloneBody)"
        );
    }
    assert_eq!(keyed.stats().tokens.fetches, 1, "one tenant, one token");
}

// ---- BufferBody ---------------------------------------------------------------------

type Boxed = BoxBody<Bytes, Infallible>;
type Buffered = BufferBody<fn(TeeBody<Boxed>) -> Boxed>;

fn buffer_body_layer() -> BearerAuthLayer<Buffered> {
    bearer_layer().replay(BufferBody::new(Boxed::new as fn(TeeBody<Boxed>) -> Boxed))
}

/// A POST whose body is still to be sent, with `extra` headers beyond two.
fn post_streaming(extra: usize) -> Request<Boxed> {
    let mut req = Request::post("http://127.0.0.1:8080/v1/upload")
        .header(CONTENT_TYPE, "application/json")
        .header("x-request-id", "7f3c2a9e-alloc")
        .body(Boxed::new(Full::new(Bytes::from_static(
            br#"{"name":"x"}"#,
        ))))
        .unwrap();
    for i in 0..extra {
        let name = http::HeaderName::try_from(format!("x-extra-{i}")).unwrap();
        req.headers_mut()
            .insert(name, HeaderValue::from_str("some value").unwrap());
    }
    req
}

/// `BufferBody`'s head is kept as `CloneBody`'s is: without allocating. A
/// body that has ended (a GET's) needs no recording, so nothing is added; a
/// body still to be sent costs its recording, the same however many headers
/// the request has.
#[test]
fn buffer_body_keeps_the_head_without_allocating() {
    let rt = runtime();
    let _guard = rt.enter();
    let api = Api::default();
    let mut bare = api.clone();
    let mut buffered = buffer_body_layer().layer(api.clone());
    let get = || get_with_headers().map(Boxed::new);
    warm(&rt, &mut buffered, get());

    let (b, l) = (allocs_for(&mut bare, &get), allocs_for(&mut buffered, &get));
    eprintln!("[buffer_body:get_with_headers] per {N} requests: bare {b:?}, BufferBody {l:?}");
    assert_eq!(l, b, "BearerAuth with BufferBody, a body that has ended");

    let mut added = Vec::new();
    for extra in [0, 12] {
        let post = || post_streaming(extra);
        let (b, l) = (
            allocs_for(&mut bare, &post),
            allocs_for(&mut buffered, &post),
        );
        eprintln!(
            "[buffer_body:post_streaming_{}_headers] per {N} requests: bare {b:?}, BufferBody {l:?}",
            2 + extra
        );
        added.push(l.count - b.count);
    }
    // The recording (shared with the body) and the body that records: the
    // boxing constructor runs twice, once for a placeholder while the body
    // is swapped.
    assert_eq!(added, [3 * N as u64, 3 * N as u64]);
}

#[test]
fn replay_still_works_and_the_hot_path_stays_allocation_free_after_it() {
    let rt = runtime();
    let _guard = rt.enter();
    let generation = Arc::new(AtomicUsize::new(0));
    let g = Arc::clone(&generation);
    let cache = TokenCache::new(from_fn(move || {
        let n = g.fetch_add(1, Ordering::Relaxed);
        async move {
            let secret = if n == 0 { "first" } else { "second" };
            Ok(AccessToken::new(secret).with_expires_in(Duration::from_secs(3600)))
        }
    }));
    let api = Api {
        reject: Some("first"),
        ..Api::default()
    };
    let mut svc = BearerAuthLayer::from_cache(cache.clone()).layer(api.clone());

    // The first token is rejected; the request is replayed, headers intact.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let recording = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let mut api = api.clone();
        seen2.lock().unwrap().push(req.headers().clone());
        api.call(req)
    });
    let mut recorder = BearerAuthLayer::from_cache(cache.clone()).layer(recording);
    let res = rt
        .block_on(recorder.clone().oneshot(get_with_headers()))
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cache.stats().retries, 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (name, _) in get_with_headers().headers() {
        assert_eq!(
            seen[0].get_all(name).iter().collect::<Vec<_>>(),
            seen[1].get_all(name).iter().collect::<Vec<_>>()
        );
    }
    assert_eq!(seen[1][AUTHORIZATION], "Bearer second");

    // Back on the hot path, nothing is allocated beyond the request itself.
    let mut bare = Api::default();
    let b = allocs_for(&mut bare, &get_with_headers);
    let l = allocs_for(&mut svc, &get_with_headers);
    assert_eq!(l, b);
    let _ = recorder.get_mut();
}
