//! A `from_fn` token source with switchable faults (fail, panic, hang, expired
//! on arrival).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tower_bearer::{from_fn, AccessToken, TokenError, TokenSource};

/// What the scripted source does on its next fetch.
#[derive(Clone, Debug)]
pub enum Script {
    /// A fresh `tok-N` with this lifetime.
    Ok(Duration),
    /// A fresh `tok-N` that expired before it arrived.
    Expired,
    /// This error.
    Fail(TokenError),
    /// Panics.
    Panic,
    /// Never completes.
    Hang,
    /// Waits until [`Scripted::open`], then a fresh `tok-N` with this lifetime.
    Gate(Duration),
}

struct ScriptedState {
    script: Mutex<Script>,
    calls: AtomicUsize,
    minted: AtomicU64,
    entered: Notify,
    gate: Notify,
    open: std::sync::atomic::AtomicBool,
}

/// A `from_fn` source whose behaviour the test switches.
#[derive(Clone)]
pub struct Scripted {
    state: Arc<ScriptedState>,
}

impl Scripted {
    pub fn new(script: Script) -> Self {
        Scripted {
            state: Arc::new(ScriptedState {
                script: Mutex::new(script),
                calls: AtomicUsize::new(0),
                minted: AtomicU64::new(0),
                entered: Notify::new(),
                gate: Notify::new(),
                open: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    pub fn set(&self, script: Script) {
        *self.state.script.lock().unwrap() = script;
    }

    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Lets every fetch waiting at a [`Script::Gate`] (and every later one) finish.
    pub fn open(&self) {
        self.state.open.store(true, Ordering::SeqCst);
        self.state.gate.notify_waiters();
    }

    /// Waits until the source has been called `n` times in total.
    pub async fn wait_calls(&self, n: usize) {
        loop {
            let entered = self.state.entered.notified();
            if self.calls() >= n {
                return;
            }
            entered.await;
        }
    }

    pub fn source(&self) -> impl TokenSource {
        let state = Arc::clone(&self.state);
        from_fn(move || {
            let state = Arc::clone(&state);
            async move {
                let script = state.script.lock().unwrap().clone();
                state.calls.fetch_add(1, Ordering::SeqCst);
                state.entered.notify_waiters();
                let n = state.minted.fetch_add(1, Ordering::SeqCst) + 1;
                match script {
                    Script::Ok(lifetime) => {
                        Ok(AccessToken::new(format!("tok-{n}")).with_expires_in(lifetime))
                    }
                    Script::Expired => Ok(AccessToken::new(format!("tok-{n}"))
                        .with_expires_at(tokio::time::Instant::now() - Duration::from_secs(1))),
                    Script::Fail(err) => Err(err),
                    Script::Panic => panic!("scripted token source panicked"),
                    Script::Hang => std::future::pending().await,
                    Script::Gate(lifetime) => {
                        let opened = state.gate.notified();
                        if !state.open.load(Ordering::SeqCst) {
                            opened.await;
                        }
                        Ok(AccessToken::new(format!("tok-{n}")).with_expires_in(lifetime))
                    }
                }
            }
        })
    }
}
