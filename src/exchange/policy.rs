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
use super::challenge::{ChallengeAnswer, ChallengeHandler, ChallengeRules};
use crate::classify::{DefaultClassifier, RejectionClassifier};
use crate::origin::Origin;

/// The settings of an exchange: which requests get the token and what counts
/// as a rejection. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ExchangePolicy<C = DefaultClassifier> {
    /// The origins the token may be sent to; `None`: every request.
    scope: Option<Arc<[Origin]>>,
    caller_authorization: CallerAuthorization,
    judge: Judge<C>,
}

/// What a request in flight needs of the settings (each holds a clone): the
/// classifier, and the rarely set rest behind one pointer, so that a clone
/// and its drop cost a request one test each when unset.
#[derive(Clone, Debug)]
pub(crate) struct Judge<C> {
    classifier: C,
    /// `None`: the crate's challenge rules, absolute URIs only.
    settings: Option<Arc<JudgeSettings>>,
}

/// How challenges are answered, and the origin of relative URIs (for DPoP
/// proofs).
#[derive(Clone, Debug, Default)]
struct JudgeSettings {
    challenges: ChallengeRules,
    relative_origin: Option<Origin>,
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

    /// `true` if the URI names no origin (a tonic `Channel`'s requests).
    fn is_relative(&self) -> bool;

    /// The absolute URL, the origin of a relative one given.
    fn absolute_url(&self, relative_origin: Option<&Origin>) -> Option<String>;
}

impl Target for http::Uri {
    #[inline]
    fn is_for(&self, origin: &Origin) -> bool {
        origin.matches(self)
    }

    #[inline]
    fn is_relative(&self) -> bool {
        self.scheme().is_none()
    }

    fn absolute_url(&self, relative_origin: Option<&Origin>) -> Option<String> {
        if !self.is_relative() {
            return Some(self.to_string());
        }
        let path = self.path_and_query().map_or("/", |p| p.as_str());
        Some(format!("{}{path}", relative_origin?))
    }
}

#[cfg(feature = "reqwest")]
impl Target for ::reqwest::Url {
    fn is_for(&self, origin: &Origin) -> bool {
        origin.matches_parts(self.scheme(), self.host_str(), self.port_or_known_default())
    }

    fn is_relative(&self) -> bool {
        false
    }

    fn absolute_url(&self, _relative_origin: Option<&Origin>) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

impl Default for ExchangePolicy {
    fn default() -> Self {
        Self {
            scope: None,
            caller_authorization: CallerAuthorization::Replace,
            judge: Judge {
                classifier: DefaultClassifier,
                settings: None,
            },
        }
    }
}

impl<C> ExchangePolicy<C> {
    /// The same settings with another classifier.
    pub(crate) fn classifier<C2>(self, classifier: C2) -> ExchangePolicy<C2> {
        ExchangePolicy {
            scope: self.scope,
            caller_authorization: self.caller_authorization,
            judge: Judge {
                classifier,
                settings: self.judge.settings,
            },
        }
    }

    /// Answers challenges with `handler` first.
    pub(crate) fn on_challenge(mut self, handler: impl ChallengeHandler) -> Self {
        self.judge
            .change(|settings| settings.challenges.handler = Some(Arc::new(handler)));
        self
    }

    /// Answers a `403 insufficient_scope` naming a scope with a token asked
    /// for that scope.
    pub(crate) fn step_up(mut self) -> Self {
        self.judge
            .change(|settings| settings.challenges.step_up = true);
        self
    }

    /// Requests whose URI is relative are for `origin`.
    pub(crate) fn relative_uri_origin(mut self, origin: Origin) -> Self {
        self.judge
            .change(|settings| settings.relative_origin = Some(origin));
        self
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

    /// What reads the answers of requests in flight.
    pub(crate) fn judge(&self) -> &Judge<C> {
        &self.judge
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
        let in_scope = match (&self.scope, self.judge.relative_origin()) {
            (None, _) => true,
            (Some(origins), Some(relative)) if target.is_relative() => origins.contains(relative),
            (Some(origins), _) => origins.iter().any(|origin| target.is_for(origin)),
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

impl<C> Judge<C> {
    /// The absolute URL of a request for `target` (a DPoP proof's `htu`
    /// and the origin its nonce is kept for), if it can be known.
    pub(crate) fn absolute_url(&self, target: &impl Target) -> Option<String> {
        target.absolute_url(self.relative_origin())
    }

    fn relative_origin(&self) -> Option<&Origin> {
        self.settings.as_deref()?.relative_origin.as_ref()
    }

    /// Changes the settings of requests sent from now on.
    fn change(&mut self, change: impl FnOnce(&mut JudgeSettings)) {
        let mut settings = self.settings.as_deref().cloned().unwrap_or_default();
        change(&mut settings);
        self.settings = Some(Arc::new(settings));
    }
}

impl<C: RejectionClassifier> Judge<C> {
    /// What an answer says about the token its request carried (`dpop`:
    /// the token is DPoP-bound).
    ///
    /// Nothing from another origin counts. A `401` or `403`'s challenges are
    /// read first (the user's handler, then the crate's rules: a DPoP nonce,
    /// a claims challenge, a step-up); then a rejection by the classifier
    /// counts; a server error says nothing either way.
    #[inline]
    pub(crate) fn verdict(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        extensions: &Extensions,
        dpop: bool,
    ) -> Verdict {
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return self.challenged(status, headers, extensions, dpop);
        }
        verdict(&self.classifier, status, headers, extensions)
    }

    /// The verdict on a `401` or `403`: rare, so its challenges are parsed.
    #[cold]
    fn challenged(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        extensions: &Extensions,
        dpop: bool,
    ) -> Verdict {
        if extensions.get::<AnsweredElsewhere>().is_some() {
            return Verdict::Unrelated;
        }
        let rules = match self.settings.as_deref() {
            Some(settings) => &settings.challenges,
            None => &DEFAULT_RULES,
        };
        let answer = rules.answer(status, headers, dpop);
        match answer {
            Some(ChallengeAnswer::Replay) => Verdict::SendAgain,
            Some(ChallengeAnswer::Replace) => Verdict::Rejected,
            Some(ChallengeAnswer::ReplaceAsking(ask)) => Verdict::Asking(ask),
            Some(ChallengeAnswer::Return) => Verdict::Unrelated,
            None => verdict(&self.classifier, status, headers, extensions),
        }
    }
}

/// The crate's rules alone.
static DEFAULT_RULES: ChallengeRules = ChallengeRules {
    handler: None,
    step_up: false,
};

/// What an answer says about the token its request carried, by the
/// classifier alone.
///
/// A rejection by `classifier` counts only if the answer came from the
/// origin the token went to; a server error says nothing either way.
#[inline]
fn verdict<C: RejectionClassifier>(
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
    } else if status.is_server_error() || status == StatusCode::UNAUTHORIZED {
        // A server error says nothing of the token; nor does a 401 the
        // classifier does not call a rejection (it asks for another scheme).
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
        let mut basic = HeaderMap::new();
        basic.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="x""#),
        );
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
            ("401 asking for another scheme: nothing about the token", StatusCode::UNAUTHORIZED, &basic, &here, Unrelated),
        ];
        for (name, status, headers, extensions, want) in cases {
            assert_eq!(verdict(&c, status, headers, extensions), want, "{name}");
        }
    }
}
