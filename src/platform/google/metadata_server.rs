//! The Google metadata server as both of its token sources ask it: where it
//! is (`GCE_METADATA_HOST`, or 169.254.169.254) and the request it wants.

use bytes::Bytes;
use http::{HeaderValue, Request, Uri};
use http_body_util::Full;

use crate::platform::error::{PlatformError, SetupError, Skipped, StatusPolicy};
use crate::platform::settings::HttpSettings;
use crate::platform::transport::{Answer, Endpoint};
use crate::platform::Env;

/// The metadata server's documented address. An IP rather than
/// `metadata.google.internal`: no DNS lookup to wait for off the platform
/// (Google's Go client does the same).
pub(crate) const DEFAULT_HOST: &str = "169.254.169.254";

/// The name in errors and logs.
pub(crate) const NAME: &str = "Google metadata server";

/// The account whose tokens are asked for unless set otherwise: the one
/// attached to the instance.
pub(crate) const DEFAULT_ACCOUNT: &str = "default";

/// Where the metadata server is and how a source asks it.
#[derive(Clone, Debug)]
pub(crate) struct MetadataServer {
    host: String,
    endpoint: Endpoint,
}

/// What a source builder gathers about the server.
#[derive(Clone, Debug, Default)]
pub(crate) struct MetadataSettings {
    pub(crate) host: Option<String>,
    pub(crate) env: Option<Env>,
    pub(crate) account: Option<String>,
}

impl MetadataSettings {
    /// The server: the host set, else `GCE_METADATA_HOST` (`host` or
    /// `host:port`, as Google's libraries read it), else 169.254.169.254.
    pub(crate) fn server(
        &self,
        http: &HttpSettings,
        skipped: &[Skipped],
    ) -> Result<MetadataServer, SetupError> {
        let from_env;
        let host = match (&self.host, &self.env) {
            (Some(host), _) => host.as_str(),
            (None, Some(env)) => env.var("GCE_METADATA_HOST").unwrap_or(DEFAULT_HOST),
            (None, None) => {
                from_env = Env::from_process();
                from_env.var("GCE_METADATA_HOST").unwrap_or(DEFAULT_HOST)
            }
        };
        if host.parse::<http::uri::Authority>().is_err() || host.contains('@') {
            return Err(SetupError::source(
                NAME,
                format!("the metadata host {host:?} is not a host or host:port"),
            ));
        }
        Ok(MetadataServer {
            host: host.to_owned(),
            endpoint: Endpoint::new(
                NAME,
                http.local_client()?,
                http.timeout,
                StatusPolicy::Plain,
            )
            .passed_over(skipped),
        })
    }

    /// The service account: the one set (its email), else `default`.
    pub(crate) fn account(&self) -> Result<&str, SetupError> {
        let account = self.account.as_deref().unwrap_or(DEFAULT_ACCOUNT);
        // It goes into the path: an email or `default`, nothing that could
        // leave its segment.
        let allowed = |c: char| c.is_ascii_alphanumeric() || "@._-+".contains(c);
        if account.is_empty() || !account.chars().all(allowed) {
            return Err(SetupError::source(
                NAME,
                format!("{account:?} is not a service account's email"),
            ));
        }
        Ok(account)
    }
}

impl MetadataServer {
    /// `GET http://{host}/computeMetadata/v1/{path_and_query}` with
    /// `Metadata-Flavor: Google`, which the server requires of every
    /// request (and which a browser cannot be made to send).
    pub(crate) async fn get(&self, path_and_query: &str) -> Result<Answer, PlatformError> {
        let uri: Uri = format!("http://{}/computeMetadata/v1/{path_and_query}", self.host)
            .parse()
            .expect("host, account and query are checked or encoded");
        let mut request = Request::new(Full::<Bytes>::default());
        *request.uri_mut() = uri;
        request
            .headers_mut()
            .insert("metadata-flavor", HeaderValue::from_static("Google"));
        self.endpoint.send(request, &[]).await
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }
}

/// The setters of a metadata-server source's builder, whose `settings`
/// field is its [`MetadataSettings`].
macro_rules! metadata_server_setters {
    () => {
        /// The service account, by email, among those attached to the
        /// instance. Defaults to `default`, the instance's own.
        pub fn account(mut self, email: impl Into<String>) -> Self {
            self.settings.account = Some(email.into());
            self
        }

        /// The environment whose `GCE_METADATA_HOST` names the server.
        /// Defaults to the process's, read by [`build`](Self::build).
        pub fn env(mut self, env: $crate::platform::Env) -> Self {
            self.settings.env = Some(env);
            self
        }

        /// The server's host (`host` or `host:port`), whatever the
        /// environment says. Defaults to `GCE_METADATA_HOST`, else
        /// 169.254.169.254.
        pub fn host(mut self, host: impl Into<String>) -> Self {
            self.settings.host = Some(host.into());
            self
        }
    };
}

pub(crate) use metadata_server_setters;
