//! `JwtAssertion`: signed JWTs made afresh for each token request (RFC 7523),
//! as client authentication or as an authorization grant.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Map, Value};

use crate::oauth2::signing::jwk::base64url;
use crate::oauth2::signing::key_error::KeyError;
use crate::oauth2::signing::signing_key::SigningKey;
use crate::oauth2::signing::wall_clock::WallClock;
use crate::oauth2::BuildError;
use crate::redact::Redacted;
use crate::secret::Secret;

/// How long an assertion is valid unless set otherwise: short, so that an
/// intercepted one is soon useless and servers keep its `jti` (to refuse a
/// replay) briefly; long enough for a modest clock skew, which servers
/// tolerate on top (oidc-provider 15 s, Okta and Entra ID 5 minutes).
pub(crate) const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// Random bytes in each `jti`: 192 bits, unguessable and never repeated.
const JTI_BYTES: usize = 24;

/// The claims an assertion sets itself, for every signature.
const REGISTERED_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"];

/// What signs: a private key, or the client secret (`client_secret_jwt`).
#[derive(Clone)]
pub(crate) enum Signer {
    Key(SigningKey),
    /// HS256 with the client secret.
    ClientSecret(hmac::Key),
}

/// A template for signed JWT assertions (RFC 7523 §3): each
/// [`sign`](Self::sign) makes a new one, with its own `jti` and with `iat`,
/// `nbf` and `exp` read from the clock then, so no two are alike and none
/// outlives its short [lifetime](JwtAssertionBuilder::lifetime).
///
/// Used as the JWT-bearer authorization grant ([`JwtBearer`](crate::oauth2::JwtBearer))
/// or by hand for a custom exchange; `private_key_jwt` client authentication
/// makes its own from the token endpoint's settings
/// ([`TokenEndpointBuilder::private_key_jwt`](crate::oauth2::TokenEndpointBuilder::private_key_jwt)).
///
/// Cheap to clone; `Debug` shows the claims' names, never the key or a signature.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use base64::Engine as _;
/// use tower_bearer::oauth2::{JwtAssertion, SigningAlgorithm, SigningKey, WallClock};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem")?;
/// let key = SigningKey::from_pem(SigningAlgorithm::Rs256, &pem)?.with_kid("k1");
/// let assertion = JwtAssertion::builder(key)
///     .issuer("my-service")
///     .subject("alice@example.com")
///     .audience("https://auth.example.com/oauth2/token")
///     .claim("scope", "read write")
///     .lifetime(Duration::from_secs(300))
///     .clock(WallClock::from_fn(|| UNIX_EPOCH + Duration::from_secs(1_800_000_000)))
///     .build()?;
///
/// let (one, two) = (assertion.sign()?, assertion.sign()?);
/// assert_ne!(one, two, "a new jti each time");
/// let claims = one.expose().split('.').nth(1).unwrap();
/// let claims: serde_json::Value =
///     serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims)?)?;
/// assert_eq!(claims["iss"], "my-service");
/// assert_eq!(claims["sub"], "alice@example.com");
/// assert_eq!(claims["scope"], "read write");
/// assert_eq!(claims["iat"], 1_800_000_000);
/// assert_eq!(claims["exp"], 1_800_000_300);
/// assert!(!format!("{assertion:?}").contains("BEGIN"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwtAssertion {
    inner: Arc<Template>,
}

struct Template {
    signer: Signer,
    issuer: String,
    subject: Option<String>,
    audience: String,
    lifetime: Duration,
    claims: Map<String, Value>,
    clock: WallClock,
}

impl JwtAssertion {
    /// Starts a template whose assertions `key` signs.
    pub fn builder(key: SigningKey) -> JwtAssertionBuilder {
        JwtAssertionBuilder {
            key,
            issuer: None,
            subject: None,
            audience: None,
            lifetime: DEFAULT_ASSERTION_LIFETIME,
            claims: Map::new(),
            clock: WallClock::system(),
            reserved_claim: false,
        }
    }

