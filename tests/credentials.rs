//! Credentials beyond shared secrets (issue 15): signing keys, the
//! `private_key_jwt` and `client_secret_jwt` client authentication, the
//! JWT-bearer grant with Google service accounts, and token exchange.
//!
//! The loopback identity providers verify every signed assertion with the
//! public key (with `ring`, independently of the crate's signing code,
//! `loopback/jws.rs`) and check its claims and the request's parameters
//! exactly; the examples are compiled in here as they are, so what they show
//! is what is tested. Test keys: `tests/fixtures/keys`.

// Each example includes `examples/support`, and with it `loopback/`, so that
// it runs on its own; `support` (tests/support) includes `loopback/` too, so
// compiled in here together, that module is loaded once per example and once
// for the suite.
#![allow(clippy::duplicate_mod)]

#[path = "../examples/google_service_account.rs"]
#[allow(dead_code)]
mod google;
#[path = "../examples/private_key_jwt.rs"]
#[allow(dead_code)]
mod private_key_jwt;
mod support;
#[path = "../examples/token_exchange.rs"]
#[allow(dead_code)]
mod token_exchange;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Response, StatusCode};
use http_body_util::Full;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use support::loopback;
use tower_bearer::oauth2::{
    BuildError, ClientAuth, ClientCredentials, ErrorCode, ExchangeError, GoogleServiceAccount,
    HttpClient, JwtAssertion, JwtBearer, KeyError, OAuth2Error, SecurityToken, ServiceAccountKey,
    SigningAlgorithm, SigningKey, TokenEndpoint, TokenEndpointBuilder, TokenExchange,
    TokenFileError, TokenType, WallClock,
};
use tower_bearer::{from_fn, AccessToken, ErrorKind, TokenCache, TokenError, TokenSource};

const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A wall-clock instant the tests' clocks start at: 2027-01-15T08:00:00Z.
const T0: u64 = 1_800_000_000;

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys")
}

fn fixture(file: &str) -> String {
    std::fs::read_to_string(keys_dir().join(file)).unwrap()
}

/// The registered public keys of `rsa-1` and `ec-1`.
fn public_jwks() -> Value {
    serde_json::from_str(&fixture("public.jwks.json")).unwrap()
}

fn plain() -> HttpClient {
    HttpClient::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>(),
    )
}

fn oauth2_error(err: &TokenError) -> &OAuth2Error {
    err.cause()
        .and_then(|c| c.downcast_ref::<OAuth2Error>())
        .unwrap_or_else(|| panic!("not an OAuth2Error: {err:?}"))
}

/// A wall clock that starts at `T0` and follows tokio's (paused) clock.
fn paused_wall_clock() -> WallClock {
    let start = tokio::time::Instant::now();
    WallClock::from_fn(move || UNIX_EPOCH + Duration::from_secs(T0) + start.elapsed())
}

/// A wall clock stopped at the current second of the system's clock.
fn stopped_wall_clock() -> (WallClock, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (
        WallClock::from_fn(move || UNIX_EPOCH + Duration::from_secs(now)),
        now,
    )
}

/// The claims of a compact JWS, unverified.
fn claims_of(jws: &str) -> Value {
    let part = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A token endpoint on 127.0.0.1 that records every request's form fields
/// (in order) and `Authorization` header, and answers with `respond`.
struct Recorder {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[derive(Debug, Clone)]
struct Seen {
    fields: Vec<(String, String)>,
    authorization: Option<String>,
}

impl Seen {
    fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or_else(|| panic!("no {name} in {:?}", self.fields), |(_, v)| v)
    }

    fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }
}

impl Recorder {
    async fn start(
        respond: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let addr = loopback::serve_collected(move |parts, body| {
            let request = Seen {
                fields: loopback::form(&body).unwrap_or_default(),
                authorization: loopback::header(&parts, AUTHORIZATION.as_str()).map(str::to_owned),
            };
            let response = respond(&request);
            log.lock().unwrap().push(request);
            response
        })
        .await;
        Self {
            url: format!("http://{addr}/token"),
            seen,
        }
    }

