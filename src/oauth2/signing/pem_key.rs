//! PEM private keys: which of PKCS#8, PKCS#1 and SEC1 a text holds, what key
//! type is inside, and the DER that `ring` reads.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::key_error::KeyError;

/// The key type a PKCS#8 or SEC1 document names, for error messages: the
/// OIDs are looked for where the algorithm identifier sits, not parsed.
pub(crate) fn key_type(der: &[u8]) -> &'static str {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    let contains = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    if contains(RSA_ENCRYPTION) {
        "RSA"
    } else if contains(P384) {
        // Before P-256: a SEC1 key wrapped by `sec1_p256_as_pkcs8` names both.
        "EC P-384"
    } else if contains(P521) {
        "EC P-521"
    } else if contains(P256) {
        "EC P-256"
    } else if contains(ED25519) {
        "Ed25519"
    } else {
        "unknown"
    }
}

/// The first private key in `text`: PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1
/// (`BEGIN RSA PRIVATE KEY`), or SEC1 (`BEGIN EC PRIVATE KEY`) turned into
/// PKCS#8. The DER is zeroized on drop.
pub(crate) fn parse(text: &[u8]) -> Result<PrivateKeyDer<'static>, KeyError> {
    match PrivateKeyDer::from_pem_slice(text) {
        Ok(PrivateKeyDer::Sec1(sec1)) => Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            sec1_p256_as_pkcs8(sec1.secret_sec1_der()),
        ))),
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(KeyError::Pem(why_no_private_key(text))),
        Err(pem::Error::MissingSectionEnd { .. }) => {
            Err(KeyError::Pem("a section has no `-----END …-----` line"))
        }
        Err(pem::Error::IllegalSectionStart { .. }) => {
            Err(KeyError::Pem("a malformed `-----BEGIN …-----` line"))
        }
        Err(pem::Error::Base64Decode(_)) => Err(KeyError::Pem("the base64 inside is broken")),
        Err(pem::Error::SectionTooLarge) => Err(KeyError::Pem("a section is too large")),
        Err(_) => Err(KeyError::Pem("unreadable PEM")),
    }
}

/// Why PEM text without a plain private key has none, by the labels it has.
fn why_no_private_key(text: &[u8]) -> &'static str {
    let has = |label: &str| {
        let marker = format!("-----BEGIN {label}-----");
        text.windows(marker.len()).any(|w| w == marker.as_bytes())
    };
    if has("ENCRYPTED PRIVATE KEY") {
        "an encrypted private key: decrypt it first (`openssl pkcs8 -topk8 -nocrypt`)"
    } else if has("PUBLIC KEY") || has("RSA PUBLIC KEY") {
        "a public key, not a private key"
    } else if has("CERTIFICATE") {
        "a certificate, not a private key"
    } else {
        "no `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` section"
    }
}

/// A SEC1 `ECPrivateKey` (RFC 5915) wrapped as the PKCS#8 document of a
/// P-256 key (RFC 5958), which `ring` reads. A key on another curve keeps its
/// own curve inside and is refused by `ring` when loaded.
fn sec1_p256_as_pkcs8(sec1: &[u8]) -> Vec<u8> {
    // version 0, AlgorithmIdentifier { id-ecPublicKey, prime256v1 }
    const HEAD: &[u8] = &[
        0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
        0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let mut octets = vec![0x04];
    octets.extend(der_length(sec1.len()));
    octets.extend_from_slice(sec1);
    let mut out = vec![0x30];
    out.extend(der_length(HEAD.len() + octets.len()));
    out.extend_from_slice(HEAD);
    out.extend(octets);
    out
}

/// A DER length: one byte below 128, else the count of big-endian bytes
/// (with the top bit set) and those bytes.
fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let mut out = vec![0x80 | (bytes.len() - skip) as u8];
    out.extend_from_slice(&bytes[skip..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_short_and_long_form() {
        for (len, expected) in [
            (0, vec![0x00]),
            (0x7f, vec![0x7f]),
            (0x80, vec![0x81, 0x80]),
            (0xff, vec![0x81, 0xff]),
            (0x100, vec![0x82, 0x01, 0x00]),
            (0x1_0000, vec![0x83, 0x01, 0x00, 0x00]),
        ] {
            assert_eq!(der_length(len), expected, "{len}");
        }
    }

    #[test]
    fn texts_without_a_private_key_say_what_they_hold() {
        for (text, expected) in [
            ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
            ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "public key"),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate"),
            ("", "no `-----BEGIN PRIVATE KEY-----`"),
            ("{\"kty\":\"RSA\"}", "no `-----BEGIN PRIVATE KEY-----`"),
        ] {
            let Err(KeyError::Pem(reason)) = parse(text.as_bytes()) else {
                panic!("{text:?} parsed");
            };
            assert!(reason.contains(expected), "{text:?}: {reason}");
        }
        let Err(KeyError::Pem(reason)) =
            parse(b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n")
        else {
            panic!("broken base64 parsed");
        };
        assert_eq!(reason, "the base64 inside is broken");
        let Err(KeyError::Pem(reason)) = parse(b"-----BEGIN PRIVATE KEY-----\nAAAA\n") else {
            panic!("an open section parsed");
        };
        assert!(reason.contains("END"), "{reason}");
    }

    #[test]
    fn key_types_by_oid() {
        let rsa = [
            0x30, 0x06, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        ];
        assert_eq!(key_type(&rsa), "RSA");
        assert_eq!(
            key_type(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]),
            "EC P-384"
        );
        assert_eq!(key_type(&[0x06, 0x03, 0x2b, 0x65, 0x70]), "Ed25519");
        assert_eq!(key_type(&[1, 2, 3]), "unknown");
    }
}
