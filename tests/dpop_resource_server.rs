//! `support::dpop_api`, the DPoP-verifying resource server the front ends'
//! tests use, checked against proofs from `oauth2::DpopKey` and hand-made
//! bad ones: what it accepts, each reason it refuses, its nonces and counts.
#![cfg(feature = "jwt")]

mod support;

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use support::dpop_api::{DpopApi, DpopCounts, Outcome, Reason};
use support::oauth2::plain_client;
use tower_bearer::dpop::DpopProver;
use tower_bearer::oauth2::{DpopKey, SigningAlgorithm, WallClock};

const TOKEN: &str = "opaque-t0k3n";

/// Sends `method url` with `Authorization: <scheme> <token>` and these
/// `DPoP` headers.
async fn send(
    method: Method,
    url: &str,
    authorization: Option<&str>,
    proofs: &[HeaderValue],
) -> Response<Incoming> {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    for proof in proofs {
        request = request.header("dpop", proof.clone());
    }
    plain_client()
        .request(
            request
                .body(Full::new(Bytes::from_static(b"hello")))
                .unwrap(),
        )
        .await
        .unwrap()
}

/// A request with a fresh proof from `key` for `method url` and `token`.
async fn call(key: &DpopKey, method: Method, url: &str, token: &str) -> Response<Incoming> {
    let proof = key.proof(&method, url, Some(token)).unwrap();
    send(method, url, Some(&format!("DPoP {token}")), &[proof]).await
}

fn www_authenticate(response: &Response<Incoming>) -> &str {
    response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
}

/// A server whose nonce `key` already knows.
async fn started(key: &DpopKey) -> DpopApi {
    let api = DpopApi::start().await;
    key.learn_nonce(&api.url("/"), &api.nonce());
    api
}

