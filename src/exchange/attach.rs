//! Putting the token on a request: the `Authorization` header, and for a
//! DPoP-bound token a fresh proof for this very request.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method};

use crate::cache::{CurrentToken, Generation};
use crate::dpop::{DpopProver, DPOP, DPOP_NONCE};
use crate::error::{CacheError, TokenError};

/// What a request carries of its token, to read its answer by.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) generation: Generation,
    /// For a DPoP-bound token: its prover, and the URL the proof was made
    /// for. Boxed: a bearer request carries one null pointer.
    pub(crate) dpop: Option<Box<DpopSent>>,
}

/// A DPoP proof sent: the key's prover and the request's URL.
#[derive(Debug)]
pub(crate) struct DpopSent {
    prover: Arc<dyn DpopProver>,
    url: String,
}

impl Attached {
    /// Learns the nonce an answer hands out (`DPoP-Nonce`), for proofs sent
    /// to that origin from now on. Nothing to do for a bearer token.
    #[inline]
    pub(crate) fn learn_from(&self, headers: &HeaderMap) {
        if let Some(sent) = &self.dpop {
            sent.learn_from(headers);
        }
    }

    /// `true` if the token is DPoP-bound.
    #[inline]
    pub(crate) fn is_dpop(&self) -> bool {
        self.dpop.is_some()
    }
}

impl DpopSent {
    #[cold]
    fn learn_from(&self, headers: &HeaderMap) {
        let nonce = headers.get(DPOP_NONCE).and_then(|v| v.to_str().ok());
        if let Some(nonce) = nonce.filter(|n| !n.is_empty()) {
            self.prover.learn_nonce(&self.url, nonce);
        }
    }
}

/// Where a request goes, for a DPoP proof: its method and absolute URL
/// (`None` if it cannot be known, which fails the request). Read only for a
/// DPoP-bound token ([`CurrentToken::dpop`]).
pub(crate) type ProofTarget = (Method, Option<String>);

/// Puts `token` on a request with these `headers`: its `Authorization`, and
/// for a DPoP-bound token a fresh proof for `target`. Always inlined: on a
/// bearer request it is a header insert, and a call around it costs a fifth
/// as much again (callgrind); the proof is made out of line.
#[inline(always)]
pub(crate) fn attach(
    headers: &mut HeaderMap,
    target: Option<ProofTarget>,
    token: CurrentToken,
) -> Result<Attached, TokenError> {
    let dpop = match (token.dpop(), target) {
        (None, _) => None,
        (Some(prover), Some((method, url))) => Some(prove(headers, &method, url, &token, prover)?),
        (Some(_), None) => return Err(CacheError::NoAbsoluteUrl.into()),
    };
    let generation = token.generation;
    headers.insert(AUTHORIZATION, token.value);
    Ok(Attached { generation, dpop })
}

#[cold]
fn prove(
    headers: &mut HeaderMap,
    method: &Method,
    url: Option<String>,
    token: &CurrentToken,
    prover: &Arc<dyn DpopProver>,
) -> Result<Box<DpopSent>, TokenError> {
    let url = url.ok_or(CacheError::NoAbsoluteUrl)?;
    let proof = token
        .dpop_proof(method, &url)
        .expect("a bound token has a prover")?;
    headers.insert(DPOP, proof);
    Ok(Box::new(DpopSent {
        prover: Arc::clone(prover),
        url,
    }))
}
