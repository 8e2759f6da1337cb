//! A DPoP-verifying resource server on 127.0.0.1 (hyper, HTTP/1 and HTTP/2),
//! and the proof checks it makes, written independently of the crate's
//! signing code (ring's verifiers, our own RFC 7638 thumbprint).
//!
//! # API
//!
//! - [`DpopApi::start`]`()` serves on 127.0.0.1; [`url`](DpopApi::url)`(path)`.
//!   It answers `200` with the request's body, the token it saw in
//!   `x-seen-token` and the proof key's thumbprint in `x-dpop-jkt`.
//! - Every request is checked as RFC 9449 §4.3 and §7.1 say, in this order:
//!   `Authorization: DPoP <token>` (a `Bearer` one is refused), exactly one
//!   `DPoP` header, the proof ([`verify_proof`]: compact JWS, `typ`
//!   `dpop+jwt`, `alg` ES256/RS256/PS256/EdDSA, a public `jwk` and no private
//!   member, the signature with that `jwk`, `jti`, `htm` = the request's
//!   method, `htu` = `http://<authority><path>` without query and fragment,
//!   `iat` within the [window](DpopApi::set_iat_window) (60 s by default)),
//!   the `jti` never seen before (by this server), `ath` = the base64url
//!   SHA-256 of the token, the server's nonce, the token not
//!   [revoked](DpopApi::revoke), and the binding: the token's `cnf.jkt` when
//!   the token is a JWT it can read, else a jkt it was told
//!   ([`bind_token`](DpopApi::bind_token), [`expect_jkt`](DpopApi::expect_jkt)),
//!   equal to the proof key's thumbprint. A token whose binding it cannot
//!   know passes and is counted (`unchecked_bindings`).
//! - Nonces: required by default ([`require_nonce`](DpopApi::require_nonce)).
//!   A proof without one, or with a stale one, gets `401` with
//!   `WWW-Authenticate: DPoP error="use_dpop_nonce"` and `DPoP-Nonce: <current>`.
//!   [`rotate_nonce`](DpopApi::rotate_nonce) makes a new one and the old one
//!   stale; [`rotate_nonce_announced`](DpopApi::rotate_nonce_announced) makes
//!   a new one, keeps accepting the old one, and sends the new one in
//!   `DPoP-Nonce` on every `200` to a proof with the old one (RFC 9449 §8.2).
//!   [`nonce`](DpopApi::nonce) is the current one.
//! - Refusals: `401` with `WWW-Authenticate: DPoP error="invalid_dpop_proof"`
//!   (a bad proof), `error="invalid_token"` (revoked, wrong binding, a
//!   `Bearer` token) or no error (no token), each with `algs="…"`.
//! - Counts ([`counts`](DpopApi::counts) → [`DpopCounts`]): requests,
//!   accepted, nonce challenges, rejected (every refusal but a nonce
//!   challenge), reused `jti`s, unchecked bindings; why each was refused
//!   ([`rejections`](DpopApi::rejections) → [`Reason`]s); and every request
//!   as it was seen ([`seen`](DpopApi::seen) → [`Seen`]: token, jkt, jti,
//!   nonce, outcome), for "replayed with the same token" and "no proof
//!   reused" ([`assert_no_proof_reused`](DpopApi::assert_no_proof_reused)).
//! - [`DpopApi::check`] runs the same checks on a request head from
//!   elsewhere (a tower layer in front of a tonic server), sharing the
//!   server's state, and returns a [`Verdict`] with the status and headers
//!   to answer.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use http_body_util::Full;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;

use super::loopback;

/// The algorithms the server verifies, as its challenges list them.
pub const ALGS: &str = "ES256 RS256 PS256 EdDSA";

