//! What the cache asked its tier for.

use crate::token::AccessToken;

/// What the cache asked for.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// A token: the cache has none, or its own is due.
    Fetch,
    /// A token other than this one, which a server rejected.
    Replace(AccessToken),
}