#[tokio::test]
async fn a_proof_without_the_nonce_is_challenged_then_accepted_with_it() {
    let api = DpopApi::start().await;
    let key = DpopKey::generate_es256().unwrap();
    let url = api.url("/v1/things?page=2");

    let challenged = call(&key, Method::GET, &url, TOKEN).await;
    assert_eq!(challenged.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&challenged).starts_with(r#"DPoP error="use_dpop_nonce""#));
    let nonce = challenged
        .headers()
        .get("dpop-nonce")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(nonce, api.nonce());

    key.learn_nonce(&url, nonce);
    let accepted = call(&key, Method::GET, &url, TOKEN).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(accepted.headers()["x-seen-token"], TOKEN);
    assert_eq!(accepted.headers()["x-dpop-jkt"], key.thumbprint());

    assert_eq!(
        api.counts(),
        DpopCounts {
            requests: 2,
            accepted: 1,
            nonce_challenges: 1,
            rejected: 0,
            reused_jti: 0,
            unchecked_bindings: 1,
        }
    );
    let seen = api.seen();
    assert_eq!(seen[0].outcome, Outcome::NonceChallenge);
    assert_eq!(seen[1].nonce.as_deref(), Some(nonce));
    assert_eq!(seen[1].token.as_deref(), Some(TOKEN));
    api.assert_no_proof_reused();
}

#[tokio::test]
async fn every_algorithm_verifies() {
    let pem = std::fs::read_to_string("tests/fixtures/keys/rsa.pkcs8.pem").unwrap();
    for key in [
        DpopKey::generate_es256().unwrap(),
        DpopKey::from_pem(SigningAlgorithm::Rs256, &pem).unwrap(),
        DpopKey::from_pem(SigningAlgorithm::Ps256, &pem).unwrap(),
        DpopKey::generate_ed25519().unwrap(),
    ] {
        let api = started(&key).await;
        api.expect_jkt(key.thumbprint());
        let response = call(&key, Method::POST, &api.url("/x"), TOKEN).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", key.algorithm());
        assert_eq!(api.counts().unchecked_bindings, 0);
    }
}

#[tokio::test]
async fn each_bad_request_is_refused_for_its_reason() {
    let key = DpopKey::generate_es256().unwrap();
    let api = started(&key).await;
    let url = api.url("/v1/things");
    let proof =
        |method: Method, url: &str, token: &str| key.proof(&method, url, Some(token)).unwrap();
    let dpop = format!("DPoP {TOKEN}");

    // Tokens and headers.
    let response = send(Method::GET, &url, None, &[proof(Method::GET, &url, TOKEN)]).await;
    assert_eq!(
        www_authenticate(&response),
        r#"DPoP algs="ES256 RS256 PS256 EdDSA""#
    );
    let bearer = format!("Bearer {TOKEN}");
    let response = send(
        Method::GET,
        &url,
        Some(&bearer),
        &[proof(Method::GET, &url, TOKEN)],
    )
    .await;
    assert!(www_authenticate(&response).contains(r#"error="invalid_token""#));
    send(Method::GET, &url, Some(&dpop), &[]).await;
    let two = [
        proof(Method::GET, &url, TOKEN),
        proof(Method::GET, &url, TOKEN),
    ];
    send(Method::GET, &url, Some(&dpop), &two).await;

    // The proof's claims against the request.
    send(
        Method::POST,
        &url,
        Some(&dpop),
        &[proof(Method::GET, &url, TOKEN)],
    )
    .await;
    let elsewhere = api.url("/v1/other");
    send(
        Method::GET,
        &url,
        Some(&dpop),
        &[proof(Method::GET, &elsewhere, TOKEN)],
    )
    .await;
    send(
        Method::GET,
        &url,
        Some(&dpop),
        &[proof(Method::GET, &url, "another-token")],
    )
    .await;
    let stale = key.clone().with_clock(WallClock::from_fn(|| {
        SystemTime::now() - Duration::from_secs(3600)
    }));
    let old = stale.proof(&Method::GET, &url, Some(TOKEN)).unwrap();
    send(Method::GET, &url, Some(&dpop), &[old]).await;

    // A proof sent twice.
    let once = proof(Method::GET, &url, TOKEN);
    let first = send(Method::GET, &url, Some(&dpop), std::slice::from_ref(&once)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let replayed = send(Method::GET, &url, Some(&dpop), &[once]).await;
    assert!(www_authenticate(&replayed).contains(r#"error="invalid_dpop_proof""#));

    // A signature that does not verify.
    let good = proof(Method::GET, &url, TOKEN);
    let good = good.to_str().unwrap();
    let (signed, signature) = good.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[0] ^= 1;
    let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature));
    send(Method::GET, &url, Some(&dpop), &[forged.parse().unwrap()]).await;

    // Headers no DPoP proof may have (checked before the signature).
    let (header, rest) = good.split_once('.').unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    for (member, value) in [
        ("typ", serde_json::json!("JWT")),
        ("alg", serde_json::json!("HS256")),
        (
            "jwk",
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}),
        ),
    ] {
        let mut header = header.clone();
        header[member] = value;
        let made = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
        send(Method::GET, &url, Some(&dpop), &[made.parse().unwrap()]).await;
    }

    assert_eq!(
        api.rejections(),
        [
            Reason::NoToken,
            Reason::BearerScheme,
            Reason::NoProof,
            Reason::ManyProofs,
            Reason::Htm,
            Reason::Htu,
            Reason::Ath,
            Reason::Iat,
            Reason::ReusedJti,
            Reason::Signature,
            Reason::Typ,
            Reason::Alg,
            Reason::Jwk,
        ]
    );
    let counts = api.counts();
    assert_eq!(
        (counts.accepted, counts.rejected, counts.reused_jti),
        (1, 13, 1)
    );
    assert_eq!(counts.nonce_challenges, 0);
}

#[tokio::test]
async fn bindings_come_from_the_token_or_from_the_test() {
    let key = DpopKey::generate_es256().unwrap();
    let other = DpopKey::generate_es256().unwrap();
    let api = started(&key).await;
    other.learn_nonce(&api.url("/"), &api.nonce());
    let url = api.url("/");

    // An opaque token bound by the test.
    api.bind_token(TOKEN, key.thumbprint());
    assert_eq!(
        call(&key, Method::GET, &url, TOKEN).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&other, Method::GET, &url, TOKEN).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A JWT access token names its key in `cnf.jkt` (its signature is not
    // what this server checks).
    let claims = serde_json::json!({"sub": "alice", "cnf": {"jkt": key.thumbprint()}});
    let jwt = format!(
        "eyJhbGciOiJFUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_eq!(
        call(&key, Method::GET, &url, &jwt).await.status(),
        StatusCode::OK
    );
    let refused = call(&other, Method::GET, &url, &jwt).await;
    assert!(www_authenticate(&refused).contains(r#"error="invalid_token""#));

    // Every other token is bound to the expected key.
    api.expect_jkt(other.thumbprint());
    assert_eq!(
        call(&other, Method::GET, &url, "t2").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&key, Method::GET, &url, "t2").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A revoked token is refused whoever proves it.
    api.revoke("t2");
    assert_eq!(
        call(&other, Method::GET, &url, "t2").await.status(),
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        api.rejections(),
        [
            Reason::Binding,
            Reason::Binding,
            Reason::Binding,
            Reason::Revoked
        ]
    );
    assert_eq!(api.counts().unchecked_bindings, 0);
}

#[tokio::test]
async fn rotations_are_strict_or_announced() {
    let key = DpopKey::generate_es256().unwrap();
    let api = started(&key).await;
    let url = api.url("/");
    assert_eq!(
        call(&key, Method::GET, &url, TOKEN).await.status(),
        StatusCode::OK
    );

    // Strict: the old nonce is stale at once.
    let strict = api.rotate_nonce();
    let challenged = call(&key, Method::GET, &url, TOKEN).await;
    assert_eq!(challenged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenged.headers()["dpop-nonce"], strict.as_str());
    key.learn_nonce(&url, &strict);

    // Announced: the old nonce still works, and the answer hands out the new.
    let announced = api.rotate_nonce_announced();
    let accepted = call(&key, Method::GET, &url, TOKEN).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(accepted.headers()["dpop-nonce"], announced.as_str());
    key.learn_nonce(&url, &announced);
    let quiet = call(&key, Method::GET, &url, TOKEN).await;
    assert_eq!(quiet.status(), StatusCode::OK);
    assert!(quiet.headers().get("dpop-nonce").is_none());

    // Without nonces required, a proof without one passes.
    api.require_nonce(false);
    let fresh = DpopKey::generate_es256().unwrap();
    assert_eq!(
        call(&fresh, Method::GET, &url, TOKEN).await.status(),
        StatusCode::OK
    );

    let counts = api.counts();
    assert_eq!(
        (counts.accepted, counts.nonce_challenges, counts.rejected),
        (4, 1, 0)
    );
    api.assert_no_proof_reused();
}
