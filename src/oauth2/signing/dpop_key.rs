//! `DpopKey`: a key pair in memory that makes DPoP proofs (RFC 9449 §4) and
//! keeps the nonces servers hand out: the crate's own [`DpopProver`].

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Method};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rustls_pki_types::PrivateKeyDer;
use serde_json::{Map, Value};

use super::jwk::base64url;
use super::jwk_thumbprint::PublicJwk;
use super::key_error::KeyError;
use super::pem_key;
use super::signing_algorithm::SigningAlgorithm;
use super::signing_key::SigningKey;
use super::wall_clock::WallClock;
use crate::dpop::{htu, origin_of, DpopProver};
use crate::error::TokenError;
use crate::oauth2::endpoint::dpop_nonces::DpopNonces;
use crate::redact::Redacted;

/// Random bytes in each proof's `jti`: 128 bits from the operating system's
/// CSPRNG, so that no two proofs a key ever makes share one (RFC 9449 §11.1
/// lets servers refuse a `jti` they have seen).
const JTI_BYTES: usize = 16;

/// A DPoP key (RFC 9449): a key pair that makes a fresh proof for every
/// request and remembers the nonce each server asked for.
///
/// Made from a [`SigningKey`] (ES256, RS256 or PS256), loaded from PEM or a
/// JWK, or generated (ES256, or EdDSA with Ed25519). A generated key lives
/// only as long as the process: a refresh token bound to it (a public
/// client's, RFC 9449 §5) is useless after a restart, so a client that keeps
/// its refresh token keeps its key too, in PEM (`openssl genpkey -algorithm
/// ec -pkeyopt ec_paramgen_curve:P-256`, or `-algorithm ed25519`).
///
/// Give it to the token endpoint ([`TokenEndpointBuilder::dpop`](crate::oauth2::TokenEndpointBuilder::dpop)):
/// token requests then carry proofs, and the tokens that come back
/// `token_type: DPoP` carry the key, which the front ends use for every
/// request's proof.
///
/// Each proof is a JWS whose header is `{"typ":"dpop+jwt","alg":…,"jwk":…}`
/// (the public key's required members only) and whose claims are a new
/// `jti`, `htm`, `htu` (the URL without query and fragment), `iat` (from the
/// [clock](Self::with_clock)), `ath` (the base64url SHA-256 of the access
/// token, when one is given) and the `nonce` last learned from the URL's
/// origin, if any. Cheap to clone; clones share their nonces. `Debug` shows
/// the algorithm and the thumbprint, never the key, a proof or a nonce.
///
/// ```
/// use http::Method;
/// use tower_bearer::dpop::DpopProver;
/// use tower_bearer::oauth2::DpopKey;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = DpopKey::generate_es256()?;
/// assert_eq!(key.algorithm(), "ES256");
/// assert_eq!(key.thumbprint().len(), 43); // base64url SHA-256
///
/// // A server handed out a nonce: proofs for its origin carry it from now on.
/// key.learn_nonce("https://api.example/v1/items", "eyJ7S_zG.eyJH0-Z");
/// let proof = key.proof(&Method::GET, "https://api.example/v1/items?page=2", Some("t0k3n"))?;
/// assert!(proof.is_sensitive());
/// let proof = proof.to_str()?;
/// assert_eq!(proof.split('.').count(), 3); // header.claims.signature
///
/// assert!(!format!("{key:?}").contains("eyJ7S_zG"));
/// assert!(!format!("{key:?}").contains(proof));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<Inner>,
    clock: WallClock,
}

struct Inner {
    signer: Signer,
    /// The JWS `alg`.
    algorithm: &'static str,
    /// The protected header, base64url-encoded once: it is the same for
    /// every proof.
    header: String,
    public_jwk: PublicJwk,
    thumbprint: String,
    nonces: DpopNonces,
}

/// What signs the proofs.
enum Signer {
    /// ES256, RS256 or PS256: the signer `private_key_jwt` uses.
    Key(SigningKey),
    /// EdDSA with Ed25519.
    Ed25519(Ed25519KeyPair),
}

impl DpopKey {
    /// A DPoP key that signs with `key` (ES256, RS256 or PS256). Its `kid`
    /// and certificate are not used: a proof names its key by the key itself.
    pub fn new(key: SigningKey) -> Self {
        let members = key.public_members();
        let algorithm = key.algorithm().as_str();
        Self::with_signer(Signer::Key(key), algorithm, &members)
    }

