//! The decision after an answer: a pure function of which attempt it
//! answered, what it says about the token, and whether the request can be
//! sent again. Every front end carries it out; none decides for itself.

use crate::token_ask::TokenAsk;

/// Which attempt an answer is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The request as the caller sent it.
    First,
    /// The one replay after a rejection.
    Replay,
}

/// What an answer says about the token it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The server took the token.
    Accepted,
    /// The server rejected the token.
    Rejected,
    /// Nothing: a server error, an answer from another origin, a challenge
    /// answered with "return it".
    Unrelated,
    /// The server asked for the request again with the same token (a DPoP
    /// nonce): a new proof, no new token.
    SendAgain,
    /// The server asked for a token that carries more (claims, a scope).
    Asking(TokenAsk),
}

/// What a front end does with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Report the acceptance; return the answer.
    Accept,
    /// Return the answer as it is; it says nothing about the token.
    Return,
    /// Report the rejection (the token's replacement starts for later
    /// requests); return the answer, without sending the request again.
    ReturnRejection,
    /// Ask the cache for the token's replacement and send the request once
    /// more with it; if none can be had now (replacements are paced, the
    /// source fails), return the answer.
    ReplaceThenReplay,
    /// Like `ReplaceThenReplay`, the replacement asked for what the server
    /// named; if the source cannot ask for it, return the answer.
    ReplaceAskingThenReplay(TokenAsk),
    /// Send the request once more with the same token (and a new proof).
    ReplaySameToken,
}

/// Decides what to do with an answer to `attempt`, given its `verdict` and
/// whether the request can be sent again (checked before anything waits).
// Inlined: called once per answer on the hot path, and its match folds
// away where the verdict is known (10 instructions and a call, callgrind).
#[inline]
pub(crate) fn after_answer(attempt: Attempt, verdict: Verdict, replayable: bool) -> Action {
    match (verdict, attempt, replayable) {
        (Verdict::Accepted, _, _) => Action::Accept,
        (Verdict::Unrelated, _, _) => Action::Return,
        (Verdict::Rejected, Attempt::First, true) => Action::ReplaceThenReplay,
        // Never a third send: a rejected replay is the answer.
        (Verdict::Rejected, Attempt::First, false) | (Verdict::Rejected, Attempt::Replay, _) => {
            Action::ReturnRejection
        }
        (Verdict::SendAgain, Attempt::First, true) => Action::ReplaySameToken,
        (Verdict::Asking(ask), Attempt::First, true) => Action::ReplaceAskingThenReplay(ask),
        // A challenge that cannot be answered by a send (the body cannot be
        // replayed, the replay was challenged again) is the answer; the token
        // was not rejected.
        (Verdict::SendAgain | Verdict::Asking(_), _, _) => Action::Return,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Attempt::*;
    use Verdict::*;

    #[test]
    fn table() {
        let ask = TokenAsk::for_claims("{}");
        #[rustfmt::skip]
        let cases = [
            ("accepted", First, Accepted, true, Accept),
            ("accepted, not replayable", First, Accepted, false, Accept),
            ("the replay accepted", Replay, Accepted, false, Accept),
            ("a server error", First, Unrelated, true, Return),
            ("another origin answered the replay", Replay, Unrelated, false, Return),
            ("rejected, replayable: replace, then replay", First, Rejected, true, ReplaceThenReplay),
            ("rejected, not replayable: the rejection at once", First, Rejected, false, ReturnRejection),
            ("the replay rejected: never a third send", Replay, Rejected, true, ReturnRejection),
            ("a nonce challenge: the same token again", First, SendAgain, true, ReplaySameToken),
            ("a nonce challenge, not replayable: returned", First, SendAgain, false, Return),
            ("the replay challenged for a nonce again: returned", Replay, SendAgain, true, Return),
            ("a claims challenge: replace asking, then replay", First, Asking(ask.clone()), true, ReplaceAskingThenReplay(ask.clone())),
            ("a claims challenge, not replayable: returned", First, Asking(ask.clone()), false, Return),
            ("the replay challenged for claims again: returned", Replay, Asking(ask.clone()), true, Return),
        ];
        for (name, attempt, verdict, replayable, want) in cases {
            assert_eq!(after_answer(attempt, verdict, replayable), want, "{name}");
        }
    }
}
