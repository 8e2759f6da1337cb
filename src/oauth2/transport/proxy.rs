//! Proxies for the token endpoint client: which requests go through one
//! (curl's environment variables, or a proxy set in code) and the connector
//! that reaches them (a CONNECT tunnel for `https://`, absolute-form requests
//! for `http://`).

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::PROXY_AUTHORIZATION;
use http::{Request, Uri};
use http_body_util::Full;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::error::BoxError;
use crate::oauth2::BuildError;
use crate::redact;
use crate::source::BoxFuture;

/// The environment variables read, in the order curl reads them: for each
/// destination scheme the lower-case name first. `HTTP_PROXY` in capitals is
/// ignored in a CGI program, where a request header can set it ("httpoxy").
const HTTPS_PROXY: [&str; 2] = ["https_proxy", "HTTPS_PROXY"];
const HTTP_PROXY: [&str; 2] = ["http_proxy", "HTTP_PROXY"];
const ALL_PROXY: [&str; 2] = ["all_proxy", "ALL_PROXY"];
const NO_PROXY: [&str; 2] = ["no_proxy", "NO_PROXY"];

/// Where the client's proxy settings come from.
#[derive(Clone, Default)]
pub(crate) enum ProxyConfig {
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, read when
    /// the client is built.
    #[default]
    FromEnv,
    /// Never a proxy.
    Disabled,
    /// One proxy for every destination but the exceptions.
    Explicit { url: String, exceptions: String },
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyConfig::FromEnv => f.write_str("FromEnv"),
            ProxyConfig::Disabled => f.write_str("Disabled"),
            // The URL may carry a password.
            ProxyConfig::Explicit { url, exceptions } => f
                .debug_struct("Explicit")
                .field("url", &redact::url(url))
                .field("exceptions", exceptions)
                .finish(),
        }
    }
}

impl ProxyConfig {
    /// The proxies these settings select, reading variables with `lookup`;
    /// `None` when no destination goes through a proxy.
    pub(crate) fn resolve(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Proxies>, BuildError> {
        let matcher = match self {
            ProxyConfig::Disabled => return Ok(None),
            ProxyConfig::Explicit { url, exceptions } => {
                check_proxy_url(url)?;
                Matcher::builder()
                    .all(url.clone())
                    .no(exceptions.clone())
                    .build()
            }
            ProxyConfig::FromEnv => {
                let first = |names: [&str; 2]| {
                    names
                        .iter()
                        .filter(|name| **name != "HTTP_PROXY" || lookup("REQUEST_METHOD").is_none())
                        .find_map(|name| lookup(name).filter(|v| !v.trim().is_empty()))
                        .unwrap_or_default()
                };
                let (https, http, all) = (first(HTTPS_PROXY), first(HTTP_PROXY), first(ALL_PROXY));
                if https.is_empty() && http.is_empty() && all.is_empty() {
                    return Ok(None);
                }
                Matcher::builder()
                    .https(https)
                    .http(http)
                    .all(all)
                    .no(first(NO_PROXY))
                    .build()
            }
        };
        Ok(Some(Proxies(Arc::new(matcher))))
    }
}

/// A proxy set in code must be one this client can use: `http://` (a
/// tunnel to it is plain TCP), with a host.
fn check_proxy_url(url: &str) -> Result<(), BuildError> {
    let invalid = |reason| BuildError::InvalidProxy {
        url: redact::url(url),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(invalid("proxies are reached over plain http://")),
        Some(_) => return Err(invalid("only http:// proxies are supported")),
        None => return Err(invalid("give the scheme, http://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(())
}

/// The proxy rules in force; loopback destinations never use a proxy.
#[derive(Clone)]
pub(crate) struct Proxies(Arc<Matcher>);

impl Proxies {
    /// The proxy for a request to `dst`, if it goes through one.
    pub(crate) fn for_destination(&self, dst: &Uri) -> Option<Intercept> {
        if is_loopback(dst) {
            return None;
        }
        self.0.intercept(dst)
    }
}

/// A token endpoint on this machine is never reached through a proxy (as
/// Go's `httpproxy` decides): a proxy elsewhere could not reach it anyway.
fn is_loopback(uri: &Uri) -> bool {
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Connects to a destination directly, through a CONNECT tunnel (`https://`
/// behind a proxy), or to the proxy itself (`http://` behind a proxy, sent
/// in absolute form).
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    direct: HttpConnector,
    proxies: Option<Proxies>,
}

impl ProxyConnector {
    pub(crate) fn new(direct: HttpConnector, proxies: Option<Proxies>) -> Self {
        Self { direct, proxies }
    }
}

impl Service<Uri> for ProxyConnector {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<ProxyStream, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = self
            .proxies
            .as_ref()
            .and_then(|proxies| proxies.for_destination(&dst));
        let mut direct = self.direct.clone();
        Box::pin(async move {
            let Some(proxy) = intercept else {
                let io = direct.call(dst).await?;
                return Ok(ProxyStream::new(io, false));
            };
            if dst.scheme_str() == Some("https") {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), direct);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                std::future::poll_fn(|cx| tunnel.poll_ready(cx)).await?;
                let io = tunnel.call(dst).await?;
                Ok(ProxyStream::new(io, false))
            } else {
                let io = direct.call(proxy.uri().clone()).await?;
                Ok(ProxyStream::new(io, true))
            }
        })
    }
}

pin_project! {
    /// A TCP stream that tells the client whether it leads to a proxy that
    /// expects absolute-form requests.
    pub(crate) struct ProxyStream {
        #[pin]
        io: TokioIo<TcpStream>,
        to_proxy: bool,
    }
}

impl ProxyStream {
    fn new(io: TokioIo<TcpStream>, to_proxy: bool) -> Self {
        Self { io, to_proxy }
    }
}

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.to_proxy)
    }
}