/// Why a request was refused (or challenged, for the two nonce reasons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No `Authorization: DPoP <token>`.
    NoToken,
    /// `Authorization: Bearer …`: a DPoP-bound token sent as a bearer token.
    BearerScheme,
    /// No `DPoP` header.
    NoProof,
    /// More than one `DPoP` header.
    ManyProofs,
    /// Not a compact JWS with JSON header and claims, or a claim missing or
    /// of the wrong type; said which.
    Malformed(&'static str),
    /// `typ` is not `dpop+jwt`.
    Typ,
    /// An `alg` the server does not verify (`none`, HS256, …).
    Alg,
    /// The `jwk` holds a private member, or does not fit the `alg`.
    Jwk,
    /// The signature does not verify with the `jwk`.
    Signature,
    /// `htm` is not the request's method.
    Htm,
    /// `htu` is not the request's URL without query and fragment.
    Htu,
    /// `iat` outside the window.
    Iat,
    /// A `jti` this server saw before.
    ReusedJti,
    /// `ath` missing or not the hash of the token.
    Ath,
    /// No nonce, though the server requires one (a challenge).
    NonceMissing,
    /// A nonce that is not (or no longer) the server's (a challenge).
    NonceStale,
    /// The token was revoked.
    Revoked,
    /// The token is bound to another key than the proof's.
    Binding,
}

/// What happened to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    NonceChallenge,
    Rejected(Reason),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    /// The token of `Authorization: DPoP`, if any.
    pub token: Option<String>,
    /// The proof key's thumbprint, when the proof verified.
    pub jkt: Option<String>,
    pub jti: Option<String>,
    pub nonce: Option<String>,
    pub outcome: Outcome,
}

/// The server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpopCounts {
    pub requests: usize,
    pub accepted: usize,
    pub nonce_challenges: usize,
    /// Refusals other than nonce challenges.
    pub rejected: usize,
    pub reused_jti: usize,
    /// Accepted tokens whose binding the server could not know.
    pub unchecked_bindings: usize,
}

/// A proof that verified: its key's thumbprint and its claims.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    pub jkt: String,
    pub alg: String,
    pub jti: String,
    pub claims: Value,
}

impl VerifiedProof {
    pub fn nonce(&self) -> Option<&str> {
        self.claims.get("nonce").and_then(Value::as_str)
    }

    pub fn ath(&self) -> Option<&str> {
        self.claims.get("ath").and_then(Value::as_str)
    }
}

/// The status and headers to answer a request with.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub outcome: Outcome,
    /// The token of `Authorization: DPoP`, if any.
    pub token: Option<String>,
    pub jkt: Option<String>,
}

struct State {
    require_nonce: bool,
    /// The current nonce first; others still accepted after an announced
    /// rotation.
    nonces: Vec<String>,
    iat_window: Duration,
    now: Option<u64>,
    jtis: HashSet<String>,
    bound: HashMap<String, String>,
    expected_jkt: Option<String>,
    revoked: HashSet<String>,
    counts: DpopCounts,
    rejections: Vec<Reason>,
    seen: Vec<Seen>,
}

