//! The HTTP client the token endpoint, discovery and the platform sources
//! send through.
//!
//! [`HttpClient`] erases any Tower HTTP service; with feature `rustls`,
//! [`HttpClientBuilder`] makes the default HTTPS client (roots, client
//! certificates, proxies from `proxy.rs`). `secure_url.rs` decides which
//! URLs may carry credentials; a failure to send is a [`TransportError`],
//! its text made safe to print, unless `tls_failure.rs` finds a certificate
//! failure in it.

pub(super) mod http_client;
#[cfg(feature = "rustls")]
pub(super) mod http_client_builder;
#[cfg(feature = "rustls")]
pub(super) mod proxy;
pub(super) mod secure_url;
pub(super) mod tls_failure;
pub(super) mod transport_error;

pub use self::http_client::{HttpBody, HttpClient};
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use self::http_client_builder::HttpClientBuilder;
pub use self::transport_error::TransportError;
