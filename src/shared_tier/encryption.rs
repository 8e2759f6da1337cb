//! Secrets at rest: access and refresh tokens are sealed with AES-256-GCM
//! before they reach Redis, under keys the user supplies, each with an id.
//!
//! Every entry records the id of the key that sealed it, so keys can be
//! rotated without a flag day: give every process the new key as a
//! [decryption key](super::SharedTierBuilder::decryption_key) first, then make
//! it the [encryption key](super::SharedTierBuilder::encryption_key)
//! everywhere, and drop the old one once nothing sealed with it is left
//! (access tokens expire with their token; the refresh token is sealed again
//! at every refresh).
//!
//! Nonces are 96 random bits from the OS for every seal. With random nonces
//! AES-GCM stays safe for about 2^32 seals under one key, and the tier seals
//! twice per token lifetime: a key would outlive any plausible deployment.
//! What an entry says in the clear (its version and timing, the key name it
//! is stored under) is authenticated as associated data, so it cannot be
//! altered or the ciphertext moved to another key without detection.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::error::SharedTierBuildError;
use crate::redact::Redacted;

/// The longest key id accepted.
const MAX_KEY_ID_LEN: usize = 32;

/// A 256-bit AES-GCM key and the id entries sealed with it are tagged with.
///
/// Every process of a fleet must have the key that sealed an entry to read
/// it; supply the same key (from your secret store) to all of them. `Debug`
/// shows the id only.
///
/// ```
/// use tower_bearer::shared_tier::EncryptionKey;
///
/// // 32 random bytes, e.g. `openssl rand -base64 32`, kept in a secret store.
/// let key = EncryptionKey::from_base64("2026-11", "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=").unwrap();
/// assert_eq!(key.id(), "2026-11");
/// assert_eq!(format!("{key:?}"), r#"EncryptionKey { id: "2026-11", key: [redacted] }"#);
/// assert!(EncryptionKey::from_base64("short", "c2hvcnQ=").is_err());
/// ```
#[derive(Clone)]
pub struct EncryptionKey {
    id: Arc<str>,
    key: Arc<LessSafeKey>,
    /// A digest of the key bytes, to tell two different keys with one id
    /// apart without keeping the bytes.
    fingerprint: [u8; 32],
}

impl EncryptionKey {
    /// A key from its 32 bytes. The id (1 to 32 ASCII letters, digits, `.`,
    /// `_` or `-`) is stored next to every entry sealed with it.
    pub fn new(id: impl Into<String>, bytes: [u8; 32]) -> Result<Self, SharedTierBuildError> {
        let id = id.into();
        if id.is_empty()
            || id.len() > MAX_KEY_ID_LEN
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(SharedTierBuildError::InvalidKeyId);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
            SharedTierBuildError::InvalidEncryptionKey {
                id: id.clone(),
                reason: "not an AES-256 key",
            }
        })?;
        let fingerprint = {
            use sha2::Digest as _;
            sha2::Sha256::digest(bytes).into()
        };
        Ok(Self {
            id: Arc::from(id),
            key: Arc::new(LessSafeKey::new(unbound)),
            fingerprint,
        })
    }

    /// A key from the base64 of its 32 bytes (standard or URL-safe alphabet,
    /// padded or not).
    pub fn from_base64(id: impl Into<String>, encoded: &str) -> Result<Self, SharedTierBuildError> {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let id = id.into();
        let encoded = encoded.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(encoded).ok())
            .ok_or_else(|| SharedTierBuildError::InvalidEncryptionKey {
                id: id.clone(),
                reason: "not base64",
            })?;
        let bytes: [u8; 32] =
            decoded
                .try_into()
                .map_err(|_| SharedTierBuildError::InvalidEncryptionKey {
                    id: id.clone(),
                    reason: "not 32 bytes",
                })?;
        Self::new(id, bytes)
    }

    /// The id entries sealed with this key are tagged with.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .field("key", &Redacted)
            .finish()
    }
}

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Sealed with a key this process was not given.
    UnknownKey,
    /// Altered, moved, or sealed with another key under the same id.
    Tampered,
    /// Not an entry this crate writes.
    Malformed,
}

impl Unreadable {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::UnknownKey => "sealed with a key this process does not have",
            Self::Tampered => {
                "failed authentication (tampered with, or another key under the same id)"
            }
            Self::Malformed => "malformed",
        }
    }
}

/// The key that seals, and every key that opens.
#[derive(Clone)]
pub(crate) struct Keyring {
    sealing: EncryptionKey,
    opening: Vec<EncryptionKey>,
}

impl Keyring {
    /// A keyring sealing with `sealing` and opening with it and `others`.
    pub(crate) fn new(
        sealing: EncryptionKey,
        others: Vec<EncryptionKey>,
    ) -> Result<Self, SharedTierBuildError> {
        let mut opening: Vec<EncryptionKey> = vec![sealing.clone()];
        for key in others {
            match opening.iter().find(|k| k.id == key.id) {
                Some(same) if same.fingerprint == key.fingerprint => {}
                Some(_) => return Err(SharedTierBuildError::DuplicateKeyId(key.id.to_string())),
                None => opening.push(key),
            }
        }
        Ok(Self { sealing, opening })
    }