/// The resource server; cheap to clone (clones share everything).
#[derive(Clone)]
pub struct DpopApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl DpopApi {
    /// Starts the server: nonces required, a first nonce made, `iat`
    /// window 60 s.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            require_nonce: true,
            nonces: vec![random_nonce()],
            iat_window: Duration::from_secs(60),
            now: None,
            jtis: HashSet::new(),
            bound: HashMap::new(),
            expected_jkt: None,
            revoked: HashSet::new(),
            counts: DpopCounts::default(),
            rejections: Vec::new(),
            seen: Vec::new(),
        }));
        let addr = loopback::serve_collected({
            let state = Arc::clone(&state);
            move |parts, body| answer(&state, &parts.method, &parts.uri, &parts.headers, body)
        })
        .await;
        DpopApi { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The nonce proofs must carry now.
    pub fn nonce(&self) -> String {
        self.state.lock().unwrap().nonces[0].clone()
    }

    /// Whether proofs must carry the server's nonce (default `true`).
    pub fn require_nonce(&self, required: bool) {
        self.state.lock().unwrap().require_nonce = required;
    }

    /// A new nonce; proofs with any older one are challenged.
    pub fn rotate_nonce(&self) -> String {
        let mut state = self.state.lock().unwrap();
        state.nonces = vec![random_nonce()];
        state.nonces[0].clone()
    }

    /// A new nonce; older ones are still accepted, and a `200` to a proof
    /// with an older one carries the new one in `DPoP-Nonce`.
    pub fn rotate_nonce_announced(&self) -> String {
        let mut state = self.state.lock().unwrap();
        state.nonces.insert(0, random_nonce());
        state.nonces[0].clone()
    }

    /// Tokens are bound to `jkt` unless the token says otherwise (its
    /// `cnf.jkt`) or [`bind_token`](Self::bind_token) did.
    pub fn expect_jkt(&self, jkt: &str) {
        self.state.lock().unwrap().expected_jkt = Some(jkt.to_owned());
    }

    /// `token` is bound to `jkt` (an opaque token's binding).
    pub fn bind_token(&self, token: &str, jkt: &str) {
        let mut state = self.state.lock().unwrap();
        state.bound.insert(token.to_owned(), jkt.to_owned());
    }

    /// `token` is refused from now on (`invalid_token`).
    pub fn revoke(&self, token: &str) {
        self.state.lock().unwrap().revoked.insert(token.to_owned());
    }

    /// How far `iat` may be from now (default 60 s).
    pub fn set_iat_window(&self, window: Duration) {
        self.state.lock().unwrap().iat_window = window;
    }

    /// Reads "now" as these seconds since the epoch instead of the system
    /// clock (for proofs made with an injected clock).
    pub fn set_now(&self, unix_seconds: Option<u64>) {
        self.state.lock().unwrap().now = unix_seconds;
    }

    pub fn counts(&self) -> DpopCounts {
        self.state.lock().unwrap().counts
    }

    /// Why each refused request was refused, in order (nonce challenges
    /// excluded).
    pub fn rejections(&self) -> Vec<Reason> {
        self.state.lock().unwrap().rejections.clone()
    }

    /// Every request, in the order the server checked them.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// No two requests carried a proof with the same `jti`.
    pub fn assert_no_proof_reused(&self) {
        let counts = self.counts();
        assert_eq!(counts.reused_jti, 0, "a proof was reused: {counts:?}");
        let seen = self.seen();
        let jtis: Vec<_> = seen.iter().filter_map(|s| s.jti.as_ref()).collect();
        let unique: HashSet<_> = jtis.iter().collect();
        assert_eq!(jtis.len(), unique.len(), "a jti came twice");
    }

    /// Checks one request (its method, URI and headers) and records it, as
    /// the server does: for a server of another kind (tonic) in front of
    /// which a layer calls this. The URL a proof must name is
    /// `http://<authority><path>`: the URI's authority (HTTP/2) or the
    /// `Host` header (HTTP/1).
    pub fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Verdict {
        check(&self.state, method, uri, headers)
    }
}

fn answer(
    state: &Mutex<State>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let verdict = check(state, method, uri, headers);
    let success = verdict.status.is_success();
    let mut response = Response::new(Full::new(if success { body } else { Bytes::new() }));
    *response.status_mut() = verdict.status;
    *response.headers_mut() = verdict.headers;
    if success {
        if let Some(token) = verdict.token.as_deref() {
            response
                .headers_mut()
                .insert("x-seen-token", HeaderValue::from_str(token).unwrap());
        }
        if let Some(jkt) = verdict.jkt.as_deref() {
            response
                .headers_mut()
                .insert("x-dpop-jkt", HeaderValue::from_str(jkt).unwrap());
        }
    }
    response
}

