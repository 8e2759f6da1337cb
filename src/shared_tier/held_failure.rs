//! A lease holder's failed fetch, held in Redis for a moment so that the rest
//! of the fleet does not repeat the request at once.
//!
//! The record lives under the failing identity's own keys, so only processes
//! asking for that identity (namespace and tenant) ever see it. It keeps what
//! the failure was (transient or permanent), whether it was the token
//! endpoint's own overload (so that an
//! [`EndpointGate`](crate::cache::EndpointGate) pauses other keys for it only
//! then, exactly as for the original), and its text. What Redis gives back is
//! untrusted: an unknown kind reads as transient, an unknown mark as none,
//! and the text is escaped and capped like any server text.

use std::time::Duration;

use super::error::FleetError;
use crate::error::{Chain, ErrorKind, TokenError};
use crate::redact;

/// How long a failure of a permanent kind (`invalid_client`,
/// `invalid_grant`) is held for the fleet: the cache's longest backoff.
const PERMANENT_FAILURE_HOLD: Duration = Duration::from_secs(30);

/// The longest hold, whatever a `Retry-After` asked: the cache's longest
/// `Retry-After`.
const MAX_FAILURE_HOLD: Duration = Duration::from_secs(600);

/// The format of a stored failure.
const VERSION: &str = "1";

/// A failure as the fleet holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldFailure {
    kind: ErrorKind,
    overload: bool,
    text: String,
}

impl HeldFailure {
    /// What the fleet keeps of `err`: its kind, its overload mark and its
    /// message with its causes (token errors never hold a secret).
    pub(crate) fn of(err: &TokenError) -> Self {
        Self {
            kind: err.kind(),
            overload: err.is_endpoint_overload(),
            text: Chain(err).to_string(),
        }
    }

    /// How long the fleet holds `err`: its `Retry-After`, else `configured`
    /// for a transient failure, else at least 30 s for a permanent one;
    /// never more than 10 minutes, and nothing if `configured` is zero.
    pub(crate) fn hold(err: &TokenError, configured: Duration) -> Duration {
        if configured.is_zero() {
            return Duration::ZERO;
        }
        let hold = match (err.retry_after(), err.kind()) {
            (Some(asked), _) => asked,
            (None, ErrorKind::Permanent) => PERMANENT_FAILURE_HOLD.max(configured),
            (None, ErrorKind::Transient) => configured,
        };
        hold.min(MAX_FAILURE_HOLD)
    }

    pub(crate) fn encode(&self) -> String {
        let kind = match self.kind {
            ErrorKind::Permanent => 'p',
            ErrorKind::Transient => 't',
        };
        let overload = if self.overload { '1' } else { '0' };
        format!("{VERSION}|{kind}|{overload}|{}", self.text)
    }

    /// Reads a stored failure, whatever is stored.
    pub(crate) fn decode(stored: &[u8]) -> Self {
        let stored = String::from_utf8_lossy(stored);
        let mut parts = stored.splitn(4, '|');
        let (version, kind, overload, text) =
            (parts.next(), parts.next(), parts.next(), parts.next());
        let known = version == Some(VERSION);
        Self {
            kind: match kind {
                Some("p") if known => ErrorKind::Permanent,
                _ => ErrorKind::Transient,
            },
            overload: known && overload == Some("1"),
            text: redact::server_text(if known { text.unwrap_or("") } else { &stored }, &[]),
        }
    }

    /// The error a process gets while the failure is held, `left` more.
    pub(crate) fn to_error(&self, left: Duration) -> TokenError {
        TokenError::from_cause(
            self.kind,
            FleetError::HeldFailure(self.text.clone()),
            Some(left),
        )
        .endpoint_overloaded_if(self.overload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_their_kind_and_mark_and_are_escaped_on_the_way_back() {
        let overloaded = TokenError::transient("temporarily_unavailable")
            .with_retry_after(Duration::from_secs(2))
            .endpoint_overloaded();
        let own = TokenError::permanent("invalid_client: bad secret")
            .with_retry_after(Duration::from_secs(600));
        for (err, permanent, overload) in [(&overloaded, false, true), (&own, true, false)] {
            let back = HeldFailure::decode(HeldFailure::of(err).encode().as_bytes())
                .to_error(Duration::from_secs(3));
            assert_eq!(back.is_permanent(), permanent);
            assert_eq!(back.is_endpoint_overload(), overload);
            assert_eq!(back.retry_after(), Some(Duration::from_secs(3)));
            assert!(back.to_string().ends_with(&err.to_string()), "{back}");
            assert!(matches!(
                back.cause().and_then(|c| c.downcast_ref::<FleetError>()),
                Some(FleetError::HeldFailure(_))
            ));
        }
        let forged = HeldFailure::decode(b"1|t|1|boom\nFAKE LOG LINE").to_error(Duration::ZERO);
        assert!(!forged.to_string().contains('\n'));
        for garbage in [&b"garbage"[..], b"9|p|1|x", b"", b"\xff\xfe"] {
            let err = HeldFailure::decode(garbage).to_error(Duration::ZERO);
            assert!(
                err.is_transient() && !err.is_endpoint_overload(),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn holds() {
        let hold = |err: &TokenError| HeldFailure::hold(err, Duration::from_secs(1));
        let s = Duration::from_secs;
        assert_eq!(hold(&TokenError::transient("503")), s(1));
        assert_eq!(hold(&TokenError::permanent("invalid_client")), s(30));
        assert_eq!(
            hold(&TokenError::transient("429").with_retry_after(s(7))),
            s(7)
        );
        assert_eq!(
            hold(&TokenError::transient("429").with_retry_after(s(86_400))),
            s(600)
        );
        assert_eq!(
            HeldFailure::hold(&TokenError::permanent("x"), Duration::ZERO),
            Duration::ZERO
        );
    }
}
