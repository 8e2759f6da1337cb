//! What the tier keeps in Redis: the access token entry and the refresh
//! token entry, each a hash of a few fields, the secret sealed.
//!
//! `{ns}:token` — `v` (the fencing number of the lease it was written
//! under), `iat`, `exp`, `ref` (issued, expires, refresh from; Unix
//! milliseconds, `0` for never), `kid` (the sealing key's id) and `blob` (the
//! sealed access token and scope). A rejected token leaves its entry without
//! `blob` (a tombstone that keeps the version, so that fencing holds) until it
//! expires.
//!
//! `{ns}:refresh` — `v`, `kid`, `blob` (the sealed refresh token).

use serde_json::{json, Value};
use tokio::time::Instant;

use super::encryption::{Keyring, Unreadable};
use super::freshness::{instant_of, Timing};
use crate::secret::Secret;
use crate::token::AccessToken;

/// The fields of a token entry, in the order the tier reads them.
pub(crate) const TOKEN_FIELDS: [&str; 6] = ["v", "iat", "exp", "ref", "kid", "blob"];

/// The fields of a refresh entry, in the order the tier reads them.
pub(crate) const REFRESH_FIELDS: [&str; 3] = ["v", "kid", "blob"];

/// Fields as Redis returns them for `HMGET`: each present or not.
pub(crate) type Fields = Vec<Option<Vec<u8>>>;

/// A sealed access token and its timing, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenEntry {
    pub(crate) version: u64,
    pub(crate) timing: Timing,
    pub(crate) key_id: String,
    pub(crate) sealed: Vec<u8>,
}

impl TokenEntry {
    /// Seals `token` for the entry `key_name` at `version`.
    pub(crate) fn seal(
        token: &AccessToken,
        version: u64,
        timing: Timing,
        keyring: &Keyring,
        key_name: &str,
    ) -> Self {
        let payload = json!({ "access_token": token.secret(), "scope": token.scope() });
        let aad = token_aad(key_name, version, &timing);
        Self {
            version,
            timing,
            key_id: keyring.sealing_id().to_owned(),
            sealed: keyring.seal(&aad, payload.to_string().as_bytes()),
        }
    }

    /// Reads the fields of `HMGET key TOKEN_FIELDS`: `None` if there is no
    /// entry, or only the tombstone of a rejected one.
    pub(crate) fn from_fields(fields: &Fields) -> Result<Option<Self>, Unreadable> {
        let [v, iat, exp, refresh, kid, blob] = fields.as_slice() else {
            return Err(Unreadable::Malformed);
        };
        let Some(blob) = blob else {
            return Ok(None);
        };
        let number = |field: &Option<Vec<u8>>| -> Result<u64, Unreadable> {
            let text = field.as_deref().ok_or(Unreadable::Malformed)?;
            std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or(Unreadable::Malformed)
        };
        let optional = |ms: u64| (ms != 0).then_some(ms);
        Ok(Some(Self {
            version: number(v)?,
            timing: Timing {
                issued_ms: number(iat)?,
                expires_ms: optional(number(exp)?),
                refresh_at_ms: optional(number(refresh)?),
            },
            key_id: text(kid)?,
            sealed: blob.clone(),
        }))
    }

    /// Opens the entry stored under `key_name` into a token whose expiry and
    /// issue are the entry's, on this process's monotonic clock.
    pub(crate) fn open(
        &self,
        keyring: &Keyring,
        key_name: &str,
        now: Instant,
        now_ms: u64,
    ) -> Result<AccessToken, Unreadable> {
        let aad = token_aad(key_name, self.version, &self.timing);
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
        Ok(with_timing(token, &self.timing, now, now_ms))
    }

    /// The values the write script stores, after the version: `iat`, `exp`,
    /// `ref` (`0` for never), `kid`, `blob`.
    pub(crate) fn stored_fields(&self) -> (u64, u64, u64, &str, &[u8]) {
        (
            self.timing.issued_ms,
            self.timing.expires_ms.unwrap_or(0),
            self.timing.refresh_at_ms.unwrap_or(0),
            &self.key_id,
            &self.sealed,
        )
    }
}

/// A sealed refresh token, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefreshEntry {
    pub(crate) version: u64,
    pub(crate) key_id: String,
    pub(crate) sealed: Vec<u8>,
}

impl RefreshEntry {
    /// Seals `refresh_token` for the entry `key_name` at `version`.
    pub(crate) fn seal(
        refresh_token: &Secret,
        version: u64,
        keyring: &Keyring,
        key_name: &str,
    ) -> Self {
        Self {
            version,
            key_id: keyring.sealing_id().to_owned(),
            sealed: keyring.seal(
                &refresh_aad(key_name, version),
                refresh_token.expose().as_bytes(),
            ),
        }
    }

    /// Reads the fields of `HMGET key REFRESH_FIELDS`: `None` if there is none.
    pub(crate) fn from_fields(fields: &[Option<Vec<u8>>]) -> Result<Option<Self>, Unreadable> {
        let [v, kid, blob] = fields else {
            return Err(Unreadable::Malformed);
        };
        let (Some(v), Some(blob)) = (v, blob) else {
            return Ok(None);
        };
        let version = std::str::from_utf8(v)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(Unreadable::Malformed)?;
        Ok(Some(Self {
            version,
            key_id: text(kid)?,
            sealed: blob.clone(),
        }))
    }

    /// Opens the refresh token stored under `key_name`.
    pub(crate) fn open(&self, keyring: &Keyring, key_name: &str) -> Result<Secret, Unreadable> {
        let plaintext = keyring.open(
            &self.key_id,
            &refresh_aad(key_name, self.version),
            &self.sealed,
        )?;
        String::from_utf8(plaintext)
            .ok()
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .ok_or(Unreadable::Malformed)
    }
}