    /// Loads the first private key in PEM `text` to sign with `algorithm`;
    /// see [`SigningKey::from_pem`], whose errors it returns.
    pub fn from_pem(algorithm: SigningAlgorithm, text: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        SigningKey::from_pem(algorithm, text).map(Self::new)
    }

    /// Loads an Ed25519 private key from PEM `text` (PKCS#8 `BEGIN PRIVATE
    /// KEY`, as `openssl genpkey -algorithm ed25519` writes it), to sign
    /// with EdDSA.
    ///
    /// Fails with [`KeyError::Pem`] without a private key, with
    /// [`KeyError::WrongKeyType`] for another kind of key.
    pub fn from_ed25519_pem(text: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        let der = pem_key::parse(text.as_ref())?;
        let PrivateKeyDer::Pkcs8(pkcs8) = &der else {
            return Err(KeyError::WrongKeyType {
                algorithm: "EdDSA",
                found: "RSA or EC",
            });
        };
        let der = pkcs8.secret_pkcs8_der();
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(
                |e| match pem_key::key_type(der) {
                    "Ed25519" | "unknown" => KeyError::Rejected(e.to_string()),
                    found => KeyError::WrongKeyType {
                        algorithm: "EdDSA",
                        found,
                    },
                },
            )?;
        Ok(Self::ed25519(pair))
    }

    /// Loads a private JWK: RSA (RS256 unless its `alg` says PS256) or EC
    /// P-256 (ES256); see [`SigningKey::from_jwk`], whose errors it returns.
    ///
    /// A symmetric key (`kty` `oct`, or an `alg` of HS256, HS384 or HS512)
    /// is refused with [`KeyError::Symmetric`]: a proof carries the key that
    /// verifies it, which must be public.
    ///
    /// ```
    /// use tower_bearer::oauth2::{DpopKey, KeyError};
    ///
    /// let err = DpopKey::from_jwk(r#"{"kty":"oct","alg":"HS256","k":"c2VjcmV0"}"#).unwrap_err();
    /// assert!(matches!(err, KeyError::Symmetric));
    /// assert!(!err.to_string().contains("c2VjcmV0"));
    /// ```
    pub fn from_jwk(text: &str) -> Result<Self, KeyError> {
        if let Ok(Value::Object(jwk)) = serde_json::from_str::<Value>(text) {
            let symmetric_alg = jwk
                .get("alg")
                .and_then(Value::as_str)
                .is_some_and(|alg| alg.starts_with("HS"));
            if jwk.get("kty").and_then(Value::as_str) == Some("oct") || symmetric_alg {
                return Err(KeyError::Symmetric);
            }
        }
        SigningKey::from_jwk(text).map(Self::new)
    }

    /// A new P-256 key pair, from the operating system's CSPRNG, signing
    /// with ES256: what servers accept most widely (oidc-provider, Keycloak,
    /// Okta, Auth0 and Ping all do).
    ///
    /// Fails only if the random number generator does not answer
    /// ([`KeyError::Signing`]).
    pub fn generate_es256() -> Result<Self, KeyError> {
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .map_err(|_| KeyError::Signing)?;
        SigningKey::from_pkcs8_der(SigningAlgorithm::Es256, pkcs8.as_ref()).map(Self::new)
    }

