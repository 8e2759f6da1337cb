//! Which failed fetches say that a token endpoint itself is overloaded, and
//! for how long every cache that uses it should leave it alone: a pure
//! function, table-tested.
//!
//! A failure marked as the endpoint's own
//! ([`TokenError::endpoint_overloaded`]: a `429`, a `503`,
//! `temporarily_unavailable`, `slow_down`) is about the endpoint, not about
//! the one client, workspace or user whose fetch happened to get it: an
//! [`EndpointGate`](super::EndpointGate) pauses every key behind it, for the
//! `Retry-After` it came with or a doubling pause. Other failures (a refused
//! connection, a 500, an `invalid_client`, with a `Retry-After` or without)
//! stay with the key that saw them, which backs off on its own. Which answers
//! are overloads is the source's to say (`oauth2` marks its errors), so the
//! cache knows no protocol.

use std::time::Duration;

use crate::error::TokenError;

/// How long every key behind a gate should leave the endpoint alone after
/// `error`, the `trips`-th overload answer in a row: `None` for a failure that
/// is not the endpoint's own ([`TokenError::is_endpoint_overload`]), whatever
/// its `Retry-After`.
pub(crate) fn endpoint_pause(
    error: &TokenError,
    trips: u32,
    initial: Duration,
    max: Duration,
    max_retry_after: Duration,
) -> Option<Duration> {
    if !error.is_endpoint_overload() {
        return None;
    }
    if let Some(asked) = error.retry_after() {
        let asked = asked.min(max_retry_after);
        return (!asked.is_zero()).then_some(asked);
    }
    let doublings = trips.saturating_sub(1).min(30);
    Some(initial.checked_mul(1 << doublings).unwrap_or(max).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn overloaded() -> TokenError {
        TokenError::transient("busy").endpoint_overloaded()
    }

    #[test]
    fn table() {
        let (initial, max, max_retry_after) = (MS(250), Duration::from_secs(30), MS(600_000));
        let own = |e: TokenError| e;
        #[rustfmt::skip]
        let cases: Vec<(&str, TokenError, u32, Option<Duration>)> = vec![
            ("overload, first signal", overloaded(), 1, Some(MS(250))),
            ("overload, third in a row: doubles", overloaded(), 3, Some(MS(1000))),
            ("overload, many in a row: capped", overloaded(), 40, Some(Duration::from_secs(30))),
            ("overload's Retry-After wins over doubling", overloaded().with_retry_after(MS(2000)), 9, Some(MS(2000))),
            ("overload's Retry-After capped", overloaded().with_retry_after(Duration::from_secs(86_400)), 1, Some(MS(600_000))),
            ("overload's Retry-After: 0 pauses nothing", overloaded().with_retry_after(Duration::ZERO), 1, None),
            ("a permanent failure: the key's own", own(TokenError::permanent("invalid_client")), 1, None),
            ("Retry-After on the key's own failure: still its own", own(TokenError::permanent("invalid_client").with_retry_after(MS(600_000))), 1, None),
            ("Retry-After on a transient failure: still its own", own(TokenError::transient("busy").with_retry_after(MS(7000))), 1, None),
            ("a refused connection", own(TokenError::with_source(ErrorKind::Transient, "unreachable", std::io::Error::other("refused"))), 1, None),
            ("a plain message", own(TokenError::transient("429")), 1, None),
        ];
        for (name, error, trips, want) in cases {
            assert_eq!(
                endpoint_pause(&error, trips, initial, max, max_retry_after),
                want,
                "{name}"
            );
        }
    }
}