fn check(state: &Mutex<State>, method: &Method, uri: &Uri, headers: &HeaderMap) -> Verdict {
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let htu = format!("http://{authority}{}", uri.path());
    let mut state = state.lock().unwrap();
    state.counts.requests += 1;
    let mut seen = Seen {
        method: method.clone(),
        path: uri.path().to_owned(),
        token: None,
        jkt: None,
        jti: None,
        nonce: None,
        outcome: Outcome::Accepted,
    };
    let result = state.decide(method, &htu, headers, &mut seen);
    let mut response_headers = HeaderMap::new();
    let (status, outcome) = match result {
        Ok(announce) => {
            state.counts.accepted += 1;
            if let Some(nonce) = announce {
                response_headers.insert("dpop-nonce", HeaderValue::from_str(&nonce).unwrap());
            }
            (StatusCode::OK, Outcome::Accepted)
        }
        Err(Reason::NonceMissing | Reason::NonceStale) => {
            state.counts.nonce_challenges += 1;
            response_headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_str(&format!(
                    r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="{ALGS}""#
                ))
                .unwrap(),
            );
            response_headers.insert(
                "dpop-nonce",
                HeaderValue::from_str(&state.nonces[0]).unwrap(),
            );
            (StatusCode::UNAUTHORIZED, Outcome::NonceChallenge)
        }
        Err(reason) => {
            state.counts.rejected += 1;
            if reason == Reason::ReusedJti {
                state.counts.reused_jti += 1;
            }
            state.rejections.push(reason.clone());
            let challenge = match reason {
                Reason::NoToken => format!(r#"DPoP algs="{ALGS}""#),
                Reason::BearerScheme | Reason::Revoked | Reason::Binding => {
                    format!(r#"DPoP error="invalid_token", algs="{ALGS}""#)
                }
                _ => format!(r#"DPoP error="invalid_dpop_proof", algs="{ALGS}""#),
            };
            response_headers.insert(WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).unwrap());
            (StatusCode::UNAUTHORIZED, Outcome::Rejected(reason))
        }
    };
    seen.outcome = outcome.clone();
    let verdict = Verdict {
        status,
        headers: response_headers,
        outcome,
        token: seen.token.clone(),
        jkt: seen.jkt.clone(),
    };
    state.seen.push(seen);
    verdict
}

impl State {
    /// `Ok(Some(nonce))`: accepted, and the new nonce is to be announced.
    fn decide(
        &mut self,
        method: &Method,
        htu: &str,
        headers: &HeaderMap,
        seen: &mut Seen,
    ) -> Result<Option<String>, Reason> {
        let authorization = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Reason::NoToken)?;
        let (scheme, token) = authorization.split_once(' ').ok_or(Reason::NoToken)?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return Err(Reason::BearerScheme);
        }
        if !scheme.eq_ignore_ascii_case("dpop") || token.trim().is_empty() {
            return Err(Reason::NoToken);
        }
        let token = token.trim().to_owned();
        seen.token = Some(token.clone());
        let mut proofs = headers.get_all("dpop").iter();
        let proof = proofs.next().ok_or(Reason::NoProof)?;
        if proofs.next().is_some() {
            return Err(Reason::ManyProofs);
        }
        let proof = proof
            .to_str()
            .map_err(|_| Reason::Malformed("the proof is not ASCII"))?;
        let now = self.now.unwrap_or_else(unix_now);
        let verified = verify_proof(proof, method.as_str(), htu, now, self.iat_window)?;
        seen.jkt = Some(verified.jkt.clone());
        seen.jti = Some(verified.jti.clone());
        seen.nonce = verified.nonce().map(str::to_owned);
        if !self.jtis.insert(verified.jti.clone()) {
            return Err(Reason::ReusedJti);
        }
        if verified.ath() != Some(ath(&token).as_str()) {
            return Err(Reason::Ath);
        }
        let mut announce = None;
        if self.require_nonce {
            let nonce = verified.nonce().ok_or(Reason::NonceMissing)?;
            match self.nonces.iter().position(|n| n == nonce) {
                None => return Err(Reason::NonceStale),
                Some(0) => {}
                Some(_) => announce = Some(self.nonces[0].clone()),
            }
        }
        if self.revoked.contains(&token) {
            return Err(Reason::Revoked);
        }
        let bound = jwt_jkt(&token)
            .or_else(|| self.bound.get(&token).cloned())
            .or_else(|| self.expected_jkt.clone());
        match bound {
            Some(jkt) if jkt != verified.jkt => return Err(Reason::Binding),
            Some(_) => {}
            None => self.counts.unchecked_bindings += 1,
        }
        Ok(announce)
    }
}

