//! One attempt's preparation: what a replay keeps, and the token (with its
//! DPoP proof) put on the request.

use http::Request;

use crate::cache::CurrentToken;
use crate::error::TokenError;
use crate::exchange::{attach, Attached, Judge};
use crate::replay::ReplayPolicy;

/// Before the first attempt: keeps what a replay needs, attaches the token
/// (and a proof, for a DPoP-bound one). The caller sends the request itself:
/// passed in and out of a function that sends it, the request was copied
/// once more per request (29 instructions, BENCHMARKS.md), inlined or not.
#[inline(always)]
#[allow(clippy::type_complexity)]
pub(super) fn prepare<S, B, P, C>(
    replay: &P,
    judge: &Judge<C>,
    request: &mut Request<B>,
    token: CurrentToken,
    service: &S,
) -> Result<(Attached, Option<Retry<S, P::Kept>>), TokenError>
where
    S: Clone,
    P: ReplayPolicy<Request<B>>,
{
    let retry = replay.keep(request).map(|kept| Retry {
        service: service.clone(),
        kept,
    });
    Ok((authorize(request, token, judge)?, retry))
}

/// Puts `token` on `request` (and a DPoP proof for it, if it is bound).
/// Always inlined: a call costs a bearer request 27 instructions
/// (callgrind), and the DPoP half is out of line anyway (`attach`'s `prove`).
#[inline(always)]
pub(super) fn authorize<B, C>(
    request: &mut Request<B>,
    token: CurrentToken,
    judge: &Judge<C>,
) -> Result<Attached, TokenError> {
    // Only a DPoP proof needs the method and URL.
    let target = token
        .dpop()
        .map(|_| (request.method().clone(), judge.absolute_url(request.uri())));
    attach(request.headers_mut(), target, token)
}

/// What a response future needs to send its request a second time.
#[derive(Debug)]
pub(super) struct Retry<S, K> {
    pub(super) service: S,
    pub(super) kept: K,
}
