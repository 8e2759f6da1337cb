//! The HTTP settings of the platform sources' builders: which client,
//! how long to wait, and the setters the builders share.

use std::time::Duration;

use super::error::SetupError;
use crate::oauth2::HttpClient;

/// How long one request to a platform endpoint may take unless set
/// otherwise: connection and whole answer. Metadata servers answer in
/// milliseconds; Google's Go client waits 5 s too.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting to a metadata server may take with the default
/// client unless set otherwise. The servers are link-local or on the
/// machine, a round trip of well under a millisecond; off the platform,
/// packets to 169.254.169.254 are often dropped, and the system's own
/// connect timeout would be a minute or more.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The HTTP settings a platform source's builder gathers.
#[derive(Clone, Debug)]
pub(crate) struct HttpSettings {
    pub(crate) client: Option<HttpClient>,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            client: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl HttpSettings {
    /// The client for an endpoint on the machine or link-local (a metadata
    /// server, a managed-identity endpoint): the one given, or one that
    /// never goes through a proxy (a proxy cannot reach a link-local
    /// address, and must not see these tokens) and gives up connecting
    /// after the connect timeout.
    pub(crate) fn local_client(&self) -> Result<HttpClient, SetupError> {
        match &self.client {
            Some(client) => Ok(client.clone()),
            None => local_default(self.connect_timeout),
        }
    }

    /// The client for an endpoint across the network (Google's STS, Entra
    /// ID, GitHub's token service): the one given, or the default HTTPS
    /// client, with the proxies of the environment.
    pub(crate) fn remote_client(&self) -> Result<HttpClient, SetupError> {
        match &self.client {
            Some(client) => Ok(client.clone()),
            None => remote_default(),
        }
    }
}

#[cfg(feature = "rustls")]
fn local_default(connect_timeout: Duration) -> Result<HttpClient, SetupError> {
    Ok(HttpClient::builder()
        .no_proxy()
        .connect_timeout(connect_timeout)
        .build()?)
}

#[cfg(not(feature = "rustls"))]
fn local_default(_connect_timeout: Duration) -> Result<HttpClient, SetupError> {
    Err(crate::oauth2::BuildError::NoHttpClient.into())
}

#[cfg(feature = "rustls")]
fn remote_default() -> Result<HttpClient, SetupError> {
    Ok(HttpClient::https())
}

#[cfg(not(feature = "rustls"))]
fn remote_default() -> Result<HttpClient, SetupError> {
    Err(crate::oauth2::BuildError::NoHttpClient.into())
}

/// The HTTP setters of a builder of a source that asks an endpoint on the
/// machine or link-local (a metadata server, managed identity), whose
/// `http` field is its [`HttpSettings`].
macro_rules! local_http_setters {
    () => {
        /// The HTTP client to send through. Defaults to one that never uses
        /// a proxy and gives up connecting after the
        /// [connect timeout](Self::connect_timeout) (feature `rustls`;
        /// required without it).
        pub fn http_client(mut self, client: $crate::oauth2::HttpClient) -> Self {
            self.http.client = Some(client);
            self
        }

        /// How long one request may take, connection and answer. Defaults
        /// to 5 seconds.
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.http.timeout = timeout;
            self
        }

        /// How long connecting may take with the default client (not one
        /// given with [`http_client`](Self::http_client)). Defaults to 1
        /// second.
        pub fn connect_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.http.connect_timeout = timeout;
            self
        }
    };
}

/// The setters of a chooser's builder, whose `env` field is its
/// `Option<Env>`, `http` its [`HttpSettings`] and `timeout_set` whether the
/// timeout was set (each source keeps its own default otherwise).
macro_rules! chooser_setters {
    () => {
        /// The environment to choose from. Defaults to the process's, read
        /// by [`build`](Self::build).
        pub fn env(mut self, env: $crate::platform::Env) -> Self {
            self.env = Some(env);
            self
        }

        /// The HTTP client for every request. Defaults to each source's
        /// own: one that never uses a proxy for a metadata server or
        /// managed identity, the default HTTPS client for the others
        /// (feature `rustls`; required without it).
        pub fn http_client(mut self, client: $crate::oauth2::HttpClient) -> Self {
            self.http.client = Some(client);
            self
        }

        /// How long each request may take. Defaults to each source's own: 5
        /// seconds for a metadata server or managed identity, 10 for an
        /// OAuth2 token endpoint.
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.http.timeout = timeout;
            self.timeout_set = true;
            self
        }

        /// How long connecting to a metadata server or managed-identity
        /// endpoint may take with the default client. Defaults to 1 second.
        pub fn connect_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.http.connect_timeout = timeout;
            self
        }
    };
}

pub(crate) use {chooser_setters, local_http_setters};
