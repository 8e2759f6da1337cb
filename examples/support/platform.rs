//! What the platform examples' stand-ins share: JWTs as platforms issue
//! them (unsigned: the stand-ins vouch for their own), a token file that a
//! platform rotates, and a call that says whom the API saw.
//!
//! Not an example itself: `examples/support/mod.rs` includes it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A JWT with these claims.
pub fn jwt(claims: Value) -> String {
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A JWT's claims, unverified; `null` if it has none.
pub fn claims(jwt: &str) -> Value {
    jwt.split('.')
        .nth(1)
        .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
        .and_then(|c| serde_json::from_slice(&c).ok())
        .unwrap_or(Value::Null)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A temporary directory for a platform's files, removed on drop.
pub struct PlatformDir(pub PathBuf);

impl PlatformDir {
    pub fn new(platform: &str) -> std::io::Result<Self> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-bearer-{platform}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for PlatformDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `token` as the kubelet rotates a projected token: a new file
/// renamed over the old one, so that a reader never sees half of it.
pub fn rotate(file: &Path, token: &str) -> std::io::Result<()> {
    let staged = file.with_extension("new");
    std::fs::write(&staged, format!("{token}\n"))?;
    std::fs::rename(&staged, file)
}

/// `GET url` through `client`: the `caller` the API answered, or its status.
pub async fn caller<S, B>(client: &S, url: &str) -> Result<String, BoxError>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let response = client
        .clone()
        .oneshot(Request::get(url).body(Full::default())?)
        .await
        .map_err(Into::into)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(match body["caller"].as_str() {
        Some(caller) => caller.to_owned(),
        None => status.to_string(),
    })
}
