//! What an HTTP status says of trying again, for the errors of every
//! OAuth2 exchange.

use http::StatusCode;

use crate::error::ErrorKind;

/// The statuses by which a server says it is overloaded, whoever asks.
pub(crate) fn overloaded_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
}

/// 5xx, 429 and 408 may pass; other failures will not.
pub(crate) fn status_kind(status: Option<StatusCode>) -> ErrorKind {
    match status {
        Some(s) if s.is_server_error() => ErrorKind::Transient,
        Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT) => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}
