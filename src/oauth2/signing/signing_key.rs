//! `SigningKey`: a private key that signs JWT assertions, loaded from PEM or a
//! JWK, with the `kid` that tells the server which of its public keys to use.

use std::fmt;
use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::rsa::{KeyPairComponents, PublicKeyComponents};
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, RsaEncoding, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use rustls_pki_types::PrivateKeyDer;
use serde_json::{json, Value};

use super::jwk::{self, base64url, PrivateJwk};
use super::key_error::KeyError;
use super::pem_key;
use super::signing_algorithm::SigningAlgorithm;
use crate::redact::Redacted;

/// A private key that signs JWT assertions (`private_key_jwt`, the
/// JWT-bearer grant, Google service accounts) with RS256, PS256 or ES256.
///
/// Loaded from PEM (PKCS#8 `BEGIN PRIVATE KEY`, PKCS#1 `BEGIN RSA PRIVATE
/// KEY`, SEC1 `BEGIN EC PRIVATE KEY`) or from a private JWK; RSA keys have
/// 2048 to 4096 bits, EC keys are on P-256. A key is checked when loaded, by
/// signing once, so a broken key fails here rather than at the first token
/// request. Cheap to clone; `Debug` never shows the key.
///
/// The server needs the public half: [`public_jwk`](Self::public_jwk) is what
/// to register (in the client's `jwks`, or its JWKS URL), under the same `kid`.
///
/// ```
/// use tower_bearer::oauth2::{SigningAlgorithm, SigningKey};
///
/// # fn main() -> Result<(), tower_bearer::oauth2::KeyError> {
/// let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem").unwrap();
/// let key = SigningKey::from_pem(SigningAlgorithm::Ps256, &pem)?.with_kid("2026-11");
/// assert_eq!(key.algorithm(), SigningAlgorithm::Ps256);
/// assert_eq!(key.kid(), Some("2026-11"));
///
/// let public = key.public_jwk();
/// assert_eq!(public["kty"], "RSA");
/// assert_eq!(public["kid"], "2026-11");
/// assert!(public.get("d").is_none());
/// assert_eq!(
///     format!("{key:?}"),
///     r#"SigningKey { algorithm: PS256, kid: Some("2026-11"), x5t#S256: None, key: [redacted] }"#
/// );
///
/// // A private JWK names its own `alg` and `kid`.
/// let jwk = std::fs::read_to_string("tests/fixtures/keys/ec.jwk.json").unwrap();
/// let key = SigningKey::from_jwk(&jwk)?;
/// assert_eq!((key.algorithm(), key.kid()), (SigningAlgorithm::Es256, Some("ec-1")));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SigningKey {
    algorithm: SigningAlgorithm,
    kid: Option<Arc<str>>,
    /// `x5t` and `x5t#S256` of the key's certificate, if one was given.
    thumbprints: Option<Arc<Thumbprints>>,
    pair: Arc<Pair>,
}

/// The base64url SHA-1 (`x5t`) and SHA-256 (`x5t#S256`) thumbprints of a
/// certificate's DER (RFC 7515 §4.1.7, §4.1.8).
#[derive(Debug)]
struct Thumbprints {
    sha1: String,
    sha256: String,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl SigningKey {
    /// Loads the first private key in PEM `text`, to sign with `algorithm`.
    ///
    /// Fails with [`KeyError::Pem`] when the text holds no usable private key
    /// (a public key, a certificate, an encrypted key), with
    /// [`KeyError::WrongKeyType`] when the key does not fit the algorithm,
    /// and with [`KeyError::Rejected`] when `ring` refuses it (an RSA key
    /// under 2048 bits).
    pub fn from_pem(algorithm: SigningAlgorithm, text: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        let der = pem_key::parse(text.as_ref())?;
        let pair = match (&der, algorithm) {
            (PrivateKeyDer::Pkcs8(pkcs8), SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256) => {
                let der = pkcs8.secret_pkcs8_der();
                RsaKeyPair::from_pkcs8(der)
                    .map(Pair::Rsa)
                    .map_err(|e| rejected(e, algorithm, der))?
            }
            (PrivateKeyDer::Pkcs1(pkcs1), SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256) => {
                RsaKeyPair::from_der(pkcs1.secret_pkcs1_der())
                    .map(Pair::Rsa)
                    .map_err(|e| KeyError::Rejected(e.to_string()))?
            }
            (PrivateKeyDer::Pkcs8(pkcs8), SigningAlgorithm::Es256) => {
                let der = pkcs8.secret_pkcs8_der();
                EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map(Pair::Ec)
                .map_err(|e| rejected(e, algorithm, der))?
            }
            (PrivateKeyDer::Pkcs1(_), SigningAlgorithm::Es256) => {
                return Err(KeyError::WrongKeyType {
                    algorithm: algorithm.as_str(),
                    found: "RSA",
                })
            }
            _ => return Err(KeyError::Pem("an unknown kind of private key")),
        };
        Self::checked(algorithm, None, pair)
    }

    /// A key from PKCS#8 DER that this crate generated (a DPoP key made on
    /// the spot), to sign with `algorithm`.
    pub(crate) fn from_pkcs8_der(
        algorithm: SigningAlgorithm,
        der: &[u8],
    ) -> Result<Self, KeyError> {
        let pair = match algorithm {
            SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => {
                RsaKeyPair::from_pkcs8(der).map(Pair::Rsa)
            }
            SigningAlgorithm::Es256 => EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &SystemRandom::new(),
            )
            .map(Pair::Ec),
        }
        .map_err(|e| rejected(e, algorithm, der))?;
        Self::checked(algorithm, None, pair)
    }

