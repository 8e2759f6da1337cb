//! A loopback stand-in for an identity provider or API: one server on
//! 127.0.0.1 whose handler sees the provider's state, which the example and
//! its tests read back (how many tokens it issued, which it still accepts).
//!
//! Not an example itself: `examples/support/mod.rs` includes it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::request::Parts;
use http::Response;
use http_body_util::Full;

use super::loopback;

/// What a stand-in answers: the request head and whole body, with the
/// provider's state.
pub type StandInHandler<S> = fn(&Mutex<S>, Parts, Bytes) -> Response<Full<Bytes>>;

/// A provider's state behind a server on 127.0.0.1 (a port of the OS's
/// choosing).
pub struct StandIn<S> {
    addr: SocketAddr,
    state: Arc<Mutex<S>>,
}

impl<S: Default + Send + 'static> StandIn<S> {
    /// Serves `handle` with a fresh state.
    pub async fn serve(handle: StandInHandler<S>) -> Self {
        let state = Arc::new(Mutex::new(S::default()));
        let shared = state.clone();
        let addr = loopback::serve_collected(move |parts, body| handle(&shared, parts, body)).await;
        Self { addr, state }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `path` at the stand-in: `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// The provider's state, locked.
    pub fn state(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap()
    }
}
