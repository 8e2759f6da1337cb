//! `MetadataAccessToken`: the access token of the instance's service
//! account, from the Google metadata server.

use std::fmt;

use super::metadata_server::{metadata_server_setters, MetadataServer, MetadataSettings};
use crate::error::TokenError;
use crate::platform::error::{SetupError, Skipped};
use crate::platform::settings::{local_http_setters, HttpSettings};
use crate::source::TokenSource;
use crate::token::AccessToken;

/// Access tokens of the service account attached to a Compute Engine VM,
/// a GKE pod (through workload identity), Cloud Run, Cloud Functions or
/// App Engine, from the metadata server: `GET
/// http://{host}/computeMetadata/v1/instance/service-accounts/{account}/token?scopes=…`
/// with `Metadata-Flavor: Google`, answered `{"access_token", "expires_in",
/// "token_type": "Bearer"}`. The token's lifetime is the answer's
/// `expires_in` (the server hands out a cached token until a few minutes
/// before it expires).
///
/// The host is `GCE_METADATA_HOST` if set (`host` or `host:port`; an
/// emulator, a test), else 169.254.169.254. Off Google Cloud the server is
/// absent, and a fetch fails fast with a transient
/// [`PlatformError`](crate::platform::PlatformError): at once when the
/// connection is refused, after the connect timeout (1 s unless set) when
/// packets are dropped, after the timeout (5 s unless set) when something
/// accepts the connection and never answers.
///
/// ```no_run
/// use tower_bearer::platform::google::MetadataAccessToken;
/// use tower_bearer::BearerAuthLayer;
///
/// # fn main() -> Result<(), tower_bearer::platform::SetupError> {
/// let source = MetadataAccessToken::builder()
///     .scope("https://www.googleapis.com/auth/devstorage.read_only")
///     .build()?;
/// let layer = BearerAuthLayer::new(source);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct MetadataAccessToken {
    server: MetadataServer,
    path_and_query: String,
}

impl MetadataAccessToken {
    /// Starts configuring the source.
    pub fn builder() -> MetadataAccessTokenBuilder {
        MetadataAccessTokenBuilder {
            settings: MetadataSettings::default(),
            http: HttpSettings::default(),
            scopes: Vec::new(),
        }
    }

    /// The metadata server's host (and port) asked.
    pub fn host(&self) -> &str {
        self.server.host()
    }
}

impl TokenSource for MetadataAccessToken {
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let answer = self.server.get(&self.path_and_query).await?;
        self.server.endpoint().bearer_token(&answer)
    }
}

impl fmt::Debug for MetadataAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataAccessToken")
            .field("host", &self.server.host())
            .field("path", &self.path_and_query)
            .finish()
    }
}

/// Builds a [`MetadataAccessToken`]; see [`MetadataAccessToken::builder`].
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::platform::google::MetadataAccessToken;
/// use tower_bearer::platform::Env;
///
/// let source = MetadataAccessToken::builder()
///     .account("reporter@demo.iam.gserviceaccount.com")
///     .scope("https://www.googleapis.com/auth/bigquery.readonly")
///     .env(Env::new().with("GCE_METADATA_HOST", "127.0.0.1:8080"))
///     .timeout(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// assert_eq!(source.host(), "127.0.0.1:8080");
/// ```
#[must_use]
#[derive(Debug)]
pub struct MetadataAccessTokenBuilder {
    settings: MetadataSettings,
    http: HttpSettings,
    scopes: Vec<String>,
}

impl MetadataAccessTokenBuilder {
    metadata_server_setters!();
    local_http_setters!();

    /// Adds a scope the token must carry (sent comma-separated as
    /// `scopes`). Defaults to none: the scopes the instance was given.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Builds the source. Fails for a host or account that cannot be
    /// used, and without an HTTP client (no `rustls` feature, none given).
    pub fn build(self) -> Result<MetadataAccessToken, SetupError> {
        self.build_after(&[])
    }

    /// Builds the source chosen after a chooser passed over `skipped`.
    pub(crate) fn build_after(
        self,
        skipped: &[Skipped],
    ) -> Result<MetadataAccessToken, SetupError> {
        let account = self.settings.account()?;
        let mut path_and_query = format!("instance/service-accounts/{account}/token");
        if !self.scopes.is_empty() {
            let query = serde_urlencoded::to_string([("scopes", self.scopes.join(","))])
                .expect("a string pair encodes");
            path_and_query = format!("{path_and_query}?{query}");
        }
        Ok(MetadataAccessToken {
            server: self.settings.server(&self.http, skipped)?,
            path_and_query,
        })
    }
}
