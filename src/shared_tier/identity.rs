//! Whose token an entry holds: a namespace and, for a keyed tier, a tenant
//! key, written so that no two (namespace, tenant) pairs ever share a Redis
//! key or open each other's sealed entries, whatever strings users choose.
//!
//! The encoding is `<length of the namespace>.<namespace>` for a tier's one
//! shared token, and that followed by `/` and the tenant for a keyed tier's
//! tenant. The length says where the namespace ends, so `svc` + `admin`
//! (`3.svc/admin`) and the namespace `svc:admin` (`9.svc:admin`) differ, and
//! so do `svc` + `x:y` and `svc:x` + `y`; a tenant always starts after a `/`
//! that a single tier never has. Tenants are percent-encoded where they are not
//! printable ASCII or are `{`, `}` (they would move the keys out of their
//! Redis Cluster hash slot), `%` or `#` (so that the encoding is one-to-one);
//! a tenant whose encoding is longer than [`MAX_TENANT_BYTES`] is written as
//! `#` and its SHA-256 in hex, which no encoded tenant can be (a raw `#` is
//! always encoded). So Redis key names stay short however long the tenant.
//!
//! The same text is the associated data every entry is sealed with, length
//! prefixed (see [`aad`]), so an entry copied to another identity's key does
//! not open there.

use std::fmt::Write as _;

use sha2::Digest as _;

/// The longest namespace accepted, in bytes.
const MAX_NAMESPACE_BYTES: usize = 128;

/// The longest tenant written as itself (encoded); longer ones are hashed.
pub(crate) const MAX_TENANT_BYTES: usize = 64;

/// The version of the associated data and key layout: entries written by an
/// earlier layout do not open (they are replaced, as unreadable entries are).
const LAYOUT: &[u8] = b"tower-bearer/shared-tier/2";

/// Whose token a tier shares, encoded; see the [module](self) documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    encoded: String,
}

impl Identity {
    /// The one token of a tier under `namespace` (which [`check_namespace`]
    /// accepted).
    pub(crate) fn single(namespace: &str) -> Self {
        Self {
            encoded: format!("{}.{namespace}", namespace.len()),
        }
    }