    /// Answers every request with a new token `tok-N` that lives an hour.
    async fn minting() -> Self {
        let count = AtomicUsize::new(0);
        Self::start(move |_| {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            loopback::json_response(
                StatusCode::OK,
                json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600}),
            )
        })
        .await
    }

    fn endpoint(&self) -> TokenEndpointBuilder {
        TokenEndpoint::builder(&self.url).http_client(plain())
    }

    /// The endpoint for a public client: no client authentication.
    fn public_endpoint(&self) -> TokenEndpoint {
        self.endpoint()
            .client_auth(ClientAuth::None)
            .build()
            .unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------
// Keys

#[test]
fn keys_load_alike_from_pkcs8_pkcs1_sec1_and_jwk_and_their_signatures_verify() {
    let registered = public_jwks();
    let rsa = &registered["keys"][0];
    let ec = &registered["keys"][1];
    // (PEM algorithm, or None for a JWK; file; the JWS `alg`): a key's id
    // and registered public half follow from its family (the file's prefix).
    let cases = [
        (Some(SigningAlgorithm::Rs256), "rsa.pkcs8.pem", "RS256"),
        (Some(SigningAlgorithm::Rs256), "rsa.pkcs1.pem", "RS256"),
        (Some(SigningAlgorithm::Ps256), "rsa.pkcs8.pem", "PS256"),
        (None, "rsa.jwk.json", "RS256"),
        (Some(SigningAlgorithm::Es256), "ec.pkcs8.pem", "ES256"),
        (Some(SigningAlgorithm::Es256), "ec.sec1.pem", "ES256"),
        (None, "ec.jwk.json", "ES256"),
    ];
    let cases = cases.map(|(pem_algorithm, file, alg)| {
        let (kid, expected) = if file.starts_with("rsa") {
            ("rsa-1", rsa)
        } else {
            ("ec-1", ec)
        };
        let key = match pem_algorithm {
            Some(algorithm) => SigningKey::from_pem(algorithm, fixture(file))
                .unwrap()
                .with_kid(kid),
            None => SigningKey::from_jwk(&fixture(file)).unwrap(),
        };
        (key, expected, alg)
    });
    for (i, (key, expected, alg)) in cases.into_iter().enumerate() {
        assert_eq!(key.algorithm().as_str(), alg, "case {i}");
        // The public half, as it is registered.
        let public = key.public_jwk();
        for member in ["kty", "n", "e", "crv", "x", "y", "kid"] {
            assert_eq!(
                public.get(member),
                expected.get(member),
                "case {i}: {member}"
            );
        }
        assert_eq!(public["alg"], alg);
        assert_eq!(public["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                public.get(private).is_none(),
                "case {i}: {private} in {public}"
            );
        }
        // A signature the registered key verifies.
        let assertion = JwtAssertion::builder(key)
            .issuer("me")
            .audience("https://as.example/token")
            .build()
            .unwrap()
            .sign()
            .unwrap();
        let verified = loopback::verify(assertion.expose(), &registered)
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(verified.header["alg"], alg);
        assert_eq!(verified.header["typ"], "JWT");
    }
}

#[test]
fn unusable_keys_are_typed_errors_that_show_no_key_material() {
    use SigningAlgorithm::{Es256, Ps256, Rs256};
    let rsa_jwk: Value = serde_json::from_str(&fixture("rsa.jwk.json")).unwrap();
    // Another key's CRT coefficient: components that do not fit together.
    let mut inconsistent = rsa_jwk.clone();
    inconsistent["qi"] = rsa_jwk["dq"].clone();
    let mut public_only = rsa_jwk.clone();
    for member in ["d", "p", "q", "dp", "dq", "qi"] {
        public_only.as_object_mut().unwrap().remove(member);
    }
    let pkcs8 = fixture("rsa.pkcs8.pem");
    // A line of base64 less: valid PEM, broken DER.
    let truncated: String = pkcs8
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0w\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let certificate =
        "-----BEGIN CERTIFICATE-----\nMIIBvTBXBgkqhkiG9w0BBQ0w\n-----END CERTIFICATE-----\n";

    let from_pem = |alg, text: &str| SigningKey::from_pem(alg, text).unwrap_err();
    let cases: Vec<(KeyError, &str)> = vec![
        (from_pem(Rs256, &fixture("rsa-1024.pkcs8.pem")), "Rejected"),
        (
            from_pem(Es256, &fixture("ec-p384.pkcs8.pem")),
            "ES256 signs with EC P-256 keys, not EC P-384 keys",
        ),
        (
            from_pem(Es256, &pkcs8),
            "ES256 signs with EC P-256 keys, not RSA keys",
        ),
        (
            from_pem(Es256, &fixture("rsa.pkcs1.pem")),
            "ES256 signs with EC P-256 keys, not RSA keys",
        ),
        (
            from_pem(Rs256, &fixture("ec.pkcs8.pem")),
            "RS256 signs with RSA keys, not EC P-256 keys",
        ),
        (
            from_pem(Ps256, &fixture("ec.sec1.pem")),
            "PS256 signs with RSA keys, not EC P-256 keys",
        ),
        (from_pem(Rs256, &truncated), "Rejected"),
        (from_pem(Rs256, encrypted), "encrypted private key"),
        (from_pem(Rs256, certificate), "a certificate"),
        (
            from_pem(Rs256, &fixture("public.jwks.json")),
            "no `-----BEGIN PRIVATE KEY-----`",
        ),
        (
            SigningKey::from_jwk(&inconsistent.to_string()).unwrap_err(),
            "Rejected",
        ),
        (
            SigningKey::from_jwk(&public_only.to_string()).unwrap_err(),
            "a public key",
        ),
        (
            SigningKey::from_jwk(&fixture("public.jwks.json")).unwrap_err(),
            "a JWK Set",
        ),
        (SigningKey::from_jwk(&pkcs8).unwrap_err(), "not JSON"),
    ];
    let secrets = [
        rsa_jwk["d"].as_str().unwrap()[..24].to_owned(),
        rsa_jwk["qi"].as_str().unwrap()[..24].to_owned(),
        pkcs8.lines().nth(5).unwrap().to_owned(),
    ];
    for (err, expected) in cases {
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(expected), "expected `{expected}`: {shown}");
        assert_eq!(err.kind(), ErrorKind::Permanent, "{shown}");
        for secret in &secrets {
            assert!(
                !shown.contains(secret.as_str()),
                "key material shown: {shown}"
            );
        }
    }
}

