//! Server challenges (`WWW-Authenticate`) the exchange answers itself, and
//! the hook for those it does not know.
//!
//! A `401` or `403` may say more than "this token is bad": a DPoP server asks
//! for a nonce (`DPoP error="use_dpop_nonce"`: send again with the same token
//! and a new proof), Microsoft Entra's continuous access evaluation asks for
//! a token with more claims (`error="insufficient_claims", claims="…"`: fetch
//! one asking for them, then send again), an API asks for a wider scope
//! (`403 error="insufficient_scope", scope="…"`: step-up, when switched on).
//! A [`ChallengeHandler`] of your own sees each challenge first, and answers
//! for schemes the crate does not know.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use http::StatusCode;

use crate::token_ask::TokenAsk;
use crate::www_authenticate;

/// One challenge of a `401` or `403`'s `WWW-Authenticate`, parsed (RFC 9110
/// §11.6.1): its scheme and parameters, as a [`ChallengeHandler`] sees it.
///
/// ```
/// use tower_bearer::exchange::{ChallengeAnswer, Challenge};
///
/// // A handler for a scheme of the API's own: "PoP error=stale_signature"
/// // means send again (a new signature is made for each send).
/// fn answer(challenge: &Challenge<'_>) -> Option<ChallengeAnswer> {
///     (challenge.is_scheme("PoP") && challenge.error() == Some("stale_signature"))
///         .then_some(ChallengeAnswer::Replay)
/// }
/// # let _ = answer;
/// ```
pub struct Challenge<'a> {
    status: StatusCode,
    parsed: &'a www_authenticate::Challenge,
}

impl<'a> Challenge<'a> {
    pub(crate) fn new(status: StatusCode, parsed: &'a www_authenticate::Challenge) -> Self {
        Self { status, parsed }
    }

    /// The status of the answer (`401` or `403`).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The scheme as sent (`Bearer`, `DPoP`, …).
    pub fn scheme(&self) -> &str {
        self.parsed.scheme()
    }

    /// `true` if the scheme is `scheme`, ignoring ASCII case.
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.parsed.is_scheme(scheme)
    }

    /// The value of the first parameter named `name` (ASCII case ignored),
    /// unquoted, as sent.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.parsed.param(name)
    }

    /// The `error` parameter, if it is UTF-8.
    pub fn error(&self) -> Option<&str> {
        std::str::from_utf8(self.param("error")?).ok()
    }
}

/// What a challenge's parameters hold is the server's: printed by name only.
impl fmt::Debug for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("status", &self.status)
            .field("scheme", &crate::redact::server_text(self.scheme(), &[]))
            .finish_non_exhaustive()
    }
}

/// What to do about a challenge.
///
/// ```
/// use tower_bearer::exchange::ChallengeAnswer;
/// use tower_bearer::TokenAsk;
///
/// let step_up = ChallengeAnswer::ReplaceAsking(TokenAsk::for_scope("invoices:write"));
/// assert_ne!(step_up, ChallengeAnswer::Return);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeAnswer {
    /// Send the request once more with the same token (a DPoP proof is made
    /// afresh): the server asked for something other than a new token.
    Replay,
    /// The token was rejected: replace it, and send the request once more
    /// with the replacement.
    Replace,
    /// Replace the token with one that carries what the challenge asked for,
    /// then send the request once more; if the source cannot ask for it
    /// ([`TokenSource::can_ask`](crate::TokenSource::can_ask)), return the
    /// answer as it is.
    ReplaceAsking(TokenAsk),
    /// Return the answer to the caller as it is.
    Return,
}