    /// A new Ed25519 key pair, from the operating system's CSPRNG, signing
    /// with EdDSA: the cheapest proofs, for servers that list `EdDSA` in
    /// their `dpop_signing_alg_values_supported`.
    ///
    /// Fails only if the random number generator does not answer
    /// ([`KeyError::Signing`]).
    pub fn generate_ed25519() -> Result<Self, KeyError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Signing)?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self::ed25519(pair))
    }

    /// The clock proofs take `iat` from. Defaults to the system's. Clones
    /// made before keep their clock; all share their nonces.
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// The JWS algorithm of its proofs: `ES256`, `RS256`, `PS256` or `EdDSA`.
    pub fn algorithm(&self) -> &'static str {
        self.inner.algorithm
    }

    /// The public key as a JWK (its required members only, as proofs carry
    /// it): what a server that registers a client's DPoP key needs.
    pub fn public_jwk(&self) -> Value {
        serde_json::from_str(self.inner.public_jwk.json())
            .expect("the public JWK is JSON written by this crate")
    }

    fn ed25519(pair: Ed25519KeyPair) -> Self {
        let members = [
            ("crv", "Ed25519".to_owned()),
            ("kty", "OKP".to_owned()),
            ("x", base64url(pair.public_key().as_ref())),
        ];
        Self::with_signer(Signer::Ed25519(pair), "EdDSA", &members)
    }

    fn with_signer(signer: Signer, algorithm: &'static str, members: &[(&str, String)]) -> Self {
        let public_jwk = PublicJwk::from_members(members);
        let header = format!(
            r#"{{"typ":"dpop+jwt","alg":"{algorithm}","jwk":{}}}"#,
            public_jwk.json()
        );
        Self {
            inner: Arc::new(Inner {
                signer,
                algorithm,
                header: base64url(header.as_bytes()),
                thumbprint: public_jwk.thumbprint(),
                public_jwk,
                nonces: DpopNonces::default(),
            }),
            clock: WallClock::system(),
        }
    }

    /// The compact JWS of a proof for `method` on `url`.
    fn sign_proof(
        &self,
        method: &Method,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, KeyError> {
        let inner = &*self.inner;
        let mut jti = [0u8; JTI_BYTES];
        getrandom::fill(&mut jti).map_err(|_| KeyError::Signing)?;
        let mut claims = Map::new();
        claims.insert("jti".into(), Value::String(base64url(&jti)));
        claims.insert("htm".into(), Value::from(method.as_str()));
        claims.insert("htu".into(), Value::from(htu(url)));
        claims.insert("iat".into(), Value::from(self.clock.unix_seconds()));
        if let Some(token) = access_token {
            let hash = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            claims.insert("ath".into(), Value::String(base64url(hash.as_ref())));
        }
        if let Some(nonce) = inner.nonces.get(origin_of(url)) {
            claims.insert("nonce".into(), Value::from(&*nonce));
        }
        let claims = Value::Object(claims).to_string();
        let mut jws = String::with_capacity(inner.header.len() + 2 * claims.len() + 400);
        jws.push_str(&inner.header);
        jws.push('.');
        jws.push_str(&base64url(claims.as_bytes()));
        let signature = match &inner.signer {
            Signer::Key(key) => key.sign(jws.as_bytes())?,
            Signer::Ed25519(pair) => pair.sign(jws.as_bytes()).as_ref().to_vec(),
        };
        jws.push('.');
        jws.push_str(&base64url(&signature));
        Ok(jws)
    }
}