impl Read for ProxyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl Write for ProxyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
}

/// Adds the proxy's credentials to `http://` requests that go through a
/// proxy (a CONNECT tunnel carries them itself).
#[derive(Clone)]
pub(crate) struct ProxyAuthorization<S> {
    inner: S,
    proxies: Option<Proxies>,
}

impl<S> ProxyAuthorization<S> {
    pub(crate) fn new(inner: S, proxies: Option<Proxies>) -> Self {
        Self { inner, proxies }
    }
}

impl<S> Service<Request<Full<Bytes>>> for ProxyAuthorization<S>
where
    S: Service<Request<Full<Bytes>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Full<Bytes>>) -> Self::Future {
        if request.uri().scheme_str() == Some("http") {
            let proxy = self
                .proxies
                .as_ref()
                .and_then(|proxies| proxies.for_destination(request.uri()));
            if let Some(auth) = proxy.as_ref().and_then(Intercept::basic_auth) {
                request
                    .headers_mut()
                    .insert(PROXY_AUTHORIZATION, auth.clone());
            }
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn proxy_for(config: &ProxyConfig, env: &[(&str, &str)], dst: &str) -> Option<String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let proxies = config.resolve(|name| env.get(name).cloned()).unwrap()?;
        let intercept = proxies.for_destination(&dst.parse().unwrap())?;
        Some(intercept.uri().to_string())
    }

    #[test]
    fn environment_variables_select_proxies_as_curl_does() {
        let env = ProxyConfig::FromEnv;
        let p = "http://proxy.corp:3128/";
        type Env<'a> = &'a [(&'a str, &'a str)];
        let table: &[(Env<'_>, &str, Option<&str>)] = &[
            (&[], "https://idp.example.com/token", None),
            (
                &[("HTTPS_PROXY", p)],
                "https://idp.example.com/token",
                Some(p),
            ),
            (
                &[("https_proxy", p)],
                "https://idp.example.com/token",
                Some(p),
            ),
            (&[("HTTPS_PROXY", p)], "http://idp.example.com/token", None),
            (
                &[("HTTP_PROXY", p)],
                "http://idp.example.com/token",
                Some(p),
            ),
            (
                &[("ALL_PROXY", p)],
                "https://idp.example.com/token",
                Some(p),
            ),
            (
                &[("HTTPS_PROXY", "")],
                "https://idp.example.com/token",
                None,
            ),
            (
                &[("https_proxy", p), ("HTTPS_PROXY", "http://other:1/")],
                "https://idp.example.com/token",
                Some(p),
            ),
            (
                &[("HTTPS_PROXY", p), ("NO_PROXY", "example.com")],
                "https://idp.example.com/token",
                None,
            ),
            (
                &[("HTTPS_PROXY", p), ("no_proxy", ".example.com, 10.0.0.0/8")],
                "https://idp.example.net/token",
                Some(p),
            ),
            (
                &[("HTTPS_PROXY", p), ("NO_PROXY", "*")],
                "https://idp.example.com/",
                None,
            ),
            // httpoxy: in a CGI program a request header can set HTTP_PROXY.
            (
                &[("HTTP_PROXY", p), ("REQUEST_METHOD", "GET")],
                "http://idp.example.com/token",
                None,
            ),
            // Loopback never goes through a proxy.
            (&[("ALL_PROXY", p)], "https://127.0.0.1:8443/token", None),
            (&[("ALL_PROXY", p)], "https://[::1]:8443/token", None),
            (&[("ALL_PROXY", p)], "http://localhost:8080/token", None),
        ];
        for (vars, dst, expected) in table {
            assert_eq!(
                proxy_for(&env, vars, dst).as_deref(),
                *expected,
                "{vars:?} {dst}"
            );
        }
    }

    #[test]
    fn a_proxy_set_in_code_ignores_the_environment() {
        let explicit = ProxyConfig::Explicit {
            url: "http://proxy.corp:3128".into(),
            exceptions: "internal.corp".into(),
        };
        let env = [("HTTPS_PROXY", "http://other:1")];
        let shown = |dst| proxy_for(&explicit, &env, dst);
        assert_eq!(
            shown("https://idp.example.com/").as_deref(),
            Some("http://proxy.corp:3128/")
        );
        assert_eq!(shown("https://idp.internal.corp/"), None);
        assert_eq!(
            proxy_for(&ProxyConfig::Disabled, &env, "https://idp.example.com/"),
            None
        );
    }

    #[test]
    fn unusable_proxy_urls_are_refused_with_the_reason() {
        for (url, reason) in [
            ("https://proxy.corp:3128", "plain http://"),
            ("socks5://proxy.corp:1080", "only http://"),
            ("proxy.corp:3128", "scheme"),
            ("http://", "not a URL"),
            ("http://user:pa55@ proxy", "not a URL"),
        ] {
            let config = ProxyConfig::Explicit {
                url: url.into(),
                exceptions: String::new(),
            };
            let err = config.resolve(|_| None).err().unwrap();
            let text = err.to_string();
            assert!(text.contains(reason), "{url}: {text}");
            assert!(!text.contains("pa55"), "{text}");
        }
    }
}
