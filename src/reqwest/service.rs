//! `ReqwestService`: a plain `reqwest::Client` as a Tower HTTP service.

use std::task::{Context, Poll};

use bytes::Bytes;
use tower_service::Service;

use super::answered_elsewhere::mark_if_elsewhere;
use crate::error::BoxError;
use crate::source::BoxFuture;

/// A `reqwest::Client` as a `tower::Service<http::Request<B>>`, so that it can
/// sit under [`BearerAuthLayer`](crate::BearerAuthLayer) and any other Tower
/// layer (timeouts, retries, rate limits).
///
/// reqwest implements `Service` only for its own `reqwest::Request`; this
/// takes the `http::Request` that Tower layers work with, sends it with the
/// client (its connection pool, TLS, proxy, default headers and timeouts
/// apply), and returns an `http::Response` whose body is a `reqwest::Body`
/// (an `http_body::Body`: read it with `http_body_util::BodyExt::collect`).
/// An answer that reqwest brought back from another origin after following a
/// redirect is marked [`AnsweredElsewhere`](crate::exchange::AnsweredElsewhere),
/// so that the layer returns its `401` as is, without a fetch or a replay.
///
/// The request body may be any `http_body::Body` of bytes. Which ones are
/// replayed after a rejection is the layer's choice, as for any client:
/// `Full<Bytes>`, `String` and `Empty` with the default [`CloneBody`](crate::replay::CloneBody),
/// streams with [`BufferBody`](crate::replay::BufferBody).
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::Full;
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_bearer::reqwest::ReqwestService;
/// use tower_bearer::{BearerAuthLayer, StaticToken};
///
/// # async fn call() -> Result<(), tower_bearer::BoxError> {
/// let client = ServiceBuilder::new()
///     .layer(BearerAuthLayer::new(StaticToken::new("api-key")))
///     .service(ReqwestService::new(reqwest::Client::new()));
///
/// let request = Request::post("http://127.0.0.1:8080/v1/things")
///     .header("content-type", "application/json")
///     .body(Full::new(Bytes::from_static(br#"{"name":"x"}"#)))?;
/// let response = client.oneshot(request).await?;
/// println!("{}", response.status());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ReqwestService {
    client: ::reqwest::Client,
}

impl ReqwestService {
    /// Sends requests with `client`.
    pub fn new(client: ::reqwest::Client) -> Self {
        Self { client }
    }

    /// The client requests are sent with.
    pub fn client(&self) -> &::reqwest::Client {
        &self.client
    }
}

impl From<::reqwest::Client> for ReqwestService {
    fn from(client: ::reqwest::Client) -> Self {
        Self::new(client)
    }
}

impl<B> Service<http::Request<B>> for ReqwestService
where
    B: http_body::Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<::reqwest::Body>;
    type Error = ::reqwest::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // reqwest's client queues requests itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let request = ::reqwest::Request::try_from(request.map(::reqwest::Body::wrap));
        let client = self.client.clone();
        Box::pin(async move {
            let request = request?;
            let sent_to = request.url().clone();
            let mut response = client.execute(request).await?;
            // reqwest follows redirects: an answer from another origin says
            // nothing about the token, which did not go there.
            mark_if_elsewhere(&mut response, &sent_to);
            Ok(http::Response::from(response))
        })
    }
}
