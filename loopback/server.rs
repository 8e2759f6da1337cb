//! The one HTTP server on 127.0.0.1 that the examples' stand-ins and the test
//! suites' servers share.
//!
//! Part of the shared `loopback` module (`loopback/mod.rs` says who includes
//! it).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Serves `handler` on 127.0.0.1 (a port of the OS's choosing), HTTP/1 and
/// HTTP/2, a task per connection.
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A handler that sees the request head and its whole body.
pub type Handler = Arc<dyn Fn(Parts, Bytes) -> Response<Full<Bytes>> + Send + Sync>;

/// Serves `handler`, given the request head and its whole body, on 127.0.0.1.
pub async fn serve_collected(
    handler: impl Fn(Parts, Bytes) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> SocketAddr {
    let handler: Handler = Arc::new(handler);
    serve(move |req: Request<Incoming>| {
        let handler = handler.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            handler(parts, body)
        }
    })
    .await
}
