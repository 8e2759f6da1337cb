//! The Redis keys one shared token lives under, and the rule for the
//! namespace that prefixes them.
//!
//! Every key carries the namespace as a hash tag (`{namespace}:token`), so
//! that all of them live in one hash slot: the Lua scripts touch several keys
//! atomically, which Redis Cluster allows only within one slot.

/// The longest namespace accepted, in bytes.
const MAX_NAMESPACE_BYTES: usize = 128;

/// The keys and the pub/sub channel of one shared token.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// A hash: the sealed access token and its timing; expires with the token.
    pub(crate) token: String,
    /// A hash: the sealed refresh token of a refreshing tier; kept until
    /// replaced, since it outlives the access tokens it yields.
    pub(crate) refresh: String,
    /// A string: the fencing number of the process that holds the lease.
    pub(crate) lease: String,
    /// A counter: the last fencing number handed out.
    pub(crate) fence: String,
    /// A string: why the last fetch failed, kept for a short hold so that the
    /// rest of the fleet does not repeat it at once.
    pub(crate) failure: String,
    /// The channel a lease holder publishes on when it is done.
    pub(crate) channel: String,
}

impl Keys {
    /// The keys under `namespace`, which [`check_namespace`] accepted.
    pub(crate) fn new(namespace: &str) -> Self {
        let key = |suffix: &str| format!("{{{namespace}}}:{suffix}");
        Self {
            token: key("token"),
            refresh: key("refresh"),
            lease: key("lease"),
            fence: key("fence"),
            failure: key("failure"),
            channel: key("events"),
        }
    }
}

/// Why `namespace` cannot prefix Redis keys, if it cannot: it must be 1 to
/// 128 printable ASCII characters, without spaces or braces (a brace would
/// break the hash tag that keeps the keys in one slot).
pub(crate) fn check_namespace(namespace: &str) -> Result<(), &'static str> {
    if namespace.is_empty() {
        return Err("the namespace is empty");
    }
    if namespace.len() > MAX_NAMESPACE_BYTES {
        return Err("the namespace is longer than 128 bytes");
    }
    if !namespace
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
    {
        return Err(
            "the namespace has a character other than printable ASCII without spaces or braces",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("billing:prod");
        assert_eq!(keys.token, "{billing:prod}:token");
        assert_eq!(keys.refresh, "{billing:prod}:refresh");
        assert_eq!(keys.lease, "{billing:prod}:lease");
        assert_eq!(keys.fence, "{billing:prod}:fence");
        assert_eq!(keys.failure, "{billing:prod}:failure");
        assert_eq!(keys.channel, "{billing:prod}:events");
    }

    #[test]
    fn namespaces() {
        let table: [(&str, bool); 8] = [
            ("tower-bearer", true),
            ("app:tokens/v2", true),
            ("", false),
            ("has space", false),
            ("brace{", false),
            ("brace}", false),
            ("tab\t", false),
            ("é", false),
        ];
        for (namespace, ok) in table {
            assert_eq!(check_namespace(namespace).is_ok(), ok, "{namespace:?}");
        }
        assert!(check_namespace(&"n".repeat(128)).is_ok());
        assert!(check_namespace(&"n".repeat(129)).is_err());
    }
}
