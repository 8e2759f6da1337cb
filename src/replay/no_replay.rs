//! `NoReplay`: a policy that never sends a request twice.

use std::convert::Infallible;

use super::ReplayPolicy;

/// Never replays: a rejected request's response is returned as is. The token is
/// still invalidated, so the next request goes out with a fresh one.
///
/// Works with every body type, including streams, and keeps nothing, so it is
/// the cheapest policy; [`BearerAuthLayer::no_replay`](crate::BearerAuthLayer::no_replay)
/// selects it.
///
/// ```
/// use http::Request;
/// use tower_bearer::replay::{NoReplay, ReplayPolicy};
///
/// let mut request = Request::get("http://127.0.0.1/").body(()).unwrap();
/// assert!(NoReplay.keep(&mut request).is_none());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplay;

impl<R> ReplayPolicy<R> for NoReplay {
    type Kept = Infallible;

    fn keep(&self, _request: &mut R) -> Option<Self::Kept> {
        None
    }

    fn replay(&self, kept: Self::Kept) -> Option<R> {
        match kept {}
    }
}
