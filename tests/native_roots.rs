//! `HttpClientBuilder::platform_roots` (feature `native-roots`) honours
//! `SSL_CERT_FILE`: a CA generated at test time, written to a file that the
//! variable names, is trusted, and Mozilla's roots can be left out (issue 12).
//!
//! Its own test binary with a single test, so that setting the variable
//! races with no other thread reading the environment.
#![cfg(feature = "native-roots")]

mod support;

use support::tls::{fetch, Ca, TlsEndpoint};
use tower_bearer::oauth2::HttpClient;

#[test]
fn platform_roots_trust_the_ca_in_ssl_cert_file() {
    let ca = Ca::new("CA from SSL_CERT_FILE");
    let path = std::env::temp_dir().join(format!("tower-bearer-ca-{}.pem", std::process::id()));
    std::fs::write(&path, &ca.pem).unwrap();
    // Before any other thread exists (the runtime is built below).
    std::env::set_var("SSL_CERT_FILE", &path);
    std::env::remove_var("SSL_CERT_DIR");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let endpoint = TlsEndpoint::start(&ca, None).await;
        let platform_only = HttpClient::builder()
            .webpki_roots(false)
            .platform_roots(true)
            .build()
            .unwrap();
        assert_eq!(
            fetch(&endpoint.url("localhost"), platform_only)
                .await
                .unwrap(),
            "tls-token"
        );
        // Without the platform's roots, the same CA is unknown.
        let err = fetch(&endpoint.url("localhost"), HttpClient::https())
            .await
            .unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        assert_eq!(endpoint.requests(), 1);
    });
    let _ = std::fs::remove_file(&path);
}
