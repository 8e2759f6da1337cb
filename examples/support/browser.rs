//! What the user's browser does in an authorization-code flow, for examples
//! that have no browser: follow the authorization URL to the provider's
//! redirect and read the callback from it.
//!
//! Not an example itself: `examples/support/mod.rs` includes it.

#![allow(dead_code)]

use bytes::Bytes;
use http::header::LOCATION;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tower_bearer::oauth2::Callback;
use tower_bearer::BoxError;

/// GETs `authorize_url` (a provider that has already "logged the user in")
/// and returns the callback its redirect carries.
pub async fn follow_authorization(
    http: &Client<HttpConnector, Full<Bytes>>,
    authorize_url: &str,
) -> Result<Callback, BoxError> {
    let res = http
        .request(Request::get(authorize_url).body(Full::default())?)
        .await?;
    let location = res
        .headers()
        .get(LOCATION)
        .ok_or("no redirect")?
        .to_str()?
        .to_owned();
    Ok(Callback::from_url(&location)?)
}
