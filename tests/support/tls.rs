//! A CA, server and client certificates generated at test time, and a token
//! endpoint served over TLS on 127.0.0.1: shared by the TLS test suites.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_bearer::oauth2::{ExchangeError, HttpClient, TokenEndpoint};
use tower_bearer::TokenError;

pub const TOKEN_RESPONSE: &str =
    r#"{"access_token":"tls-token","token_type":"Bearer","expires_in":3600}"#;

/// A certificate authority made for one test.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A certificate for these names, and its key, both in PEM.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A token endpoint over TLS on 127.0.0.1, with a certificate for
/// `127.0.0.1`, `localhost` and `token.test` from `ca`; `client_ca`: require
/// a client certificate from that CA.
pub struct TlsEndpoint {
    pub addr: SocketAddr,
    /// Token requests answered.
    requests: Arc<AtomicUsize>,
}

impl TlsEndpoint {
    pub async fn start(ca: &Ca, client_ca: Option<&Ca>) -> Self {
        let (cert, key) = ca.issue(&["127.0.0.1", "localhost", "token.test"]);
        let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(client_ca) => {
                let mut roots = RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_slice(client_ca.pem.as_bytes()).unwrap())
                    .unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).into_fallible().await {
                        Ok(tls) => tls,
                        // Refused (the client's certificate, under TLS 1.3,
                        // after the client has sent its request): read until
                        // the client hangs up, so that closing sends no RST
                        // that could overtake the alert.
                        Err((_, mut tcp)) => {
                            let _ = tokio::io::copy(&mut tcp, &mut tokio::io::sink()).await;
                            return;
                        }
                    };
                    let service = hyper::service::service_fn(move |_req| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(TOKEN_RESPONSE.as_bytes())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, requests }
    }

    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/token", self.addr.port())
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

pub async fn fetch(url: &str, http: HttpClient) -> Result<String, TokenError> {
    let endpoint = TokenEndpoint::builder(url)
        .client_id("svc")
        .client_secret("s3cr3t")
        .http_client(http)
        .build()
        .unwrap();
    let response = endpoint
        .request(&[("grant_type", "client_credentials")])
        .await?;
    Ok(response.access_token().expose().to_owned())
}

pub fn certificate_reason(err: &TokenError) -> &str {
    match err.cause().and_then(|c| c.downcast_ref::<ExchangeError>()) {
        Some(ExchangeError::Certificate(reason)) => reason,
        other => panic!("not a certificate failure: {other:?} ({err:?})"),
    }
}