    /// The id of the sealing key.
    pub(crate) fn sealing_id(&self) -> &str {
        &self.sealing.id
    }

    /// Seals `plaintext`, bound to `aad`: the nonce, then the ciphertext and
    /// its tag.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // Without the OS's randomness nothing here can be made safe; it never
        // fails on the platforms tokio supports.
        getrandom::fill(&mut nonce).expect("the OS random number generator failed");
        let mut body = plaintext.to_vec();
        self.sealing
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .expect("AES-GCM sealing fails only for inputs of more than 64 GiB");
        let mut sealed = Vec::with_capacity(NONCE_LEN + body.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        sealed
    }

    /// Opens what [`seal`](Self::seal) sealed with the key `key_id`.
    pub(crate) fn open(
        &self,
        key_id: &str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, Unreadable> {
        let key = self
            .opening
            .iter()
            .find(|k| &*k.id == key_id)
            .ok_or(Unreadable::UnknownKey)?;
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(Unreadable::Malformed);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unreadable::Malformed)?;
        let mut body = body.to_vec();
        let plaintext = key
            .key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| Unreadable::Tampered)?;
        Ok(plaintext.to_vec())
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("sealing", &self.sealing.id)
            .field(
                "opening",
                &self.opening.iter().map(|k| &*k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> EncryptionKey {
        EncryptionKey::new(id, [byte; 32]).unwrap()
    }

    #[test]
    fn sealed_values_open_with_the_same_key_and_binding_only() {
        let ring = Keyring::new(key("a", 1), vec![]).unwrap();
        let sealed = ring.seal(b"{ns}:token|7", b"the token");
        assert!(!sealed.windows(9).any(|w| w == b"the token"));
        assert_eq!(
            ring.open("a", b"{ns}:token|7", &sealed).unwrap(),
            b"the token"
        );
        // Another binding (another key name, another version) is refused.
        assert_eq!(
            ring.open("a", b"{ns}:token|8", &sealed),
            Err(Unreadable::Tampered)
        );
        // A flipped bit is refused.
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            ring.open("a", b"{ns}:token|7", &flipped),
            Err(Unreadable::Tampered)
        );
        // Truncated or unknown.
        assert_eq!(
            ring.open("a", b"", &sealed[..5]),
            Err(Unreadable::Malformed)
        );
        assert_eq!(
            ring.open("b", b"{ns}:token|7", &sealed),
            Err(Unreadable::UnknownKey)
        );
        // Two seals of one value differ (fresh nonces).
        assert_ne!(ring.seal(b"x", b"v"), ring.seal(b"x", b"v"));
    }

    #[test]
    fn rotation_opens_old_entries_and_seals_with_the_new_key() {
        let old = Keyring::new(key("old", 1), vec![]).unwrap();
        let sealed_old = old.seal(b"aad", b"v1");
        let rotated = Keyring::new(key("new", 2), vec![key("old", 1)]).unwrap();
        assert_eq!(rotated.sealing_id(), "new");
        assert_eq!(rotated.open("old", b"aad", &sealed_old).unwrap(), b"v1");
        let sealed_new = rotated.seal(b"aad", b"v2");
        // A process not yet given the new key cannot read what it sealed.
        assert_eq!(
            old.open("new", b"aad", &sealed_new),
            Err(Unreadable::UnknownKey)
        );
    }

    #[test]
    fn key_ids_and_duplicates() {
        for bad in ["", "has space", "ünï", &"x".repeat(33)] {
            assert_eq!(
                EncryptionKey::new(bad, [0; 32]).unwrap_err(),
                SharedTierBuildError::InvalidKeyId,
                "{bad:?}"
            );
        }
        // The same key twice is harmless; two keys under one id are not.
        assert!(Keyring::new(key("a", 1), vec![key("a", 1)]).is_ok());
        assert_eq!(
            Keyring::new(key("a", 1), vec![key("a", 2)]).unwrap_err(),
            SharedTierBuildError::DuplicateKeyId("a".into())
        );
    }

    #[test]
    fn base64_keys() {
        let bytes = [7u8; 32];
        let standard = base64::engine::general_purpose::STANDARD.encode(bytes);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let a = EncryptionKey::from_base64("a", &standard).unwrap();
        let b = EncryptionKey::from_base64("a", &format!(" {url}\n")).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert!(matches!(
            EncryptionKey::from_base64("a", "not base64!"),
            Err(SharedTierBuildError::InvalidEncryptionKey {
                reason: "not base64",
                ..
            })
        ));
        assert!(matches!(
            EncryptionKey::from_base64("a", "c2hvcnQ="),
            Err(SharedTierBuildError::InvalidEncryptionKey {
                reason: "not 32 bytes",
                ..
            })
        ));
    }
}
