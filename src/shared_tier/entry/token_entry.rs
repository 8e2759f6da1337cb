//! The access token entry, `{id}:token`: a token sealed for one identity and
//! written under a lease's fence, read back on the server's clock, opened
//! only for that identity, fence, writer and lifetime.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::fields::{id, millis, number, text};
use crate::dpop::DpopProver;
use crate::shared_tier::encryption::{Keyring, Unreadable};
use crate::shared_tier::identity::{aad, Identity};
use crate::token::{AccessToken, Expiry};

/// The longest a token is shared for: a token that lives longer is shared
/// as if it lived this long (the fleet refreshes it daily), and an entry
/// that claims more is malformed.
pub(crate) const MAX_SHARED_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// An access token sealed for one identity, ready for the write script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedToken {
    pub(crate) fence: u64,
    pub(crate) writer: String,
    /// The token's lifetime, as readers will see it.
    pub(crate) life_ms: u64,
    /// How long it has left, from the moment it was sealed.
    pub(crate) ttl_ms: u64,
    pub(crate) key_id: String,
    pub(crate) sealed: Vec<u8>,
}

impl SealedToken {
    /// Seals `token` for `identity`, to be written under `fence` by
    /// `writer`; `None` if it has no life left to share. A token without an
    /// expiry is shared for `unknown_lifetime`.
    pub(crate) fn seal(
        token: &AccessToken,
        identity: &Identity,
        fence: u64,
        writer: &str,
        unknown_lifetime: Duration,
        keyring: &Keyring,
        now: Instant,
    ) -> Option<Self> {
        let (left, life) = match token.expiry() {
            Expiry::At(at) => (
                at.saturating_duration_since(now),
                at.saturating_duration_since(token.received_at().min(now)),
            ),
            Expiry::Unknown | Expiry::Never => (unknown_lifetime, unknown_lifetime),
        };
        let life = life.min(MAX_SHARED_LIFETIME);
        let ttl_ms = millis(left.min(life));
        if ttl_ms == 0 {
            return None;
        }
        let life_ms = millis(life);
        // A token bound to a key other than the identity's is not shared:
        // the processes reading it could not prove it.
        let jkt = token.dpop().map(|prover| prover.thumbprint());
        if jkt.is_some() && jkt != identity.jkt() {
            return None;
        }
        let payload = json!({ "access_token": token.secret(), "scope": token.scope(), "jkt": jkt });
        Some(Self {
            fence,
            writer: writer.to_owned(),
            life_ms,
            ttl_ms,
            key_id: keyring.sealing_id().to_owned(),
            sealed: keyring.seal(
                &token_aad(identity, fence, writer, life_ms),
                payload.to_string().as_bytes(),
            ),
        })
    }
}

/// An access token entry as read, before it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRecord {
    pub(crate) fence: u64,
    pub(crate) writer: String,
    pub(crate) life_ms: u64,
    /// Time left, on the server's clock, when the read script ran.
    pub(crate) left_ms: u64,
    pub(crate) key_id: String,
    pub(crate) sealed: Vec<u8>,
}

/// Fields of `{id}:token` as the read script returns them: `v`, `w`,
/// `life`, `exp`, `kid`, `blob`.
pub(crate) type TokenFields = [Option<Vec<u8>>; 6];

impl TokenRecord {
    /// Reads the fields returned at `server_now_ms`, with the key's `pttl`:
    /// `Ok(None)` if there is no entry, `Err` if it is not one this crate
    /// writes (then it is replaced, like an entry that does not open).
    pub(crate) fn parse(
        fields: &TokenFields,
        server_now_ms: u64,
        pttl: i64,
    ) -> Result<Option<Self>, Unreadable> {
        if fields.iter().all(Option::is_none) {
            return Ok(None);
        }
        let [v, w, life, exp, kid, blob] = fields;
        let life_ms = number(life)?;
        let exp = number(exp)?;
        // A key without a time to live, or one longer than any token's, was
        // not written by this crate.
        let pttl = u64::try_from(pttl).map_err(|_| Unreadable::Malformed)?;
        if life_ms == 0 || life_ms > millis(MAX_SHARED_LIFETIME) || pttl > life_ms {
            return Err(Unreadable::Malformed);
        }
        Ok(Some(Self {
            fence: number(v)?,
            writer: id(w)?,
            life_ms,
            left_ms: exp.saturating_sub(server_now_ms).min(pttl),
            key_id: text(kid)?,
            sealed: blob.clone().ok_or(Unreadable::Malformed)?,
        }))
    }

