//! What the platform suites (`tests/platform_*.rs`) ask of an error: the
//! `PlatformError` inside a `TokenError`.

use tower_bearer::platform::PlatformError;
use tower_bearer::TokenError;

/// The platform endpoint's failure a `TokenError` carries; panics, showing
/// the error, if it carries another.
pub fn platform_error(err: &TokenError) -> &PlatformError {
    err.cause()
        .and_then(|c| c.downcast_ref::<PlatformError>())
        .unwrap_or_else(|| panic!("not a PlatformError: {err:?}"))
}