impl DpopProver for DpopKey {
    fn proof(
        &self,
        method: &Method,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<HeaderValue, TokenError> {
        let jws = self.sign_proof(method, url, access_token)?;
        // base64url and dots only: always a valid header value.
        let mut value = HeaderValue::try_from(jws).map_err(|_| KeyError::Signing)?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn learn_nonce(&self, url: &str, nonce: &str) {
        if !self.inner.nonces.learn(origin_of(url), nonce) {
            tracing::debug!(
                origin = %crate::redact::url(origin_of(url)),
                "ignored a DPoP-Nonce that is not a nonce (RFC 9449 §8.1)"
            );
        }
    }

    fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.inner.algorithm)
            .field("jkt", &self.inner.thumbprint)
            .field("key", &Redacted)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{Duration, UNIX_EPOCH};

    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    use ring::signature::{self, UnparsedPublicKey};

    use super::*;

    const RSA_PEM: &str = include_str!("../../../tests/fixtures/keys/rsa.pkcs8.pem");
    const EC_JWK: &str = include_str!("../../../tests/fixtures/keys/ec.jwk.json");
    const RSA_JWK: &str = include_str!("../../../tests/fixtures/keys/rsa.jwk.json");

    fn fixed_clock() -> WallClock {
        WallClock::from_fn(|| UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }

    fn decode(part: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(part).expect("base64url")
    }

    /// The header and claims of `proof`, after checking its signature with
    /// the public key in its own header, as a server does.
    fn verified(proof: &HeaderValue) -> (Value, Value) {
        let proof = proof.to_str().unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3, "{proof}");
        let header: Value = serde_json::from_slice(&decode(parts[0])).unwrap();
        let claims: Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        let message = format!("{}.{}", parts[0], parts[1]);
        let signature = decode(parts[2]);
        let jwk = &header["jwk"];
        let member = |name: &str| decode(jwk[name].as_str().unwrap());
        let checked = match header["alg"].as_str().unwrap() {
            "ES256" => {
                let mut point = vec![4];
                point.extend(member("x"));
                point.extend(member("y"));
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message.as_bytes(), &signature)
            }
            "EdDSA" => UnparsedPublicKey::new(&signature::ED25519, member("x"))
                .verify(message.as_bytes(), &signature),
            alg @ ("RS256" | "PS256") => {
                let params = if alg == "RS256" {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                signature::RsaPublicKeyComponents {
                    n: member("n"),
                    e: member("e"),
                }
                .verify(params, message.as_bytes(), &signature)
            }
            other => panic!("unexpected alg {other}"),
        };
        checked.expect("the proof's signature verifies with its own jwk");
        (header, claims)
    }

    fn keys() -> Vec<DpopKey> {
        vec![
            DpopKey::generate_es256().unwrap(),
            DpopKey::from_pem(SigningAlgorithm::Rs256, RSA_PEM).unwrap(),
            DpopKey::from_pem(SigningAlgorithm::Ps256, RSA_PEM).unwrap(),
            DpopKey::generate_ed25519().unwrap(),
        ]
    }

    #[test]
    fn proofs_are_signed_dpop_jwts_with_every_claim() {
        for key in keys() {
            let key = key.with_clock(fixed_clock());
            let proof = key
                .proof(
                    &Method::POST,
                    "https://api.example:8443/v1/things?page=2&x=%20#frag",
                    Some("t0k3n"),
                )
                .unwrap();
            assert!(proof.is_sensitive());
            let (header, claims) = verified(&proof);
            let alg = key.algorithm();
            assert_eq!(header["typ"], "dpop+jwt", "{alg}");
            assert_eq!(header["alg"], alg);
            assert_eq!(header.as_object().unwrap().len(), 3, "{header}");
            // The public key, its required members only: nothing private.
            let jwk = header["jwk"].as_object().unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(!jwk.contains_key(private), "{alg}: {private}");
            }
            assert_eq!(header["jwk"], key.public_jwk());
            assert_eq!(claims["htm"], "POST");
            assert_eq!(claims["htu"], "https://api.example:8443/v1/things");
            assert_eq!(claims["iat"], 1_800_000_000);
            // RFC 9449 §4.2: base64url SHA-256 of the token's ASCII.
            let ath = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, b"t0k3n"));
            assert_eq!(claims["ath"], ath.as_str());
            assert_eq!(decode(claims["jti"].as_str().unwrap()).len(), JTI_BYTES);
            assert!(claims.get("nonce").is_none());
            assert_eq!(claims.as_object().unwrap().len(), 5, "{claims}");
        }
    }

    /// RFC 9449 §7.1's example token and its `ath`.
    #[test]
    fn ath_matches_the_rfc_example() {
        let key = DpopKey::generate_es256().unwrap();
        let proof = key
            .proof(
                &Method::GET,
                "https://resource.example.org/protectedresource",
                Some("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            )
            .unwrap();
        let (_, claims) = verified(&proof);
        assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    }

    #[test]
    fn token_endpoint_proofs_have_no_ath() {
        let key = DpopKey::generate_es256().unwrap();
        let proof = key
            .proof(&Method::POST, "https://as.example/token", None)
            .unwrap();
        let (_, claims) = verified(&proof);
        assert!(claims.get("ath").is_none(), "{claims}");
    }

    #[test]
    fn jti_is_unique_across_10_000_proofs() {
        let key = DpopKey::generate_ed25519().unwrap();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let proof = key
                .sign_proof(&Method::GET, "https://api.example/x", Some("t"))
                .unwrap();
            let claims: Value =
                serde_json::from_slice(&decode(proof.split('.').nth(1).unwrap())).unwrap();
            assert!(seen.insert(claims["jti"].as_str().unwrap().to_owned()));
        }
    }

    #[test]
    fn each_origin_gets_its_own_nonce_and_clones_share_them() {
        let key = DpopKey::generate_es256().unwrap();
        let clone = key.clone();
        key.learn_nonce("https://as.example/token", "as-nonce");
        key.learn_nonce("https://api.example:8443/v1?q", "api-nonce");
        let nonce = |url: &str| {
            let (_, claims) = verified(&clone.proof(&Method::GET, url, Some("t")).unwrap());
            claims.get("nonce").map(|n| n.as_str().unwrap().to_owned())
        };
        assert_eq!(
            nonce("https://as.example/other").as_deref(),
            Some("as-nonce")
        );
        assert_eq!(
            nonce("https://api.example:8443/").as_deref(),
            Some("api-nonce")
        );
        assert_eq!(
            nonce("https://api.example/"),
            None,
            "another port, another origin"
        );
        assert_eq!(nonce("http://as.example/token"), None, "another scheme");
        // A value that is not a nonce is ignored; the origin keeps its own.
        key.learn_nonce("https://as.example/token", "not a \"nonce\"");
        assert_eq!(
            nonce("https://as.example/token").as_deref(),
            Some("as-nonce")
        );
        key.learn_nonce("https://as.example/token", "as-nonce-2");
        assert_eq!(
            nonce("https://as.example/token").as_deref(),
            Some("as-nonce-2")
        );
    }

    #[test]
    fn thumbprint_is_rfc_7638_of_the_proofs_jwk() {
        let key = DpopKey::from_jwk(RSA_JWK).unwrap();
        let jwk = key.public_jwk();
        let canonical = format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk["e"].as_str().unwrap(),
            jwk["n"].as_str().unwrap()
        );
        let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ));
        assert_eq!(key.thumbprint(), expected);
        // The same key, whichever way it is loaded, has the same thumbprint.
        let pem = DpopKey::from_pem(SigningAlgorithm::Ps256, RSA_PEM).unwrap();
        assert_eq!(pem.thumbprint(), key.thumbprint());
        let ec = DpopKey::from_jwk(EC_JWK).unwrap();
        assert_eq!(ec.algorithm(), "ES256");
        assert_ne!(ec.thumbprint(), key.thumbprint());
    }

    #[test]
    fn symmetric_keys_are_refused() {
        for jwk in [
            r#"{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}"#,
            r#"{"kty":"oct","alg":"HS256","k":"c2VjcmV0"}"#,
            r#"{"kty":"RSA","alg":"HS512","n":"AQAB","e":"AQAB"}"#,
        ] {
            let err = DpopKey::from_jwk(jwk).unwrap_err();
            assert!(matches!(err, KeyError::Symmetric), "{jwk}: {err}");
            assert!(err.to_string().contains("RFC 9449"), "{err}");
            assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
        }
        // An asymmetric `alg` name is still for SigningKey to judge.
        assert!(matches!(
            DpopKey::from_jwk(r#"{"kty":"EC","alg":"ES384"}"#),
            Err(KeyError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn ed25519_keys_load_from_pem() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let key = DpopKey::from_ed25519_pem(&pem).unwrap();
        assert_eq!(key.algorithm(), "EdDSA");
        assert_eq!(key.public_jwk()["crv"], "Ed25519");
        verified(&key.proof(&Method::GET, "https://a.example/", None).unwrap());
        assert!(matches!(
            DpopKey::from_ed25519_pem(RSA_PEM),
            Err(KeyError::WrongKeyType { found: "RSA", .. })
        ));
    }

    #[test]
    fn debug_shows_no_key_material_nonce_or_proof() {
        let rsa_jwk: Value = serde_json::from_str(RSA_JWK).unwrap();
        let ec_jwk: Value = serde_json::from_str(EC_JWK).unwrap();
        for key in [
            DpopKey::from_jwk(RSA_JWK).unwrap(),
            DpopKey::from_jwk(EC_JWK).unwrap(),
            DpopKey::generate_ed25519().unwrap(),
        ] {
            key.learn_nonce("https://as.example/", "n0nce-value");
            let proof = key
                .proof(&Method::GET, "https://as.example/", None)
                .unwrap();
            let shown = format!("{key:?} {key:#?}");
            assert!(shown.contains(key.thumbprint()), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
            for secret in [
                rsa_jwk["d"].as_str().unwrap(),
                rsa_jwk["p"].as_str().unwrap(),
                ec_jwk["d"].as_str().unwrap(),
                "n0nce-value",
                proof.to_str().unwrap(),
            ] {
                assert!(!shown.contains(secret), "{shown}");
            }
            // The proof header value is marked sensitive: `Debug` hides it too.
            assert_eq!(format!("{proof:?}"), "Sensitive");
        }
    }
}