/// `token` as every process of the fleet sees it: issued and expiring when
/// the entry says, on this process's monotonic clock.
pub(crate) fn with_timing(
    token: AccessToken,
    timing: &Timing,
    now: Instant,
    now_ms: u64,
) -> AccessToken {
    let token = token.with_received_at(instant_of(timing.issued_ms, now, now_ms));
    match timing.expires_ms {
        Some(ms) => token.with_expires_at(instant_of(ms, now, now_ms)),
        None => token.never_expires(),
    }
}

fn text(field: &Option<Vec<u8>>) -> Result<String, Unreadable> {
    field
        .as_deref()
        .and_then(|t| std::str::from_utf8(t).ok())
        .map(str::to_owned)
        .ok_or(Unreadable::Malformed)
}

/// What a sealed access token is bound to: the key it is stored under and
/// every field stored beside it in the clear.
fn token_aad(key_name: &str, version: u64, timing: &Timing) -> Vec<u8> {
    format!(
        "tower-bearer/1|{key_name}|{version}|{}|{}|{}",
        timing.issued_ms,
        timing.expires_ms.unwrap_or(0),
        timing.refresh_at_ms.unwrap_or(0)
    )
    .into_bytes()
}

fn refresh_aad(key_name: &str, version: u64) -> Vec<u8> {
    format!("tower-bearer/1|{key_name}|{version}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_tier::encryption::EncryptionKey;
    use std::time::Duration;

    fn keyring() -> Keyring {
        Keyring::new(EncryptionKey::new("k1", [9; 32]).unwrap(), vec![]).unwrap()
    }

    fn stored(entry: &TokenEntry) -> Fields {
        let (iat, exp, refresh, kid, blob) = entry.stored_fields();
        vec![
            Some(entry.version.to_string().into_bytes()),
            Some(iat.to_string().into_bytes()),
            Some(exp.to_string().into_bytes()),
            Some(refresh.to_string().into_bytes()),
            Some(kid.as_bytes().to_vec()),
            Some(blob.to_vec()),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn token_entries_round_trip_through_redis_fields() {
        let now = Instant::now();
        let now_ms = 1_800_000_000_000;
        let token = AccessToken::new("s3cr3t")
            .with_expires_in(Duration::from_secs(2))
            .with_scope("api:read");
        let timing = Timing {
            issued_ms: now_ms,
            expires_ms: Some(now_ms + 2000),
            refresh_at_ms: Some(now_ms + 1260),
        };
        let entry = TokenEntry::seal(&token, 7, timing, &keyring(), "{ns}:token");
        assert!(!entry.sealed.windows(6).any(|w| w == b"s3cr3t"));
        let read = TokenEntry::from_fields(&stored(&entry)).unwrap().unwrap();
        assert_eq!(read, entry);
        // Read a second later by another process.
        let later = now + Duration::from_secs(1);
        let opened = read
            .open(&keyring(), "{ns}:token", later, now_ms + 1000)
            .unwrap();
        assert_eq!(opened.secret(), "s3cr3t");
        assert_eq!(opened.scope(), Some("api:read"));
        assert_eq!(opened.expires_at(), Some(now + Duration::from_secs(2)));
        assert_eq!(opened.received_at(), now);
        // Stored under another key, or with altered timing: refused.
        assert_eq!(
            read.open(&keyring(), "{other}:token", later, now_ms).err(),
            Some(Unreadable::Tampered)
        );
        let mut extended = read.clone();
        extended.timing.expires_ms = Some(now_ms + 3_600_000);
        assert_eq!(
            extended.open(&keyring(), "{ns}:token", later, now_ms).err(),
            Some(Unreadable::Tampered)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_expiring_tokens_and_tombstones() {
        let token = AccessToken::new("k").never_expires();
        let timing = Timing {
            issued_ms: 5,
            expires_ms: None,
            refresh_at_ms: None,
        };
        let entry = TokenEntry::seal(&token, 1, timing, &keyring(), "n");
        let read = TokenEntry::from_fields(&stored(&entry)).unwrap().unwrap();
        assert_eq!(read.timing, timing);
        let opened = read.open(&keyring(), "n", Instant::now(), 10).unwrap();
        assert_eq!(opened.expiry(), crate::token::Expiry::Never);

        let mut tombstone = stored(&entry);
        tombstone[5] = None;
        assert_eq!(TokenEntry::from_fields(&tombstone), Ok(None));
        assert_eq!(TokenEntry::from_fields(&vec![None; 6]), Ok(None));
        let mut garbled = stored(&entry);
        garbled[0] = Some(b"seven".to_vec());
        assert_eq!(
            TokenEntry::from_fields(&garbled),
            Err(Unreadable::Malformed)
        );
        assert_eq!(
            TokenEntry::from_fields(&vec![None; 2]),
            Err(Unreadable::Malformed)
        );
    }

    #[test]
    fn refresh_entries_round_trip() {
        let entry = RefreshEntry::seal(&Secret::new("rt-1"), 4, &keyring(), "{ns}:refresh");
        let fields = vec![
            Some(b"4".to_vec()),
            Some(entry.key_id.clone().into_bytes()),
            Some(entry.sealed.clone()),
        ];
        let read = RefreshEntry::from_fields(&fields).unwrap().unwrap();
        assert_eq!(
            read.open(&keyring(), "{ns}:refresh").unwrap().expose(),
            "rt-1"
        );
        assert_eq!(
            read.open(&keyring(), "{ns}:token"),
            Err(Unreadable::Tampered)
        );
        assert_eq!(RefreshEntry::from_fields(&[None, None, None]), Ok(None));
    }
}
