//! `WithoutExtensions`: a replay that leaves the request's extensions out, so
//! that keeping a request with extensions allocates nothing.

use std::mem;

use http::Request;

use super::ReplayPolicy;

/// Keeps requests as `P` does, without their extensions: the first attempt
/// carries them as usual, the replay none.
///
/// The replaying policies ([`CloneBody`](super::CloneBody),
/// [`BufferBody`](super::BufferBody)) copy the head of every request without
/// allocating, except its extensions: `http::Extensions` can only be cloned
/// value by value, into a new map, so a request with one extension costs
/// three allocations (about 200 bytes) and a thousand instructions, and each
/// further extension one more allocation. There is no cheaper way to keep
/// them for a second send: the first attempt owns them. Wrap the policy in
/// `WithoutExtensions` when the service under the layer does not need them on
/// the replay; a request without extensions costs nothing either way.
///
/// A keyed layer ([`BearerAuthLayer::keyed`](crate::BearerAuthLayer::keyed))
/// reads the key once, before the first attempt, and replays with the same
/// key's token, so a key carried in an extension is not needed again.
///
/// ```
/// use http::Request;
/// use tower_bearer::replay::{CloneBody, ReplayPolicy, WithoutExtensions};
///
/// #[derive(Clone)]
/// struct Tenant(u32);
///
/// let mut request = Request::get("http://127.0.0.1/").body(()).unwrap();
/// request.extensions_mut().insert(Tenant(7));
/// let policy = WithoutExtensions(CloneBody);
/// let kept = policy.keep(&mut request).unwrap();
/// // The first attempt still carries its extension; the replay does not.
/// assert_eq!(request.extensions().get::<Tenant>().map(|t| t.0), Some(7));
/// let again = policy.replay(kept).unwrap();
/// assert!(again.extensions().is_empty());
/// ```
///
/// With a layer:
///
/// ```
/// use tower_bearer::replay::{CloneBody, WithoutExtensions};
/// use tower_bearer::{BearerAuthLayer, StaticToken};
///
/// let layer = BearerAuthLayer::new(StaticToken::new("k")).replay(WithoutExtensions(CloneBody));
/// # drop(layer);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct WithoutExtensions<P>(pub P);

impl<P, B> ReplayPolicy<Request<B>> for WithoutExtensions<P>
where
    P: ReplayPolicy<Request<B>>,
{
    type Kept = P::Kept;

    fn keep(&self, request: &mut Request<B>) -> Option<Self::Kept> {
        // `P` sees no extensions (nothing to clone), and the request gets
        // its own back for the first attempt: two moves of a pointer.
        let extensions = mem::take(request.extensions_mut());
        let kept = self.0.keep(request);
        *request.extensions_mut() = extensions;
        kept
    }

    fn replay(&self, kept: Self::Kept) -> Option<Request<B>> {
        self.0.replay(kept)
    }
}
