//! The DPoP nonces servers handed out (RFC 9449 §8, §9), one per origin:
//! read on every proof, written only when a server hands out a new one.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// How many origins' nonces are kept: a key talks to a token endpoint and a
/// few APIs. Past this, the origin that learned its nonce longest ago is
/// forgotten (its next proof goes without one and is challenged once).
const MAX_ORIGINS: usize = 64;

/// The longest nonce kept. RFC 9449 sets no limit; servers send a few dozen
/// characters, and a longer one is not worth carrying in every proof.
const MAX_NONCE_LEN: usize = 512;

/// The nonce last handed out by each origin. Reads are a pointer load and a
/// short scan, without a lock; a write copies the (small) list.
#[derive(Default)]
pub(crate) struct DpopNonces {
    /// `(origin, nonce)`, the origin learned longest ago first.
    by_origin: ArcSwap<Vec<(Box<str>, Arc<str>)>>,
}

impl DpopNonces {
    /// The nonce `origin` handed out last, if any. Origins compare without
    /// regard to ASCII case, as schemes and hosts do.
    pub(crate) fn get(&self, origin: &str) -> Option<Arc<str>> {
        self.by_origin
            .load()
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(origin))
            .map(|(_, nonce)| Arc::clone(nonce))
    }

    /// Keeps `nonce` for `origin`, unless it is not a nonce RFC 9449 §8.1
    /// allows (one or more of `%x21 / %x23-5B / %x5D-7E`, here at most
    /// 512 characters): such a value is dropped, and the origin keeps the
    /// nonce it had. Returns whether it was kept.
    pub(crate) fn learn(&self, origin: &str, nonce: &str) -> bool {
        if !is_nonce(nonce) {
            return false;
        }
        if self.get(origin).is_some_and(|known| &*known == nonce) {
            return true;
        }
        let nonce: Arc<str> = Arc::from(nonce);
        self.by_origin.rcu(|current| {
            let mut next: Vec<_> = current
                .iter()
                .filter(|(known, _)| !known.eq_ignore_ascii_case(origin))
                .cloned()
                .collect();
            if next.len() >= MAX_ORIGINS {
                next.remove(0);
            }
            next.push((Box::from(origin), Arc::clone(&nonce)));
            next
        });
        true
    }

    /// How many origins have a nonce here.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_origin.load().len()
    }
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR`, where `NQCHAR = %x21 / %x23-5B / %x5D-7E`
/// (visible ASCII without `"` and `\`).
fn is_nonce(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_NONCE_LEN
        && value
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_nonce_per_origin() {
        let nonces = DpopNonces::default();
        assert_eq!(nonces.get("https://as.example"), None);
        assert!(nonces.learn("https://as.example", "n1"));
        assert!(nonces.learn("https://api.example", "a1"));
        assert_eq!(nonces.get("https://as.example").as_deref(), Some("n1"));
        assert_eq!(nonces.get("HTTPS://AS.example").as_deref(), Some("n1"));
        assert_eq!(nonces.get("https://api.example").as_deref(), Some("a1"));
        assert_eq!(nonces.get("https://as.example:8443"), None);
        // A new nonce replaces the origin's old one, and only that.
        assert!(nonces.learn("https://as.example", "n2"));
        assert_eq!(nonces.get("https://as.example").as_deref(), Some("n2"));
        assert_eq!(nonces.get("https://api.example").as_deref(), Some("a1"));
        assert_eq!(nonces.len(), 2);
    }

    #[test]
    fn values_that_are_not_nonces_are_dropped() {
        let nonces = DpopNonces::default();
        assert!(nonces.learn("https://as.example", "good-nonce_~!#[]"));
        for bad in [
            "",
            "with space",
            "quote\"",
            "back\\slash",
            "tab\t",
            "é",
            &"n".repeat(513),
        ] {
            assert!(!nonces.learn("https://as.example", bad), "{bad:?}");
        }
        assert_eq!(
            nonces.get("https://as.example").as_deref(),
            Some("good-nonce_~!#[]")
        );
    }

    #[test]
    fn the_origin_learned_longest_ago_is_forgotten_first() {
        let nonces = DpopNonces::default();
        for i in 0..=MAX_ORIGINS {
            assert!(nonces.learn(&format!("https://{i}.example"), "n"));
        }
        assert_eq!(nonces.len(), MAX_ORIGINS);
        assert_eq!(nonces.get("https://0.example"), None);
        assert!(nonces.get("https://1.example").is_some());
        assert!(nonces
            .get(&format!("https://{MAX_ORIGINS}.example"))
            .is_some());
    }
}
