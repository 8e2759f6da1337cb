//! The Redis keys and the pub/sub channel of one identity's shared token.
//!
//! Every key carries the identity as a hash tag (`{3.svc/admin}:token`), so
//! that all of them live in one hash slot: the Lua scripts touch several keys
//! atomically, which Redis Cluster allows only within one slot. Every key
//! written expires: the token entry with its token, the refresh entry after
//! [`refresh_ttl`](super::SharedTierBuilder::refresh_ttl) without a rotation,
//! a lease after its time to live, a failure after its hold. There is no
//! fencing counter: a lease's fence is computed from the entry it replaces.

use super::identity::Identity;

/// The keys and the pub/sub channel of one identity.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// A hash: the sealed access token, its writer and timing.
    pub(crate) token: String,
    /// A hash: the sealed refresh token of a refreshing tier, its place in
    /// the chain and any redemption under way.
    pub(crate) refresh: String,
    /// A string: the lease of the process fetching (`fence:nonce`).
    pub(crate) lease: String,
    /// A string: why the last fetch failed, kept for a short hold so that the
    /// rest of the fleet does not repeat it at once.
    pub(crate) failure: String,
    /// The channel a lease holder publishes on when it is done.
    pub(crate) channel: String,
}

impl Keys {
    pub(crate) fn new(identity: &Identity) -> Self {
        let key = |suffix: &str| format!("{{{}}}:{suffix}", identity.as_str());
        Self {
            token: key("token"),
            refresh: key("refresh"),
            lease: key("lease"),
            failure: key("failure"),
            channel: key("events"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new(&Identity::tenant("billing:prod", "acme"));
        assert_eq!(keys.token, "{12.billing:prod/acme}:token");
        assert_eq!(keys.refresh, "{12.billing:prod/acme}:refresh");
        assert_eq!(keys.lease, "{12.billing:prod/acme}:lease");
        assert_eq!(keys.failure, "{12.billing:prod/acme}:failure");
        assert_eq!(keys.channel, "{12.billing:prod/acme}:events");
    }

    #[test]
    fn key_names_are_bounded_whatever_the_tenant() {
        let keys = Keys::new(&Identity::tenant(&"n".repeat(128), &"t".repeat(100_000)));
        assert!(keys.refresh.len() <= 2 + 4 + 128 + 1 + 65 + ":refresh".len());
    }
}