/// Entra ID finds the key by its certificate's thumbprints: `x5t` and
/// `x5t#S256` in the header, as `openssl x509 -fingerprint` gives them.
#[test]
fn a_certificate_names_the_key_by_its_thumbprints() {
    const SHA1: &str = "F8:47:51:13:BF:4A:7A:60:CD:5B:D9:C6:4C:DB:0A:19:C6:BA:4F:0B";
    const SHA256: &str = "F4:18:99:D5:C8:E5:0E:BF:FC:A9:4B:9C:B1:26:A1:26:60:18:71:CA:4A:13:0D:F4:8F:53:CC:04:15:98:EF:77";
    let thumbprint = |hex: &str| {
        let bytes: Vec<u8> = hex
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        URL_SAFE_NO_PAD.encode(bytes)
    };
    let key = SigningKey::from_pem(SigningAlgorithm::Ps256, fixture("rsa.pkcs8.pem"))
        .unwrap()
        .with_certificate(fixture("rsa.cert.pem"))
        .unwrap();
    let assertion = JwtAssertion::builder(key)
        .issuer("app")
        .audience("https://login.example/token")
        .build()
        .unwrap()
        .sign()
        .unwrap();
    let mut jwks = public_jwks();
    jwks["keys"][0].as_object_mut().unwrap().remove("kid");
    let verified = loopback::verify(assertion.expose(), &jwks).unwrap();
    assert_eq!(
        verified.header,
        json!({"alg": "PS256", "typ": "JWT", "x5t": thumbprint(SHA1), "x5t#S256": thumbprint(SHA256)})
    );
    let err = SigningKey::from_jwk(&fixture("rsa.jwk.json"))
        .unwrap()
        .with_certificate(fixture("rsa.pkcs8.pem"))
        .unwrap_err();
    assert!(matches!(err, KeyError::Pem(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// private_key_jwt and client_secret_jwt

#[tokio::test]
async fn private_key_jwt_with_rs256_ps256_and_es256_each_verified_by_the_provider() {
    let keys = private_key_jwt::keys().unwrap();
    let provider = private_key_jwt::Fixture::start(&keys).await;
    let outcome = private_key_jwt::run(&provider, &keys).await.unwrap();
    assert_eq!(outcome.statuses, vec![[StatusCode::OK; 3]; 3]);
    assert_eq!(
        outcome.fetches,
        [2, 2, 2],
        "per key: one token for two calls, one more after the revocation"
    );
    let accepted: Vec<(&str, &str)> = outcome
        .accepted
        .iter()
        .map(|(alg, kid)| (alg.as_str(), kid.as_str()))
        .collect();
    assert_eq!(
        accepted,
        [
            ("RS256", "rsa-1"),
            ("RS256", "rsa-1"),
            ("PS256", "rsa-1"),
            ("PS256", "rsa-1"),
            ("ES256", "ec-1"),
            ("ES256", "ec-1"),
        ]
    );
}

#[tokio::test]
async fn private_key_jwt_claims_are_exact_and_the_audience_and_lifetime_configurable() {
    let keys = private_key_jwt::keys().unwrap();
    let provider = private_key_jwt::Fixture::start(&keys).await;
    let (clock, now) = stopped_wall_clock();
    let endpoint = |configure: fn(TokenEndpointBuilder) -> TokenEndpointBuilder| {
        let builder = TokenEndpoint::builder(provider.token_url())
            .client_id(private_key_jwt::CLIENT_ID)
            .private_key_jwt(keys[2].clone())
            .assertion_clock(clock.clone())
            .http_client(plain());
        configure(builder).build().unwrap()
    };
    let fetch = |endpoint| async move {
        ClientCredentials::new(endpoint)
            .scope(private_key_jwt::SCOPE)
            .fetch()
            .await
    };

    fetch(endpoint(|b| b)).await.unwrap();
    fetch(endpoint(|b| b.assertion_lifetime(Duration::from_secs(300))))
        .await
        .unwrap();
    let accepted = provider.accepted();
    assert_eq!(accepted.len(), 2);
    for (verified, lifetime) in accepted.iter().zip([60, 300]) {
        assert_eq!(
            verified.header,
            json!({"alg": "ES256", "kid": "ec-1", "typ": "JWT"})
        );
        let claims = verified.claims.as_object().unwrap();
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(jti).unwrap().len(),
            24,
            "192 random bits"
        );
        let mut expected = json!({
            "iss": private_key_jwt::CLIENT_ID,
            "sub": private_key_jwt::CLIENT_ID,
            "aud": provider.token_url(),
            "iat": now, "nbf": now, "exp": now + lifetime,
            "jti": jti,
        });
        assert_eq!(Value::Object(claims.clone()), expected.take());
    }

    // A provider that wants the token endpoint URL refuses another audience,
    // and an assertion valid for longer than it allows: typed, permanent.
    for configure in [
        (|b: TokenEndpointBuilder| b.assertion_audience("https://issuer.example"))
            as fn(TokenEndpointBuilder) -> TokenEndpointBuilder,
        |b| b.assertion_lifetime(Duration::from_secs(7200)),
    ] {
        let err = fetch(endpoint(configure)).await.unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        assert_eq!(oauth2_error(&err).code(), &ErrorCode::InvalidClient);
    }
    assert_eq!(provider.accepted().len(), 2);
}

#[tokio::test]
async fn a_key_the_provider_does_not_know_is_a_typed_invalid_client() {
    let keys = private_key_jwt::keys().unwrap();
    let provider = private_key_jwt::Fixture::start(&keys).await;
    // Signed with another key under a registered kid, and under no kid.
    let other =
        SigningKey::from_pem(SigningAlgorithm::Rs256, fixture("rsa-other.pkcs8.pem")).unwrap();
    for key in [other.clone().with_kid("rsa-1"), other] {
        let endpoint = TokenEndpoint::builder(provider.token_url())
            .client_id(private_key_jwt::CLIENT_ID)
            .private_key_jwt(key)
            .http_client(plain())
            .build()
            .unwrap();
        let err = ClientCredentials::new(endpoint)
            .scope(private_key_jwt::SCOPE)
            .fetch()
            .await
            .unwrap_err();
        assert!(err.is_permanent());
        let cause = oauth2_error(&err);
        assert_eq!(cause.code(), &ErrorCode::InvalidClient);
        assert_eq!(cause.status(), Some(StatusCode::UNAUTHORIZED));
    }
    assert!(provider.accepted().is_empty());
}

#[tokio::test]
async fn client_secret_jwt_signs_with_the_secret_and_never_sends_it() {
    const SECRET: &str = "cs-jwt-0123456789abcdefghijklmnopqrstuv";
    let recorder = Recorder::minting().await;
    let (clock, now) = stopped_wall_clock();
    let endpoint = recorder
        .endpoint()
        .client_id("cs-jwt-client")
        .client_secret(SECRET)
        .client_auth(ClientAuth::ClientSecretJwt)
        .assertion_clock(clock)
        .build()
        .unwrap();
    let source = ClientCredentials::new(endpoint).scope("a");
    source.fetch().await.unwrap();
    source.fetch().await.unwrap();

    let seen = recorder.seen();
    assert_eq!(seen.len(), 2);
    let mut jtis = Vec::new();
    for request in &seen {
        assert_eq!(request.authorization, None);
        assert_eq!(
            request.names(),
            [
                "grant_type",
                "scope",
                "client_id",
                "client_assertion_type",
                "client_assertion"
            ]
        );
        assert_eq!(request.field("client_assertion_type"), JWT_BEARER_ASSERTION);
        let verified = loopback::verify_hs256(request.field("client_assertion"), SECRET).unwrap();
        assert_eq!(verified.header, json!({"alg": "HS256", "typ": "JWT"}));
        assert_eq!(verified.claims["iss"], "cs-jwt-client");
        assert_eq!(verified.claims["sub"], "cs-jwt-client");
        assert_eq!(verified.claims["aud"], recorder.url.as_str());
        assert_eq!(verified.claims["iat"], now);
        assert_eq!(verified.claims["exp"], now + 60);
        jtis.push(verified.claims["jti"].clone());
        assert!(
            !request.fields.iter().any(|(_, v)| v.contains(SECRET)),
            "the secret was sent"
        );
    }
    assert_ne!(jtis[0], jtis[1]);
}

#[test]
fn jwt_client_authentication_without_what_it_needs_is_a_build_error() {
    let key = SigningKey::from_jwk(&fixture("ec.jwk.json")).unwrap();
    let base = || TokenEndpoint::builder("https://as.example/token").http_client(plain());
    let missing = |needs: &str, err: BuildError| match err {
        BuildError::MissingCredential { needs: n, .. } => assert!(n.contains(needs), "{n}"),
        other => panic!("{other:?}"),
    };
    missing(
        "client id",
        base().private_key_jwt(key.clone()).build().unwrap_err(),
    );
    missing(
        "signing key",
        base()
            .client_id("c")
            .client_auth(ClientAuth::PrivateKeyJwt)
            .build()
            .unwrap_err(),
    );
    for secret in [None, Some("31-bytes-is-one-byte-too-short")] {
        let mut builder = base()
            .client_id("c")
            .client_auth(ClientAuth::ClientSecretJwt);
        if let Some(secret) = secret {
            builder = builder.client_secret(secret);
        }
        missing("at least 32 bytes", builder.build().unwrap_err());
    }
    let err = base()
        .client_id("c")
        .private_key_jwt(key)
        .assertion_lifetime(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::InvalidAssertion("a lifetime of zero"));
    assert!(err.to_string().contains("lifetime"));
}

/// Every fetch carries a new assertion (a new `jti`, `iat` and `exp` read
/// then): the first, a refresh ahead of expiry started by a request, and a
/// replacement after a rejection. Time is tokio's paused clock, which the
/// assertions' wall clock follows, so the claims are asserted exactly.
#[tokio::test(start_paused = true)]
async fn every_fetch_signs_a_fresh_assertion_also_ahead_of_expiry() {
    let registered = public_jwks();
    let recorder = Recorder::minting().await;
    let start = tokio::time::Instant::now();
    let endpoint = recorder
        .endpoint()
        .client_id("fresh-client")
        .private_key_jwt(SigningKey::from_jwk(&fixture("rsa.jwk.json")).unwrap())
        .assertion_clock(paused_wall_clock())
        .build()
        .unwrap();
    // Tokens live an hour; the cache refreshes ahead in the last 60 s
    // (plus up to 12 s of jitter) of their usable 3590 s.
    let cache = TokenCache::new(ClientCredentials::new(endpoint));

    let first = cache.acquire().await.unwrap();
    cache.accepted(first.generation());
    tokio::time::advance(Duration::from_secs(3560)).await;
    let ahead_at = start.elapsed().as_secs();
    let still = cache.current().expect("the token is still usable");
    assert_eq!(
        still.generation(),
        first.generation(),
        "served while refreshing"
    );
    while cache.stats().fetches < 2 || cache.current().unwrap().generation() == first.generation() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let second = cache.current().unwrap();
    cache.accepted(second.generation());
    tokio::time::advance(Duration::from_secs(7)).await;
    let replaced_at = start.elapsed().as_secs();
    let third = cache.replace(second.generation()).await.unwrap();
    assert_ne!(third.generation(), second.generation());

    let stats = cache.stats();
    assert_eq!((stats.fetches, stats.refreshes_ahead), (3, 1), "{stats:?}");
    let seen = recorder.seen();
    assert_eq!(seen.len(), 3);
    let mut jtis = std::collections::HashSet::new();
    for (request, at) in seen.iter().zip([0, ahead_at, replaced_at]) {
        let verified = loopback::verify(request.field("client_assertion"), &registered).unwrap();
        let claims = &verified.claims;
        assert_eq!(claims["iat"], T0 + at, "{claims}");
        assert_eq!(claims["nbf"], T0 + at);
        assert_eq!(claims["exp"], T0 + at + 60);
        assert!(
            jtis.insert(claims["jti"].as_str().unwrap().to_owned()),
            "jti reused: {claims}"
        );
    }
    assert_eq!((ahead_at, replaced_at), (3560, 3567));
}

// ---------------------------------------------------------------------------
// JWT-bearer grant, Google service accounts

#[tokio::test]
async fn google_service_account_from_a_key_file() {
    let google = google::Fixture::start().await;
    let outcome = google::run(&google).await.unwrap();
    assert_eq!(
        outcome.callers,
        [
            google::CLIENT_EMAIL,
            google::CLIENT_EMAIL,
            google::USER,
            google::USER
        ]
    );
    assert_eq!(outcome.fetches, [1, 1], "one token per source, used twice");
    assert_eq!(outcome.assertions.len(), 2);
    for (claims, sub) in outcome.assertions.iter().zip([None, Some(google::USER)]) {
        assert_eq!(claims["iss"], google::CLIENT_EMAIL);
        assert_eq!(claims["aud"], google.token_uri().as_str());
        assert_eq!(claims["scope"], google::SCOPE);
        assert_eq!(claims.get("sub").and_then(Value::as_str), sub);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            60
        );
    }
    assert_ne!(outcome.assertions[0]["jti"], outcome.assertions[1]["jti"]);
}

/// A generic JWT-bearer grant, with an ES256 key generated here and client
/// authentication as well (RFC 7523 §2.1 allows both): the parameters and
/// claims, exactly.
#[tokio::test]
async fn jwt_bearer_grant_sends_the_assertion_and_parameters_exactly() {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let point = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &ring::rand::SystemRandom::new(),
    )
    .unwrap()
    .public_key()
    .as_ref()
    .to_vec();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "fresh",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }]});
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(pkcs8.as_ref())
    );
    let key = SigningKey::from_pem(SigningAlgorithm::Es256, pem)
        .unwrap()
        .with_kid("fresh");

    let recorder = Recorder::minting().await;
    let (clock, now) = stopped_wall_clock();
    let assertion = JwtAssertion::builder(key)
        .issuer("reporting-service")
        .subject("alice@example.com")
        .audience(&recorder.url)
        .claim("tenant", "acme")
        .lifetime(Duration::from_millis(90_500))
        .clock(clock)
        .build()
        .unwrap();
    let endpoint = recorder
        .endpoint()
        .client_id("rs-client")
        .client_secret("rs secret")
        .build()
        .unwrap();
    let source = JwtBearer::new(endpoint, assertion)
        .scope("reports:read")
        .scope("reports:write")
        .param("audience", "reports-api");
    let token = source.fetch().await.unwrap();
    assert_eq!(token.secret(), "tok-1");
    source.fetch().await.unwrap();

    let seen = recorder.seen();
    assert_eq!(seen.len(), 2);
    let mut jtis = Vec::new();
    for request in &seen {
        assert_eq!(
            request.names(),
            ["grant_type", "assertion", "scope", "audience"]
        );
        assert_eq!(
            request.field("grant_type"),
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        );
        assert_eq!(request.field("scope"), "reports:read reports:write");
        assert_eq!(request.field("audience"), "reports-api");
        let basic = format!("Basic {}", STANDARD.encode("rs-client:rs%20secret"));
        assert_eq!(request.authorization.as_deref(), Some(basic.as_str()));
        let verified = loopback::verify(request.field("assertion"), &jwks).unwrap();
        assert_eq!(
            verified.header,
            json!({"alg": "ES256", "kid": "fresh", "typ": "JWT"})
        );
        let jti = verified.claims["jti"].clone();
        assert_eq!(
            verified.claims,
            json!({
                "iss": "reporting-service", "sub": "alice@example.com", "aud": recorder.url,
                "tenant": "acme", "iat": now, "nbf": now, "exp": now + 91, "jti": jti,
            })
        );
        jtis.push(jti);
    }
    assert_ne!(jtis[0], jtis[1]);
}

