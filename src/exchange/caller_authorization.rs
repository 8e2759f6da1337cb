//! What the exchange does with a request that already carries an
//! `Authorization` header.

/// What [`BearerAuthLayer`](crate::BearerAuthLayer) and the reqwest
/// middleware do with a request that arrives with an `Authorization` header
/// of its own.
///
/// The default is [`Replace`](Self::Replace): whatever credentials the
/// caller put on the request, only the layer's token leaves. That is what a
/// proxy needs. An axum handler that forwards the incoming request upstream
/// forwards its headers too, and with them the end user's session token;
/// with `Keep` that token, not the service's, would reach the upstream API.
///
/// Choose [`Keep`](Self::Keep) when some callers authenticate requests
/// themselves on purpose (another account, a token the caller obtained): such
/// a request is sent as it is, without a fetch and without a replay.
///
/// Requests for an origin outside
/// [`only_for_origins`](crate::BearerAuthLayer::only_for_origins) are never
/// touched either way: strip what must not travel there before sending them.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_bearer::{BearerAuthLayer, StaticToken};
/// use tower_bearer::exchange::CallerAuthorization;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let upstream = service_fn(|req: Request<Full<Bytes>>| async move {
///     Ok::<_, Infallible>(Response::new(req.headers()["authorization"].clone()))
/// });
/// let forwarded = || {
///     Request::get("http://127.0.0.1/v1/report")
///         .header("authorization", "Bearer end-user-session")
///         .body(Full::default())
///         .unwrap()
/// };
///
/// // The default: the caller's credentials are replaced.
/// let proxy = BearerAuthLayer::new(StaticToken::new("service-token")).layer(upstream.clone());
/// let response = proxy.oneshot(forwarded()).await.unwrap();
/// assert_eq!(response.body(), "Bearer service-token");
///
/// // Kept on request.
/// let keeping = BearerAuthLayer::new(StaticToken::new("service-token"))
///     .caller_authorization(CallerAuthorization::Keep)
///     .layer(upstream);
/// let response = keeping.oneshot(forwarded()).await.unwrap();
/// assert_eq!(response.body(), "Bearer end-user-session");
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallerAuthorization {
    /// Send the layer's token instead of the caller's `Authorization`
    /// header (every value of it). The default.
    #[default]
    Replace,
    /// Send a request that has an `Authorization` header as it is: no
    /// token, no fetch, no replay.
    Keep,
}

impl CallerAuthorization {
    /// `true` if a request goes out untouched; `has_header` says whether it
    /// has an `Authorization` header, and is not asked with the default, so
    /// that replacing costs no header lookup.
    #[inline]
    pub(crate) fn passes_through(self, has_header: impl FnOnce() -> bool) -> bool {
        self == CallerAuthorization::Keep && has_header()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_kept_header_passes_through() {
        use CallerAuthorization::{Keep, Replace};
        let table = [
            (Replace, false, false),
            (Replace, true, false),
            (Keep, false, false),
            (Keep, true, true),
        ];
        for (choice, has_header, passes) in table {
            let mut asked = false;
            let through = choice.passes_through(|| {
                asked = true;
                has_header
            });
            assert_eq!(through, passes, "{choice:?} {has_header}");
            assert_eq!(asked, choice == Keep, "the default looks nothing up");
        }
        assert_eq!(CallerAuthorization::default(), Replace);
    }
}
