//! `HttpClientBuilder`: the default HTTPS client, configured for corporate
//! networks: extra root certificates, the platform's roots, a rustls
//! `ClientConfig` of your own, a client certificate (mTLS), a proxy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::http_client::HttpClient;
use super::proxy::{ProxyAuthorization, ProxyConfig, ProxyConnector};
use crate::oauth2::BuildError;
use crate::redact::Redacted;

/// Builds the default HTTPS client of the token endpoint: hyper-util's pooled
/// `Client` over hyper-rustls (the `ring` provider), HTTP/1.1 and HTTP/2.
/// [`HttpClient::https`] is `HttpClient::builder().build()`.
///
/// By default it trusts Mozilla's root certificates (`webpki-roots`) and
/// uses the proxies of the usual environment variables. Each setting below
/// is one call:
///
/// - **Roots**: [`add_root_certificates_pem`](Self::add_root_certificates_pem)
///   (a corporate CA, trusted in addition), `platform_roots`
///   (the operating system's store, honouring `SSL_CERT_FILE` and
///   `SSL_CERT_DIR`; feature `native-roots`), [`webpki_roots`](Self::webpki_roots)
///   to drop the bundled ones.
/// - **Client certificate** (mutual TLS): [`client_certificate_pem`](Self::client_certificate_pem).
/// - **Everything TLS**: [`tls_config`](Self::tls_config) takes a rustls
///   `ClientConfig` of your own instead.
/// - **Proxy**: read when the client is built from `https_proxy`,
///   `http_proxy`, `all_proxy` and `no_proxy` (either case, as curl reads
///   them); or set with [`proxy`](Self::proxy), or turned off with
///   [`no_proxy`](Self::no_proxy). `https://` endpoints are reached through
///   a CONNECT tunnel, `http://` ones by asking the proxy; proxy credentials
///   come from the proxy URL (`http://user:password@proxy:3128`). A token
///   endpoint on a loopback address is never reached through a proxy.
///
/// A bad certificate or key, or an unusable proxy URL, is a [`BuildError`]
/// from [`build`](Self::build). At run time, a certificate the endpoint or
/// the client does not accept fails the fetch with a permanent
/// [`ExchangeError::Certificate`](crate::oauth2::ExchangeError::Certificate) that
/// names the reason (`invalid peer certificate: UnknownIssuer`).
///
/// ```no_run
/// use tower_bearer::oauth2::{ClientCredentials, HttpClient, TokenEndpoint};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let http = HttpClient::builder()
///     .add_root_certificates_pem(std::fs::read("/etc/ssl/corp-root-ca.pem")?)
///     .client_certificate_pem(
///         std::fs::read("/etc/app/client.pem")?,
///         std::fs::read("/etc/app/client.key")?,
///     )
///     .proxy("http://proxy.corp.example:3128")
///     .proxy_exceptions("internal.corp.example")
///     .build()?;
/// let endpoint = TokenEndpoint::builder("https://idp.corp.example/oauth2/token")
///     .client_id("my-service")
///     .client_secret("s3cr3t")
///     .http_client(http)
///     .build()?;
/// let source = ClientCredentials::new(endpoint);
/// # let _ = source; Ok(()) }
/// ```
#[must_use]
#[derive(Default)]
pub struct HttpClientBuilder {
    extra_roots: Vec<Vec<u8>>,
    no_webpki_roots: bool,
    #[cfg(feature = "native-roots")]
    platform_roots: bool,
    client_certificate: Option<(Vec<u8>, Vec<u8>)>,
    tls_config: Option<ClientConfig>,
    proxy: ProxyConfig,
    connect_timeout: Option<Duration>,
}

