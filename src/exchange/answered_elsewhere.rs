//! `AnsweredElsewhere`: a response that came from another origin than the one
//! its request (and token) went to.

/// Marks a response that came from another origin than the one its request
/// was sent to: the client followed a redirect. Such an answer says nothing
/// about the token (the client does not send it across origins), so a `401`
/// carrying this mark is returned as it is, without a replacement or a replay.
///
/// [`ReqwestService`](crate::reqwest::ReqwestService) and the reqwest
/// middleware mark what reqwest's redirects bring back themselves. Under a
/// client of your own that follows redirects, insert it into the response's
/// extensions when the final origin differs:
///
/// ```
/// use tower_bearer::exchange::AnsweredElsewhere;
///
/// let mut response = http::Response::new(());
/// response.extensions_mut().insert(AnsweredElsewhere);
/// assert!(response.extensions().get::<AnsweredElsewhere>().is_some());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AnsweredElsewhere;
