//! The refresh token entry, `{id}:refresh`: a place in the chain with its
//! sealed refresh token and, while a process redeems it, that process's
//! mark; or the record that the chain was lost.

use super::fields::{id, number, text};
use crate::secret::Secret;
use crate::shared_tier::encryption::{Keyring, Unreadable};
use crate::shared_tier::error::ChainLoss;
use crate::shared_tier::identity::{aad, Identity};

/// Where a refresh-token chain was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// From the refresh token a process was built with.
    Bootstrap,
    /// By the application, with
    /// [`SharedTier::reseed`](crate::shared_tier::SharedTier::reseed).
    Reseed,
}

/// A redemption under way, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MarkRecord {
    /// The lease of the process redeeming.
    pub(crate) by: String,
    /// How long ago it was marked, on the server's clock.
    pub(crate) age_ms: u64,
    /// Its outcome is unknown: the refresh token may have been spent.
    pub(crate) doubt: bool,
}

/// The refresh entry as read, before it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainRecord {
    Absent,
    Lost(ChainLoss),
    Present {
        epoch: String,
        seq: u64,
        origin: Origin,
        key_id: String,
        sealed: Vec<u8>,
        mark: Option<MarkRecord>,
    },
}

/// Fields of `{id}:refresh` as the read script returns them: `epoch`,
/// `seq`, `origin`, `kid`, `blob`, `mark`, `marked`, `doubt`, `lost`.
pub(crate) type ChainFields = [Option<Vec<u8>>; 9];

impl ChainRecord {
    /// Reads the fields returned at `server_now_ms`. Anything this crate
    /// does not write reads as unreadable, which loses the chain: no process
    /// can tell which refresh token is current.
    pub(crate) fn parse(fields: &ChainFields, server_now_ms: u64) -> Self {
        if fields.iter().all(Option::is_none) {
            return Self::Absent;
        }
        let [epoch, seq, origin, kid, blob, mark, marked, doubt, lost] = fields;
        if let Some(lost) = lost {
            return Self::Lost(ChainLoss::from_code(lost));
        }
        let present = || -> Result<Self, Unreadable> {
            let origin = match origin.as_deref() {
                Some(b"b") => Origin::Bootstrap,
                Some(b"r") => Origin::Reseed,
                _ => return Err(Unreadable::Malformed),
            };
            let mark = match mark {
                None => None,
                Some(_) => Some(MarkRecord {
                    by: text(mark)?,
                    age_ms: server_now_ms.saturating_sub(number(marked)?),
                    doubt: doubt.is_some(),
                }),
            };
            Ok(Self::Present {
                epoch: id(epoch)?,
                seq: number(seq)?,
                origin,
                key_id: text(kid)?,
                sealed: blob.clone().ok_or(Unreadable::Malformed)?,
                mark,
            })
        };
        present().unwrap_or(Self::Lost(ChainLoss::Unreadable))
    }
}

/// Seals `refresh_token` as the `seq`-th of the chain `epoch` of `identity`.
pub(crate) fn seal_refresh_token(
    refresh_token: &Secret,
    identity: &Identity,
    epoch: &str,
    seq: u64,
    keyring: &Keyring,
) -> Vec<u8> {
    keyring.seal(
        &refresh_aad(identity, epoch, seq),
        refresh_token.expose().as_bytes(),
    )
}

/// Opens what [`seal_refresh_token`] sealed.
pub(crate) fn open_refresh_token(
    keyring: &Keyring,
    key_id: &str,
    sealed: &[u8],
    identity: &Identity,
    epoch: &str,
    seq: u64,
) -> Result<Secret, Unreadable> {
    let plaintext = keyring.open(key_id, &refresh_aad(identity, epoch, seq), sealed)?;
    String::from_utf8(plaintext)
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .ok_or(Unreadable::Malformed)
}

fn refresh_aad(identity: &Identity, epoch: &str, seq: u64) -> Vec<u8> {
    aad(&[
        b"refresh",
        identity.as_str().as_bytes(),
        epoch.as_bytes(),
        seq.to_string().as_bytes(),
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

    #[test]
    fn refresh_entries() {
        let identity = Identity::single("ns");
        let sealed = seal_refresh_token(&Secret::new("rt-1"), &identity, "e1", 4, &keyring());
        let fields = |lost: Option<&[u8]>, mark: bool| -> ChainFields {
            [
                Some(b"e1".to_vec()),
                Some(b"4".to_vec()),
                Some(b"b".to_vec()),
                Some(b"k1".to_vec()),
                Some(sealed.clone()),
                mark.then(|| b"5:ab".to_vec()),
                mark.then(|| (NOW - 300).to_string().into_bytes()),
                None,
                lost.map(<[u8]>::to_vec),
            ]
        };
        let ChainRecord::Present {
            epoch,
            seq,
            key_id,
            sealed: blob,
            mark,
            ..
        } = ChainRecord::parse(&fields(None, true), NOW)
        else {
            panic!("not present")
        };
        assert_eq!(
            mark,
            Some(MarkRecord {
                by: "5:ab".into(),
                age_ms: 300,
                doubt: false
            })
        );
        let open = |identity: &Identity, seq| {
            open_refresh_token(&keyring(), &key_id, &blob, identity, &epoch, seq)
        };
        assert_eq!(open(&identity, seq).unwrap().expose(), "rt-1");
        assert_eq!(open(&identity, 5), Err(Unreadable::Tampered));
        assert_eq!(
            open(&Identity::tenant("ns", ""), 4),
            Err(Unreadable::Tampered)
        );
        assert_eq!(
            ChainRecord::parse(&Default::default(), NOW),
            ChainRecord::Absent
        );
        assert_eq!(
            ChainRecord::parse(&fields(Some(b"rolled-back"), false), NOW),
            ChainRecord::Lost(ChainLoss::RolledBack)
        );
        let mut garbled = fields(None, false);
        garbled[1] = Some(b"four".to_vec());
        assert_eq!(
            ChainRecord::parse(&garbled, NOW),
            ChainRecord::Lost(ChainLoss::Unreadable)
        );
    }
}