    /// The client authentication assertion of RFC 7523 §2.2 and OpenID
    /// Connect Core §9: `iss` and `sub` are the client id.
    pub(crate) fn for_client(
        signer: Signer,
        client_id: &str,
        audience: String,
        lifetime: Duration,
        clock: WallClock,
    ) -> Self {
        Self {
            inner: Arc::new(Template {
                signer,
                issuer: client_id.to_owned(),
                subject: Some(client_id.to_owned()),
                audience,
                lifetime,
                claims: Map::new(),
                clock,
            }),
        }
    }

    /// A new signed assertion (compact JWS), with a new `jti` and times read
    /// from the clock now.
    ///
    /// Fails only if the operating system's random number generator does
    /// not answer ([`KeyError::Signing`]).
    pub fn sign(&self) -> Result<Secret, KeyError> {
        let template = &*self.inner;
        let mut jti = [0u8; JTI_BYTES];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| KeyError::Signing)?;
        let claims = template.claims(template.clock.unix_seconds(), &base64url(&jti));
        let header = match &template.signer {
            Signer::Key(key) => key.header(),
            Signer::ClientSecret(_) => json!({"alg": "HS256", "typ": "JWT"}),
        };
        let mut jws = base64url(header.to_string().as_bytes());
        jws.push('.');
        jws.push_str(&base64url(Value::Object(claims).to_string().as_bytes()));
        let signature = match &template.signer {
            Signer::Key(key) => key.sign(jws.as_bytes())?,
            Signer::ClientSecret(secret) => hmac::sign(secret, jws.as_bytes()).as_ref().to_vec(),
        };
        jws.push('.');
        jws.push_str(&base64url(&signature));
        Ok(Secret::new(jws))
    }

    /// The audience (`aud`).
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }
}

impl Template {
    /// The claims of an assertion signed at `now` (seconds since the epoch).
    fn claims(&self, now: u64, jti: &str) -> Map<String, Value> {
        let mut claims = self.claims.clone();
        claims.insert("iss".into(), json!(self.issuer));
        if let Some(subject) = &self.subject {
            claims.insert("sub".into(), json!(subject));
        }
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("iat".into(), json!(now));
        // Entra ID requires `nbf`; a server whose clock is behind ours by
        // less than its leeway accepts it.
        claims.insert("nbf".into(), json!(now));
        claims.insert("exp".into(), json!(expiry(now, self.lifetime)));
        claims.insert("jti".into(), json!(jti));
        claims
    }
}

/// `exp` for an assertion made at `now` that lives `lifetime`: whole seconds,
/// rounded up, at least one second after `now`.
fn expiry(now: u64, lifetime: Duration) -> u64 {
    let seconds = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
    now.saturating_add(seconds.max(1))
}

impl fmt::Debug for JwtAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let template = &*self.inner;
        let mut debug = f.debug_struct("JwtAssertion");
        match &template.signer {
            Signer::Key(key) => debug.field("key", key),
            Signer::ClientSecret(_) => debug.field("client_secret", &Redacted),
        };
        debug
            .field("iss", &template.issuer)
            .field("sub", &template.subject)
            .field("aud", &template.audience)
            .field("lifetime", &template.lifetime)
            .field("claims", &template.claims.keys().collect::<Vec<_>>())
            .field("clock", &template.clock)
            .finish()
    }
}

/// Builds a [`JwtAssertion`]; see [`JwtAssertion::builder`].
///
/// ```
/// use tower_bearer::oauth2::{BuildError, JwtAssertion, SigningAlgorithm, SigningKey};
///
/// let pem = std::fs::read_to_string("tests/fixtures/keys/ec.pkcs8.pem").unwrap();
/// let key = SigningKey::from_pem(SigningAlgorithm::Es256, &pem).unwrap();
/// // `iss` and `aud` are required; `exp` is the lifetime's business.
/// let err = JwtAssertion::builder(key.clone()).issuer("me").build().unwrap_err();
/// assert_eq!(err, BuildError::InvalidAssertion("no audience (`aud`)"));
/// let err = JwtAssertion::builder(key)
///     .issuer("me")
///     .audience("https://auth.example.com/token")
///     .claim("exp", 1)
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, BuildError::InvalidAssertion(_)));
/// ```
#[must_use]
pub struct JwtAssertionBuilder {
    key: SigningKey,
    issuer: Option<String>,
    subject: Option<String>,
    audience: Option<String>,
    lifetime: Duration,
    claims: Map<String, Value>,
    clock: WallClock,
    reserved_claim: bool,
}

