//! `HttpClient`: the type-erased HTTP service the token endpoint client sends through.

use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower_service::Service;

use crate::error::BoxError;
use crate::source::BoxFuture;

/// The response body an [`HttpClient`] yields: any body, boxed.
///
/// ```
/// use http_body_util::BodyExt;
/// use tower_bearer::oauth2::HttpBody;
///
/// async fn read(body: HttpBody) -> Result<bytes::Bytes, tower_bearer::BoxError> {
///     Ok(body.collect().await?.to_bytes())
/// }
/// # let _ = read;
/// ```
pub type HttpBody = UnsyncBoxBody<Bytes, BoxError>;

trait DynClient: Send + Sync + 'static {
    fn call(
        &self,
        req: Request<Full<Bytes>>,
    ) -> BoxFuture<'static, Result<Response<HttpBody>, BoxError>>;
}

struct ServiceClient<S> {
    // A `Mutex` so that services that are `Send` but not `Sync` (such as
    // `tower::util::BoxService`) can be used; it is held only to clone.
    service: Mutex<S>,
}

impl<S, B> DynClient for ServiceClient<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn call(
        &self,
        req: Request<Full<Bytes>>,
    ) -> BoxFuture<'static, Result<Response<HttpBody>, BoxError>> {
        let mut service = match self.service.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Box::pin(async move {
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = service.call(req).await.map_err(Into::into)?;
            Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
        })
    }
}

/// The HTTP client a [`TokenEndpoint`](crate::oauth2::TokenEndpoint) sends through: any
/// Tower service from `http::Request<Full<Bytes>>` to `http::Response<B>`, with
/// its type erased so that sources are easy to name.
///
/// Bring your own (a hyper-util `Client` with your TLS, proxy and timeout
/// settings, or a test double), or use [`HttpClient::https`] (feature `rustls`,
/// on by default).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::service_fn;
/// use tower_bearer::oauth2::HttpClient;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Any `tower::Service` will do (a hyper-util `Client` in production);
/// // here, a canned answer.
/// let client = HttpClient::new(service_fn(|_req: Request<Full<Bytes>>| async {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"pong"))))
/// }));
/// let req = Request::get("http://127.0.0.1/ping").body(Full::default()).unwrap();
/// let res = client.send(req).await.unwrap();
/// assert_eq!(res.status(), 200);
/// # }
/// ```
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<dyn DynClient>,
}

impl HttpClient {
    /// Wraps a Tower HTTP service. It is cloned for each request (cheap for
    /// hyper-util's `Client`, which shares its connection pool), and its
    /// readiness is awaited before each call.
    pub fn new<S, B>(service: S) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: Arc::new(ServiceClient {
                service: Mutex::new(service),
            }),
        }
    }

    /// A ready HTTPS client: hyper-util's pooled `Client` over hyper-rustls
    /// (the `ring` provider, Mozilla's root certificates from `webpki-roots`),
    /// HTTP/1.1 and HTTP/2, through the proxies of the usual environment
    /// variables (`https_proxy`, `no_proxy`, …). Plain `http://` is possible
    /// too, but a [`TokenEndpoint`](crate::oauth2::TokenEndpoint) only uses it for
    /// loopback hosts or when explicitly allowed.
    ///
    /// The same as `HttpClient::builder().build()`; use the
    /// [builder](Self::builder) for other roots, a client certificate or a
    /// proxy set in code. It can be built anywhere; requests must be sent
    /// from within a Tokio runtime.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn https() -> Self {
        Self::builder()
            .build()
            .expect("the default settings need no file and no valid proxy URL")
    }

    /// Configures the default HTTPS client: extra roots, platform roots, a
    /// rustls `ClientConfig`, a client certificate, a proxy.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn builder() -> crate::oauth2::HttpClientBuilder {
        crate::oauth2::HttpClientBuilder::new()
    }

    /// Sends a request and returns the response with its body unread.
    ///
    /// The token endpoint client adds its timeout and size cap around this;
    /// custom exchanges should prefer [`TokenEndpoint::request_fields`](crate::oauth2::TokenEndpoint::request_fields).
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<HttpBody>, BoxError> {
        self.inner.call(request).await
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpClient")
    }
}
