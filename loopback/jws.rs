//! A JWS verifier that checks signed assertions the way an authorization
//! server does: with the registered public key (or the shared secret), using
//! `ring`, independently of the crate's signing code.
//!
//! Part of the shared `loopback` module (`loopback/mod.rs` says who includes
//! it).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA256,
};
use serde_json::Value;

/// A JWS whose signature checked out: its header and claims.
#[derive(Debug, Clone)]
pub struct Verified {
    pub header: Value,
    pub claims: Value,
}

/// Verifies a compact JWS signed with RS256, PS256 or ES256 by one of the
/// public keys of `jwks` (`{"keys": [...]}`): the one its `kid` names, or,
/// without a `kid`, any that verifies.
pub fn verify(jws: &str, jwks: &Value) -> Result<Verified, String> {
    let (input, header, claims, signature) = split(jws)?;
    let alg = header["alg"].as_str().ok_or("no alg")?;
    let keys = jwks["keys"].as_array().ok_or("no keys")?;
    let candidates: Vec<&Value> = match header.get("kid").and_then(Value::as_str) {
        Some(kid) => keys.iter().filter(|k| k["kid"] == kid).collect(),
        None => keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(format!("no key with kid {}", header["kid"]));
    }
    for key in candidates {
        let ok = match (alg, key["kty"].as_str()) {
            ("RS256" | "PS256", Some("RSA")) => {
                let public = RsaPublicKeyComponents {
                    n: b64(&key["n"])?,
                    e: b64(&key["e"])?,
                };
                let scheme = if alg == "RS256" {
                    &RSA_PKCS1_2048_8192_SHA256
                } else {
                    &RSA_PSS_2048_8192_SHA256
                };
                public.verify(scheme, input.as_bytes(), &signature).is_ok()
            }
            ("ES256", Some("EC")) if key["crv"] == "P-256" => {
                let mut point = vec![4];
                point.extend(b64(&key["x"])?);
                point.extend(b64(&key["y"])?);
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(input.as_bytes(), &signature)
                    .is_ok()
            }
            _ => false,
        };
        if ok {
            return Ok(Verified { header, claims });
        }
    }
    Err(format!("no registered key verifies this {alg} signature"))
}

/// Verifies a compact JWS signed with HS256 and `secret` (`client_secret_jwt`).
pub fn verify_hs256(jws: &str, secret: &str) -> Result<Verified, String> {
    let (input, header, claims, signature) = split(jws)?;
    if header["alg"] != "HS256" {
        return Err(format!("alg {} is not HS256", header["alg"]));
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, input.as_bytes(), &signature)
        .map_err(|_| "the HS256 signature does not verify".to_owned())?;
    Ok(Verified { header, claims })
}

/// The signing input, header, claims and signature of a compact JWS.
fn split(jws: &str) -> Result<(String, Value, Value, Vec<u8>), String> {
    let parts: Vec<&str> = jws.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(format!("{} parts, not 3", parts.len()));
    };
    let json = |part: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    Ok((
        format!("{header}.{claims}"),
        json(header)?,
        json(claims)?,
        signature,
    ))
}

fn b64(member: &Value) -> Result<Vec<u8>, String> {
    let text = member.as_str().ok_or("a key member is not a string")?;
    URL_SAFE_NO_PAD.decode(text).map_err(|e| e.to_string())
}