impl JwtAssertionBuilder {
    /// The issuer (`iss`): who made the assertion, such as a service
    /// account's email. Required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The subject (`sub`): whom the token is for. RFC 7523 requires it;
    /// Google leaves it out unless a service account acts for a user.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The audience (`aud`): the authorization server, usually its token
    /// endpoint URL or its issuer identifier. Required.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How long each assertion is valid (`exp` − `iat`, whole seconds rounded
    /// up). Defaults to 60 seconds: short, so that an intercepted assertion
    /// is soon useless, long enough for a modest clock skew. Google allows
    /// at most an hour.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Adds a claim (Google's `scope`, a `tenant`). The registered claims
    /// (`iss`, `sub`, `aud`, `iat`, `nbf`, `exp`, `jti`) are the builder's
    /// own: setting one here makes [`build`](Self::build) fail.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        self.reserved_claim |= REGISTERED_CLAIMS.contains(&name.as_str());
        self.claims.insert(name, value.into());
        self
    }

    /// The clock `iat`, `nbf` and `exp` are read from. Defaults to the
    /// system's.
    pub fn clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the template and builds it.
    ///
    /// Fails with [`BuildError::InvalidAssertion`] without an issuer or an
    /// audience, with a zero lifetime, or with a registered claim set through
    /// [`claim`](Self::claim).
    pub fn build(self) -> Result<JwtAssertion, BuildError> {
        let issuer = self
            .issuer
            .filter(|i| !i.is_empty())
            .ok_or(BuildError::InvalidAssertion("no issuer (`iss`)"))?;
        let audience = self
            .audience
            .filter(|a| !a.is_empty())
            .ok_or(BuildError::InvalidAssertion("no audience (`aud`)"))?;
        if self.lifetime.is_zero() {
            return Err(BuildError::InvalidAssertion("a lifetime of zero"));
        }
        if self.reserved_claim {
            return Err(BuildError::InvalidAssertion(
                "`iss`, `sub`, `aud`, `iat`, `nbf`, `exp` and `jti` are set by the builder, not by claim()",
            ));
        }
        Ok(JwtAssertion {
            inner: Arc::new(Template {
                signer: Signer::Key(self.key),
                issuer,
                subject: self.subject,
                audience,
                lifetime: self.lifetime,
                claims: self.claims,
                clock: self.clock,
            }),
        })
    }
}

impl fmt::Debug for JwtAssertionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAssertionBuilder")
            .field("key", &self.key)
            .field("iss", &self.issuer)
            .field("sub", &self.subject)
            .field("aud", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_whole_seconds_rounded_up_and_never_now() {
        for (now, lifetime, expected) in [
            (100, Duration::from_secs(60), 160),
            (100, Duration::from_millis(60_001), 161),
            (100, Duration::from_millis(1), 101),
            (100, Duration::ZERO, 101),
            (u64::MAX - 1, Duration::from_secs(60), u64::MAX),
        ] {
            assert_eq!(expiry(now, lifetime), expected, "{now} {lifetime:?}");
        }
    }

    #[test]
    fn registered_claims_are_the_templates_own() {
        let template = Template {
            signer: Signer::ClientSecret(hmac::Key::new(hmac::HMAC_SHA256, b"k")),
            issuer: "client".into(),
            subject: None,
            audience: "https://as.example/token".into(),
            lifetime: Duration::from_secs(60),
            claims: Map::from_iter([("scope".to_owned(), json!("a b"))]),
            clock: WallClock::system(),
        };
        let claims = Value::Object(template.claims(1_000, "j1"));
        assert_eq!(
            claims,
            json!({
                "iss": "client", "aud": "https://as.example/token", "scope": "a b",
                "iat": 1_000, "nbf": 1_000, "exp": 1_060, "jti": "j1",
            })
        );
    }
}
