//! Tracing names each key of a keyed cache by the label its user chose, and
//! never shows a token.
//!
//! Alone in its binary: a subscriber set for one thread sees every event only
//! if no other test registers the same callsites at the same moment (tracing
//! caches each callsite's interest), and this test asserts events that must
//! appear, not only secrets that must not.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::captured_log::Captured;
use tracing::Level;
use tracing_subscriber::fmt::format::FmtSpan;

use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::{from_fn, AccessToken, TokenError};

async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(600), call)
        .await
        .expect("a caller hung")
}

#[tokio::test(start_paused = true)]
async fn spans_and_events_name_the_key_by_its_label_never_by_its_token() {
    let (captured, _guard) = Captured::start(Level::TRACE, FmtSpan::NONE);

    let attempts = Arc::new(AtomicUsize::new(0));
    let cache = {
        let attempts = Arc::clone(&attempts);
        KeyedTokenCache::builder(move |workspace: &String| {
            let (attempts, workspace) = (Arc::clone(&attempts), workspace.clone());
            from_fn(move || {
                let n = attempts.fetch_add(1, Ordering::SeqCst);
                let token = format!("s3cr3t-{workspace}-{n}");
                async move {
                    if n == 0 {
                        return Err(TokenError::transient("token endpoint answered 500"));
                    }
                    Ok(AccessToken::new(token))
                }
            })
        })
        .label(|workspace| format!("ws:{workspace}"))
        .backoff(Duration::from_millis(10), Duration::from_millis(10))
        .build()
    };
    let alpha = "wks_alpha".to_owned();
    assert!(bounded(cache.acquire(&alpha)).await.is_err());
    tokio::time::advance(Duration::from_millis(20)).await;
    let token = bounded(cache.acquire(&alpha)).await.unwrap();
    cache.reject(&alpha, token.generation());
    bounded(cache.acquire(&"wks_beta".to_owned()))
        .await
        .unwrap();

    let text = captured.text();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{text}"))
            .to_owned()
    };
    assert!(line("token fetch failed").contains("key=ws:wks_alpha"));
    assert!(line("token rejected by a server").contains("key=ws:wks_alpha"));
    assert!(text
        .lines()
        .any(|l| l.contains("token installed") && l.contains("key=ws:wks_beta")));
    assert!(!text.contains("s3cr3t"), "a token was logged:\n{text}");
}