    /// The token of `tenant` in a keyed tier under `namespace`.
    pub(crate) fn tenant(namespace: &str, tenant: &str) -> Self {
        let mut encoded = Self::single(namespace).encoded;
        encoded.push('/');
        let start = encoded.len();
        for byte in tenant.bytes() {
            if byte.is_ascii_graphic() && !matches!(byte, b'{' | b'}' | b'%' | b'#') {
                encoded.push(char::from(byte));
            } else {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
        if encoded.len() - start > MAX_TENANT_BYTES {
            encoded.truncate(start);
            encoded.push('#');
            for byte in sha2::Sha256::digest(tenant.as_bytes()) {
                let _ = write!(encoded, "{byte:02x}");
            }
        }
        Self { encoded }
    }

    /// The same identity for tokens bound to the DPoP key whose thumbprint
    /// is `jkt` (RFC 7638, base64url): `!` and the thumbprint right after the
    /// namespace, where neither a namespace (its length says where it ends)
    /// nor a tenant (after its `/`) can put one. Processes whose sources hold
    /// different keys never share an entry, and a bound token never opens
    /// for a process that cannot prove its key.
    pub(crate) fn bound_to(self, jkt: Option<&str>) -> Self {
        let Some(jkt) = jkt else {
            return self;
        };
        let (length, rest) = self.encoded.split_once('.').expect("an encoded identity");
        let end = length.len() + 1 + length.parse::<usize>().expect("a length prefix");
        debug_assert!(rest.len() >= end - length.len() - 1);
        let jkt: String = jkt
            .bytes()
            .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            .map(char::from)
            .collect();
        let mut encoded = self.encoded;
        encoded.insert_str(end, &format!("!{jkt}"));
        Self { encoded }
    }

    /// The DPoP thumbprint the identity's tokens are bound to, if any.
    pub(crate) fn jkt(&self) -> Option<&str> {
        let (length, _) = self.encoded.split_once('.')?;
        let end = length.len() + 1 + length.parse::<usize>().ok()?;
        let rest = self.encoded.get(end..)?.strip_prefix('!')?;
        Some(rest.split('/').next().unwrap_or(rest))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.encoded
    }
}

/// Why `namespace` cannot prefix Redis keys, if it cannot: it must be 1 to
/// 128 printable ASCII characters, without spaces or braces (a brace would
/// break the hash tag that keeps an identity's keys in one slot).
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

/// The associated data a value is sealed with: the layout version, then each
/// part with its length before it, so that no two lists of parts give the
/// same bytes.
pub(crate) fn aad(parts: &[&[u8]]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(LAYOUT.len() + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    out.extend_from_slice(LAYOUT);
    for part in parts {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn identities_are_written_one_to_one() {
        let table = [
            (Identity::single("svc"), "3.svc"),
            (
                Identity::single("svc").bound_to(Some("jkT-_1")),
                "3.svc!jkT-_1",
            ),
            (
                Identity::tenant("svc", "a!b").bound_to(Some("k")),
                "3.svc!k/a!b",
            ),
            (Identity::single("svc:admin"), "9.svc:admin"),
            (Identity::tenant("svc", "admin"), "3.svc/admin"),
            (Identity::tenant("svc", ""), "3.svc/"),
            (Identity::tenant("app", "a b"), "3.app/a%20b"),
            (Identity::tenant("app", "a%20b"), "3.app/a%2520b"),
            (Identity::tenant("app", "{x}"), "3.app/%7Bx%7D"),
            (Identity::tenant("app", "#1"), "3.app/%231"),
            (Identity::tenant("app", "naïve"), "3.app/na%C3%AFve"),
            (Identity::tenant("app", "line\nbreak"), "3.app/line%0Abreak"),
        ];
        for (identity, want) in table {
            assert_eq!(identity.as_str(), want);
        }
    }

    /// The pairs of the issue, and more: every (namespace, tenant) pair that
    /// naive joining with `:` or `/` would confuse gets its own identity.
    #[test]
    fn pairs_that_join_to_the_same_text_stay_apart() {
        let identities = [
            Identity::single("svc:admin"),
            Identity::tenant("svc", "admin"),
            Identity::single("svc/admin"),
            Identity::tenant("svc", "x:y"),
            Identity::tenant("svc:x", "y"),
            Identity::tenant("svc/x", "y"),
            Identity::tenant("svc", "x/y"),
            Identity::single("svc"),
            Identity::tenant("svc", ""),
            Identity::tenant("3.svc", ""),
            Identity::single("3.svc"),
            Identity::single("svc").bound_to(Some("key-one")),
            Identity::single("svc").bound_to(Some("key-two")),
            Identity::tenant("svc", "admin").bound_to(Some("key-one")),
            Identity::single("svc!key-one"),
        ];
        let distinct: HashSet<_> = identities.iter().map(Identity::as_str).collect();
        assert_eq!(distinct.len(), identities.len(), "{identities:?}");
        let sealed_for: HashSet<_> = identities
            .iter()
            .map(|i| aad(&[i.as_str().as_bytes()]))
            .collect();
        assert_eq!(sealed_for.len(), identities.len());
    }

    #[test]
    fn a_bound_identity_says_its_thumbprint() {
        assert_eq!(Identity::single("svc").jkt(), None);
        assert_eq!(Identity::tenant("svc", "a!b").jkt(), None);
        assert_eq!(Identity::single("s!x").bound_to(Some("k")).jkt(), Some("k"));
        assert_eq!(
            Identity::tenant("svc", "a!b").bound_to(Some("k")).jkt(),
            Some("k")
        );
    }

    #[test]
    fn long_tenants_are_hashed_and_stay_short_and_apart() {
        let long = "t".repeat(1000);
        let hashed = Identity::tenant("app", &long);
        assert_eq!(hashed.as_str().len(), "3.app/#".len() + 64);
        assert!(hashed.as_str().starts_with("3.app/#"));
        assert_ne!(hashed, Identity::tenant("app", &"t".repeat(1001)));
        // The longest tenant kept as itself, and one byte more.
        let kept = Identity::tenant("app", &"k".repeat(MAX_TENANT_BYTES));
        assert_eq!(
            kept.as_str(),
            format!("3.app/{}", "k".repeat(MAX_TENANT_BYTES))
        );
        let over = Identity::tenant("app", &"k".repeat(MAX_TENANT_BYTES + 1));
        assert!(over.as_str().starts_with("3.app/#"));
        // A tenant that spells out a hash is never taken for the tenant
        // hashed to it (a raw `#` is always encoded, so it is hashed too).
        let spelled = format!("#{}", &over.as_str()["3.app/#".len()..]);
        assert_ne!(Identity::tenant("app", &spelled), over);
        assert_eq!(Identity::tenant("app", "#a").as_str(), "3.app/%23a");
        // Encoding can make a short tenant long: hashed too.
        let spaces = Identity::tenant("app", &" ".repeat(30));
        assert!(spaces.as_str().starts_with("3.app/#"));
    }

    #[test]
    fn associated_data_is_length_prefixed() {
        assert_ne!(aad(&[b"ab", b"c"]), aad(&[b"a", b"bc"]));
        assert_ne!(aad(&[b"", b"x"]), aad(&[b"x"]));
        assert!(aad(&[b"x"]).starts_with(LAYOUT));
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
