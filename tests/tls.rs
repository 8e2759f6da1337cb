//! The default token endpoint client behind corporate TLS and proxies: a CA,
//! server and client certificates generated at test time, a token endpoint
//! served over TLS on 127.0.0.1, a CONNECT proxy and a plain HTTP proxy on
//! 127.0.0.1 (issue 12).
//!
//! The proxied endpoints are named `token.test` (a reserved name that no
//! resolver answers): only the test proxies know it, as 127.0.0.1, so a
//! request that reaches the endpoint went through the proxy.
#![cfg(feature = "rustls")]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use support::loopback;
use support::tls::{certificate_reason, fetch, provider, Ca, TlsEndpoint, TOKEN_RESPONSE};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tower_bearer::oauth2::{BuildError, HttpClient, TokenEndpoint};
use tower_bearer::ErrorKind;

#[tokio::test]
async fn an_untrusted_certificate_is_permanent_and_names_its_cause() {
    let endpoint = TlsEndpoint::start(&Ca::new("private CA"), None).await;
    // The default client trusts Mozilla's roots only.
    let err = fetch(&endpoint.url("127.0.0.1"), HttpClient::https())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err:?}");
    assert_eq!(
        certificate_reason(&err),
        "invalid peer certificate: UnknownIssuer"
    );
    assert_eq!(
        err.to_string(),
        "TLS certificate failure with the token endpoint: invalid peer certificate: UnknownIssuer"
    );
    assert!(std::error::Error::source(&err).is_none(), "said once");
    assert_eq!(endpoint.requests(), 0);
}

#[tokio::test]
async fn a_ca_added_from_pem_is_trusted() {
    let ca = Ca::new("corporate CA");
    let endpoint = TlsEndpoint::start(&ca, None).await;
    let http = HttpClient::builder()
        .add_root_certificates_pem(&ca.pem)
        .build()
        .unwrap();
    for host in ["127.0.0.1", "localhost"] {
        assert_eq!(
            fetch(&endpoint.url(host), http.clone()).await.unwrap(),
            "tls-token"
        );
    }
    assert_eq!(endpoint.requests(), 2);

    // A certificate from another CA is still refused by the same client.
    let other = TlsEndpoint::start(&Ca::new("another CA"), None).await;
    let err = fetch(&other.url("127.0.0.1"), http).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(other.requests(), 0);
}

#[tokio::test]
async fn a_rustls_config_of_your_own_is_used_as_is() {
    let ca = Ca::new("CA of a ClientConfig");
    let endpoint = TlsEndpoint::start(&ca, None).await;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // ALPN set by the user is replaced, not a panic.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let http = HttpClient::builder().tls_config(config).build().unwrap();
    assert_eq!(
        fetch(&endpoint.url("localhost"), http).await.unwrap(),
        "tls-token"
    );
    assert_eq!(endpoint.requests(), 1);
}

#[tokio::test]
async fn a_client_certificate_is_presented_and_its_absence_is_permanent() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let endpoint = TlsEndpoint::start(&server_ca, Some(&client_ca)).await;
    let (cert, key) = client_ca.issue(&["svc.client.test"]);

    let with_certificate = HttpClient::builder()
        .add_root_certificates_pem(&server_ca.pem)
        .client_certificate_pem(&cert, &key)
        .build()
        .unwrap();
    assert_eq!(
        fetch(&endpoint.url("127.0.0.1"), with_certificate)
            .await
            .unwrap(),
        "tls-token"
    );
    assert_eq!(endpoint.requests(), 1);

    let without = HttpClient::builder()
        .add_root_certificates_pem(&server_ca.pem)
        .build()
        .unwrap();
    let err = fetch(&endpoint.url("127.0.0.1"), without)
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        certificate_reason(&err).contains("CertificateRequired"),
        "{err}"
    );
    assert_eq!(endpoint.requests(), 1);
}

