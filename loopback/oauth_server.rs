//! What a loopback authorization server or API needs besides the server
//! itself: form and query parsing, reading headers (bearer tokens, HTTP Basic
//! client credentials), and JSON and RFC 6749 §5.2 error responses.
//!
//! What is particular to one identity provider (which fields it demands, what
//! it answers) stays in that provider's example; this is the plumbing.
//!
//! Part of the shared `loopback` module (`loopback/mod.rs` says who includes
//! it).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// A form body's fields, in order; `None` if it is not a form.
pub fn form(body: &[u8]) -> Option<Vec<(String, String)>> {
    serde_urlencoded::from_bytes(body).ok()
}

/// The fields of a form as a map, or `None` if a field repeats.
pub fn unique_fields(fields: &[(String, String)]) -> Option<BTreeMap<String, String>> {
    let map: BTreeMap<_, _> = fields.iter().cloned().collect();
    (map.len() == fields.len()).then_some(map)
}

/// A form body (or query string) as a map; `None` if it is not a form or a
/// field repeats (a server must not guess which of two values counts).
pub fn form_map(body: &[u8]) -> Option<BTreeMap<String, String>> {
    unique_fields(&form(body)?)
}

/// The query string of a request as a map, as [`form_map`] reads it.
pub fn query_map(parts: &Parts) -> Option<BTreeMap<String, String>> {
    form_map(parts.uri.query().unwrap_or("").as_bytes())
}

/// A header's value, if present and visible ASCII.
pub fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name)?.to_str().ok()
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    header(parts, AUTHORIZATION.as_str())?.strip_prefix("Bearer ")
}

/// Client id and secret of `Authorization: Basic`, each form-decoded after
/// the base64 (RFC 6749 §2.3.1); `None` if the header is missing or malformed.
pub fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let encoded = header(parts, AUTHORIZATION.as_str())?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}")).ok()?;
        pairs.into_iter().next().map(|(_, v)| v)
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// An RFC 6749 §5.2 error response.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        json!({"error": error, "error_description": description}),
    )
}

/// `400 invalid_request`, saying why.
pub fn bad_request(why: &str) -> Response<Full<Bytes>> {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why)
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(body.to_string()))
        .unwrap()
}
