//! The exchange's settings, held once by every front end: the origins the
//! token may go to, what to do with a caller's own `Authorization`, and the
//! classifier; and the two readings made with them, before the request
//! (route) and of its answer (verdict).

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, StatusCode};

use super::action::Verdict;
use super::answered_elsewhere::AnsweredElsewhere;
use super::caller_authorization::CallerAuthorization;
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::origin::Origin;

/// The settings of an exchange: which requests get the token and what counts
/// as a rejection. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ExchangePolicy<C = DefaultClassifier> {
    /// The origins the token may be sent to; `None`: every request.
    scope: Option<Arc<[Origin]>>,
    caller_authorization: CallerAuthorization,
    classifier: C,
}

/// Whether a request gets the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Attach the token (replacing the caller's `Authorization`, if any).
    Authorize,
    /// Send it as it is: out of scope, or its caller's `Authorization` is kept.
    PassThrough,
}

/// Where a request goes, whatever the client's URL type.
pub(crate) trait Target {
    /// `true` if the request is for `origin`.
    fn is_for(&self, origin: &Origin) -> bool;
}

impl Target for http::Uri {
    #[inline]
    fn is_for(&self, origin: &Origin) -> bool {
        origin.matches(self)
    }
}

#[cfg(feature = "reqwest")]
impl Target for ::reqwest::Url {
    fn is_for(&self, origin: &Origin) -> bool {
        origin.matches_parts(self.scheme(), self.host_str(), self.port_or_known_default())
    }
}

impl Default for ExchangePolicy {
    fn default() -> Self {
        Self {
            scope: None,
            caller_authorization: CallerAuthorization::Replace,
            classifier: DefaultClassifier,
        }
    }
}

impl<C> ExchangePolicy<C> {
    /// The same settings with another classifier.
    pub(crate) fn classifier<C2>(self, classifier: C2) -> ExchangePolicy<C2> {
        ExchangePolicy {
            scope: self.scope,
            caller_authorization: self.caller_authorization,
            classifier,
        }
    }

    /// The token goes only to requests for these origins.
    pub(crate) fn only_for_origins(mut self, origins: impl IntoIterator<Item = Origin>) -> Self {
        self.scope = Some(origins.into_iter().collect());
        self
    }

    /// What to do with a request that has an `Authorization` of its own.
    pub(crate) fn caller_authorization(mut self, choice: CallerAuthorization) -> Self {
        self.caller_authorization = choice;
        self
    }

    /// The classifier, for the answers of requests in flight.
    pub(crate) fn rejection_classifier(&self) -> &C {
        &self.classifier
    }

    /// Whether a request for `target` with these headers gets the token.
    #[inline(always)]
    pub(crate) fn route(&self, target: &impl Target, headers: &HeaderMap) -> Route {
        // The default settings (every origin, the caller's header replaced)
        // authorize every request: decided inline, without a call, on the
        // hot path of every front end.
        if self.scope.is_none() && self.caller_authorization == CallerAuthorization::Replace {
            return Route::Authorize;
        }
        self.route_with_settings(target, headers)
    }

    fn route_with_settings(&self, target: &impl Target, headers: &HeaderMap) -> Route {
        let in_scope = match &self.scope {
            None => true,
            Some(origins) => origins.iter().any(|origin| target.is_for(origin)),
        };
        if !in_scope
            || self
                .caller_authorization
                .passes_through(|| has_authorization(headers))
        {
            Route::PassThrough
        } else {
            Route::Authorize
        }
    }
}

