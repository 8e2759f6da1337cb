//! Private keys given as a JWK (RFC 7517, RFC 7518 §6): the members read, and
//! every way a JWK can be unfit for signing, said without showing a value.

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::{Map, Value};

use super::key_error::KeyError;
use super::signing_algorithm::SigningAlgorithm;
use crate::redact;

/// base64url as JWKs write it: no padding, though padding is tolerated.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The bytes of a P-256 coordinate or private scalar.
const P256_BYTES: usize = 32;

/// A private JWK's key material, decoded.
pub(crate) enum PrivateJwk {
    /// An RSA key with its CRT members (RFC 7518 §6.3.2).
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        d: Vec<u8>,
        p: Vec<u8>,
        q: Vec<u8>,
        dp: Vec<u8>,
        dq: Vec<u8>,
        qi: Vec<u8>,
    },
    /// A P-256 key (RFC 7518 §6.2.2): the private scalar and the public
    /// point, uncompressed (`04 || x || y`).
    P256 { d: Vec<u8>, point: Vec<u8> },
}

/// A private JWK: its material, and the `alg` and `kid` it names.
pub(crate) struct ParsedJwk {
    pub(crate) key: PrivateJwk,
    pub(crate) algorithm: SigningAlgorithm,
    pub(crate) kid: Option<String>,
}

/// Reads one private JWK. Its `alg`, if any, must fit the key; without one,
/// RSA keys sign with RS256 and P-256 keys with ES256.
pub(crate) fn parse(text: &str) -> Result<ParsedJwk, KeyError> {
    // serde_json's messages quote the input, which here is a private key:
    // only the position is kept.
    let jwk: Map<String, Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(jwk_error("not a JSON object")),
        Err(e) => {
            return Err(KeyError::Jwk(format!(
                "not JSON (line {}, column {})",
                e.line(),
                e.column()
            )))
        }
    };
    if jwk.contains_key("keys") {
        return Err(jwk_error("a JWK Set: pass one of its keys"));
    }
    if let Some(usage) = jwk.get("use") {
        if usage.as_str() != Some("sig") {
            return Err(jwk_error("`use` is not `sig`: not a signing key"));
        }
    }
    let kty = match jwk.get("kty") {
        Some(Value::String(kty)) => kty.as_str(),
        Some(_) => return Err(jwk_error("`kty` is not a string")),
        None => return Err(jwk_error("no `kty`")),
    };
    let named = match jwk.get("alg") {
        None => None,
        Some(Value::String(alg)) => Some(alg.parse::<SigningAlgorithm>()?),
        Some(_) => return Err(jwk_error("`alg` is not a string")),
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(jwk_error("`kid` is not a string")),
    };
    let (key, algorithm) = match kty {
        "RSA" => {
            let algorithm = named.unwrap_or(SigningAlgorithm::Rs256);
            if algorithm.key_type() != "RSA" {
                return Err(KeyError::WrongKeyType {
                    algorithm: algorithm.as_str(),
                    found: "RSA",
                });
            }
            (rsa(&jwk)?, algorithm)
        }
        "EC" => (p256(&jwk, named)?, SigningAlgorithm::Es256),
        "oct" => {
            return Err(jwk_error(
                "a symmetric (`oct`) key: use client_secret_jwt with the client secret",
            ))
        }
        other => {
            return Err(KeyError::Jwk(format!(
                "key type `{}` is not supported: RSA and EC P-256 keys are",
                redact::server_text(other, &[])
            )))
        }
    };
    Ok(ParsedJwk {
        key,
        algorithm,
        kid,
    })
}

fn rsa(jwk: &Map<String, Value>) -> Result<PrivateJwk, KeyError> {
    if !jwk.contains_key("d") {
        return Err(jwk_error("a public key: no private exponent `d`"));
    }
    if jwk.contains_key("oth") {
        return Err(jwk_error("multi-prime RSA keys (`oth`) are not supported"));
    }
    if ["p", "q", "dp", "dq", "qi"]
        .iter()
        .any(|m| !jwk.contains_key(*m))
    {
        return Err(jwk_error(
            "an RSA key without all of `p`, `q`, `dp`, `dq` and `qi` is not supported",
        ));
    }
    Ok(PrivateJwk::Rsa {
        n: member(jwk, "n")?,
        e: member(jwk, "e")?,
        d: member(jwk, "d")?,
        p: member(jwk, "p")?,
        q: member(jwk, "q")?,
        dp: member(jwk, "dp")?,
        dq: member(jwk, "dq")?,
        qi: member(jwk, "qi")?,
    })
}