/// Checks a DPoP proof for a request with `method` to `htu` (without query
/// and fragment) at `now` (seconds since the epoch): the JWS, its header,
/// its signature with its own `jwk`, and the `jti`, `htm`, `htu` and `iat`
/// claims. `ath`, `nonce` and `jti` reuse are the caller's to check.
pub fn verify_proof(
    proof: &str,
    method: &str,
    htu: &str,
    now: u64,
    iat_window: Duration,
) -> Result<VerifiedProof, Reason> {
    let parts: Vec<&str> = proof.split('.').collect();
    let [header_b64, claims_b64, signature_b64] = parts[..] else {
        return Err(Reason::Malformed("not three dot-separated parts"));
    };
    let header: Value = decode_json(header_b64).ok_or(Reason::Malformed("header"))?;
    let claims: Value = decode_json(claims_b64).ok_or(Reason::Malformed("claims"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| Reason::Malformed("signature"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(Reason::Typ);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(Reason::Alg)?;
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(Reason::Jwk)?;
    if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .iter()
        .any(|m| jwk.contains_key(*m))
    {
        return Err(Reason::Jwk);
    }
    let member = |name: &str| -> Result<Vec<u8>, Reason> {
        let text = jwk.get(name).and_then(Value::as_str).ok_or(Reason::Jwk)?;
        URL_SAFE_NO_PAD.decode(text).map_err(|_| Reason::Jwk)
    };
    let text = |name: &str| jwk.get(name).and_then(Value::as_str).unwrap_or("");
    let message = format!("{header_b64}.{claims_b64}");
    let (verified, canonical) = match alg {
        "ES256" => {
            if text("kty") != "EC" || text("crv") != "P-256" {
                return Err(Reason::Jwk);
            }
            let mut point = vec![4];
            point.extend(member("x")?);
            point.extend(member("y")?);
            let verified = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message.as_bytes(), &signature);
            let canonical = canonical_jwk(&[
                ("crv", "P-256"),
                ("kty", "EC"),
                ("x", text("x")),
                ("y", text("y")),
            ]);
            (verified, canonical)
        }
        "RS256" | "PS256" => {
            if text("kty") != "RSA" {
                return Err(Reason::Jwk);
            }
            let params = if alg == "RS256" {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            let verified = signature::RsaPublicKeyComponents {
                n: member("n")?,
                e: member("e")?,
            }
            .verify(params, message.as_bytes(), &signature);
            let canonical = canonical_jwk(&[("e", text("e")), ("kty", "RSA"), ("n", text("n"))]);
            (verified, canonical)
        }
        "EdDSA" | "Ed25519" => {
            if text("kty") != "OKP" || text("crv") != "Ed25519" {
                return Err(Reason::Jwk);
            }
            let verified = UnparsedPublicKey::new(&signature::ED25519, member("x")?)
                .verify(message.as_bytes(), &signature);
            let canonical = canonical_jwk(&[("crv", "Ed25519"), ("kty", "OKP"), ("x", text("x"))]);
            (verified, canonical)
        }
        _ => return Err(Reason::Alg),
    };
    verified.map_err(|_| Reason::Signature)?;
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or(Reason::Malformed("jti"))?;
    if claims.get("htm").and_then(Value::as_str) != Some(method) {
        return Err(Reason::Htm);
    }
    let claimed_htu = claims
        .get("htu")
        .and_then(Value::as_str)
        .ok_or(Reason::Htu)?;
    let claimed_htu = &claimed_htu[..claimed_htu.find(['?', '#']).unwrap_or(claimed_htu.len())];
    if claimed_htu != htu {
        return Err(Reason::Htu);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or(Reason::Malformed("iat"))?;
    if iat.abs_diff(now) > iat_window.as_secs() {
        return Err(Reason::Iat);
    }
    if claims.get("nonce").is_some_and(|n| !n.is_string()) {
        return Err(Reason::Malformed("nonce"));
    }
    Ok(VerifiedProof {
        jkt: thumbprint(&canonical),
        alg: alg.to_owned(),
        jti: jti.to_owned(),
        claims,
    })
}

/// RFC 9449 §4.2 `ath`: base64url SHA-256 of the token.
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// The `cnf.jkt` of a JWT access token (not verified: the binding is what
/// is checked here), if the token is a JWT that has one.
pub fn jwt_jkt(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, claims, _) = (parts.next()?, parts.next()?, parts.next()?);
    let claims = decode_json(claims)?;
    claims.get("cnf")?.get("jkt")?.as_str().map(str::to_owned)
}

/// RFC 7638 §3: the required members, in order, as JSON without whitespace.
fn canonical_jwk(members: &[(&str, &str)]) -> String {
    let members: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(*k), Value::from(*v)))
        .collect();
    format!("{{{}}}", members.join(","))
}

fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

fn decode_json(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_nonce() -> String {
    let mut bytes = [0u8; 18];
    SystemRandom::new().fill(&mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}
