//! What counts as "the server rejected the token".

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, StatusCode};

use crate::www_authenticate;

/// Decides whether a response means the access token was rejected, so that the
/// cache drops it and the request is sent once more with a fresh one.
///
/// It sees the status and the headers only (trailers-only gRPC responses carry
/// their status in the headers). Any `Fn(StatusCode, &HeaderMap) -> bool` is a
/// classifier:
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use tower_bearer::{BearerAuthLayer, StaticToken};
///
/// // An API that signals an expired token with 419.
/// let layer = BearerAuthLayer::new(StaticToken::new("k"))
///     .classifier(|status: StatusCode, _: &HeaderMap| status.as_u16() == 419);
/// # drop(layer);
/// ```
pub trait RejectionClassifier: Clone + Send + Sync + 'static {
    /// `true` if the response says the token itself was not accepted.
    fn is_rejection(&self, status: StatusCode, headers: &HeaderMap) -> bool;
}

impl<F> RejectionClassifier for F
where
    F: Fn(StatusCode, &HeaderMap) -> bool + Clone + Send + Sync + 'static,
{
    fn is_rejection(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        self(status, headers)
    }
}

/// The default classifier: HTTP 401 meaning a bad bearer token (RFC 6750 §3.1),
/// and gRPC `UNAUTHENTICATED` (status 16).
///
/// A 401 counts when it has no `WWW-Authenticate` header, or a `Bearer` (or,
/// for DPoP-bound tokens, `DPoP`) challenge with `error="invalid_token"` or
/// with no error code at all. A 401
/// that only offers other schemes (`Basic`), or names another error, does not:
/// a new bearer token cannot fix it. A 403 (`insufficient_scope`) never counts.
///
/// ```
/// use http::{header::WWW_AUTHENTICATE, HeaderMap, HeaderValue, StatusCode};
/// use tower_bearer::classify::{DefaultClassifier, RejectionClassifier};
///
/// let c = DefaultClassifier;
/// let mut headers = HeaderMap::new();
/// assert!(c.is_rejection(StatusCode::UNAUTHORIZED, &headers));
/// headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="invalid_token""#));
/// assert!(c.is_rejection(StatusCode::UNAUTHORIZED, &headers));
/// headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="insufficient_scope""#));
/// assert!(!c.is_rejection(StatusCode::FORBIDDEN, &headers));
///
/// let mut grpc = HeaderMap::new();
/// grpc.insert("grpc-status", HeaderValue::from_static("16"));
/// assert!(c.is_rejection(StatusCode::OK, &grpc));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClassifier;

/// The gRPC status code `UNAUTHENTICATED`.
const GRPC_UNAUTHENTICATED: &[u8] = b"16";

/// The `grpc-status` header, as a ready `HeaderName`: looking it up by `&str`
/// would parse and lower-case the name on every response, which measured as
/// the largest single cost the layer added to a request (issue 4,
/// BENCHMARKS.md). A `static`: a `const` is built and dropped (a call
/// through its bytes' vtable) wherever it is used, 22 instructions a
/// response once the classifier is inlined into the response future.
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

impl RejectionClassifier for DefaultClassifier {
    #[inline]
    fn is_rejection(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if status == StatusCode::UNAUTHORIZED {
            return http_401_rejects_token(headers);
        }
        status == StatusCode::OK
            && headers
                .get(&GRPC_STATUS)
                .is_some_and(|v| v.as_bytes() == GRPC_UNAUTHENTICATED)
    }
}

// Out of line: inlined, its parser's stack frame made every response pay
// for saving and restoring six registers (BENCHMARKS.md).
#[cold]
#[inline(never)]
fn http_401_rejects_token(headers: &HeaderMap) -> bool {
    let mut saw_challenge = false;
    // Bytes, not `str`: a Latin-1 realm or a UTF-8 description must not turn
    // a challenge into a bare 401.
    for value in headers.get_all(WWW_AUTHENTICATE) {
        for challenge in www_authenticate::parse(value.as_bytes()) {
            saw_challenge = true;
            // A DPoP-bound token's server challenges with `DPoP` (RFC 9449 §7.1).
            if challenge.is_scheme("bearer") || challenge.is_scheme("dpop") {
                return matches!(challenge.param("error"), None | Some(b"invalid_token"));
            }
        }
    }
    // A bare 401 is how most APIs say "bad token".
    !saw_challenge
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_challenges(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_bytes(v).unwrap());
        }
        headers
    }

    #[test]
    fn classifies_401_by_its_challenges() {
        // (the WWW-Authenticate headers as sent, whether the token was rejected)
        let cases: &[(&[&[u8]], bool)] = &[
            (&[], true),
            (&[br#"Bearer realm="api""#], true),
            (&[br#"Basic realm="x", Bearer error="invalid_token""#], true),
            (
                &[br#"Basic realm="x""#, br#"Bearer error="invalid_token""#],
                true,
            ),
            (&[br#"Basic realm="x""#], false),
            (&[br#"DPoP algs="ES256", error="invalid_token""#], true),
            (&[br#"DPoP algs="ES256""#], true),
            (&[br#"DPoP error="use_dpop_nonce""#], false),
            (&[br#"Bearer error="invalid_request""#], false),
            // Not ASCII: a Latin-1 realm, a UTF-8 description (RFC 9110
            // allows obs-text in quoted strings).
            (&[b"Basic realm=\"caf\xe9\""], false),
            (&[b"Bearer realm=\"caf\xe9\""], true),
            (
                &[b"Basic realm=\"caf\xe9\", Bearer error=\"invalid_request\""],
                false,
            ),
            (
                &[
                    "Bearer error=\"insufficient_scope\", error_description=\"accès refusé\""
                        .as_bytes(),
                ],
                false,
            ),
            (
                &["Bearer error=\"invalid_token\", error_description=\"jeton expiré\"".as_bytes()],
                true,
            ),
        ];
        for (challenges, rejected) in cases {
            let headers = with_challenges(challenges);
            assert_eq!(
                DefaultClassifier.is_rejection(StatusCode::UNAUTHORIZED, &headers),
                *rejected,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn other_statuses_are_not_rejections() {
        let c = DefaultClassifier;
        let h = with_challenges(&[br#"Bearer error="insufficient_scope""#]);
        assert!(!c.is_rejection(StatusCode::FORBIDDEN, &h));
        assert!(!c.is_rejection(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new()));
        let mut grpc = HeaderMap::new();
        grpc.insert("grpc-status", HeaderValue::from_static("7"));
        assert!(!c.is_rejection(StatusCode::OK, &grpc));
    }
}