#[test]
fn service_account_key_files_that_cannot_be_used_are_typed_errors() {
    let pem = fixture("rsa.pkcs8.pem");
    let file = |value: Value| ServiceAccountKey::from_json(&value.to_string());
    let cases: Vec<(Result<ServiceAccountKey, KeyError>, &str)> = vec![
        (
            file(json!({"type": "authorized_user", "refresh_token": "r"})),
            "`authorized_user` credentials",
        ),
        (
            file(json!({"type": "service_account", "private_key": pem})),
            "no `client_email`",
        ),
        (file(json!({"client_email": "a@b"})), "no `private_key`"),
        (
            file(json!({"client_email": "a@b", "private_key": 7})),
            "`private_key` is not a string",
        ),
        (
            file(json!({"client_email": "a@b", "private_key": fixture("ec.pkcs8.pem")})),
            "RS256 signs with RSA keys",
        ),
        (
            ServiceAccountKey::from_json(&format!("{{\"private_key\": \"{}", &pem[..80])),
            "not JSON (line 2, column 0)",
        ),
        (
            ServiceAccountKey::from_file("/nonexistent/sa.json"),
            "cannot read key file /nonexistent/sa.json",
        ),
    ];
    for (result, expected) in cases {
        let err = result.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(expected), "expected `{expected}`: {shown}");
        assert!(!shown.contains(&pem[40..80]), "the key was quoted: {shown}");
    }
    let key = file(json!({"client_email": "a@b", "private_key": pem})).unwrap();
    assert_eq!(key.token_uri(), "https://oauth2.googleapis.com/token");
    assert_eq!(key.signing_key().kid(), None);

    // No scope, or a token_uri that would send the assertion in clear text.
    let err = GoogleServiceAccount::builder(key).build().unwrap_err();
    assert!(matches!(err, BuildError::InvalidAssertion(_)), "{err:?}");
    let insecure = file(json!({"client_email": "a@b", "private_key": pem, "token_uri": "http://oauth2.example.com/token"})).unwrap();
    let err = GoogleServiceAccount::builder(insecure)
        .scope("s")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InsecureUrl { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------
// Token exchange

#[tokio::test]
async fn kubernetes_token_exchange_reads_the_rotated_file_again() {
    let cluster = token_exchange::Fixture::start().await;
    let outcome = token_exchange::run(&cluster).await.unwrap();
    assert_eq!(outcome.statuses, [StatusCode::OK; 3]);
    assert_eq!(
        outcome.fetches, 2,
        "one exchange, one more after the rotation"
    );
    assert_eq!(
        outcome.retries, 1,
        "the request the API rejected, sent once more"
    );
    assert_eq!(
        outcome.exchanged,
        [
            token_exchange::projected_token(1),
            token_exchange::projected_token(2)
        ]
    );
}

/// Every parameter RFC 8693 defines, in order: a subject token from another
/// source (fetched anew for each exchange), an actor token from a file,
/// repeated audiences and resources, and `private_key_jwt` client
/// authentication after them.
#[tokio::test]
async fn token_exchange_sends_every_parameter_exactly() {
    let recorder = Recorder::start(|_| {
        loopback::json_response(
            StatusCode::OK,
            json!({
                "access_token": "exchanged",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 600,
            }),
        )
    })
    .await;
    let upstream_fetches = Arc::new(AtomicUsize::new(0));
    let count = upstream_fetches.clone();
    let upstream = from_fn(move || {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(AccessToken::new(format!("upstream-{n}"))) }
    });
    let actor_file = token_exchange::TokenFile::new().unwrap();
    std::fs::write(&actor_file.0, "actor.jwt\n").unwrap();
    let endpoint = recorder
        .endpoint()
        .client_id("gateway")
        .private_key_jwt(SigningKey::from_jwk(&fixture("ec.jwk.json")).unwrap())
        .build()
        .unwrap();
    let source = TokenExchange::new(
        endpoint,
        SecurityToken::from_source(upstream, TokenType::ACCESS_TOKEN),
    )
    .actor(SecurityToken::from_file(&actor_file.0, TokenType::JWT))
    .requested_token_type(TokenType::new("urn:example:token-type:internal"))
    .audience("billing")
    .audience("ledger")
    .resource("https://billing.example/")
    .resource("https://ledger.example/")
    .scope("invoices:read")
    .scope("ledger:read")
    .param("tenant", "acme");

    for n in 1..=2 {
        let token = source.fetch().await.unwrap();
        assert_eq!(token.secret(), "exchanged");
        assert_eq!(upstream_fetches.load(Ordering::SeqCst), n);
    }
    let seen = recorder.seen();
    assert_eq!(seen.len(), 2);
    for (request, n) in seen.iter().zip(1..) {
        let (assertion, fields) = request.fields.split_last().unwrap();
        let expected: Vec<(String, String)> = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", &format!("upstream-{n}")),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("actor_token", "actor.jwt"),
            ("actor_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("requested_token_type", "urn:example:token-type:internal"),
            ("scope", "invoices:read ledger:read"),
            ("audience", "billing"),
            ("audience", "ledger"),
            ("resource", "https://billing.example/"),
            ("resource", "https://ledger.example/"),
            ("tenant", "acme"),
            ("client_id", "gateway"),
            ("client_assertion_type", JWT_BEARER_ASSERTION),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(fields, expected.as_slice());
        assert_eq!(assertion.0, "client_assertion");
        loopback::verify(&assertion.1, &public_jwks()).unwrap();
        assert_eq!(claims_of(&assertion.1)["iss"], "gateway");
        assert_eq!(request.authorization, None);
    }
}

/// A subject token file that is missing or empty fails the exchange as
/// transient, one that holds anything but a token as permanent; nothing
/// reaches the token endpoint, and the cache recovers once the platform has
/// written the file.
#[tokio::test(start_paused = true)]
async fn subject_token_files_that_cannot_be_used_are_typed_and_recovered_from() {
    let recorder = Recorder::minting().await;
    let file = token_exchange::TokenFile::new().unwrap();
    let source = || {
        TokenExchange::new(
            recorder.public_endpoint(),
            SecurityToken::from_file(&file.0, TokenType::JWT),
        )
    };
    let cause = |err: &TokenError| -> String {
        let cause = err
            .cause()
            .and_then(|c| c.downcast_ref::<TokenFileError>())
            .unwrap();
        format!("{cause:?}")
    };

    let err = source().fetch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(cause(&err).starts_with("Io"), "{err:?}");
    for (contents, kind, variant) in [
        ("\n", ErrorKind::Transient, "Empty"),
        ("one\ntwo\n", ErrorKind::Permanent, "NotAToken"),
        (&"x".repeat(65 * 1024), ErrorKind::Permanent, "TooLarge"),
    ] {
        std::fs::write(&file.0, contents).unwrap();
        let err = source().fetch().await.unwrap_err();
        assert_eq!(err.kind(), kind, "{err:?}");
        assert!(cause(&err).starts_with(variant), "{err:?}");
        assert!(
            !err.to_string().contains("two"),
            "the file's contents shown: {err}"
        );
    }
    assert!(recorder.seen().is_empty(), "nothing was sent");

    // Through the cache: the file appears while it backs off.
    std::fs::remove_file(&file.0).unwrap();
    let cache = TokenCache::new(source());
    assert!(cache.acquire().await.is_err());
    std::fs::write(&file.0, "k8s.jwt\n").unwrap();
    assert!(
        cache.acquire().await.is_err(),
        "still backing off: no fetch"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        cache.acquire().await.unwrap().header_value(),
        "Bearer tok-1"
    );
    assert_eq!(cache.stats().fetches, 2);
    let seen = recorder.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].field("subject_token"), "k8s.jwt");
}

