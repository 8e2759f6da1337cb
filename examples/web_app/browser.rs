//! A user's browser: a cookie jar that follows redirects. Like a browser,
//! it keeps cookies by host, whatever the port.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{COOKIE, LOCATION, SET_COOKIE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_bearer::BoxError;

use super::fixture::IDP_USER_COOKIE;

/// The most redirects followed for one visit.
const MAX_REDIRECTS: usize = 10;

pub struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    cookies: Mutex<BTreeMap<String, String>>,
}

/// Where a visit ended: a page, or a redirect not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: StatusCode,
    pub body: String,
}

impl Browser {
    /// A browser already signed in at the authorization server as `user`.
    pub fn signed_in_at_the_idp_as(user: &str) -> Self {
        let cookies = BTreeMap::from([(IDP_USER_COOKIE.to_owned(), user.to_owned())]);
        Self {
            // No idle connections kept: each request reaches whichever app
            // instance serves the address now.
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
            cookies: Mutex::new(cookies),
        }
    }

    /// Opens `url` and follows redirects to the page they end on.
    pub async fn visit(&self, url: &str) -> Result<Page, BoxError> {
        let mut url = url.to_owned();
        for _ in 0..MAX_REDIRECTS {
            match self.request(&url).await? {
                (_, Some(next)) => url = next,
                (page, None) => return Ok(page),
            }
        }
        Err(format!("more than {MAX_REDIRECTS} redirects").into())
    }

    /// Opens `url` and follows redirects until one leads to a URL starting
    /// with `prefix`, and returns that URL without opening it.
    pub async fn follow_until(&self, url: &str, prefix: &str) -> Result<String, BoxError> {
        let mut url = url.to_owned();
        for _ in 0..MAX_REDIRECTS {
            match self.request(&url).await? {
                (_, Some(next)) if next.starts_with(prefix) => return Ok(next),
                (_, Some(next)) => url = next,
                (page, None) => return Err(format!("stopped at {page:?}").into()),
            }
        }
        Err(format!("more than {MAX_REDIRECTS} redirects").into())
    }

    /// One request: the page, and where it redirects to, made absolute.
    async fn request(&self, url: &str) -> Result<(Page, Option<String>), BoxError> {
        let mut request = Request::get(url);
        let cookies = self.cookie_header();
        if !cookies.is_empty() {
            request = request.header(COOKIE, cookies);
        }
        let response = self.client.request(request.body(Full::default())?).await?;
        for set in response.headers().get_all(SET_COOKIE) {
            let first = set.to_str()?.split(';').next().unwrap_or("");
            if let Some((name, value)) = first.split_once('=') {
                self.cookies
                    .lock()
                    .unwrap()
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let status = response.status();
        let next = match response.headers().get(LOCATION) {
            Some(location) if status.is_redirection() => Some(absolute(url, location.to_str()?)),
            _ => None,
        };
        let body = response.into_body().collect().await?.to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        Ok((Page { status, body }, next))
    }

    fn cookie_header(&self) -> String {
        let cookies = self.cookies.lock().unwrap();
        let pairs: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join("; ")
    }
}

/// `location` resolved against `base` (absolute, or absolute-path).
fn absolute(base: &str, location: &str) -> String {
    if !location.starts_with('/') {
        return location.to_owned();
    }
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let origin_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}{location}", &base[..origin_end])
}
