//! OAuth2 test helpers: a loopback server handed each request whole, an OAuth2
//! `HttpClient`, JSON responses and form parsing.

use super::loopback;
use std::net::SocketAddr;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_bearer::oauth2::HttpClient;

/// Serves `handler`, given the request head and its whole body, on 127.0.0.1.
pub async fn serve(
    handler: impl Fn(Parts, Bytes) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> SocketAddr {
    loopback::serve_collected(handler).await
}

pub fn plain_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn http_client() -> HttpClient {
    HttpClient::new(plain_client())
}

pub fn response(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap()
}

pub fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    response(status, "application/json", body.to_string())
}

pub fn form(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap()
}

pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