fn p256(jwk: &Map<String, Value>, named: Option<SigningAlgorithm>) -> Result<PrivateJwk, KeyError> {
    if let Some(algorithm) = named.filter(|a| *a != SigningAlgorithm::Es256) {
        return Err(KeyError::WrongKeyType {
            algorithm: algorithm.as_str(),
            found: "EC",
        });
    }
    match jwk.get("crv").and_then(Value::as_str) {
        Some("P-256") => {}
        Some("P-384") => return Err(wrong_curve("EC P-384")),
        Some("P-521") => return Err(wrong_curve("EC P-521")),
        Some(_) => return Err(wrong_curve("EC (another curve)")),
        None => return Err(jwk_error("no `crv`")),
    }
    if !jwk.contains_key("d") {
        return Err(jwk_error("a public key: no private scalar `d`"));
    }
    let (x, y, d) = (member(jwk, "x")?, member(jwk, "y")?, member(jwk, "d")?);
    if [&x, &y, &d].iter().any(|m| m.len() != P256_BYTES) {
        return Err(jwk_error(
            "`x`, `y` and `d` of a P-256 key are 32 bytes each",
        ));
    }
    let mut point = Vec::with_capacity(1 + 2 * P256_BYTES);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(PrivateJwk::P256 { d, point })
}

fn wrong_curve(found: &'static str) -> KeyError {
    KeyError::WrongKeyType {
        algorithm: SigningAlgorithm::Es256.as_str(),
        found,
    }
}

/// A base64url member, decoded.
fn member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, KeyError> {
    match jwk.get(name) {
        Some(Value::String(text)) => BASE64URL
            .decode(text)
            .map_err(|_| KeyError::Jwk(format!("`{name}` is not base64url"))),
        Some(_) => Err(KeyError::Jwk(format!("`{name}` is not a string"))),
        None => Err(KeyError::Jwk(format!("no `{name}`"))),
    }
}

fn jwk_error(reason: &str) -> KeyError {
    KeyError::Jwk(reason.to_owned())
}

/// `bytes` in base64url without padding, as JWKs and JWSs write it.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("{text} parsed"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn unfit_jwks_are_refused_without_showing_values() {
        let b = "AQAB";
        let rsa_public = format!(r#"{{"kty":"RSA","n":"{b}","e":"{b}"}}"#);
        let ec = |crv: &str, d: &str| {
            format!(r#"{{"kty":"EC","crv":"{crv}","x":"{b}","y":"{b}","d":"{d}"}}"#)
        };
        for (text, expected) in [
            ("[1]".to_owned(), "not a JSON object"),
            (r#"{"kty":"RSA","d":"s3cr3t"#.to_owned(), "not JSON (line 1, column 24)"),
            (r#"{"keys":[]}"#.to_owned(), "a JWK Set"),
            (r#"{"kty":"RSA","use":"enc"}"#.to_owned(), "not a signing key"),
            ("{}".to_owned(), "no `kty`"),
            (r#"{"kty":"oct","k":"s3cr3t"}"#.to_owned(), "client_secret_jwt"),
            (r#"{"kty":"OKP","crv":"Ed25519"}"#.to_owned(), "key type `OKP`"),
            (r#"{"kty":"RSA","alg":"HS256"}"#.to_owned(), "`HS256`"),
            (rsa_public, "a public key"),
            (
                r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}"#.to_owned(),
                "`p`, `q`, `dp`, `dq` and `qi`",
            ),
            (
                r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB","oth":[]}"#.to_owned(),
                "multi-prime",
            ),
            (
                r#"{"kty":"RSA","alg":"ES256","d":"s3cr3t"}"#.to_owned(),
                "ES256 signs with EC P-256 keys, not RSA keys",
            ),
            (
                r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"s3cr3t!","p":"AQAB","q":"AQAB","dp":"AQAB","dq":"AQAB","qi":"AQAB"}"#.to_owned(),
                "`d` is not base64url",
            ),
            (
                r#"{"kty":"EC","alg":"RS256","crv":"P-256"}"#.to_owned(),
                "RS256 signs with RSA keys, not EC keys",
            ),
            (ec("P-384", b), "ES256 signs with EC P-256 keys, not EC P-384 keys"),
            (ec("P-256", b), "32 bytes each"),
            (r#"{"kty":"EC","crv":"P-256","x":"AQAB","y":"AQAB"}"#.to_owned(), "a public key"),
            (r#"{"kty":"EC","crv":"P-256","x":1,"y":"AQAB","d":"AQAB"}"#.to_owned(), "`x` is not a string"),
        ] {
            let reason = reason(&text);
            assert!(reason.contains(expected), "{text}: {reason}");
            assert!(!reason.contains("s3cr3t"), "{text}: {reason}");
        }
    }

    #[test]
    fn alg_defaults_by_key_type() {
        let rsa = r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB","p":"AQAB","q":"AQAB","dp":"AQAB","dq":"AQAB","qi":"AQAB","kid":"k"}"#;
        let parsed = parse(rsa).unwrap();
        assert_eq!(parsed.algorithm, SigningAlgorithm::Rs256);
        assert_eq!(parsed.kid.as_deref(), Some("k"));
        let ps = rsa.replace(r#""kid":"k""#, r#""alg":"PS256""#);
        assert_eq!(parse(&ps).unwrap().algorithm, SigningAlgorithm::Ps256);
        let p = "A".repeat(43);
        let ec = format!(r#"{{"kty":"EC","crv":"P-256","x":"{p}","y":"{p}","d":"{p}"}}"#);
        let parsed = parse(&ec).unwrap();
        assert_eq!(parsed.algorithm, SigningAlgorithm::Es256);
        assert!(
            matches!(parsed.key, PrivateJwk::P256 { ref point, .. } if point.len() == 65 && point[0] == 4)
        );
    }
}
