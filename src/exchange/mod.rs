//! What happens to one request with a token, decided once for every front
//! end: the Tower [`BearerAuth`](crate::BearerAuth) service (under which sit
//! hyper-util, tonic and `ReqwestService`), the reqwest middleware, and a
//! client of your own.
//!
//! 1. **Route** (before sending): a request for an origin outside the scope
//!    ([`only_for_origins`](crate::BearerAuthLayer::only_for_origins)), or
//!    one whose caller's own `Authorization` is kept
//!    ([`CallerAuthorization::Keep`]), passes through untouched; any other
//!    gets the token.
//! 2. **Verdict** (the answer): the token was *accepted*, *rejected* (the
//!    [`RejectionClassifier`](crate::classify::RejectionClassifier): a 401
//!    with a bearer challenge or none, gRPC `UNAUTHENTICATED`), or the answer
//!    says nothing about it: a `5xx`, or an answer from another origin than
//!    the one the token went to (a redirect followed by the client:
//!    [`AnsweredElsewhere`]).
//! 3. **Action** (what the front end does next):
//!
//!    | verdict | first attempt, replayable | first attempt, not replayable | the replay |
//!    | --- | --- | --- | --- |
//!    | accepted | report it, return the answer | report it, return the answer | report it, return the answer |
//!    | nothing about the token | return the answer | return the answer | return the answer |
//!    | rejected | ask for the token's replacement and send once more with it; without one (paced, the source failing), return the rejection | report it, return the rejection at once | report it, return the rejection |
//!
//!    Whether a request can be replayed is known before anything waits: a
//!    body over [`BufferBody`](crate::replay::BufferBody)'s cap or a stream
//!    the server did not read to its end returns the rejection at once, and
//!    its replacement is fetched for the next request.
//!
//! So each request is sent at most twice, and the caller gets the API's own
//! answer (its status, body and `WWW-Authenticate`) unless no token can be
//! had at all. What a run of rejections bounds is the *token requests*: the
//! cache paces the replacements (see
//! [`rejections_before_pacing`](crate::TokenCacheBuilder::rejections_before_pacing)),
//! and while one waits, requests are sent once with the token at hand.

mod action;
mod answered_elsewhere;
mod attach;
mod caller_authorization;
mod challenge;
mod policy;

pub use self::answered_elsewhere::AnsweredElsewhere;
pub use self::caller_authorization::CallerAuthorization;
pub use self::challenge::{Challenge, ChallengeAnswer, ChallengeHandler};

pub(crate) use self::action::{after_answer, Action, Attempt, Verdict};
pub(crate) use self::attach::{attach, Attached};
pub(crate) use self::policy::{ExchangePolicy, Judge, Route};
