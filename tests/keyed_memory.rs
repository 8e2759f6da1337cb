//! What 100,000 keys of one keyed cache cost at rest: bytes per key without
//! and with a token, tasks, and token fetches in an idle hour.
//!
//! A counting global allocator measures the bytes still allocated; the test
//! runs alone in this binary so that nothing else allocates meanwhile. Run
//! with `--nocapture` to see the figures (BENCHMARKS.md quotes them).

#[path = "support/live_bytes.rs"]
mod live_bytes;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use live_bytes::live;
use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::{from_fn, AccessToken};

const KEYS: usize = 100_000;
const HOUR: Duration = Duration::from_secs(3600);
/// An opaque token of 64 bytes, as in `tests/memory.rs`.
const TOKEN: &str = "tok_3q2MVxK7pQe1bLr9Zt8WnYc4Hj6Df0Ga7sUe2Xk5Rw9Pm1Vb8Nq4Lz6Ty0Ci";

#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_idle_keys_cost_under_a_kilobyte_each_no_task_and_no_fetch() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let fetches = Arc::new(AtomicUsize::new(0));
    // Workspace ids as the application holds them anyway (`Arc<str>`): the
    // cache keeps clones (reference counts), so only what it adds is counted.
    let keys: Vec<Arc<str>> = (0..KEYS)
        .map(|n| Arc::from(format!("wks_{n:08}")))
        .collect();

    let before = live();
    let cache = {
        let fetches = Arc::clone(&fetches);
        KeyedTokenCache::builder(move |_workspace: &Arc<str>| {
            let fetches = Arc::clone(&fetches);
            from_fn(move || {
                fetches.fetch_add(1, Ordering::Relaxed);
                async { Ok(AccessToken::new(TOKEN).with_expires_in(HOUR)) }
            })
        })
        .max_keys(KEYS)
        .label(|workspace| workspace.to_string())
        .build()
    };
    for key in &keys {
        cache.get(key).unwrap();
    }
    let empty = live();
    for key in &keys {
        cache.acquire(key).await.unwrap();
    }
    let full = live();
    tokio::task::yield_now().await;
    let tasks = metrics.num_alive_tasks() - tasks_before;

    // An idle hour: nobody uses the tokens.
    tokio::time::sleep(HOUR - Duration::from_secs(1)).await;
    let idle_fetches = fetches.load(Ordering::Relaxed) - KEYS;

    let per_key = (empty - before) as usize / KEYS;
    let per_token = (full - empty) as usize / KEYS;
    println!(
        "keyed memory: {KEYS} keys, {per_key} bytes per key without a token (label of 12 \
         bytes included), {per_token} more bytes per cached token ({} byte token), {} bytes \
         per key with its token, {tasks} tasks, {idle_fetches} fetches in an idle hour",
        TOKEN.len(),
        per_key + per_token,
    );
    assert_eq!(cache.len(), KEYS);
    assert!(
        per_key + per_token <= 1024,
        "{per_key} + {per_token} bytes per key"
    );
    assert_eq!(tasks, 0, "a key costs no task");
    assert_eq!(idle_fetches, 0, "an idle key is never refreshed");
    drop(cache);
}