#[test]
fn unusable_tls_settings_are_build_errors_that_show_no_key() {
    let ca = Ca::new("CA");
    let (cert, key) = ca.issue(&["svc.client.test"]);
    let (_, other_key) = ca.issue(&["other.client.test"]);
    let cases = [
        (
            HttpClient::builder().add_root_certificates_pem("not a certificate"),
            "holds no PEM certificate",
        ),
        (
            HttpClient::builder().webpki_roots(false),
            "no root certificate to trust",
        ),
        (
            HttpClient::builder().client_certificate_pem(
                &cert,
                "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
            ),
            "private key",
        ),
        (
            HttpClient::builder().client_certificate_pem(&cert, &other_key),
            "do not fit",
        ),
        (
            HttpClient::builder().proxy("https://proxy.corp.test:3128"),
            "plain http://",
        ),
    ];
    for (builder, reason) in cases {
        let shown = format!("{builder:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        let err = builder.build().err().unwrap();
        assert!(
            matches!(err, BuildError::Tls(_) | BuildError::InvalidProxy { .. }),
            "{err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(text.contains(reason), "{text}");
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains(&key[40..80]),
            "{text}"
        );
    }
}

/// A CONNECT proxy on 127.0.0.1 that knows `token.test` as 127.0.0.1.
/// Records each CONNECT target and its `Proxy-Authorization`.
async fn connect_proxy() -> (SocketAddr, Arc<Mutex<Vec<(String, Option<String>)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if client.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push(line.trim_end().to_owned());
                }
                let target = head[0]
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                    .unwrap()
                    .to_owned();
                let auth = head.iter().find_map(|h| {
                    let (name, value) = h.split_once(": ")?;
                    name.eq_ignore_ascii_case("proxy-authorization")
                        .then(|| value.to_owned())
                });
                log.lock().unwrap().push((target.clone(), auth));
                let port = target.rsplit_once(':').unwrap().1;
                let mut upstream = TcpStream::connect(format!("127.0.0.1:{port}"))
                    .await
                    .unwrap();
                let mut client = client.into_inner();
                client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel_with_the_proxy_credentials() {
    let ca = Ca::new("CA behind a proxy");
    let endpoint = TlsEndpoint::start(&ca, None).await;
    let (proxy, seen) = connect_proxy().await;
    let http = HttpClient::builder()
        .add_root_certificates_pem(&ca.pem)
        .proxy(format!("http://svc:pr0xy@{proxy}"))
        .build()
        .unwrap();
    // Only the proxy knows `token.test`; TLS is checked end to end.
    let url = endpoint.url("token.test");
    assert_eq!(fetch(&url, http).await.unwrap(), "tls-token");
    assert_eq!(endpoint.requests(), 1);
    let port = endpoint.addr.port();
    assert_eq!(
        *seen.lock().unwrap(),
        [(
            format!("token.test:{port}"),
            // base64("svc:pr0xy")
            Some("Basic c3ZjOnByMHh5".to_owned())
        )]
    );
}

#[tokio::test]
async fn loopback_endpoints_bypass_the_proxy() {
    let ca = Ca::new("CA");
    let endpoint = TlsEndpoint::start(&ca, None).await;
    let (proxy, seen) = connect_proxy().await;
    let http = HttpClient::builder()
        .add_root_certificates_pem(&ca.pem)
        .proxy(format!("http://{proxy}"))
        .build()
        .unwrap();
    assert_eq!(
        fetch(&endpoint.url("127.0.0.1"), http.clone())
            .await
            .unwrap(),
        "tls-token"
    );
    assert_eq!(
        fetch(&endpoint.url("localhost"), http).await.unwrap(),
        "tls-token"
    );
    assert_eq!(endpoint.requests(), 2);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn plain_http_asks_the_proxy_in_absolute_form_with_its_credentials() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    // A plain HTTP proxy that answers for `token.test` itself.
    let proxy = loopback::serve(move |req| {
        let log = Arc::clone(&log);
        async move {
            let auth = req
                .headers()
                .get("proxy-authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            log.lock().unwrap().push((req.uri().to_string(), auth));
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(TOKEN_RESPONSE.as_bytes())))
                .unwrap()
        }
    })
    .await;
    let http = HttpClient::builder()
        .proxy(format!("http://svc:pr0xy@{proxy}"))
        .build()
        .unwrap();
    let endpoint = TokenEndpoint::builder("http://token.test:8080/token")
        .allow_insecure_http(true)
        .client_id("svc")
        .client_secret("s3cr3t")
        .http_client(http)
        .build()
        .unwrap();
    let token = endpoint
        .request(&[("grant_type", "client_credentials")])
        .await
        .unwrap();
    assert_eq!(token.access_token().expose(), "tls-token");
    assert_eq!(
        *seen.lock().unwrap(),
        [(
            "http://token.test:8080/token".to_owned(),
            Some("Basic c3ZjOnByMHh5".to_owned())
        )]
    );
}