/// Answers the challenges of `401` and `403` answers, before the crate's own
/// rules and the [`RejectionClassifier`](crate::classify::RejectionClassifier):
/// `Some` decides, `None` leaves the challenge to them. Whatever it answers,
/// a request is sent at most twice.
///
/// Any `Fn(&Challenge<'_>) -> Option<ChallengeAnswer>` is one:
///
/// ```
/// use tower_bearer::exchange::{Challenge, ChallengeAnswer};
/// use tower_bearer::{BearerAuthLayer, StaticToken};
///
/// let layer = BearerAuthLayer::new(StaticToken::new("k")).on_challenge(
///     |c: &Challenge<'_>| (c.error() == Some("token_revoked")).then_some(ChallengeAnswer::Replace),
/// );
/// # drop(layer);
/// ```
pub trait ChallengeHandler: Send + Sync + 'static {
    /// What to do about `challenge`; `None`: what the crate would do.
    fn answer(&self, challenge: &Challenge<'_>) -> Option<ChallengeAnswer>;
}

impl<F> ChallengeHandler for F
where
    F: Fn(&Challenge<'_>) -> Option<ChallengeAnswer> + Send + Sync + 'static,
{
    fn answer(&self, challenge: &Challenge<'_>) -> Option<ChallengeAnswer> {
        self(challenge)
    }
}

/// How an exchange answers challenges: a handler of the user's, and
/// whether a `403 insufficient_scope` asks for a wider token (step-up).
#[derive(Clone, Default)]
pub(crate) struct ChallengeRules {
    pub(crate) handler: Option<Arc<dyn ChallengeHandler>>,
    pub(crate) step_up: bool,
}

impl fmt::Debug for ChallengeRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeRules")
            .field("handler", &self.handler.is_some())
            .field("step_up", &self.step_up)
            .finish()
    }
}

impl ChallengeRules {
    /// The answer to the first challenge of `headers` that the user's handler
    /// or the crate's rules answer; `None` if none does.
    pub(crate) fn answer(
        &self,
        status: StatusCode,
        headers: &http::HeaderMap,
        dpop: bool,
    ) -> Option<ChallengeAnswer> {
        for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
            for parsed in www_authenticate::parse(value.as_bytes()) {
                let challenge = Challenge::new(status, &parsed);
                let answer = match &self.handler {
                    Some(handler) => handler.answer(&challenge),
                    None => None,
                };
                if let Some(answer) = answer.or_else(|| builtin(&challenge, dpop, self.step_up)) {
                    return Some(answer);
                }
            }
        }
        None
    }
}

/// The crate's own answers: a DPoP nonce, a claims challenge, a step-up.
fn builtin(challenge: &Challenge<'_>, dpop: bool, step_up: bool) -> Option<ChallengeAnswer> {
    let ours = challenge.is_scheme("Bearer") || challenge.is_scheme("DPoP");
    match (challenge.status(), challenge.error()?) {
        // RFC 9449 §9: the resource server wants a nonce in the proof.
        (StatusCode::UNAUTHORIZED, "use_dpop_nonce") if dpop && challenge.is_scheme("DPoP") => {
            Some(ChallengeAnswer::Replay)
        }
        // Microsoft Entra CAE: a token with these claims is needed. Without
        // readable claims there is nothing to ask for: the answer goes back.
        (StatusCode::UNAUTHORIZED, "insufficient_claims") if ours => Some(
            claims_of(challenge).map_or(ChallengeAnswer::Return, |claims| {
                ChallengeAnswer::ReplaceAsking(TokenAsk::for_claims(claims))
            }),
        ),
        // RFC 6750 §3.1: a token with a wider scope is needed.
        (StatusCode::FORBIDDEN, "insufficient_scope") if ours && step_up => {
            let scope = std::str::from_utf8(challenge.param("scope")?).ok()?;
            Some(ChallengeAnswer::ReplaceAsking(TokenAsk::for_scope(scope)))
        }
        _ => None,
    }
}

