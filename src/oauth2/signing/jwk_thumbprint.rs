//! JWK thumbprints (RFC 7638): the name by which a DPoP-bound token
//! (`cnf.jkt`) and an authorization request (`dpop_jkt`) refer to a public key.

use super::jwk::base64url;

/// A public key as the members RFC 7638 §3.2 requires, in lexicographic
/// order, written as the canonical JSON object that §3 hashes. The same text
/// is the `jwk` header of every DPoP proof, so the key a server reads from a
/// proof is exactly the key the thumbprint names.
#[derive(Debug, Clone)]
pub(crate) struct PublicJwk {
    json: String,
}

impl PublicJwk {
    /// `members` must be the required members only, already in lexicographic
    /// order of their names (as [`SigningKey::public_members`](super::signing_key::SigningKey)
    /// gives them); their values are base64url or fixed names, which JSON
    /// writes unescaped, but they are escaped all the same.
    pub(crate) fn from_members(members: &[(&str, String)]) -> Self {
        debug_assert!(members.windows(2).all(|pair| pair[0].0 < pair[1].0));
        let mut json = String::from("{");
        for (i, (name, value)) in members.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&serde_json::Value::from(*name).to_string());
            json.push(':');
            json.push_str(&serde_json::Value::from(value.as_str()).to_string());
        }
        json.push('}');
        Self { json }
    }

    /// The canonical JSON object (no whitespace, members in order).
    pub(crate) fn json(&self) -> &str {
        &self.json
    }

    /// The RFC 7638 thumbprint: base64url of the SHA-256 of the canonical JSON.
    pub(crate) fn thumbprint(&self) -> String {
        base64url(ring::digest::digest(&ring::digest::SHA256, self.json.as_bytes()).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1: the example RSA key (RFC 7517 Appendix A.1) and its
    /// published thumbprint.
    #[test]
    fn rfc_7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let jwk = PublicJwk::from_members(&[
            ("e", "AQAB".to_owned()),
            ("kty", "RSA".to_owned()),
            ("n", n.to_owned()),
        ]);
        // §3.1 gives the hashed text too (without line breaks).
        assert_eq!(
            jwk.json(),
            format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#)
        );
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
