//! Which failed fetches say that a token endpoint itself is overloaded, and
//! for how long every cache that uses it should leave it alone: a pure
//! function, table-tested.
//!
//! A `429 Too Many Requests`, a `503 Service Unavailable`, a `Retry-After` on
//! any answer, and the RFC 6749 error codes `temporarily_unavailable` and
//! `slow_down` are about the endpoint, not about the one client, workspace or
//! user whose fetch happened to get them: an [`EndpointGate`](super::EndpointGate)
//! pauses every key behind it. Other failures (a refused connection, a 500, an
//! `invalid_client`) stay with the key that saw them, which backs off on its
//! own.

use std::time::Duration;

use http::StatusCode;

use crate::error::TokenError;
use crate::oauth2::{ErrorCode, ExchangeError, OAuth2Error};

/// How long the endpoint is left alone after the `trips`-th overload signal
/// in a row (counting from 1), or `None` if `error` is no overload signal.
///
/// A `Retry-After` is honoured up to `max_retry_after`; without one, the pause
/// starts at `initial` and doubles with each signal in a row, up to `max`.
pub(crate) fn endpoint_pause(
    error: &TokenError,
    trips: u32,
    initial: Duration,
    max: Duration,
    max_retry_after: Duration,
) -> Option<Duration> {
    if let Some(asked) = error.retry_after() {
        let asked = asked.min(max_retry_after);
        return (!asked.is_zero()).then_some(asked);
    }
    if !is_overload(error) {
        return None;
    }
    let doublings = trips.saturating_sub(1).min(30);
    Some(initial.checked_mul(1 << doublings).unwrap_or(max).min(max))
}

/// `true` if `error` says the endpoint is overloaded, whatever the key.
fn is_overload(error: &TokenError) -> bool {
    let Some(cause) = error.cause() else {
        return false;
    };
    if let Some(oauth) = cause.downcast_ref::<OAuth2Error>() {
        return matches!(
            oauth.code(),
            ErrorCode::TemporarilyUnavailable | ErrorCode::SlowDown
        ) || oauth.status().is_some_and(overloaded_status);
    }
    match cause.downcast_ref::<ExchangeError>() {
        Some(
            ExchangeError::UnexpectedResponse { status, .. }
            | ExchangeError::ResponseTooLarge { status, .. },
        ) => overloaded_status(*status),
        _ => false,
    }
}

fn overloaded_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn oauth(status: u16, code: &str) -> TokenError {
        OAuth2Error::new(Some(StatusCode::from_u16(status).unwrap()), code).into()
    }

    fn unexpected(status: u16) -> TokenError {
        ExchangeError::UnexpectedResponse {
            status: StatusCode::from_u16(status).unwrap(),
            reason: "not JSON".into(),
            excerpt: None,
            retry_after: None,
        }
        .into()
    }

    #[test]
    fn table() {
        let (initial, max, max_retry_after) = (MS(250), Duration::from_secs(30), MS(600_000));
        #[rustfmt::skip]
        let cases: Vec<(&str, TokenError, u32, Option<Duration>)> = vec![
            ("429 page, first signal", unexpected(429), 1, Some(MS(250))),
            ("429 page, third in a row: doubles", unexpected(429), 3, Some(MS(1000))),
            ("429 page, many in a row: capped", unexpected(429), 40, Some(Duration::from_secs(30))),
            ("503 page", unexpected(503), 1, Some(MS(250))),
            ("500 page: the key's own problem", unexpected(500), 1, None),
            ("temporarily_unavailable", oauth(400, "temporarily_unavailable"), 2, Some(MS(500))),
            ("slow_down", oauth(400, "slow_down"), 1, Some(MS(250))),
            ("unknown code with 429", oauth(429, "rate_limited"), 1, Some(MS(250))),
            ("invalid_client: the key's own problem", oauth(401, "invalid_client"), 1, None),
            ("server_error: the key's own problem", oauth(500, "server_error"), 1, None),
            ("Retry-After on anything", TokenError::transient("busy").with_retry_after(MS(7000)), 1, Some(MS(7000))),
            ("Retry-After on a 429 wins over doubling", unexpected(429).with_retry_after(MS(2000)), 9, Some(MS(2000))),
            ("Retry-After capped", unexpected(429).with_retry_after(Duration::from_secs(86_400)), 1, Some(MS(600_000))),
            ("Retry-After: 0 pauses nothing", TokenError::transient("x").with_retry_after(Duration::ZERO), 1, None),
            ("a refused connection", TokenError::with_source(ErrorKind::Transient, "unreachable", std::io::Error::other("refused")), 1, None),
            ("a plain message", TokenError::transient("429"), 1, None),
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