/// What an answer says about the token its request carried.
///
/// A rejection by `classifier` counts only if the answer came from the
/// origin the token went to; a server error says nothing either way.
#[inline]
pub(crate) fn verdict<C: RejectionClassifier>(
    classifier: &C,
    status: StatusCode,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Verdict {
    if classifier.is_rejection(status, headers) {
        // Rare: only now is the answer's origin looked at.
        if extensions.get::<AnsweredElsewhere>().is_some() {
            Verdict::Unrelated
        } else {
            Verdict::Rejected
        }
    } else if status.is_server_error() {
        Verdict::Unrelated
    } else {
        Verdict::Accepted
    }
}

/// Up to this many header names, looking for one by comparing each costs less
/// than hashing it to look it up.
const SCAN_NAMES_UP_TO: usize = 8;

/// `true` if the caller set an `Authorization` header of its own.
fn has_authorization(headers: &HeaderMap) -> bool {
    if headers.keys_len() <= SCAN_NAMES_UP_TO {
        headers.keys().any(|name| name == AUTHORIZATION)
    } else {
        headers.contains_key(AUTHORIZATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT, COOKIE, WWW_AUTHENTICATE};
    use http::{HeaderValue, Uri};

    #[test]
    fn finds_an_authorization_header_of_the_callers_own() {
        let value = HeaderValue::from_static("x");
        let with = |names: &[&str], authorization: bool| {
            let mut headers = HeaderMap::new();
            for name in names {
                let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
                headers.append(name, value.clone());
            }
            if authorization {
                headers.append(AUTHORIZATION, value.clone());
            }
            headers
        };
        let few = ["accept", "x-request-id"];
        let many: Vec<String> = (0..2 * SCAN_NAMES_UP_TO)
            .map(|i| format!("x-{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        // (headers, whether they hold an Authorization header)
        let mut repeated = with(&few, true);
        repeated.append(AUTHORIZATION, value.clone());
        repeated.append(ACCEPT, value.clone());
        let mut cookies = with(&few, false);
        cookies.append(COOKIE, value.clone());
        let cases = [
            (HeaderMap::new(), false),
            (with(&few, false), false),
            (with(&few, true), true),
            (with(&[], true), true),
            (with(&many, false), false),
            (with(&many, true), true),
            (repeated, true),
            (cookies, false),
        ];
        for (headers, expected) in cases {
            assert_eq!(has_authorization(&headers), expected, "{headers:?}");
        }
    }

    #[test]
    fn routes() {
        let api: Uri = "https://api.example/v1".parse().unwrap();
        let other: Uri = "https://other.example/v1".parse().unwrap();
        let mut own = HeaderMap::new();
        own.insert(AUTHORIZATION, HeaderValue::from_static("Basic x"));
        let none = HeaderMap::new();
        let scoped = ExchangePolicy::default()
            .only_for_origins([Origin::parse("https://api.example").unwrap()]);
        let keeping = ExchangePolicy::default().caller_authorization(CallerAuthorization::Keep);
        use Route::*;
        #[rustfmt::skip]
        let cases = [
            ("everything in scope by default", ExchangePolicy::default(), &api, &none, Authorize),
            ("a caller's own header is replaced by default", ExchangePolicy::default(), &api, &own, Authorize),
            ("in scope", scoped.clone(), &api, &none, Authorize),
            ("out of scope", scoped.clone(), &other, &none, PassThrough),
            ("out of scope, with a header of its own", scoped, &other, &own, PassThrough),
            ("a kept header", keeping.clone(), &api, &own, PassThrough),
            ("kept, but none there", keeping, &api, &none, Authorize),
        ];
        for (name, policy, uri, headers, want) in cases {
            assert_eq!(policy.route(uri, headers), want, "{name}");
        }
    }

    #[test]
    fn verdicts() {
        let c = DefaultClassifier;
        let plain = HeaderMap::new();
        let mut scope = HeaderMap::new();
        scope.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="insufficient_scope""#),
        );
        let mut grpc = HeaderMap::new();
        grpc.insert("grpc-status", HeaderValue::from_static("16"));
        let mut elsewhere = Extensions::new();
        elsewhere.insert(AnsweredElsewhere);
        let here = Extensions::new();
        use Verdict::*;
        #[rustfmt::skip]
        let cases = [
            ("200", StatusCode::OK, &plain, &here, Accepted),
            ("404: the token was taken", StatusCode::NOT_FOUND, &plain, &here, Accepted),
            ("403 insufficient_scope: taken, not enough", StatusCode::FORBIDDEN, &scope, &here, Accepted),
            ("401", StatusCode::UNAUTHORIZED, &plain, &here, Rejected),
            ("gRPC UNAUTHENTICATED", StatusCode::OK, &grpc, &here, Rejected),
            ("401 from another origin after a redirect", StatusCode::UNAUTHORIZED, &plain, &elsewhere, Unrelated),
            ("503: nothing about the token", StatusCode::SERVICE_UNAVAILABLE, &plain, &here, Unrelated),
        ];
        for (name, status, headers, extensions, want) in cases {
            assert_eq!(verdict(&c, status, headers, extensions), want, "{name}");
        }
    }
}