/// The claims of a claims challenge: base64 (standard or URL-safe, padded or
/// not) of a JSON object.
fn claims_of(challenge: &Challenge<'_>) -> Option<String> {
    let encoded = challenge.param("claims")?;
    let trimmed: Vec<u8> = encoded
        .iter()
        .copied()
        .filter(|b| *b != b'=')
        .map(|b| match b {
            b'+' => b'-',
            b'/' => b'_',
            other => other,
        })
        .collect();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()?;
    let json = String::from_utf8(json).ok()?;
    json.trim_start().starts_with('{').then_some(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_crates_own_answers() {
        let claims_json = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(claims_json);
        let cae = format!(
            r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="{b64}""#
        );
        let rules = ChallengeRules::default();
        let step_up = ChallengeRules {
            step_up: true,
            ..ChallengeRules::default()
        };
        let cae_dpop = cae.replacen("Bearer", "DPoP", 1);
        let u = StatusCode::UNAUTHORIZED;
        let f = StatusCode::FORBIDDEN;
        use ChallengeAnswer::*;
        #[rustfmt::skip]
        type Case<'a> = (&'a str, &'a ChallengeRules, StatusCode, Vec<&'a str>, bool, Option<ChallengeAnswer>);
        let cases: Vec<Case<'_>> = vec![
            (
                "DPoP nonce for a bound token: same token again",
                &rules,
                u,
                vec![r#"DPoP error="use_dpop_nonce", error_description="nonce required""#],
                true,
                Some(Replay),
            ),
            (
                "DPoP nonce for a bearer token: not ours",
                &rules,
                u,
                vec![r#"DPoP error="use_dpop_nonce""#],
                false,
                None,
            ),
            (
                "claims challenge",
                &rules,
                u,
                vec![&cae],
                false,
                Some(ReplaceAsking(TokenAsk::for_claims(claims_json))),
            ),
            (
                "claims challenge to a DPoP token",
                &rules,
                u,
                vec![&cae_dpop],
                true,
                Some(ReplaceAsking(TokenAsk::for_claims(claims_json))),
            ),
            (
                "claims challenge without claims: returned",
                &rules,
                u,
                vec![r#"Bearer error="insufficient_claims""#],
                false,
                Some(Return),
            ),
            (
                "claims challenge with garbage: returned",
                &rules,
                u,
                vec![r#"Bearer error="insufficient_claims", claims="%%%""#],
                false,
                Some(Return),
            ),
            (
                "insufficient_scope, step-up off",
                &rules,
                f,
                vec![r#"Bearer error="insufficient_scope", scope="a b""#],
                false,
                None,
            ),
            (
                "insufficient_scope, step-up on",
                &step_up,
                f,
                vec![r#"Bearer error="insufficient_scope", scope="a b""#],
                false,
                Some(ReplaceAsking(TokenAsk::for_scope("a b"))),
            ),
            (
                "insufficient_scope without a scope",
                &step_up,
                f,
                vec![r#"Bearer error="insufficient_scope""#],
                false,
                None,
            ),
            (
                "invalid_token: the classifier's",
                &rules,
                u,
                vec![r#"Bearer error="invalid_token""#],
                false,
                None,
            ),
            (
                "another scheme first, then ours",
                &rules,
                u,
                vec![r#"Basic realm="x""#, &cae],
                false,
                Some(ReplaceAsking(TokenAsk::for_claims(claims_json))),
            ),
        ];
        for (name, rules, status, values, dpop, want) in cases {
            assert_eq!(
                rules.answer(status, &headers(&values), dpop),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn a_handler_answers_first() {
        let rules = ChallengeRules {
            handler: Some(Arc::new(|c: &Challenge<'_>| {
                c.is_scheme("PoP").then_some(ChallengeAnswer::Replay)
            })),
            step_up: false,
        };
        let h = headers(&[r#"PoP error="stale""#]);
        assert_eq!(
            rules.answer(StatusCode::UNAUTHORIZED, &h, false),
            Some(ChallengeAnswer::Replay)
        );
        let h = headers(&[r#"Bearer error="invalid_token""#]);
        assert_eq!(rules.answer(StatusCode::UNAUTHORIZED, &h, false), None);
    }
}