impl HttpClientBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Trusts the certificates of this PEM bundle (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks) in addition to the other roots:
    /// a corporate or private CA. Call it once per bundle.
    pub fn add_root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.extra_roots.push(pem.as_ref().to_vec());
        self
    }

    /// Whether to trust Mozilla's root certificates, bundled through
    /// `webpki-roots`. Defaults to `true`; turn it off to trust only the
    /// roots you add (a private PKI).
    pub fn webpki_roots(mut self, trust: bool) -> Self {
        self.no_webpki_roots = !trust;
        self
    }

    /// Whether to trust the operating system's root certificates (read once,
    /// when the client is built). On Linux these come from the usual bundle
    /// files, or from `SSL_CERT_FILE` and `SSL_CERT_DIR` when they are set.
    /// Defaults to `false`.
    #[cfg(feature = "native-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-roots")))]
    pub fn platform_roots(mut self, trust: bool) -> Self {
        self.platform_roots = trust;
        self
    }

    /// Authenticates the client with this certificate (mutual TLS): a PEM
    /// chain, the client's certificate first, and its private key in PEM
    /// (PKCS #8, PKCS #1 or SEC1). The key is never printed.
    pub fn client_certificate_pem(
        mut self,
        chain: impl AsRef<[u8]>,
        private_key: impl AsRef<[u8]>,
    ) -> Self {
        self.client_certificate = Some((chain.as_ref().to_vec(), private_key.as_ref().to_vec()));
        self
    }

    /// Uses this rustls configuration for every TLS connection, instead of
    /// the roots and client certificate set on this builder. Its ALPN
    /// protocols are replaced by HTTP/2 and HTTP/1.1.
    pub fn tls_config(mut self, config: ClientConfig) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Sends every request through this `http://` proxy (credentials, if
    /// any, in the URL), whatever the environment says. By default the
    /// proxy comes from the environment (`https_proxy`, `http_proxy`,
    /// `all_proxy` and `no_proxy`, either case).
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        let exceptions = match self.proxy {
            ProxyConfig::Explicit { exceptions, .. } => exceptions,
            _ => String::new(),
        };
        self.proxy = ProxyConfig::Explicit {
            url: url.into(),
            exceptions,
        };
        self
    }

    /// Hosts that bypass the proxy set with [`proxy`](Self::proxy), in
    /// `NO_PROXY` syntax: comma-separated domains (matching their
    /// subdomains too), IP addresses or networks (`10.0.0.0/8`), or `*`.
    pub fn proxy_exceptions(mut self, no_proxy: impl Into<String>) -> Self {
        if let ProxyConfig::Explicit { exceptions, .. } = &mut self.proxy {
            *exceptions = no_proxy.into();
        } else {
            self.proxy = ProxyConfig::Explicit {
                url: String::new(),
                exceptions: no_proxy.into(),
            };
        }
        self
    }

    /// Never uses a proxy, whatever the environment says.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyConfig::Disabled;
        self
    }

    /// How long connecting (TCP, without TLS) may take. The token endpoint's
    /// own [timeout](crate::oauth2::TokenEndpointBuilder::timeout) bounds the whole
    /// request anyway; this fails faster on unreachable hosts. By default
    /// connecting is bounded only by that timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Reads the certificates, the key and the proxy settings, and builds the
    /// client.
    ///
    /// Fails with [`BuildError::Tls`] for a certificate bundle or key that
    /// cannot be read (or no root to trust at all), and with
    /// [`BuildError::InvalidProxy`] for a proxy URL that is not `http://`.
    pub fn build(self) -> Result<HttpClient, BuildError> {
        let proxies = match &self.proxy {
            ProxyConfig::Explicit { url, .. } if url.is_empty() => {
                return Err(BuildError::InvalidProxy {
                    url: String::new(),
                    reason: "proxy_exceptions without a proxy",
                })
            }
            config => config.resolve(|name| std::env::var(name).ok())?,
        };
        let mut tls = match self.tls_config {
            Some(config) => config,
            None => tls_config(
                self.extra_roots,
                !self.no_webpki_roots,
                #[cfg(feature = "native-roots")]
                self.platform_roots,
                self.client_certificate,
            )?,
        };
        // hyper-rustls sets these from the HTTP versions enabled below.
        tls.alpn_protocols.clear();
        let mut direct = HttpConnector::new();
        direct.enforce_http(false);
        direct.set_connect_timeout(self.connect_timeout);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(ProxyConnector::new(direct, proxies.clone()));
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        Ok(HttpClient::new(ProxyAuthorization::new(client, proxies)))
    }
}

fn tls_error(what: &str, err: impl fmt::Display) -> BuildError {
    BuildError::Tls(format!("{what}: {err}"))
}

/// The rustls configuration for these roots and client certificate.
fn tls_config(
    extra_roots: Vec<Vec<u8>>,
    webpki: bool,
    #[cfg(feature = "native-roots")] platform: bool,
    client_certificate: Option<(Vec<u8>, Vec<u8>)>,
) -> Result<ClientConfig, BuildError> {
    let mut roots = RootCertStore::empty();
    if webpki {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    #[cfg(feature = "native-roots")]
    if platform {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            if let Some(err) = found.errors.first() {
                return Err(tls_error(
                    "cannot read the platform's root certificates",
                    err,
                ));
            }
        }
        roots.add_parsable_certificates(found.certs);
    }
    for pem in extra_roots {
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| tls_error("cannot read a root certificate bundle", err))?;
        if certificates.is_empty() {
            return Err(BuildError::Tls(
                "a root certificate bundle holds no PEM certificate".into(),
            ));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|err| tls_error("a root certificate is not usable", err))?;
        }
    }
    if roots.is_empty() {
        return Err(BuildError::Tls("no root certificate to trust".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| tls_error("TLS versions", err))?
        .with_root_certificates(roots);
    let Some((chain, key)) = client_certificate else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| tls_error("cannot read the client certificate", err))?;
    if chain.is_empty() {
        return Err(BuildError::Tls(
            "the client certificate PEM holds no certificate".into(),
        ));
    }
    // The parser's error never shows key material.
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|err| tls_error("cannot read the client's private key", err))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|err| tls_error("the client certificate and key do not fit", err))
}

impl fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("HttpClientBuilder");
        d.field("extra_roots", &self.extra_roots.len())
            .field("webpki_roots", &!self.no_webpki_roots);
        #[cfg(feature = "native-roots")]
        d.field("platform_roots", &self.platform_roots);
        d.field(
            "client_certificate",
            &self.client_certificate.as_ref().map(|_| Redacted),
        )
        .field("tls_config", &self.tls_config.is_some())
        .field("proxy", &self.proxy)
        .field("connect_timeout", &self.connect_timeout)
        .finish()
    }
}