    /// Opens the entry of `identity` into a token that expires when the entry
    /// says, counted from `read_at` (when the read was sent: the server
    /// answered later, so this errs on the early side).
    pub(crate) fn open(
        &self,
        keyring: &Keyring,
        identity: &Identity,
        dpop: Option<&Arc<dyn DpopProver>>,
        read_at: Instant,
    ) -> Result<AccessToken, Unreadable> {
        let aad = token_aad(identity, self.fence, &self.writer, self.life_ms);
        let plaintext = keyring.open(&self.key_id, &aad, &self.sealed)?;
        let payload: Value =
            serde_json::from_slice(&plaintext).map_err(|_| Unreadable::Malformed)?;
        let secret = payload["access_token"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or(Unreadable::Malformed)?;
        let token = AccessToken::new(secret);
        let token = match payload["scope"].as_str() {
            Some(scope) => token.with_scope(scope),
            None => token,
        };
        // A bound token opens only for a process that holds its key.
        let token = match (payload["jkt"].as_str(), dpop) {
            (None, _) => token,
            (Some(jkt), Some(prover)) if prover.thumbprint() == jkt => {
                token.bound_with_dpop(Arc::clone(prover))
            }
            (Some(_), _) => return Err(Unreadable::Malformed),
        };
        let expires = read_at + Duration::from_millis(self.left_ms);
        let issued = expires
            .checked_sub(Duration::from_millis(self.life_ms))
            .unwrap_or(read_at)
            .min(read_at);
        Ok(token.with_expires_at(expires).with_received_at(issued))
    }
}

fn token_aad(identity: &Identity, fence: u64, writer: &str, life_ms: u64) -> Vec<u8> {
    aad(&[
        b"token",
        identity.as_str().as_bytes(),
        fence.to_string().as_bytes(),
        writer.as_bytes(),
        life_ms.to_string().as_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_tier::encryption::EncryptionKey;

    const NOW: u64 = 1_800_000_000_000;

    fn keyring() -> Keyring {
        Keyring::new(EncryptionKey::new("k1", [9; 32]).unwrap(), vec![]).unwrap()
    }

    fn stored(entry: &SealedToken, written_at: u64) -> TokenFields {
        [
            Some(entry.fence.to_string().into_bytes()),
            Some(entry.writer.clone().into_bytes()),
            Some(entry.life_ms.to_string().into_bytes()),
            Some((written_at + entry.ttl_ms).to_string().into_bytes()),
            Some(entry.key_id.clone().into_bytes()),
            Some(entry.sealed.clone()),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn token_entries_round_trip_on_the_servers_clock() {
        let identity = Identity::tenant("ns", "acme");
        let token = AccessToken::new("s3cr3t")
            .with_expires_in(Duration::from_secs(2))
            .with_scope("api:read");
        let now = Instant::now();
        let sealed = SealedToken::seal(
            &token,
            &identity,
            7,
            "ab12",
            Duration::ZERO,
            &keyring(),
            now,
        )
        .unwrap();
        assert_eq!((sealed.life_ms, sealed.ttl_ms), (2000, 2000));
        assert!(!sealed.sealed.windows(6).any(|w| w == b"s3cr3t"));
        // Read 500 ms later (server time), by a process whose clock says
        // anything at all: only durations cross between processes.
        let record = TokenRecord::parse(&stored(&sealed, NOW), NOW + 500, 1500)
            .unwrap()
            .unwrap();
        assert_eq!(record.left_ms, 1500);
        let read_at = now + Duration::from_secs(100);
        let opened = record.open(&keyring(), &identity, None, read_at).unwrap();
        assert_eq!(opened.secret(), "s3cr3t");
        assert_eq!(opened.scope(), Some("api:read"));
        assert_eq!(
            opened.expires_at(),
            Some(read_at + Duration::from_millis(1500))
        );
        assert_eq!(opened.received_at(), read_at - Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_opens_for_its_own_identity_writer_and_fields_only() {
        let identity = Identity::tenant("svc", "admin");
        let token = AccessToken::new("t").with_expires_in(Duration::from_secs(60));
        let now = Instant::now();
        let sealed =
            SealedToken::seal(&token, &identity, 3, "aa", Duration::ZERO, &keyring(), now).unwrap();
        let record = TokenRecord::parse(&stored(&sealed, NOW), NOW, 60_000)
            .unwrap()
            .unwrap();
        assert!(record.open(&keyring(), &identity, None, now).is_ok());
        for other in [
            Identity::single("svc:admin"),
            Identity::tenant("svc:", "admin"),
        ] {
            assert_eq!(
                record.open(&keyring(), &other, None, now).err(),
                Some(Unreadable::Tampered)
            );
        }
        let mut moved = record.clone();
        moved.fence = 4;
        assert_eq!(
            moved.open(&keyring(), &identity, None, now).err(),
            Some(Unreadable::Tampered)
        );
        let mut rewritten = record.clone();
        rewritten.writer = "bb".into();
        assert_eq!(
            rewritten.open(&keyring(), &identity, None, now).err(),
            Some(Unreadable::Tampered)
        );
        let mut longer = record;
        longer.life_ms = 3_600_000;
        assert_eq!(
            longer.open(&keyring(), &identity, None, now).err(),
            Some(Unreadable::Tampered)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn what_redis_holds_is_validated_and_bounded() {
        let identity = Identity::single("ns");
        let token = AccessToken::new("t").with_expires_in(Duration::from_secs(60));
        let sealed = SealedToken::seal(
            &token,
            &identity,
            1,
            "ab",
            Duration::ZERO,
            &keyring(),
            Instant::now(),
        )
        .unwrap();
        let good = stored(&sealed, NOW);
        assert!(TokenRecord::parse(&good, NOW, 60_000).unwrap().is_some());
        assert_eq!(TokenRecord::parse(&Default::default(), NOW, -2), Ok(None));
        // An expiry far beyond the key's own time to live: the key wins.
        let mut far = good.clone();
        far[3] = Some(b"999999999999999".to_vec());
        assert_eq!(
            TokenRecord::parse(&far, NOW, 10).unwrap().unwrap().left_ms,
            10
        );
        let table: [(usize, &[u8], i64); 9] = [
            (0, b"1e309", 60_000),
            (0, b"99999999999999999999", 60_000),
            (0, b"-1", 60_000),
            (1, b"NOT-HEX", 60_000),
            (2, b"0", 60_000),
            (2, b"86400001", 60_000),
            (3, b"soon", 60_000),
            // No time to live, or longer than the token's life.
            (3, b"1", -1),
            (3, b"1", 60_001),
        ];
        for (field, value, pttl) in table {
            let mut bad = good.clone();
            bad[field] = Some(value.to_vec());
            assert_eq!(
                TokenRecord::parse(&bad, NOW, pttl),
                Err(Unreadable::Malformed),
                "field {field} = {:?}, pttl {pttl}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn long_and_endless_tokens_are_shared_for_a_bounded_time() {
        let identity = Identity::single("ns");
        let now = Instant::now();
        let seal = |token: AccessToken| {
            SealedToken::seal(
                &token,
                &identity,
                1,
                "a",
                Duration::from_secs(3600),
                &keyring(),
                now,
            )
        };
        let month =
            seal(AccessToken::new("t").with_expires_in(Duration::from_secs(30 * 86_400))).unwrap();
        assert_eq!((month.life_ms, month.ttl_ms), (86_400_000, 86_400_000));
        let endless = seal(AccessToken::new("t").never_expires()).unwrap();
        assert_eq!((endless.life_ms, endless.ttl_ms), (3_600_000, 3_600_000));
        assert!(seal(AccessToken::new("t").with_expires_at(now)).is_none());
    }
}