    /// Loads a private JWK (RFC 7517): an RSA key with its CRT members
    /// (`n`, `e`, `d`, `p`, `q`, `dp`, `dq`, `qi`) or a P-256 key (`x`, `y`,
    /// `d`). Its `alg`, if any, must be RS256 or PS256 for RSA and ES256 for
    /// EC, and is used; without one, RSA keys sign with RS256. Its `kid`, if
    /// any, is kept.
    ///
    /// Fails with [`KeyError::Jwk`] for a JWK that cannot sign (a public key,
    /// a JWK Set, a symmetric key), said why without showing a value.
    pub fn from_jwk(text: &str) -> Result<Self, KeyError> {
        let parsed = jwk::parse(text)?;
        let pair = match &parsed.key {
            PrivateJwk::Rsa {
                n,
                e,
                d,
                p,
                q,
                dp,
                dq,
                qi,
            } => RsaKeyPair::from_components(&KeyPairComponents {
                public_key: PublicKeyComponents { n, e },
                d,
                p,
                q,
                dP: dp,
                dQ: dq,
                qInv: qi,
            })
            .map(Pair::Rsa),
            PrivateJwk::P256 { d, point } => EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                d,
                point,
                &SystemRandom::new(),
            )
            .map(Pair::Ec),
        }
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Self::checked(parsed.algorithm, parsed.kid, pair)
    }

    /// Sets the `kid` (key id) sent in each assertion's header, replacing a
    /// JWK's own: the id under which the server knows the public key.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(Arc::from(kid.into()));
        self
    }

    /// Names the key's X.509 certificate (PEM) in each assertion's header
    /// by its thumbprints, `x5t` (SHA-1) and `x5t#S256` (SHA-256): how
    /// Microsoft Entra ID, which registers certificates rather than keys,
    /// finds the key. The certificate must be the key's; that is not checked
    /// here, and the server refuses a mismatch as `invalid_client`.
    ///
    /// Fails with [`KeyError::Pem`] if the text holds no certificate.
    ///
    /// ```
    /// use tower_bearer::oauth2::{SigningAlgorithm, SigningKey};
    ///
    /// # fn main() -> Result<(), tower_bearer::oauth2::KeyError> {
    /// let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem").unwrap();
    /// let cert = std::fs::read_to_string("tests/fixtures/keys/rsa.cert.pem").unwrap();
    /// let key = SigningKey::from_pem(SigningAlgorithm::Ps256, &pem)?.with_certificate(&cert)?;
    /// assert_eq!(key.x5t_sha256(), Some("9BiZ1cjlDr_8qUucsSahJmAYccpKEw30j1PMBBWY73c"));
    /// # Ok(()) }
    /// ```
    pub fn with_certificate(mut self, pem: impl AsRef<[u8]>) -> Result<Self, KeyError> {
        use rustls_pki_types::pem::PemObject as _;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_ref())
            .map_err(|_| KeyError::Pem("no `-----BEGIN CERTIFICATE-----` section"))?;
        let digest = |algorithm| base64url(ring::digest::digest(algorithm, &der).as_ref());
        self.thumbprints = Some(Arc::new(Thumbprints {
            sha1: digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
            sha256: digest(&ring::digest::SHA256),
        }));
        Ok(self)
    }

    /// The certificate's SHA-256 thumbprint (`x5t#S256`), if one was given.
    pub fn x5t_sha256(&self) -> Option<&str> {
        self.thumbprints.as_ref().map(|t| t.sha256.as_str())
    }

    /// The JWS header of an assertion this key signs: `alg`, `typ`, and
    /// `kid`, `x5t` and `x5t#S256` when known.
    pub(crate) fn header(&self) -> Value {
        let mut header = json!({"alg": self.algorithm.as_str(), "typ": "JWT"});
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid.as_ref());
        }
        if let Some(thumbprints) = &self.thumbprints {
            header["x5t"] = json!(thumbprints.sha1);
            header["x5t#S256"] = json!(thumbprints.sha256);
        }
        header
    }

    /// The algorithm it signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The key id, if set.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public half as a JWK (`kty`, `n` and `e` or `crv`, `x` and `y`,
    /// `alg`, `use: "sig"`, and `kid` if set): what to register with the
    /// identity provider, in a JWK Set (`{"keys": [...]}`).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = Value::Object(
            self.public_members()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), Value::String(value)))
                .collect(),
        );
        jwk["alg"] = json!(self.algorithm.as_str());
        jwk["use"] = json!("sig");
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid.as_ref());
        }
        jwk
    }

    /// The members of the public key that RFC 7638 §3.2 requires, in its
    /// lexicographic order (`e`, `kty`, `n` for RSA; `crv`, `kty`, `x`, `y`
    /// for EC): what a JWK thumbprint hashes, and all a DPoP proof's `jwk`
    /// header needs.
    pub(crate) fn public_members(&self) -> Vec<(&'static str, String)> {
        match &*self.pair {
            Pair::Rsa(pair) => {
                let public = PublicKeyComponents::<Vec<u8>>::from(pair.public());
                vec![
                    ("e", base64url(&public.e)),
                    ("kty", "RSA".to_owned()),
                    ("n", base64url(&public.n)),
                ]
            }
            Pair::Ec(pair) => {
                // Uncompressed point: 04 || x || y.
                let point = pair.public_key().as_ref();
                vec![
                    ("crv", "P-256".to_owned()),
                    ("kty", "EC".to_owned()),
                    ("x", base64url(&point[1..33])),
                    ("y", base64url(&point[33..65])),
                ]
            }
        }
    }

    /// Signs `message` (a JWS signing input) with the key's algorithm.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &*self.pair {
            Pair::Rsa(pair) => {
                let padding: &'static dyn RsaEncoding = match self.algorithm {
                    SigningAlgorithm::Ps256 => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut signature)
                    .map_err(|_| KeyError::Signing)?;
                Ok(signature)
            }
            Pair::Ec(pair) => pair
                .sign(&rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
        }
    }

    /// The key, after one signature: `ring` checks some RSA components only
    /// when it signs (and checks each signature it makes), so an inconsistent
    /// key is found here, not at the first token request.
    fn checked(
        algorithm: SigningAlgorithm,
        kid: Option<String>,
        pair: Pair,
    ) -> Result<Self, KeyError> {
        let key = Self {
            algorithm,
            kid: kid.map(Arc::from),
            thumbprints: None,
            pair: Arc::new(pair),
        };
        key.sign(b"tower-bearer key check")
            .map_err(|_| KeyError::Rejected("the key's components do not fit together".into()))?;
        Ok(key)
    }
}

/// `ring`'s refusal of a PKCS#8 key, told as the key type that does not fit
/// the algorithm when that is why.
fn rejected(err: ring::error::KeyRejected, algorithm: SigningAlgorithm, der: &[u8]) -> KeyError {
    let found = pem_key::key_type(der);
    let fits = match algorithm {
        SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => found == "RSA",
        SigningAlgorithm::Es256 => found == "EC P-256",
    };
    if fits || found == "unknown" {
        KeyError::Rejected(err.to_string())
    } else {
        KeyError::WrongKeyType {
            algorithm: algorithm.as_str(),
            found,
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &format_args!("{}", self.algorithm))
            .field("kid", &self.kid)
            .field("x5t#S256", &self.x5t_sha256())
            .field("key", &Redacted)
            .finish()
    }
}