#[tokio::test]
async fn an_issued_token_that_is_not_an_access_token_is_refused() {
    let recorder = Recorder::start(|_| {
        loopback::json_response(
            StatusCode::OK,
            json!({"access_token": "idt", "issued_token_type": "urn:ietf:params:oauth:token-type:id_token", "token_type": "N_A"}),
        )
    })
    .await;
    let source = TokenExchange::new(
        recorder.public_endpoint(),
        SecurityToken::new("subject", TokenType::JWT),
    )
    .requested_token_type(TokenType::ID_TOKEN);
    let err = source.fetch().await.unwrap_err();
    assert!(err.is_permanent());
    let cause = err.cause().and_then(|c| c.downcast_ref::<ExchangeError>());
    assert!(
        matches!(cause, Some(ExchangeError::UnsupportedTokenType(t)) if t == "N_A"),
        "{err:?}"
    );

    // A subject source that fails fails the exchange as it failed.
    let failing =
        from_fn(|| async { Err::<AccessToken, _>(TokenError::permanent("upstream refused")) });
    let source = TokenExchange::new(
        recorder.public_endpoint(),
        SecurityToken::from_source(failing, TokenType::ACCESS_TOKEN),
    );
    let err = source.fetch().await.unwrap_err();
    assert!(err.is_permanent());
    assert!(err.to_string().contains("upstream refused"), "{err}");
    assert_eq!(
        recorder.seen().len(),
        1,
        "the failed subject was not exchanged"
    );
}
